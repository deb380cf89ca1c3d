//! The embedded backend: one SQLite file in WAL mode.
//!
//! A dedicated writer thread owns the only writing connection and applies
//! group-committed transactions with `synchronous=FULL` (one fsync per group,
//! not per request). Reads use a small pool of read-only connections and run
//! inline: a primary-key lookup on a warm page cache takes microseconds, less
//! than handing the work to another thread would.

use super::*;
use crate::audit::{self, AuditEntry, GENESIS};
use crate::crypto::WrappedKey;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_init.sql"),
    include_str!("../../migrations/sqlite/0002_consent.sql"),
];
/// The most batches one group transaction takes.
const MAX_GROUP: usize = 512;
const READERS: usize = 8;

type Reply = oneshot::Sender<Result<Result<Committed, BatchError>, StoreError>>;

struct Job {
    batch: Batch,
    reply: Reply,
}

#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    readers: Mutex<Vec<Connection>>,
    writer: mpsc::Sender<Job>,
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn open_connection(path: &Path, read_only: bool) -> Result<Connection, StoreError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    if !read_only {
        create_private_file(path)?;
    }
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(backend)?;
    if !read_only {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
        // FULL: a commit is on disk before any request in its group is answered.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(backend)?;
    } else {
        // 32 MiB of pages per reader, allocated as used: a read-mostly load
        // (marketing checks) then reads its working set from memory instead
        // of one system call per page. Any commit empties every reader's
        // cache (SQLite's rule), so a write-heavy load never fills it.
        conn.pragma_update(None, "cache_size", -32_768i64)
            .map_err(backend)?;
    }
    Ok(conn)
}

/// Creates a new database file readable by its owner only. SQLite gives its
/// -wal and -shm files the database file's permissions, so they follow.
/// An existing file is left as it is.
fn create_private_file(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Unavailable(format!("{}: {e}", path.display()))),
    }
}

/// Creates the database's folder, readable by its owner only, if it is new.
fn create_private_dir(path: &Path) -> Result<(), StoreError> {
    let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(());
    };
    if parent.exists() {
        return Ok(());
    }
    let fail = |e: std::io::Error| StoreError::Unavailable(format!("{}: {e}", parent.display()));
    std::fs::create_dir_all(parent).map_err(fail)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700)).map_err(fail)?;
    }
    Ok(())
}

fn schema_version(conn: &Connection) -> Result<i64, StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    )
    .map_err(backend)?;
    let v: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?;
    Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
}

fn apply_migrations(conn: &mut Connection) -> Result<(i64, i64), StoreError> {
    let from = schema_version(conn)?;
    if from > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found: from,
            known: SCHEMA_VERSION,
        });
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let version = i as i64 + 1;
        if version > from {
            tx.execute_batch(sql).map_err(backend)?;
        }
    }
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [SCHEMA_VERSION.to_string()],
    )
    .map_err(backend)?;
    tx.commit().map_err(backend)?;
    Ok((from, SCHEMA_VERSION))
}

fn check_schema(conn: &mut Connection, migrate: bool) -> Result<(), StoreError> {
    let found = schema_version(conn)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    if found < SCHEMA_VERSION {
        if !migrate {
            return Err(StoreError::SchemaBehind {
                found,
                known: SCHEMA_VERSION,
            });
        }
        apply_migrations(conn)?;
    }
    Ok(())
}

impl SqliteStore {
    pub fn open(path: &Path, migrate: bool) -> Result<SqliteStore, StoreError> {
        create_private_dir(path)?;
        let mut conn = open_connection(path, false)?;
        check_schema(&mut conn, migrate)?;
        let (tx, rx) = mpsc::channel::<Job>(4096);
        std::thread::Builder::new()
            .name("custodian-sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| StoreError::Backend(format!("cannot start the writer: {e}")))?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                readers: Mutex::new(Vec::new()),
                writer: tx,
            }),
        })
    }

    pub fn migrate_only(path: &Path) -> Result<(i64, i64), StoreError> {
        create_private_dir(path)?;
        let mut conn = open_connection(path, false)?;
        apply_migrations(&mut conn)
    }

    pub async fn write(&self, batch: Batch) -> Result<Result<Committed, BatchError>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .writer
            .send(Job { batch, reply })
            .await
            .map_err(|_| StoreError::WriterGone)?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Runs `f` on a pooled read-only connection.
    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self
            .inner
            .readers
            .lock()
            .ok()
            .and_then(|mut pool| pool.pop());
        let conn = match pooled {
            Some(c) => c,
            None => open_connection(&self.inner.path, true)?,
        };
        let result = f(&conn);
        if let Ok(mut pool) = self.inner.readers.lock() {
            if pool.len() < READERS {
                pool.push(conn);
            }
        }
        result
    }

    pub fn subject(&self, id: Uuid) -> Result<Option<SubjectRecord>, StoreError> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT id, wrapped_key, kek_id, created_at, erased_at, fields, state FROM subjects WHERE id = ?1",
            )
            .map_err(backend)?
            .query_row([id.as_bytes().as_slice()], subject_row)
            .optional()
            .map_err(backend)?
            .transpose()
        })
    }

    pub fn subject_by_lookup(
        &self,
        kind: &str,
        hash: &[u8; 32],
    ) -> Result<Option<SubjectRecord>, StoreError> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT s.id, s.wrapped_key, s.kek_id, s.created_at, s.erased_at, s.fields, s.state
                 FROM lookup l JOIN subjects s ON s.id = l.subject_id
                 WHERE l.kind = ?1 AND l.hash = ?2",
            )
            .map_err(backend)?
            .query_row(params![kind, hash.as_slice()], subject_row)
            .optional()
            .map_err(backend)?
            .transpose()
        })
    }

    pub fn field_history(&self, subject: Uuid) -> Result<Vec<HistoricField>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT field, sealed, provenance, replaced_at FROM field_history WHERE subject_id = ?1 ORDER BY id",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map([subject.as_bytes().as_slice()], |r| {
                    let provenance: Vec<u8> = r.get(2)?;
                    Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?, provenance, r.get::<_, i64>(3)?))
                })
                .map_err(backend)?;
            let mut out = Vec::new();
            for row in rows {
                let (name, sealed, provenance, replaced_at) = row.map_err(backend)?;
                out.push(historic(name, sealed, &provenance, replaced_at)?);
            }
            Ok(out)
        })
    }

    pub fn api_key_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.read(|c| {
            c.prepare_cached(&format!("{API_KEY_COLUMNS} WHERE hash = ?1"))
                .map_err(backend)?
                .query_row([hash.as_slice()], api_key_row)
                .optional()
                .map_err(backend)
        })
    }

    pub fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(&format!("{API_KEY_COLUMNS} ORDER BY created_at, id"))
                .map_err(backend)?;
            let rows = stmt.query_map([], api_key_row).map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
    }

    pub fn audit_page(&self, after: i64, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT seq, at, actor, action, purpose, subject_id, decision, reason, prev_hash, hash
                     FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )
                .map_err(backend)?;
            let rows = stmt.query_map(params![after, limit], audit_row).map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
    }

    pub fn audit_head(&self) -> Result<Option<(i64, [u8; 32])>, StoreError> {
        self.read(|c| {
            let (seq, hash) = load_head(c)?;
            Ok((seq > 0).then_some((seq, hash)))
        })
    }

    pub fn outbox_page(&self, after: i64, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached("SELECT id, at, topic, subject_id, payload FROM outbox WHERE id > ?1 ORDER BY id LIMIT ?2")
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![after, limit], |r| {
                    let subject: Option<Vec<u8>> = r.get(3)?;
                    Ok(OutboxRow {
                        id: r.get(0)?,
                        at: r.get(1)?,
                        topic: r.get(2)?,
                        subject: subject.and_then(|b| Uuid::from_slice(&b).ok()),
                        payload: r.get(4)?,
                    })
                })
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
    }

    pub fn consent_events(&self, holder: &Holder) -> Result<Vec<ConsentEvent>, StoreError> {
        self.read(|c| {
            let (sql, key): (String, Box<dyn rusqlite::ToSql>) = match holder {
                Holder::Subject(id) => (
                    format!("{CONSENT_COLUMNS} WHERE subject_id = ?1 ORDER BY seq"),
                    Box::new(id.as_bytes().to_vec()),
                ),
                Holder::Visitor(v) => (
                    format!("{CONSENT_COLUMNS} WHERE visitor_id = ?1 ORDER BY seq"),
                    Box::new(v.clone()),
                ),
            };
            let mut stmt = c.prepare_cached(&sql).map_err(backend)?;
            let rows = stmt.query_map([key], consent_row).map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
    }

    pub fn consent_event(&self, id: Uuid) -> Result<Option<ConsentEvent>, StoreError> {
        self.read(|c| {
            c.prepare_cached(&format!("{CONSENT_COLUMNS} WHERE id = ?1"))
                .map_err(backend)?
                .query_row([id.as_bytes().as_slice()], consent_row)
                .optional()
                .map_err(backend)
        })
    }

    pub fn visitor(&self, id: &str) -> Result<Option<VisitorRecord>, StoreError> {
        self.read(|c| {
            let row: Option<(i64, Option<Vec<u8>>, Vec<u8>)> = c
                .prepare_cached("SELECT created_at, subject_id, state FROM visitors WHERE id = ?1")
                .map_err(backend)?
                .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
                .map_err(backend)?;
            row.map(|(created_at, subject, state)| {
                Ok(VisitorRecord {
                    id: id.to_string(),
                    created_at,
                    subject: subject.and_then(|b| Uuid::from_slice(&b).ok()),
                    preferences: serde_json::from_slice(&state)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                })
            })
            .transpose()
        })
    }

    pub fn suppressed(&self, kind: &str, hash: &[u8; 32]) -> Result<bool, StoreError> {
        self.read(|c| {
            c.prepare_cached("SELECT 1 FROM suppression WHERE kind = ?1 AND hash = ?2")
                .map_err(backend)?
                .query_row(params![kind, hash.as_slice()], |_| Ok(()))
                .optional()
                .map(|r| r.is_some())
                .map_err(backend)
        })
    }

    pub fn lookup_page(
        &self,
        kind: &str,
        after: Option<[u8; 32]>,
        limit: i64,
    ) -> Result<Vec<LookupState>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT l.hash, s.id, s.wrapped_key IS NULL OR s.erased_at IS NOT NULL, s.state
                     FROM lookup l JOIN subjects s ON s.id = l.subject_id
                     WHERE l.kind = ?1 AND l.hash > ?2 ORDER BY l.hash LIMIT ?3",
                )
                .map_err(backend)?;
            let after = after.unwrap_or([0; 32]);
            let rows = stmt
                .query_map(params![kind, after.as_slice(), limit], |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, bool>(2)?,
                        r.get::<_, Vec<u8>>(3)?,
                    ))
                })
                .map_err(backend)?;
            let mut out = Vec::new();
            for row in rows {
                let (hash, id, erased, state) = row.map_err(backend)?;
                out.push(LookupState {
                    hash: hash_from(&hash),
                    subject: uuid_from(&id).map_err(backend)?,
                    erased,
                    state: decode_state(&state).map_err(StoreError::Corrupt)?,
                });
            }
            Ok(out)
        })
    }

    pub fn suppression_page(
        &self,
        kind: &str,
        after: Option<[u8; 32]>,
        limit: i64,
    ) -> Result<Vec<[u8; 32]>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached("SELECT hash FROM suppression WHERE kind = ?1 AND hash > ?2 ORDER BY hash LIMIT ?3")
                .map_err(backend)?;
            let after = after.unwrap_or([0; 32]);
            let rows = stmt
                .query_map(params![kind, after.as_slice(), limit], |r| r.get::<_, Vec<u8>>(0))
                .map_err(backend)?;
            rows.map(|r| r.map(|h| hash_from(&h)).map_err(backend)).collect()
        })
    }

    pub fn check_lookup(
        &self,
        kind: &str,
        hash: &[u8; 32],
        suppress_kind: &str,
        suppress_hash: &[u8; 32],
    ) -> Result<(bool, Option<LookupState>), StoreError> {
        self.read(|c| {
            let (suppressed, id, erased, state): CheckRow = c
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM suppression WHERE kind = ?3 AND hash = ?4),
                            s.id, s.wrapped_key IS NULL OR s.erased_at IS NOT NULL, s.state
                     FROM (SELECT 1) AS one
                     LEFT JOIN lookup l ON l.kind = ?1 AND l.hash = ?2
                     LEFT JOIN subjects s ON s.id = l.subject_id",
                )
                .map_err(backend)?
                .query_row(
                    params![
                        kind,
                        hash.as_slice(),
                        suppress_kind,
                        suppress_hash.as_slice()
                    ],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .map_err(backend)?;
            let found = match (id, state) {
                (Some(id), Some(state)) => Some(LookupState {
                    hash: *hash,
                    subject: uuid_from(&id).map_err(backend)?,
                    erased: erased.unwrap_or(true),
                    state: decode_state(&state).map_err(StoreError::Corrupt)?,
                }),
                _ => None,
            };
            Ok((suppressed, found))
        })
    }

    pub fn state_by_lookup(
        &self,
        kind: &str,
        hash: &[u8; 32],
    ) -> Result<Option<LookupState>, StoreError> {
        self.read(|c| {
            let row: Option<(Vec<u8>, bool, Vec<u8>)> = c
                .prepare_cached(
                    "SELECT s.id, s.wrapped_key IS NULL OR s.erased_at IS NOT NULL, s.state
                     FROM lookup l JOIN subjects s ON s.id = l.subject_id
                     WHERE l.kind = ?1 AND l.hash = ?2",
                )
                .map_err(backend)?
                .query_row(params![kind, hash.as_slice()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()
                .map_err(backend)?;
            row.map(|(id, erased, state)| {
                Ok(LookupState {
                    hash: *hash,
                    subject: uuid_from(&id).map_err(backend)?,
                    erased,
                    state: decode_state(&state).map_err(StoreError::Corrupt)?,
                })
            })
            .transpose()
        })
    }

    pub fn policy_source(&self, version: &str) -> Result<Option<String>, StoreError> {
        self.read(|c| {
            c.prepare_cached("SELECT source FROM policy_versions WHERE version = ?1")
                .map_err(backend)?
                .query_row([version], |r| r.get(0))
                .optional()
                .map_err(backend)
        })
    }

    pub fn ping(&self) -> Result<(), StoreError> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(backend))
    }
}

/// Suppressed?, then the subject's id, erasure and state if the address is known.
type CheckRow = (bool, Option<Vec<u8>>, Option<bool>, Option<Vec<u8>>);

const CONSENT_COLUMNS: &str = "SELECT id, at, subject_id, visitor_id, purpose, channel, action, policy_version, method, agent, wording_hash, ip_prefix, recorded_by, expires_at FROM consent_events";

fn consent_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ConsentEvent> {
    let id: Vec<u8> = r.get(0)?;
    let subject: Option<Vec<u8>> = r.get(2)?;
    let action: String = r.get(6)?;
    let wording: Option<Vec<u8>> = r.get(10)?;
    Ok(ConsentEvent {
        id: uuid_from(&id)?,
        at: r.get(1)?,
        subject: subject.map(|b| uuid_from(&b)).transpose()?,
        visitor: r.get(3)?,
        purpose: r.get(4)?,
        channel: r.get(5)?,
        action: ConsentAction::parse(&action).unwrap_or(ConsentAction::Refuse),
        policy_version: r.get(7)?,
        method: r.get(8)?,
        agent: r.get(9)?,
        wording_hash: wording.map(|w| hash_from(&w)),
        ip_prefix: r.get(11)?,
        recorded_by: r.get(12)?,
        expires_at: r.get(13)?,
    })
}

const API_KEY_COLUMNS: &str =
    "SELECT id, hash, role, purposes, recipient, label, created_at, revoked_at FROM api_keys";

fn uuid_from(bytes: &[u8]) -> rusqlite::Result<Uuid> {
    Uuid::from_slice(bytes).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
    })
}

fn subject_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<SubjectRecord, StoreError>> {
    let id: Vec<u8> = r.get(0)?;
    let wrapped: Option<Vec<u8>> = r.get(1)?;
    let kek_id: u32 = r.get(2)?;
    let fields: Vec<u8> = r.get(5)?;
    let state: Vec<u8> = r.get(6)?;
    let id = uuid_from(&id)?;
    Ok(build_subject(
        id,
        wrapped,
        kek_id,
        r.get(3)?,
        r.get(4)?,
        &fields,
        &state,
    ))
}

pub(super) fn build_subject(
    id: Uuid,
    wrapped: Option<Vec<u8>>,
    kek_id: u32,
    created_at: Micros,
    erased_at: Option<Micros>,
    fields: &[u8],
    state: &[u8],
) -> Result<SubjectRecord, StoreError> {
    Ok(SubjectRecord {
        id,
        wrapped_key: wrapped.map(|bytes| WrappedKey { kek_id, bytes }),
        created_at,
        erased_at,
        fields: decode(fields).map_err(StoreError::Corrupt)?,
        state: decode_state(state).map_err(StoreError::Corrupt)?,
    })
}

pub(super) fn historic(
    name: String,
    sealed: Vec<u8>,
    provenance: &[u8],
    replaced_at: Micros,
) -> Result<HistoricField, StoreError> {
    let provenance: Option<Provenance> =
        decode::<Option<Provenance>>(provenance).map_err(StoreError::Corrupt)?;
    let provenance =
        provenance.ok_or_else(|| StoreError::Corrupt("a history row has no provenance".into()))?;
    Ok(HistoricField {
        field: StoredField {
            name,
            sealed,
            provenance,
        },
        replaced_at,
    })
}

fn api_key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    let hash: Vec<u8> = r.get(1)?;
    let purposes: String = r.get(3)?;
    Ok(ApiKeyRecord {
        id: r.get(0)?,
        hash: hash_from(&hash),
        role: r.get(2)?,
        purposes: serde_json::from_str(&purposes).unwrap_or_default(),
        recipient: r.get(4)?,
        label: r.get(5)?,
        created_at: r.get(6)?,
        revoked_at: r.get(7)?,
    })
}

fn audit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditEntry> {
    let subject: Option<Vec<u8>> = r.get(5)?;
    let prev: Vec<u8> = r.get(8)?;
    let hash: Vec<u8> = r.get(9)?;
    Ok(AuditEntry {
        seq: r.get(0)?,
        draft: audit::AuditDraft {
            at: r.get(1)?,
            actor: r.get(2)?,
            action: r.get(3)?,
            purpose: r.get(4)?,
            subject: subject.map(|b| uuid_from(&b)).transpose()?,
            decision: r.get(6)?,
            reason: r.get(7)?,
        },
        prev_hash: hash_from(&prev),
        hash: hash_from(&hash),
    })
}

fn load_head(c: &Connection) -> Result<(i64, [u8; 32]), StoreError> {
    read_head(c).map_err(backend)
}

fn read_head(c: &Connection) -> rusqlite::Result<(i64, [u8; 32])> {
    let head: Option<(i64, Vec<u8>)> = c
        .query_row("SELECT seq, hash FROM audit_head WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    Ok(head.map_or((0, GENESIS), |(seq, hash)| (seq, hash_from(&hash))))
}

fn writer_loop(mut conn: Connection, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        match commit_group(&mut conn, &jobs) {
            Ok(outcomes) => {
                for (job, outcome) in jobs.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "group commit failed; every request in it is answered with an error");
                for job in jobs {
                    let _ = job.reply.send(Err(StoreError::Backend(e.to_string())));
                }
            }
        }
    }
}

type Outcomes = Vec<Result<Committed, BatchError>>;

/// One group transaction. The chain head is read inside it, so another process
/// writing to the same file (the CLI creating a key) extends the same chain.
fn commit_group(conn: &mut Connection, jobs: &[Job]) -> rusqlite::Result<Outcomes> {
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let head = read_head(&tx)?;
    let mut outcomes = Vec::with_capacity(jobs.len());
    let mut current = head;
    for job in jobs {
        let mut sp = tx.savepoint()?;
        match apply_batch(&sp, &job.batch, current) {
            Ok((committed, new_head)) => {
                sp.commit()?;
                current = new_head;
                outcomes.push(Ok(committed));
            }
            Err(e) => {
                sp.rollback()?;
                drop(sp);
                outcomes.push(Err(e));
            }
        }
    }
    if current != head {
        tx.execute(
            "UPDATE audit_head SET seq = ?1, hash = ?2 WHERE id = 1",
            params![current.0, current.1.as_slice()],
        )?;
    }
    tx.commit()?;
    Ok(outcomes)
}

fn store_err(e: rusqlite::Error) -> BatchError {
    BatchError::Store(e.to_string())
}

fn apply_batch(
    c: &Connection,
    batch: &Batch,
    head: (i64, [u8; 32]),
) -> Result<(Committed, (i64, [u8; 32])), BatchError> {
    for op in &batch.ops {
        apply_op(c, op)?;
    }
    let entries = audit::chain(head, &batch.audit);
    let mut insert = c
        .prepare_cached(
            "INSERT INTO audit (seq, at, actor, action, purpose, subject_id, decision, reason, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .map_err(store_err)?;
    for e in &entries {
        let d = &e.draft;
        insert
            .execute(params![
                e.seq,
                d.at,
                d.actor,
                d.action,
                d.purpose,
                d.subject.as_ref().map(|s| s.as_bytes().as_slice()),
                d.decision,
                d.reason,
                e.prev_hash.as_slice(),
                e.hash.as_slice()
            ])
            .map_err(store_err)?;
    }
    let mut outbox = c
        .prepare_cached(
            "INSERT INTO outbox (at, topic, subject_id, payload) VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(store_err)?;
    for ev in &batch.outbox {
        outbox
            .execute(params![
                ev.at,
                ev.topic,
                ev.subject.as_ref().map(|s| s.as_bytes().as_slice()),
                ev.payload
            ])
            .map_err(store_err)?;
    }
    let new_head = entries.last().map_or(head, |e| (e.seq, e.hash));
    Ok((
        Committed {
            audit_seqs: entries.iter().map(|e| e.seq).collect(),
        },
        new_head,
    ))
}

/// Loads a subject's fields and state for an update; refuses a missing or erased subject.
fn load_for_update(
    c: &Connection,
    subject: &Uuid,
) -> Result<(Vec<StoredField>, SubjectStateRecord), BatchError> {
    let row: Option<(Option<i64>, Vec<u8>, Vec<u8>)> = c
        .prepare_cached("SELECT erased_at, fields, state FROM subjects WHERE id = ?1")
        .map_err(store_err)?
        .query_row([subject.as_bytes().as_slice()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()
        .map_err(store_err)?;
    let (erased, fields, state) = row.ok_or(BatchError::SubjectNotFound)?;
    if erased.is_some() {
        return Err(BatchError::SubjectErased);
    }
    Ok((
        decode(&fields).map_err(BatchError::Store)?,
        decode_state(&state).map_err(BatchError::Store)?,
    ))
}

fn put_lookups(c: &Connection, subject: &Uuid, lookups: &[Lookup]) -> Result<(), BatchError> {
    for l in lookups {
        let owner: Option<Vec<u8>> = c
            .prepare_cached("SELECT subject_id FROM lookup WHERE kind = ?1 AND hash = ?2")
            .map_err(store_err)?
            .query_row(params![l.kind, l.hash.as_slice()], |r| r.get(0))
            .optional()
            .map_err(store_err)?;
        match owner {
            Some(o) if o == subject.as_bytes() => continue,
            Some(_) => return Err(BatchError::LookupTaken(l.kind.clone())),
            None => {}
        }
        c.prepare_cached("DELETE FROM lookup WHERE subject_id = ?1 AND kind = ?2")
            .map_err(store_err)?
            .execute(params![subject.as_bytes().as_slice(), l.kind])
            .map_err(store_err)?;
        c.prepare_cached("INSERT INTO lookup (kind, hash, subject_id) VALUES (?1, ?2, ?3)")
            .map_err(store_err)?
            .execute(params![
                l.kind,
                l.hash.as_slice(),
                subject.as_bytes().as_slice()
            ])
            .map_err(store_err)?;
    }
    Ok(())
}

fn apply_op(c: &Connection, op: &WriteOp) -> Result<(), BatchError> {
    match op {
        WriteOp::CreateSubject {
            id,
            wrapped_key,
            created_at,
            fields,
            lookups,
        } => {
            c.prepare_cached(
                "INSERT INTO subjects (id, wrapped_key, kek_id, created_at, erased_at, fields, state)
                 VALUES (?1, ?2, ?3, ?4, NULL, ?5, ?6)",
            )
            .map_err(store_err)?
            .execute(params![
                id.as_bytes().as_slice(),
                wrapped_key.bytes,
                wrapped_key.kek_id,
                created_at,
                encode(fields),
                encode_state(&SubjectStateRecord::default())
            ])
            .map_err(store_err)?;
            put_lookups(c, id, lookups)
        }
        WriteOp::PutFields {
            subject,
            fields,
            lookups,
            at,
        } => {
            let (mut current, _) = load_for_update(c, subject)?;
            for new in fields {
                match current.iter_mut().find(|f| f.name == new.name) {
                    Some(old) => {
                        c.prepare_cached(
                            "INSERT INTO field_history (subject_id, field, sealed, provenance, replaced_at)
                             VALUES (?1, ?2, ?3, ?4, ?5)",
                        )
                        .map_err(store_err)?
                        .execute(params![subject.as_bytes().as_slice(), old.name, old.sealed, encode(&Some(&old.provenance)), at])
                        .map_err(store_err)?;
                        *old = new.clone();
                    }
                    None => current.push(new.clone()),
                }
            }
            c.prepare_cached("UPDATE subjects SET fields = ?2 WHERE id = ?1")
                .map_err(store_err)?
                .execute(params![subject.as_bytes().as_slice(), encode(&current)])
                .map_err(store_err)?;
            put_lookups(c, subject, lookups)
        }
        WriteOp::PutRelationship {
            subject,
            relationship,
        } => {
            let (_, mut state) = load_for_update(c, subject)?;
            match state
                .relationships
                .iter_mut()
                .find(|r| r.id == relationship.id)
            {
                Some(r) => *r = relationship.clone(),
                None => state.relationships.push(relationship.clone()),
            }
            c.prepare_cached("UPDATE subjects SET state = ?2 WHERE id = ?1")
                .map_err(store_err)?
                .execute(params![subject.as_bytes().as_slice(), encode_state(&state)])
                .map_err(store_err)?;
            Ok(())
        }
        WriteOp::CreateApiKey(k) => {
            c.prepare_cached(
                "INSERT INTO api_keys (id, hash, role, purposes, recipient, label, created_at, revoked_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL)",
            )
            .map_err(store_err)?
            .execute(params![
                k.id,
                k.hash.as_slice(),
                k.role,
                serde_json::to_string(&k.purposes).unwrap_or_else(|_| "[]".into()),
                k.recipient,
                k.label,
                k.created_at
            ])
            .map_err(store_err)?;
            Ok(())
        }
        WriteOp::RevokeApiKey { id, at } => {
            let changed = c
                .prepare_cached(
                    "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
                )
                .map_err(store_err)?
                .execute(params![id, at])
                .map_err(store_err)?;
            if changed == 0 {
                return Err(BatchError::KeyNotFound);
            }
            Ok(())
        }
        WriteOp::RecordConsent(event) => record_consent(c, event),
        WriteOp::Suppress {
            kind,
            hash,
            at,
            reason,
        } => {
            c.prepare_cached("INSERT INTO suppression (kind, hash, at, reason) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (kind, hash) DO NOTHING")
                .map_err(store_err)?
                .execute(params![kind, hash.as_slice(), at, reason])
                .map_err(store_err)?;
            Ok(())
        }
        WriteOp::Unsuppress { kind, hash } => {
            c.prepare_cached("DELETE FROM suppression WHERE kind = ?1 AND hash = ?2")
                .map_err(store_err)?
                .execute(params![kind, hash.as_slice()])
                .map_err(store_err)?;
            Ok(())
        }
        WriteOp::LinkVisitor {
            visitor,
            subject,
            events,
        } => {
            let changed = c
                .prepare_cached("UPDATE visitors SET subject_id = ?2 WHERE id = ?1")
                .map_err(store_err)?
                .execute(params![visitor, subject.as_bytes().as_slice()])
                .map_err(store_err)?;
            if changed == 0 {
                return Err(BatchError::VisitorNotFound);
            }
            events.iter().try_for_each(|e| record_consent(c, e))
        }
        WriteOp::PutPolicyVersion {
            version,
            effective,
            sha256,
            source,
            at,
        } => {
            let known: Option<Vec<u8>> = c
                .prepare_cached("SELECT sha256 FROM policy_versions WHERE version = ?1")
                .map_err(store_err)?
                .query_row([version], |r| r.get(0))
                .optional()
                .map_err(store_err)?;
            match known {
                Some(h) if h == sha256 => Ok(()),
                Some(_) => Err(BatchError::PolicyVersionChanged(version.clone())),
                None => {
                    c.prepare_cached("INSERT INTO policy_versions (version, effective, sha256, source, loaded_at) VALUES (?1, ?2, ?3, ?4, ?5)")
                        .map_err(store_err)?
                        .execute(params![version, effective, sha256.as_slice(), source, at])
                        .map_err(store_err)?;
                    Ok(())
                }
            }
        }
    }
}

/// Appends the event and folds it into its holder's preferences.
fn record_consent(c: &Connection, e: &ConsentEvent) -> Result<(), BatchError> {
    c.prepare_cached(
        "INSERT INTO consent_events (id, at, subject_id, visitor_id, purpose, channel, action, policy_version, method, agent, wording_hash, ip_prefix, recorded_by, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )
    .map_err(store_err)?
    .execute(params![
        e.id.as_bytes().as_slice(),
        e.at,
        e.subject.as_ref().map(|s| s.as_bytes().to_vec()),
        e.visitor,
        e.purpose,
        e.channel,
        e.action.as_str(),
        e.policy_version,
        e.method,
        e.agent,
        e.wording_hash.map(|h| h.to_vec()),
        e.ip_prefix,
        e.recorded_by,
        e.expires_at
    ])
    .map_err(store_err)?;
    match e.holder() {
        Some(Holder::Subject(subject)) => {
            let (_, mut state) = load_for_update(c, &subject)?;
            state.preferences.apply(e);
            c.prepare_cached("UPDATE subjects SET state = ?2 WHERE id = ?1")
                .map_err(store_err)?
                .execute(params![subject.as_bytes().as_slice(), encode_state(&state)])
                .map_err(store_err)?;
            Ok(())
        }
        Some(Holder::Visitor(visitor)) => {
            let current: Option<Vec<u8>> = c
                .prepare_cached("SELECT state FROM visitors WHERE id = ?1")
                .map_err(store_err)?
                .query_row([&visitor], |r| r.get(0))
                .optional()
                .map_err(store_err)?;
            let mut prefs: Preferences = match &current {
                Some(bytes) => {
                    serde_json::from_slice(bytes).map_err(|x| BatchError::Store(x.to_string()))?
                }
                None => Preferences::default(),
            };
            prefs.apply(e);
            let bytes = serde_json::to_vec(&prefs).map_err(|x| BatchError::Store(x.to_string()))?;
            c.prepare_cached(
                "INSERT INTO visitors (id, created_at, subject_id, state) VALUES (?1, ?2, NULL, ?3)
                 ON CONFLICT (id) DO UPDATE SET state = excluded.state",
            )
            .map_err(store_err)?
            .execute(params![visitor, e.at, bytes])
            .map_err(store_err)?;
            Ok(())
        }
        None => Err(BatchError::Store(
            "a consent event needs a subject or a visitor".into(),
        )),
    }
}
