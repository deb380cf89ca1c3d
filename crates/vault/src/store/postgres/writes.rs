//! Writes: the writer task, group commit, and how each operation of a
//! batch is applied inside the group's transaction.

use super::*;
use crate::store::group::{Head, Outcome, Queue, committed};

pub(super) async fn writer_loop(
    mut client: Client,
    mut rx: mpsc::Receiver<Job>,
    connector: Connector,
    audit_key: AuditKey,
    health: Arc<Health>,
) {
    while let Some(first) = rx.recv().await {
        let jobs = Queue::gather(first, &mut rx);
        if client.is_closed() {
            match connector.connect().await {
                Ok((c, _task)) => {
                    client = c;
                    health.up();
                }
                Err(e) => {
                    health.down(&describe(&e));
                    Queue::fail(jobs, || {
                        StoreError::Unavailable("the writer lost its connection".into())
                    });
                    continue;
                }
            }
        }
        match commit_group(&mut client, &jobs, &audit_key).await {
            Ok(outcomes) => Queue::answer(jobs, outcomes),
            // The connection or the server went away mid-group: nothing of
            // the group is known to have committed, and the next group
            // reconnects. A 503, and the store's one line in the log.
            Err(e) if is_connection_error(&e) => {
                let why = describe(&e);
                health.down(&why);
                Queue::fail(jobs, || StoreError::Unavailable(why.clone()));
            }
            Err(e) => {
                let why = describe(&e);
                tracing::error!(error = %why, "group commit failed; every request in it is answered with an error");
                Queue::fail(jobs, || StoreError::Backend(why.clone()));
            }
        }
    }
}

async fn commit_group(
    client: &mut Client,
    jobs: &[Job],
    audit_key: &AuditKey,
) -> Result<Vec<Outcome>, tokio_postgres::Error> {
    let mut tx = client.transaction().await?;
    let mut head = match load_head(&tx, true).await? {
        Ok(head) => Head::new(head),
        Err(e) => {
            // Nothing is chained onto a head that cannot be read.
            tracing::error!(error = %e, "the audit head cannot be read; every request in the group is refused");
            return Ok(jobs.iter().map(|_| Err(batch_err(&e))).collect());
        }
    };
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in jobs {
        let sp = tx.savepoint("batch").await?;
        match apply_batch(&sp, &job.batch, head.current(), audit_key).await {
            Ok(Ok((committed, new_head))) => {
                sp.commit().await?;
                head.advance(new_head);
                outcomes.push(Ok(committed));
            }
            Ok(Err(e)) => {
                sp.rollback().await?;
                outcomes.push(Err(e));
            }
            // A lost connection fails the whole group, not this batch alone.
            Err(e) if is_connection_error(&e) => return Err(e),
            Err(e) => {
                sp.rollback().await?;
                outcomes.push(Err(BatchError::Store(e.to_string())));
            }
        }
    }
    if let Some((seq, hash)) = head.moved() {
        tx.execute(
            "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1",
            &[&seq, &hash.as_slice()],
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
    audit_key: &AuditKey,
) -> Result<Applied, tokio_postgres::Error> {
    let mut preferences = None;
    let mut claimed = Vec::new();
    for op in &batch.ops {
        let applied = match op {
            WriteOp::RecordConsent(event) => record_consent(c, event)
                .await?
                .map(|folded| preferences = Some(folded)),
            WriteOp::Request(op) => super::requests::apply(c, op, &mut claimed).await?,
            WriteOp::Retention(op) => Box::pin(super::retention::apply(c, op)).await?,
            other => apply_op(c, other).await?,
        };
        if let Err(e) = applied {
            return Ok(Err(e));
        }
    }
    let entries = audit::chain(audit_key, head, &batch.audit);
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
    Ok(Ok(committed(&entries, head, preferences, claimed)))
}

pub(super) type OpResult = Result<Result<(), BatchError>, tokio_postgres::Error>;

/// A read inside a write that found a stored value it cannot decode.
fn batch_err(e: &StoreError) -> BatchError {
    BatchError::Store(e.to_string())
}

pub(super) async fn load_for_update(
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
    let at = Place::row("subjects", subject);
    Ok((|| {
        if row.opt_int(0, &at)?.is_some() {
            return Ok(Err(BatchError::SubjectErased));
        }
        Ok(Ok((
            decode(&row.blob(1, &at)?).map_err(|why| at.corrupt("fields", why))?,
            decode_state(&row.blob(2, &at)?).map_err(|why| at.corrupt("state", why))?,
        )))
    })()
    .unwrap_or_else(|e: StoreError| Err(batch_err(&e))))
}

/// Writes a subject's state. The schema's trigger carries it to the copy
/// each of the subject's lookup rows keeps for marketing checks.
pub(super) async fn save_state(
    c: &tokio_postgres::Transaction<'_>,
    subject: &Uuid,
    state: &SubjectStateRecord,
) -> OpResult {
    c.execute(
        "UPDATE subjects SET state = $2 WHERE id = $1",
        &[subject, &encode_state(state)],
    )
    .await?;
    Ok(Ok(()))
}

/// Points each lookup at the subject, with a copy of the subject's state as
/// stored (the trigger keeps it in step from then on).
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
        let owner = match owner
            .map(|r| r.uuid(0, &Place::table("lookup")))
            .transpose()
        {
            Ok(owner) => owner,
            Err(e) => return Ok(Err(batch_err(&e))),
        };
        match owner {
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
                "INSERT INTO lookup (kind, hash, subject_id, state)
                 SELECT $1::text, $2::bytea, id, state FROM subjects WHERE id = $3
                 ON CONFLICT (kind, hash) DO NOTHING",
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
            save_state(c, subject, &state).await
        }
        WriteOp::CreateApiKey(k) => {
            let purposes = match super::super::types::purposes_json(&k.purposes) {
                Ok(p) => p,
                Err(e) => return Ok(Err(e)),
            };
            c.execute(
                "INSERT INTO api_keys (id, hash, role, purposes, recipient, label, created_at, revoked_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
                &[&k.id, &k.hash.as_slice(), &k.role, &purposes, &k.recipient, &k.label, &k.created_at],
            )
            .await?;
            Ok(Ok(()))
        }
        WriteOp::RevokeApiKey { id, at } => {
            // Revoking every admin key would lock everyone out for good. The
            // active admin rows are locked first, so two nodes revoking two
            // admin keys at once cannot both see the other's key as left.
            let admins = c
                .query(
                    "SELECT id FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL ORDER BY id FOR UPDATE",
                    &[],
                )
                .await?;
            let ids = admins
                .iter()
                .map(|r| r.try_get::<_, String>(0))
                .collect::<Result<Vec<_>, _>>()?;
            let only_this = ids.len() == 1 && ids.iter().all(|only| only == id);
            if only_this {
                return Ok(Err(BatchError::LastAdminKey));
            }
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
        WriteOp::RecordConsent(event) => Ok(record_consent(c, event).await?.map(drop)),
        // Applied by `apply_batch`, which collects what a claim leases.
        WriteOp::Request(op) => Box::pin(super::requests::apply(c, op, &mut Vec::new())).await,
        WriteOp::Agent(op) => Box::pin(super::agents::apply(c, op)).await,
        WriteOp::Retention(op) => Box::pin(super::retention::apply(c, op)).await,
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
        WriteOp::Rewrap { subject, from, to } => {
            let from_kek = i32::try_from(from.kek_id).unwrap_or(i32::MAX);
            let to_kek = i32::try_from(to.kek_id).unwrap_or(i32::MAX);
            c.execute(
                "UPDATE subjects SET wrapped_key = $4, kek_id = $5
                 WHERE id = $1 AND kek_id = $2 AND wrapped_key = $3",
                &[subject, &from_kek, &from.bytes, &to.bytes, &to_kek],
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
            let place = Place::row("policy_versions", version);
            let known = match known.map(|r| r.hash(0, &place)).transpose() {
                Ok(known) => known,
                Err(e) => return Ok(Err(batch_err(&e))),
            };
            match known {
                Some(h) if h == *sha256 => Ok(Ok(())),
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

/// Appends the event and folds it into its holder's preferences, which it returns.
async fn record_consent(
    c: &tokio_postgres::Transaction<'_>,
    e: &ConsentEvent,
) -> Result<Result<Preferences, BatchError>, tokio_postgres::Error> {
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
            if let Err(err) = save_state(c, &subject, &state).await? {
                return Ok(Err(err));
            }
            Ok(Ok(state.preferences))
        }
        Some(Holder::Visitor(visitor)) => {
            let current = c
                .query_opt(
                    "SELECT state FROM visitors WHERE id = $1 FOR UPDATE",
                    &[&visitor],
                )
                .await?;
            // The visitor's id is an online identifier: errors name the table only.
            let at = Place::table("visitors");
            let stored = current
                .map(|r| {
                    serde_json::from_slice::<Preferences>(&r.blob(0, &at)?)
                        .map_err(|x| at.corrupt("state", json_why(&x)))
                })
                .transpose();
            let mut prefs = match stored {
                Ok(prefs) => prefs.unwrap_or_default(),
                Err(e) => return Ok(Err(batch_err(&e))),
            };
            prefs.apply(e);
            let bytes = serde_json::to_vec(&prefs).unwrap_or_default();
            c.execute(
                "INSERT INTO visitors (id, created_at, subject_id, state) VALUES ($1, $2, NULL, $3)
                 ON CONFLICT (id) DO UPDATE SET state = excluded.state",
                &[&visitor, &e.at, &bytes],
            )
            .await?;
            Ok(Ok(prefs))
        }
        None => Ok(Err(BatchError::Store(
            "a consent event needs a subject or a visitor".into(),
        ))),
    }
}
