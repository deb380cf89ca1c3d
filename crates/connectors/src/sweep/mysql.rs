//! The retention sweep in MariaDB and MySQL: each step a `DELETE` or
//! `UPDATE` with `LIMIT`, in a transaction of its own, repeated until it
//! changes fewer rows than the batch. The session's time zone is UTC, so
//! `TIMESTAMP` columns compare with the cut-off as stored.

use super::plan::{Bounded, Step, SweepPlanner};
use super::{add, utc_text};
use crate::mysql::{My, failed};
use crate::relational::Param;
use custodian_engine::datasets::{BoxFuture, ConnectorError};
use custodian_engine::retention::datasets::{DatasetDue, DatasetSweeper};
use custodian_policy::datasets::Dataset as Declared;
use mysql_async::prelude::Queryable;
use mysql_async::{Opts, OptsBuilder, Params, Pool, PoolConstraints, PoolOpts, Value};

impl Bounded for My {
    fn moment(&self, micros: i64) -> Option<String> {
        Some(format!("'{}'", utc_text(micros)?))
    }

    fn delete_batch(&self, table: &str, cond: &str, batch: u64) -> String {
        format!("DELETE FROM {table} WHERE {cond} LIMIT {batch}")
    }

    fn update_batch(&self, table: &str, sets: &str, cond: &str, batch: u64) -> String {
        format!("UPDATE {table} SET {sets} WHERE {cond} LIMIT {batch}")
    }
}

pub struct MySweeper {
    declared: Declared,
    pool: Pool,
    hash_key: [u8; 32],
}

fn values(params: &[Param]) -> Params {
    let values: Vec<Value> = params
        .iter()
        .map(|p| match p {
            Param::Text(t) => Value::Bytes(t.clone().into_bytes()),
            Param::Bytes(b) => Value::Bytes(b.clone()),
            Param::List(_) => Value::NULL,
        })
        .collect();
    if values.is_empty() {
        Params::Empty
    } else {
        Params::Positional(values)
    }
}

impl MySweeper {
    pub fn new(declared: Declared, url: &str, hash_key: [u8; 32]) -> Result<Self, ConnectorError> {
        // The URL's parser quotes what it rejects, which may be a password.
        let opts = Opts::from_url(url)
            .map_err(|_| ConnectorError::permanent("the MariaDB/MySQL URL is not usable"))?;
        let constraints = PoolConstraints::new(0, 1)
            .ok_or_else(|| ConnectorError::permanent("the pool's bounds"))?;
        let opts = OptsBuilder::from_opts(opts)
            .pool_opts(PoolOpts::default().with_constraints(constraints))
            .init(vec!["SET time_zone = '+00:00'"]);
        Ok(MySweeper {
            declared,
            pool: Pool::new(opts),
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
        let mut conn = self.pool.get_conn().await.map_err(|e| failed(&e))?;
        for s in steps {
            if dry_run {
                let n: Option<i64> = conn
                    .exec_first(s.count.as_str(), values(&s.count_params))
                    .await
                    .map_err(|e| failed(&e))?;
                add(
                    counts,
                    &s.table,
                    n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                );
                continue;
            }
            loop {
                conn.exec_drop(s.sql.as_str(), values(&s.params))
                    .await
                    .map_err(|e| failed(&e))?;
                let n = conn.affected_rows();
                add(counts, &s.table, n);
                if n < batch {
                    break;
                }
            }
        }
        Ok(())
    }
}

impl DatasetSweeper for MySweeper {
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
                dialect: My,
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
