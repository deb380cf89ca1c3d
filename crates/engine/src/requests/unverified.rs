//! Requests that wait for the person to prove who they are: a fresh code on
//! request, and expiry when they never do.
//!
//! The statutory clock does not start before the identity evidence arrives
//! (Art. 12(6), Art. 12A), so an unverified request is not overdue; but one
//! left unverified for long is not a request anyone is pursuing, and keeping
//! its sealed address for ever would itself be keeping data longer than
//! needed. After the configured time it expires, audited, and its state says
//! so; the person can always make a new request.

use super::stored::{Code, Request};
use super::{
    CODE_LIFETIME_MICROS, advance, code_hash, code_mail, entry, new_code, register::view,
    request_event, stored,
};
use crate::audit_action::AuditAction;
use crate::authz::Operation;
use crate::collect::micros;
use crate::error::written;
use crate::{App, AppError, Principal};
use custodian_policy::requests::{RequestEvent, RequestState};
use custodian_vault::store::BatchError;
use custodian_vault::store::requests::{RequestFilter, RequestOp};
use custodian_vault::store::{Batch, WriteOp};
use time::OffsetDateTime;
use uuid::Uuid;

/// Codes sent for one request at most (the first included): enough for a
/// lost or late message, too few to mail-bomb an address.
pub const MAX_CODES_SENT: u32 = 5;
/// The least time between two codes for one request, unless configured.
pub const DEFAULT_RESEND_GAP: std::time::Duration = std::time::Duration::from_secs(60);
/// Requests expired in one batch of the sweep.
const EXPIRY_BATCH: i64 = 100;

/// Sends the person a fresh code for a request still awaiting verification.
/// The old code stops working; wrong attempts are not forgiven, and a
/// locked request stays locked until its lockout ends.
pub async fn resend_code(
    app: &App,
    principal: &Principal,
    id: Uuid,
    now: OffsetDateTime,
) -> Result<super::RequestView, AppError> {
    app.authorize(principal, Operation::ResendCode, now).await?;
    let at = micros(now);
    let not_found = || AppError::NotFound("no request awaits verification with this id".into());
    let record = app.store.request(id).await?.ok_or_else(not_found)?;
    let mut r = Request::from_record(record)?;
    if r.state != RequestState::AwaitingVerification {
        return Err(not_found());
    }
    let previous = r.meta.code.clone();
    if let Some(p) = &previous {
        if p.locked_until.is_some_and(|until| until > at) {
            return Err(AppError::ForbiddenCode {
                code: "verification_locked",
                detail: "too many wrong codes: try again later".into(),
            });
        }
    }
    let sent = previous.as_ref().map_or(1, |p| p.sent.max(1));
    if sent >= MAX_CODES_SENT {
        return Err(AppError::ForbiddenCode {
            code: "too_many_codes",
            detail: format!(
                "{MAX_CODES_SENT} codes were sent for this request: make a new request"
            ),
        });
    }
    let last_sent = previous.as_ref().map_or(0, |p| {
        p.sent_at.unwrap_or(p.expires_at - CODE_LIFETIME_MICROS)
    });
    let gap = i64::try_from(app.code_resend_gap.as_micros()).unwrap_or(i64::MAX);
    if at.saturating_sub(last_sent) < gap {
        return Err(AppError::TooSoon(format!(
            "a code was sent for this request less than {} s ago",
            app.code_resend_gap.as_secs().max(1)
        )));
    }
    let sealed = stored::open(app, &r.record)?;
    let code = new_code();
    r.meta.code = Some(Code {
        hash: code_hash(app, &id, &code),
        expires_at: at + CODE_LIFETIME_MICROS,
        attempts: previous.as_ref().map_or(0, |p| p.attempts),
        locked_until: None,
        sent: sent + 1,
        sent_at: Some(at),
    });
    let expected = r.record.version;
    let record = r.to_record(at)?;
    let batch = Batch {
        ops: vec![WriteOp::Request(RequestOp::Update {
            record: record.clone(),
            expected_version: expected,
        })],
        audit: vec![entry(
            &principal.actor(),
            AuditAction::RequestCode,
            r.record.subject,
            "sent",
            Some(format!("code {}", sent + 1)),
            at,
        )],
        outbox: vec![],
    };
    written(app.store.write(batch).await)?;
    r.record = record;
    // Sent after the commit: a code the store does not know would fail.
    if let Err(e) = app.mailer.send(code_mail(app, sealed.email, &code)).await {
        tracing::warn!(request = %id, code = e.code(), "the verification code could not be sent");
        return Err(AppError::MailUnavailable(e.code()));
    }
    view(app, r, now).await
}

/// Expires the requests received before `now - older_than` that still await
/// verification; returns how many. Safe on several nodes at once: each
/// update names the version it read, and a request another node moved
/// first is left to it.
pub async fn expire_unverified(
    app: &App,
    older_than: std::time::Duration,
    now: OffsetDateTime,
) -> Result<usize, AppError> {
    let at = micros(now);
    let cutoff = at.saturating_sub(i64::try_from(older_than.as_micros()).unwrap_or(i64::MAX));
    let mut expired = 0;
    // A request is received and moved on in one transaction, so only those
    // awaiting verification can be waiting.
    let waiting = RequestState::AwaitingVerification.as_str();
    let mut after = None;
    loop {
        let page = app
            .store
            .requests(&RequestFilter {
                state: Some(waiting.into()),
                after,
                limit: EXPIRY_BATCH,
                ..RequestFilter::default()
            })
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        let full = i64::try_from(page.len()).unwrap_or(0) >= EXPIRY_BATCH;
        for record in page {
            if record.received_at > cutoff {
                continue;
            }
            let mut r = Request::from_record(record)?;
            let expected = r.record.version;
            r.meta.code = None;
            advance(&mut r, RequestEvent::Expire)?;
            let batch = Batch {
                ops: vec![WriteOp::Request(RequestOp::Update {
                    record: r.to_record(at)?,
                    expected_version: expected,
                })],
                audit: vec![entry(
                    "system",
                    AuditAction::RequestExpire,
                    r.record.subject,
                    "expired",
                    Some("not verified in time".into()),
                    at,
                )],
                outbox: vec![request_event(&r, at)],
            };
            match app.store.write(batch).await {
                Ok(Ok(_)) => expired += 1,
                // Verified (or expired) elsewhere in the meantime.
                Ok(Err(BatchError::RequestChanged)) => {}
                other => {
                    written(other)?;
                }
            }
        }
        if !full {
            break;
        }
    }
    Ok(expired)
}
