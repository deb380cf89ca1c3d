//! Writes: the writer thread, group commit, and how each operation of a
//! batch is applied inside the group's transaction.

use super::*;
use crate::store::group::{Head, Outcome, Queue, committed};

pub(super) fn writer_loop(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Job>,
    checkpointer: &std::sync::mpsc::SyncSender<()>,
    audit_key: &AuditKey,
) {
    while let Some(first) = rx.blocking_recv() {
        let jobs = Queue::gather(first, &mut rx);
        match commit_group(&mut conn, &jobs, audit_key) {
            Ok(outcomes) => {
                // Full means a checkpoint is already due.
                let _ = checkpointer.try_send(());
                Queue::answer(jobs, outcomes);
            }
            Err(e) => {
                tracing::error!(error = %e, "group commit failed; every request in it is answered with an error");
                Queue::fail(jobs, || StoreError::Backend(e.to_string()));
            }
        }
    }
}

type Outcomes = Vec<Outcome>;

/// One group transaction. The chain head is read inside it, so another process
/// writing to the same file (the CLI creating a key) extends the same chain.
fn commit_group(
    conn: &mut Connection,
    jobs: &[Job],
    audit_key: &AuditKey,
) -> rusqlite::Result<Outcomes> {
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut head = Head::new(read_head(&tx)?);
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in jobs {
        let mut sp = tx.savepoint()?;
        match apply_batch(&sp, &job.batch, head.current(), audit_key) {
            Ok((committed, new_head)) => {
                sp.commit()?;
                head.advance(new_head);
                outcomes.push(Ok(committed));
            }
            Err(e) => {
                sp.rollback()?;
                drop(sp);
                outcomes.push(Err(e));
            }
        }
    }
    if let Some((seq, hash)) = head.moved() {
        tx.execute(
            "UPDATE audit_head SET seq = ?1, hash = ?2 WHERE id = 1",
            params![seq, hash.as_slice()],
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
    audit_key: &AuditKey,
) -> Result<(Committed, (i64, [u8; 32])), BatchError> {
    let mut preferences = None;
    let mut claimed = Vec::new();
    for op in &batch.ops {
        match op {
            WriteOp::RecordConsent(event) => preferences = Some(record_consent(c, event)?),
            WriteOp::Request(op) => super::requests::apply(c, op, &mut claimed)?,
            WriteOp::Retention(op) => super::retention::apply(c, op)?,
            other => apply_op(c, other)?,
        }
    }
    let entries = audit::chain(audit_key, head, &batch.audit);
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
    Ok(committed(&entries, head, preferences, claimed))
}

/// Loads a subject's fields and state for an update; refuses a missing or erased subject.
pub(super) fn load_for_update(
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

// A subject's old lookup of a kind is found by subject and named index:
// without statistics the planner prefers the primary key's `kind` prefix,
// which walks every row of that kind (seen: collections fell from 22,000/s
// to 1,200/s).
pub(super) const DELETE_LOOKUP: &str =
    "DELETE FROM lookup INDEXED BY lookup_by_subject WHERE subject_id = ?1 AND kind = ?2";

/// Writes a subject's state. The schema's trigger carries it to the copy
/// each of the subject's lookup rows keeps for marketing checks.
pub(super) fn save_state(
    c: &Connection,
    subject: &Uuid,
    state: &SubjectStateRecord,
) -> Result<(), BatchError> {
    c.prepare_cached("UPDATE subjects SET state = ?2 WHERE id = ?1")
        .map_err(store_err)?
        .execute(params![subject.as_bytes().as_slice(), encode_state(state)])
        .map_err(store_err)?;
    Ok(())
}

/// Points each lookup at the subject, with a copy of the subject's state as
/// stored (the trigger keeps it in step from then on).
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
        c.prepare_cached(DELETE_LOOKUP)
            .map_err(store_err)?
            .execute(params![subject.as_bytes().as_slice(), l.kind])
            .map_err(store_err)?;
        c.prepare_cached(
            "INSERT INTO lookup (kind, hash, subject_id, state)
             SELECT ?1, ?2, id, state FROM subjects WHERE id = ?3",
        )
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
            save_state(c, subject, &state)
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
                super::super::types::purposes_json(&k.purposes)?,
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
            // Revoking every admin key would lock everyone out for good.
            let admins_left: i64 = c
                .prepare_cached(
                    "SELECT count(*) FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL",
                )
                .map_err(store_err)?
                .query_row([], |r| r.get(0))
                .map_err(store_err)?;
            let had_admins: i64 = c
                .prepare_cached(
                    "SELECT count(*) FROM api_keys WHERE role = 'admin' AND (revoked_at IS NULL OR id = ?1)",
                )
                .map_err(store_err)?
                .query_row(params![id], |r| r.get(0))
                .map_err(store_err)?;
            if admins_left == 0 && had_admins > 0 {
                return Err(BatchError::LastAdminKey);
            }
            Ok(())
        }
        WriteOp::RecordConsent(event) => record_consent(c, event).map(drop),
        // Applied by `apply_batch`, which collects what a claim leases.
        WriteOp::Request(op) => super::requests::apply(c, op, &mut Vec::new()),
        WriteOp::Agent(op) => super::agents::apply(c, op),
        WriteOp::Retention(op) => super::retention::apply(c, op),
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
        WriteOp::Rewrap { subject, from, to } => {
            c.prepare_cached(
                "UPDATE subjects SET wrapped_key = ?4, kek_id = ?5
                 WHERE id = ?1 AND kek_id = ?2 AND wrapped_key = ?3",
            )
            .map_err(store_err)?
            .execute(params![
                subject.as_bytes().as_slice(),
                from.kek_id,
                from.bytes,
                to.bytes,
                to.kek_id
            ])
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
            events
                .iter()
                .try_for_each(|e| record_consent(c, e).map(drop))
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

/// Appends the event and folds it into its holder's preferences, which it returns.
fn record_consent(c: &Connection, e: &ConsentEvent) -> Result<Preferences, BatchError> {
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
            save_state(c, &subject, &state)?;
            Ok(state.preferences)
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
            Ok(prefs)
        }
        None => Err(BatchError::Store(
            "a consent event needs a subject or a visitor".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::DELETE_LOOKUP;

    /// Replacing a subject's address and copying its state by trigger go
    /// straight to the subject's lookup rows, and listing the key-encryption
    /// keys in use probes their index; none walks a table.
    #[test]
    fn statements_by_subject_and_by_kek_use_their_indexes() {
        let dir = std::env::temp_dir().join(format!("custodian-plan-{}", crate::crypto::new_id()));
        let path = dir.join("custodian.db");
        drop(
            super::super::SqliteStore::open(
                &path,
                true,
                crate::audit::AuditKey::new(&crate::crypto::Secret::from_bytes([3; 32])),
            )
            .unwrap(),
        );
        let c = rusqlite::Connection::open(&path).unwrap();
        let copy = "UPDATE lookup SET state = ?2 WHERE subject_id = ?1";
        let trigger: String = c
            .query_row(
                "SELECT sql FROM sqlite_schema WHERE name = 'lookup_state_follows_subject'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(
            trigger.contains("UPDATE lookup SET state = NEW.state WHERE subject_id = NEW.id"),
            "the statement checked below is the trigger's: {trigger}"
        );
        let by_subject = "SEARCH lookup USING INDEX lookup_by_subject (subject_id=?";
        let by_kek = "SEARCH subjects USING INDEX subjects_by_kek (kek_id>?)";
        for (sql, wanted) in [
            (DELETE_LOOKUP, by_subject),
            (copy, by_subject),
            (super::super::reads::KEK_AFTER, by_kek),
        ] {
            let mut plan = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let blobs = vec![b"x".to_vec(); plan.parameter_count()];
            let steps: Vec<String> = plan
                .query_map(rusqlite::params_from_iter(blobs.iter()), |r| r.get(3))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert!(
                steps.iter().all(|s| s.starts_with(wanted)),
                "{sql}: {steps:?}"
            );
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
