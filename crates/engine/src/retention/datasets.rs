//! Where the sweep meets the organisation's other databases.
//!
//! The connectors (the connectors issue, built on another branch) declare
//! datasets (tables, key spaces) with a retention rule and the column its
//! clock runs from. This module is the hook they plug into: for each such
//! dataset it works out the cut-off (rows whose clock event is older are
//! due) and whether a legal hold on the dataset stops the sweep, and hands
//! the list to a [`DatasetSweeper`], which erases in set-based statements.
//! Nothing here calls a connector yet: no dataset is declared on this
//! branch, so the vault sweep runs alone.

use crate::AppError;
use custodian_policy::period::Period;
use custodian_policy::retention::sub_period;
use custodian_vault::store::retention::LegalHold;
use std::future::Future;
use std::pin::Pin;

/// A declared dataset that carries a retention rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredDataset {
    pub name: String,
    /// The retention rule's id.
    pub rule: String,
    pub period: Period,
}

/// What the sweep asks of one dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetDue {
    pub dataset: String,
    pub rule: String,
    /// Rows whose clock event is before this moment (unix microseconds) are due.
    pub cutoff: i64,
    /// A legal hold on the dataset: sweep nothing.
    pub held_by: Option<uuid::Uuid>,
}

/// The work for each declared dataset at `now`.
pub fn datasets_due(
    declared: &[DeclaredDataset],
    holds: &[LegalHold],
    now: i64,
) -> Vec<DatasetDue> {
    declared
        .iter()
        .filter_map(|d| {
            Some(DatasetDue {
                dataset: d.name.clone(),
                rule: d.rule.clone(),
                cutoff: sub_period(now, d.period)?,
                held_by: holds
                    .iter()
                    .find(|h| h.scope == "dataset" && h.target == d.name && h.is_active(now))
                    .map(|h| h.id),
            })
        })
        .collect()
}

/// What a connector implements to be swept: erase (or anonymise, as its
/// declaration says) the rows of `due.dataset` older than `due.cutoff`, in
/// set-based statements, and say how many. With `dry_run`, count only.
pub trait DatasetSweeper: Send + Sync {
    fn sweep<'a>(
        &'a self,
        due: &'a DatasetDue,
        dry_run: bool,
    ) -> Pin<Box<dyn Future<Output = Result<u64, AppError>> + Send + 'a>>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use custodian_policy::period::Unit;

    #[test]
    fn a_dataset_hold_stops_its_sweep_and_the_cutoff_is_the_period_back() {
        let now = 1_800_000_000_000_000;
        let declared = vec![DeclaredDataset {
            name: "orders".into(),
            rule: "accounting-6y".into(),
            period: Period {
                amount: 30,
                unit: Unit::Days,
            },
        }];
        let due = datasets_due(&declared, &[], now);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].cutoff, now - 30 * 86_400_000_000);
        assert_eq!(due[0].held_by, None);
        let hold = LegalHold {
            id: uuid::Uuid::from_u128(1),
            scope: "dataset".into(),
            target: "orders".into(),
            reason: "claim".into(),
            set_by: "key:x".into(),
            set_at: 0,
            ends_at: None,
            released_at: None,
            released_by: None,
        };
        assert_eq!(
            datasets_due(&declared, &[hold], now)[0].held_by,
            Some(uuid::Uuid::from_u128(1))
        );
    }
}
