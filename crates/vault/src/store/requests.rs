//! What the register of data-subject requests stores: requests, their
//! reports, verified sessions, and the durable tasks that carry them out;
//! and the two operations on a subject that only requests perform (erasure
//! and restriction). Both backends apply these in `sqlite/requests.rs` and
//! `postgres/requests.rs`.

use super::types::{Micros, StoredField};
use crate::crypto::WrappedKey;
use uuid::Uuid;

/// A request as stored. Personal data (the contact address, values to
/// rectify) is in `sealed`, under the request's own data key; `meta` is the
/// engine's JSON of everything else (clock, verification, outcome).
#[derive(Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub id: Uuid,
    pub kind: String,
    pub state: String,
    /// Raised by every update; an update names the version it read.
    pub version: i64,
    pub subject: Option<Uuid>,
    pub contact_hash: Option<[u8; 32]>,
    pub received_at: Micros,
    /// The statutory due date (YYYY-MM-DD) once the clock runs.
    pub due: Option<String>,
    pub updated_at: Micros,
    /// None once the request's personal data is shredded.
    pub wrapped_key: Option<WrappedKey>,
    pub sealed: Vec<u8>,
    pub meta: String,
}

impl std::fmt::Debug for RequestRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestRecord")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("state", &self.state)
            .field("version", &self.version)
            .field("subject", &self.subject)
            .field("due", &self.due)
            .finish_non_exhaustive()
    }
}

/// One request's work in one system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRecord {
    pub id: i64,
    pub request: Uuid,
    pub system: String,
    /// pending, done or failed.
    pub state: String,
    /// Claims so far (a claim that dies unfinished counts).
    pub attempts: i64,
    pub run_after: Micros,
    pub lease_owner: Option<String>,
    pub lease_until: Option<Micros>,
    pub last_error: Option<String>,
}

/// How a claimed task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskOutcome {
    Done,
    /// A transient failure: tried again after `run_after`.
    Retry {
        run_after: Micros,
        error: String,
    },
    /// Given up: shown with its reason.
    Failed {
        error: String,
    },
}

/// Data an erasure keeps on an Art. 17(3) ground: re-sealed under a fresh
/// data key, so that destroying the old key shreds everything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptData {
    pub wrapped_key: WrappedKey,
    pub fields: Vec<StoredField>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestOp {
    Create(RequestRecord),
    /// Replaces the request if it is still at `expected_version` (else
    /// `BatchError::RequestChanged`); `record.version` is the new version.
    Update {
        record: RequestRecord,
        expected_version: i64,
    },
    PutReport {
        request: Uuid,
        format: String,
        sealed: Vec<u8>,
    },
    PutSession {
        hash: [u8; 32],
        contact_hash: [u8; 32],
        expires_at: Micros,
    },
    CreateTask {
        request: Uuid,
        system: String,
        run_after: Micros,
    },
    /// Leases up to `limit` pending tasks due at `now` whose lease (if any)
    /// has ended; they come back in `Committed::claimed`.
    ClaimTasks {
        owner: String,
        now: Micros,
        lease_until: Micros,
        limit: i64,
    },
    /// Ends a task, only if `owner` still holds its lease (else
    /// `BatchError::LeaseLost`, and the batch's other effects are undone).
    FinishTask {
        id: i64,
        owner: String,
        outcome: TaskOutcome,
    },
    /// Erasure: the data key is destroyed (or replaced, with `keep`), the
    /// fields, their history, the lookups and the plaintext references of
    /// relationships go, and `suppress` addresses (kind, keyed hash) go onto
    /// the suppression list. Erasing an erased subject changes nothing.
    EraseSubject {
        subject: Uuid,
        at: Micros,
        kek_id: u32,
        keep: Option<KeptData>,
        suppress: Vec<(String, [u8; 32])>,
    },
    SetRestricted {
        subject: Uuid,
        restricted: bool,
    },
    /// Staff retry a request's failed tasks: each goes back to pending, due
    /// at `run_after`, with its attempts counted afresh and its last error
    /// kept for display until it runs again.
    RetryFailedTasks {
        request: Uuid,
        run_after: Micros,
    },
}

/// Which requests a list wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFilter {
    pub state: Option<String>,
    pub kind: Option<String>,
    /// Due on or before this date (YYYY-MM-DD).
    pub due_by: Option<String>,
    pub contact_hash: Option<[u8; 32]>,
    /// Requests after this id, for paging.
    pub after: Option<Uuid>,
    pub limit: i64,
}

/// A disclosure recorded in the audit (for access reports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisclosureEntry {
    pub at: Micros,
    pub recipient: String,
    pub purpose: Option<String>,
    pub decision: String,
}
