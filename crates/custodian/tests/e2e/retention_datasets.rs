//! The retention sweep in the organisation's own databases, through the
//! real CLI, on the machine's real PostgreSQL and MariaDB (each test its
//! own database, dropped after): rows whose clock column is older than the
//! rule's period are erased by the declared strategies (replaced, hashed,
//! set to null; deleted rows take the rows referring to them first), newer
//! rows are untouched, a dry run and a second run change nothing, and a
//! legal hold on the dataset stops its sweep until it is released. The
//! clock is the real one: old rows carry timestamps from 2020.

use super::connectors::{MyDb, PgDb};
use super::vault::vault;
use super::*;
use std::path::Path;

/// Customers closed two years ago lose their contact data (account-2y
/// from `closed_at`); baskets go after thirteen months (visit-13m from
/// `created_at`), with their items first.
fn policy(system: &str) -> String {
    format!(
        r#"{}
[[datasets]]
id = "shop"
system = "{system}"
connection = "shop"

[[datasets.tables]]
name = "customers"
expire = {{ rule = "account-2y", from = "closed_at" }}
fields = [
  {{ name = "id", category = "account" }},
  {{ name = "email", category = "email", identity = "email", erase = "set-null" }},
  {{ name = "name", category = "name", erase = "replace", replacement = "erased" }},
  {{ name = "phone", category = "phone", erase = "hash" }},
  {{ name = "closed_at", category = "account", erase = "keep", ground = "statutory-accounting" }},
]

[[datasets.tables]]
name = "baskets"
expire = {{ rule = "visit-13m", from = "created_at" }}
fields = [
  {{ name = "id", category = "orders" }},
  {{ name = "customer_id", category = "orders", references = "customers.id", erase = "delete-row" }},
  {{ name = "created_at", category = "orders" }},
]

[[datasets.tables]]
name = "basket_items"
fields = [
  {{ name = "basket_id", category = "orders", references = "baskets.id", erase = "delete-row" }},
  {{ name = "item", category = "orders" }},
]
"#,
        reference_text()
    )
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE customers (id BIGINT PRIMARY KEY, email VARCHAR(200), name VARCHAR(200) NOT NULL, phone VARCHAR(100), closed_at TIMESTAMP NULL)",
    "CREATE TABLE baskets (id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL, created_at TIMESTAMP NOT NULL, FOREIGN KEY (customer_id) REFERENCES customers (id))",
    "CREATE TABLE basket_items (id BIGINT PRIMARY KEY, basket_id BIGINT NOT NULL, item VARCHAR(200), FOREIGN KEY (basket_id) REFERENCES baskets (id))",
];

/// A moment `days` ago, as SQL text (UTC).
fn days_ago(days: i64) -> String {
    let t = time::OffsetDateTime::now_utc() - time::Duration::days(days);
    format!(
        "{:04}-{:02}-{:02} 12:00:00",
        t.year(),
        u8::from(t.month()),
        t.day()
    )
}

/// Customers 1 and 2 closed in 2020, 3 closed a month ago, 4 still open;
/// baskets 1 and 2 from 2020, basket 3 from yesterday; two items each.
fn seed() -> Vec<String> {
    let recent = days_ago(30);
    let yesterday = days_ago(1);
    vec![
        format!(
            "INSERT INTO customers VALUES \
             (1, 'one@example.org', 'One', '+44 7700 900001', '2020-01-01 00:00:00'), \
             (2, 'two@example.org', 'Two', '+44 7700 900002', '2020-06-01 00:00:00'), \
             (3, 'three@example.org', 'Three', '+44 7700 900003', '{recent}'), \
             (4, 'four@example.org', 'Four', '+44 7700 900004', NULL)"
        ),
        format!(
            "INSERT INTO baskets VALUES (1, 1, '2020-01-01 00:00:00'), (2, 3, '2020-02-01 00:00:00'), (3, 3, '{yesterday}')"
        ),
        "INSERT INTO basket_items VALUES (1, 1, 'a'), (2, 1, 'b'), (3, 2, 'c'), (4, 2, 'd'), (5, 3, 'e'), (6, 3, 'f')".into(),
    ]
}

/// What the shop holds, as text, in a fixed order.
type Shop = Vec<Vec<Option<String>>>;

const CUSTOMERS: &str =
    "SELECT CAST(id AS CHAR(20)), email, name, phone FROM customers ORDER BY id";
const BASKETS: &str = "SELECT CAST(id AS CHAR(20)) FROM baskets ORDER BY id";
const ITEMS: &str = "SELECT CAST(id AS CHAR(20)) FROM basket_items ORDER BY id";

fn shop_sweep(system: &str, rows: &dyn Fn(&str) -> Shop, exec: &dyn Fn(&str), url: &str) {
    for s in SCHEMA {
        exec(s);
    }
    for s in seed() {
        exec(&s);
    }
    let snapshot = || (rows(CUSTOMERS), rows(BASKETS), rows(ITEMS));
    let before = snapshot();

    // A vault on its own folder (the server makes the store and the key
    // file), with the dataset's policy; the scheduled sweep is off.
    let scratch = Scratch::new("retention-datasets");
    let policy = scratch.write("policy.toml", &policy(system));
    let policy = policy.to_str().unwrap();
    let v = vault(&["--policy", policy, "--retention-sweep-interval", "0"]);
    let data = v.scratch.arg("data");
    let cli = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--data-dir", &data, "--policy", policy]);
        bin()
            .args(&all)
            .env("CUSTODIAN_CONNECTION_SHOP", url)
            .output()
            .unwrap()
    };

    // The dry run counts what is due and changes nothing.
    let out = cli(&["retention", "run", "--dry-run"]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    assert!(
        said.contains("dataset shop (rule account-2y, before ")
            && said.contains("2 rows due (customers 2)"),
        "{said}"
    );
    assert!(
        said.contains("6 rows due (baskets 2, basket_items 4)")
            || said.contains("6 rows due (basket_items 4, baskets 2)"),
        "{said}"
    );
    assert_eq!(snapshot(), before);

    // The report lists the dataset's rules with their cut-offs.
    let out = cli(&["retention", "report"]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    assert!(said.contains("Datasets with a retention (2):"), "{said}");
    assert!(
        said.contains("shop\tbaskets\trule visit-13m\tdue before "),
        "{said}"
    );

    // A hold on the dataset stops its sweep.
    let out = cli(&[
        "retention",
        "hold",
        "set",
        "--scope",
        "dataset",
        "--target",
        "shop",
        "--reason",
        "claim 2026-7 about the shop's records",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let hold = text(&out.stdout).trim().to_string();
    let out = cli(&["retention", "run"]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    assert!(
        said.contains(&format!("held by {hold}, not swept")),
        "{said}"
    );
    assert_eq!(snapshot(), before);
    let out = bin()
        .args(["retention", "hold", "release", &hold, "--data-dir", &data])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));

    // The sweep: old customers erased by their strategies, old baskets
    // deleted with their items first; the rest untouched.
    let out = cli(&["retention", "run"]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    assert!(said.contains("2 rows erased (customers 2)"), "{said}");
    assert!(said.contains("6 rows erased ("), "{said}");
    let (customers, baskets, items) = snapshot();
    for old in &customers[..2] {
        assert_eq!(old[1], None, "{old:?}");
        assert_eq!(old[2].as_deref(), Some("erased"));
        let phone = old[3].as_deref().unwrap();
        assert!(phone.starts_with("h:") && phone.len() == 66, "{phone}");
    }
    assert_eq!(customers[2..], before.0[2..]);
    assert_eq!(baskets, vec![vec![Some("3".to_string())]]);
    assert_eq!(
        items,
        vec![vec![Some("5".to_string())], vec![Some("6".to_string())]]
    );
    let after = (customers, baskets, items);

    // A second run changes nothing more.
    let out = cli(&["retention", "run"]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    assert!(said.contains("0 rows erased (customers 0)"), "{said}");
    assert_eq!(snapshot(), after);
    let out = cli(&["retention", "run", "--dry-run"]);
    assert!(text(&out.stdout).contains("0 rows due (customers 0)"));

    // One audit entry per dataset and rule and run, with the counts and
    // no value of the shop's rows.
    let db = rusqlite::Connection::open(Path::new(&data).join("custodian.db")).unwrap();
    let mut stmt = db
        .prepare(
            "SELECT decision, reason FROM audit WHERE action = 'retention.dataset' ORDER BY seq",
        )
        .unwrap();
    let entries: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let decisions: Vec<&str> = entries.iter().map(|(d, _)| d.as_str()).collect();
    assert_eq!(
        decisions,
        ["held", "held", "erased", "erased", "erased", "erased"],
        "{entries:?}"
    );
    assert!(
        entries
            .iter()
            .any(|(_, r)| r.contains("dataset=shop rule=account-2y")
                && r.contains("erased=2 customers=2")),
        "{entries:?}"
    );
    for (_, reason) in &entries {
        assert!(
            !reason.contains("example.org") && !reason.contains("7700"),
            "{reason}"
        );
    }
    drop(v);
}

#[test]
fn an_external_dataset_swept_on_postgresql() {
    let Ok(admin) = std::env::var("CUSTODIAN_TEST_POSTGRES_URL") else {
        skip(
            "retention of datasets on PostgreSQL",
            "CUSTODIAN_TEST_POSTGRES_URL not set",
        );
        return;
    };
    let db = PgDb::create(&admin);
    shop_sweep(
        "postgres",
        &|q| db.rows(&q.replace("CHAR(20)", "TEXT")),
        &|s| db.exec(s),
        &db.url,
    );
}

#[test]
fn an_external_dataset_swept_on_mariadb() {
    let Ok(admin) = std::env::var("CUSTODIAN_TEST_MARIADB_URL") else {
        skip(
            "retention of datasets on MariaDB",
            "CUSTODIAN_TEST_MARIADB_URL not set",
        );
        return;
    };
    let db = MyDb::create(&admin);
    shop_sweep("mysql", &|q| db.rows(q), &|s| db.exec(s), &db.url);
}

/// Redis: hash keys whose `seen_at` (unix seconds) is older than thirteen
/// months are deleted; newer keys and keys without the field stay; a field
/// that is not unix seconds fails that dataset's sweep, naming the pattern
/// and field but never the key.
#[test]
fn redis_sessions_swept_by_their_time_field() {
    let Ok(url) = std::env::var("CUSTODIAN_TEST_REDIS_URL") else {
        skip(
            "retention of datasets on Redis",
            "CUSTODIAN_TEST_REDIS_URL not set",
        );
        return;
    };
    let prefix = format!(
        "rt{}x{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let space = super::connectors::RedisSpace {
        url: url.clone(),
        prefix: prefix.clone(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let session = |who: &str, n: u32, seen: Option<String>| {
        let key = format!("{prefix}:session:{who}@example.org:{n}");
        let mut cmd = redis::cmd("HSET");
        cmd.arg(&key).arg("ip").arg("192.0.2.1");
        if let Some(seen) = seen {
            cmd.arg("seen_at").arg(seen);
        }
        space.cmd(&mut cmd);
        key
    };
    let old = session("old", 1, Some("1577836800".into())); // 2020-01-01
    let new = session("new", 1, Some((now - 86_400).to_string()));
    let timeless = session("timeless", 1, None);
    let policy = format!(
        r#"{}
[[datasets]]
id = "sessions"
system = "redis"
connection = "sessions"

[[datasets.keys]]
pattern = "{prefix}:session:{{email}}:*"
kind = "hash"
category = "visit"
erase = "delete-row"
expire = {{ rule = "visit-13m", from = "seen_at" }}
"#,
        reference_text()
    );
    let scratch = Scratch::new("retention-redis");
    let policy = scratch.write("policy.toml", &policy);
    let policy = policy.to_str().unwrap();
    let v = vault(&["--policy", policy, "--retention-sweep-interval", "0"]);
    let data = v.scratch.arg("data");
    let cli = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--data-dir", &data, "--policy", policy]);
        bin()
            .args(&all)
            .env("CUSTODIAN_CONNECTION_SESSIONS", &url)
            .output()
            .unwrap()
    };
    let out = cli(&["retention", "run", "--dry-run"]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    assert!(said.contains("1 rows due"), "{said}");
    assert_eq!(space.keys().len(), 3);

    let out = cli(&["retention", "run"]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    assert!(said.contains("1 rows erased"), "{said}");
    let mut left = vec![new.clone(), timeless.clone()];
    left.sort();
    assert_eq!(space.keys(), left);
    assert!(!space.keys().contains(&old));
    let out = cli(&["retention", "run"]);
    assert!(
        text(&out.stdout).contains("0 rows erased"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(space.keys(), left);

    // A time that is not unix seconds: the dataset fails, said plainly.
    session("odd", 1, Some("last tuesday".into()));
    let out = cli(&["retention", "run"]);
    let said = text(&out.stdout);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("failed: key pattern")
            && said.contains("the field seen_at holds something other than unix seconds"),
        "{said}"
    );
    assert!(!said.contains("odd@example.org"), "{said}");
    drop(v);
}

/// The server's scheduled sweep reaches the dataset too (every second
/// here), and the API's report lists the dataset's rules, cut-offs and
/// whether the server reaches it.
#[test]
fn the_scheduled_sweep_reaches_the_dataset_and_the_report_lists_it() {
    let Ok(admin) = std::env::var("CUSTODIAN_TEST_POSTGRES_URL") else {
        skip(
            "scheduled retention of datasets on PostgreSQL",
            "CUSTODIAN_TEST_POSTGRES_URL not set",
        );
        return;
    };
    let db = PgDb::create(&admin);
    for s in SCHEMA.iter().map(|s| s.to_string()).chain(seed()) {
        db.exec(&s);
    }
    let scratch = Scratch::new("retention-scheduled");
    let policy = scratch.write("policy.toml", &policy("postgres"));
    let data = scratch.arg("data");
    let server = Server::start_with_env(
        &[
            "--data-dir",
            &data,
            "--policy",
            policy.to_str().unwrap(),
            "--retention-sweep-interval",
            "1",
        ],
        &[("CUSTODIAN_CONNECTION_SHOP", &db.url)],
    );
    let key = server.admin_key.clone().unwrap();
    let report = server.get("/v1/retention/report", Some(&key));
    assert_eq!(report.status, 200, "{}", report.body);
    let datasets = report.json()["datasets"].clone();
    assert_eq!(datasets.as_array().map(Vec::len), Some(2), "{datasets}");
    assert_eq!(datasets[1]["dataset"], "shop");
    assert_eq!(datasets[1]["rule"], "visit-13m");
    assert_eq!(datasets[1]["parts"][0], "baskets");
    assert_eq!(datasets[1]["connected"], true);
    assert_eq!(datasets[1]["held_by"], serde_json::Value::Null);
    assert!(datasets[1]["cutoff"].as_str().is_some(), "{datasets}");

    // Waits for the sweep (at most thirty seconds), then checks its work.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while db.rows("SELECT id::text FROM baskets").len() != 1 && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        db.rows("SELECT id::text FROM baskets ORDER BY id"),
        vec![vec![Some("3".to_string())]]
    );
    assert_eq!(
        db.rows("SELECT id::text FROM basket_items ORDER BY id")
            .len(),
        2
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while db
        .rows("SELECT id::text FROM customers WHERE email IS NULL")
        .len()
        != 2
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        db.rows("SELECT name FROM customers ORDER BY id"),
        vec![
            vec![Some("erased".to_string())],
            vec![Some("erased".to_string())],
            vec![Some("Three".to_string())],
            vec![Some("Four".to_string())],
        ]
    );
    assert_eq!(server.stop(), Some(0));
}
