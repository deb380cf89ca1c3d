//! The scale-out backend: PostgreSQL, shared by several stateless nodes.
//!
//! Each node has one writer task with its own connection doing group commit,
//! as on SQLite. Across nodes, every group transaction first locks the audit
//! head row, which serialises the chain; rows of one subject are locked with
//! `FOR UPDATE` before they are rewritten. Reads take a connection from a
//! pool (deadpool-postgres) for each query.
//!
//! Connections use TLS after the URL's `sslmode` (see `connect`). A
//! connection that fails, or a database that is down or restarting, is
//! `StoreError::Unavailable` (503 with `Retry-After`), and the log says once
//! that the store went away and once that it came back.

use super::*;

mod agents;
mod connect;
mod reads;
mod requests;
mod retention;
mod writes;

use crate::audit::{self, AuditEntry, AuditKey};
pub use connect::pool_for;
use connect::{Connector, Health, Pool, describe, is_connection_error};
use sqlite::StoredRow;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_postgres::types::{FromSql, Type, WasNull, WrongType};
use tokio_postgres::{Client, GenericClient, Row};
use writes::writer_loop;

const MIGRATIONS: &[&str] = migrations!("postgres");
/// Read connections per node, made as needed.
const READERS: usize = 16;
/// Serialises migrations when several nodes start at once.
const MIGRATION_LOCK: i64 = 0x6375_7374_6f64;

use super::group::{Job, Queue};

#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    readers: Pool,
    writer: mpsc::Sender<Job>,
    audit_key: AuditKey,
    health: Arc<Health>,
}

/// A failure while opening or migrating: one that means the database is
/// not reachable is `Unavailable`.
fn backend(e: tokio_postgres::Error) -> StoreError {
    if is_connection_error(&e) {
        StoreError::Unavailable(describe(&e))
    } else {
        StoreError::Backend(describe(&e))
    }
}

async fn schema_version(c: &Client) -> Result<i64, StoreError> {
    c.batch_execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        .await
        .map_err(backend)?;
    let row = c
        .query_opt("SELECT value FROM meta WHERE key = 'schema_version'", &[])
        .await
        .map_err(backend)?;
    stored_version(row.as_ref())
}

/// The schema version a `meta` row holds, 0 for none; one that is not a
/// number is corrupt, never 0 (which would run every migration again).
fn stored_version(row: Option<&Row>) -> Result<i64, StoreError> {
    match row {
        Some(r) => sqlite::parse_version(&r.text(0, &Place::row("meta", "schema_version"))?),
        None => Ok(0),
    }
}

async fn apply_migrations(c: &mut Client) -> Result<(i64, i64), StoreError> {
    schema_version(c).await?;
    let tx = c.transaction().await.map_err(backend)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(backend)?;
    let from = stored_version(
        tx.query_opt("SELECT value FROM meta WHERE key = 'schema_version'", &[])
            .await
            .map_err(backend)?
            .as_ref(),
    )?;
    if from > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found: from,
            known: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        if i as i64 + 1 > from {
            tx.batch_execute(sql).await.map_err(backend)?;
        }
    }
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('schema_version', $1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&SCHEMA_VERSION.to_string()],
    )
    .await
    .map_err(backend)?;
    tx.commit().await.map_err(backend)?;
    Ok((from, SCHEMA_VERSION))
}

impl PgStore {
    pub async fn open(
        url: &DatabaseUrl,
        migrate: bool,
        audit_key: AuditKey,
    ) -> Result<PgStore, StoreError> {
        let connector = Connector::new(url)?;
        let mut writer = connector.open().await?;
        let found = schema_version(&writer).await?;
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
            apply_migrations(&mut writer).await?;
        }
        let health = Arc::new(Health::default());
        let readers = connector.pool(READERS, health.clone())?;
        let (tx, rx) = mpsc::channel::<Job>(4096);
        tokio::spawn(writer_loop(
            writer,
            rx,
            connector,
            audit_key.clone(),
            health.clone(),
        ));
        Ok(PgStore {
            inner: Arc::new(Inner {
                readers,
                writer: tx,
                audit_key,
                health,
            }),
        })
    }

    pub async fn migrate_only(url: &DatabaseUrl) -> Result<(i64, i64), StoreError> {
        let mut c = Connector::new(url)?.open().await?;
        apply_migrations(&mut c).await
    }

    pub async fn write(&self, batch: Batch) -> Result<Result<Committed, BatchError>, StoreError> {
        Queue::submit(&self.inner.writer, batch).await
    }
}

/// The audit head: the query's error outside, a head that cannot be decoded
/// inside.
async fn load_head(
    c: &impl GenericClient,
    lock: bool,
) -> Result<Result<(i64, [u8; 32]), StoreError>, tokio_postgres::Error> {
    let sql = if lock {
        "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE"
    } else {
        "SELECT seq, hash FROM audit_head WHERE id = 1"
    };
    let row = c.query_opt(sql, &[]).await?;
    Ok(sqlite::head_row(row.as_ref()))
}

/// PostgreSQL rows are read with `try_get` only: a NULL or a value of
/// another type is a `Corrupt` error naming where it was, never a panic.
impl sqlite::StoredRow for Row {
    fn column(&self, i: usize) -> &str {
        self.columns().get(i).map_or("?", |c| c.name())
    }
    fn text(&self, i: usize, at: &Place) -> Result<String, StoreError> {
        col(self, i, at)
    }
    fn opt_text(&self, i: usize, at: &Place) -> Result<Option<String>, StoreError> {
        col(self, i, at)
    }
    fn int(&self, i: usize, at: &Place) -> Result<i64, StoreError> {
        self.opt_int(i, at)?
            .ok_or_else(|| at.corrupt(self.column(i), "is NULL"))
    }
    /// INTEGER columns (kek_id) are read as i32, BIGINT ones as i64.
    fn opt_int(&self, i: usize, at: &Place) -> Result<Option<i64>, StoreError> {
        match self.columns().get(i).map(|c| c.type_()) {
            Some(&Type::INT4) => Ok(col::<Option<i32>>(self, i, at)?.map(i64::from)),
            Some(&Type::INT2) => Ok(col::<Option<i16>>(self, i, at)?.map(i64::from)),
            _ => col(self, i, at),
        }
    }
    fn flag(&self, i: usize, at: &Place) -> Result<bool, StoreError> {
        col(self, i, at)
    }
    fn blob(&self, i: usize, at: &Place) -> Result<Vec<u8>, StoreError> {
        col(self, i, at)
    }
    fn opt_blob(&self, i: usize, at: &Place) -> Result<Option<Vec<u8>>, StoreError> {
        col(self, i, at)
    }
    fn opt_uuid(&self, i: usize, at: &Place) -> Result<Option<Uuid>, StoreError> {
        col(self, i, at)
    }
}

/// Column `i` of a row, or a `Corrupt` error naming where it was. The
/// client's own message is not passed on: a decoder's may quote the value.
fn col<'a, T: FromSql<'a>>(r: &'a Row, i: usize, at: &Place) -> Result<T, StoreError> {
    r.try_get(i).map_err(|e| {
        let cause = std::error::Error::source(&e);
        let why = match cause {
            Some(c) if c.is::<WasNull>() => "is NULL".to_string(),
            Some(c) => match c.downcast_ref::<WrongType>() {
                // The Rust and PostgreSQL type names only.
                Some(wrong) => wrong.to_string(),
                None => "cannot be decoded".into(),
            },
            None => "cannot be read".into(),
        };
        at.corrupt(sqlite::StoredRow::column(r, i), why)
    })
}

#[cfg(test)]
#[test]
fn the_schema_version_counts_the_migrations() {
    assert_eq!(i64::try_from(MIGRATIONS.len()).ok(), Some(SCHEMA_VERSION));
}
