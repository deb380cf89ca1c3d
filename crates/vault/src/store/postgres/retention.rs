//! Retention's operations and reads on PostgreSQL. Rows are shaped by the
//! functions the SQLite backend shares (`sqlite::retention`). The sweep's
//! lease is one row: a claim or renewal updates it under its row lock, so two
//! nodes that try at once are serialised and the second sees the first's
//! lease.

use super::writes::OpResult;
use super::*;
use crate::store::retention::{ExpiryRow, LegalHold, RetentionOp, RuleReview, SweepState};
use crate::store::sqlite::retention::{
    EXPIRY_COLUMNS, HOLD_COLUMNS, REVIEW_COLUMNS, SWEEP_COLUMNS, expiry_row, hold_row, review_row,
    sweep_row,
};

type Tx<'a> = tokio_postgres::Transaction<'a>;

pub(super) async fn apply(c: &Tx<'_>, op: &RetentionOp) -> OpResult {
    match op {
        RetentionOp::PutExpiry(row) => {
            c.execute(
                "INSERT INTO retention_due (subject_id, due_at, held_by, data) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (subject_id) DO UPDATE SET due_at = excluded.due_at, held_by = excluded.held_by, data = excluded.data",
                &[&row.subject, &row.due_at, &row.held_by, &encode(&row.data)],
            )
            .await?;
            Ok(Ok(()))
        }
        RetentionOp::DropData {
            subject,
            fields,
            shred,
            at,
        } => drop_data(c, subject, fields, *shred, *at).await,
        RetentionOp::ClaimSweep {
            owner,
            now,
            lease_until,
        } => {
            let changed = c
                .execute(
                    "UPDATE retention_sweep SET owner = $1, lease_until = $3
                     WHERE id = 1 AND (owner IS NULL OR owner = $1 OR lease_until IS NULL OR lease_until < $2)",
                    &[owner, now, lease_until],
                )
                .await?;
            Ok(if changed == 0 {
                Err(BatchError::SweepBusy)
            } else {
                Ok(())
            })
        }
        RetentionOp::RenewSweep {
            owner,
            now,
            lease_until,
        } => {
            let changed = c
                .execute(
                    "UPDATE retention_sweep SET lease_until = $3
                     WHERE id = 1 AND owner = $1 AND lease_until >= $2",
                    &[owner, now, lease_until],
                )
                .await?;
            Ok(if changed == 0 {
                Err(BatchError::LeaseLost)
            } else {
                Ok(())
            })
        }
        RetentionOp::EndSweep { owner, at } => {
            c.execute(
                "UPDATE retention_sweep SET owner = NULL, lease_until = NULL, last_run_at = $2
                 WHERE id = 1 AND owner = $1",
                &[owner, at],
            )
            .await?;
            Ok(Ok(()))
        }
        RetentionOp::PolicyRetention { fingerprint } => {
            let changed = c
                .execute(
                    "UPDATE retention_sweep SET fingerprint = $1
                     WHERE id = 1 AND (fingerprint IS NULL OR fingerprint <> $1)",
                    &[fingerprint],
                )
                .await?;
            if changed > 0 {
                c.execute("UPDATE retention_due SET due_at = 0", &[])
                    .await?;
            }
            Ok(Ok(()))
        }
        RetentionOp::PutHold(h) => {
            c.execute(
                "INSERT INTO legal_holds (id, scope, target, reason, set_by, set_at, ends_at, released_at, released_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &h.id,
                    &h.scope,
                    &h.target,
                    &h.reason,
                    &h.set_by,
                    &h.set_at,
                    &h.ends_at,
                    &h.released_at,
                    &h.released_by,
                ],
            )
            .await?;
            Ok(Ok(()))
        }
        RetentionOp::ReleaseHold { id, at, by } => {
            let row = c
                .query_opt(
                    "UPDATE legal_holds SET released_at = $2, released_by = $3
                     WHERE id = $1 AND released_at IS NULL RETURNING scope, target",
                    &[id, at, by],
                )
                .await?;
            let Some(row) = row else {
                return Ok(Err(BatchError::HoldNotFound));
            };
            let scope: String = row.try_get(0)?;
            let target: String = row.try_get(1)?;
            // As on SQLite: a subject hold recomputes that subject, any other
            // every subject some hold keeps data of.
            match (scope.as_str(), Uuid::parse_str(&target)) {
                ("subject", Ok(subject)) => {
                    c.execute(
                        "UPDATE retention_due SET due_at = 0 WHERE subject_id = $1",
                        &[&subject],
                    )
                    .await?
                }
                _ => {
                    c.execute(
                        "UPDATE retention_due SET due_at = 0 WHERE held_by IS NOT NULL",
                        &[],
                    )
                    .await?
                }
            };
            Ok(Ok(()))
        }
        RetentionOp::Reviewed(r) => {
            c.execute(
                "INSERT INTO retention_reviews (rule, reviewed_at, reviewed_by, note) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (rule, reviewed_at) DO NOTHING",
                &[&r.rule, &r.reviewed_at, &r.reviewed_by, &r.note],
            )
            .await?;
            Ok(Ok(()))
        }
    }
}

async fn drop_data(
    c: &Tx<'_>,
    subject: &Uuid,
    fields: &[String],
    shred: bool,
    at: Micros,
) -> OpResult {
    let row = c
        .query_opt(
            "SELECT wrapped_key, fields FROM subjects WHERE id = $1 FOR UPDATE",
            &[subject],
        )
        .await?;
    let Some(row) = row else {
        // A row whose subject is gone goes too.
        c.execute(
            "DELETE FROM retention_due WHERE subject_id = $1",
            &[subject],
        )
        .await?;
        return Ok(Ok(()));
    };
    let key: Option<Vec<u8>> = row.try_get(0)?;
    let stored: Vec<u8> = row.try_get(1)?;
    let mut kept: Vec<StoredField> = match decode(&stored) {
        Ok(f) => f,
        Err(why) => return Ok(Err(BatchError::Store(why))),
    };
    kept.retain(|f| !fields.contains(&f.name));
    if shred {
        if key.is_some() {
            c.execute(
                "UPDATE subjects SET wrapped_key = NULL, fields = $2, erased_at = COALESCE(erased_at, $3) WHERE id = $1",
                &[subject, &encode(&Vec::<StoredField>::new()), &at],
            )
            .await?;
        }
        for sql in [
            "DELETE FROM field_history WHERE subject_id = $1",
            "DELETE FROM lookup WHERE subject_id = $1",
            "DELETE FROM retention_due WHERE subject_id = $1",
        ] {
            c.execute(sql, &[subject]).await?;
        }
        return Ok(Ok(()));
    }
    c.execute(
        "UPDATE subjects SET fields = $2 WHERE id = $1",
        &[subject, &encode(&kept)],
    )
    .await?;
    c.execute(
        "DELETE FROM field_history WHERE subject_id = $1 AND field = ANY($2)",
        &[subject, &fields],
    )
    .await?;
    c.execute(
        "DELETE FROM lookup WHERE subject_id = $1 AND kind = ANY($2)",
        &[subject, &fields],
    )
    .await?;
    Ok(Ok(()))
}

impl PgStore {
    pub async fn due_page(
        &self,
        now: Micros,
        after: Option<(Micros, Uuid)>,
        limit: i64,
    ) -> Result<Vec<ExpiryRow>, StoreError> {
        let c = self.reader().await?;
        let (after_due, after_id) = match after {
            Some((d, id)) => (Some(d), Some(id)),
            None => (None, None),
        };
        let rows = c
            .query(
                &format!(
                    "{EXPIRY_COLUMNS}
                     WHERE due_at IS NOT NULL AND due_at <= $1
                       AND ($2::bigint IS NULL OR due_at > $2 OR (due_at = $2 AND subject_id > $3))
                     ORDER BY due_at, subject_id LIMIT $4"
                ),
                &[&now, &after_due, &after_id, &limit],
            )
            .await
            .map_err(backend)?;
        rows.iter().map(expiry_row).collect()
    }

    pub async fn held_page(
        &self,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<(Uuid, Option<Uuid>)>, StoreError> {
        let c = self.reader().await?;
        let rows = c
            .query(
                "SELECT subject_id, held_by FROM retention_due
                 WHERE held_by IS NOT NULL AND ($1::uuid IS NULL OR subject_id > $1)
                 ORDER BY subject_id LIMIT $2",
                &[&after, &limit],
            )
            .await
            .map_err(backend)?;
        let at = Place::table("retention_due");
        rows.iter()
            .map(|r| Ok((r.uuid(0, &at)?, r.opt_uuid(1, &at)?)))
            .collect()
    }

    pub async fn expiry_of(&self, subject: Uuid) -> Result<Option<ExpiryRow>, StoreError> {
        let c = self.reader().await?;
        let row = c
            .query_opt(
                &format!("{EXPIRY_COLUMNS} WHERE subject_id = $1"),
                &[&subject],
            )
            .await
            .map_err(backend)?;
        row.as_ref().map(expiry_row).transpose()
    }

    pub async fn holds(&self) -> Result<Vec<LegalHold>, StoreError> {
        let c = self.reader().await?;
        let rows = c
            .query(&format!("{HOLD_COLUMNS} ORDER BY id"), &[])
            .await
            .map_err(backend)?;
        rows.iter().map(hold_row).collect()
    }

    pub async fn reviews(&self) -> Result<Vec<RuleReview>, StoreError> {
        let c = self.reader().await?;
        let rows = c
            .query(&format!("{REVIEW_COLUMNS} ORDER BY rule, reviewed_at"), &[])
            .await
            .map_err(backend)?;
        rows.iter().map(review_row).collect()
    }

    pub async fn sweep_state(&self) -> Result<SweepState, StoreError> {
        let c = self.reader().await?;
        let row = c.query_opt(SWEEP_COLUMNS, &[]).await.map_err(backend)?;
        row.as_ref()
            .map(sweep_row)
            .transpose()?
            .ok_or_else(|| Place::row("retention_sweep", 1).corrupt("id", "is missing"))
    }
}
