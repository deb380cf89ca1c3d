//! Requests that reach the organisation's own systems: a shop on the
//! machine's real PostgreSQL and MariaDB (each test makes its own database
//! and drops it) and sessions in Redis (each test its own key prefix,
//! removed afterwards), declared as datasets in the policy. Runs where
//! `CUSTODIAN_TEST_POSTGRES_URL`, `CUSTODIAN_TEST_MARIADB_URL` and
//! `CUSTODIAN_TEST_REDIS_URL` are set; in CI their absence is a failure.

use super::vault::{Vault, collect};
use super::*;
use mysql_async::prelude::Queryable;
use serde_json::{Value, json};

const PG_VAR: &str = "CUSTODIAN_TEST_POSTGRES_URL";
const MARIADB_VAR: &str = "CUSTODIAN_TEST_MARIADB_URL";
const REDIS_VAR: &str = "CUSTODIAN_TEST_REDIS_URL";

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

pub type Rows = Vec<Vec<Option<String>>>;

/// Both databases' customers and every Redis key with its hash.
type Snapshot = (
    Rows,
    Rows,
    Vec<(String, std::collections::BTreeMap<String, String>)>,
);

/// A PostgreSQL database of the test's own.
pub struct PgDb {
    admin: String,
    name: String,
    pub url: String,
}

impl PgDb {
    pub fn create(admin: &str) -> PgDb {
        let name = unique("custodian_shop");
        pg_exec(admin, &format!("CREATE DATABASE {name}"));
        let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
        PgDb {
            admin: admin.to_string(),
            url: format!("{base}/{name}"),
            name,
        }
    }

    pub fn exec(&self, sql: &str) {
        pg_exec(&self.url, sql);
    }

    pub fn rows(&self, sql: &str) -> Rows {
        block(async {
            let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client
                .query(sql, &[])
                .await
                .unwrap()
                .iter()
                .map(|r| {
                    (0..r.len())
                        .map(|i| r.get::<_, Option<String>>(i))
                        .collect()
                })
                .collect()
        })
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        pg_exec(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

fn pg_exec(url: &str, sql: &str) {
    block(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client.batch_execute(sql).await.unwrap();
    });
}

/// A MariaDB database of the test's own.
pub struct MyDb {
    admin: String,
    name: String,
    pub url: String,
}

impl MyDb {
    pub fn create(admin: &str) -> MyDb {
        let name = unique("custodian_shop");
        my_exec(admin, &format!("CREATE DATABASE {name}"));
        let base = admin.trim_end_matches('/');
        MyDb {
            admin: admin.to_string(),
            url: format!("{base}/{name}"),
            name,
        }
    }

    pub fn exec(&self, sql: &str) {
        my_exec(&self.url, sql);
    }

    pub fn rows(&self, sql: &str) -> Rows {
        block(async {
            let pool = mysql_async::Pool::new(self.url.as_str());
            let mut conn = pool.get_conn().await.unwrap();
            let rows: Vec<mysql_async::Row> = conn.query(sql).await.unwrap();
            drop(conn);
            pool.disconnect().await.unwrap();
            rows.into_iter()
                .map(|r| {
                    r.unwrap()
                        .into_iter()
                        .map(|v| match v {
                            mysql_async::Value::NULL => None,
                            mysql_async::Value::Bytes(b) => Some(String::from_utf8(b).unwrap()),
                            other => Some(other.as_sql(true)),
                        })
                        .collect()
                })
                .collect()
        })
    }
}

impl Drop for MyDb {
    fn drop(&mut self) {
        my_exec(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {}", self.name),
        );
    }
}

fn my_exec(url: &str, sql: &str) {
    block(async {
        let pool = mysql_async::Pool::new(url);
        let mut conn = pool.get_conn().await.unwrap();
        conn.query_drop(sql).await.unwrap();
        drop(conn);
        pool.disconnect().await.unwrap();
    });
}

/// A Redis key prefix of the test's own; its keys are removed afterwards.
pub struct RedisSpace {
    pub url: String,
    pub prefix: String,
}

impl RedisSpace {
    fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url.as_str())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    pub fn cmd(&self, cmd: &mut redis::Cmd) -> redis::Value {
        cmd.query(&mut self.conn()).unwrap()
    }

    pub fn keys(&self) -> Vec<String> {
        let mut conn = self.conn();
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query(&mut conn)
            .unwrap();
        keys.sort();
        keys
    }

    pub fn hash(&self, key: &str) -> std::collections::BTreeMap<String, String> {
        redis::cmd("HGETALL")
            .arg(key)
            .query(&mut self.conn())
            .unwrap()
    }
}

impl Drop for RedisSpace {
    fn drop(&mut self) {
        let keys = self.keys();
        if !keys.is_empty() {
            let _: redis::Value = redis::cmd("DEL").arg(keys).query(&mut self.conn()).unwrap();
        }
    }
}

/// The three systems, or None (said plainly) where one is not configured.
pub struct Systems {
    pub pg: PgDb,
    pub my: MyDb,
    pub redis: RedisSpace,
}

pub fn systems(suite: &str) -> Option<Systems> {
    let mut missing = Vec::new();
    let var = |name: &str, missing: &mut Vec<String>| {
        let v = std::env::var(name).ok();
        if v.is_none() {
            missing.push(name.to_string());
        }
        v
    };
    let pg = var(PG_VAR, &mut missing);
    let my = var(MARIADB_VAR, &mut missing);
    let redis = var(REDIS_VAR, &mut missing);
    let (Some(pg), Some(my), Some(redis)) = (pg, my, redis) else {
        skip(suite, &format!("{} not set", missing.join(", ")));
        return None;
    };
    Some(Systems {
        pg: PgDb::create(&pg),
        my: MyDb::create(&my),
        redis: RedisSpace {
            url: redis,
            prefix: unique("t"),
        },
    })
}

/// The shop's schema, the same on both databases.
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE customers (id BIGINT PRIMARY KEY, email VARCHAR(200), name VARCHAR(200) NOT NULL, phone VARCHAR(100))",
    "CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id BIGINT, total NUMERIC(10,2) NOT NULL, note VARCHAR(200), FOREIGN KEY (customer_id) REFERENCES customers (id))",
    "CREATE TABLE carts (id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL, items VARCHAR(200), FOREIGN KEY (customer_id) REFERENCES customers (id))",
    "CREATE INDEX orders_customer ON orders (customer_id)",
    "CREATE INDEX carts_customer ON carts (customer_id)",
    "CREATE INDEX customers_email ON customers (email)",
];

/// The email of shop customer `i`.
pub fn email(i: u64) -> String {
    format!("person{i}@example.org")
}

/// Customers `from..=to`, each with three orders and one cart.
pub fn seed_sql(from: u64, to: u64) -> Vec<String> {
    let mut customers = Vec::new();
    let mut orders = Vec::new();
    let mut carts = Vec::new();
    for i in from..=to {
        customers.push(format!(
            "({i}, '{}', 'Person {i}', '+44 7700 9{i:05}')",
            email(i)
        ));
        for j in 0..3 {
            let o = i * 10 + j;
            orders.push(format!("({o}, {i}, {j}{i}.50, 'leave at the door {i}')"));
        }
        carts.push(format!("({i}, {i}, 'basket of {i}')"));
    }
    vec![
        format!("INSERT INTO customers VALUES {}", customers.join(", ")),
        format!("INSERT INTO orders VALUES {}", orders.join(", ")),
        format!("INSERT INTO carts VALUES {}", carts.join(", ")),
    ]
}

/// The shop's tables as a dataset of `system` on `connection`.
pub fn shop(id: &str, system: &str, connection: &str) -> String {
    format!(
        r#"
[[datasets]]
id = "{id}"
system = "{system}"
connection = "{connection}"

[[datasets.tables]]
name = "customers"
fields = [
  {{ name = "id", category = "account" }},
  {{ name = "email", category = "email", identity = "email", erase = "set-null" }},
  {{ name = "name", category = "name", erase = "replace", replacement = "erased" }},
  {{ name = "phone", category = "phone", erase = "hash" }},
]

[[datasets.tables]]
name = "orders"
fields = [
  {{ name = "customer_id", category = "orders", references = "customers.id", erase = "keep", ground = "statutory-accounting" }},
  {{ name = "total", category = "orders.order_total", erase = "keep", ground = "statutory-accounting" }},
  {{ name = "note", category = "orders", erase = "set-null" }},
]

[[datasets.tables]]
name = "carts"
fields = [
  {{ name = "customer_id", category = "orders", references = "customers.id", erase = "delete-row" }},
  {{ name = "items", category = "orders" }},
]
"#
    )
}

/// The reference policy with the shop on both databases and the sessions.
pub fn policy(prefix: &str) -> String {
    format!(
        r#"{}{}{}
[[datasets]]
id = "sessions"
system = "redis"
connection = "sessions"

[[datasets.keys]]
pattern = "{prefix}:session:{{email}}:*"
kind = "hash"
category = "visit"
erase = "delete-row"

[[datasets.keys]]
pattern = "{prefix}:profile:{{email}}"
kind = "hash"
category = "usage"
fields = [
  {{ name = "nickname", category = "name", erase = "replace", replacement = "erased" }},
  {{ name = "phone", category = "phone", erase = "hash" }},
  {{ name = "loyalty", category = "orders", erase = "keep", ground = "statutory-accounting" }},
]
"#,
        reference_text(),
        shop("shop-pg", "postgres", "shop-pg"),
        shop("shop-maria", "mysql", "shop-maria"),
    )
}

impl Systems {
    /// The schema and customers `1..=n` in both databases, and sessions
    /// and a profile for each in Redis.
    pub fn seed(&self, n: u64) {
        for s in SCHEMA {
            self.pg.exec(s);
            self.my.exec(s);
        }
        for s in seed_sql(1, n) {
            self.pg.exec(&s);
            self.my.exec(&s);
        }
        let p = &self.redis.prefix;
        for i in 1..=n {
            let e = email(i);
            for s in 0..2 {
                self.redis.cmd(
                    redis::cmd("HSET")
                        .arg(format!("{p}:session:{e}:{s}"))
                        .arg("ip")
                        .arg(format!("192.0.2.{i}"))
                        .arg("agent")
                        .arg("Firefox"),
                );
            }
            self.redis.cmd(
                redis::cmd("HSET")
                    .arg(format!("{p}:profile:{e}"))
                    .arg("nickname")
                    .arg(format!("nick{i}"))
                    .arg("phone")
                    .arg(format!("+44 7700 9{i:05}"))
                    .arg("loyalty")
                    .arg("gold")
                    .arg("theme")
                    .arg("dark"),
            );
        }
    }

    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("CUSTODIAN_CONNECTION_SHOP_PG".into(), self.pg.url.clone()),
            (
                "CUSTODIAN_CONNECTION_SHOP_MARIA".into(),
                self.my.url.clone(),
            ),
            (
                "CUSTODIAN_CONNECTION_SESSIONS".into(),
                self.redis.url.clone(),
            ),
        ]
    }

    /// A server with the datasets' policy, on `data`.
    pub fn server(&self, scratch: &Scratch, data: &str, extra: &[&str]) -> Server {
        let policy = scratch.write("policy.toml", &policy(&self.redis.prefix));
        let mut args = vec!["--data-dir", data, "--policy", policy.to_str().unwrap()];
        args.extend_from_slice(extra);
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        Server::start_with_env(&args, &env)
    }

    /// What the shop holds, everywhere, for comparisons.
    pub fn snapshot(&self) -> Snapshot {
        let q = "SELECT CAST(c.id AS CHAR(20)), c.email, c.name, c.phone, \
                 (SELECT count(*) FROM orders o WHERE o.customer_id = c.id), \
                 (SELECT count(*) FROM carts k WHERE k.customer_id = c.id) \
                 FROM customers c ORDER BY c.id";
        let pg = self.pg.rows(&q.replace("count(*)", "count(*)::text"));
        let my = self.my.rows(q);
        let redis = self
            .redis
            .keys()
            .into_iter()
            .map(|k| {
                let h = self.redis.hash(&k);
                (k, h)
            })
            .collect();
        (pg, my, redis)
    }
}

pub fn agent(v: &Vault) -> String {
    let r = v
        .server
        .post("/v1/keys", Some(&v.admin), &json!({"role": "agent"}));
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["key"].as_str().unwrap().to_string()
}

pub fn submit(v: &Vault, key: &str, kind: &str, email: &str) -> String {
    let body = json!({
        "kind": kind, "email": email,
        "identity": {"method": "security-questions", "evidence": "answered two security questions"},
    });
    let r = v.server.post("/v1/requests", Some(key), &body);
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["id"].as_str().unwrap().to_string()
}

/// The request once all its tasks have run (at most thirty seconds).
pub fn finished(v: &Vault, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = v
            .server
            .get(&format!("/v1/requests/{id}"), Some(&v.admin))
            .json();
        if r["state"] != "in-progress" || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A server with its vault on a PostgreSQL database of its own and the
/// `shop-pg` dataset (declared by `shop_text`, after the reference policy)
/// connected to `shop_url`: for the tests that measure the server's memory.
/// On SQLite the writer's page cache (64 MiB by design) would fill with
/// report pages and hide what the server itself holds. The database is
/// dropped with the returned `PgDb`.
pub fn pg_vault_with_shop(
    admin: &str,
    name: &str,
    shop_text: &str,
    shop_url: &str,
) -> (Vault, PgDb) {
    let scratch = Scratch::new(name);
    let policy = scratch.write("policy.toml", &format!("{}{shop_text}", reference_text()));
    let vault_db = PgDb::create(admin);
    let server = Server::start_with_env(
        &[
            "--data-dir",
            &scratch.arg("data"),
            "--database-url",
            &vault_db.url,
            "--policy",
            policy.to_str().unwrap(),
        ],
        &[("CUSTODIAN_CONNECTION_SHOP_PG", shop_url)],
    );
    let admin_key = server.admin_key.clone().unwrap();
    let v = Vault {
        server,
        admin: admin_key,
        scratch,
        database: None,
    };
    (v, vault_db)
}

pub fn person(i: u64) -> Value {
    json!({
        "purpose": "account-management",
        "source": {"channel": "web"},
        "data": {"full_name": format!("Person {i}"), "email": email(i)},
    })
}

pub fn start(sys: &Systems, extra: &[&str]) -> Vault {
    let scratch = Scratch::new("connectors");
    let data = scratch.arg("data");
    let server = sys.server(&scratch, &data, extra);
    let admin = server.admin_key.clone().unwrap();
    Vault {
        server,
        admin,
        scratch,
        database: None,
    }
}

#[test]
fn access_and_erasure_reach_postgres_mariadb_and_redis_with_every_strategy() {
    let Some(sys) = systems("connectors end-to-end") else {
        return;
    };
    sys.seed(3);
    let v = start(&sys, &[]);
    collect(&v.server, &v.admin, &person(2));
    let a = agent(&v);

    // Access: the vault and each system, with categories, nobody else's rows.
    let request = submit(&v, &a, "access", &email(2));
    let done = finished(&v, &request);
    assert_eq!(done["state"], "completed", "{done}");
    let tasks = done["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 4, "{done}");
    assert!(tasks.iter().all(|t| t["state"] == "done"), "{done}");
    let report = v
        .server
        .get(&format!("/v1/requests/{request}/report"), Some(&v.admin))
        .json();
    assert_eq!(report["data"].as_array().unwrap().len(), 2, "{report}");
    let systems = report["systems"].as_array().unwrap();
    assert_eq!(systems.len(), 3, "{report}");
    for dataset in ["shop-pg", "shop-maria"] {
        let s = systems.iter().find(|s| s["dataset"] == dataset).unwrap();
        let table = |name: &str| {
            s["tables"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["table"] == name)
                .unwrap_or_else(|| panic!("{dataset}.{name} missing: {s}"))
                .clone()
        };
        let customers = table("customers");
        assert_eq!(customers["columns"][1]["category"], "email", "{customers}");
        assert_eq!(
            customers["rows"].as_array().unwrap().len(),
            1,
            "{customers}"
        );
        assert_eq!(customers["rows"][0][1], email(2));
        let orders = table("orders");
        assert_eq!(orders["rows"].as_array().unwrap().len(), 3, "{orders}");
        assert_eq!(orders["columns"][1]["category"], "orders.order_total");
        assert_eq!(table("carts")["rows"].as_array().unwrap().len(), 1);
        assert_eq!(s["rows"], 5, "{s}");
    }
    let sessions = systems.iter().find(|s| s["dataset"] == "sessions").unwrap();
    // Two sessions of two fields each, and the profile's four fields.
    assert_eq!(sessions["rows"], 8, "{sessions}");
    let text = report.to_string();
    for other in [email(1), email(3), "Person 1".into(), "nick3".into()] {
        assert!(!text.contains(&other), "another person's data: {other}");
    }

    // Erasure: every strategy, in every system, for this person only.
    let before = sys.snapshot();
    let request = submit(&v, &a, "erasure", &email(2));
    let done = finished(&v, &request);
    assert_eq!(done["state"], "partially-completed", "{done}");
    let kept: Vec<&str> = done["outcome"]["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["field"].as_str().unwrap())
        .collect();
    for field in [
        "shop-pg.orders.customer_id",
        "shop-pg.orders.total",
        "shop-maria.orders.total",
    ] {
        assert!(kept.contains(&field), "{field} not listed as kept: {done}");
    }
    let ground = done["outcome"]["kept"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["field"] == "shop-maria.orders.total")
        .unwrap()["ground"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ground.contains("Companies Act 2006"), "{ground}");
    let after = sys.snapshot();
    for (db, rows, was) in [("pg", &after.0, &before.0), ("maria", &after.1, &before.1)] {
        assert_eq!(rows.len(), 3, "{db}: customers are kept, their data erased");
        let erased = &rows[1];
        assert_eq!(erased[1], None, "{db}: email set to null");
        assert_eq!(erased[2].as_deref(), Some("erased"), "{db}: name replaced");
        let phone = erased[3].clone().unwrap();
        assert!(
            phone.starts_with("h:") && phone.len() == 66,
            "{db}: {phone}"
        );
        assert_eq!(erased[4].as_deref(), Some("3"), "{db}: orders kept");
        assert_eq!(erased[5].as_deref(), Some("0"), "{db}: cart deleted");
        assert_eq!(rows[0], was[0], "{db}: someone else changed");
        assert_eq!(rows[2], was[2], "{db}: someone else changed");
    }
    // The keyed hash is HMAC-SHA256 in both dialects: the same value for
    // the same key; the two datasets have keys of their own.
    assert_ne!(after.0[1][3], after.1[1][3]);
    let notes = sys
        .pg
        .rows("SELECT note, total::text FROM orders WHERE customer_id = 2");
    assert!(
        notes.iter().all(|r| r[0].is_none() && r[1].is_some()),
        "{notes:?}"
    );
    let notes = sys
        .my
        .rows("SELECT note, CAST(total AS CHAR) FROM orders WHERE customer_id = 2");
    assert!(
        notes.iter().all(|r| r[0].is_none() && r[1].is_some()),
        "{notes:?}"
    );
    let p = &sys.redis.prefix;
    let keys = sys.redis.keys();
    assert!(
        !keys
            .iter()
            .any(|k| k.contains(&format!(":session:{}", email(2)))),
        "{keys:?}"
    );
    assert_eq!(
        keys.iter().filter(|k| k.contains(":session:")).count(),
        4,
        "others' sessions stay: {keys:?}"
    );
    let profile = sys.redis.hash(&format!("{p}:profile:{}", email(2)));
    assert_eq!(profile["nickname"], "erased");
    assert!(profile["phone"].starts_with("h:"), "{profile:?}");
    assert_eq!(profile["loyalty"], "gold");
    assert!(!profile.contains_key("theme"), "{profile:?}");
    assert_eq!(
        sys.redis.hash(&format!("{p}:profile:{}", email(1)))["nickname"],
        "nick1"
    );
    // The vault's subject is erased too.
    let r = v.server.get(
        &format!("/v1/subjects?email={}&purpose=account-management", email(2)),
        Some(&v.admin),
    );
    assert_eq!(r.status, 404, "{}", r.body);

    // Idempotence: the same erasure again changes nothing more.
    let again = submit(&v, &a, "erasure", &email(2));
    let done = finished(&v, &again);
    assert!(
        done["state"] == "partially-completed" || done["state"] == "completed",
        "{done}"
    );
    for s in done["outcome"]["systems"].as_array().unwrap() {
        assert_eq!(s["rows"], 0, "a second erasure changed something: {done}");
    }
    assert_eq!(sys.snapshot(), after);
    // No credential or value of the person in the server's log.
    let log = v.server.log_text();
    assert!(!log.contains(&email(2)), "{log}");
    assert!(!log.contains(&sys.my.url), "{log}");
    assert!(!log.contains(&sys.pg.url), "{log}");
}

/// A loopback port that drops every connection until `open` is set, then
/// forwards to `target`: a system that is away, then back.
struct Flaky {
    port: u16,
    open: Arc<std::sync::atomic::AtomicBool>,
}

impl Flaky {
    fn start(target: &str) -> Flaky {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = open.clone();
        let target = target.to_string();
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                if !flag.load(std::sync::atomic::Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let pipe = |mut from: TcpStream, mut to: TcpStream| {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                };
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        Flaky { port, open }
    }
}

/// A system that is away shows what failed and why, does not hold up the
/// others, and is retried with backoff: the request completes once it is back.
#[test]
fn a_system_that_is_away_is_shown_retried_and_does_not_block_the_others() {
    let Some(mut sys) = systems("connectors end-to-end") else {
        return;
    };
    sys.seed(2);
    let flaky = Flaky::start("127.0.0.1:3306");
    let real = sys.my.url.clone();
    let (_, db) = real.rsplit_once('/').unwrap();
    sys.my.url = format!("mysql://root@127.0.0.1:{}/{db}", flaky.port);
    let v = start(&sys, &[]);
    sys.my.url = real;
    let a = agent(&v);
    let request = submit(&v, &a, "erasure", &email(1));
    let deadline = Instant::now() + Duration::from_secs(30);
    let view = loop {
        let r = v
            .server
            .get(&format!("/v1/requests/{request}"), Some(&v.admin))
            .json();
        let tasks = r["tasks"].as_array().cloned().unwrap_or_default();
        let others_done = tasks
            .iter()
            .filter(|t| t["system"] != "shop-maria")
            .all(|t| t["state"] == "done");
        let retrying = tasks
            .iter()
            .any(|t| t["system"] == "shop-maria" && t["last_error"].is_string());
        if (others_done && retrying) || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(view["state"], "in-progress", "{view}");
    let maria = view["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["system"] == "shop-maria")
        .unwrap()
        .clone();
    assert_eq!(maria["state"], "pending", "{maria}");
    let error = maria["last_error"].as_str().unwrap();
    assert!(
        error.starts_with("connector_unavailable: dataset `shop-maria`"),
        "{maria}"
    );
    assert!(!error.contains("root@"), "{error}");
    // The PostgreSQL shop was erased meanwhile.
    assert_eq!(
        sys.pg.rows("SELECT email FROM customers WHERE id = 1")[0][0],
        None
    );
    flaky.open.store(true, std::sync::atomic::Ordering::SeqCst);
    let done = finished(&v, &request);
    assert_eq!(done["state"], "partially-completed", "{done}");
    assert_eq!(
        sys.my.rows("SELECT email FROM customers WHERE id = 1")[0][0],
        None
    );
}

fn completions(db: &Path) -> std::collections::BTreeMap<String, i64> {
    let db = rusqlite::Connection::open(db).unwrap();
    let mut stmt = db
        .prepare(
            "SELECT reason, count(*) FROM audit WHERE action = 'request.complete' GROUP BY reason",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Erasures across PostgreSQL, MariaDB and Redis; the server is killed with
/// SIGKILL while it works through them and restarted: every request
/// completes exactly once and every system ends erased.
#[test]
fn erasures_across_the_systems_survive_a_crash_and_complete_once() {
    let Some(sys) = systems("connectors crash test") else {
        return;
    };
    let n = 40;
    sys.seed(n);
    let v = start(&sys, &["--task-lease-ms", "300"]);
    let data = v.scratch.arg("data");
    let a = agent(&v);
    let mut ids = Vec::new();
    for i in 1..=n {
        collect(&v.server, &v.admin, &person(i));
    }
    // Submitted back to back and killed at once: the kill falls among them.
    for i in 1..=n {
        ids.push(submit(&v, &a, "erasure", &email(i)));
    }
    let Vault {
        server,
        admin,
        scratch,
        ..
    } = v;
    server.kill();
    let before = completions(&Path::new(&data).join("custodian.db")).len();
    let _ = writeln!(
        std::io::stderr(),
        "connectors crash test: {before} of {} requests completed before the kill",
        ids.len()
    );
    let server = sys.server(&scratch, &data, &["--task-lease-ms", "300"]);
    let v = Vault {
        server,
        admin,
        scratch,
        database: None,
    };
    for id in &ids {
        let done = finished(&v, id);
        assert_eq!(done["state"], "partially-completed", "{done}");
    }
    let (pg, my, redis) = sys.snapshot();
    for rows in [&pg, &my] {
        assert_eq!(rows.len() as u64, n);
        for r in rows {
            assert_eq!(r[1], None, "{r:?}");
            assert_eq!(r[2].as_deref(), Some("erased"), "{r:?}");
            assert_eq!(r[5].as_deref(), Some("0"), "{r:?}");
        }
    }
    assert!(
        redis.iter().all(|(k, _)| k.contains(":profile:")),
        "{redis:?}"
    );
    assert!(redis.iter().all(|(_, h)| h["nickname"] == "erased"));
    assert_eq!(v.server.stop(), Some(0));
    let counts = completions(&Path::new(&data).join("custodian.db"));
    assert_eq!(counts.len(), ids.len(), "{counts:?}");
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
}

/// `datasets draft` reads a live schema into a declaration that loads;
/// `datasets check` and the server's start report the drift.
#[test]
fn a_draft_from_the_live_schema_and_the_drift_report() {
    let Some(sys) = systems("connectors drift") else {
        return;
    };
    sys.seed(1);
    let scratch = Scratch::new("drift");
    for (url, system) in [(&sys.pg.url, "postgres"), (&sys.my.url, "mysql")] {
        let out = run(&["datasets", "draft", "--database-url", url, "--id", "shop"]);
        let draft = text(&out.stdout);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(draft.contains(&format!("system = \"{system}\"")), "{draft}");
        assert!(
            draft.contains(
                "{ name = \"customer_id\", category = \"usage\", references = \"customers.id\" }"
            ),
            "{draft}"
        );
        assert!(draft.contains("identity = \"email\""), "{draft}");
        assert!(draft.contains("# guess"), "{draft}");
        assert!(
            !draft.contains("root@") && !draft.contains("postgres@"),
            "{draft}"
        );
        let policy = scratch.write("drafted.toml", &format!("{}\n{draft}", reference_text()));
        let out = run(&["policy", "check", policy.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    // The test's declaration leaves the surrogate ids out; then the schema
    // moves on: a column added, a declared one dropped.
    sys.pg
        .exec("ALTER TABLE customers ADD COLUMN birthday DATE");
    sys.pg.exec("ALTER TABLE orders DROP COLUMN note");
    sys.my
        .exec("ALTER TABLE carts ADD COLUMN coupon VARCHAR(20)");
    let policy = scratch.write("policy.toml", &policy(&sys.redis.prefix));
    let env = sys.env();
    let out = bin()
        .args(["datasets", "check", "--policy", policy.to_str().unwrap()])
        .envs(env.iter().map(|(a, b)| (a.as_str(), b.as_str())))
        .output()
        .unwrap();
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    for line in [
        "shop-pg: customers.birthday is not declared",
        "shop-pg: orders.note is declared but gone",
        "shop-pg: orders.id is not declared",
        "shop-maria: carts.coupon is not declared",
    ] {
        assert!(report.contains(line), "{line} missing: {report}");
    }
    assert!(!report.contains("shop-maria: orders.note"), "{report}");
    assert!(!report.contains(&sys.pg.url), "{report}");
    // The server says the same at start, as a warning, and starts.
    let data = scratch.arg("data");
    let server = sys.server(&scratch, &data, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server
        .log_text()
        .contains("customers.birthday is not declared")
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = server.log_text();
    assert!(
        log.contains("dataset drift: customers.birthday is not declared"),
        "{log}"
    );
    assert_eq!(server.stop(), Some(0));
}

/// A helpdesk API served by the test on loopback: users by email, their
/// tickets, deletion; a bearer token; its first answer is a 503.
struct Helpdesk {
    port: u16,
    users: Arc<Mutex<std::collections::BTreeMap<String, String>>>,
    calls: Arc<Mutex<Vec<String>>>,
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

impl Helpdesk {
    fn start() -> Helpdesk {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let users = Arc::new(Mutex::new(std::collections::BTreeMap::new()));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let (u, c) = (users.clone(), calls.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let (users, calls) = (u.clone(), c.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    let mut parts = line.split_whitespace();
                    let method = parts.next().unwrap_or_default().to_string();
                    let path = percent_decode(parts.next().unwrap_or_default());
                    let mut authorized = false;
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap() == 0 || h.trim().is_empty() {
                            break;
                        }
                        if h.to_ascii_lowercase().trim() == "authorization: bearer s3cret" {
                            authorized = true;
                        }
                    }
                    let first = {
                        let mut calls = calls.lock().unwrap();
                        calls.push(format!("{method} {path}"));
                        calls.len() == 1
                    };
                    let (status, body) = if first {
                        (503, String::new())
                    } else if !authorized {
                        (401, String::new())
                    } else {
                        let rest = path.strip_prefix("/users/").unwrap_or_default();
                        let (email, tickets) = match rest.strip_suffix("/tickets") {
                            Some(e) => (e.to_string(), true),
                            None => (rest.to_string(), false),
                        };
                        let mut users = users.lock().unwrap();
                        match (method.as_str(), users.get(&email).cloned(), tickets) {
                            (_, None, _) => (404, String::new()),
                            ("GET", Some(t), true) => (200, json!({"tickets": [t]}).to_string()),
                            ("GET", Some(_), false) => (200, json!({"email": email}).to_string()),
                            ("DELETE", Some(_), false) => {
                                users.remove(&email);
                                (204, String::new())
                            }
                            _ => (405, String::new()),
                        }
                    };
                    let mut stream = stream;
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        Helpdesk { port, users, calls }
    }
}

/// An HTTP system, reached by its resource's URL templates with the
/// configured token: access, erasure, and an erasure run again.
#[test]
fn an_http_system_is_reached_by_its_url_templates_with_its_token() {
    let helpdesk = Helpdesk::start();
    {
        let mut users = helpdesk.users.lock().unwrap();
        users.insert(email(1), "my camera will not focus".into());
        users.insert(email(2), "someone else's ticket".into());
    }
    let scratch = Scratch::new("http-dataset");
    let policy = scratch.write(
        "policy.toml",
        &format!(
            r#"{}
[[datasets]]
id = "helpdesk"
system = "http"
connection = "helpdesk"

[[datasets.resources]]
name = "tickets"
identity = "email"
category = "enquiries"
find = {{ url = "/users/{{email}}" }}
export = {{ url = "/users/{{email}}/tickets" }}
erase = {{ method = "DELETE", url = "/users/{{email}}" }}
"#,
            reference_text()
        ),
    );
    let base = format!("http://127.0.0.1:{}", helpdesk.port);
    let server = Server::start_with_env(
        &[
            "--data-dir",
            &scratch.arg("data"),
            "--policy",
            policy.to_str().unwrap(),
        ],
        &[
            ("CUSTODIAN_CONNECTION_HELPDESK", base.as_str()),
            ("CUSTODIAN_CONNECTION_HELPDESK_TOKEN", "s3cret"),
        ],
    );
    let admin = server.admin_key.clone().unwrap();
    let v = Vault {
        server,
        admin,
        scratch,
        database: None,
    };
    let a = agent(&v);
    let request = submit(&v, &a, "access", &email(1));
    let done = finished(&v, &request);
    assert_eq!(done["state"], "completed", "{done}");
    let report = v
        .server
        .get(&format!("/v1/requests/{request}/report"), Some(&v.admin))
        .json();
    let tickets = &report["systems"][0]["tables"][0];
    assert_eq!(tickets["table"], "tickets", "{report}");
    assert_eq!(tickets["columns"][0]["category"], "enquiries");
    assert!(
        tickets["rows"][0][0]
            .as_str()
            .unwrap()
            .contains("will not focus")
    );
    assert!(!report.to_string().contains("someone else"), "{report}");

    let request = submit(&v, &a, "erasure", &email(1));
    let done = finished(&v, &request);
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["outcome"]["systems"][0]["rows"], 1, "{done}");
    assert!(!helpdesk.users.lock().unwrap().contains_key(&email(1)));
    assert!(helpdesk.users.lock().unwrap().contains_key(&email(2)));
    let again = submit(&v, &a, "erasure", &email(1));
    let done = finished(&v, &again);
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["outcome"]["systems"][0]["rows"], 0, "{done}");
    let calls = helpdesk.calls.lock().unwrap().clone();
    assert_eq!(calls[0], calls[1], "the 503 was retried: {calls:?}");
    assert!(
        calls.contains(&format!("DELETE /users/{}", email(1))),
        "{calls:?}"
    );
    assert!(!v.server.log_text().contains("s3cret"));
}

/// The server's peak resident memory so far (VmHWM), in bytes.
pub fn peak_memory(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/<pid>/status");
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// A person with a million orders: the access request streams them into
/// the report, and the server's peak memory grows by far less than the
/// rows' size.
#[test]
fn a_million_rows_stream_under_a_memory_bound() {
    let Ok(admin) = std::env::var(PG_VAR) else {
        skip("connectors streaming", &format!("{PG_VAR} is not set"));
        return;
    };
    let pg = PgDb::create(&admin);
    for s in SCHEMA {
        pg.exec(s);
    }
    pg.exec(&seed_sql(1, 1)[0]);
    // A million orders of about 150 bytes each as JSON: 150 MB if gathered.
    pg.exec(
        "INSERT INTO orders (id, customer_id, total, note) \
         SELECT 100 + g, 1, g % 1000, repeat('n', 100) || g FROM generate_series(1, 1000000) g",
    );
    let (v, _vault_db) = pg_vault_with_shop(
        &admin,
        "stream",
        &shop("shop-pg", "postgres", "shop-pg"),
        &pg.url,
    );
    let a = agent(&v);
    // A small request first, so the baseline holds a warmed-up server.
    let small = submit(&v, &a, "access", &email(2));
    assert_eq!(finished(&v, &small)["state"], "completed");
    let before = peak_memory(v.server.pid());
    let request = submit(&v, &a, "access", &email(1));
    let deadline = Instant::now() + Duration::from_secs(600);
    let done = loop {
        let r = v
            .server
            .get(&format!("/v1/requests/{request}"), Some(&v.admin))
            .json();
        if r["state"] != "in-progress" || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(done["state"], "completed", "{done}");
    let shop = &done["outcome"]["systems"][0];
    // The customer and the million orders.
    assert_eq!(shop["rows"], 1 + 1_000_000, "{shop}");
    let parts = shop["parts"].as_u64().unwrap();
    assert!(parts >= 100, "{parts} parts for about 150 MB");
    let after = peak_memory(v.server.pid());
    let grown = after.saturating_sub(before);
    let _ = writeln!(
        std::io::stderr(),
        "streaming: {} rows in {parts} parts; peak memory {} MiB before, {} MiB after (+{} MiB)",
        1_000_001,
        before >> 20,
        after >> 20,
        grown >> 20
    );
    assert!(
        grown < 32 << 20,
        "the server's peak memory grew by {} MiB for about 150 MB of rows",
        grown >> 20
    );
}

/// A system that fails for good (here MariaDB's `carts` table is missing)
/// leaves the request in progress with the failure shown; once someone has
/// put it right, staff retry the failed task and the request completes.
#[test]
fn a_system_that_failed_for_good_is_retried_by_staff_once_it_is_fixed() {
    let Some(sys) = systems("connectors end-to-end") else {
        return;
    };
    sys.seed(2);
    sys.my.exec("DROP TABLE carts");
    let v = start(&sys, &[]);
    let a = agent(&v);
    let request = submit(&v, &a, "erasure", &email(1));
    let maria = |view: &Value| {
        view["tasks"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .find(|t| t["system"] == "shop-maria")
            .unwrap_or(Value::Null)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let view = loop {
        let r = v
            .server
            .get(&format!("/v1/requests/{request}"), Some(&v.admin))
            .json();
        if maria(&r)["state"] == "failed" || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(view["state"], "in-progress", "{view}");
    assert_eq!(maria(&view)["state"], "failed", "{view}");
    // Nothing was erased in MariaDB: its transaction rolled back whole.
    assert_eq!(
        sys.my.rows("SELECT email FROM customers WHERE id = 1")[0][0],
        Some(email(1))
    );
    let manage = |key: &str| {
        v.server.post(
            &format!("/v1/requests/{request}/manage"),
            Some(key),
            &json!({"action": "retry-failed"}),
        )
    };
    // Only staff who steer requests retry (the agent takes them in).
    assert_eq!(manage(&a).status, 403);
    sys.my.exec(
        "CREATE TABLE carts (id BIGINT PRIMARY KEY, customer_id BIGINT NOT NULL, items VARCHAR(200), FOREIGN KEY (customer_id) REFERENCES customers (id))",
    );
    sys.my
        .exec("INSERT INTO carts VALUES (1, 1, 'basket of 1'), (2, 2, 'basket of 2')");
    let r = manage(&v.admin);
    assert_eq!(r.status, 200, "{}", r.body);
    let done = finished(&v, &request);
    assert_eq!(done["state"], "partially-completed", "{done}");
    assert_eq!(maria(&done)["state"], "done", "{done}");
    assert_eq!(
        sys.my.rows("SELECT email FROM customers WHERE id = 1")[0][0],
        None
    );
    assert_eq!(
        sys.my
            .rows("SELECT CAST(count(*) AS CHAR) FROM carts WHERE customer_id = 1")[0][0],
        Some("0".to_string())
    );
    // Nothing is left to retry on a closed request.
    let r = manage(&v.admin);
    assert_eq!(r.status, 403, "{}", r.body);
    let audit = v.server.get("/v1/audit/verify", Some(&v.admin)).json();
    assert_eq!(audit["intact"], true, "{audit}");
}
