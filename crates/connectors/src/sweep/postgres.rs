//! The retention sweep in PostgreSQL: each step a bounded statement (rows
//! picked by `ctid`, at most a batch at a time) in a transaction of its
//! own, repeated until it changes fewer rows than the batch.

use super::plan::{Bounded, Step, SweepPlanner};
use super::{add, utc_text};
use crate::postgres::{Pg, Typed, failed};
use crate::relational::scrub;
use custodian_engine::datasets::{BoxFuture, ConnectorError};
use custodian_engine::retention::datasets::{DatasetDue, DatasetSweeper};
use custodian_policy::datasets::Dataset as Declared;
use custodian_vault::store::{DatabaseUrl, pool_for};
use tokio_postgres::types::ToSql;

impl Bounded for Pg {
    /// An untyped literal takes the column's type: a `timestamptz` reads
    /// the offset, a `timestamp` (UTC by convention) and a `date` ignore it.
    fn moment(&self, micros: i64) -> Option<String> {
        Some(format!("'{}+00'", utc_text(micros)?))
    }

    fn delete_batch(&self, table: &str, cond: &str, batch: u64) -> String {
        format!(
            "DELETE FROM {table} WHERE ctid IN (SELECT ctid FROM {table} WHERE {cond} LIMIT {batch})"
        )
    }

    fn update_batch(&self, table: &str, sets: &str, cond: &str, batch: u64) -> String {
        format!(
            "UPDATE {table} SET {sets} WHERE ctid IN (SELECT ctid FROM {table} WHERE {cond} LIMIT {batch})"
        )
    }
}

pub struct PgSweeper {
    declared: Declared,
    pool: deadpool_postgres::Pool,
    hash_key: [u8; 32],
}

impl PgSweeper {
    pub fn new(declared: Declared, url: &str, hash_key: [u8; 32]) -> Result<Self, ConnectorError> {
        let pool = pool_for(&DatabaseUrl::new(url), 1)
            .map_err(|e| ConnectorError::permanent(scrub(&e.to_string())))?;
        Ok(PgSweeper {
            declared,
            pool,
            hash_key,
        })
    }

    async fn run(
        &self,
        steps: &[Step],
        batch: u64,
        dry_run: bool,
        counts: &mut Vec<(String, u64)>,
    ) -> Result<(), ConnectorError> {
        let client = self.pool.get().await.map_err(|e| {
            ConnectorError::transient(format!("no connection: {}", scrub(&e.to_string())))
        })?;
        for s in steps {
            let (sql, params) = if dry_run {
                (&s.count, &s.count_params)
            } else {
                (&s.sql, &s.params)
            };
            let typed: Vec<Typed<'_>> = params.iter().map(Typed).collect();
            let refs: Vec<&(dyn ToSql + Sync)> =
                typed.iter().map(|x| x as &(dyn ToSql + Sync)).collect();
            if dry_run {
                let row = client.query_one(sql, &refs).await.map_err(|e| failed(&e))?;
                let n: i64 = row.try_get(0).map_err(|e| failed(&e))?;
                add(counts, &s.table, u64::try_from(n).unwrap_or(0));
                continue;
            }
            loop {
                let n = client.execute(sql, &refs).await.map_err(|e| failed(&e))?;
                add(counts, &s.table, n);
                if n < batch {
                    break;
                }
            }
        }
        Ok(())
    }
}

impl DatasetSweeper for PgSweeper {
    fn sweep<'a>(
        &'a self,
        due: &'a DatasetDue,
        batch: u64,
        dry_run: bool,
    ) -> BoxFuture<'a, Result<Vec<(String, u64)>, ConnectorError>> {
        Box::pin(async move {
            let batch = batch.max(1);
            let planner = SweepPlanner {
                dataset: &self.declared,
                dialect: Pg,
                hash_key: &self.hash_key,
            };
            let mut counts = Vec::new();
            for part in &due.parts {
                let steps = planner.table(part, due.cutoff, batch).ok_or_else(|| {
                    ConnectorError::permanent(format!("table {part} has no retention to sweep"))
                })?;
                add(&mut counts, part, 0);
                self.run(&steps, batch, dry_run, &mut counts).await?;
            }
            Ok(counts)
        })
    }
}
