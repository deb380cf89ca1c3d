//! The scale-out backend: PostgreSQL, shared by several stateless nodes.
//!
//! Each node has one writer task with its own connection doing group commit,
//! as on SQLite. Across nodes, every group transaction first locks the audit
//! head row, which serialises the chain; rows of one subject are locked with
//! `FOR UPDATE` before they are rewritten. Reads share a few connections, on
//! which tokio-postgres pipelines concurrent queries.

use super::*;

mod reads;
mod writes;

use crate::audit::{self, AuditDraft, AuditEntry, GENESIS};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_postgres::{Client, GenericClient, NoTls, Row};
use writes::writer_loop;

const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/postgres/0001_init.sql"),
    include_str!("../../../migrations/postgres/0002_consent.sql"),
    include_str!("../../../migrations/postgres/0003_lookup_state.sql"),
    include_str!("../../../migrations/postgres/0004_kek_index.sql"),
];
const MAX_GROUP: usize = 512;
const READERS: usize = 4;
/// Serialises migrations when several nodes start at once.
const MIGRATION_LOCK: i64 = 0x6375_7374_6f64;

type Reply = oneshot::Sender<Result<Result<Committed, BatchError>, StoreError>>;

struct Job {
    batch: Batch,
    reply: Reply,
}

#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    readers: Vec<Mutex<Option<Arc<Client>>>>,
    next: AtomicUsize,
    writer: mpsc::Sender<Job>,
}

fn backend(e: tokio_postgres::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

async fn connect(url: &str) -> Result<Client, StoreError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "a PostgreSQL connection closed");
        }
    });
    Ok(client)
}

async fn schema_version(c: &Client) -> Result<i64, StoreError> {
    c.batch_execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        .await
        .map_err(backend)?;
    let row = c
        .query_opt("SELECT value FROM meta WHERE key = 'schema_version'", &[])
        .await
        .map_err(backend)?;
    Ok(row
        .and_then(|r| r.get::<_, String>(0).parse().ok())
        .unwrap_or(0))
}

async fn apply_migrations(c: &mut Client) -> Result<(i64, i64), StoreError> {
    schema_version(c).await?;
    let tx = c.transaction().await.map_err(backend)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(backend)?;
    let from = tx
        .query_opt("SELECT value FROM meta WHERE key = 'schema_version'", &[])
        .await
        .map_err(backend)?
        .and_then(|r| r.get::<_, String>(0).parse::<i64>().ok())
        .unwrap_or(0);
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
    pub async fn open(url: &str, migrate: bool) -> Result<PgStore, StoreError> {
        let mut writer = connect(url).await?;
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
        let (tx, rx) = mpsc::channel::<Job>(4096);
        tokio::spawn(writer_loop(writer, rx, url.to_string()));
        Ok(PgStore {
            inner: Arc::new(Inner {
                url: url.to_string(),
                readers: (0..READERS).map(|_| Mutex::new(None)).collect(),
                next: AtomicUsize::new(0),
                writer: tx,
            }),
        })
    }

    pub async fn migrate_only(url: &str) -> Result<(i64, i64), StoreError> {
        let mut c = connect(url).await?;
        apply_migrations(&mut c).await
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

    /// A read connection, reconnecting a slot whose connection has closed.
    async fn reader(&self) -> Result<Arc<Client>, StoreError> {
        let i = self.inner.next.fetch_add(1, Ordering::Relaxed) % READERS;
        let Some(slot) = self.inner.readers.get(i) else {
            return Err(StoreError::Backend("no reader slot".into()));
        };
        let mut slot = slot.lock().await;
        match slot.as_ref() {
            Some(c) if !c.is_closed() => Ok(c.clone()),
            _ => {
                let c = Arc::new(connect(&self.inner.url).await?);
                *slot = Some(c.clone());
                Ok(c)
            }
        }
    }
}

async fn load_head(
    c: &impl GenericClient,
    lock: bool,
) -> Result<(i64, [u8; 32]), tokio_postgres::Error> {
    let sql = if lock {
        "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE"
    } else {
        "SELECT seq, hash FROM audit_head WHERE id = 1"
    };
    let row = c.query_opt(sql, &[]).await?;
    Ok(row.map_or((0, GENESIS), |r| {
        let hash: Vec<u8> = r.get(1);
        (r.get(0), hash_from(&hash))
    }))
}
