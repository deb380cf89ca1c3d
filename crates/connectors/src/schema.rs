//! Reading a database's live schema (tables, columns, types, nullability,
//! foreign keys) for `custodian datasets draft` and `datasets check`.

use crate::relational::scrub;
use custodian_engine::datasets::ConnectorError;
use custodian_policy::datasets::System;
use custodian_policy::datasets_schema::{LiveColumn, LiveReference, LiveSchema};

/// The kind of database a URL names.
pub fn system_of(url: &str) -> Option<System> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase())?;
    match scheme.as_str() {
        "postgres" | "postgresql" => Some(System::Postgres),
        "mysql" | "mariadb" => Some(System::Mysql),
        "redis" | "rediss" => Some(System::Redis),
        _ => None,
    }
}

/// The live schema of the database `url` names (its current schema).
pub async fn read(system: System, url: &str) -> Result<LiveSchema, ConnectorError> {
    match system {
        #[cfg(feature = "postgres")]
        System::Postgres => postgres(url).await,
        #[cfg(feature = "mysql")]
        System::Mysql => mysql(url).await,
        other => Err(ConnectorError::permanent(format!(
            "a {} dataset has no schema to read",
            other.as_str()
        ))),
    }
}

#[cfg(feature = "postgres")]
async fn postgres(url: &str) -> Result<LiveSchema, ConnectorError> {
    let pool = custodian_vault::store::pool_for(&custodian_vault::store::DatabaseUrl::new(url), 1)
        .map_err(|e| ConnectorError::permanent(scrub(&e.to_string())))?;
    let client = pool.get().await.map_err(|e| {
        ConnectorError::transient(format!("no connection: {}", scrub(&e.to_string())))
    })?;
    let fail = |e: tokio_postgres::Error| {
        ConnectorError::permanent(format!("PostgreSQL: {}", scrub(&e.to_string())))
    };
    let rows = client
        .query(
            "SELECT table_name::text, column_name::text, data_type::text, is_nullable = 'YES'
             FROM information_schema.columns WHERE table_schema = current_schema()
             ORDER BY table_name, ordinal_position",
            &[],
        )
        .await
        .map_err(fail)?;
    let mut live = LiveSchema::default();
    for r in rows {
        live.columns.push(LiveColumn {
            table: r.try_get(0).map_err(fail)?,
            column: r.try_get(1).map_err(fail)?,
            data_type: r.try_get(2).map_err(fail)?,
            nullable: r.try_get(3).map_err(fail)?,
        });
    }
    let rows = client
        .query(
            "SELECT kcu.table_name::text, kcu.column_name::text, ccu.table_name::text, ccu.column_name::text
             FROM information_schema.table_constraints tc
             JOIN information_schema.key_column_usage kcu
               ON kcu.constraint_name = tc.constraint_name AND kcu.table_schema = tc.table_schema
             JOIN information_schema.constraint_column_usage ccu
               ON ccu.constraint_name = tc.constraint_name AND ccu.table_schema = tc.table_schema
             WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = current_schema()",
            &[],
        )
        .await
        .map_err(fail)?;
    for r in rows {
        live.references.push(LiveReference {
            table: r.try_get(0).map_err(fail)?,
            column: r.try_get(1).map_err(fail)?,
            ref_table: r.try_get(2).map_err(fail)?,
            ref_column: r.try_get(3).map_err(fail)?,
        });
    }
    Ok(live)
}

#[cfg(feature = "mysql")]
async fn mysql(url: &str) -> Result<LiveSchema, ConnectorError> {
    use mysql_async::prelude::Queryable;
    let opts = crate::mysql::options(url)?;
    let mut conn = mysql_async::Conn::new(opts).await.map_err(|e| {
        ConnectorError::transient(format!("MariaDB/MySQL: {}", scrub(&e.to_string())))
    })?;
    let fail = |e: mysql_async::Error| {
        ConnectorError::permanent(format!("MariaDB/MySQL: {}", scrub(&e.to_string())))
    };
    let columns: Vec<(String, String, String, String)> = conn
        .query(
            "SELECT CAST(table_name AS CHAR), CAST(column_name AS CHAR), CAST(data_type AS CHAR), CAST(is_nullable AS CHAR)
             FROM information_schema.columns WHERE table_schema = DATABASE()
             ORDER BY table_name, ordinal_position",
        )
        .await
        .map_err(fail)?;
    let mut live = LiveSchema::default();
    for (table, column, data_type, nullable) in columns {
        live.columns.push(LiveColumn {
            table,
            column,
            data_type,
            nullable: nullable == "YES",
        });
    }
    let refs: Vec<(String, String, String, String)> = conn
        .query(
            "SELECT CAST(table_name AS CHAR), CAST(column_name AS CHAR), CAST(referenced_table_name AS CHAR), CAST(referenced_column_name AS CHAR)
             FROM information_schema.key_column_usage
             WHERE table_schema = DATABASE() AND referenced_table_name IS NOT NULL",
        )
        .await
        .map_err(fail)?;
    for (table, column, ref_table, ref_column) in refs {
        live.references.push(LiveReference {
            table,
            column,
            ref_table,
            ref_column,
        });
    }
    let _ = conn.disconnect().await;
    Ok(live)
}
