//! Retention's operations and reads on SQLite, and the shaping of its rows,
//! which the PostgreSQL backend shares.

use super::reads::{all, first};
use super::*;
use crate::store::retention::{
    DatumExpiry, ExpiryRow, LegalHold, RetentionOp, RuleReview, SweepState,
};

fn store_err(e: rusqlite::Error) -> BatchError {
    BatchError::Store(e.to_string())
}

pub(in crate::store) const EXPIRY_COLUMNS: &str =
    "SELECT subject_id, due_at, held_by, data FROM retention_due";
pub(in crate::store) const HOLD_COLUMNS: &str = "SELECT id, scope, target, reason, set_by, set_at, ends_at, released_at, released_by FROM legal_holds";
pub(in crate::store) const REVIEW_COLUMNS: &str =
    "SELECT rule, reviewed_at, reviewed_by, note FROM retention_reviews";
pub(in crate::store) const SWEEP_COLUMNS: &str =
    "SELECT owner, lease_until, fingerprint, last_run_at FROM retention_sweep WHERE id = 1";

pub(in crate::store) fn expiry_row(r: &impl StoredRow) -> Result<ExpiryRow, StoreError> {
    let at = Place::table("retention_due");
    let subject = r.uuid(0, &at)?;
    let at = at.with_row(subject);
    let data: Vec<DatumExpiry> = decode(&r.blob(3, &at)?).map_err(|why| at.corrupt("data", why))?;
    Ok(ExpiryRow {
        subject,
        due_at: r.opt_int(1, &at)?,
        held_by: r.opt_uuid(2, &at)?,
        data,
    })
}

pub(in crate::store) fn hold_row(r: &impl StoredRow) -> Result<LegalHold, StoreError> {
    let at = Place::table("legal_holds");
    let id = r.uuid(0, &at)?;
    let at = at.with_row(id);
    Ok(LegalHold {
        id,
        scope: r.text(1, &at)?,
        target: r.text(2, &at)?,
        reason: r.text(3, &at)?,
        set_by: r.text(4, &at)?,
        set_at: r.int(5, &at)?,
        ends_at: r.opt_int(6, &at)?,
        released_at: r.opt_int(7, &at)?,
        released_by: r.opt_text(8, &at)?,
    })
}

pub(in crate::store) fn review_row(r: &impl StoredRow) -> Result<RuleReview, StoreError> {
    let at = Place::table("retention_reviews");
    Ok(RuleReview {
        rule: r.text(0, &at)?,
        reviewed_at: r.int(1, &at)?,
        reviewed_by: r.text(2, &at)?,
        note: r.opt_text(3, &at)?,
    })
}

pub(in crate::store) fn sweep_row(r: &impl StoredRow) -> Result<SweepState, StoreError> {
    let at = Place::row("retention_sweep", 1);
    Ok(SweepState {
        owner: r.opt_text(0, &at)?,
        lease_until: r.opt_int(1, &at)?,
        fingerprint: r.opt_text(2, &at)?,
        last_run_at: r.opt_int(3, &at)?,
    })
}

/// Applies one retention operation inside the group's transaction.
pub(super) fn apply(c: &Connection, op: &RetentionOp) -> Result<(), BatchError> {
    match op {
        RetentionOp::PutExpiry(row) => put_expiry(c, row),
        RetentionOp::DropData {
            subject,
            fields,
            shred,
            at,
        } => drop_data(c, subject, fields, *shred, *at),
        RetentionOp::ClaimSweep {
            owner,
            now,
            lease_until,
        } => {
            // The one writer serialises claims on SQLite.
            let changed = c
                .prepare_cached(
                    "UPDATE retention_sweep SET owner = ?1, lease_until = ?3
                     WHERE id = 1 AND (owner IS NULL OR owner = ?1 OR lease_until IS NULL OR lease_until < ?2)",
                )
                .map_err(store_err)?
                .execute(params![owner, now, lease_until])
                .map_err(store_err)?;
            if changed == 0 {
                return Err(BatchError::SweepBusy);
            }
            Ok(())
        }
        RetentionOp::RenewSweep {
            owner,
            now,
            lease_until,
        } => {
            let changed = c
                .prepare_cached(
                    "UPDATE retention_sweep SET lease_until = ?3
                     WHERE id = 1 AND owner = ?1 AND lease_until >= ?2",
                )
                .map_err(store_err)?
                .execute(params![owner, now, lease_until])
                .map_err(store_err)?;
            if changed == 0 {
                return Err(BatchError::LeaseLost);
            }
            Ok(())
        }
        RetentionOp::EndSweep { owner, at } => {
            c.prepare_cached(
                "UPDATE retention_sweep SET owner = NULL, lease_until = NULL, last_run_at = ?2
                 WHERE id = 1 AND owner = ?1",
            )
            .map_err(store_err)?
            .execute(params![owner, at])
            .map_err(store_err)?;
            Ok(())
        }
        RetentionOp::PolicyRetention { fingerprint } => {
            let changed = c
                .prepare_cached(
                    "UPDATE retention_sweep SET fingerprint = ?1
                     WHERE id = 1 AND (fingerprint IS NULL OR fingerprint <> ?1)",
                )
                .map_err(store_err)?
                .execute([fingerprint])
                .map_err(store_err)?;
            if changed > 0 {
                c.prepare_cached("UPDATE retention_due SET due_at = 0")
                    .map_err(store_err)?
                    .execute([])
                    .map_err(store_err)?;
            }
            Ok(())
        }
        RetentionOp::PutHold(h) => {
            c.prepare_cached(
                "INSERT INTO legal_holds (id, scope, target, reason, set_by, set_at, ends_at, released_at, released_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .map_err(store_err)?
            .execute(params![
                h.id.as_bytes().as_slice(),
                h.scope,
                h.target,
                h.reason,
                h.set_by,
                h.set_at,
                h.ends_at,
                h.released_at,
                h.released_by
            ])
            .map_err(store_err)?;
            Ok(())
        }
        RetentionOp::ReleaseHold { id, at, by } => {
            let scope: Option<(String, String)> = c
                .prepare_cached(
                    "UPDATE legal_holds SET released_at = ?2, released_by = ?3
                     WHERE id = ?1 AND released_at IS NULL RETURNING scope, target",
                )
                .map_err(store_err)?
                .query_row(params![id.as_bytes().as_slice(), at, by], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
                .map_err(store_err)?;
            let Some((scope, target)) = scope else {
                return Err(BatchError::HoldNotFound);
            };
            // What the hold kept is computed again: for a subject hold that
            // subject; otherwise every subject some hold keeps data of
            // (a row names one hold, and another may keep other data of it).
            match (scope.as_str(), Uuid::parse_str(&target)) {
                ("subject", Ok(subject)) => c
                    .prepare_cached("UPDATE retention_due SET due_at = 0 WHERE subject_id = ?1")
                    .map_err(store_err)?
                    .execute([subject.as_bytes().as_slice()])
                    .map_err(store_err)?,
                _ => c
                    .prepare_cached("UPDATE retention_due SET due_at = 0 WHERE held_by IS NOT NULL")
                    .map_err(store_err)?
                    .execute([])
                    .map_err(store_err)?,
            };
            Ok(())
        }
        RetentionOp::Reviewed(r) => {
            c.prepare_cached(
                "INSERT INTO retention_reviews (rule, reviewed_at, reviewed_by, note) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (rule, reviewed_at) DO NOTHING",
            )
            .map_err(store_err)?
            .execute(params![r.rule, r.reviewed_at, r.reviewed_by, r.note])
            .map_err(store_err)?;
            Ok(())
        }
    }
}

fn put_expiry(c: &Connection, row: &ExpiryRow) -> Result<(), BatchError> {
    c.prepare_cached(
        "INSERT INTO retention_due (subject_id, due_at, held_by, data) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (subject_id) DO UPDATE SET due_at = excluded.due_at, held_by = excluded.held_by, data = excluded.data",
    )
    .map_err(store_err)?
    .execute(params![
        row.subject.as_bytes().as_slice(),
        row.due_at,
        row.held_by.as_ref().map(|h| h.as_bytes().as_slice()),
        encode(&row.data)
    ])
    .map_err(store_err)?;
    Ok(())
}

fn drop_data(
    c: &Connection,
    subject: &Uuid,
    fields: &[String],
    shred: bool,
    at: Micros,
) -> Result<(), BatchError> {
    let id = subject.as_bytes().as_slice();
    let row: Option<(Option<Vec<u8>>, Vec<u8>)> = c
        .prepare_cached("SELECT wrapped_key, fields FROM subjects WHERE id = ?1")
        .map_err(store_err)?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(store_err)?;
    let Some((key, stored)) = row else {
        // A row whose subject is gone goes too.
        c.prepare_cached("DELETE FROM retention_due WHERE subject_id = ?1")
            .map_err(store_err)?
            .execute([id])
            .map_err(store_err)?;
        return Ok(());
    };
    let mut kept: Vec<StoredField> = decode(&stored).map_err(BatchError::Store)?;
    kept.retain(|f| !fields.contains(&f.name));
    if shred {
        if key.is_some() {
            c.prepare_cached(
                "UPDATE subjects SET wrapped_key = NULL, fields = ?2, erased_at = COALESCE(erased_at, ?3) WHERE id = ?1",
            )
            .map_err(store_err)?
            .execute(params![id, encode(&Vec::<StoredField>::new()), at])
            .map_err(store_err)?;
        }
        for sql in [
            "DELETE FROM field_history WHERE subject_id = ?1",
            "DELETE FROM lookup WHERE subject_id = ?1",
            "DELETE FROM retention_due WHERE subject_id = ?1",
        ] {
            c.prepare_cached(sql)
                .map_err(store_err)?
                .execute([id])
                .map_err(store_err)?;
        }
        return Ok(());
    }
    c.prepare_cached("UPDATE subjects SET fields = ?2 WHERE id = ?1")
        .map_err(store_err)?
        .execute(params![id, encode(&kept)])
        .map_err(store_err)?;
    for field in fields {
        c.prepare_cached("DELETE FROM field_history WHERE subject_id = ?1 AND field = ?2")
            .map_err(store_err)?
            .execute(params![id, field])
            .map_err(store_err)?;
        c.prepare_cached(writes::DELETE_LOOKUP)
            .map_err(store_err)?
            .execute(params![id, field])
            .map_err(store_err)?;
    }
    Ok(())
}

impl SqliteStore {
    /// Index rows due at `now` (`due_at <= now`), in due order after `after`.
    pub fn due_page(
        &self,
        now: Micros,
        after: Option<(Micros, Uuid)>,
        limit: i64,
    ) -> Result<Vec<ExpiryRow>, StoreError> {
        let (after_due, after_id) = match after {
            Some((d, id)) => (Some(d), Some(id.as_bytes().to_vec())),
            None => (None, None),
        };
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "{EXPIRY_COLUMNS} INDEXED BY retention_due_at
                     WHERE due_at IS NOT NULL AND due_at <= ?1
                       AND (?2 IS NULL OR due_at > ?2 OR (due_at = ?2 AND subject_id > ?3))
                     ORDER BY due_at, subject_id LIMIT ?4"
                ))
                .map_err(backend)?;
            all(&mut stmt, params![now, after_due, after_id, limit], |r| {
                expiry_row(r)
            })
        })
    }

    /// Subjects some of whose due data a hold keeps, with the hold, in
    /// subject order after `after`.
    pub fn held_page(
        &self,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<(Uuid, Option<Uuid>)>, StoreError> {
        let after = after.map(|a| a.as_bytes().to_vec());
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT subject_id, held_by FROM retention_due INDEXED BY retention_held_by
                     WHERE held_by IS NOT NULL AND (?1 IS NULL OR subject_id > ?1)
                     ORDER BY subject_id LIMIT ?2",
                )
                .map_err(backend)?;
            all(&mut stmt, params![after, limit], |r| {
                let at = Place::table("retention_due");
                Ok((r.uuid(0, &at)?, r.opt_uuid(1, &at)?))
            })
        })
    }

    pub fn expiry_of(&self, subject: Uuid) -> Result<Option<ExpiryRow>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(&format!("{EXPIRY_COLUMNS} WHERE subject_id = ?1"))
                .map_err(backend)?;
            first(&mut stmt, [subject.as_bytes().as_slice()], |r| {
                expiry_row(r)
            })
        })
    }

    pub fn holds(&self) -> Result<Vec<LegalHold>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(&format!("{HOLD_COLUMNS} ORDER BY id"))
                .map_err(backend)?;
            all(&mut stmt, [], |r| hold_row(r))
        })
    }

    pub fn reviews(&self) -> Result<Vec<RuleReview>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(&format!("{REVIEW_COLUMNS} ORDER BY rule, reviewed_at"))
                .map_err(backend)?;
            all(&mut stmt, [], |r| review_row(r))
        })
    }

    pub fn sweep_state(&self) -> Result<SweepState, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(SWEEP_COLUMNS).map_err(backend)?;
            first(&mut stmt, [], |r| sweep_row(r))?
                .ok_or_else(|| Place::row("retention_sweep", 1).corrupt("id", "is missing"))
        })
    }
}
