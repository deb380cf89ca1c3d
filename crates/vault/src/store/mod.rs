//! The store: one type over two backends, SQLite (embedded, the default) and
//! PostgreSQL (several stateless nodes on one database).
//!
//! Each subject is one row: its wrapped data key, its sealed fields with their
//! provenance, and its state (relationships, restriction). A read is one
//! primary-key lookup; a collection writes that row, its lookup rows, one
//! audit entry and one outbox event.
//!
//! Every write goes through a single writer per process that gathers the
//! batches of concurrent requests into one transaction (group commit): each
//! batch runs in its own savepoint, so one request's failure does not touch
//! another's, and every caller is answered only after the transaction commits.

/// Every migration, in order, named once for both backends: each has its
/// own SQL file per name under `migrations/<backend>/` (a backend without
/// the file does not compile). The store's schema version is their count.
macro_rules! migrations {
    ($backend:literal) => {
        &[
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/migrations/",
                $backend,
                "/0001_init.sql"
            )),
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/migrations/",
                $backend,
                "/0002_consent.sql"
            )),
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/migrations/",
                $backend,
                "/0003_lookup_state.sql"
            )),
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/migrations/",
                $backend,
                "/0004_kek_index.sql"
            )),
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/migrations/",
                $backend,
                "/0005_keyed_audit.sql"
            )),
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/migrations/",
                $backend,
                "/0006_requests.sql"
            )),
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/migrations/",
                $backend,
                "/0007_agents.sql"
            )),
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/migrations/",
                $backend,
                "/0008_retention.sql"
            )),
        ]
    };
}

pub mod agents;
pub mod consent;
mod database_url;
mod group;
mod postgres;
pub mod requests;
pub mod retention;
mod sqlite;
mod types;

pub use consent::*;
pub use database_url::{DatabaseUrl, SslMode};
pub use postgres::pool_for;
pub use types::*;

use crate::audit::{AuditEntry, AuditKey, Verification, Verifier};
use crate::crypto::WrappedKey;
use uuid::Uuid;

/// The schema version this build knows. A database at a newer version is refused.
pub const SCHEMA_VERSION: i64 = 8;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the database schema is at version {found}, newer than this build knows ({known}); upgrade Custodian"
    )]
    SchemaTooNew { found: i64, known: i64 },
    #[error(
        "the database schema is at version {found}; run `custodian migrate` to bring it to {known}"
    )]
    SchemaBehind { found: i64, known: i64 },
    #[error("the store is not reachable: {0}")]
    Unavailable(String),
    #[error("the database settings are not usable: {0}")]
    Settings(String),
    #[error("the store failed: {0}")]
    Backend(String),
    #[error("the stored record is not readable: {0}")]
    Corrupt(String),
    #[error("the writer has stopped")]
    WriterGone,
}

/// Why one batch was not applied (the others in its transaction were).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("no subject with this id")]
    SubjectNotFound,
    #[error("the subject was erased")]
    SubjectErased,
    #[error("the {0} given already belongs to another subject")]
    LookupTaken(String),
    #[error("no API key with this id")]
    KeyNotFound,
    #[error("no visitor with this id")]
    VisitorNotFound,
    #[error("this is the last active admin key; create another admin key before revoking it")]
    LastAdminKey,
    #[error("the request was changed meanwhile; read it again")]
    RequestChanged,
    #[error("the task's lease was lost to another worker")]
    LeaseLost,
    #[error("an agent with this id exists already")]
    AgentExists,
    #[error("no agent with this id")]
    AgentNotFound,
    #[error("a retention sweep is already running")]
    SweepBusy,
    #[error("no legal hold in force with this id")]
    HoldNotFound,
    #[error(
        "policy version {0} was recorded before with different content; give the changed policy a new version"
    )]
    PolicyVersionChanged(String),
    #[error("the store failed: {0}")]
    Store(String),
}

#[derive(Clone)]
pub enum Store {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.backend())
    }
}

/// Where the store lives. Its `Debug` never shows a database password.
#[derive(Debug, Clone)]
pub enum Location {
    /// A SQLite database file.
    Sqlite(std::path::PathBuf),
    /// A `postgres://` URL or connection string, with its TLS settings.
    Postgres(DatabaseUrl),
}

// The PostgreSQL arms box their futures. Unboxed, every call's future, and
// every handler's that awaits one, is sized for the PostgreSQL client's state
// (about 2.4 KB) and copied whenever it moves, on SQLite too: a few per cent
// of a marketing check's CPU.
/// Runs a SQLite scan (pages of the audit, lookups, keys) on the blocking
/// pool: SQLite reads are synchronous, and a long scan on an async worker
/// would stall every request that worker serves.
async fn off_the_workers<T: Send + 'static>(
    store: &sqlite::SqliteStore,
    scan: impl FnOnce(&sqlite::SqliteStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || scan(&store))
        .await
        .map_err(|_| StoreError::Backend("a store scan was cancelled".into()))?
}

impl Store {
    /// Opens the store. With `migrate`, pending migrations are applied first;
    /// without, a database behind this build is refused. A database ahead of
    /// this build is always refused.
    ///
    /// `audit_key` (from the key file, never the database) keys the audit
    /// chain: every entry written is MACed with it, and verification needs it.
    pub async fn open(
        location: &Location,
        migrate: bool,
        audit_key: AuditKey,
    ) -> Result<Store, StoreError> {
        let store = match location {
            Location::Sqlite(path) => {
                Store::Sqlite(sqlite::SqliteStore::open(path, migrate, audit_key)?)
            }
            Location::Postgres(url) => {
                Store::Postgres(postgres::PgStore::open(url, migrate, audit_key).await?)
            }
        };
        Ok(store)
    }

    /// Applies pending migrations; returns (from, to) versions.
    pub async fn migrate(location: &Location) -> Result<(i64, i64), StoreError> {
        match location {
            Location::Sqlite(path) => sqlite::SqliteStore::migrate_only(path),
            Location::Postgres(url) => postgres::PgStore::migrate_only(url).await,
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Applies one request's writes atomically, with its audit entries and
    /// outbox events, once the group transaction has committed.
    pub async fn write(&self, batch: Batch) -> Result<Result<Committed, BatchError>, StoreError> {
        match self {
            Store::Sqlite(s) => s.write(batch).await,
            Store::Postgres(s) => Box::pin(s.write(batch)).await,
        }
    }

    pub async fn subject(&self, id: Uuid) -> Result<Option<SubjectRecord>, StoreError> {
        match self {
            Store::Sqlite(s) => s.subject(id),
            Store::Postgres(s) => Box::pin(s.subject(id)).await,
        }
    }

    /// The subject a blind index points to, loaded in the same query.
    pub async fn subject_by_lookup(
        &self,
        kind: &str,
        hash: &[u8; 32],
    ) -> Result<Option<SubjectRecord>, StoreError> {
        match self {
            Store::Sqlite(s) => s.subject_by_lookup(kind, hash),
            Store::Postgres(s) => Box::pin(s.subject_by_lookup(kind, hash)).await,
        }
    }

    /// Values replaced by rectification, oldest first, still sealed.
    pub async fn field_history(&self, subject: Uuid) -> Result<Vec<HistoricField>, StoreError> {
        match self {
            Store::Sqlite(s) => s.field_history(subject),
            Store::Postgres(s) => Box::pin(s.field_history(subject)).await,
        }
    }

    pub async fn api_key_by_hash(
        &self,
        hash: &[u8; 32],
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        match self {
            Store::Sqlite(s) => s.api_key_by_hash(hash),
            Store::Postgres(s) => Box::pin(s.api_key_by_hash(hash)).await,
        }
    }

    pub async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        match self {
            Store::Sqlite(s) => off_the_workers(s, move |s| s.api_keys()).await,
            Store::Postgres(s) => Box::pin(s.api_keys()).await,
        }
    }

    /// Audit entries with `seq > after`, at most `limit`, in order.
    pub async fn audit_page(&self, after: i64, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        match self {
            Store::Sqlite(s) => off_the_workers(s, move |s| s.audit_page(after, limit)).await,
            Store::Postgres(s) => Box::pin(s.audit_page(after, limit)).await,
        }
    }

    pub async fn audit_head(&self) -> Result<Option<(i64, [u8; 32])>, StoreError> {
        match self {
            Store::Sqlite(s) => s.audit_head(),
            Store::Postgres(s) => Box::pin(s.audit_head()).await,
        }
    }

    /// Outbox events with `id > after`, at most `limit`, in order.
    pub async fn outbox_page(&self, after: i64, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
        match self {
            Store::Sqlite(s) => off_the_workers(s, move |s| s.outbox_page(after, limit)).await,
            Store::Postgres(s) => Box::pin(s.outbox_page(after, limit)).await,
        }
    }

    /// Recomputes the whole audit chain, a page at a time. The head is read
    /// first and only entries up to it are checked, so entries committed
    /// while the check runs (every read writes one) are not mistaken for
    /// tampering.
    pub async fn verify_audit(&self) -> Result<Verification, StoreError> {
        let head = self.audit_head().await?;
        let last = head.map_or(0, |(seq, _)| seq);
        let (key, keyed_from) = match self {
            Store::Sqlite(s) => (s.audit_key(), s.audit_keyed_from()?),
            Store::Postgres(s) => (s.audit_key(), Box::pin(s.audit_keyed_from()).await?),
        };
        let mut verifier = Verifier::new(key, keyed_from);
        let mut after = 0;
        'pages: loop {
            let page = self.audit_page(after, 10_000).await?;
            let Some(tail) = page.last() else { break };
            after = tail.seq;
            for e in &page {
                if e.seq > last {
                    break 'pages;
                }
                verifier.push(e);
            }
        }
        Ok(verifier.finish(head))
    }

    /// A holder's consent events, oldest first.
    pub async fn consent_events(&self, holder: &Holder) -> Result<Vec<ConsentEvent>, StoreError> {
        match self {
            Store::Sqlite(s) => s.consent_events(holder),
            Store::Postgres(s) => Box::pin(s.consent_events(holder)).await,
        }
    }

    pub async fn consent_event(&self, id: Uuid) -> Result<Option<ConsentEvent>, StoreError> {
        match self {
            Store::Sqlite(s) => s.consent_event(id),
            Store::Postgres(s) => Box::pin(s.consent_event(id)).await,
        }
    }

    pub async fn visitor(&self, id: &str) -> Result<Option<VisitorRecord>, StoreError> {
        match self {
            Store::Sqlite(s) => s.visitor(id),
            Store::Postgres(s) => Box::pin(s.visitor(id)).await,
        }
    }

    pub async fn suppressed(&self, kind: &str, hash: &[u8; 32]) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(s) => s.suppressed(kind, hash),
            Store::Postgres(s) => Box::pin(s.suppressed(kind, hash)).await,
        }
    }

    /// Blind-index entries of one kind with their subjects' state, in hash
    /// order after `after`, at most `limit`: a campaign check joins its list
    /// against these a page at a time.
    pub async fn lookup_page(
        &self,
        kind: &str,
        after: Option<[u8; 32]>,
        limit: i64,
    ) -> Result<Vec<LookupState>, StoreError> {
        match self {
            Store::Sqlite(s) => {
                let kind = kind.to_string();
                off_the_workers(s, move |s| s.lookup_page(&kind, after, limit)).await
            }
            Store::Postgres(s) => Box::pin(s.lookup_page(kind, after, limit)).await,
        }
    }

    /// Suppression hashes of one kind, in order after `after`, at most `limit`.
    pub async fn suppression_page(
        &self,
        kind: &str,
        after: Option<[u8; 32]>,
        limit: i64,
    ) -> Result<Vec<[u8; 32]>, StoreError> {
        match self {
            Store::Sqlite(s) => {
                let kind = kind.to_string();
                off_the_workers(s, move |s| s.suppression_page(&kind, after, limit)).await
            }
            Store::Postgres(s) => Box::pin(s.suppression_page(kind, after, limit)).await,
        }
    }

    /// Subjects whose data key is wrapped by another key-encryption key than
    /// `not_under` (erased subjects have none), in id order after `after`.
    pub async fn data_keys_page(
        &self,
        not_under: u32,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<(Uuid, WrappedKey)>, StoreError> {
        match self {
            Store::Sqlite(s) => {
                off_the_workers(s, move |s| s.data_keys_page(not_under, after, limit)).await
            }
            Store::Postgres(s) => Box::pin(s.data_keys_page(not_under, after, limit)).await,
        }
    }

    /// The key-encryption keys that wrap at least one data key, in order:
    /// one index probe per key, whatever the number of subjects.
    pub async fn keks_in_use(&self) -> Result<Vec<u32>, StoreError> {
        match self {
            Store::Sqlite(s) => s.keks_in_use(),
            Store::Postgres(s) => Box::pin(s.keks_in_use()).await,
        }
    }

    /// How many data keys each key-encryption key wraps.
    pub async fn data_keys_per_kek(&self) -> Result<Vec<(u32, i64)>, StoreError> {
        match self {
            Store::Sqlite(s) => off_the_workers(s, move |s| s.data_keys_per_kek()).await,
            Store::Postgres(s) => Box::pin(s.data_keys_per_kek()).await,
        }
    }

    /// Both questions of a marketing check in one query: is the address
    /// suppressed (`suppress_kind`, `suppress_hash`), and whose is it?
    pub async fn check_lookup(
        &self,
        kind: &str,
        hash: &[u8; 32],
        suppress_kind: &str,
        suppress_hash: &[u8; 32],
    ) -> Result<(bool, Option<LookupState>), StoreError> {
        match self {
            Store::Sqlite(s) => s.check_lookup(kind, hash, suppress_kind, suppress_hash),
            Store::Postgres(s) => {
                Box::pin(s.check_lookup(kind, hash, suppress_kind, suppress_hash)).await
            }
        }
    }

    /// The subject a blind index points to, without its sealed fields.
    pub async fn state_by_lookup(
        &self,
        kind: &str,
        hash: &[u8; 32],
    ) -> Result<Option<LookupState>, StoreError> {
        match self {
            Store::Sqlite(s) => s.state_by_lookup(kind, hash),
            Store::Postgres(s) => Box::pin(s.state_by_lookup(kind, hash)).await,
        }
    }

    /// The source of a policy version this store has run with.
    pub async fn policy_source(&self, version: &str) -> Result<Option<String>, StoreError> {
        match self {
            Store::Sqlite(s) => s.policy_source(version),
            Store::Postgres(s) => Box::pin(s.policy_source(version)).await,
        }
    }

    /// Readiness: the store answers a trivial query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.ping(),
            Store::Postgres(s) => Box::pin(s.ping()).await,
        }
    }
}

/// The register of data-subject requests.
impl Store {
    pub async fn request(&self, id: Uuid) -> Result<Option<requests::RequestRecord>, StoreError> {
        match self {
            Store::Sqlite(s) => s.request(id),
            Store::Postgres(s) => Box::pin(s.request(id)).await,
        }
    }

    pub async fn requests(
        &self,
        filter: &requests::RequestFilter,
    ) -> Result<Vec<requests::RequestRecord>, StoreError> {
        match self {
            Store::Sqlite(s) => {
                let filter = filter.clone();
                off_the_workers(s, move |s| s.requests(&filter)).await
            }
            Store::Postgres(s) => Box::pin(s.requests(filter)).await,
        }
    }

    /// A request's sealed report in `format` (json, html, archive).
    pub async fn report(&self, request: Uuid, format: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Store::Sqlite(s) => s.report(request, format),
            Store::Postgres(s) => Box::pin(s.report(request, format)).await,
        }
    }

    /// The contact a live session token's hash proves.
    pub async fn session(
        &self,
        hash: &[u8; 32],
        now: types::Micros,
    ) -> Result<Option<[u8; 32]>, StoreError> {
        match self {
            Store::Sqlite(s) => s.session(hash, now),
            Store::Postgres(s) => Box::pin(s.session(hash, now)).await,
        }
    }

    pub async fn tasks_of(&self, request: Uuid) -> Result<Vec<requests::TaskRecord>, StoreError> {
        match self {
            Store::Sqlite(s) => s.tasks_of(request),
            Store::Postgres(s) => Box::pin(s.tasks_of(request)).await,
        }
    }

    /// When the next pending task falls due (or its lease ends), if any.
    pub async fn next_task_due(&self) -> Result<Option<types::Micros>, StoreError> {
        match self {
            Store::Sqlite(s) => s.next_task_due(),
            Store::Postgres(s) => Box::pin(s.next_task_due()).await,
        }
    }

    /// The disclosures of a subject recorded in the audit, oldest first.
    pub async fn disclosures_of(
        &self,
        subject: Uuid,
    ) -> Result<Vec<requests::DisclosureEntry>, StoreError> {
        match self {
            Store::Sqlite(s) => off_the_workers(s, move |s| s.disclosures_of(subject)).await,
            Store::Postgres(s) => Box::pin(s.disclosures_of(subject)).await,
        }
    }
}

/// Authorized agents of the Data Rights Protocol.
impl Store {
    pub async fn agent(&self, id: &str) -> Result<Option<agents::AgentRecord>, StoreError> {
        match self {
            Store::Sqlite(s) => s.agent(id),
            Store::Postgres(s) => Box::pin(s.agent(id)).await,
        }
    }

    /// The agent a token's SHA-256 names.
    pub async fn agent_by_token(
        &self,
        hash: &[u8; 32],
    ) -> Result<Option<agents::AgentRecord>, StoreError> {
        match self {
            Store::Sqlite(s) => s.agent_by_token(hash),
            Store::Postgres(s) => Box::pin(s.agent_by_token(hash)).await,
        }
    }

    pub async fn agents(&self) -> Result<Vec<agents::AgentRecord>, StoreError> {
        match self {
            Store::Sqlite(s) => off_the_workers(s, move |s| s.agents()).await,
            Store::Postgres(s) => Box::pin(s.agents()).await,
        }
    }
}

/// Retention: the expiry index, legal holds, rule reviews, the sweep's lease.
impl Store {
    /// Index rows due at `now`, in due order after `after` (due time and
    /// subject of the last row of the previous page), at most `limit`: an
    /// index range scan, so its cost follows what is due, not what is held.
    pub async fn due_page(
        &self,
        now: types::Micros,
        after: Option<(types::Micros, Uuid)>,
        limit: i64,
    ) -> Result<Vec<retention::ExpiryRow>, StoreError> {
        match self {
            Store::Sqlite(s) => off_the_workers(s, move |s| s.due_page(now, after, limit)).await,
            Store::Postgres(s) => Box::pin(s.due_page(now, after, limit)).await,
        }
    }

    /// Subjects some of whose due data a legal hold keeps, with the hold.
    pub async fn held_page(
        &self,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<(Uuid, Option<Uuid>)>, StoreError> {
        match self {
            Store::Sqlite(s) => off_the_workers(s, move |s| s.held_page(after, limit)).await,
            Store::Postgres(s) => Box::pin(s.held_page(after, limit)).await,
        }
    }

    pub async fn expiry_of(
        &self,
        subject: Uuid,
    ) -> Result<Option<retention::ExpiryRow>, StoreError> {
        match self {
            Store::Sqlite(s) => s.expiry_of(subject),
            Store::Postgres(s) => Box::pin(s.expiry_of(subject)).await,
        }
    }

    /// Every legal hold, in force or not, oldest first.
    pub async fn holds(&self) -> Result<Vec<retention::LegalHold>, StoreError> {
        match self {
            Store::Sqlite(s) => s.holds(),
            Store::Postgres(s) => Box::pin(s.holds()).await,
        }
    }

    pub async fn reviews(&self) -> Result<Vec<retention::RuleReview>, StoreError> {
        match self {
            Store::Sqlite(s) => s.reviews(),
            Store::Postgres(s) => Box::pin(s.reviews()).await,
        }
    }

    pub async fn sweep_state(&self) -> Result<retention::SweepState, StoreError> {
        match self {
            Store::Sqlite(s) => s.sweep_state(),
            Store::Postgres(s) => Box::pin(s.sweep_state()).await,
        }
    }
}

#[cfg(test)]
#[path = "conformance_tests.rs"]
mod conformance_tests;
