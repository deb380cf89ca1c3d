//! MariaDB and MySQL datasets: a pool per dataset (TLS when the URL asks,
//! with `require_ssl=true`, or `ssl_ca=PATH` for a CA of one's own), rows
//! streamed as the server sends them, erasure in one transaction.

use crate::postgres::send;
use crate::relational::{Dialect, Param, Planner, Statement, kept, scrub};
use crate::rights::unmarked_why;
use custodian_engine::datasets::{
    Applied, BoxFuture, ByHand, ConnectorError, Corrections, Dataset, Erased, ExportItem,
    Identities,
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
        let constraints = PoolConstraints::new(0, 4)
            .ok_or_else(|| ConnectorError::permanent("the pool's bounds"))?;
        let opts = options(url)?.pool_opts(PoolOpts::default().with_constraints(constraints));
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

/// The connection's options from its URL, with the root certificate of
/// `ssl_ca` (see [`take_ssl_ca`]).
pub(crate) fn options(url: &str) -> Result<OptsBuilder, ConnectorError> {
    let (url, ssl_ca) = take_ssl_ca(url);
    // The URL's parser quotes what it rejects, which may be a password.
    let opts = Opts::from_url(&url)
        .map_err(|_| ConnectorError::permanent("the MariaDB/MySQL URL is not usable"))?;
    let ssl = match ssl_ca {
        Some(ca) => Some(
            opts.ssl_opts()
                .cloned()
                .unwrap_or_default()
                .with_root_certs(vec![std::path::PathBuf::from(ca).into()]),
        ),
        None => opts.ssl_opts().cloned(),
    };
    Ok(OptsBuilder::from_opts(opts).ssl_opts(ssl))
}

/// The URL without its `ssl_ca` parameter, and that parameter: the file of
/// the root certificate(s) a server's certificate must chain to (MySQL's
/// `--ssl-ca`), which the client library takes only in code. It turns TLS
/// on, as `require_ssl=true` does.
fn take_ssl_ca(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None);
    };
    let mut ca = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|p| match p.strip_prefix("ssl_ca=") {
            Some(path) => {
                ca = Some(percent_decode(path));
                false
            }
            None => true,
        })
        .collect();
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    (url, ca)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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

pub(crate) fn failed(e: &mysql_async::Error) -> ConnectorError {
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

    fn rectify<'a>(
        &'a self,
        who: &'a Identities,
        corrections: &'a Corrections,
    ) -> BoxFuture<'a, Result<Applied, ConnectorError>> {
        Box::pin(async move {
            let (statements, by_hand) = self.planner(who).rectify(corrections);
            let changed = self.in_one_transaction(statements).await?;
            Ok(Applied { changed, by_hand })
        })
    }

    fn restrict<'a>(
        &'a self,
        who: &'a Identities,
        restricted: bool,
    ) -> BoxFuture<'a, Result<Applied, ConnectorError>> {
        Box::pin(async move {
            let plan = self.planner(who).restrict(restricted);
            let changed = self.in_one_transaction(plan.marks).await?;
            let mut conn = self.conn().await?;
            let mut by_hand = Vec::new();
            for s in plan.unmarked {
                let n: Option<i64> = conn
                    .exec_first(s.sql.as_str(), params(&s))
                    .await
                    .map_err(|e| failed(&e))?;
                let n = n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
                if n > 0 {
                    by_hand.push(ByHand {
                        what: s.table.clone(),
                        why: unmarked_why(n, restricted),
                    });
                }
            }
            Ok(Applied { changed, by_hand })
        })
    }
}

impl Mysql {
    /// Runs `statements` in one transaction: rows changed per table.
    async fn in_one_transaction(
        &self,
        statements: Vec<Statement>,
    ) -> Result<Vec<(String, u64)>, ConnectorError> {
        let mut conn = self.conn().await?;
        let mut tx = conn
            .start_transaction(TxOpts::default())
            .await
            .map_err(|e| failed(&e))?;
        let mut changed = Vec::new();
        for s in statements {
            tx.exec_drop(s.sql.as_str(), params(&s))
                .await
                .map_err(|e| failed(&e))?;
            changed.push((s.table.clone(), tx.affected_rows()));
        }
        tx.commit().await.map_err(|e| failed(&e))?;
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_ca_is_taken_out_of_the_url() {
        assert_eq!(
            take_ssl_ca(
                "mysql://u:p@h:1/db?require_ssl=true&ssl_ca=%2Ftmp%2Fca.pem&prefer_socket=false"
            ),
            (
                "mysql://u:p@h:1/db?require_ssl=true&prefer_socket=false".to_string(),
                Some("/tmp/ca.pem".to_string())
            )
        );
        assert_eq!(
            take_ssl_ca("mysql://h/db?ssl_ca=/a/b.pem"),
            ("mysql://h/db".to_string(), Some("/a/b.pem".to_string()))
        );
        assert_eq!(
            take_ssl_ca("mysql://h/db"),
            ("mysql://h/db".to_string(), None)
        );
    }
}
