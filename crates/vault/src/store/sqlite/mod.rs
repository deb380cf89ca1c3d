//! The embedded backend: one SQLite file in WAL mode.
//!
//! A dedicated writer thread owns the only writing connection and applies
//! group-committed transactions with `synchronous=FULL` (one fsync per group,
//! not per request). Reads use a small pool of read-only connections and run
//! inline: a primary-key lookup on a warm page cache takes microseconds, less
//! than handing the work to another thread would. Checkpoints run on a third
//! thread (`checkpoint`).

use super::*;

pub(super) mod agents;
mod checkpoint;
mod reads;
pub(super) mod requests;
pub(super) mod retention;
mod writes;

use crate::audit::{self, AuditEntry, AuditKey, GENESIS};
use crate::crypto::WrappedKey;
pub(super) use reads::{
    API_KEY_COLUMNS, AUDIT_COLUMNS, CONSENT_COLUMNS, HISTORY_COLUMNS, OUTBOX_COLUMNS,
    SUBJECT_COLUMNS, StoredRow, api_key_row, audit_row, check_row, consent_row, data_key_row,
    head_row, historic_row, kek_count_row, lookup_row, outbox_row, state_row, subject_row,
    visitor_row,
};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use writes::writer_loop;

const MIGRATIONS: &[&str] = migrations!("sqlite");
const READERS: usize = 8;

use super::group::{Job, Queue};

#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    readers: Mutex<Vec<Connection>>,
    writer: mpsc::Sender<Job>,
    audit_key: AuditKey,
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
    let mut stmt = conn
        .prepare("SELECT value FROM meta WHERE key = 'schema_version'")
        .map_err(backend)?;
    let v = reads::first(&mut stmt, [], |r| r.text(0, &version_place()))?;
    v.as_deref().map_or(Ok(0), parse_version)
}

fn version_place() -> Place {
    Place::row("meta", "schema_version")
}

/// A stored schema version; one that is not a number is corrupt, never 0
/// (which would run every migration again).
pub(super) fn parse_version(text: &str) -> Result<i64, StoreError> {
    text.parse()
        .map_err(|_| version_place().corrupt("value", "is not a schema version number"))
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
    pub fn open(
        path: &Path,
        migrate: bool,
        audit_key: AuditKey,
    ) -> Result<SqliteStore, StoreError> {
        create_private_dir(path)?;
        let mut conn = open_connection(path, false)?;
        check_schema(&mut conn, migrate)?;
        // The one writer's cache is never emptied by another connection's
        // commit, so it keeps the pages every write touches (the lookup and
        // subjects tables, the ledger's indexes) instead of reading them
        // back from the OS: 64 MiB, allocated as used.
        conn.pragma_update(None, "cache_size", -65_536i64)
            .map_err(backend)?;
        conn.pragma_update(
            None,
            "wal_autocheckpoint",
            checkpoint::WRITER_BACKSTOP_PAGES,
        )
        .map_err(backend)?;
        let nudge = checkpoint::start(open_connection(path, false)?)
            .map_err(|e| StoreError::Backend(format!("cannot start the checkpointer: {e}")))?;
        let (tx, rx) = mpsc::channel::<Job>(4096);
        let writer_key = audit_key.clone();
        std::thread::Builder::new()
            .name("custodian-sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx, &nudge, &writer_key))
            .map_err(|e| StoreError::Backend(format!("cannot start the writer: {e}")))?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                readers: Mutex::new(Vec::new()),
                writer: tx,
                audit_key,
            }),
        })
    }

    pub fn migrate_only(path: &Path) -> Result<(i64, i64), StoreError> {
        create_private_dir(path)?;
        let mut conn = open_connection(path, false)?;
        apply_migrations(&mut conn)
    }

    pub async fn write(&self, batch: Batch) -> Result<Result<Committed, BatchError>, StoreError> {
        Queue::submit(&self.inner.writer, batch).await
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
}

const HEAD: &str = "SELECT seq, hash FROM audit_head WHERE id = 1";

fn load_head(c: &Connection) -> Result<(i64, [u8; 32]), StoreError> {
    let mut stmt = c.prepare_cached(HEAD).map_err(backend)?;
    let mut rows = stmt.query([]).map_err(backend)?;
    head_row(rows.next().map_err(backend)?)
}

/// The head for the writer, inside its transaction: a head that cannot be
/// decoded fails the group (as a conversion failure carrying the `Corrupt`
/// error), so nothing is chained onto it.
fn read_head(c: &Connection) -> rusqlite::Result<(i64, [u8; 32])> {
    let mut stmt = c.prepare_cached(HEAD)?;
    let mut rows = stmt.query([])?;
    head_row(rows.next()?).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Blob, Box::new(e))
    })
}

#[cfg(test)]
#[test]
fn the_schema_version_counts_the_migrations() {
    assert_eq!(i64::try_from(MIGRATIONS.len()).ok(), Some(SCHEMA_VERSION));
}
