//! Connectors: the policy's datasets, connected. Each system is a Cargo
//! feature (`postgres`, `mysql`, `redis`); each implements the engine's
//! [`Dataset`](custodian_engine::datasets::Dataset). A dataset's URL comes
//! from the environment (`CUSTODIAN_CONNECTION_<NAME>`), never from the
//! policy, and never appears in a log, an error or the audit.

#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "mysql")]
pub mod mysql;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
pub mod relational;
pub mod rights;
pub mod schema;
pub mod sweep;

use custodian_engine::datasets::{ConnectorError, Dataset, Datasets};
use custodian_policy::datasets::System;
use custodian_policy::model::Policy;
use std::sync::Arc;

/// The environment variable that holds a connection's URL (and, with
/// `_TOKEN` after it, an HTTP system's bearer token).
pub fn env_name(connection: &str) -> String {
    format!(
        "CUSTODIAN_CONNECTION_{}",
        connection.to_ascii_uppercase().replace('-', "_")
    )
}

/// A dataset that could not be connected, and why (never the URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unconnected {
    pub dataset: String,
    pub why: String,
}

/// Connects every declared dataset whose connection has a URL. Those
/// without one are listed (their tasks fail, saying so); pools connect
/// lazily, so a system that is away at start delays only its own tasks.
/// `hash_key` derives each dataset's key for keyed hashes.
pub fn connect_all(
    policy: &Arc<Policy>,
    url_of: impl Fn(&str) -> Option<String>,
    hash_key: impl Fn(&str) -> [u8; 32],
) -> (Datasets, Vec<Unconnected>) {
    let mut connected = Datasets::new();
    let mut missing = Vec::new();
    for d in &policy.datasets {
        let Some(url) = url_of(&env_name(&d.connection)) else {
            missing.push(Unconnected {
                dataset: d.id.to_string(),
                why: format!("{} is not set", env_name(&d.connection)),
            });
            continue;
        };
        let secret = url_of(&format!("{}_TOKEN", env_name(&d.connection)));
        match connect(policy, d, &url, secret, hash_key(&d.id)) {
            Ok(c) => {
                connected.insert(d.id.to_string(), c);
            }
            Err(e) => missing.push(Unconnected {
                dataset: d.id.to_string(),
                why: e.detail,
            }),
        }
    }
    (connected, missing)
}

/// One dataset, connected.
pub fn connect(
    policy: &Arc<Policy>,
    d: &custodian_policy::datasets::Dataset,
    url: &str,
    secret: Option<String>,
    hash_key: [u8; 32],
) -> Result<Arc<dyn Dataset>, ConnectorError> {
    let _ = (url, &secret, hash_key);
    match *d.system {
        #[cfg(feature = "postgres")]
        System::Postgres => Ok(Arc::new(postgres::Postgres::new(
            d.clone(),
            policy.clone(),
            url,
            hash_key,
        )?)),
        #[cfg(feature = "mysql")]
        System::Mysql => Ok(Arc::new(mysql::Mysql::new(
            d.clone(),
            policy.clone(),
            url,
            hash_key,
        )?)),
        #[cfg(feature = "redis")]
        System::Redis => Ok(Arc::new(redis::Redis::new(
            d.clone(),
            policy.clone(),
            url,
            hash_key,
        )?)),
        #[cfg(feature = "http")]
        System::Http => Ok(Arc::new(http::Http::new(
            d.clone(),
            policy.clone(),
            url,
            secret,
        )?)),
        #[allow(unreachable_patterns)]
        other => Err(ConnectorError::permanent(format!(
            "this build has no {} connector",
            other.as_str()
        ))),
    }
}
