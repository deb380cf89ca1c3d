//! The sweep: erases the data whose retention ended, in bounded batches.
//!
//! It reads only the index rows due (a range of the `due_at` index), so its
//! cost follows what is due, not what is held. Each batch commits its
//! erasures, their audit entries (one per datum, naming the rule) and the
//! subjects' new index rows together, with a renewal of the sweep's lease:
//! a sweep interrupted anywhere leaves every batch either done or not, and
//! the next run picks up what is still due. The lease (one row) keeps two
//! sweeps from running at once, on one node or several sharing PostgreSQL;
//! a sweep that lost it has its batch undone. A subject left with nothing is
//! crypto-shredded.

use super::super::error::written;
use super::{Keeper, assess, holds};
use crate::audit_action::AuditAction;
use crate::collect::micros;
use crate::{App, AppError, Operation, Principal};
use custodian_vault::audit::AuditDraft;
use custodian_vault::crypto::new_id;
use custodian_vault::store::retention::RetentionOp;
use custodian_vault::store::{Batch, WriteOp, now_micros};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use time::OffsetDateTime;

/// How a sweep runs.
#[derive(Debug, Clone)]
pub struct SweepSettings {
    /// Subjects per batch (one transaction each).
    pub batch: i64,
    /// How long the sweep's lease lasts without renewal: how soon another
    /// node may sweep after this one died.
    pub lease: Duration,
    /// Stop after this many batches (the rest is left for the next run).
    pub max_batches: Option<u64>,
    /// Work out what would be erased, and erase nothing.
    pub dry_run: bool,
    /// Audit the run only when it erased or kept something (the scheduled
    /// sweep: an idle run every hour would fill the audit with nothing).
    pub audit_idle: bool,
    /// Rows per statement when a declared dataset is swept.
    pub dataset_batch: u64,
}

impl Default for SweepSettings {
    fn default() -> Self {
        SweepSettings {
            batch: 500,
            lease: Duration::from_secs(60),
            max_batches: None,
            dry_run: false,
            audit_idle: true,
            dataset_batch: 1000,
        }
    }
}

/// Options a caller of the API may give.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct SweepQuery {
    /// Work out what would be erased, and erase nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// What a sweep did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SweepSummary {
    pub dry_run: bool,
    pub batches: u64,
    /// Subjects whose index row was due (data due, or expiries to compute).
    pub subjects_examined: u64,
    /// Data erased (or, dry, that would be).
    pub data_erased: u64,
    /// Subjects left with nothing, crypto-shredded.
    pub subjects_shredded: u64,
    /// Data due but kept by a legal hold or a restriction.
    pub data_held: u64,
    /// Data erased per rule.
    pub by_rule: BTreeMap<String, u64>,
    /// False when it stopped at `max_batches` with more due.
    pub finished: bool,
    /// The declared datasets swept after the vault, per dataset and rule.
    pub datasets: Vec<super::datasets::DatasetSwept>,
}

/// Runs the sweep for an API caller.
pub async fn run(
    app: &App,
    principal: &Principal,
    query: SweepQuery,
    now: OffsetDateTime,
) -> Result<SweepSummary, AppError> {
    app.authorize(principal, Operation::RetentionRun, now)
        .await?;
    let settings = SweepSettings {
        dry_run: query.dry_run,
        ..SweepSettings::default()
    };
    run_as(app, &principal.actor(), &settings, now, &mut |_| {}).await
}

/// Records the retention of the policy this node runs with; a change
/// since the expiries were computed makes the next sweep compute them all
/// again (a shorter retention then erases what it makes due).
pub async fn note_policy(app: &App) -> Result<(), AppError> {
    let batch = Batch {
        ops: vec![WriteOp::Retention(RetentionOp::PolicyRetention {
            fingerprint: custodian_policy::retention::fingerprint(&app.policy.document),
        })],
        audit: Vec::new(),
        outbox: Vec::new(),
    };
    written(app.store.write(batch).await).map(|_| ())
}

pub(crate) fn lease_until(settings: &SweepSettings) -> i64 {
    let lease = i64::try_from(settings.lease.as_micros()).unwrap_or(i64::MAX);
    now_micros().saturating_add(lease)
}

/// Runs the sweep as `actor` at `now` (the clock retention is judged by),
/// calling `progress` after each batch.
pub async fn run_as(
    app: &App,
    actor: &str,
    settings: &SweepSettings,
    now: OffsetDateTime,
    progress: &mut (dyn FnMut(&SweepSummary) + Send),
) -> Result<SweepSummary, AppError> {
    let at = micros(now);
    let owner = format!("{}/{}", app.node, new_id());
    let mut summary = SweepSummary {
        dry_run: settings.dry_run,
        ..SweepSummary::default()
    };
    if !settings.dry_run {
        let claim = Batch {
            ops: vec![
                WriteOp::Retention(RetentionOp::ClaimSweep {
                    owner: owner.clone(),
                    now: now_micros(),
                    lease_until: lease_until(settings),
                }),
                WriteOp::Retention(RetentionOp::PolicyRetention {
                    fingerprint: custodian_policy::retention::fingerprint(&app.policy.document),
                }),
            ],
            audit: Vec::new(),
            outbox: Vec::new(),
        };
        written(app.store.write(claim).await)?;
    }
    let mut result = sweep_batches(app, actor, settings, &owner, at, &mut summary, progress).await;
    // The organisation's own datasets next, under the same lease; a sweep
    // stopped at `max_batches` leaves them for the run that finishes.
    if result.is_ok() && summary.finished {
        let lease = (!settings.dry_run).then_some(owner.as_str());
        result =
            super::datasets::sweep_all(app, actor, settings, lease, at, &mut summary, progress)
                .await;
    }
    if !settings.dry_run {
        // The lease is given back whatever happened; a sweep that lost it
        // gives back nothing (EndSweep checks the owner).
        let idle = summary.data_erased == 0 && summary.data_held == 0 && result.is_ok();
        let mut end = Batch {
            ops: vec![WriteOp::Retention(RetentionOp::EndSweep {
                owner: owner.clone(),
                at: now_micros(),
            })],
            audit: vec![AuditDraft {
                at,
                actor: actor.to_string(),
                action: AuditAction::RetentionSweep.into(),
                purpose: None,
                subject: None,
                decision: if result.is_ok() { "done" } else { "failed" }.into(),
                reason: Some(format!(
                    "erased={} shredded={} held={} batches={} finished={}",
                    summary.data_erased,
                    summary.subjects_shredded,
                    summary.data_held,
                    summary.batches,
                    summary.finished
                )),
            }],
            outbox: Vec::new(),
        };
        if idle && !settings.audit_idle {
            end.audit.clear();
        }
        let ended = written(app.store.write(end).await);
        result?;
        ended?;
    } else {
        result?;
    }
    Ok(summary)
}

async fn sweep_batches(
    app: &App,
    actor: &str,
    settings: &SweepSettings,
    owner: &str,
    at: i64,
    summary: &mut SweepSummary,
    progress: &mut (dyn FnMut(&SweepSummary) + Send),
) -> Result<(), AppError> {
    let holds = holds::active_holds(app, at).await?;
    let retention = app.retention();
    let mut after = None;
    loop {
        if settings.max_batches.is_some_and(|m| summary.batches >= m) {
            return Ok(());
        }
        let page = app.store.due_page(at, after, settings.batch).await?;
        let Some(last) = page.last() else {
            summary.finished = true;
            return Ok(());
        };
        after = Some((last.due_at.unwrap_or(at), last.subject));
        let mut ops = Vec::with_capacity(page.len() * 2 + 1);
        let mut audit = Vec::new();
        for row in &page {
            summary.subjects_examined += 1;
            let Some(record) = app.store.subject(row.subject).await? else {
                // A row whose subject is gone goes too.
                ops.push(WriteOp::Retention(RetentionOp::DropData {
                    subject: row.subject,
                    fields: Vec::new(),
                    shred: true,
                    at,
                }));
                continue;
            };
            let assessed = assess(retention, &record, &holds, at);
            summary.data_held += assessed
                .data
                .iter()
                .filter(|d| d.due && d.held_by.is_some())
                .count() as u64;
            let removable: Vec<_> = assessed.removable().collect();
            for d in &removable {
                summary.data_erased += 1;
                *summary.by_rule.entry(d.expiry.rule.clone()).or_default() += 1;
                audit.push(AuditDraft {
                    at,
                    actor: actor.to_string(),
                    action: AuditAction::RetentionErase.into(),
                    purpose: d.expiry.purpose.clone(),
                    subject: Some(record.id),
                    decision: "erased".into(),
                    reason: Some(format!(
                        "rule={} field={} expired={}",
                        d.expiry.rule,
                        d.expiry.field,
                        d.expiry
                            .expires_at
                            .map_or_else(String::new, crate::read::rfc3339)
                    )),
                });
            }
            let fields: Vec<String> = removable.iter().map(|d| d.expiry.field.clone()).collect();
            if assessed.leaves_nothing() {
                if record.wrapped_key.is_some() {
                    summary.subjects_shredded += 1;
                    audit.push(AuditDraft {
                        at,
                        actor: actor.to_string(),
                        action: AuditAction::RetentionShred.into(),
                        purpose: None,
                        subject: Some(record.id),
                        decision: "erased".into(),
                        reason: Some("no data left; data key destroyed".into()),
                    });
                }
                ops.push(WriteOp::Retention(RetentionOp::DropData {
                    subject: record.id,
                    fields,
                    shred: true,
                    at,
                }));
                continue;
            }
            if !fields.is_empty() {
                ops.push(WriteOp::Retention(RetentionOp::DropData {
                    subject: record.id,
                    fields,
                    shred: false,
                    at,
                }));
            }
            ops.push(WriteOp::Retention(RetentionOp::PutExpiry(assessed.row)));
        }
        summary.batches += 1;
        if !settings.dry_run {
            ops.insert(
                0,
                WriteOp::Retention(RetentionOp::RenewSweep {
                    owner: owner.to_string(),
                    now: now_micros(),
                    lease_until: lease_until(settings),
                }),
            );
            let batch = Batch {
                ops,
                audit,
                outbox: Vec::new(),
            };
            written(app.store.write(batch).await)?;
        }
        progress(summary);
    }
}

/// The sweep on a schedule, inside the server: every `every`, until `stop`.
/// Another node's sweep (the lease is taken) is not an error; a stop while
/// a sweep runs drops it between or inside a batch, which is safe (each
/// batch commits whole or not at all) and leaves its lease to run out.
pub async fn scheduled(app: App, every: Duration, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    let settings = SweepSettings {
        audit_idle: false,
        ..SweepSettings::default()
    };
    loop {
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(every) => {}
        }
        let mut quiet = |_: &SweepSummary| {};
        let run = run_as(
            &app,
            "retention-sweep",
            &settings,
            OffsetDateTime::now_utc(),
            &mut quiet,
        );
        tokio::select! {
            () = &mut stop => return,
            done = run => match done {
                Ok(s) if s.data_erased > 0 || s.data_held > 0 || !s.datasets.is_empty() => {
                    for d in &s.datasets {
                        match &d.error {
                            Some(why) => tracing::warn!(
                                dataset = %d.dataset,
                                rule = %d.rule,
                                "the retention sweep of a dataset failed: {why}"
                            ),
                            None if d.total > 0 => tracing::info!(
                                dataset = %d.dataset,
                                rule = %d.rule,
                                rows = d.total,
                                "retention sweep of a dataset"
                            ),
                            None => {}
                        }
                    }
                    if s.data_erased > 0 || s.data_held > 0 {
                        tracing::info!(
                    erased = s.data_erased,
                    shredded = s.subjects_shredded,
                    held = s.data_held,
                    "retention sweep"
                        );
                    }
                }
                Ok(_) => {}
                Err(AppError::SweepBusy) => tracing::debug!("another node is sweeping"),
                Err(e) => tracing::warn!(code = e.code(), "the retention sweep failed"),
            },
        }
    }
}

/// Whether a datum the sweep found due is kept, in words for the report.
pub fn kept_because(keeper: &Keeper) -> String {
    match keeper {
        Keeper::Hold(h) => format!("legal hold {}: {}", h.id, h.reason),
        Keeper::Restriction => "processing is restricted (Art. 18): stored only".into(),
    }
}
