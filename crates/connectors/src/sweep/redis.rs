//! The retention sweep in Redis. Redis keeps no creation time, so a hash
//! key pattern's retention names the hash field that holds the clock's
//! event as unix seconds (`expire = { rule = "...", from = "seen_at" }`):
//! the keys matching the pattern (its `{identity}` placeholders read as
//! `*`) are scanned, a batch at a time, and those whose field is older
//! than the cut-off are deleted (`erase = "delete-row"`) or have their
//! fields erased by their strategies, in one MULTI/EXEC per batch. A key
//! without the field has no clock and is left; a field that is not unix
//! seconds stops the sweep of the dataset, naming the pattern and field
//! (never the key, which may hold an identity).

use super::add;
use crate::redis::{failed, strategy_of};
use crate::relational::{HASHED, hashed_value};
use custodian_engine::datasets::{BoxFuture, ConnectorError};
use custodian_engine::retention::datasets::{DatasetDue, DatasetSweeper};
use custodian_policy::datasets::{Dataset as Declared, KeyPattern, Strategy, placeholders};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

pub struct RedisSweeper {
    declared: Declared,
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    hash_key: [u8; 32],
}

/// The pattern with each `{identity}` read as any text.
fn glob(pattern: &str) -> String {
    let mut out = pattern.to_string();
    for name in placeholders(pattern) {
        out = out.replace(&format!("{{{name}}}"), "*");
    }
    out
}

impl RedisSweeper {
    pub fn new(declared: Declared, url: &str, hash_key: [u8; 32]) -> Result<Self, ConnectorError> {
        let client = redis::Client::open(url)
            .map_err(|_| ConnectorError::permanent("the Redis URL is not usable"))?;
        Ok(RedisSweeper {
            declared,
            client,
            conn: OnceCell::new(),
            hash_key,
        })
    }

    async fn conn(&self) -> Result<ConnectionManager, ConnectorError> {
        self.conn
            .get_or_try_init(|| async {
                ConnectionManager::new(self.client.clone())
                    .await
                    .map_err(|e| failed(&e))
            })
            .await
            .cloned()
    }

    /// Sweeps one batch of scanned keys; returns how many keys changed.
    async fn batch(
        &self,
        conn: &mut ConnectionManager,
        k: &KeyPattern,
        from: &str,
        keys: &[String],
        cutoff: i64,
        dry_run: bool,
    ) -> Result<u64, ConnectorError> {
        let mut read = redis::pipe();
        for key in keys {
            read.hget(key, from);
        }
        let clocks: Vec<Option<String>> = read.query_async(conn).await.map_err(|e| failed(&e))?;
        let mut write = redis::pipe();
        write.atomic();
        let mut n = 0u64;
        for (key, clock) in keys.iter().zip(clocks) {
            let Some(clock) = clock else { continue };
            let seconds: i64 = clock.trim().parse().map_err(|_| {
                ConnectorError::permanent(format!(
                    "key pattern {}: the field {from} holds something other than unix seconds",
                    *k.pattern
                ))
            })?;
            if seconds.saturating_mul(1_000_000) >= cutoff {
                continue;
            }
            if *k.erase == Strategy::DeleteRow {
                write.del(key).ignore();
                n += 1;
                continue;
            }
            let fields: Vec<(String, String)> = conn.hgetall(key).await.map_err(|e| failed(&e))?;
            let mut touched = false;
            for (field, value) in fields {
                match strategy_of(k, &field) {
                    (Strategy::Keep, ..) => {}
                    (Strategy::SetNull | Strategy::DeleteRow, ..) => {
                        write.hdel(key, &field).ignore();
                        touched = true;
                    }
                    (Strategy::Replace, r, _) => {
                        let r = r.unwrap_or_default();
                        if value != r {
                            write.hset(key, &field, r).ignore();
                            touched = true;
                        }
                    }
                    (Strategy::Hash, ..) => {
                        if !value.starts_with(HASHED) {
                            write
                                .hset(key, &field, hashed_value(&self.hash_key, &value))
                                .ignore();
                            touched = true;
                        }
                    }
                }
            }
            n += u64::from(touched);
        }
        if n > 0 && !dry_run {
            let () = write.query_async(conn).await.map_err(|e| failed(&e))?;
        }
        Ok(n)
    }
}

impl DatasetSweeper for RedisSweeper {
    fn sweep<'a>(
        &'a self,
        due: &'a DatasetDue,
        batch: u64,
        dry_run: bool,
    ) -> BoxFuture<'a, Result<Vec<(String, u64)>, ConnectorError>> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            let mut counts = Vec::new();
            for part in &due.parts {
                let Some((k, from)) = self.declared.keys.iter().find_map(|k| {
                    (k.pattern.as_str() == part.as_str())
                        .then(|| k.expire.as_ref().map(|e| (k, e.from.as_str())))
                        .flatten()
                }) else {
                    return Err(ConnectorError::permanent(format!(
                        "key pattern {part} has no retention to sweep"
                    )));
                };
                add(&mut counts, part, 0);
                let pattern = glob(&k.pattern);
                let mut cursor: u64 = 0;
                loop {
                    let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(batch.max(1))
                        .query_async(&mut conn)
                        .await
                        .map_err(|e| failed(&e))?;
                    if !keys.is_empty() {
                        let n = self
                            .batch(&mut conn, k, from, &keys, due.cutoff, dry_run)
                            .await?;
                        add(&mut counts, part, n);
                    }
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
            }
            Ok(counts)
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_read_as_any_text() {
        assert_eq!(super::glob("session:{email}:*"), "session:*:*");
        assert_eq!(super::glob("cart:{customer_id}"), "cart:*");
    }
}
