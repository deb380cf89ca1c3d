//! Carrying out access, portability and erasure in the organisation's own
//! systems (the policy's datasets), one task per dataset (rectification and
//! restriction: `systems_rights.rs`). The person is found by the
//! identities the vault holds, those the vault's erasure left with the
//! request, and the address the request came from.

use super::stored::{self, Kept, Outcome, Request, SystemOutcome};
use super::work::Effects;
use crate::audit_action::AuditAction;
use crate::datasets::{ConnectorError, ExportItem, Identities};
use crate::error::{Internal, written};
use crate::{App, AppError};
use custodian_policy::requests::RequestKind;
use custodian_policy::terms::FieldType;
use custodian_vault::audit::AuditDraft;
use custodian_vault::crypto::DataKey;
use custodian_vault::store::requests::RequestOp;
use custodian_vault::store::{Batch, SubjectRecord, WriteOp};
use std::collections::BTreeSet;
use tokio::sync::mpsc;
use uuid::Uuid;

/// A report part is sealed and stored once its rows pass this size, so an
/// export of any length holds about this much in memory.
const PART_BYTES: usize = 1 << 20;

/// The kinds of request that reach the datasets.
pub fn reaches_datasets(kind: RequestKind) -> bool {
    matches!(
        kind,
        RequestKind::Access
            | RequestKind::Erasure
            | RequestKind::Portability
            | RequestKind::Rectification
            | RequestKind::Restriction
            | RequestKind::LiftRestriction
    )
}

/// The report format of part `n` of a dataset's export.
pub fn part_format(dataset: &str, n: u32) -> String {
    format!("dataset:{dataset}:{n}")
}

/// The vault fields the datasets identify people by.
pub fn identity_names(app: &App) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for d in &app.policy.document.datasets {
        for t in &d.tables {
            names.extend(
                t.fields
                    .iter()
                    .filter_map(|f| f.identity.as_deref().cloned()),
            );
        }
        for k in &d.keys {
            names.extend(
                custodian_policy::datasets::placeholders(&k.pattern)
                    .into_iter()
                    .map(String::from),
            );
        }
        for r in &d.resources {
            names.insert(r.identity.to_string());
        }
    }
    names
}

/// The identities a live subject's fields give.
pub fn of_subject(app: &App, s: &SubjectRecord) -> Result<Identities, AppError> {
    let names = identity_names(app);
    let mut out = Identities::new();
    if names.is_empty() || s.erased_at.is_some() {
        return Ok(out);
    }
    let Some(wrapped) = &s.wrapped_key else {
        return Ok(out);
    };
    let key = app.data_key(&s.id, wrapped)?;
    for f in s.fields.iter().filter(|f| names.contains(&f.name)) {
        let plain = key
            .open(&s.id, &f.name, &f.sealed)
            .map_err(|_| AppError::Internal(Internal::DecryptFailed))?;
        let text =
            String::from_utf8(plain).map_err(|_| AppError::Internal(Internal::DecryptFailed))?;
        out.entry(f.name.clone()).or_default().insert(text);
    }
    Ok(out)
}

/// Everything known to identify the person of `r`. The subject is read
/// before the request: a vault erasure that committed in between left its
/// identities in the request, read after.
async fn identities(app: &App, r: &Request) -> Result<Identities, AppError> {
    let mut out = match r.record.subject {
        Some(id) => match app.store.subject(id).await? {
            Some(s) => of_subject(app, &s)?,
            None => Identities::new(),
        },
        None => Identities::new(),
    };
    let record = app
        .store
        .request(r.record.id)
        .await?
        .ok_or_else(|| AppError::NotFound("the task's request is gone".into()))?;
    let sealed = stored::open(app, &record)?;
    for (name, values) in sealed.identities {
        out.entry(name).or_default().extend(values);
    }
    let wanted = identity_names(app);
    for field in app
        .policy
        .compiled
        .fields
        .iter()
        .filter(|f| f.kind == FieldType::Email && wanted.contains(&f.name))
    {
        out.entry(field.name.clone())
            .or_default()
            .insert(sealed.email.clone());
    }
    Ok(out)
}

pub(super) fn connector_error(dataset: &str, e: ConnectorError) -> AppError {
    AppError::Connector {
        dataset: dataset.to_string(),
        transient: e.transient,
        detail: e.detail,
    }
}

pub(super) fn audit(
    dataset: &str,
    action: AuditAction,
    r: &Request,
    reason: String,
    at: i64,
) -> AuditDraft {
    AuditDraft {
        at,
        actor: format!("task:{dataset}"),
        action: action.into(),
        purpose: None,
        subject: r.record.subject,
        decision: "done".into(),
        reason: Some(format!("request={} {reason}", r.record.id)),
    }
}

/// Carries out `r` in dataset `id`.
pub async fn carry_out(app: &App, r: &Request, id: &str, at: i64) -> Result<Effects, AppError> {
    let declared = app
        .policy
        .document
        .datasets
        .iter()
        .find(|d| d.id.as_str() == id)
        .ok_or_else(|| AppError::Connector {
            dataset: id.to_string(),
            transient: false,
            detail: "the running policy no longer declares this dataset".into(),
        })?;
    let system = declared.system.as_str().to_string();
    let connector = app
        .datasets
        .get(id)
        .cloned()
        .ok_or_else(|| AppError::Connector {
            dataset: id.to_string(),
            transient: false,
            detail: format!(
                "no connection is configured for `{}` (set CUSTODIAN_CONNECTION_{})",
                declared.connection.as_str(),
                declared.connection.to_ascii_uppercase().replace('-', "_")
            ),
        })?;
    let who = identities(app, r).await?;
    match r.kind {
        RequestKind::Access | RequestKind::Portability => {
            let key = stored::request_key(app, &r.record)?;
            let (tx, rx) = mpsc::channel(256);
            let (rows, parts) = if r.kind == RequestKind::Portability {
                // Art. 20 carries what the person provided: the columns of
                // the categories it covers, filtered on the way.
                let (ptx, prx) = mpsc::channel(256);
                let (exported, kept, parts) = tokio::join!(
                    connector.export(&who, tx),
                    super::systems_rights::portable(app, rx, ptx),
                    store_parts(app, &key, r.record.id, id, prx)
                );
                exported.map_err(|e| connector_error(id, e))?;
                (kept, parts?)
            } else {
                let (exported, parts) = tokio::join!(
                    connector.export(&who, tx),
                    store_parts(app, &key, r.record.id, id, rx)
                );
                (exported.map_err(|e| connector_error(id, e))?, parts?)
            };
            let action = if r.kind == RequestKind::Portability {
                AuditAction::DatasetPortability
            } else {
                AuditAction::DatasetExport
            };
            Ok(Effects {
                audit: vec![audit(id, action, r, format!("rows={rows}"), at)],
                outcome: Outcome {
                    found: rows > 0,
                    systems: vec![SystemOutcome {
                        dataset: id.to_string(),
                        system,
                        rows,
                        parts,
                        changed: Vec::new(),
                    }],
                    ..Outcome::default()
                },
                ..Effects::default()
            })
        }
        RequestKind::Erasure => {
            let erased = connector
                .erase(&who)
                .await
                .map_err(|e| connector_error(id, e))?;
            let rows: u64 = erased.changed.iter().map(|(_, n)| n).sum();
            Ok(Effects {
                audit: vec![audit(
                    id,
                    AuditAction::DatasetErase,
                    r,
                    format!("rows={rows}"),
                    at,
                )],
                outcome: Outcome {
                    found: rows > 0,
                    kept: erased
                        .kept
                        .into_iter()
                        .map(|k| Kept {
                            field: format!("{id}.{}", k.field),
                            purpose: k.purpose,
                            ground: k.ground,
                        })
                        .collect(),
                    systems: vec![SystemOutcome {
                        dataset: id.to_string(),
                        system,
                        rows,
                        parts: 0,
                        changed: erased
                            .changed
                            .into_iter()
                            .map(|(table, rows)| stored::Changed { table, rows })
                            .collect(),
                    }],
                    ..Outcome::default()
                },
                ..Effects::default()
            })
        }
        RequestKind::Rectification | RequestKind::Restriction | RequestKind::LiftRestriction => {
            super::systems_rights::carry_out(app, r, id, &system, connector.as_ref(), who, at).await
        }
        _ => Ok(Effects::default()),
    }
}

/// Writes the export as it arrives, in sealed parts of about
/// [`PART_BYTES`], each in a batch of its own; returns the number of parts.
/// A part is a JSON array of `{table, columns, rows}` segments.
pub(super) async fn store_parts(
    app: &App,
    key: &DataKey,
    request: Uuid,
    dataset: &str,
    mut rx: mpsc::Receiver<ExportItem>,
) -> Result<u32, AppError> {
    let mut parts = 0u32;
    let mut buffer = String::new();
    // The current table's header, repeated at the start of each part.
    let mut header: Option<String> = None;
    let mut in_segment = false;
    let mut first_row = true;
    let mut failed = None;
    while let Some(item) = rx.recv().await {
        if failed.is_some() {
            // Keep draining so the connector is not blocked; report after.
            continue;
        }
        match item {
            ExportItem::Table { table, columns } => {
                if in_segment {
                    buffer.push_str("]}");
                }
                let cols: Vec<serde_json::Value> = columns
                    .iter()
                    .map(|(f, c)| serde_json::json!({"field": f, "category": c}))
                    .collect();
                let text = serde_json::json!({"table": table, "columns": cols}).to_string();
                // `{"table":...,"columns":[...]` without the closing brace.
                let open = text.get(..text.len().saturating_sub(1)).unwrap_or("");
                header = Some(format!("{open},\"rows\":["));
                buffer.push_str(if buffer.is_empty() { "[" } else { "," });
                buffer.push_str(header.as_deref().unwrap_or(""));
                in_segment = true;
                first_row = true;
            }
            ExportItem::Row(values) => {
                if !in_segment {
                    continue;
                }
                if !first_row {
                    buffer.push(',');
                }
                first_row = false;
                match serde_json::to_string(&values) {
                    Ok(row) => buffer.push_str(&row),
                    Err(_) => failed = Some(AppError::Internal(Internal::WriteFailed)),
                }
                if buffer.len() >= PART_BYTES {
                    buffer.push_str("]}]");
                    if let Err(e) = put_part(app, key, request, dataset, parts, &buffer).await {
                        failed = Some(e);
                    }
                    parts += 1;
                    buffer.clear();
                    buffer.push('[');
                    buffer.push_str(header.as_deref().unwrap_or(""));
                    first_row = true;
                }
            }
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    if in_segment {
        buffer.push_str("]}]");
        put_part(app, key, request, dataset, parts, &buffer).await?;
        parts += 1;
    }
    Ok(parts)
}

async fn put_part(
    app: &App,
    key: &DataKey,
    request: Uuid,
    dataset: &str,
    n: u32,
    text: &str,
) -> Result<(), AppError> {
    let format = part_format(dataset, n);
    let sealed = stored::seal_report(key, &request, &format, text.as_bytes());
    written(
        app.store
            .write(Batch {
                ops: vec![WriteOp::Request(RequestOp::PutReport {
                    request,
                    format,
                    sealed,
                })],
                audit: vec![],
                outbox: vec![],
            })
            .await,
    )
    .map(drop)
}
