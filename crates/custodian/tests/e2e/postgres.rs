//! The same server on PostgreSQL, and two stateless nodes sharing one
//! database. Runs when `CUSTODIAN_TEST_POSTGRES_URL` names a server; in CI
//! (`CI=true`) its absence is a failure.

use super::vault::{ada, collect, open_account};
use super::*;
use serde_json::json;

const PG_VAR: &str = "CUSTODIAN_TEST_POSTGRES_URL";

/// A database of its own, dropped afterwards.
struct Database {
    admin: String,
    name: String,
    url: String,
}

impl Database {
    fn create() -> Option<Database> {
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
        text(&out.stdout).contains("migrated from version 0 to 6"),
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
