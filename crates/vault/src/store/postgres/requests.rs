//! The register's operations and reads on PostgreSQL. Rows are shaped by
//! the functions the SQLite backend shares (`sqlite::requests`). Tasks are
//! claimed with `FOR UPDATE SKIP LOCKED`, so several nodes on one database
//! never lease one task twice.

use super::*;
use crate::store::requests::{
    DisclosureEntry, RequestFilter, RequestOp, RequestRecord, TaskOutcome, TaskRecord,
};
use crate::store::sqlite::requests::{
    REQUEST_COLUMNS, TASK_COLUMNS, disclosure_row, request_row, task_row,
};

type Tx<'a> = tokio_postgres::Transaction<'a>;

fn outcome_columns(outcome: &TaskOutcome) -> (&'static str, Option<&str>, Option<i64>) {
    match outcome {
        TaskOutcome::Done => ("done", None, None),
        TaskOutcome::Retry { run_after, error } => ("pending", Some(error), Some(*run_after)),
        TaskOutcome::Failed { error } => ("failed", Some(error), None),
    }
}

fn shaped<T>(r: Result<T, StoreError>) -> Result<T, BatchError> {
    r.map_err(|e| BatchError::Store(e.to_string()))
}

/// Applies one register operation; claimed tasks are added to `claimed`.
pub(super) async fn apply(
    c: &Tx<'_>,
    op: &RequestOp,
    claimed: &mut Vec<TaskRecord>,
) -> Result<Result<(), BatchError>, tokio_postgres::Error> {
    match op {
        RequestOp::Create(r) => {
            let kek = r.wrapped_key.as_ref().map_or(0, |k| k.kek_id);
            let kek = i32::try_from(kek).unwrap_or(i32::MAX);
            c.execute(
                "INSERT INTO requests (id, kind, state, version, subject_id, contact_hash, received_at, due, updated_at, kek_id, wrapped_key, sealed, meta)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                &[
                    &r.id,
                    &r.kind,
                    &r.state,
                    &r.version,
                    &r.subject,
                    &r.contact_hash.as_ref().map(|h| h.as_slice()),
                    &r.received_at,
                    &r.due,
                    &r.updated_at,
                    &kek,
                    &r.wrapped_key.as_ref().map(|k| k.bytes.as_slice()),
                    &r.sealed,
                    &r.meta,
                ],
            )
            .await?;
            Ok(Ok(()))
        }
        RequestOp::Update {
            record: r,
            expected_version,
        } => {
            let kek = r.wrapped_key.as_ref().map_or(0, |k| k.kek_id);
            let kek = i32::try_from(kek).unwrap_or(i32::MAX);
            let changed = c
                .execute(
                    "UPDATE requests SET state = $2, version = $3, subject_id = $4, contact_hash = $5, due = $6, updated_at = $7, kek_id = $8, wrapped_key = $9, sealed = $10, meta = $11
                     WHERE id = $1 AND version = $12",
                    &[
                        &r.id,
                        &r.state,
                        &r.version,
                        &r.subject,
                        &r.contact_hash.as_ref().map(|h| h.as_slice()),
                        &r.due,
                        &r.updated_at,
                        &kek,
                        &r.wrapped_key.as_ref().map(|k| k.bytes.as_slice()),
                        &r.sealed,
                        &r.meta,
                        expected_version,
                    ],
                )
                .await?;
            Ok(if changed == 0 {
                Err(BatchError::RequestChanged)
            } else {
                Ok(())
            })
        }
        RequestOp::PutReport {
            request,
            format,
            sealed,
        } => {
            c.execute(
                "INSERT INTO request_reports (request_id, format, sealed) VALUES ($1, $2, $3)
                 ON CONFLICT (request_id, format) DO UPDATE SET sealed = excluded.sealed",
                &[request, format, sealed],
            )
            .await?;
            Ok(Ok(()))
        }
        RequestOp::PutSession {
            hash,
            contact_hash,
            expires_at,
        } => {
            c.execute(
                "INSERT INTO request_sessions (hash, contact_hash, expires_at) VALUES ($1, $2, $3)",
                &[&hash.as_slice(), &contact_hash.as_slice(), expires_at],
            )
            .await?;
            Ok(Ok(()))
        }
        RequestOp::CreateTask {
            request,
            system,
            run_after,
        } => {
            c.execute(
                "INSERT INTO tasks (request_id, system, state, attempts, run_after) VALUES ($1, $2, 'pending', 0, $3)
                 ON CONFLICT (request_id, system) DO NOTHING",
                &[request, system, run_after],
            )
            .await?;
            Ok(Ok(()))
        }
        RequestOp::ClaimTasks {
            owner,
            now,
            lease_until,
            limit,
        } => {
            let rows = c
                .query(
                    &format!(
                        "UPDATE tasks SET lease_owner = $1, lease_until = $3, attempts = attempts + 1
                         WHERE id IN (SELECT id FROM tasks WHERE state = 'pending' AND run_after <= $2
                                      AND (lease_until IS NULL OR lease_until < $2)
                                      ORDER BY run_after, id LIMIT $4
                                      FOR UPDATE SKIP LOCKED)
                         RETURNING {TASK_COLUMNS}"
                    ),
                    &[owner, now, lease_until, limit],
                )
                .await?;
            for r in &rows {
                match shaped(task_row(r)) {
                    Ok(t) => claimed.push(t),
                    Err(e) => return Ok(Err(e)),
                }
            }
            Ok(Ok(()))
        }
        RequestOp::RetryFailedTasks { request, run_after } => {
            c.execute(
                "UPDATE tasks SET state = 'pending', attempts = 0, run_after = $2, lease_owner = NULL, lease_until = NULL
                 WHERE request_id = $1 AND state = 'failed'",
                &[request, run_after],
            )
            .await?;
            Ok(Ok(()))
        }
        RequestOp::FinishTask { id, owner, outcome } => {
            let (state, error, run_after) = outcome_columns(outcome);
            let changed = c
                .execute(
                    "UPDATE tasks SET state = $3, last_error = $4, run_after = COALESCE($5, run_after), lease_owner = NULL, lease_until = NULL
                     WHERE id = $1 AND lease_owner = $2",
                    &[id, owner, &state, &error, &run_after],
                )
                .await?;
            Ok(if changed == 0 {
                Err(BatchError::LeaseLost)
            } else {
                Ok(())
            })
        }
        RequestOp::EraseSubject {
            subject,
            at,
            kek_id,
            keep,
            suppress,
        } => {
            let mut state = match writes::load_for_update(c, subject).await? {
                Ok((_, state)) => state,
                // Erased already: nothing more to do (an erasure is idempotent).
                Err(BatchError::SubjectErased) => return Ok(Ok(())),
                Err(e) => return Ok(Err(e)),
            };
            for r in &mut state.relationships {
                r.reference = None;
            }
            let kept: Vec<StoredField> =
                keep.as_ref().map(|k| k.fields.clone()).unwrap_or_default();
            let kek = keep.as_ref().map_or(*kek_id, |k| k.wrapped_key.kek_id);
            let kek = i32::try_from(kek).unwrap_or(i32::MAX);
            c.execute(
                "UPDATE subjects SET wrapped_key = $2, kek_id = $3, erased_at = $4, fields = $5, state = $6 WHERE id = $1",
                &[
                    subject,
                    &keep.as_ref().map(|k| k.wrapped_key.bytes.as_slice()),
                    &kek,
                    at,
                    &encode(&kept),
                    &encode_state(&state),
                ],
            )
            .await?;
            c.execute(
                "DELETE FROM field_history WHERE subject_id = $1",
                &[subject],
            )
            .await?;
            c.execute("DELETE FROM lookup WHERE subject_id = $1", &[subject])
                .await?;
            for (kind, hash) in suppress {
                c.execute(
                    "INSERT INTO suppression (kind, hash, at, reason) VALUES ($1, $2, $3, 'erased after objecting to direct marketing') ON CONFLICT (kind, hash) DO NOTHING",
                    &[kind, &hash.as_slice(), at],
                )
                .await?;
            }
            Ok(Ok(()))
        }
        RequestOp::SetRestricted {
            subject,
            restricted,
        } => {
            let mut state = match writes::load_for_update(c, subject).await? {
                Ok((_, state)) => state,
                Err(e) => return Ok(Err(e)),
            };
            state.restricted = *restricted;
            writes::save_state(c, subject, &state).await
        }
    }
}

impl PgStore {
    pub async fn request(&self, id: Uuid) -> Result<Option<RequestRecord>, StoreError> {
        let c = self.reader().await?;
        let row = c
            .query_opt(&format!("{REQUEST_COLUMNS} WHERE id = $1"), &[&id])
            .await
            .map_err(backend)?;
        row.as_ref().map(request_row).transpose()
    }

    pub async fn requests(&self, f: &RequestFilter) -> Result<Vec<RequestRecord>, StoreError> {
        let c = self.reader().await?;
        let rows = c
            .query(
                &format!(
                    "{REQUEST_COLUMNS} WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR kind = $2)
                     AND ($3::text IS NULL OR (due IS NOT NULL AND due <= $3))
                     AND ($4::bytea IS NULL OR contact_hash = $4) AND ($5::uuid IS NULL OR id > $5)
                     ORDER BY id LIMIT $6"
                ),
                &[
                    &f.state,
                    &f.kind,
                    &f.due_by,
                    &f.contact_hash.as_ref().map(|h| h.as_slice()),
                    &f.after,
                    &f.limit,
                ],
            )
            .await
            .map_err(backend)?;
        rows.iter().map(request_row).collect()
    }

    pub async fn report(&self, request: Uuid, format: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let c = self.reader().await?;
        let row = c
            .query_opt(
                "SELECT sealed FROM request_reports WHERE request_id = $1 AND format = $2",
                &[&request, &format],
            )
            .await
            .map_err(backend)?;
        row.map(|r| r.blob(0, &Place::row("request_reports", request)))
            .transpose()
    }

    pub async fn session(
        &self,
        hash: &[u8; 32],
        now: Micros,
    ) -> Result<Option<[u8; 32]>, StoreError> {
        let c = self.reader().await?;
        let row = c
            .query_opt(
                "SELECT contact_hash FROM request_sessions WHERE hash = $1 AND expires_at > $2",
                &[&hash.as_slice(), &now],
            )
            .await
            .map_err(backend)?;
        row.map(|r| r.hash(0, &Place::table("request_sessions")))
            .transpose()
    }

    pub async fn tasks_of(&self, request: Uuid) -> Result<Vec<TaskRecord>, StoreError> {
        let c = self.reader().await?;
        let rows = c
            .query(
                &format!("SELECT {TASK_COLUMNS} FROM tasks WHERE request_id = $1 ORDER BY id"),
                &[&request],
            )
            .await
            .map_err(backend)?;
        rows.iter().map(task_row).collect()
    }

    pub async fn next_task_due(&self) -> Result<Option<Micros>, StoreError> {
        let c = self.reader().await?;
        let row = c
            .query_one(
                "SELECT min(greatest(run_after, COALESCE(lease_until, 0))) FROM tasks WHERE state = 'pending'",
                &[],
            )
            .await
            .map_err(backend)?;
        row.opt_int(0, &Place::table("tasks"))
    }

    pub async fn disclosures_of(&self, subject: Uuid) -> Result<Vec<DisclosureEntry>, StoreError> {
        let c = self.reader().await?;
        let rows = c
            .query(
                "SELECT seq, at, action, purpose, decision FROM audit
                 WHERE subject_id = $1 AND substr(action, 1, 9) = 'disclose:' ORDER BY seq",
                &[&subject],
            )
            .await
            .map_err(backend)?;
        rows.iter().map(disclosure_row).collect()
    }
}
