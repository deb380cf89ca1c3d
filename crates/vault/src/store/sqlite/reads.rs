//! Reads: each runs on a pooled read-only connection, in its own read
//! transaction, and decodes rows into the store's types.

use super::*;

impl SqliteStore {
    pub fn subject(&self, id: Uuid) -> Result<Option<SubjectRecord>, StoreError> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT id, wrapped_key, kek_id, created_at, erased_at, fields, state FROM subjects WHERE id = ?1",
            )
            .map_err(backend)?
            .query_row([id.as_bytes().as_slice()], subject_row)
            .optional()
            .map_err(backend)?
            .transpose()
        })
    }

    pub fn subject_by_lookup(
        &self,
        kind: &str,
        hash: &[u8; 32],
    ) -> Result<Option<SubjectRecord>, StoreError> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT s.id, s.wrapped_key, s.kek_id, s.created_at, s.erased_at, s.fields, s.state
                 FROM lookup l JOIN subjects s ON s.id = l.subject_id
                 WHERE l.kind = ?1 AND l.hash = ?2",
            )
            .map_err(backend)?
            .query_row(params![kind, hash.as_slice()], subject_row)
            .optional()
            .map_err(backend)?
            .transpose()
        })
    }

    pub fn field_history(&self, subject: Uuid) -> Result<Vec<HistoricField>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT field, sealed, provenance, replaced_at FROM field_history WHERE subject_id = ?1 ORDER BY id",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map([subject.as_bytes().as_slice()], |r| {
                    let provenance: Vec<u8> = r.get(2)?;
                    Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?, provenance, r.get::<_, i64>(3)?))
                })
                .map_err(backend)?;
            let mut out = Vec::new();
            for row in rows {
                let (name, sealed, provenance, replaced_at) = row.map_err(backend)?;
                out.push(historic(name, sealed, &provenance, replaced_at)?);
            }
            Ok(out)
        })
    }

    pub fn api_key_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.read(|c| {
            c.prepare_cached(&format!("{API_KEY_COLUMNS} WHERE hash = ?1"))
                .map_err(backend)?
                .query_row([hash.as_slice()], api_key_row)
                .optional()
                .map_err(backend)
        })
    }

    pub fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(&format!("{API_KEY_COLUMNS} ORDER BY created_at, id"))
                .map_err(backend)?;
            let rows = stmt.query_map([], api_key_row).map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
    }

    pub fn audit_page(&self, after: i64, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT seq, at, actor, action, purpose, subject_id, decision, reason, prev_hash, hash
                     FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )
                .map_err(backend)?;
            let rows = stmt.query_map(params![after, limit], audit_row).map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
    }

    pub fn audit_head(&self) -> Result<Option<(i64, [u8; 32])>, StoreError> {
        self.read(|c| {
            let (seq, hash) = load_head(c)?;
            Ok((seq > 0).then_some((seq, hash)))
        })
    }

    pub fn outbox_page(&self, after: i64, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached("SELECT id, at, topic, subject_id, payload FROM outbox WHERE id > ?1 ORDER BY id LIMIT ?2")
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![after, limit], |r| {
                    let subject: Option<Vec<u8>> = r.get(3)?;
                    Ok(OutboxRow {
                        id: r.get(0)?,
                        at: r.get(1)?,
                        topic: r.get(2)?,
                        subject: subject.and_then(|b| Uuid::from_slice(&b).ok()),
                        payload: r.get(4)?,
                    })
                })
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
    }

    pub fn consent_events(&self, holder: &Holder) -> Result<Vec<ConsentEvent>, StoreError> {
        self.read(|c| {
            let (sql, key): (String, Box<dyn rusqlite::ToSql>) = match holder {
                Holder::Subject(id) => (
                    format!("{CONSENT_COLUMNS} WHERE subject_id = ?1 ORDER BY seq"),
                    Box::new(id.as_bytes().to_vec()),
                ),
                Holder::Visitor(v) => (
                    format!("{CONSENT_COLUMNS} WHERE visitor_id = ?1 ORDER BY seq"),
                    Box::new(v.clone()),
                ),
            };
            let mut stmt = c.prepare_cached(&sql).map_err(backend)?;
            let rows = stmt.query_map([key], consent_row).map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
    }

    pub fn consent_event(&self, id: Uuid) -> Result<Option<ConsentEvent>, StoreError> {
        self.read(|c| {
            c.prepare_cached(&format!("{CONSENT_COLUMNS} WHERE id = ?1"))
                .map_err(backend)?
                .query_row([id.as_bytes().as_slice()], consent_row)
                .optional()
                .map_err(backend)
        })
    }

    pub fn visitor(&self, id: &str) -> Result<Option<VisitorRecord>, StoreError> {
        self.read(|c| {
            let row: Option<(i64, Option<Vec<u8>>, Vec<u8>)> = c
                .prepare_cached("SELECT created_at, subject_id, state FROM visitors WHERE id = ?1")
                .map_err(backend)?
                .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
                .map_err(backend)?;
            row.map(|(created_at, subject, state)| {
                Ok(VisitorRecord {
                    id: id.to_string(),
                    created_at,
                    subject: subject.and_then(|b| Uuid::from_slice(&b).ok()),
                    preferences: serde_json::from_slice(&state)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                })
            })
            .transpose()
        })
    }

    pub fn suppressed(&self, kind: &str, hash: &[u8; 32]) -> Result<bool, StoreError> {
        self.read(|c| {
            c.prepare_cached("SELECT 1 FROM suppression WHERE kind = ?1 AND hash = ?2")
                .map_err(backend)?
                .query_row(params![kind, hash.as_slice()], |_| Ok(()))
                .optional()
                .map(|r| r.is_some())
                .map_err(backend)
        })
    }

    pub fn lookup_page(
        &self,
        kind: &str,
        after: Option<[u8; 32]>,
        limit: i64,
    ) -> Result<Vec<LookupState>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT hash, subject_id, state FROM lookup
                     WHERE kind = ?1 AND hash > ?2 ORDER BY hash LIMIT ?3",
                )
                .map_err(backend)?;
            let after = after.unwrap_or([0; 32]);
            let rows = stmt
                .query_map(params![kind, after.as_slice(), limit], |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, Option<Vec<u8>>>(2)?,
                    ))
                })
                .map_err(backend)?;
            let mut out = Vec::new();
            for row in rows {
                let (hash, id, state) = row.map_err(backend)?;
                out.push(LookupState {
                    hash: hash_from(&hash),
                    subject: uuid_from(&id).map_err(backend)?,
                    state: lookup_state(state.as_deref())?,
                });
            }
            Ok(out)
        })
    }

    pub fn suppression_page(
        &self,
        kind: &str,
        after: Option<[u8; 32]>,
        limit: i64,
    ) -> Result<Vec<[u8; 32]>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached("SELECT hash FROM suppression WHERE kind = ?1 AND hash > ?2 ORDER BY hash LIMIT ?3")
                .map_err(backend)?;
            let after = after.unwrap_or([0; 32]);
            let rows = stmt
                .query_map(params![kind, after.as_slice(), limit], |r| r.get::<_, Vec<u8>>(0))
                .map_err(backend)?;
            rows.map(|r| r.map(|h| hash_from(&h)).map_err(backend)).collect()
        })
    }

    pub fn data_keys_page(
        &self,
        not_under: u32,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<(Uuid, WrappedKey)>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT id, kek_id, wrapped_key FROM subjects
                     WHERE wrapped_key IS NOT NULL AND kek_id <> ?1 AND id > ?2
                     ORDER BY id LIMIT ?3",
                )
                .map_err(backend)?;
            let after = after.unwrap_or(Uuid::nil());
            let rows = stmt
                .query_map(
                    params![not_under, after.as_bytes().as_slice(), limit],
                    |r| {
                        Ok((
                            uuid_from(&r.get::<_, Vec<u8>>(0)?)?,
                            WrappedKey {
                                kek_id: r.get(1)?,
                                bytes: r.get(2)?,
                            },
                        ))
                    },
                )
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
    }

    pub fn keks_in_use(&self) -> Result<Vec<u32>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(KEK_AFTER).map_err(backend)?;
            let mut found = Vec::new();
            let mut after = -1i64;
            while let Some(next) = stmt
                .query_row([after], |r| r.get::<_, Option<i64>>(0))
                .map_err(backend)?
            {
                found.push(u32::try_from(next).map_err(|e| StoreError::Corrupt(e.to_string()))?);
                after = next;
            }
            Ok(found)
        })
    }

    pub fn data_keys_per_kek(&self) -> Result<Vec<(u32, i64)>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT kek_id, count(*) FROM subjects WHERE wrapped_key IS NOT NULL
                     GROUP BY kek_id ORDER BY kek_id",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
    }

    pub fn check_lookup(
        &self,
        kind: &str,
        hash: &[u8; 32],
        suppress_kind: &str,
        suppress_hash: &[u8; 32],
    ) -> Result<(bool, Option<LookupState>), StoreError> {
        self.read(|c| {
            let (suppressed, id, state): CheckRow = c
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM suppression WHERE kind = ?3 AND hash = ?4),
                            l.subject_id, l.state
                     FROM (SELECT 1) AS one
                     LEFT JOIN lookup l ON l.kind = ?1 AND l.hash = ?2",
                )
                .map_err(backend)?
                .query_row(
                    params![
                        kind,
                        hash.as_slice(),
                        suppress_kind,
                        suppress_hash.as_slice()
                    ],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .map_err(backend)?;
            let found = match id {
                Some(id) => Some(LookupState {
                    hash: *hash,
                    subject: uuid_from(&id).map_err(backend)?,
                    state: lookup_state(state.as_deref())?,
                }),
                None => None,
            };
            Ok((suppressed, found))
        })
    }

    pub fn state_by_lookup(
        &self,
        kind: &str,
        hash: &[u8; 32],
    ) -> Result<Option<LookupState>, StoreError> {
        self.read(|c| {
            let row: Option<(Vec<u8>, Option<Vec<u8>>)> = c
                .prepare_cached(
                    "SELECT subject_id, state FROM lookup WHERE kind = ?1 AND hash = ?2",
                )
                .map_err(backend)?
                .query_row(params![kind, hash.as_slice()], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
                .map_err(backend)?;
            row.map(|(id, state)| {
                Ok(LookupState {
                    hash: *hash,
                    subject: uuid_from(&id).map_err(backend)?,
                    state: lookup_state(state.as_deref())?,
                })
            })
            .transpose()
        })
    }

    pub fn policy_source(&self, version: &str) -> Result<Option<String>, StoreError> {
        self.read(|c| {
            c.prepare_cached("SELECT source FROM policy_versions WHERE version = ?1")
                .map_err(backend)?
                .query_row([version], |r| r.get(0))
                .optional()
                .map_err(backend)
        })
    }

    pub fn ping(&self) -> Result<(), StoreError> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(backend))
    }
}

/// The next key-encryption key in use after `?1`, through subjects_by_kek.
pub(super) const KEK_AFTER: &str =
    "SELECT min(kek_id) FROM subjects WHERE wrapped_key IS NOT NULL AND kek_id > ?1";

/// Suppressed?, then the subject's id and state if the address is known.
type CheckRow = (bool, Option<Vec<u8>>, Option<Vec<u8>>);

const CONSENT_COLUMNS: &str = "SELECT id, at, subject_id, visitor_id, purpose, channel, action, policy_version, method, agent, wording_hash, ip_prefix, recorded_by, expires_at FROM consent_events";

fn consent_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ConsentEvent> {
    let id: Vec<u8> = r.get(0)?;
    let subject: Option<Vec<u8>> = r.get(2)?;
    let action: String = r.get(6)?;
    let wording: Option<Vec<u8>> = r.get(10)?;
    Ok(ConsentEvent {
        id: uuid_from(&id)?,
        at: r.get(1)?,
        subject: subject.map(|b| uuid_from(&b)).transpose()?,
        visitor: r.get(3)?,
        purpose: r.get(4)?,
        channel: r.get(5)?,
        action: ConsentAction::parse(&action).unwrap_or(ConsentAction::Refuse),
        policy_version: r.get(7)?,
        method: r.get(8)?,
        agent: r.get(9)?,
        wording_hash: wording.map(|w| hash_from(&w)),
        ip_prefix: r.get(11)?,
        recorded_by: r.get(12)?,
        expires_at: r.get(13)?,
    })
}

const API_KEY_COLUMNS: &str =
    "SELECT id, hash, role, purposes, recipient, label, created_at, revoked_at FROM api_keys";

fn uuid_from(bytes: &[u8]) -> rusqlite::Result<Uuid> {
    Uuid::from_slice(bytes).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
    })
}

fn subject_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<SubjectRecord, StoreError>> {
    let id: Vec<u8> = r.get(0)?;
    let wrapped: Option<Vec<u8>> = r.get(1)?;
    let kek_id: u32 = r.get(2)?;
    let fields: Vec<u8> = r.get(5)?;
    let state: Vec<u8> = r.get(6)?;
    let id = uuid_from(&id)?;
    Ok(build_subject(
        id,
        wrapped,
        kek_id,
        r.get(3)?,
        r.get(4)?,
        &fields,
        &state,
    ))
}

pub(in crate::store) fn build_subject(
    id: Uuid,
    wrapped: Option<Vec<u8>>,
    kek_id: u32,
    created_at: Micros,
    erased_at: Option<Micros>,
    fields: &[u8],
    state: &[u8],
) -> Result<SubjectRecord, StoreError> {
    Ok(SubjectRecord {
        id,
        wrapped_key: wrapped.map(|bytes| WrappedKey { kek_id, bytes }),
        created_at,
        erased_at,
        fields: decode(fields).map_err(StoreError::Corrupt)?,
        state: decode_state(state).map_err(StoreError::Corrupt)?,
    })
}

pub(in crate::store) fn historic(
    name: String,
    sealed: Vec<u8>,
    provenance: &[u8],
    replaced_at: Micros,
) -> Result<HistoricField, StoreError> {
    let provenance: Option<Provenance> =
        decode::<Option<Provenance>>(provenance).map_err(StoreError::Corrupt)?;
    let provenance =
        provenance.ok_or_else(|| StoreError::Corrupt("a history row has no provenance".into()))?;
    Ok(HistoricField {
        field: StoredField {
            name,
            sealed,
            provenance,
        },
        replaced_at,
    })
}

fn api_key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    let hash: Vec<u8> = r.get(1)?;
    let purposes: String = r.get(3)?;
    Ok(ApiKeyRecord {
        id: r.get(0)?,
        hash: hash_from(&hash),
        role: r.get(2)?,
        purposes: serde_json::from_str(&purposes).unwrap_or_default(),
        recipient: r.get(4)?,
        label: r.get(5)?,
        created_at: r.get(6)?,
        revoked_at: r.get(7)?,
    })
}

fn audit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditEntry> {
    let subject: Option<Vec<u8>> = r.get(5)?;
    let prev: Vec<u8> = r.get(8)?;
    let hash: Vec<u8> = r.get(9)?;
    Ok(AuditEntry {
        seq: r.get(0)?,
        draft: audit::AuditDraft {
            at: r.get(1)?,
            actor: r.get(2)?,
            action: r.get(3)?,
            purpose: r.get(4)?,
            subject: subject.map(|b| uuid_from(&b)).transpose()?,
            decision: r.get(6)?,
            reason: r.get(7)?,
        },
        prev_hash: hash_from(&prev),
        hash: hash_from(&hash),
    })
}
