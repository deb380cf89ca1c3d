//! Reads: each runs on a pooled read-only connection, in its own read
//! transaction, and decodes rows into the store's types.
//!
//! The shaping of rows into records is shared with the PostgreSQL backend
//! (`StoredRow` and the `*_row` functions here): a stored value that cannot
//! be decoded is a `Corrupt` error naming the table, the row and the column,
//! never a default.

use super::*;

impl SqliteStore {
    pub fn subject(&self, id: Uuid) -> Result<Option<SubjectRecord>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(&format!("{SUBJECT_COLUMNS} WHERE id = ?1"))
                .map_err(backend)?;
            first(&mut stmt, [id.as_bytes().as_slice()], |r| subject_row(r))
        })
    }

    pub fn subject_by_lookup(
        &self,
        kind: &str,
        hash: &[u8; 32],
    ) -> Result<Option<SubjectRecord>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT s.id, s.wrapped_key, s.kek_id, s.created_at, s.erased_at, s.fields, s.state
                     FROM lookup l JOIN subjects s ON s.id = l.subject_id
                     WHERE l.kind = ?1 AND l.hash = ?2",
                )
                .map_err(backend)?;
            first(&mut stmt, params![kind, hash.as_slice()], |r| subject_row(r))
        })
    }

    pub fn field_history(&self, subject: Uuid) -> Result<Vec<HistoricField>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "{HISTORY_COLUMNS} WHERE subject_id = ?1 ORDER BY id"
                ))
                .map_err(backend)?;
            all(&mut stmt, [subject.as_bytes().as_slice()], |r| {
                historic_row(r)
            })
        })
    }

    pub fn api_key_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(&format!("{API_KEY_COLUMNS} WHERE hash = ?1"))
                .map_err(backend)?;
            first(&mut stmt, [hash.as_slice()], |r| api_key_row(r))
        })
    }

    pub fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(&format!("{API_KEY_COLUMNS} ORDER BY created_at, id"))
                .map_err(backend)?;
            all(&mut stmt, [], |r| api_key_row(r))
        })
    }

    pub fn audit_page(&self, after: i64, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "{AUDIT_COLUMNS} WHERE seq > ?1 ORDER BY seq LIMIT ?2"
                ))
                .map_err(backend)?;
            all(&mut stmt, params![after, limit], |r| audit_row(r))
        })
    }

    pub fn audit_key(&self) -> AuditKey {
        self.inner.audit_key.clone()
    }

    /// The first audit sequence number written keyed (see migration 5).
    pub fn audit_keyed_from(&self) -> Result<i64, StoreError> {
        self.read(|c| {
            let text: String = c
                .query_row(
                    "SELECT value FROM meta WHERE key = 'audit_keyed_from'",
                    [],
                    |r| r.get(0),
                )
                .map_err(|_| {
                    Place::row("meta", "audit_keyed_from").corrupt("value", "is missing")
                })?;
            text.parse().map_err(|_| {
                Place::row("meta", "audit_keyed_from").corrupt("value", "is not a number")
            })
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
                .prepare_cached(&format!(
                    "{OUTBOX_COLUMNS} WHERE id > ?1 ORDER BY id LIMIT ?2"
                ))
                .map_err(backend)?;
            all(&mut stmt, params![after, limit], |r| outbox_row(r))
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
            all(&mut stmt, [key], |r| consent_row(r))
        })
    }

    pub fn consent_event(&self, id: Uuid) -> Result<Option<ConsentEvent>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(&format!("{CONSENT_COLUMNS} WHERE id = ?1"))
                .map_err(backend)?;
            first(&mut stmt, [id.as_bytes().as_slice()], |r| consent_row(r))
        })
    }

    pub fn visitor(&self, id: &str) -> Result<Option<VisitorRecord>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached("SELECT created_at, subject_id, state FROM visitors WHERE id = ?1")
                .map_err(backend)?;
            first(&mut stmt, [id], |r| visitor_row(id, r))
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
            all(&mut stmt, params![kind, after.as_slice(), limit], |r| {
                lookup_row(kind, r)
            })
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
            all(&mut stmt, params![kind, after.as_slice(), limit], |r| {
                r.hash(0, &Place::table("suppression"))
            })
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
            all(
                &mut stmt,
                params![not_under, after.as_bytes().as_slice(), limit],
                |r| data_key_row(r),
            )
        })
    }

    pub fn keks_in_use(&self) -> Result<Vec<u32>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(KEK_AFTER).map_err(backend)?;
            let mut found = Vec::new();
            let mut after = -1i64;
            while let Some(next) = first(&mut stmt, [after], |r| {
                r.opt_kek(0, &Place::table("subjects"))
            })?
            .flatten()
            {
                found.push(next);
                after = i64::from(next);
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
            all(&mut stmt, [], |r| kek_count_row(r))
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
            let mut stmt = c
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM suppression WHERE kind = ?3 AND hash = ?4),
                            l.subject_id, l.state
                     FROM (SELECT 1) AS one
                     LEFT JOIN lookup l ON l.kind = ?1 AND l.hash = ?2",
                )
                .map_err(backend)?;
            first(
                &mut stmt,
                params![
                    kind,
                    hash.as_slice(),
                    suppress_kind,
                    suppress_hash.as_slice()
                ],
                |r| check_row(kind, hash, r),
            )?
            .ok_or_else(|| StoreError::Backend("the lookup check returned no row".into()))
        })
    }

    pub fn state_by_lookup(
        &self,
        kind: &str,
        hash: &[u8; 32],
    ) -> Result<Option<LookupState>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT subject_id, state FROM lookup WHERE kind = ?1 AND hash = ?2",
                )
                .map_err(backend)?;
            first(&mut stmt, params![kind, hash.as_slice()], |r| {
                state_row(kind, hash, r)
            })
        })
    }

    pub fn policy_source(&self, version: &str) -> Result<Option<String>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached("SELECT source FROM policy_versions WHERE version = ?1")
                .map_err(backend)?;
            first(&mut stmt, [version], |r| {
                r.text(0, &Place::row("policy_versions", version))
            })
        })
    }

    pub fn ping(&self) -> Result<(), StoreError> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(backend))
    }
}

/// The first row a statement returns, if any, shaped by `shape`.
pub(super) fn first<T>(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
    shape: impl FnOnce(&rusqlite::Row<'_>) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let mut rows = stmt.query(params).map_err(backend)?;
    rows.next().map_err(backend)?.map(shape).transpose()
}

/// Every row a statement returns, each shaped by `shape`.
pub(super) fn all<T>(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
    shape: impl Fn(&rusqlite::Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut rows = stmt.query(params).map_err(backend)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(backend)? {
        out.push(shape(r)?);
    }
    Ok(out)
}

/// The next key-encryption key in use after `?1`, through subjects_by_kek.
pub(super) const KEK_AFTER: &str =
    "SELECT min(kek_id) FROM subjects WHERE wrapped_key IS NOT NULL AND kek_id > ?1";

/// A stored row, read column by column. Every failure is a `Corrupt` error
/// naming the table, the row when its id is known, and the column, never the
/// value. Both backends' rows implement it, so each record is shaped from its
/// columns once, by the `*_row` functions below.
pub(in crate::store) trait StoredRow {
    /// The name of column `i`, for errors.
    fn column(&self, i: usize) -> &str;
    fn text(&self, i: usize, at: &Place) -> Result<String, StoreError>;
    fn opt_text(&self, i: usize, at: &Place) -> Result<Option<String>, StoreError>;
    fn int(&self, i: usize, at: &Place) -> Result<i64, StoreError>;
    fn opt_int(&self, i: usize, at: &Place) -> Result<Option<i64>, StoreError>;
    fn flag(&self, i: usize, at: &Place) -> Result<bool, StoreError>;
    fn blob(&self, i: usize, at: &Place) -> Result<Vec<u8>, StoreError>;
    fn opt_blob(&self, i: usize, at: &Place) -> Result<Option<Vec<u8>>, StoreError>;
    fn opt_uuid(&self, i: usize, at: &Place) -> Result<Option<Uuid>, StoreError>;

    fn uuid(&self, i: usize, at: &Place) -> Result<Uuid, StoreError> {
        self.opt_uuid(i, at)?
            .ok_or_else(|| at.corrupt(self.column(i), "is NULL"))
    }

    /// A key-encryption key id.
    fn opt_kek(&self, i: usize, at: &Place) -> Result<Option<u32>, StoreError> {
        self.opt_int(i, at)?
            .map(|v| {
                u32::try_from(v)
                    .map_err(|_| at.corrupt(self.column(i), "is not a key-encryption key id"))
            })
            .transpose()
    }

    fn kek(&self, i: usize, at: &Place) -> Result<u32, StoreError> {
        self.opt_kek(i, at)?
            .ok_or_else(|| at.corrupt(self.column(i), "is NULL"))
    }

    /// A 32-byte hash; any other length is corrupt (zeros would pass for one).
    fn opt_hash(&self, i: usize, at: &Place) -> Result<Option<[u8; 32]>, StoreError> {
        self.opt_blob(i, at)?
            .map(|b| {
                <[u8; 32]>::try_from(b.as_slice()).map_err(|_| {
                    at.corrupt(
                        self.column(i),
                        format!("is {} bytes long, not a 32-byte hash", b.len()),
                    )
                })
            })
            .transpose()
    }

    fn hash(&self, i: usize, at: &Place) -> Result<[u8; 32], StoreError> {
        self.opt_hash(i, at)?
            .ok_or_else(|| at.corrupt(self.column(i), "is NULL"))
    }
}

impl StoredRow for rusqlite::Row<'_> {
    fn column(&self, i: usize) -> &str {
        self.as_ref().column_name(i).unwrap_or("?")
    }
    fn text(&self, i: usize, at: &Place) -> Result<String, StoreError> {
        col(self, i, at)
    }
    fn opt_text(&self, i: usize, at: &Place) -> Result<Option<String>, StoreError> {
        col(self, i, at)
    }
    fn int(&self, i: usize, at: &Place) -> Result<i64, StoreError> {
        col(self, i, at)
    }
    fn opt_int(&self, i: usize, at: &Place) -> Result<Option<i64>, StoreError> {
        col(self, i, at)
    }
    fn flag(&self, i: usize, at: &Place) -> Result<bool, StoreError> {
        col(self, i, at)
    }
    fn blob(&self, i: usize, at: &Place) -> Result<Vec<u8>, StoreError> {
        col(self, i, at)
    }
    fn opt_blob(&self, i: usize, at: &Place) -> Result<Option<Vec<u8>>, StoreError> {
        col(self, i, at)
    }
    /// SQLite keeps ids as 16-byte blobs.
    fn opt_uuid(&self, i: usize, at: &Place) -> Result<Option<Uuid>, StoreError> {
        self.opt_blob(i, at)?
            .map(|b| {
                Uuid::from_slice(&b).map_err(|_| {
                    at.corrupt(
                        self.column(i),
                        format!("is {} bytes long, not a 16-byte id", b.len()),
                    )
                })
            })
            .transpose()
    }
}

/// Column `i` of a SQLite row, or a `Corrupt` error naming where it was.
fn col<T: rusqlite::types::FromSql>(
    r: &rusqlite::Row<'_>,
    i: usize,
    at: &Place,
) -> Result<T, StoreError> {
    r.get(i).map_err(|e| {
        let why = match e {
            rusqlite::Error::InvalidColumnType(_, _, rusqlite::types::Type::Null) => {
                "is NULL".to_string()
            }
            rusqlite::Error::InvalidColumnType(_, _, t) => format!("holds {t}, another type"),
            rusqlite::Error::IntegralValueOutOfRange(..) => "is out of range".into(),
            rusqlite::Error::Utf8Error(..) => "is not UTF-8 text".into(),
            _ => "cannot be decoded".into(),
        };
        at.corrupt(r.column(i), why)
    })
}

pub(in crate::store) const SUBJECT_COLUMNS: &str =
    "SELECT id, wrapped_key, kek_id, created_at, erased_at, fields, state FROM subjects";

pub(in crate::store) fn subject_row(r: &impl StoredRow) -> Result<SubjectRecord, StoreError> {
    let at = Place::table("subjects");
    let id = r.uuid(0, &at)?;
    let at = at.with_row(id);
    let wrapped = r.opt_blob(1, &at)?;
    let kek_id = r.kek(2, &at)?;
    Ok(SubjectRecord {
        id,
        wrapped_key: wrapped.map(|bytes| WrappedKey { kek_id, bytes }),
        created_at: r.int(3, &at)?,
        erased_at: r.opt_int(4, &at)?,
        fields: decode(&r.blob(5, &at)?).map_err(|why| at.corrupt("fields", why))?,
        state: decode_state(&r.blob(6, &at)?).map_err(|why| at.corrupt("state", why))?,
    })
}

pub(in crate::store) const HISTORY_COLUMNS: &str =
    "SELECT id, field, sealed, provenance, replaced_at FROM field_history";

pub(in crate::store) fn historic_row(r: &impl StoredRow) -> Result<HistoricField, StoreError> {
    let at = Place::table("field_history");
    let at = at.with_row(r.int(0, &at)?);
    let provenance: Option<Provenance> =
        decode(&r.blob(3, &at)?).map_err(|why| at.corrupt("provenance", why))?;
    let provenance = provenance.ok_or_else(|| at.corrupt("provenance", "is missing"))?;
    Ok(HistoricField {
        field: StoredField {
            name: r.text(1, &at)?,
            sealed: r.blob(2, &at)?,
            provenance,
        },
        replaced_at: r.int(4, &at)?,
    })
}

pub(in crate::store) const API_KEY_COLUMNS: &str =
    "SELECT id, hash, role, purposes, recipient, label, created_at, revoked_at FROM api_keys";

/// An API key. Purposes that do not parse are corrupt, never "no purposes":
/// a processor key bound to no purpose would be given every purpose of its
/// recipient.
pub(in crate::store) fn api_key_row(r: &impl StoredRow) -> Result<ApiKeyRecord, StoreError> {
    let at = Place::table("api_keys");
    let id = r.text(0, &at)?;
    let at = at.with_row(&id);
    let purposes: Vec<String> =
        serde_json::from_str(&r.text(3, &at)?).map_err(|e| at.corrupt("purposes", json_why(&e)))?;
    Ok(ApiKeyRecord {
        hash: r.hash(1, &at)?,
        role: r.text(2, &at)?,
        purposes,
        recipient: r.opt_text(4, &at)?,
        label: r.opt_text(5, &at)?,
        created_at: r.int(6, &at)?,
        revoked_at: r.opt_int(7, &at)?,
        id,
    })
}

pub(in crate::store) const AUDIT_COLUMNS: &str = "SELECT seq, at, actor, action, purpose, subject_id, decision, reason, prev_hash, hash FROM audit";

pub(in crate::store) fn audit_row(r: &impl StoredRow) -> Result<AuditEntry, StoreError> {
    let at = Place::table("audit");
    let seq = r.int(0, &at)?;
    let at = at.with_row(seq);
    Ok(AuditEntry {
        seq,
        draft: audit::AuditDraft {
            at: r.int(1, &at)?,
            actor: r.text(2, &at)?,
            action: r.text(3, &at)?,
            purpose: r.opt_text(4, &at)?,
            subject: r.opt_uuid(5, &at)?,
            decision: r.text(6, &at)?,
            reason: r.opt_text(7, &at)?,
        },
        prev_hash: r.hash(8, &at)?,
        hash: r.hash(9, &at)?,
    })
}

/// The audit head (seq, hash), or the genesis of an empty chain.
pub(in crate::store) fn head_row(
    r: Option<&impl StoredRow>,
) -> Result<(i64, [u8; 32]), StoreError> {
    let at = Place::row("audit_head", 1);
    match r {
        Some(r) => Ok((r.int(0, &at)?, r.hash(1, &at)?)),
        None => Ok((0, GENESIS)),
    }
}

pub(in crate::store) const OUTBOX_COLUMNS: &str =
    "SELECT id, at, topic, subject_id, payload FROM outbox";

pub(in crate::store) fn outbox_row(r: &impl StoredRow) -> Result<OutboxRow, StoreError> {
    let at = Place::table("outbox");
    let id = r.int(0, &at)?;
    let at = at.with_row(id);
    Ok(OutboxRow {
        id,
        at: r.int(1, &at)?,
        topic: r.text(2, &at)?,
        subject: r.opt_uuid(3, &at)?,
        payload: r.text(4, &at)?,
    })
}

pub(in crate::store) const CONSENT_COLUMNS: &str = "SELECT id, at, subject_id, visitor_id, purpose, channel, action, policy_version, method, agent, wording_hash, ip_prefix, recorded_by, expires_at FROM consent_events";

pub(in crate::store) fn consent_row(r: &impl StoredRow) -> Result<ConsentEvent, StoreError> {
    let at = Place::table("consent_events");
    let id = r.uuid(0, &at)?;
    let at = at.with_row(id);
    let action = ConsentAction::parse(&r.text(6, &at)?)
        .ok_or_else(|| at.corrupt("action", "is not a consent action"))?;
    Ok(ConsentEvent {
        id,
        at: r.int(1, &at)?,
        subject: r.opt_uuid(2, &at)?,
        visitor: r.opt_text(3, &at)?,
        purpose: r.opt_text(4, &at)?,
        channel: r.opt_text(5, &at)?,
        action,
        policy_version: r.text(7, &at)?,
        method: r.text(8, &at)?,
        agent: r.opt_text(9, &at)?,
        wording_hash: r.opt_hash(10, &at)?,
        ip_prefix: r.opt_text(11, &at)?,
        recorded_by: r.text(12, &at)?,
        expires_at: r.opt_int(13, &at)?,
    })
}

/// A visitor (created_at, subject_id, state). The visitor's id is an online
/// identifier, so errors name the table only.
pub(in crate::store) fn visitor_row(
    id: &str,
    r: &impl StoredRow,
) -> Result<VisitorRecord, StoreError> {
    let at = Place::table("visitors");
    Ok(VisitorRecord {
        id: id.to_string(),
        created_at: r.int(0, &at)?,
        subject: r.opt_uuid(1, &at)?,
        preferences: serde_json::from_slice(&r.blob(2, &at)?)
            .map_err(|e| at.corrupt("state", json_why(&e)))?,
    })
}

/// Where a lookup row is, by its kind and subject (its hash is withheld).
fn lookup_place(kind: &str, subject: Uuid) -> Place {
    Place::row("lookup", format!("({kind}, subject {subject})"))
}

/// A lookup row (hash, subject_id, state).
pub(in crate::store) fn lookup_row(
    kind: &str,
    r: &impl StoredRow,
) -> Result<LookupState, StoreError> {
    let at = Place::table("lookup");
    let subject = r.uuid(1, &at)?;
    let at = lookup_place(kind, subject);
    Ok(LookupState {
        hash: r.hash(0, &at)?,
        subject,
        state: lookup_state(r.opt_blob(2, &at)?.as_deref(), &at)?,
    })
}

/// The lookup row of `hash` (subject_id, state).
pub(in crate::store) fn state_row(
    kind: &str,
    hash: &[u8; 32],
    r: &impl StoredRow,
) -> Result<LookupState, StoreError> {
    let subject = r.uuid(0, &Place::table("lookup"))?;
    let at = lookup_place(kind, subject);
    Ok(LookupState {
        hash: *hash,
        subject,
        state: lookup_state(r.opt_blob(1, &at)?.as_deref(), &at)?,
    })
}

/// Suppressed?, then the subject's id and state if the address is known.
pub(in crate::store) fn check_row(
    kind: &str,
    hash: &[u8; 32],
    r: &impl StoredRow,
) -> Result<(bool, Option<LookupState>), StoreError> {
    let at = Place::table("lookup");
    let suppressed = r.flag(0, &Place::table("suppression"))?;
    let found = match r.opt_uuid(1, &at)? {
        Some(subject) => {
            let at = lookup_place(kind, subject);
            Some(LookupState {
                hash: *hash,
                subject,
                state: lookup_state(r.opt_blob(2, &at)?.as_deref(), &at)?,
            })
        }
        None => None,
    };
    Ok((suppressed, found))
}

/// A subject's wrapped data key (id, kek_id, wrapped_key).
pub(in crate::store) fn data_key_row(r: &impl StoredRow) -> Result<(Uuid, WrappedKey), StoreError> {
    let at = Place::table("subjects");
    let id = r.uuid(0, &at)?;
    let at = at.with_row(id);
    Ok((
        id,
        WrappedKey {
            kek_id: r.kek(1, &at)?,
            bytes: r.blob(2, &at)?,
        },
    ))
}

/// A key-encryption key and how many data keys it wraps.
pub(in crate::store) fn kek_count_row(r: &impl StoredRow) -> Result<(u32, i64), StoreError> {
    let at = Place::table("subjects");
    Ok((r.kek(0, &at)?, r.int(1, &at)?))
}
