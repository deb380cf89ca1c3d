//! What retention stores: each subject's data expiries, indexed by when the
//! next falls due; legal holds; reviews of the rules; the sweep's lease.
//! Both backends apply these in `sqlite/retention.rs` and
//! `postgres/retention.rs`. The store computes nothing: the engine works
//! the expiries out from the policy.

use super::types::Micros;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// When one datum expires, and what keeps it until then.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatumExpiry {
    pub field: String,
    /// `None`: the clock has not started (a relationship still runs).
    pub expires_at: Option<Micros>,
    /// The rule that keeps it longest; empty when no rule covers it.
    pub rule: String,
    /// The purpose whose rule it is; `None` for a category's own rule.
    pub purpose: Option<String>,
}

/// One subject's row of the retention index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryRow {
    pub subject: Uuid,
    /// When the sweep must look at the subject next: the earliest expiry
    /// not held, 0 when the expiries must be computed again, `None` when
    /// nothing will expire as things stand.
    pub due_at: Option<Micros>,
    /// The legal hold that keeps data which would otherwise be due.
    pub held_by: Option<Uuid>,
    pub data: Vec<DatumExpiry>,
}

/// A legal hold: while it lasts, what it covers is neither expired nor erased.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LegalHold {
    pub id: Uuid,
    /// `subject`, `category` or `dataset`.
    pub scope: String,
    /// The subject's id, the category's id or the dataset's name.
    pub target: String,
    pub reason: String,
    pub set_by: String,
    pub set_at: Micros,
    pub ends_at: Option<Micros>,
    pub released_at: Option<Micros>,
    pub released_by: Option<String>,
}

impl LegalHold {
    /// Whether the hold keeps what it covers at `now`.
    pub fn is_active(&self, now: Micros) -> bool {
        self.released_at.is_none() && self.ends_at.is_none_or(|end| now < end)
    }
}

/// A review of a retention rule recorded after the policy was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleReview {
    pub rule: String,
    pub reviewed_at: Micros,
    pub reviewed_by: String,
    pub note: Option<String>,
}

/// The sweep's lease as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepState {
    pub owner: Option<String>,
    pub lease_until: Option<Micros>,
    pub fingerprint: Option<String>,
    pub last_run_at: Option<Micros>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetentionOp {
    /// Replaces a subject's row.
    PutExpiry(ExpiryRow),
    /// Removes data whose retention ended: the fields, their history and
    /// their lookups. With `shred`, the subject is left with nothing: its
    /// data key is destroyed (crypto-shredding) and its row goes. A
    /// subject already shredded is left as it is; a row whose subject is
    /// gone is removed.
    DropData {
        subject: Uuid,
        fields: Vec<String>,
        shred: bool,
        at: Micros,
    },
    /// Takes the sweep's lease until `lease_until` if it is free (or ended,
    /// or already `owner`'s); else `BatchError::SweepBusy`.
    ClaimSweep {
        owner: String,
        now: Micros,
        lease_until: Micros,
    },
    /// Renews the lease; `BatchError::LeaseLost` (and the batch undone) if
    /// `owner` no longer holds it.
    RenewSweep {
        owner: String,
        now: Micros,
        lease_until: Micros,
    },
    /// Gives the lease back and records when the sweep finished.
    EndSweep {
        owner: String,
        at: Micros,
    },
    /// Records the fingerprint of the policy's retention; if it differs from
    /// the one recorded, every subject's expiries are computed again.
    PolicyRetention {
        fingerprint: String,
    },
    PutHold(LegalHold),
    /// Ends a hold; the expiries it kept are computed again. An unknown or
    /// released hold is `BatchError::HoldNotFound`.
    ReleaseHold {
        id: Uuid,
        at: Micros,
        by: String,
    },
    Reviewed(RuleReview),
}
