//! The retention sweep in the organisation's own systems: each dataset
//! with a retention gets a sweeper of its own (a pool of its own, so the
//! sweep never waits behind a rights request's export), implementing the
//! engine's [`DatasetSweeper`]. PostgreSQL and MariaDB erase the due rows
//! in bounded set-based statements (`plan`); Redis deletes or erases the
//! hash keys whose time field is older than the cut-off.

#[cfg(feature = "mysql")]
pub mod mysql;
pub mod plan;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;

use crate::{Unconnected, env_name};
use custodian_engine::datasets::ConnectorError;
use custodian_engine::retention::datasets::{DatasetSweeper, Sweepers};
use custodian_policy::datasets::{Dataset, System};
use custodian_policy::datasets_retention::expiring;
use custodian_policy::model::Policy;
use std::sync::Arc;
use time::OffsetDateTime;
use time::macros::format_description;

/// Connects a sweeper for every dataset with a retention whose connection
/// has a URL; those without one are listed (the sweep reports them).
pub fn connect_sweepers(
    policy: &Policy,
    url_of: impl Fn(&str) -> Option<String>,
    hash_key: impl Fn(&str) -> [u8; 32],
) -> (Sweepers, Vec<Unconnected>) {
    let mut connected = Sweepers::new();
    let mut missing = Vec::new();
    for d in policy.datasets.iter().filter(|d| !expiring(d).is_empty()) {
        let Some(url) = url_of(&env_name(&d.connection)) else {
            missing.push(Unconnected {
                dataset: d.id.to_string(),
                why: format!("{} is not set", env_name(&d.connection)),
            });
            continue;
        };
        match connect(d, &url, hash_key(&d.id)) {
            Ok(s) => {
                connected.insert(d.id.to_string(), s);
            }
            Err(e) => missing.push(Unconnected {
                dataset: d.id.to_string(),
                why: e.detail,
            }),
        }
    }
    (connected, missing)
}

/// One dataset's sweeper.
pub fn connect(
    d: &Dataset,
    url: &str,
    hash_key: [u8; 32],
) -> Result<Arc<dyn DatasetSweeper>, ConnectorError> {
    let _ = (url, hash_key);
    match *d.system {
        #[cfg(feature = "postgres")]
        System::Postgres => Ok(Arc::new(postgres::PgSweeper::new(
            d.clone(),
            url,
            hash_key,
        )?)),
        #[cfg(feature = "mysql")]
        System::Mysql => Ok(Arc::new(mysql::MySweeper::new(d.clone(), url, hash_key)?)),
        #[cfg(feature = "redis")]
        System::Redis => Ok(Arc::new(redis::RedisSweeper::new(
            d.clone(),
            url,
            hash_key,
        )?)),
        other => Err(ConnectorError::permanent(format!(
            "a {} dataset cannot be swept",
            other.as_str()
        ))),
    }
}

/// A moment (unix microseconds) as `YYYY-MM-DD HH:MM:SS.ffffff`, in UTC.
pub fn utc_text(micros: i64) -> Option<String> {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).ok()?;
    t.format(format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:6]"
    ))
    .ok()
}

/// Adds `n` rows of `part` to the counts, keeping the order parts came in.
pub(crate) fn add(counts: &mut Vec<(String, u64)>, part: &str, n: u64) {
    match counts.iter_mut().find(|(p, _)| p == part) {
        Some((_, total)) => *total += n,
        None => counts.push((part.to_string(), n)),
    }
}
