//! Authorized agents on SQLite, and the shaping of their rows, which the
//! PostgreSQL backend shares.

use super::reads::{all, first};
use super::*;
use crate::store::agents::{AgentOp, AgentRecord};

fn store_err(e: rusqlite::Error) -> BatchError {
    BatchError::Store(e.to_string())
}

pub(in crate::store) const AGENT_COLUMNS: &str = "SELECT id, name, verify_key, trust_identity, status, token_hash, registered_at, created_at, updated_at FROM agents";

pub(in crate::store) fn agent_row(r: &impl StoredRow) -> Result<AgentRecord, StoreError> {
    let at = Place::table("agents");
    let id = r.text(0, &at)?;
    let at = at.with_row(&id);
    let status = r.text(4, &at)?;
    if !matches!(status.as_str(), "active" | "suspended") {
        return Err(at.corrupt("status", "is neither active nor suspended"));
    }
    Ok(AgentRecord {
        name: r.text(1, &at)?,
        // A verify key is 32 bytes like a hash; any other length is corrupt.
        verify_key: r.hash(2, &at)?,
        trust_identity: r.flag(3, &at)?,
        status,
        token_hash: r.opt_hash(5, &at)?,
        registered_at: r.opt_int(6, &at)?,
        created_at: r.int(7, &at)?,
        updated_at: r.int(8, &at)?,
        id,
    })
}

fn changed_or_not_found(changed: usize) -> Result<(), BatchError> {
    if changed == 0 {
        Err(BatchError::AgentNotFound)
    } else {
        Ok(())
    }
}

pub(super) fn apply(c: &Connection, op: &AgentOp) -> Result<(), BatchError> {
    match op {
        AgentOp::Create(a) => {
            let inserted = c
                .prepare_cached(
                    "INSERT INTO agents (id, name, verify_key, trust_identity, status, token_hash, registered_at, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (id) DO NOTHING",
                )
                .map_err(store_err)?
                .execute(params![
                    a.id,
                    a.name,
                    a.verify_key.as_slice(),
                    a.trust_identity,
                    a.status,
                    a.token_hash.as_ref().map(|h| h.as_slice()),
                    a.registered_at,
                    a.created_at,
                    a.updated_at
                ])
                .map_err(store_err)?;
            if inserted == 0 {
                return Err(BatchError::AgentExists);
            }
            Ok(())
        }
        AgentOp::SetStatus { id, status, at } => changed_or_not_found(
            c.prepare_cached("UPDATE agents SET status = ?2, updated_at = ?3 WHERE id = ?1")
                .map_err(store_err)?
                .execute(params![id, status, at])
                .map_err(store_err)?,
        ),
        AgentOp::SetToken { id, token_hash, at } => changed_or_not_found(
            c.prepare_cached(
                "UPDATE agents SET token_hash = ?2, registered_at = ?3, updated_at = ?3 WHERE id = ?1",
            )
            .map_err(store_err)?
            .execute(params![id, token_hash.as_slice(), at])
            .map_err(store_err)?,
        ),
        AgentOp::Remove { id } => changed_or_not_found(
            c.prepare_cached("DELETE FROM agents WHERE id = ?1")
                .map_err(store_err)?
                .execute(params![id])
                .map_err(store_err)?,
        ),
    }
}

impl SqliteStore {
    pub fn agent(&self, id: &str) -> Result<Option<AgentRecord>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(&format!("{AGENT_COLUMNS} WHERE id = ?1"))
                .map_err(backend)?;
            first(&mut stmt, [id], |r| agent_row(r))
        })
    }

    pub fn agent_by_token(&self, hash: &[u8; 32]) -> Result<Option<AgentRecord>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(&format!("{AGENT_COLUMNS} WHERE token_hash = ?1"))
                .map_err(backend)?;
            first(&mut stmt, [hash.as_slice()], |r| agent_row(r))
        })
    }

    pub fn agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(&format!("{AGENT_COLUMNS} ORDER BY id"))
                .map_err(backend)?;
            all(&mut stmt, [], |r| agent_row(r))
        })
    }
}
