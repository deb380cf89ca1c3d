//! The connectors part of `custodian bench` (`--connectors`): access and
//! erasure requests that reach the organisation's own systems. A vault of
//! `--vault-subjects` people (filled over HTTP as the main bench fills it),
//! a shop of `--shop-customers` customers and `--shop-orders` orders in
//! PostgreSQL and the same in MariaDB, and one session hash per customer in
//! Redis, all joined by email (`person{i}@bench.example`). Each request is
//! timed from its verified submission to its completed report; then the
//! connectors themselves are timed in this process against the same
//! systems, which is the databases' share.
//!
//! The shop is seeded and kept between runs by `bench_shop.rs`. Only
//! 127.0.0.1 (or the URLs given) is contacted; every loop is bounded.

use crate::bench::{BenchArgs, Conn, collection_body, drive, find, get, ms, percentile, post};
use crate::bench_shop::*;
use custodian_engine::datasets::{Dataset, Datasets, ExportItem, Identities};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const POSTGRES_VAR: &str = "CUSTODIAN_BENCH_POSTGRES_URL";
pub const MARIADB_VAR: &str = "CUSTODIAN_BENCH_MARIADB_URL";
pub const REDIS_VAR: &str = "CUSTODIAN_BENCH_REDIS_URL";

/// Requests before the timed ones, so pools and caches are warm.
const WARM_UP: usize = 5;

/// The systems given in the environment.
struct Urls {
    postgres: Option<String>,
    mariadb: Option<String>,
    redis: Option<String>,
}

// -------------------------------------------------------------------- Policy

fn shop_dataset(id: &str, system: &str) -> String {
    format!(
        r#"
[[datasets]]
id = "{id}"
system = "{system}"
connection = "{id}"
description = "The bench's shop: 1 customer row and 10 orders per person"

[[datasets.tables]]
name = "customers"
fields = [
  {{ name = "id", category = "account" }},
  {{ name = "email", category = "email", identity = "email", erase = "set-null" }},
  {{ name = "full_name", category = "name", erase = "replace", replacement = "erased" }},
  {{ name = "phone", category = "phone", identity = "phone", erase = "hash" }},
  {{ name = "postal_address", category = "postal-address", erase = "set-null" }},
]

[[datasets.tables]]
name = "orders"
fields = [
  {{ name = "id", category = "orders.order_reference", erase = "keep", ground = "statutory-accounting" }},
  {{ name = "customer_id", category = "orders", references = "customers.id", erase = "keep", ground = "statutory-accounting" }},
  {{ name = "order_reference", category = "orders.order_reference", erase = "keep", ground = "statutory-accounting" }},
  {{ name = "order_total", category = "orders.order_total", erase = "keep", ground = "statutory-accounting" }},
  {{ name = "delivery_note", category = "orders", erase = "set-null" }},
]
"#
    )
}

/// The reference policy with the datasets of the systems given; and the
/// connections' environment for the server.
fn policy(urls: &Urls) -> (String, Vec<(String, String)>) {
    let mut text = custodian_policy::REFERENCE_POLICY.to_string();
    let mut env = Vec::new();
    if let Some(url) = &urls.postgres {
        text.push_str(&shop_dataset("bench-pg", "postgres"));
        env.push(("CUSTODIAN_CONNECTION_BENCH_PG".into(), url.clone()));
    }
    if let Some(url) = &urls.mariadb {
        text.push_str(&shop_dataset("bench-maria", "mysql"));
        env.push(("CUSTODIAN_CONNECTION_BENCH_MARIA".into(), url.clone()));
    }
    if let Some(url) = &urls.redis {
        text.push_str(&format!(
            r#"
[[datasets]]
id = "bench-sessions"
system = "redis"
connection = "bench-sessions"
description = "The bench's web sessions: one hash per person"

[[datasets.keys]]
pattern = "{PREFIX}:session:{{email}}"
kind = "hash"
category = "visit"
erase = "delete-row"
"#
        ));
        env.push(("CUSTODIAN_CONNECTION_BENCH_SESSIONS".into(), url.clone()));
    }
    (text, env)
}

// ---------------------------------------------------------------- The people

/// The people of slots `from..from + count`: a stride through `1..=usable`
/// coprime with it, so consecutive requests touch rows far apart (no
/// page left warm by the one before) and no slot repeats a person.
fn people(from: u64, count: usize, usable: u64) -> Vec<u64> {
    fn gcd(a: u64, b: u64) -> u64 {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    let stride = (7919u64..)
        .take(10_000)
        .find(|s| gcd(*s, usable.max(1)) == 1)
        .unwrap_or(1);
    (0..count as u64)
        .map(|k| 1 + ((from + k) * stride) % usable.max(1))
        .collect()
}

// ------------------------------------------------------------------ Requests

struct Timed {
    latencies: Vec<Duration>,
    /// Rows found (access) or changed (erasure) per dataset, summed.
    rows: BTreeMap<String, u64>,
}

/// The datasets' rows in a request's outcome.
fn system_rows(view: &serde_json::Value, into: &mut BTreeMap<String, u64>) {
    let systems = view
        .get("outcome")
        .and_then(|o| o.get("systems"))
        .and_then(|s| s.as_array());
    for s in systems.into_iter().flatten() {
        let dataset = s.get("dataset").and_then(|d| d.as_str()).unwrap_or("?");
        let rows = s.get("rows").and_then(|r| r.as_u64()).unwrap_or(0);
        *into.entry(dataset.to_string()).or_default() += rows;
    }
}

/// One request at a time for each of `people`: submission (verified by
/// the admin's identity check) to the answer of `wait_ms` saying it is
/// complete, its report written.
async fn timed(addr: &str, key: &str, kind: &str, people: &[u64]) -> Result<Timed, String> {
    let mut submit = Conn::open(addr).await.map_err(|e| e.to_string())?;
    let mut wait = Conn::open(addr).await.map_err(|e| e.to_string())?;
    let mut out = Timed {
        latencies: Vec::new(),
        rows: BTreeMap::new(),
    };
    for i in people {
        let body = format!(
            "{{\"kind\":\"{kind}\",\"email\":\"{}\",\"identity\":{{\"method\":\"bench\",\"evidence\":\"bench\"}}}}",
            email(*i)
        );
        let t = Instant::now();
        let (status, answer) = submit
            .call(&post(addr, key, "/v1/requests", &body))
            .await
            .map_err(|e| e.to_string())?;
        if status != 201 {
            return Err(format!("a {kind} request was refused: {status}"));
        }
        let id = serde_json::from_slice::<serde_json::Value>(answer)
            .ok()
            .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_string))
            .ok_or("a request answer without an id")?;
        let path = format!("/v1/requests/{id}?wait_ms=30000");
        let view = loop {
            let (_, answer) = wait
                .call(&get(addr, key, &path))
                .await
                .map_err(|e| e.to_string())?;
            if find(answer, b"\"state\":\"completed\"").is_some()
                || find(answer, b"\"state\":\"partially-completed\"").is_some()
            {
                break answer.to_vec();
            }
            // A task that failed for good leaves the request open: say why now.
            let failed = find(answer, b"\"state\":\"failed\"").is_some();
            if failed || t.elapsed() > Duration::from_secs(30) {
                let why = serde_json::from_slice::<serde_json::Value>(answer)
                    .ok()
                    .and_then(|v| v.get("tasks").map(|t| t.to_string()))
                    .unwrap_or_default();
                return Err(format!(
                    "{kind} request {id} did not complete; its tasks: {why}"
                ));
            }
        };
        out.latencies.push(t.elapsed());
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&view) {
            system_rows(&v, &mut out.rows);
        }
    }
    out.latencies.sort_unstable();
    Ok(out)
}

// ------------------------------------------------------ The databases' share

struct Share {
    /// Per person: the datasets worked on at once, as the server's tasks are.
    together: Vec<Duration>,
    /// Per dataset: its own time per person.
    each: BTreeMap<String, Vec<Duration>>,
}

/// Times the connectors alone, in this process, on the same systems: for
/// each person, every dataset's export (or erasure) at once, as the
/// server's tasks run them.
async fn share(datasets: &Datasets, people: &[u64], erase: bool) -> Result<Share, String> {
    let mut out = Share {
        together: Vec::new(),
        each: BTreeMap::new(),
    };
    for i in people {
        let mut who = Identities::new();
        who.entry("email".into()).or_default().insert(email(*i));
        let who = Arc::new(who);
        let t = Instant::now();
        let mut running = tokio::task::JoinSet::new();
        for (id, d) in datasets {
            let (id, d, who) = (id.clone(), d.clone(), who.clone());
            running.spawn(async move {
                let t = Instant::now();
                one(d.as_ref(), &who, erase)
                    .await
                    .map(|()| (id, t.elapsed()))
            });
        }
        while let Some(done) = running.join_next().await {
            let (id, took) = done.map_err(|e| e.to_string())??;
            out.each.entry(id).or_default().push(took);
        }
        out.together.push(t.elapsed());
    }
    out.together.sort_unstable();
    for v in out.each.values_mut() {
        v.sort_unstable();
    }
    Ok(out)
}

async fn one(d: &dyn Dataset, who: &Identities, erase: bool) -> Result<(), String> {
    if erase {
        d.erase(who).await.map_err(|e| e.detail)?;
        return Ok(());
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ExportItem>(256);
    let drain = async move { while rx.recv().await.is_some() {} };
    let (exported, ()) = tokio::join!(d.export(who, tx), drain);
    exported.map(drop).map_err(|e| e.detail)
}

// ----------------------------------------------------------------- The run

pub fn run(args: &BenchArgs, cores: usize, dir: &std::path::Path) -> Result<(), String> {
    let urls = Urls {
        postgres: std::env::var(POSTGRES_VAR).ok(),
        mariadb: std::env::var(MARIADB_VAR).ok(),
        redis: std::env::var(REDIS_VAR).ok().map(|u| redis_database(&u)),
    };
    println!(
        "custodian bench --connectors: {cores} cores; vault of {} subjects; shop of {} customers and {} orders",
        args.vault_subjects, args.shop_customers, args.shop_orders
    );
    for (var, what, url) in [
        (POSTGRES_VAR, "PostgreSQL", &urls.postgres),
        (MARIADB_VAR, "MariaDB", &urls.mariadb),
        (REDIS_VAR, "Redis", &urls.redis),
    ] {
        if url.is_none() {
            println!("SKIPPED: {what}: {var} is not set, so its dataset is left out");
        }
    }
    if urls.postgres.is_none() && urls.mariadb.is_none() && urls.redis.is_none() {
        println!("SKIPPED: connectors: no system is set; nothing measured");
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;

    // The shop, seeded where its marker differs; the next free person.
    let (pg, my, next, redis) = rt.block_on(async {
        let mut next = 0i64;
        let pg = match &urls.postgres {
            Some(u) => {
                let (url, n) = pg_prepare(u, args).await?;
                next = next.max(n);
                Some(url)
            }
            None => None,
        };
        let my = match &urls.mariadb {
            Some(u) => {
                let (url, n) = my_prepare(u, args).await?;
                next = next.max(n);
                Some(url)
            }
            None => None,
        };
        if let Some(u) = &urls.redis {
            next = next.max(redis_prepare(u, args).await?);
        }
        Ok::<_, String>((pg, my, next, urls.redis.clone()))
    })?;
    // People are drawn from the shop (the marker counts its slots); the
    // vault holds person 1 to `--vault-subjects`.
    let usable = args.shop_customers as u64;
    if args.vault_subjects < args.shop_customers {
        println!(
            "note: the vault ({}) is smaller than the shop ({}): some people are found in the shop only",
            args.vault_subjects, args.shop_customers
        );
    }
    let wanted = (3 * args.timed_requests + WARM_UP) as u64;
    let from = u64::try_from(next).unwrap_or(0);
    if from + wanted > usable {
        return Err(format!(
            "the seeded shop has no fresh people left ({from} of {usable} used); \
             raise the shape version or drop {DATABASE} to seed it again"
        ));
    }
    // Recorded as used before they are: a run cut short never hands the
    // same people to the next.
    let after = i64::try_from(from + wanted).unwrap_or(i64::MAX);
    rt.block_on(async {
        if let Some(u) = &pg {
            pg_reserve(u, after).await?;
        }
        if let Some(u) = &my {
            my_reserve(u, after).await?;
        }
        if let Some(u) = &redis {
            redis_reserve(u, after).await?;
        }
        Ok::<_, String>(())
    })?;
    let t = args.timed_requests;
    let slots = people(from, 3 * t + WARM_UP, usable);
    let warm = slots.get(..WARM_UP).unwrap_or_default();
    let access_people = slots.get(WARM_UP..WARM_UP + t).unwrap_or_default();
    let erasure_people = slots.get(WARM_UP + t..WARM_UP + 2 * t).unwrap_or_default();
    let direct_people = slots.get(WARM_UP + 2 * t..).unwrap_or_default();

    let server_urls = Urls {
        postgres: pg,
        mariadb: my,
        redis,
    };
    let (policy_text, env) = policy(&server_urls);
    let policy_file = dir.join("bench-connectors-policy.toml");
    std::fs::write(&policy_file, &policy_text).map_err(|e| e.to_string())?;
    let policy_arg = policy_file.display().to_string();
    let server = crate::bench::start_server_with(
        &dir.join("data-connectors"),
        &["--policy", policy_arg.as_str()],
        &env,
    )?;
    let (addr, key) = (server.addr.clone(), server.admin.clone());

    // The vault, filled as the main bench fills it (person{i}, over HTTP),
    // from 1 as the shop's ids are.
    let fill: Vec<Vec<u8>> = (1..=args.vault_subjects)
        .map(|i| post(&addr, &key, "/v1/subjects", &collection_body(i)))
        .collect();
    let started = Instant::now();
    let filled = rt.block_on(drive(&addr, Arc::new(fill), args.clients, false))?;
    println!(
        "vault filled to {} subjects in {:.0} s ({} failed)",
        args.vault_subjects,
        started.elapsed().as_secs_f64(),
        filled.failures
    );

    let (access, erasure) = rt.block_on(async {
        timed(&addr, &key, "access", warm).await?;
        let access = timed(&addr, &key, "access", access_people).await?;
        let erasure = timed(&addr, &key, "erasure", erasure_people).await?;
        Ok::<_, String>((access, erasure))
    })?;
    drop(server);

    // The databases' share: the same connectors in this process. Access
    // for the same people; erasure for fresh ones of the same shape (the
    // people above are erased already, and a second erasure changes
    // nothing, which would flatter it).
    let loaded = custodian_policy::load(&policy_arg, &policy_text)
        .map_err(|e| format!("the bench's policy: {e}"))?;
    let declared = Arc::new(loaded.document);
    let url_of = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let (datasets, unconnected) =
        custodian_connectors::connect_all(&declared, url_of, |_| [7u8; 32]);
    if let Some(u) = unconnected.first() {
        return Err(format!("dataset {} not connected: {}", u.dataset, u.why));
    }
    let (access_share, erasure_share) = rt.block_on(async {
        share(&datasets, warm, false).await?;
        let a = share(&datasets, access_people, false).await?;
        let e = share(&datasets, direct_people, true).await?;
        Ok::<_, String>((a, e))
    })?;

    let rows = |m: &BTreeMap<String, u64>, n: usize| {
        m.iter()
            .map(|(d, r)| format!("{d} {:.1}", *r as f64 / n.max(1) as f64))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let each = |s: &Share| {
        s.each
            .iter()
            .map(|(d, v)| {
                format!(
                    "{d} p50 {:.2} ms, p99 {:.2} ms",
                    ms(percentile(v, 0.50)),
                    ms(percentile(v, 0.99))
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    println!();
    println!("| measure | figure |");
    println!("|---|---|");
    println!(
        "| access request across the datasets, verified submission to completed report, one at a time | p50 {:.2} ms, p99 {:.2} ms ({} requests; rows per request: {}) |",
        ms(percentile(&access.latencies, 0.50)),
        ms(percentile(&access.latencies, 0.99)),
        access.latencies.len(),
        rows(&access.rows, access.latencies.len())
    );
    println!(
        "| its databases' share: the connectors' exports for the same people, all datasets at once | p50 {:.2} ms, p99 {:.2} ms ({}) |",
        ms(percentile(&access_share.together, 0.50)),
        ms(percentile(&access_share.together, 0.99)),
        each(&access_share)
    );
    println!(
        "| erasure request across the datasets, verified submission to completed, one at a time | p50 {:.2} ms, p99 {:.2} ms ({} requests; rows changed per request: {}) |",
        ms(percentile(&erasure.latencies, 0.50)),
        ms(percentile(&erasure.latencies, 0.99)),
        erasure.latencies.len(),
        rows(&erasure.rows, erasure.latencies.len())
    );
    println!(
        "| its databases' share: the connectors' erasures for as many fresh people, all datasets at once | p50 {:.2} ms, p99 {:.2} ms ({}) |",
        ms(percentile(&erasure_share.together, 0.50)),
        ms(percentile(&erasure_share.together, 0.99)),
        each(&erasure_share)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_is_put_in_the_path() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("mysql://root@127.0.0.1:3306", "x"),
            "mysql://root@127.0.0.1:3306/x"
        );
        assert_eq!(
            with_database("postgres://u@h/db?sslmode=require", "x"),
            "postgres://u@h/x?sslmode=require"
        );
    }

    #[test]
    fn redis_keys_stay_out_of_database_0() {
        assert_eq!(
            redis_database("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379/1"
        );
        assert_eq!(
            redis_database("redis://127.0.0.1:6379/4"),
            "redis://127.0.0.1:6379/4"
        );
    }

    #[test]
    fn people_never_repeat() {
        let all = people(0, 1000, 1000);
        let distinct: std::collections::BTreeSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), 1000);
        assert!(all.iter().all(|p| (1..=1000).contains(p)));
    }
}
