//! Authorized agents on PostgreSQL. Rows are shaped by the function the
//! SQLite backend shares (`sqlite::agents`).

use super::*;
use crate::store::agents::{AgentOp, AgentRecord};
use crate::store::sqlite::agents::{AGENT_COLUMNS, agent_row};

type Tx<'a> = tokio_postgres::Transaction<'a>;

fn changed_or_not_found(changed: u64) -> Result<(), BatchError> {
    if changed == 0 {
        Err(BatchError::AgentNotFound)
    } else {
        Ok(())
    }
}

pub(super) async fn apply(
    c: &Tx<'_>,
    op: &AgentOp,
) -> Result<Result<(), BatchError>, tokio_postgres::Error> {
    Ok(match op {
        AgentOp::Create(a) => {
            let inserted = c
                .execute(
                    "INSERT INTO agents (id, name, verify_key, trust_identity, status, token_hash, registered_at, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING",
                    &[
                        &a.id,
                        &a.name,
                        &a.verify_key.as_slice(),
                        &a.trust_identity,
                        &a.status,
                        &a.token_hash.as_ref().map(|h| h.as_slice()),
                        &a.registered_at,
                        &a.created_at,
                        &a.updated_at,
                    ],
                )
                .await?;
            if inserted == 0 {
                Err(BatchError::AgentExists)
            } else {
                Ok(())
            }
        }
        AgentOp::SetStatus { id, status, at } => changed_or_not_found(
            c.execute(
                "UPDATE agents SET status = $2, updated_at = $3 WHERE id = $1",
                &[id, status, at],
            )
            .await?,
        ),
        AgentOp::SetToken { id, token_hash, at } => changed_or_not_found(
            c.execute(
                "UPDATE agents SET token_hash = $2, registered_at = $3, updated_at = $3 WHERE id = $1",
                &[id, &token_hash.as_slice(), at],
            )
            .await?,
        ),
        AgentOp::Remove { id } => changed_or_not_found(
            c.execute("DELETE FROM agents WHERE id = $1", &[id])
                .await?,
        ),
    })
}

impl PgStore {
    pub async fn agent(&self, id: &str) -> Result<Option<AgentRecord>, StoreError> {
        let c = self.reader().await?;
        let row = c
            .query_opt(&format!("{AGENT_COLUMNS} WHERE id = $1"), &[&id])
            .await
            .map_err(backend)?;
        row.as_ref().map(agent_row).transpose()
    }

    pub async fn agent_by_token(&self, hash: &[u8; 32]) -> Result<Option<AgentRecord>, StoreError> {
        let c = self.reader().await?;
        let row = c
            .query_opt(
                &format!("{AGENT_COLUMNS} WHERE token_hash = $1"),
                &[&hash.as_slice()],
            )
            .await
            .map_err(backend)?;
        row.as_ref().map(agent_row).transpose()
    }

    pub async fn agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        let c = self.reader().await?;
        let rows = c
            .query(&format!("{AGENT_COLUMNS} ORDER BY id"), &[])
            .await
            .map_err(backend)?;
        rows.iter().map(agent_row).collect()
    }
}
