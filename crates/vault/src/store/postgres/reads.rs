//! Reads: each on a pooled connection, decoded into the store's types by
//! the shaping both backends share (`sqlite::StoredRow` and the `*_row`
//! functions beside it), so a stored value that cannot be decoded is a
//! `Corrupt` error naming its table, row and column, never a panic or a
//! default.

use super::*;
use sqlite::{
    API_KEY_COLUMNS, AUDIT_COLUMNS, CONSENT_COLUMNS, HISTORY_COLUMNS, OUTBOX_COLUMNS,
    SUBJECT_COLUMNS,
};

/// Every row shaped by `shape`, or the first error.
fn shaped<T>(
    rows: &[Row],
    shape: impl Fn(&Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    rows.iter().map(shape).collect()
}

impl PgStore {
    pub async fn subject(&self, id: Uuid) -> Result<Option<SubjectRecord>, StoreError> {
        let c = self.reader().await?;
        let row = c
            .query_opt(&format!("{SUBJECT_COLUMNS} WHERE id = $1"), &[&id])
            .await
            .map_err(|e| self.failed(e))?;
        row.as_ref().map(sqlite::subject_row).transpose()
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
            .map_err(|e| self.failed(e))?;
        row.as_ref().map(sqlite::subject_row).transpose()
    }

    pub async fn field_history(&self, subject: Uuid) -> Result<Vec<HistoricField>, StoreError> {
        let c = self.reader().await?;
        let rows = c
            .query(
                &format!("{HISTORY_COLUMNS} WHERE subject_id = $1 ORDER BY id"),
                &[&subject],
            )
            .await
            .map_err(|e| self.failed(e))?;
        shaped(&rows, sqlite::historic_row)
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
            .map_err(|e| self.failed(e))?;
        row.as_ref().map(sqlite::api_key_row).transpose()
    }

    pub async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let c = self.reader().await?;
        let rows = c
            .query(&format!("{API_KEY_COLUMNS} ORDER BY created_at, id"), &[])
            .await
            .map_err(|e| self.failed(e))?;
        shaped(&rows, sqlite::api_key_row)
    }

    pub async fn audit_page(&self, after: i64, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        let c = self.reader().await?;
        let rows = c
            .query(
                &format!("{AUDIT_COLUMNS} WHERE seq > $1 ORDER BY seq LIMIT $2"),
                &[&after, &limit],
            )
            .await
            .map_err(|e| self.failed(e))?;
        shaped(&rows, sqlite::audit_row)
    }

    pub fn audit_key(&self) -> AuditKey {
        self.inner.audit_key.clone()
    }

    /// The first audit sequence number written keyed (see migration 5).
    pub async fn audit_keyed_from(&self) -> Result<i64, StoreError> {
        let c = self.reader().await?;
        let place = Place::row("meta", "audit_keyed_from");
        let row = c
            .query_opt("SELECT value FROM meta WHERE key = 'audit_keyed_from'", &[])
            .await
            .map_err(|e| self.failed(e))?
            .ok_or_else(|| place.corrupt("value", "is missing"))?;
        row.text(0, &place)?
            .parse()
            .map_err(|_| place.corrupt("value", "is not a number"))
    }

    pub async fn audit_head(&self) -> Result<Option<(i64, [u8; 32])>, StoreError> {
        let c = self.reader().await?;
        let (seq, hash) = load_head(&**c, false).await.map_err(|e| self.failed(e))??;
        Ok((seq > 0).then_some((seq, hash)))
    }

    pub async fn outbox_page(&self, after: i64, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
        let c = self.reader().await?;
        let rows = c
            .query(
                &format!("{OUTBOX_COLUMNS} WHERE id > $1 ORDER BY id LIMIT $2"),
                &[&after, &limit],
            )
            .await
            .map_err(|e| self.failed(e))?;
        shaped(&rows, sqlite::outbox_row)
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
        .map_err(|e| self.failed(e))?;
        shaped(&rows, sqlite::consent_row)
    }

    pub async fn consent_event(&self, id: Uuid) -> Result<Option<ConsentEvent>, StoreError> {
        let c = self.reader().await?;
        let row = c
            .query_opt(&format!("{CONSENT_COLUMNS} WHERE id = $1"), &[&id])
            .await
            .map_err(|e| self.failed(e))?;
        row.as_ref().map(sqlite::consent_row).transpose()
    }

    pub async fn visitor(&self, id: &str) -> Result<Option<VisitorRecord>, StoreError> {
        let c = self.reader().await?;
        let row = c
            .query_opt(
                "SELECT created_at, subject_id, state FROM visitors WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(|e| self.failed(e))?;
        row.as_ref().map(|r| sqlite::visitor_row(id, r)).transpose()
    }

    pub async fn suppressed(&self, kind: &str, hash: &[u8; 32]) -> Result<bool, StoreError> {
        let c = self.reader().await?;
        let row = c
            .query_opt(
                "SELECT 1 FROM suppression WHERE kind = $1 AND hash = $2",
                &[&kind, &hash.as_slice()],
            )
            .await
            .map_err(|e| self.failed(e))?;
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
                "SELECT hash, subject_id, state FROM lookup
                 WHERE kind = $1 AND hash > $2 ORDER BY hash LIMIT $3",
                &[&kind, &after.as_slice(), &limit],
            )
            .await
            .map_err(|e| self.failed(e))?;
        shaped(&rows, |r| sqlite::lookup_row(kind, r))
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
            .map_err(|e| self.failed(e))?;
        shaped(&rows, |r| r.hash(0, &Place::table("suppression")))
    }

    pub async fn data_keys_page(
        &self,
        not_under: u32,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<(Uuid, WrappedKey)>, StoreError> {
        let c = self.reader().await?;
        // A key id beyond INTEGER cannot be stored, so no row is under it.
        let not_under = i32::try_from(not_under).unwrap_or(i32::MAX);
        let rows = c
            .query(
                "SELECT id, kek_id, wrapped_key FROM subjects
                 WHERE wrapped_key IS NOT NULL AND kek_id <> $1 AND id > $2
                 ORDER BY id LIMIT $3",
                &[&not_under, &after.unwrap_or(Uuid::nil()), &limit],
            )
            .await
            .map_err(|e| self.failed(e))?;
        shaped(&rows, sqlite::data_key_row)
    }

    pub async fn keks_in_use(&self) -> Result<Vec<u32>, StoreError> {
        let c = self.reader().await?;
        let mut found = Vec::new();
        let mut after = -1i64;
        loop {
            let row = c
                .query_one(
                    "SELECT min(kek_id) AS kek_id FROM subjects
                     WHERE wrapped_key IS NOT NULL AND kek_id > $1",
                    &[&i32::try_from(after).unwrap_or(i32::MAX)],
                )
                .await
                .map_err(|e| self.failed(e))?;
            let Some(next) = row.opt_kek(0, &Place::table("subjects"))? else {
                break;
            };
            found.push(next);
            after = i64::from(next);
        }
        Ok(found)
    }

    pub async fn data_keys_per_kek(&self) -> Result<Vec<(u32, i64)>, StoreError> {
        let c = self.reader().await?;
        let rows = c
            .query(
                "SELECT kek_id, count(*) FROM subjects WHERE wrapped_key IS NOT NULL
                 GROUP BY kek_id ORDER BY kek_id",
                &[],
            )
            .await
            .map_err(|e| self.failed(e))?;
        shaped(&rows, sqlite::kek_count_row)
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
                        l.subject_id, l.state
                 FROM (SELECT 1) AS one
                 LEFT JOIN lookup l ON l.kind = $1 AND l.hash = $2",
                &[
                    &kind,
                    &hash.as_slice(),
                    &suppress_kind,
                    &suppress_hash.as_slice(),
                ],
            )
            .await
            .map_err(|e| self.failed(e))?;
        sqlite::check_row(kind, hash, &row)
    }

    pub async fn state_by_lookup(
        &self,
        kind: &str,
        hash: &[u8; 32],
    ) -> Result<Option<LookupState>, StoreError> {
        let c = self.reader().await?;
        let row = c
            .query_opt(
                "SELECT subject_id, state FROM lookup WHERE kind = $1 AND hash = $2",
                &[&kind, &hash.as_slice()],
            )
            .await
            .map_err(|e| self.failed(e))?;
        row.as_ref()
            .map(|r| sqlite::state_row(kind, hash, r))
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
            .map_err(|e| self.failed(e))?;
        row.map(|r| r.text(0, &Place::row("policy_versions", version)))
            .transpose()
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let c = self.reader().await?;
        c.query_one("SELECT 1", &[])
            .await
            .map_err(|e| self.failed(e))
            .map(|_| ())
    }
}
