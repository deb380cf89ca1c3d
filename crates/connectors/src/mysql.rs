//! MariaDB and MySQL datasets: a pool per dataset (TLS when the URL asks,
//! with `require_ssl=true`), rows streamed as the server sends them,
//! erasure in one transaction.

use crate::postgres::send;
use crate::relational::{Dialect, Param, Planner, Statement, kept, scrub};
use custodian_engine::datasets::{
    BoxFuture, ConnectorError, Dataset, Erased, ExportItem, Identities,
};
use custodian_policy::datasets::Dataset as Declared;
use custodian_policy::model::Policy;
use futures_util::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{Opts, OptsBuilder, Params, Pool, PoolConstraints, PoolOpts, Row, TxOpts, Value};
use std::sync::Arc;
use tokio::sync::mpsc;

pub struct Mysql {
    declared: Declared,
    policy: Arc<Policy>,
    pool: Pool,
    hash_key: [u8; 32],
}

impl Mysql {
    pub fn new(
        declared: Declared,
        policy: Arc<Policy>,
        url: &str,
        hash_key: [u8; 32],
    ) -> Result<Mysql, ConnectorError> {
        // The URL's parser quotes what it rejects, which may be a password.
        let opts = Opts::from_url(url)
            .map_err(|_| ConnectorError::permanent("the MariaDB/MySQL URL is not usable"))?;
        let constraints = PoolConstraints::new(0, 4)
            .ok_or_else(|| ConnectorError::permanent("the pool's bounds"))?;
        let opts = OptsBuilder::from_opts(opts)
            .pool_opts(PoolOpts::default().with_constraints(constraints));
        Ok(Mysql {
            declared,
            policy,
            pool: Pool::new(opts),
            hash_key,
        })
    }

    fn planner<'a>(&'a self, who: &'a Identities) -> Planner<'a, My> {
        Planner {
            dataset: &self.declared,
            dialect: My,
            who,
        }
    }

    async fn conn(&self) -> Result<mysql_async::Conn, ConnectorError> {
        self.pool.get_conn().await.map_err(|e| failed(&e))
    }
}

pub struct My;

impl Dialect for My {
    fn quote(&self, ident: &str) -> String {
        format!("`{}`", ident.replace('`', "``"))
    }

    fn placeholder(&self, _: usize) -> String {
        "?".into()
    }

    fn one_of(&self, column: &str, values: &[String], params: &mut Vec<Param>) -> String {
        let marks: Vec<&str> = values.iter().map(|_| "?").collect();
        params.extend(values.iter().cloned().map(Param::Text));
        format!("{column} IN ({})", marks.join(", "))
    }

    fn as_text(&self, column: &str) -> String {
        format!("CAST({column} AS CHAR)")
    }

    fn hmac(&self, column: &str, ipad: &[u8], opad: &[u8], params: &mut Vec<Param>) -> String {
        // The outer key comes first in the text, so it is pushed first.
        params.push(Param::Bytes(opad.to_vec()));
        params.push(Param::Bytes(ipad.to_vec()));
        format!(
            "CONCAT('{}', SHA2(CONCAT(?, UNHEX(SHA2(CONCAT(?, CONVERT({column} USING utf8mb4)), 256))), 256))",
            crate::relational::HASHED
        )
    }

    fn differs(&self, column: &str, param: &str) -> String {
        format!("NOT ({column} <=> {param})")
    }

    // MariaDB (before 11.1) runs a single-table UPDATE or DELETE with
    // `IN (SELECT ...)` as a dependent subquery, reading every row of the
    // table (0.35 s for one person's orders among 1,000,000 on 10.11); the
    // multi-table form, here with a one-row derived table, is planned as
    // a join and reaches the rows through their index (0.6 ms).
    fn update_target(&self, table: &str) -> String {
        format!("{table} JOIN (SELECT 1) AS `custodian_one`")
    }

    fn delete_from(&self, table: &str) -> String {
        format!("DELETE {table} FROM {table} JOIN (SELECT 1) AS `custodian_one`")
    }
}

fn params(s: &Statement) -> Params {
    let values: Vec<Value> = s
        .params
        .iter()
        .map(|p| match p {
            Param::Text(t) => Value::Bytes(t.clone().into_bytes()),
            Param::Bytes(b) => Value::Bytes(b.clone()),
            // Lists are written out one value per placeholder here.
            Param::List(_) => Value::NULL,
        })
        .collect();
    if values.is_empty() {
        Params::Empty
    } else {
        Params::Positional(values)
    }
}

fn failed(e: &mysql_async::Error) -> ConnectorError {
    match e {
        mysql_async::Error::Server(s) => ConnectorError {
            // Deadlock, lock wait timeout, too many connections.
            transient: matches!(s.code, 1205 | 1213 | 1040 | 1053),
            detail: format!(
                "MariaDB/MySQL {} ({}): {}",
                s.code,
                s.state,
                scrub(&s.message)
            ),
        },
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => ConnectorError::transient(
            format!("MariaDB/MySQL is unreachable: {}", scrub(&e.to_string())),
        ),
        _ => ConnectorError::permanent(format!("MariaDB/MySQL: {}", scrub(&e.to_string()))),
    }
}

fn text(v: Value) -> Option<String> {
    match v {
        Value::NULL => None,
        Value::Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        other => Some(other.as_sql(true).trim_matches('\'').to_string()),
    }
}

impl Dataset for Mysql {
    fn id(&self) -> &str {
        &self.declared.id
    }

    fn system(&self) -> &'static str {
        "mysql"
    }

    fn locate<'a>(&'a self, who: &'a Identities) -> BoxFuture<'a, Result<u64, ConnectorError>> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            let mut total = 0u64;
            for s in self.planner(who).locate() {
                let n: Option<i64> = conn
                    .exec_first(s.sql.as_str(), params(&s))
                    .await
                    .map_err(|e| failed(&e))?;
                total += n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
            }
            Ok(total)
        })
    }

    fn export<'a>(
        &'a self,
        who: &'a Identities,
        out: mpsc::Sender<ExportItem>,
    ) -> BoxFuture<'a, Result<u64, ConnectorError>> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            let mut total = 0u64;
            for s in self.planner(who).export() {
                // Rows are read off the wire one by one, never gathered.
                let mut rows = conn
                    .exec_stream::<Row, _, _>(s.sql.as_str(), params(&s))
                    .await
                    .map_err(|e| failed(&e))?;
                let mut header = Some(ExportItem::Table {
                    table: s.table.clone(),
                    columns: s.columns.clone(),
                });
                while let Some(row) = rows.next().await {
                    let row = row.map_err(|e| failed(&e))?;
                    if let Some(h) = header.take() {
                        send(&out, h).await?;
                    }
                    let values: Vec<Option<String>> = row.unwrap().into_iter().map(text).collect();
                    send(&out, ExportItem::Row(values)).await?;
                    total += 1;
                }
            }
            Ok(total)
        })
    }

    fn erase<'a>(&'a self, who: &'a Identities) -> BoxFuture<'a, Result<Erased, ConnectorError>> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            let mut tx = conn
                .start_transaction(TxOpts::default())
                .await
                .map_err(|e| failed(&e))?;
            let mut changed = Vec::new();
            for s in self.planner(who).erase(&self.hash_key) {
                tx.exec_drop(s.sql.as_str(), params(&s))
                    .await
                    .map_err(|e| failed(&e))?;
                changed.push((s.table.clone(), tx.affected_rows()));
            }
            tx.commit().await.map_err(|e| failed(&e))?;
            Ok(Erased {
                changed,
                kept: kept(&self.policy, &self.declared),
            })
        })
    }
}
