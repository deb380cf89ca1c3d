//! PostgreSQL datasets: a pool per dataset (the vault's own connection
//! code, so TLS follows the URL's `sslmode` the same way), rows streamed
//! from the server as they come, erasure in one transaction.

use crate::relational::{Dialect, Param, Planner, Statement, kept, scrub};
use crate::rights::unmarked_why;
use custodian_engine::datasets::{
    Applied, BoxFuture, ByHand, ConnectorError, Corrections, Dataset, Erased, ExportItem,
    Identities,
};
use custodian_policy::datasets::Dataset as Declared;
use custodian_policy::model::Policy;
use custodian_vault::store::{DatabaseUrl, pool_for};
use futures_util::{StreamExt, pin_mut};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

pub struct Postgres {
    declared: Declared,
    policy: Arc<Policy>,
    pool: deadpool_postgres::Pool,
    hash_key: [u8; 32],
}

impl Postgres {
    pub fn new(
        declared: Declared,
        policy: Arc<Policy>,
        url: &str,
        hash_key: [u8; 32],
    ) -> Result<Postgres, ConnectorError> {
        let pool = pool_for(&DatabaseUrl::new(url), 4)
            .map_err(|e| ConnectorError::permanent(scrub(&e.to_string())))?;
        Ok(Postgres {
            declared,
            policy,
            pool,
            hash_key,
        })
    }

    fn planner<'a>(&'a self, who: &'a Identities) -> Planner<'a, Pg> {
        Planner {
            dataset: &self.declared,
            dialect: Pg,
            who,
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, ConnectorError> {
        self.pool.get().await.map_err(|e| {
            ConnectorError::transient(format!("no connection: {}", scrub(&with_causes(&e))))
        })
    }
}

/// An error with its causes, each once: the pool's own text for a failed
/// TLS handshake is "error performing TLS handshake"; its causes say why
/// (the certificate's issuer, or the name it is not valid for).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

pub struct Pg;

impl Dialect for Pg {
    fn quote(&self, ident: &str) -> String {
        format!("\"{}\"", ident.replace('"', "\"\""))
    }

    fn placeholder(&self, n: usize) -> String {
        format!("${n}")
    }

    fn one_of(&self, column: &str, values: &[String], params: &mut Vec<Param>) -> String {
        params.push(Param::List(values.to_vec()));
        format!("{column} = ANY(${})", params.len())
    }

    fn as_text(&self, column: &str) -> String {
        format!("{column}::text")
    }

    fn hmac(&self, column: &str, ipad: &[u8], opad: &[u8], params: &mut Vec<Param>) -> String {
        params.push(Param::Bytes(ipad.to_vec()));
        let ipad = format!("${}", params.len());
        params.push(Param::Bytes(opad.to_vec()));
        let opad = format!("${}", params.len());
        format!(
            "'{}' || encode(sha256({opad}::bytea || sha256({ipad}::bytea || convert_to({column}::text, 'UTF8'))), 'hex')",
            crate::relational::HASHED
        )
    }

    fn differs(&self, column: &str, param: &str) -> String {
        format!("{column} IS DISTINCT FROM {param}")
    }
}

/// A parameter sent in the type the server infers for it: identities are
/// text here, but a column may be an integer or a uuid. A value that is
/// not of the column's type cannot match it, and is left out.
#[derive(Debug)]
pub(crate) struct Typed<'a>(pub(crate) &'a Param);

impl ToSql for Typed<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut tokio_postgres::types::private::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self.0 {
            Param::Bytes(b) => b.as_slice().to_sql(ty, out),
            Param::Text(v) => match *ty {
                Type::INT2 => v.parse::<i16>()?.to_sql(ty, out),
                Type::INT4 => v.parse::<i32>()?.to_sql(ty, out),
                Type::INT8 => v.parse::<i64>()?.to_sql(ty, out),
                _ => v.as_str().to_sql(ty, out),
            },
            Param::List(values) => match *ty {
                Type::INT2_ARRAY => values
                    .iter()
                    .filter_map(|v| v.parse::<i16>().ok())
                    .collect::<Vec<_>>()
                    .to_sql(ty, out),
                Type::INT4_ARRAY => values
                    .iter()
                    .filter_map(|v| v.parse::<i32>().ok())
                    .collect::<Vec<_>>()
                    .to_sql(ty, out),
                Type::INT8_ARRAY => values
                    .iter()
                    .filter_map(|v| v.parse::<i64>().ok())
                    .collect::<Vec<_>>()
                    .to_sql(ty, out),
                _ => values.to_sql(ty, out),
            },
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT2
                | Type::INT4
                | Type::INT8
                | Type::TEXT
                | Type::VARCHAR
                | Type::BPCHAR
                | Type::NAME
                | Type::UNKNOWN
                | Type::BYTEA
                | Type::INT2_ARRAY
                | Type::INT4_ARRAY
                | Type::INT8_ARRAY
                | Type::TEXT_ARRAY
                | Type::VARCHAR_ARRAY
                | Type::BPCHAR_ARRAY
        )
    }

    to_sql_checked!();
}

pub(crate) fn failed(e: &tokio_postgres::Error) -> ConnectorError {
    let transient = e.is_closed()
        || e.as_db_error().is_none()
        || e.code().is_some_and(|c| {
            let c = c.code();
            c.starts_with("08") || c == "40001" || c == "40P01" || c.starts_with("57P")
        });
    let detail = match e.as_db_error() {
        Some(db) => format!("PostgreSQL {}: {}", db.code().code(), scrub(db.message())),
        None => format!("PostgreSQL: {}", scrub(&e.to_string())),
    };
    ConnectorError { transient, detail }
}

fn params(s: &Statement) -> Vec<Typed<'_>> {
    s.params.iter().map(Typed).collect()
}

impl Dataset for Postgres {
    fn id(&self) -> &str {
        &self.declared.id
    }

    fn system(&self) -> &'static str {
        "postgres"
    }

    fn locate<'a>(&'a self, who: &'a Identities) -> BoxFuture<'a, Result<u64, ConnectorError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let mut total = 0u64;
            for s in self.planner(who).locate() {
                let p = params(&s);
                let refs: Vec<&(dyn ToSql + Sync)> =
                    p.iter().map(|x| x as &(dyn ToSql + Sync)).collect();
                let row = client
                    .query_one(&s.sql, &refs)
                    .await
                    .map_err(|e| failed(&e))?;
                let n: i64 = row.try_get(0).map_err(|e| failed(&e))?;
                total += u64::try_from(n).unwrap_or(0);
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
            let client = self.client().await?;
            let mut total = 0u64;
            for s in self.planner(who).export() {
                let stmt = client.prepare(&s.sql).await.map_err(|e| failed(&e))?;
                let p = params(&s);
                // Rows come as the server sends them: a portal, not a buffer.
                let rows = client
                    .query_raw(&stmt, p.iter())
                    .await
                    .map_err(|e| failed(&e))?;
                pin_mut!(rows);
                let mut header = Some(ExportItem::Table {
                    table: s.table.clone(),
                    columns: s.columns.clone(),
                });
                while let Some(row) = rows.next().await {
                    let row = row.map_err(|e| failed(&e))?;
                    if let Some(h) = header.take() {
                        send(&out, h).await?;
                    }
                    let mut values = Vec::with_capacity(row.len());
                    for i in 0..row.len() {
                        values.push(
                            row.try_get::<_, Option<String>>(i)
                                .map_err(|e| failed(&e))?,
                        );
                    }
                    send(&out, ExportItem::Row(values)).await?;
                    total += 1;
                }
            }
            Ok(total)
        })
    }

    fn erase<'a>(&'a self, who: &'a Identities) -> BoxFuture<'a, Result<Erased, ConnectorError>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(|e| failed(&e))?;
            let mut changed = Vec::new();
            for s in self.planner(who).erase(&self.hash_key) {
                let p = params(&s);
                let refs: Vec<&(dyn ToSql + Sync)> =
                    p.iter().map(|x| x as &(dyn ToSql + Sync)).collect();
                let n = tx.execute(&s.sql, &refs).await.map_err(|e| failed(&e))?;
                changed.push((s.table.clone(), n));
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
            let client = self.client().await?;
            let mut by_hand = Vec::new();
            for s in plan.unmarked {
                let p = params(&s);
                let refs: Vec<&(dyn ToSql + Sync)> =
                    p.iter().map(|x| x as &(dyn ToSql + Sync)).collect();
                let row = client
                    .query_one(&s.sql, &refs)
                    .await
                    .map_err(|e| failed(&e))?;
                let n: i64 = row.try_get(0).map_err(|e| failed(&e))?;
                if n > 0 {
                    by_hand.push(ByHand {
                        what: s.table.clone(),
                        why: unmarked_why(u64::try_from(n).unwrap_or(0), restricted),
                    });
                }
            }
            Ok(Applied { changed, by_hand })
        })
    }
}

impl Postgres {
    /// Runs `statements` in one transaction: rows changed per table.
    async fn in_one_transaction(
        &self,
        statements: Vec<Statement>,
    ) -> Result<Vec<(String, u64)>, ConnectorError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| failed(&e))?;
        let mut changed = Vec::new();
        for s in statements {
            let p = params(&s);
            let refs: Vec<&(dyn ToSql + Sync)> =
                p.iter().map(|x| x as &(dyn ToSql + Sync)).collect();
            let n = tx.execute(&s.sql, &refs).await.map_err(|e| failed(&e))?;
            changed.push((s.table.clone(), n));
        }
        tx.commit().await.map_err(|e| failed(&e))?;
        Ok(changed)
    }
}

/// Sends one item; a receiver gone means the export was abandoned.
pub(crate) async fn send(
    out: &mpsc::Sender<ExportItem>,
    item: ExportItem,
) -> Result<(), ConnectorError> {
    out.send(item)
        .await
        .map_err(|_| ConnectorError::transient("the export's receiver stopped"))
}
