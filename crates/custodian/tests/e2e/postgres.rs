//! The same server on PostgreSQL, and two stateless nodes sharing one
//! database. Runs when `CUSTODIAN_TEST_POSTGRES_URL` names a server; in CI
//! (`CI=true`) its absence is a failure.

use super::vault::{ada, collect, open_account};
use super::*;
use serde_json::json;

const PG_VAR: &str = "CUSTODIAN_TEST_POSTGRES_URL";

/// A database of its own, dropped afterwards.
pub struct Database {
    admin: String,
    name: String,
    pub url: String,
}

impl Database {
    pub fn create() -> Option<Database> {
        let Ok(admin) = std::env::var(PG_VAR) else {
            skip("PostgreSQL end-to-end", &format!("{PG_VAR} is not set"));
            return None;
        };
        let name = format!(
            "custodian_e2e_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        sql(&admin, &format!("CREATE DATABASE {name}"));
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        Some(Database { admin, name, url })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        sql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

fn sql(url: &str, statement: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client.batch_execute(statement).await.unwrap();
    });
}

#[test]
fn two_nodes_share_one_postgres_database() {
    let Some(db) = Database::create() else { return };
    let scratch = Scratch::new("pg");
    // Both nodes use the same key file; the first creates it.
    let keys = scratch.arg("keys.toml");
    let first = Server::start(&[
        "--database-url",
        &db.url,
        "--key-file",
        &keys,
        "--data-dir",
        &scratch.arg("a"),
    ]);
    let admin = first
        .admin_key
        .clone()
        .expect("a fresh database prints an admin key");
    let second = Server::start(&[
        "--database-url",
        &db.url,
        "--key-file",
        &keys,
        "--data-dir",
        &scratch.arg("b"),
    ]);
    assert!(
        second.admin_key.is_none(),
        "only the first node makes the admin key"
    );
    assert_eq!(second.get("/readyz", None).json()["store"], "postgres");

    // Collected on one node, read on the other.
    let id = collect(&first, &admin, &ada());
    open_account(&second, &admin, &id);
    let r = second
        .get(
            &format!("/v1/subjects/{id}?purpose=account-management"),
            Some(&admin),
        )
        .json();
    assert_eq!(r["data"]["full_name"], "Ada Lovelace");
    let r = first
        .get(
            "/v1/subjects?email=ada.lovelace@example.org&purpose=postal-marketing",
            Some(&admin),
        )
        .json();
    assert_eq!(
        r["data"]["postal_address"],
        "12 St James's Square, London SW1Y 4JH"
    );

    // Both nodes write at once; the audit chain stays one chain.
    std::thread::scope(|s| {
        for (n, node) in [&first, &second].into_iter().enumerate() {
            let admin = admin.clone();
            s.spawn(move || {
                for i in 0..25 {
                    let mut body = ada();
                    body["data"] = json!({"full_name": format!("Node {n} person {i}"), "email": format!("n{n}p{i}@example.org")});
                    collect(node, &admin, &body);
                }
            });
        }
    });
    let v = first.get("/v1/audit/verify", Some(&admin)).json();
    assert_eq!(v["intact"], true, "{v}");
    // key + collect + relationship + read + lookup + 50 collections
    assert_eq!(v["entries"], 55);
    let conflict = second.post("/v1/subjects", Some(&admin), &ada());
    assert_eq!(conflict.status, 409);

    assert_eq!(first.stop(), Some(0));
    assert_eq!(second.stop(), Some(0));
    let out = run(&[
        "audit",
        "verify",
        "--database-url",
        &db.url,
        "--key-file",
        &keys,
    ]);
    // The 55 above and the audited refusal of the conflicting collection.
    assert!(
        text(&out.stdout).contains("intact: 56 entries"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn migrate_and_schema_checks_on_postgres() {
    let Some(db) = Database::create() else { return };
    let scratch = Scratch::new("pgmigrate");
    let keys = scratch.arg("keys.toml");
    let out = run(&["migrate", "--database-url", &db.url, "--key-file", &keys]);
    assert!(
        text(&out.stdout).contains("migrated from version 0 to 7"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let out = run(&["migrate", "--database-url", &db.url]);
    assert!(text(&out.stdout).contains("nothing to do"));
    sql(
        &db.url,
        "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
    );
    let out = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        &db.url,
        "--key-file",
        &keys,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("newer than this build"),
        "{}",
        text(&out.stderr)
    );
    assert!(!text(&out.stderr).contains("password"));
}

/// Rows of `(text, count)` from a query.
fn counts(url: &str, query: &str) -> Vec<(String, i64)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .query(query, &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
            .collect()
    })
}

/// Two nodes on one database take requests in and run their tasks: every
/// request completes, each exactly once, whichever node claimed it.
#[test]
fn two_nodes_run_each_task_exactly_once() {
    let Some(db) = Database::create() else { return };
    let scratch = Scratch::new("pgtasks");
    let keys = scratch.arg("keys.toml");
    let node = |dir: &str| {
        Server::start(&[
            "--database-url",
            &db.url,
            "--key-file",
            &keys,
            "--data-dir",
            &scratch.arg(dir),
            "--task-lease-ms",
            "500",
        ])
    };
    let first = node("a");
    let admin = first.admin_key.clone().unwrap();
    let second = node("b");
    let r = first.post("/v1/keys", Some(&admin), &json!({"role": "agent"}));
    let agent = r.json()["key"].as_str().unwrap().to_string();
    let mut ids = Vec::new();
    for i in 0..40 {
        let mut body = ada();
        let email = format!("two{i}@example.org");
        body["data"] = json!({"full_name": format!("Person {i}"), "email": email});
        collect(&first, &admin, &body);
        let node = if i % 2 == 0 { &first } else { &second };
        let r = node.post(
            "/v1/requests",
            Some(&agent),
            &json!({"kind": if i % 3 == 0 { "access" } else { "erasure" }, "email": email,
                    "identity": {"method": "security-questions", "evidence": "answered"}}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        ids.push(r.json()["id"].as_str().unwrap().to_string());
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    for id in &ids {
        loop {
            let r = second
                .get(&format!("/v1/requests/{id}"), Some(&admin))
                .json();
            if r["state"] == "completed" {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{r}");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    let v = first.get("/v1/audit/verify", Some(&admin)).json();
    assert_eq!(v["intact"], true, "{v}");
    assert_eq!(first.stop(), Some(0));
    assert_eq!(second.stop(), Some(0));
    let done = counts(
        &db.url,
        "SELECT reason, count(*) FROM audit WHERE action = 'request.complete' GROUP BY reason",
    );
    assert_eq!(done.len(), ids.len(), "{done:?}");
    assert!(done.iter().all(|(_, n)| *n == 1), "{done:?}");
}
