//! Reads: each on a pooled connection, decoded into the store's types.

use super::*;

impl PgStore {
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
                "SELECT hash, subject_id, state FROM lookup
                 WHERE kind = $1 AND hash > $2 ORDER BY hash LIMIT $3",
                &[&kind, &after.as_slice(), &limit],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                let hash: Vec<u8> = r.get(0);
                let state: Option<Vec<u8>> = r.get(2);
                Ok(LookupState {
                    hash: hash_from(&hash),
                    subject: r.get(1),
                    state: lookup_state(state.as_deref())?,
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

    pub async fn data_keys_page(
        &self,
        not_under: u32,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<(Uuid, WrappedKey)>, StoreError> {
        let c = self.reader().await?;
        let not_under = i32::try_from(not_under).unwrap_or(i32::MAX);
        let rows = c
            .query(
                "SELECT id, kek_id, wrapped_key FROM subjects
                 WHERE wrapped_key IS NOT NULL AND kek_id <> $1 AND id > $2
                 ORDER BY id LIMIT $3",
                &[&not_under, &after.unwrap_or(Uuid::nil()), &limit],
            )
            .await
            .map_err(backend)?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    WrappedKey {
                        kek_id: u32::try_from(r.get::<_, i32>(1)).unwrap_or(0),
                        bytes: r.get(2),
                    },
                )
            })
            .collect())
    }

    pub async fn keks_in_use(&self) -> Result<Vec<u32>, StoreError> {
        let c = self.reader().await?;
        let mut found = Vec::new();
        let mut after = -1i32;
        loop {
            let next: Option<i32> = c
                .query_one(
                    "SELECT min(kek_id) FROM subjects WHERE wrapped_key IS NOT NULL AND kek_id > $1",
                    &[&after],
                )
                .await
                .map_err(backend)?
                .get(0);
            let Some(next) = next else { break };
            found.push(u32::try_from(next).map_err(|e| StoreError::Corrupt(e.to_string()))?);
            after = next;
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
            .map_err(backend)?;
        Ok(rows
            .iter()
            .map(|r| (u32::try_from(r.get::<_, i32>(0)).unwrap_or(0), r.get(1)))
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
            .map_err(backend)?;
        let suppressed: bool = row.get(0);
        let id: Option<Uuid> = row.get(1);
        let state: Option<Vec<u8>> = row.get(2);
        let found = match id {
            Some(id) => Some(LookupState {
                hash: *hash,
                subject: id,
                state: lookup_state(state.as_deref())?,
            }),
            None => None,
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
                "SELECT subject_id, state FROM lookup WHERE kind = $1 AND hash = $2",
                &[&kind, &hash.as_slice()],
            )
            .await
            .map_err(backend)?;
        row.map(|r| {
            let state: Option<Vec<u8>> = r.get(1);
            Ok(LookupState {
                hash: *hash,
                subject: r.get(0),
                state: lookup_state(state.as_deref())?,
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
