//! The scale-out backend: PostgreSQL, shared by several stateless nodes.
//!
//! Each node has one writer task with its own connection doing group commit,
//! as on SQLite. Across nodes, every group transaction first locks the audit
//! head row, which serialises the chain; rows of one subject are locked with
//! `FOR UPDATE` before they are rewritten. Reads share a few connections, on
//! which tokio-postgres pipelines concurrent queries.

use super::*;
use crate::audit::{self, AuditDraft, AuditEntry, GENESIS};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_postgres::{Client, GenericClient, NoTls, Row};

const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/postgres/0001_init.sql"),
    include_str!("../../migrations/postgres/0002_consent.sql"),
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

    pub async fn subject(&self, id: Uuid) -> Result<Option<SubjectRecord>, StoreError> {
        let c = self.reader().await?;
        let row = c
            .query_opt(
                "SELECT id, wrapped_key, kek_id, created_at, erased_at, fields, state FROM subjects WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(backend)?;
        row.map(|r| subject_row(&r)).transpose()
    }

    pub async fn subject_by_lookup(
        &self,
        kind: &str,
        hash: &[u8; 32],
    ) -> Result<Option<SubjectRecord>, StoreError> {
        let c = self.reader().await?;
        let row = c
            .query_opt(
                "SELECT s.id, s.wrapped_key, s.kek_id, s.created_at, s.erased_at, s.fields, s.state
                 FROM lookup l JOIN subjects s ON s.id = l.subject_id
                 WHERE l.kind = $1 AND l.hash = $2",
                &[&kind, &hash.as_slice()],
            )
            .await
            .map_err(backend)?;
        row.map(|r| subject_row(&r)).transpose()
    }

    pub async fn field_history(&self, subject: Uuid) -> Result<Vec<HistoricField>, StoreError> {
        let c = self.reader().await?;
        let rows = c
            .query(
                "SELECT field, sealed, provenance, replaced_at FROM field_history WHERE subject_id = $1 ORDER BY id",
                &[&subject],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                let provenance: Vec<u8> = r.get(2);
                sqlite::historic(r.get(0), r.get(1), &provenance, r.get(3))
            })
            .collect()
    }

    pub async fn api_key_by_hash(
        &self,
        hash: &[u8; 32],
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        let c = self.reader().await?;
        let row = c
            .query_opt(
                &format!("{API_KEY_COLUMNS} WHERE hash = $1"),
                &[&hash.as_slice()],
            )
            .await
            .map_err(backend)?;
        Ok(row.map(|r| api_key_row(&r)))
    }

    pub async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let c = self.reader().await?;
        let rows = c
            .query(&format!("{API_KEY_COLUMNS} ORDER BY created_at, id"), &[])
            .await
            .map_err(backend)?;
        Ok(rows.iter().map(api_key_row).collect())
    }

    pub async fn audit_page(&self, after: i64, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        let c = self.reader().await?;
        let rows = c
            .query(
                "SELECT seq, at, actor, action, purpose, subject_id, decision, reason, prev_hash, hash
                 FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&after, &limit],
            )
            .await
            .map_err(backend)?;
        Ok(rows.iter().map(audit_row).collect())
    }

    pub async fn audit_head(&self) -> Result<Option<(i64, [u8; 32])>, StoreError> {
        let c = self.reader().await?;
        let (seq, hash) = load_head(&*c, false).await.map_err(backend)?;
        Ok((seq > 0).then_some((seq, hash)))
    }

    pub async fn outbox_page(&self, after: i64, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
        let c = self.reader().await?;
        let rows = c
            .query(
                "SELECT id, at, topic, subject_id, payload FROM outbox WHERE id > $1 ORDER BY id LIMIT $2",
                &[&after, &limit],
            )
            .await
            .map_err(backend)?;
        Ok(rows
            .iter()
            .map(|r| OutboxRow {
                id: r.get(0),
                at: r.get(1),
                topic: r.get(2),
                subject: r.get(3),
                payload: r.get(4),
            })
            .collect())
    }

    pub async fn consent_events(&self, holder: &Holder) -> Result<Vec<ConsentEvent>, StoreError> {
        let c = self.reader().await?;
        let rows = match holder {
            Holder::Subject(id) => {
                c.query(
                    &format!("{CONSENT_COLUMNS} WHERE subject_id = $1 ORDER BY seq"),
                    &[id],
                )
                .await
            }
            Holder::Visitor(v) => {
                c.query(
                    &format!("{CONSENT_COLUMNS} WHERE visitor_id = $1 ORDER BY seq"),
                    &[v],
                )
                .await
            }
        }
        .map_err(backend)?;
        Ok(rows.iter().map(consent_row).collect())
    }

    pub async fn consent_event(&self, id: Uuid) -> Result<Option<ConsentEvent>, StoreError> {
        let c = self.reader().await?;
        let row = c
            .query_opt(&format!("{CONSENT_COLUMNS} WHERE id = $1"), &[&id])
            .await
            .map_err(backend)?;
        Ok(row.as_ref().map(consent_row))
    }

    pub async fn visitor(&self, id: &str) -> Result<Option<VisitorRecord>, StoreError> {
        let c = self.reader().await?;
        let row = c
            .query_opt(
                "SELECT created_at, subject_id, state FROM visitors WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(backend)?;
        row.map(|r| {
            let state: Vec<u8> = r.get(2);
            Ok(VisitorRecord {
                id: id.to_string(),
                created_at: r.get(0),
                subject: r.get(1),
                preferences: serde_json::from_slice(&state)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            })
        })
        .transpose()
    }

    pub async fn suppressed(&self, kind: &str, hash: &[u8; 32]) -> Result<bool, StoreError> {
        let c = self.reader().await?;
        let row = c
            .query_opt(
                "SELECT 1 FROM suppression WHERE kind = $1 AND hash = $2",
                &[&kind, &hash.as_slice()],
            )
            .await
            .map_err(backend)?;
        Ok(row.is_some())
    }

    pub async fn lookup_page(
        &self,
        kind: &str,
        after: Option<[u8; 32]>,
        limit: i64,
    ) -> Result<Vec<LookupState>, StoreError> {
        let c = self.reader().await?;
        let after = after.unwrap_or([0; 32]);
        let rows = c
            .query(
                "SELECT l.hash, s.id, (s.wrapped_key IS NULL OR s.erased_at IS NOT NULL), s.state
                 FROM lookup l JOIN subjects s ON s.id = l.subject_id
                 WHERE l.kind = $1 AND l.hash > $2 ORDER BY l.hash LIMIT $3",
                &[&kind, &after.as_slice(), &limit],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                let hash: Vec<u8> = r.get(0);
                let state: Vec<u8> = r.get(3);
                Ok(LookupState {
                    hash: hash_from(&hash),
                    subject: r.get(1),
                    erased: r.get(2),
                    state: decode_state(&state).map_err(StoreError::Corrupt)?,
                })
            })
            .collect()
    }

    pub async fn suppression_page(
        &self,
        kind: &str,
        after: Option<[u8; 32]>,
        limit: i64,
    ) -> Result<Vec<[u8; 32]>, StoreError> {
        let c = self.reader().await?;
        let after = after.unwrap_or([0; 32]);
        let rows = c
            .query(
                "SELECT hash FROM suppression WHERE kind = $1 AND hash > $2 ORDER BY hash LIMIT $3",
                &[&kind, &after.as_slice(), &limit],
            )
            .await
            .map_err(backend)?;
        Ok(rows
            .iter()
            .map(|r| hash_from(&r.get::<_, Vec<u8>>(0)))
            .collect())
    }

    pub async fn check_lookup(
        &self,
        kind: &str,
        hash: &[u8; 32],
        suppress_kind: &str,
        suppress_hash: &[u8; 32],
    ) -> Result<(bool, Option<LookupState>), StoreError> {
        let c = self.reader().await?;
        let row = c
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM suppression WHERE kind = $3 AND hash = $4),
                        s.id, (s.wrapped_key IS NULL OR s.erased_at IS NOT NULL), s.state
                 FROM (SELECT 1) AS one
                 LEFT JOIN lookup l ON l.kind = $1 AND l.hash = $2
                 LEFT JOIN subjects s ON s.id = l.subject_id",
                &[
                    &kind,
                    &hash.as_slice(),
                    &suppress_kind,
                    &suppress_hash.as_slice(),
                ],
            )
            .await
            .map_err(backend)?;
        let suppressed: bool = row.get(0);
        let id: Option<Uuid> = row.get(1);
        let erased: Option<bool> = row.get(2);
        let state: Option<Vec<u8>> = row.get(3);
        let found = match (id, state) {
            (Some(id), Some(state)) => Some(LookupState {
                hash: *hash,
                subject: id,
                erased: erased.unwrap_or(true),
                state: decode_state(&state).map_err(StoreError::Corrupt)?,
            }),
            _ => None,
        };
        Ok((suppressed, found))
    }

    pub async fn state_by_lookup(
        &self,
        kind: &str,
        hash: &[u8; 32],
    ) -> Result<Option<LookupState>, StoreError> {
        let c = self.reader().await?;
        let row = c
            .query_opt(
                "SELECT s.id, (s.wrapped_key IS NULL OR s.erased_at IS NOT NULL), s.state
                 FROM lookup l JOIN subjects s ON s.id = l.subject_id
                 WHERE l.kind = $1 AND l.hash = $2",
                &[&kind, &hash.as_slice()],
            )
            .await
            .map_err(backend)?;
        row.map(|r| {
            let state: Vec<u8> = r.get(2);
            Ok(LookupState {
                hash: *hash,
                subject: r.get(0),
                erased: r.get(1),
                state: decode_state(&state).map_err(StoreError::Corrupt)?,
            })
        })
        .transpose()
    }

    pub async fn policy_source(&self, version: &str) -> Result<Option<String>, StoreError> {
        let c = self.reader().await?;
        let row = c
            .query_opt(
                "SELECT source FROM policy_versions WHERE version = $1",
                &[&version],
            )
            .await
            .map_err(backend)?;
        Ok(row.map(|r| r.get(0)))
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let c = self.reader().await?;
        c.query_one("SELECT 1", &[])
            .await
            .map_err(backend)
            .map(|_| ())
    }
}

const CONSENT_COLUMNS: &str = "SELECT id, at, subject_id, visitor_id, purpose, channel, action, policy_version, method, agent, wording_hash, ip_prefix, recorded_by, expires_at FROM consent_events";

fn consent_row(r: &Row) -> ConsentEvent {
    let action: String = r.get(6);
    let wording: Option<Vec<u8>> = r.get(10);
    ConsentEvent {
        id: r.get(0),
        at: r.get(1),
        subject: r.get(2),
        visitor: r.get(3),
        purpose: r.get(4),
        channel: r.get(5),
        action: ConsentAction::parse(&action).unwrap_or(ConsentAction::Refuse),
        policy_version: r.get(7),
        method: r.get(8),
        agent: r.get(9),
        wording_hash: wording.map(|w| hash_from(&w)),
        ip_prefix: r.get(11),
        recorded_by: r.get(12),
        expires_at: r.get(13),
    }
}

const API_KEY_COLUMNS: &str =
    "SELECT id, hash, role, purposes, recipient, label, created_at, revoked_at FROM api_keys";

fn subject_row(r: &Row) -> Result<SubjectRecord, StoreError> {
    let kek_id: i32 = r.get(2);
    let fields: Vec<u8> = r.get(5);
    let state: Vec<u8> = r.get(6);
    sqlite::build_subject(
        r.get(0),
        r.get(1),
        u32::try_from(kek_id).unwrap_or(0),
        r.get(3),
        r.get(4),
        &fields,
        &state,
    )
}

fn api_key_row(r: &Row) -> ApiKeyRecord {
    let hash: Vec<u8> = r.get(1);
    let purposes: String = r.get(3);
    ApiKeyRecord {
        id: r.get(0),
        hash: hash_from(&hash),
        role: r.get(2),
        purposes: serde_json::from_str(&purposes).unwrap_or_default(),
        recipient: r.get(4),
        label: r.get(5),
        created_at: r.get(6),
        revoked_at: r.get(7),
    }
}

fn audit_row(r: &Row) -> AuditEntry {
    let prev: Vec<u8> = r.get(8);
    let hash: Vec<u8> = r.get(9);
    AuditEntry {
        seq: r.get(0),
        draft: AuditDraft {
            at: r.get(1),
            actor: r.get(2),
            action: r.get(3),
            purpose: r.get(4),
            subject: r.get(5),
            decision: r.get(6),
            reason: r.get(7),
        },
        prev_hash: hash_from(&prev),
        hash: hash_from(&hash),
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

async fn writer_loop(mut client: Client, mut rx: mpsc::Receiver<Job>, url: String) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        if client.is_closed() {
            match connect(&url).await {
                Ok(c) => client = c,
                Err(_) => {
                    for job in jobs {
                        let _ = job.reply.send(Err(StoreError::Unavailable(
                            "the writer lost its connection".into(),
                        )));
                    }
                    continue;
                }
            }
        }
        match commit_group(&mut client, &jobs).await {
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

async fn commit_group(
    client: &mut Client,
    jobs: &[Job],
) -> Result<Vec<Result<Committed, BatchError>>, tokio_postgres::Error> {
    let mut tx = client.transaction().await?;
    let head = load_head(&tx, true).await?;
    let mut current = head;
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in jobs {
        let sp = tx.savepoint("batch").await?;
        match apply_batch(&sp, &job.batch, current).await {
            Ok(Ok((committed, new_head))) => {
                sp.commit().await?;
                current = new_head;
                outcomes.push(Ok(committed));
            }
            Ok(Err(e)) => {
                sp.rollback().await?;
                outcomes.push(Err(e));
            }
            Err(e) => {
                sp.rollback().await?;
                outcomes.push(Err(BatchError::Store(e.to_string())));
            }
        }
    }
    if current != head {
        tx.execute(
            "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1",
            &[&current.0, &current.1.as_slice()],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(outcomes)
}

type Applied = Result<(Committed, (i64, [u8; 32])), BatchError>;

async fn apply_batch(
    c: &tokio_postgres::Transaction<'_>,
    batch: &Batch,
    head: (i64, [u8; 32]),
) -> Result<Applied, tokio_postgres::Error> {
    for op in &batch.ops {
        if let Err(e) = apply_op(c, op).await? {
            return Ok(Err(e));
        }
    }
    let entries = audit::chain(head, &batch.audit);
    for e in &entries {
        let d = &e.draft;
        c.execute(
            "INSERT INTO audit (seq, at, actor, action, purpose, subject_id, decision, reason, prev_hash, hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[&e.seq, &d.at, &d.actor, &d.action, &d.purpose, &d.subject, &d.decision, &d.reason, &e.prev_hash.as_slice(), &e.hash.as_slice()],
        )
        .await?;
    }
    for ev in &batch.outbox {
        c.execute(
            "INSERT INTO outbox (at, topic, subject_id, payload) VALUES ($1, $2, $3, $4)",
            &[&ev.at, &ev.topic, &ev.subject, &ev.payload],
        )
        .await?;
    }
    let new_head = entries.last().map_or(head, |e| (e.seq, e.hash));
    Ok(Ok((
        Committed {
            audit_seqs: entries.iter().map(|e| e.seq).collect(),
        },
        new_head,
    )))
}

type OpResult = Result<Result<(), BatchError>, tokio_postgres::Error>;

async fn load_for_update(
    c: &tokio_postgres::Transaction<'_>,
    subject: &Uuid,
) -> Result<Result<(Vec<StoredField>, SubjectStateRecord), BatchError>, tokio_postgres::Error> {
    let row = c
        .query_opt(
            "SELECT erased_at, fields, state FROM subjects WHERE id = $1 FOR UPDATE",
            &[subject],
        )
        .await?;
    let Some(row) = row else {
        return Ok(Err(BatchError::SubjectNotFound));
    };
    let erased: Option<i64> = row.get(0);
    if erased.is_some() {
        return Ok(Err(BatchError::SubjectErased));
    }
    let fields: Vec<u8> = row.get(1);
    let state: Vec<u8> = row.get(2);
    Ok((|| {
        Ok((
            decode(&fields).map_err(BatchError::Store)?,
            decode_state(&state).map_err(BatchError::Store)?,
        ))
    })())
}

async fn put_lookups(
    c: &tokio_postgres::Transaction<'_>,
    subject: &Uuid,
    lookups: &[Lookup],
) -> OpResult {
    for l in lookups {
        let owner = c
            .query_opt(
                "SELECT subject_id FROM lookup WHERE kind = $1 AND hash = $2",
                &[&l.kind, &l.hash.as_slice()],
            )
            .await?;
        match owner.map(|r| r.get::<_, Uuid>(0)) {
            Some(o) if o == *subject => continue,
            Some(_) => return Ok(Err(BatchError::LookupTaken(l.kind.clone()))),
            None => {}
        }
        c.execute(
            "DELETE FROM lookup WHERE subject_id = $1 AND kind = $2",
            &[subject, &l.kind],
        )
        .await?;
        let inserted = c
            .execute(
                "INSERT INTO lookup (kind, hash, subject_id) VALUES ($1, $2, $3) ON CONFLICT (kind, hash) DO NOTHING",
                &[&l.kind, &l.hash.as_slice(), subject],
            )
            .await?;
        if inserted == 0 {
            // Another node took it between the check and the insert.
            return Ok(Err(BatchError::LookupTaken(l.kind.clone())));
        }
    }
    Ok(Ok(()))
}

async fn apply_op(c: &tokio_postgres::Transaction<'_>, op: &WriteOp) -> OpResult {
    match op {
        WriteOp::CreateSubject {
            id,
            wrapped_key,
            created_at,
            fields,
            lookups,
        } => {
            let kek_id = i32::try_from(wrapped_key.kek_id).unwrap_or(i32::MAX);
            c.execute(
                "INSERT INTO subjects (id, wrapped_key, kek_id, created_at, erased_at, fields, state)
                 VALUES ($1, $2, $3, $4, NULL, $5, $6)",
                &[id, &wrapped_key.bytes, &kek_id, created_at, &encode(fields), &encode_state(&SubjectStateRecord::default())],
            )
            .await?;
            put_lookups(c, id, lookups).await
        }
        WriteOp::PutFields {
            subject,
            fields,
            lookups,
            at,
        } => {
            let (mut current, _) = match load_for_update(c, subject).await? {
                Ok(x) => x,
                Err(e) => return Ok(Err(e)),
            };
            for new in fields {
                match current.iter_mut().find(|f| f.name == new.name) {
                    Some(old) => {
                        c.execute(
                            "INSERT INTO field_history (subject_id, field, sealed, provenance, replaced_at)
                             VALUES ($1, $2, $3, $4, $5)",
                            &[subject, &old.name, &old.sealed, &encode(&Some(&old.provenance)), at],
                        )
                        .await?;
                        *old = new.clone();
                    }
                    None => current.push(new.clone()),
                }
            }
            c.execute(
                "UPDATE subjects SET fields = $2 WHERE id = $1",
                &[subject, &encode(&current)],
            )
            .await?;
            put_lookups(c, subject, lookups).await
        }
        WriteOp::PutRelationship {
            subject,
            relationship,
        } => {
            let (_, mut state) = match load_for_update(c, subject).await? {
                Ok(x) => x,
                Err(e) => return Ok(Err(e)),
            };
            match state
                .relationships
                .iter_mut()
                .find(|r| r.id == relationship.id)
            {
                Some(r) => *r = relationship.clone(),
                None => state.relationships.push(relationship.clone()),
            }
            c.execute(
                "UPDATE subjects SET state = $2 WHERE id = $1",
                &[subject, &encode_state(&state)],
            )
            .await?;
            Ok(Ok(()))
        }
        WriteOp::CreateApiKey(k) => {
            let purposes = serde_json::to_string(&k.purposes).unwrap_or_else(|_| "[]".into());
            c.execute(
                "INSERT INTO api_keys (id, hash, role, purposes, recipient, label, created_at, revoked_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
                &[&k.id, &k.hash.as_slice(), &k.role, &purposes, &k.recipient, &k.label, &k.created_at],
            )
            .await?;
            Ok(Ok(()))
        }
        WriteOp::RevokeApiKey { id, at } => {
            let changed = c
                .execute(
                    "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1",
                    &[id, at],
                )
                .await?;
            Ok(if changed == 0 {
                Err(BatchError::KeyNotFound)
            } else {
                Ok(())
            })
        }
        WriteOp::RecordConsent(event) => record_consent(c, event).await,
        WriteOp::Suppress {
            kind,
            hash,
            at,
            reason,
        } => {
            c.execute(
                "INSERT INTO suppression (kind, hash, at, reason) VALUES ($1, $2, $3, $4) ON CONFLICT (kind, hash) DO NOTHING",
                &[kind, &hash.as_slice(), at, reason],
            )
            .await?;
            Ok(Ok(()))
        }
        WriteOp::Unsuppress { kind, hash } => {
            c.execute(
                "DELETE FROM suppression WHERE kind = $1 AND hash = $2",
                &[kind, &hash.as_slice()],
            )
            .await?;
            Ok(Ok(()))
        }
        WriteOp::LinkVisitor {
            visitor,
            subject,
            events,
        } => {
            let changed = c
                .execute(
                    "UPDATE visitors SET subject_id = $2 WHERE id = $1",
                    &[visitor, subject],
                )
                .await?;
            if changed == 0 {
                return Ok(Err(BatchError::VisitorNotFound));
            }
            for e in events {
                if let Err(err) = record_consent(c, e).await? {
                    return Ok(Err(err));
                }
            }
            Ok(Ok(()))
        }
        WriteOp::PutPolicyVersion {
            version,
            effective,
            sha256,
            source,
            at,
        } => {
            let known = c
                .query_opt(
                    "SELECT sha256 FROM policy_versions WHERE version = $1 FOR UPDATE",
                    &[version],
                )
                .await?;
            match known.map(|r| r.get::<_, Vec<u8>>(0)) {
                Some(h) if h == sha256 => Ok(Ok(())),
                Some(_) => Ok(Err(BatchError::PolicyVersionChanged(version.clone()))),
                None => {
                    c.execute(
                        "INSERT INTO policy_versions (version, effective, sha256, source, loaded_at) VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (version) DO NOTHING",
                        &[version, effective, &sha256.as_slice(), source, at],
                    )
                    .await?;
                    Ok(Ok(()))
                }
            }
        }
    }
}

async fn record_consent(c: &tokio_postgres::Transaction<'_>, e: &ConsentEvent) -> OpResult {
    let action = e.action.as_str();
    let wording = e.wording_hash.map(|h| h.to_vec());
    c.execute(
        "INSERT INTO consent_events (id, at, subject_id, visitor_id, purpose, channel, action, policy_version, method, agent, wording_hash, ip_prefix, recorded_by, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        &[&e.id, &e.at, &e.subject, &e.visitor, &e.purpose, &e.channel, &action, &e.policy_version, &e.method, &e.agent, &wording, &e.ip_prefix, &e.recorded_by, &e.expires_at],
    )
    .await?;
    match e.holder() {
        Some(Holder::Subject(subject)) => {
            let (_, mut state) = match load_for_update(c, &subject).await? {
                Ok(x) => x,
                Err(err) => return Ok(Err(err)),
            };
            state.preferences.apply(e);
            c.execute(
                "UPDATE subjects SET state = $2 WHERE id = $1",
                &[&subject, &encode_state(&state)],
            )
            .await?;
            Ok(Ok(()))
        }
        Some(Holder::Visitor(visitor)) => {
            let current = c
                .query_opt(
                    "SELECT state FROM visitors WHERE id = $1 FOR UPDATE",
                    &[&visitor],
                )
                .await?;
            let mut prefs: Preferences = match current.map(|r| r.get::<_, Vec<u8>>(0)) {
                Some(bytes) => match serde_json::from_slice(&bytes) {
                    Ok(p) => p,
                    Err(x) => return Ok(Err(BatchError::Store(x.to_string()))),
                },
                None => Preferences::default(),
            };
            prefs.apply(e);
            let bytes = serde_json::to_vec(&prefs).unwrap_or_default();
            c.execute(
                "INSERT INTO visitors (id, created_at, subject_id, state) VALUES ($1, $2, NULL, $3)
                 ON CONFLICT (id) DO UPDATE SET state = excluded.state",
                &[&visitor, &e.at, &bytes],
            )
            .await?;
            Ok(Ok(()))
        }
        None => Ok(Err(BatchError::Store(
            "a consent event needs a subject or a visitor".into(),
        ))),
    }
}
