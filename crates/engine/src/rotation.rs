//! Key rotation: data keys move to the current key-encryption key by being
//! unwrapped and wrapped again; the data they seal is never re-encrypted.
//! Adding and retiring key-encryption keys edits the key file (see
//! `custodian keys rotate` and `retire-kek`); this module does the part that
//! touches the store.

use super::{App, AppError};
use crate::audit_action::AuditAction;
use custodian_vault::audit::AuditDraft;
use custodian_vault::crypto::CryptoError;
use custodian_vault::store::{Batch, WriteOp};
use time::OffsetDateTime;

/// Data keys re-wrapped per transaction.
const BATCH: i64 = 500;

/// What a rewrap did, and how many data keys each key-encryption key wraps
/// afterwards.
pub struct Rewrapped {
    pub moved: usize,
    pub per_kek: Vec<(u32, i64)>,
}

/// Moves every data key not wrapped by the current key-encryption key to it,
/// a batch per transaction, each with an audit entry. A subject erased or
/// changed meanwhile is skipped by the store (the write names the key it
/// replaces), so this is safe while servers run, provided every server
/// already has the current key in its key file.
pub async fn rewrap_all(
    app: &App,
    actor: &str,
    now: impl Fn() -> OffsetDateTime,
) -> Result<Rewrapped, AppError> {
    let current = app.keys.current_kek();
    let mut moved = 0;
    let mut after = None;
    loop {
        let page = app.store.data_keys_page(current, after, BATCH).await?;
        let Some((last, _)) = page.last() else { break };
        after = Some(*last);
        let mut ops = Vec::with_capacity(page.len());
        for (subject, from) in page {
            let to = app.keys.rewrap(&subject, &from).map_err(|e| match e {
                CryptoError::UnknownKek(kek) => AppError::Invalid(format!(
                    "a data key is wrapped by key-encryption key {kek}, which the key file does not hold"
                )),
                _ => AppError::Internal(crate::error::Internal::KeyGenerationFailed),
            })?;
            ops.push(WriteOp::Rewrap { subject, from, to });
        }
        let count = ops.len();
        let batch = Batch {
            ops,
            audit: vec![AuditDraft {
                at: super::collect::micros(now()),
                actor: actor.to_string(),
                action: AuditAction::KeysRewrap.into(),
                purpose: None,
                subject: None,
                decision: "recorded".into(),
                reason: Some(format!("count={count} kek={current}")),
            }],
            outbox: vec![],
        };
        super::error::written(app.store.write(batch).await)?;
        moved += count;
    }
    Ok(Rewrapped {
        moved,
        per_kek: app.store.data_keys_per_kek().await?,
    })
}

/// The key-encryption keys that wrap data keys in the store but are missing
/// from this node's key file. A node without them could open none of those
/// subjects, so it refuses to start rather than answer 503 for each.
pub async fn missing_keks(app: &App) -> Result<Vec<u32>, AppError> {
    Ok(app
        .store
        .keks_in_use()
        .await?
        .into_iter()
        .filter(|id| !app.keys.holds_kek(*id))
        .collect())
}

/// Refuses to retire a key-encryption key that still wraps data keys: they
/// could never be opened again.
pub async fn check_unused(app: &App, kek: u32) -> Result<(), AppError> {
    let in_use = app
        .store
        .data_keys_per_kek()
        .await?
        .into_iter()
        .find(|(id, _)| *id == kek)
        .map_or(0, |(_, n)| n);
    if in_use > 0 {
        return Err(AppError::Invalid(format!(
            "key-encryption key {kek} still wraps {in_use} data keys; run `custodian keys rewrap` first"
        )));
    }
    Ok(())
}
