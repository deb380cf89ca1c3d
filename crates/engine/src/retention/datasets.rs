//! Where the sweep meets the organisation's other databases.
//!
//! A table (or Redis hash key pattern) of a declared dataset may carry a
//! retention: one of the policy's rules and the column its clock runs from
//! (`custodian_policy::datasets_retention`). For each dataset and rule this
//! module works out the cut-off (rows whose clock is older are due) and
//! whether a legal hold on the dataset stops the sweep, and hands the work
//! to the dataset's [`DatasetSweeper`] (the connectors crate), which erases
//! by the declared field strategies in set-based, bounded statements.

use super::super::error::written;
use super::sweep::{SweepSettings, SweepSummary};
use crate::audit_action::AuditAction;
use crate::datasets::{BoxFuture, ConnectorError};
use crate::{App, AppError};
use custodian_policy::datasets_retention::{cutoff, expiring};
use custodian_policy::model::Policy;
use custodian_vault::audit::AuditDraft;
use custodian_vault::store::retention::LegalHold;
use custodian_vault::store::retention::RetentionOp;
use custodian_vault::store::{Batch, WriteOp, now_micros};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The parts (tables, key patterns) of one dataset swept under one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredDataset {
    pub name: String,
    /// The retention rule's id.
    pub rule: String,
    /// The tables or key patterns that name the rule, in declaration order.
    pub parts: Vec<String>,
}

/// Every dataset and rule of the policy, in declaration order.
pub fn declared(policy: &Policy) -> Vec<DeclaredDataset> {
    let mut out: Vec<DeclaredDataset> = Vec::new();
    for d in &policy.datasets {
        for e in expiring(d) {
            let rule = e.expire.rule.as_str();
            match out.iter_mut().find(|x| x.name == *d.id && x.rule == rule) {
                Some(x) => x.parts.push(e.part.to_string()),
                None => out.push(DeclaredDataset {
                    name: d.id.to_string(),
                    rule: rule.to_string(),
                    parts: vec![e.part.to_string()],
                }),
            }
        }
    }
    out
}

/// What the sweep asks of one dataset under one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetDue {
    pub dataset: String,
    pub rule: String,
    pub parts: Vec<String>,
    /// Rows whose clock is before this moment (unix microseconds) are due.
    pub cutoff: i64,
    /// A legal hold on the dataset: sweep nothing.
    pub held_by: Option<uuid::Uuid>,
}

/// The work for each declared dataset at `now`. A rule whose period cannot
/// be computed (validation refuses those) is left out rather than guessed.
pub fn datasets_due(policy: &Policy, holds: &[LegalHold], now: i64) -> Vec<DatasetDue> {
    declared(policy)
        .into_iter()
        .filter_map(|d| {
            let rule = policy.retention.iter().find(|r| r.id.as_str() == d.rule)?;
            Some(DatasetDue {
                cutoff: cutoff(rule, now)?,
                held_by: holds
                    .iter()
                    .find(|h| h.scope == "dataset" && h.target == d.name && h.is_active(now))
                    .map(|h| h.id),
                dataset: d.name,
                rule: d.rule,
                parts: d.parts,
            })
        })
        .collect()
}

/// What a connector implements to be swept: erase (or anonymise, as its
/// declaration says) the rows of `due.parts` whose clock is older than
/// `due.cutoff`, in set-based statements of at most `batch` rows, and say
/// how many per part. With `dry_run`, count only. Running it again changes
/// nothing more.
pub trait DatasetSweeper: Send + Sync {
    fn sweep<'a>(
        &'a self,
        due: &'a DatasetDue,
        batch: u64,
        dry_run: bool,
    ) -> BoxFuture<'a, Result<Vec<(String, u64)>, ConnectorError>>;
}

/// The connected sweepers, by dataset id.
pub type Sweepers = BTreeMap<String, Arc<dyn DatasetSweeper>>;

/// What the sweep did to one dataset under one rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DatasetSwept {
    pub dataset: String,
    pub rule: String,
    /// Rows whose clock is before this moment were due (RFC 3339).
    pub cutoff: String,
    /// The legal hold that stopped the sweep of this dataset.
    pub held_by: Option<uuid::Uuid>,
    /// Rows (or keys) erased, or, dry, due, per table (or key pattern).
    pub changed: Vec<PartSwept>,
    pub total: u64,
    /// Why this dataset was not swept (not connected, the system failed);
    /// never a value or a URL.
    pub error: Option<String>,
}

/// A dataset's retention, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DatasetRetention {
    pub dataset: String,
    pub rule: String,
    /// The tables or key patterns the rule applies to.
    pub parts: Vec<String>,
    /// Rows whose clock is before this moment are due now (RFC 3339).
    pub cutoff: String,
    /// The legal hold that keeps the dataset from the sweep.
    pub held_by: Option<uuid::Uuid>,
    /// Whether this node can reach it (its connection is set).
    pub connected: bool,
}

/// Every dataset's retention at `at`, for the report.
pub fn report(app: &App, holds: &[LegalHold], at: i64) -> Vec<DatasetRetention> {
    datasets_due(&app.policy.document, holds, at)
        .into_iter()
        .map(|d| DatasetRetention {
            connected: app.sweepers.contains_key(&d.dataset),
            cutoff: crate::read::rfc3339(d.cutoff),
            dataset: d.dataset,
            rule: d.rule,
            parts: d.parts,
            held_by: d.held_by,
        })
        .collect()
}

/// Rows (or keys) of one table (or key pattern).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PartSwept {
    pub part: String,
    pub rows: u64,
}

/// Sweeps every declared dataset after the vault, within the sweep's
/// lease (`owner`; none for a dry run): one audit entry per dataset and
/// rule, with the counts and never a value, written with a renewal of the
/// lease so that a sweep that lost it stops. A dataset that fails is
/// recorded and the others go on; the caller reports the failures.
pub(crate) async fn sweep_all(
    app: &App,
    actor: &str,
    settings: &SweepSettings,
    owner: Option<&str>,
    at: i64,
    summary: &mut SweepSummary,
    progress: &mut (dyn FnMut(&SweepSummary) + Send),
) -> Result<(), AppError> {
    let holds = super::holds::active_holds(app, at).await?;
    for due in datasets_due(&app.policy.document, &holds, at) {
        let mut swept = DatasetSwept {
            dataset: due.dataset.clone(),
            rule: due.rule.clone(),
            cutoff: crate::read::rfc3339(due.cutoff),
            held_by: due.held_by,
            ..DatasetSwept::default()
        };
        let decision = if due.held_by.is_some() {
            "held"
        } else if let Some(sweeper) = app.sweepers.get(&due.dataset) {
            match sweeper
                .sweep(&due, settings.dataset_batch, settings.dry_run)
                .await
            {
                Ok(changed) => {
                    swept.total = changed.iter().map(|(_, n)| n).sum();
                    swept.changed = changed
                        .into_iter()
                        .map(|(part, rows)| PartSwept { part, rows })
                        .collect();
                    "erased"
                }
                Err(e) => {
                    swept.error = Some(e.detail);
                    "failed"
                }
            }
        } else {
            swept.error = Some("the dataset is not connected".into());
            "failed"
        };
        if let Some(owner) = owner {
            let counts: Vec<String> = swept
                .changed
                .iter()
                .map(|p| format!("{}={}", p.part, p.rows))
                .collect();
            let reason = match (&swept.held_by, &swept.error) {
                (Some(h), _) => format!("rule={} held by {h}", swept.rule),
                (None, Some(e)) => format!("rule={} {e}", swept.rule),
                (None, None) => format!(
                    "rule={} cutoff={} erased={} {}",
                    swept.rule,
                    swept.cutoff,
                    swept.total,
                    counts.join(" ")
                ),
            };
            // The scheduled sweep leaves a run that found nothing out of
            // the audit, as it does for the vault.
            let idle = swept.total == 0 && swept.held_by.is_none() && swept.error.is_none();
            let audit = if idle && !settings.audit_idle {
                Vec::new()
            } else {
                vec![AuditDraft {
                    at,
                    actor: actor.to_string(),
                    action: AuditAction::RetentionDataset.into(),
                    purpose: None,
                    subject: None,
                    decision: decision.into(),
                    reason: Some(format!("dataset={} {reason}", swept.dataset)),
                }]
            };
            let batch = Batch {
                ops: vec![WriteOp::Retention(RetentionOp::RenewSweep {
                    owner: owner.to_string(),
                    now: now_micros(),
                    lease_until: super::sweep::lease_until(settings),
                })],
                audit,
                outbox: Vec::new(),
            };
            written(app.store.write(batch).await)?;
        }
        summary.datasets.push(swept);
        progress(summary);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOP: &str = r#"
[[datasets]]
id = "shop"
system = "postgres"
connection = "shop"

[[datasets.tables]]
name = "baskets"
expire = { rule = "visit-13m", from = "created_at" }
fields = [
  { name = "items", category = "orders", erase = "delete-row" },
  { name = "created_at", category = "orders" },
]

[[datasets.tables]]
name = "visits"
expire = { rule = "visit-13m", from = "at" }
fields = [
  { name = "page", category = "visit", erase = "delete-row" },
  { name = "at", category = "visit" },
]
"#;

    #[test]
    fn a_dataset_hold_stops_its_sweep_and_the_cutoff_is_the_period_back() {
        let text = format!("{}{SHOP}", custodian_policy::REFERENCE_POLICY);
        let policy = custodian_policy::load("p.toml", &text).unwrap().document;
        // 2026-12-01T00:00:00Z; thirteen months back is 2025-11-01.
        let now = 1_796_083_200_000_000;
        let due = datasets_due(&policy, &[], now);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].parts, vec!["baskets", "visits"]);
        assert_eq!(due[0].cutoff, 1_761_955_200_000_000);
        assert_eq!(due[0].held_by, None);
        let hold = LegalHold {
            id: uuid::Uuid::from_u128(1),
            scope: "dataset".into(),
            target: "shop".into(),
            reason: "claim".into(),
            set_by: "key:x".into(),
            set_at: 0,
            ends_at: None,
            released_at: None,
            released_by: None,
        };
        assert_eq!(
            datasets_due(&policy, &[hold], now)[0].held_by,
            Some(uuid::Uuid::from_u128(1))
        );
    }
}
