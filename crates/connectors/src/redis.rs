//! Redis datasets: key patterns filled with the person's identities (keys
//! with `*` are scanned, never listed with KEYS), string and hash keys,
//! erasure in one MULTI/EXEC. One multiplexed connection per dataset,
//! reconnecting by itself; TLS with a `rediss://` URL.

use crate::postgres::send;
use crate::relational::{HASHED, hashed_value, kept};
use custodian_engine::datasets::{
    Applied, BoxFuture, ByHand, ConnectorError, Corrections, Dataset, Erased, ExportItem,
    Identities,
};
use custodian_policy::datasets::{
    Dataset as Declared, KeyKind, KeyPattern, Strategy, placeholders,
};
use custodian_policy::model::Policy;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio::sync::{OnceCell, mpsc};

pub struct Redis {
    declared: Declared,
    policy: Arc<Policy>,
    client: redis::Client,
    /// Made on first use, so a server that is away at start delays only
    /// the tasks that need it.
    conn: OnceCell<ConnectionManager>,
    hash_key: [u8; 32],
}

pub(crate) fn failed(e: &redis::RedisError) -> ConnectorError {
    let transient =
        e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal();
    // Redis errors name the command and kind, never the URL.
    let detail = format!("Redis: {:?} {}", e.kind(), e.code().unwrap_or(""));
    ConnectorError { transient, detail }
}

impl Redis {
    pub fn new(
        declared: Declared,
        policy: Arc<Policy>,
        url: &str,
        hash_key: [u8; 32],
    ) -> Result<Redis, ConnectorError> {
        let client = redis::Client::open(url)
            .map_err(|_| ConnectorError::permanent("the Redis URL is not usable"))?;
        Ok(Redis {
            declared,
            policy,
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

    /// The keys that hold the person, per pattern.
    async fn keys(
        &self,
        conn: &mut ConnectionManager,
        who: &Identities,
    ) -> Result<Vec<(&KeyPattern, Vec<String>)>, ConnectorError> {
        let mut out = Vec::new();
        for k in &self.declared.keys {
            out.push((k, self.keys_of(conn, k, who).await?));
        }
        Ok(out)
    }

    /// The keys of pattern `k` that hold the person.
    async fn keys_of(
        &self,
        conn: &mut ConnectionManager,
        k: &KeyPattern,
        who: &Identities,
    ) -> Result<Vec<String>, ConnectorError> {
        let mut found = BTreeSet::new();
        for pattern in expand(&k.pattern, who) {
            if pattern.contains('*') {
                let mut cursor: u64 = 0;
                loop {
                    let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(conn)
                        .await
                        .map_err(|e| failed(&e))?;
                    found.extend(keys);
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
            } else {
                let exists: bool = conn.exists(&pattern).await.map_err(|e| failed(&e))?;
                if exists {
                    found.insert(pattern);
                }
            }
        }
        Ok(found.into_iter().collect())
    }
}

/// Glob characters in a value match only themselves.
fn escape_glob(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Every key pattern the identities fill `pattern` into.
fn expand(pattern: &str, who: &Identities) -> Vec<String> {
    let globbing = pattern.contains('*');
    let mut out = vec![pattern.to_string()];
    for name in placeholders(pattern) {
        let values = who.get(name).cloned().unwrap_or_default();
        let mut next = Vec::new();
        for p in &out {
            for v in &values {
                let v = if globbing { escape_glob(v) } else { v.clone() };
                next.push(p.replace(&format!("{{{name}}}"), &v));
            }
        }
        out = next;
    }
    out
}

pub(crate) fn strategy_of<'a>(
    k: &'a KeyPattern,
    field: &str,
) -> (Strategy, Option<&'a str>, String) {
    match k.fields.iter().find(|f| f.name.as_str() == field) {
        Some(f) => (
            *f.erase,
            f.replacement.as_deref().map(String::as_str),
            f.category.to_string(),
        ),
        None => (
            *k.erase,
            k.replacement.as_deref().map(String::as_str),
            k.category.to_string(),
        ),
    }
}

impl Dataset for Redis {
    fn id(&self) -> &str {
        &self.declared.id
    }

    fn system(&self) -> &'static str {
        "redis"
    }

    fn locate<'a>(&'a self, who: &'a Identities) -> BoxFuture<'a, Result<u64, ConnectorError>> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            let keys = self.keys(&mut conn, who).await?;
            Ok(keys.iter().map(|(_, k)| k.len() as u64).sum())
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
            for (k, keys) in self.keys(&mut conn, who).await? {
                if keys.is_empty() {
                    continue;
                }
                send(
                    &out,
                    ExportItem::Table {
                        table: k.pattern.to_string(),
                        columns: vec![
                            ("key".into(), String::new()),
                            ("field".into(), String::new()),
                            ("value".into(), String::new()),
                            ("category".into(), String::new()),
                        ],
                    },
                )
                .await?;
                for key in keys {
                    match *k.kind {
                        KeyKind::String => {
                            let value: Option<String> =
                                conn.get(&key).await.map_err(|e| failed(&e))?;
                            send(
                                &out,
                                ExportItem::Row(vec![
                                    Some(key.clone()),
                                    None,
                                    value,
                                    Some(k.category.to_string()),
                                ]),
                            )
                            .await?;
                            total += 1;
                        }
                        KeyKind::Hash => {
                            let fields: Vec<(String, String)> =
                                conn.hgetall(&key).await.map_err(|e| failed(&e))?;
                            for (field, value) in fields {
                                let (_, _, category) = strategy_of(k, &field);
                                send(
                                    &out,
                                    ExportItem::Row(vec![
                                        Some(key.clone()),
                                        Some(field),
                                        Some(value),
                                        Some(category),
                                    ]),
                                )
                                .await?;
                                total += 1;
                            }
                        }
                    }
                }
            }
            Ok(total)
        })
    }

    fn erase<'a>(&'a self, who: &'a Identities) -> BoxFuture<'a, Result<Erased, ConnectorError>> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            let mut pipe = redis::pipe();
            pipe.atomic();
            let mut changed = Vec::new();
            for (k, keys) in self.keys(&mut conn, who).await? {
                let mut n = 0u64;
                for key in keys {
                    match *k.kind {
                        KeyKind::String => {
                            let value: Option<String> =
                                conn.get(&key).await.map_err(|e| failed(&e))?;
                            match (*k.erase, value) {
                                (_, None) | (Strategy::Keep, _) => {}
                                (Strategy::DeleteRow | Strategy::SetNull, Some(_)) => {
                                    pipe.del(&key).ignore();
                                    n += 1;
                                }
                                (Strategy::Replace, Some(v)) => {
                                    let r = k.replacement.as_deref().cloned().unwrap_or_default();
                                    if v != r {
                                        pipe.set(&key, r).ignore();
                                        n += 1;
                                    }
                                }
                                (Strategy::Hash, Some(v)) => {
                                    if !v.starts_with(HASHED) {
                                        pipe.set(&key, hashed_value(&self.hash_key, &v)).ignore();
                                        n += 1;
                                    }
                                }
                            }
                        }
                        KeyKind::Hash => {
                            if *k.erase == Strategy::DeleteRow {
                                pipe.del(&key).ignore();
                                n += 1;
                                continue;
                            }
                            let fields: Vec<(String, String)> =
                                conn.hgetall(&key).await.map_err(|e| failed(&e))?;
                            let mut touched = false;
                            for (field, value) in fields {
                                match strategy_of(k, &field) {
                                    (Strategy::Keep, ..) => {}
                                    (Strategy::SetNull | Strategy::DeleteRow, ..) => {
                                        pipe.hdel(&key, &field).ignore();
                                        touched = true;
                                    }
                                    (Strategy::Replace, r, _) => {
                                        let r = r.unwrap_or_default();
                                        if value != r {
                                            pipe.hset(&key, &field, r).ignore();
                                            touched = true;
                                        }
                                    }
                                    (Strategy::Hash, ..) => {
                                        if !value.starts_with(HASHED) {
                                            pipe.hset(
                                                &key,
                                                &field,
                                                hashed_value(&self.hash_key, &value),
                                            )
                                            .ignore();
                                            touched = true;
                                        }
                                    }
                                }
                            }
                            n += u64::from(touched);
                        }
                    }
                }
                changed.push((k.pattern.to_string(), n));
            }
            if changed.iter().any(|(_, n)| *n > 0) {
                let () = pipe.query_async(&mut conn).await.map_err(|e| failed(&e))?;
            }
            let mut kept = kept(&self.policy, &self.declared);
            for k in &self.declared.keys {
                if *k.erase == Strategy::Keep {
                    if let Some(g) = &k.ground {
                        kept.push(custodian_engine::datasets::KeptField {
                            field: k.pattern.to_string(),
                            purpose: g.to_string(),
                            ground: custodian_policy::datasets::ground_text(
                                &self.policy,
                                g,
                                k.retention.as_deref().map(String::as_str),
                            )
                            .unwrap_or_else(|| g.to_string()),
                        });
                    }
                }
            }
            Ok(Erased { changed, kept })
        })
    }

    fn rectify<'a>(
        &'a self,
        who: &'a Identities,
        corrections: &'a Corrections,
    ) -> BoxFuture<'a, Result<Applied, ConnectorError>> {
        Box::pin(self.rectify_keys(who, corrections))
    }

    fn restrict<'a>(
        &'a self,
        who: &'a Identities,
        restricted: bool,
    ) -> BoxFuture<'a, Result<Applied, ConnectorError>> {
        Box::pin(async move {
            // Redis keys carry no mark Custodian could set and every reader
            // of the keyspace would honour: each pattern holding the person
            // is listed for staff instead.
            let mut conn = self.conn().await?;
            let mut by_hand = Vec::new();
            for (k, keys) in self.keys(&mut conn, who).await? {
                if !keys.is_empty() {
                    by_hand.push(ByHand {
                        what: k.pattern.to_string(),
                        why: format!(
                            "{} keys; Redis keys carry no restriction mark: {}: act by hand",
                            keys.len(),
                            if restricted {
                                "not restricted automatically"
                            } else {
                                "restriction not lifted automatically"
                            }
                        ),
                    });
                }
            }
            Ok(Applied {
                changed: Vec::new(),
                by_hand,
            })
        })
    }
}

/// The new name of `key`, found by filling `prefix{identity}...` with
/// `old`: the same key under `new`. None when the key does not start so.
fn renamed(key: &str, prefix: &str, old: &str, new: &str) -> Option<String> {
    let rest = key.strip_prefix(prefix)?.strip_prefix(old)?;
    Some(format!("{prefix}{new}{rest}"))
}

impl Redis {
    /// Rectification: keys named after a corrected identity are renamed
    /// (RENAMENX, never over a key that exists), then hash fields holding
    /// a corrected value are set where they differ. Each command is atomic
    /// on its own; a rerun finds no key under the old identity and no
    /// field that differs, so it changes nothing more.
    async fn rectify_keys(
        &self,
        who: &Identities,
        corrections: &Corrections,
    ) -> Result<Applied, ConnectorError> {
        let mut conn = self.conn().await?;
        let mut applied = Applied::default();
        for k in &self.declared.keys {
            let mut n = 0u64;
            let names = placeholders(&k.pattern);
            let corrected: Vec<&str> = names
                .iter()
                .copied()
                .filter(|p| corrections.contains_key(*p))
                .collect();
            for name in &corrected {
                let prefix = k.pattern.split(&format!("{{{name}}}")).next().unwrap_or("");
                if names.len() > 1 || prefix.contains('*') {
                    applied.by_hand.push(ByHand {
                        what: k.pattern.to_string(),
                        why: "keys named after more than one identity (or after a pattern) are not renamed automatically: act by hand".into(),
                    });
                    continue;
                }
                let Some(new) = corrections.get(*name) else {
                    continue;
                };
                let olds = who.get(*name).into_iter().flatten().filter(|v| *v != new);
                for old in olds {
                    let mut one = Identities::new();
                    one.entry((*name).to_string())
                        .or_default()
                        .insert(old.clone());
                    for key in self.keys_of(&mut conn, k, &one).await? {
                        let Some(target) = renamed(&key, prefix, old, new) else {
                            continue;
                        };
                        let moved: bool = redis::cmd("RENAMENX")
                            .arg(&key)
                            .arg(&target)
                            .query_async(&mut conn)
                            .await
                            .map_err(|e| failed(&e))?;
                        if moved {
                            n += 1;
                        } else {
                            applied.by_hand.push(ByHand {
                                what: k.pattern.to_string(),
                                why: "a key under the corrected identity exists already: merge by hand".into(),
                            });
                        }
                    }
                }
            }
            let fields: Vec<(&str, &String)> = k
                .fields
                .iter()
                .filter_map(|f| {
                    let value = corrections.get(f.rectified_by()?)?;
                    Some((f.name.as_str(), value))
                })
                .collect();
            if *k.kind == KeyKind::Hash && !fields.is_empty() {
                for key in self.keys_of(&mut conn, k, who).await? {
                    let mut touched = false;
                    for (field, value) in &fields {
                        let now: Option<String> =
                            conn.hget(&key, *field).await.map_err(|e| failed(&e))?;
                        // Only a field the person's key holds is corrected.
                        if now.as_ref().is_some_and(|v| v != *value) {
                            let () = conn
                                .hset(&key, *field, value.as_str())
                                .await
                                .map_err(|e| failed(&e))?;
                            touched = true;
                        }
                    }
                    n += u64::from(touched);
                }
            }
            if !corrected.is_empty() || !fields.is_empty() {
                applied.changed.push((k.pattern.to_string(), n));
            }
        }
        Ok(applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_filled_and_globs_escaped() {
        let mut who = Identities::new();
        who.entry("email".into())
            .or_default()
            .insert("a*b@x.org".into());
        assert_eq!(expand("s:{email}:*", &who), vec!["s:a\\*b@x.org:*"]);
        assert_eq!(expand("p:{email}", &who), vec!["p:a*b@x.org"]);
        assert!(expand("p:{phone}", &who).is_empty());
    }

    #[test]
    fn a_key_is_renamed_after_its_identity_only() {
        assert_eq!(
            renamed("s:a@x.org:7", "s:", "a@x.org", "b@x.org").as_deref(),
            Some("s:b@x.org:7")
        );
        assert_eq!(renamed("t:a@x.org:7", "s:", "a@x.org", "b@x.org"), None);
        assert_eq!(renamed("s:c@x.org", "s:", "a@x.org", "b@x.org"), None);
    }
}
