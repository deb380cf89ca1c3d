//! The register's operations and reads on SQLite, and the shaping of its
//! rows, which the PostgreSQL backend shares.

use super::reads::{all, first};
use super::*;
use crate::store::requests::{
    DisclosureEntry, RequestFilter, RequestOp, RequestRecord, TaskOutcome, TaskRecord,
};

fn store_err(e: rusqlite::Error) -> BatchError {
    BatchError::Store(e.to_string())
}

pub(in crate::store) const REQUEST_COLUMNS: &str = "SELECT id, kind, state, version, subject_id, contact_hash, received_at, due, updated_at, kek_id, wrapped_key, sealed, meta FROM requests";

pub(in crate::store) const TASK_COLUMNS: &str =
    "id, request_id, system, state, attempts, run_after, lease_owner, lease_until, last_error";

pub(in crate::store) fn request_row(r: &impl StoredRow) -> Result<RequestRecord, StoreError> {
    let at = Place::table("requests");
    let id = r.uuid(0, &at)?;
    let at = at.with_row(id);
    let kek_id = r.kek(9, &at)?;
    Ok(RequestRecord {
        id,
        kind: r.text(1, &at)?,
        state: r.text(2, &at)?,
        version: r.int(3, &at)?,
        subject: r.opt_uuid(4, &at)?,
        contact_hash: r.opt_hash(5, &at)?,
        received_at: r.int(6, &at)?,
        due: r.opt_text(7, &at)?,
        updated_at: r.int(8, &at)?,
        wrapped_key: r
            .opt_blob(10, &at)?
            .map(|bytes| WrappedKey { kek_id, bytes }),
        sealed: r.blob(11, &at)?,
        meta: r.text(12, &at)?,
    })
}

pub(in crate::store) fn task_row(r: &impl StoredRow) -> Result<TaskRecord, StoreError> {
    let at = Place::table("tasks");
    let id = r.int(0, &at)?;
    let at = at.with_row(id);
    Ok(TaskRecord {
        id,
        request: r.uuid(1, &at)?,
        system: r.text(2, &at)?,
        state: r.text(3, &at)?,
        attempts: r.int(4, &at)?,
        run_after: r.int(5, &at)?,
        lease_owner: r.opt_text(6, &at)?,
        lease_until: r.opt_int(7, &at)?,
        last_error: r.opt_text(8, &at)?,
    })
}

pub(in crate::store) fn disclosure_row(r: &impl StoredRow) -> Result<DisclosureEntry, StoreError> {
    let at = Place::table("audit");
    let at = at.with_row(r.int(0, &at)?);
    let action = r.text(2, &at)?;
    Ok(DisclosureEntry {
        at: r.int(1, &at)?,
        recipient: action
            .strip_prefix("disclose:")
            .unwrap_or(&action)
            .to_string(),
        purpose: r.opt_text(3, &at)?,
        decision: r.text(4, &at)?,
    })
}

/// The state, error and next run of a task's outcome.
fn outcome_columns(outcome: &TaskOutcome) -> (&'static str, Option<&str>, Option<Micros>) {
    match outcome {
        TaskOutcome::Done => ("done", None, None),
        TaskOutcome::Retry { run_after, error } => ("pending", Some(error), Some(*run_after)),
        TaskOutcome::Failed { error } => ("failed", Some(error), None),
    }
}

/// Applies one register operation; claimed tasks are added to `claimed`.
pub(super) fn apply(
    c: &Connection,
    op: &RequestOp,
    claimed: &mut Vec<TaskRecord>,
) -> Result<(), BatchError> {
    match op {
        RequestOp::Create(r) => {
            c.prepare_cached(
                "INSERT INTO requests (id, kind, state, version, subject_id, contact_hash, received_at, due, updated_at, kek_id, wrapped_key, sealed, meta)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )
            .map_err(store_err)?
            .execute(params![
                r.id.as_bytes().as_slice(),
                r.kind,
                r.state,
                r.version,
                r.subject.as_ref().map(|s| s.as_bytes().as_slice()),
                r.contact_hash.as_ref().map(|h| h.as_slice()),
                r.received_at,
                r.due,
                r.updated_at,
                r.wrapped_key.as_ref().map_or(0, |k| k.kek_id),
                r.wrapped_key.as_ref().map(|k| k.bytes.as_slice()),
                r.sealed,
                r.meta
            ])
            .map_err(store_err)?;
            Ok(())
        }
        RequestOp::Update {
            record: r,
            expected_version,
        } => {
            let changed = c
                .prepare_cached(
                    "UPDATE requests SET state = ?2, version = ?3, subject_id = ?4, contact_hash = ?5, due = ?6, updated_at = ?7, kek_id = ?8, wrapped_key = ?9, sealed = ?10, meta = ?11
                     WHERE id = ?1 AND version = ?12",
                )
                .map_err(store_err)?
                .execute(params![
                    r.id.as_bytes().as_slice(),
                    r.state,
                    r.version,
                    r.subject.as_ref().map(|s| s.as_bytes().as_slice()),
                    r.contact_hash.as_ref().map(|h| h.as_slice()),
                    r.due,
                    r.updated_at,
                    r.wrapped_key.as_ref().map_or(0, |k| k.kek_id),
                    r.wrapped_key.as_ref().map(|k| k.bytes.as_slice()),
                    r.sealed,
                    r.meta,
                    expected_version
                ])
                .map_err(store_err)?;
            if changed == 0 {
                return Err(BatchError::RequestChanged);
            }
            Ok(())
        }
        RequestOp::PutReport {
            request,
            format,
            sealed,
        } => {
            c.prepare_cached(
                "INSERT INTO request_reports (request_id, format, sealed) VALUES (?1, ?2, ?3)
                 ON CONFLICT (request_id, format) DO UPDATE SET sealed = excluded.sealed",
            )
            .map_err(store_err)?
            .execute(params![request.as_bytes().as_slice(), format, sealed])
            .map_err(store_err)?;
            Ok(())
        }
        RequestOp::PutSession {
            hash,
            contact_hash,
            expires_at,
        } => {
            c.prepare_cached(
                "INSERT INTO request_sessions (hash, contact_hash, expires_at) VALUES (?1, ?2, ?3)",
            )
            .map_err(store_err)?
            .execute(params![
                hash.as_slice(),
                contact_hash.as_slice(),
                expires_at
            ])
            .map_err(store_err)?;
            Ok(())
        }
        RequestOp::CreateTask {
            request,
            system,
            run_after,
        } => {
            c.prepare_cached(
                "INSERT INTO tasks (request_id, system, state, attempts, run_after) VALUES (?1, ?2, 'pending', 0, ?3)
                 ON CONFLICT (request_id, system) DO NOTHING",
            )
            .map_err(store_err)?
            .execute(params![request.as_bytes().as_slice(), system, run_after])
            .map_err(store_err)?;
            Ok(())
        }
        RequestOp::ClaimTasks {
            owner,
            now,
            lease_until,
            limit,
        } => {
            // The one writer serialises claims on SQLite: no two claim one task.
            let mut stmt = c
                .prepare_cached(&format!(
                    "UPDATE tasks SET lease_owner = ?1, lease_until = ?3, attempts = attempts + 1
                     WHERE id IN (SELECT id FROM tasks WHERE state = 'pending' AND run_after <= ?2
                                  AND (lease_until IS NULL OR lease_until < ?2)
                                  ORDER BY run_after, id LIMIT ?4)
                     RETURNING {TASK_COLUMNS}"
                ))
                .map_err(store_err)?;
            let mut rows = stmt
                .query(params![owner, now, lease_until, limit])
                .map_err(store_err)?;
            while let Some(r) = rows.next().map_err(store_err)? {
                claimed.push(task_row(r).map_err(|e| BatchError::Store(e.to_string()))?);
            }
            Ok(())
        }
        RequestOp::RetryFailedTasks { request, run_after } => {
            c.prepare_cached(
                "UPDATE tasks SET state = 'pending', attempts = 0, run_after = ?2, lease_owner = NULL, lease_until = NULL
                 WHERE request_id = ?1 AND state = 'failed'",
            )
            .map_err(store_err)?
            .execute(params![request.as_bytes().as_slice(), run_after])
            .map_err(store_err)?;
            Ok(())
        }
        RequestOp::FinishTask { id, owner, outcome } => {
            let (state, error, run_after) = outcome_columns(outcome);
            let changed = c
                .prepare_cached(
                    "UPDATE tasks SET state = ?3, last_error = ?4, run_after = COALESCE(?5, run_after), lease_owner = NULL, lease_until = NULL
                     WHERE id = ?1 AND lease_owner = ?2",
                )
                .map_err(store_err)?
                .execute(params![id, owner, state, error, run_after])
                .map_err(store_err)?;
            if changed == 0 {
                return Err(BatchError::LeaseLost);
            }
            Ok(())
        }
        RequestOp::EraseSubject {
            subject,
            at,
            kek_id,
            keep,
            suppress,
        } => {
            let (_, mut state) = match writes::load_for_update(c, subject) {
                Ok(loaded) => loaded,
                // Erased already: nothing more to do (an erasure is idempotent).
                Err(BatchError::SubjectErased) => return Ok(()),
                Err(e) => return Err(e),
            };
            for r in &mut state.relationships {
                r.reference = None;
            }
            let kept: Vec<StoredField> =
                keep.as_ref().map(|k| k.fields.clone()).unwrap_or_default();
            c.prepare_cached(
                "UPDATE subjects SET wrapped_key = ?2, kek_id = ?3, erased_at = ?4, fields = ?5, state = ?6 WHERE id = ?1",
            )
            .map_err(store_err)?
            .execute(params![
                subject.as_bytes().as_slice(),
                keep.as_ref().map(|k| k.wrapped_key.bytes.as_slice()),
                keep.as_ref().map_or(*kek_id, |k| k.wrapped_key.kek_id),
                at,
                encode(&kept),
                encode_state(&state)
            ])
            .map_err(store_err)?;
            for sql in [
                "DELETE FROM field_history WHERE subject_id = ?1",
                "DELETE FROM lookup WHERE subject_id = ?1",
            ] {
                c.prepare_cached(sql)
                    .map_err(store_err)?
                    .execute([subject.as_bytes().as_slice()])
                    .map_err(store_err)?;
            }
            for (kind, hash) in suppress {
                c.prepare_cached("INSERT INTO suppression (kind, hash, at, reason) VALUES (?1, ?2, ?3, 'erased after objecting to direct marketing') ON CONFLICT (kind, hash) DO NOTHING")
                    .map_err(store_err)?
                    .execute(params![kind, hash.as_slice(), at])
                    .map_err(store_err)?;
            }
            Ok(())
        }
        RequestOp::SetRestricted {
            subject,
            restricted,
        } => {
            let (_, mut state) = writes::load_for_update(c, subject)?;
            state.restricted = *restricted;
            writes::save_state(c, subject, &state)
        }
    }
}

impl SqliteStore {
    pub fn request(&self, id: Uuid) -> Result<Option<RequestRecord>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(&format!("{REQUEST_COLUMNS} WHERE id = ?1"))
                .map_err(backend)?;
            first(&mut stmt, [id.as_bytes().as_slice()], |r| request_row(r))
        })
    }

    pub fn requests(&self, f: &RequestFilter) -> Result<Vec<RequestRecord>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "{REQUEST_COLUMNS} WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR kind = ?2)
                     AND (?3 IS NULL OR (due IS NOT NULL AND due <= ?3))
                     AND (?4 IS NULL OR contact_hash = ?4) AND (?5 IS NULL OR id > ?5)
                     ORDER BY id LIMIT ?6"
                ))
                .map_err(backend)?;
            all(
                &mut stmt,
                params![
                    f.state,
                    f.kind,
                    f.due_by,
                    f.contact_hash.as_ref().map(|h| h.as_slice()),
                    f.after.as_ref().map(|a| a.as_bytes().as_slice()),
                    f.limit
                ],
                |r| request_row(r),
            )
        })
    }

    pub fn report(&self, request: Uuid, format: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT sealed FROM request_reports WHERE request_id = ?1 AND format = ?2",
                )
                .map_err(backend)?;
            first(
                &mut stmt,
                params![request.as_bytes().as_slice(), format],
                |r| r.blob(0, &Place::row("request_reports", request)),
            )
        })
    }

    /// The contact a live session proves, if the token's hash names one.
    pub fn session(&self, hash: &[u8; 32], now: Micros) -> Result<Option<[u8; 32]>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT contact_hash FROM request_sessions WHERE hash = ?1 AND expires_at > ?2",
                )
                .map_err(backend)?;
            first(&mut stmt, params![hash.as_slice(), now], |r| {
                r.hash(0, &Place::table("request_sessions"))
            })
        })
    }

    pub fn tasks_of(&self, request: Uuid) -> Result<Vec<TaskRecord>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {TASK_COLUMNS} FROM tasks WHERE request_id = ?1 ORDER BY id"
                ))
                .map_err(backend)?;
            all(&mut stmt, [request.as_bytes().as_slice()], |r| task_row(r))
        })
    }

    /// The earliest time a pending task falls due, for the runner's sleep.
    pub fn next_task_due(&self) -> Result<Option<Micros>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT min(max(run_after, COALESCE(lease_until, 0))) FROM tasks WHERE state = 'pending'",
                )
                .map_err(backend)?;
            first(&mut stmt, [], |r| r.opt_int(0, &Place::table("tasks")))
                .map(Option::flatten)
        })
    }

    pub fn disclosures_of(&self, subject: Uuid) -> Result<Vec<DisclosureEntry>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT seq, at, action, purpose, decision FROM audit
                     WHERE subject_id = ?1 AND substr(action, 1, 9) = 'disclose:' ORDER BY seq",
                )
                .map_err(backend)?;
            all(&mut stmt, [subject.as_bytes().as_slice()], |r| {
                disclosure_row(r)
            })
        })
    }
}
