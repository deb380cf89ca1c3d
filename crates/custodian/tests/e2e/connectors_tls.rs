//! Datasets reached over TLS, on servers of the test's own (the machine's
//! shared servers are left as they are): a PostgreSQL cluster (see
//! `cluster`) and a MariaDB server in a temporary folder, each taking TLS
//! only over TCP, with a certificate the test makes. Verified against the
//! test's CA, a request reaches the dataset; a CA that did not issue the
//! certificate, or a name the certificate is not for, is refused with an
//! error that names the certificate and never holds the credentials.

use super::cluster::{Cluster, free_port, make_certificates};
use super::connectors::{SCHEMA, agent, email, finished, seed_sql, shop, submit};
use super::vault::Vault;
use super::*;
use mysql_async::prelude::Queryable;
use serde_json::Value;
use std::collections::BTreeMap;

/// The password in each dataset URL, which must never show.
const PASSWORD: &str = "hunter2-not-shown";

/// A server with the reference policy and `datasets`, each dataset's
/// connection set to its URL.
fn server_with(datasets: &[(&str, &str, String)], system: &str) -> Vault {
    let scratch = Scratch::new("connectors-tls");
    let mut policy = reference_text();
    let mut env = Vec::new();
    for (id, connection, url) in datasets {
        policy.push_str(&shop(id, system, connection));
        env.push((
            format!(
                "CUSTODIAN_CONNECTION_{}",
                connection.to_ascii_uppercase().replace('-', "_")
            ),
            url.clone(),
        ));
    }
    let policy = scratch.write("policy.toml", &policy);
    let env: Vec<(&str, &str)> = env.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let server = Server::start_with_env(
        &[
            "--data-dir",
            &scratch.arg("data"),
            "--policy",
            policy.to_str().unwrap(),
        ],
        &env,
    );
    let admin = server.admin_key.clone().unwrap();
    Vault {
        server,
        admin,
        scratch,
        database: None,
    }
}

/// An access request for shop customer 2 reaches `dataset`: the request
/// completes and the report holds the customer's row.
fn reaches(v: &Vault, dataset: &str) {
    let a = agent(v);
    let id = submit(v, &a, "access", &email(2));
    let done = finished(v, &id);
    assert_eq!(done["state"], "completed", "{done}");
    let report = v
        .server
        .get(&format!("/v1/requests/{id}/report"), Some(&v.admin))
        .json();
    let system = &report["systems"][0];
    assert_eq!(system["dataset"], dataset, "{report}");
    let customers = system["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "customers")
        .unwrap_or_else(|| panic!("no customers in {system}"));
    assert_eq!(customers["rows"][0][1], email(2), "{customers}");
    let log = v.server.log_text();
    assert!(!log.contains(PASSWORD), "{log}");
}

/// Submits an access request and waits (up to a minute) until each of
/// `datasets` has a task that failed at least once; their errors by dataset.
fn refusals(v: &Vault, datasets: &[&str]) -> BTreeMap<String, String> {
    let a = agent(v);
    let id = submit(v, &a, "access", &email(2));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r: Value = v
            .server
            .get(&format!("/v1/requests/{id}"), Some(&v.admin))
            .json();
        let errors: BTreeMap<String, String> = r["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| {
                Some((
                    t["system"].as_str()?.to_string(),
                    t["last_error"].as_str()?.to_string(),
                ))
            })
            .filter(|(s, _)| datasets.contains(&s.as_str()))
            .collect();
        if errors.len() == datasets.len() {
            assert_ne!(r["state"], "completed", "{r}");
            return errors;
        }
        assert!(Instant::now() < deadline, "no refusal shown: {r}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn assert_refused(errors: &BTreeMap<String, String>, dataset: &str, says: &[&str]) {
    let err = &errors[dataset];
    let _ = writeln!(std::io::stderr(), "refused as expected: {err}");
    for word in says {
        assert!(
            err.contains(word),
            "{dataset}: `{word}` missing from: {err}"
        );
    }
    assert!(!err.contains(PASSWORD), "{dataset}: {err}");
}

#[test]
fn a_postgres_dataset_over_verified_tls_is_reached_and_a_wrong_certificate_refused() {
    let Some(pg) = Cluster::start("PostgreSQL dataset over TLS (a cluster of the test's own)")
    else {
        return;
    };
    let setup = pg.socket_config();
    let mut sql: Vec<String> = SCHEMA.iter().map(|s| s.to_string()).collect();
    sql.extend(seed_sql(1, 3));
    block(async {
        let (client, conn) = tokio_postgres::connect(&setup, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        for s in &sql {
            client.batch_execute(s).await.unwrap();
        }
    });
    let password = |url: String| url.replacen("postgres@", &format!("postgres:{PASSWORD}@"), 1);
    let ca = pg.ca.to_str().unwrap();
    let other_ca = pg.other_ca.to_str().unwrap();

    let v = server_with(
        &[(
            "shop-pg",
            "shop-pg",
            password(pg.url(
                "localhost",
                &format!("sslmode=verify-full&sslrootcert={ca}"),
            )),
        )],
        "postgres",
    );
    reaches(&v, "shop-pg");
    drop(v);

    let v = server_with(
        &[
            (
                "shop-other-ca",
                "other-ca",
                password(pg.url(
                    "localhost",
                    &format!("sslmode=verify-full&sslrootcert={other_ca}"),
                )),
            ),
            (
                "shop-other-name",
                "other-name",
                password(pg.url(
                    "db.example.org",
                    &format!("sslmode=verify-full&sslrootcert={ca}"),
                )),
            ),
        ],
        "postgres",
    );
    let errors = refusals(&v, &["shop-other-ca", "shop-other-name"]);
    assert_refused(
        &errors,
        "shop-other-ca",
        &["TLS", "certificate", "UnknownIssuer"],
    );
    assert_refused(
        &errors,
        "shop-other-name",
        &["TLS", "certificate", "not valid for name"],
    );
    let log = v.server.log_text();
    assert!(!log.contains(PASSWORD), "{log}");
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A MariaDB server of the test's own: `mariadb-install-db` in a temporary
/// folder, `mariadbd` on a free port of 127.0.0.1 with a certificate for
/// `localhost` only, TLS required over TCP. Stopped (the process it
/// started, by its handle) and removed on drop.
struct Mariadb {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Mariadb {
    fn start(suite: &str) -> Option<Mariadb> {
        if std::env::var("CUSTODIAN_TEST_MARIADB_URL").is_err() {
            skip(suite, "CUSTODIAN_TEST_MARIADB_URL is not set");
            return None;
        }
        let found = |name: &str| {
            Command::new("sh")
                .args([
                    "-c",
                    &format!("command -v {name} || test -x /usr/sbin/{name}"),
                ])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !found("mariadbd") || !found("mariadb-install-db") {
            skip(suite, "mariadbd or mariadb-install-db was not found");
            return None;
        }
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| text(&o.stdout).trim() == "0");
        if root
            && !Command::new("id")
                .arg("mysql")
                .output()
                .is_ok_and(|o| o.status.success())
        {
            skip(suite, "running as root and there is no mysql user");
            return None;
        }
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("custodian-maria-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        make_certificates(&dir, &["localhost"]);
        let mut server = Mariadb {
            port: free_port(),
            dir,
            child: None,
        };
        let d = server.dir.display().to_string();
        let user: &[&str] = if root { &["--user=mysql"] } else { &[] };
        if root {
            let ok = Command::new("chown")
                .args(["-R", "mysql:mysql"])
                .arg(&server.dir)
                .status()
                .unwrap();
            assert!(ok.success(), "chown of the server's folder failed");
        }
        let out = Command::new("mariadb-install-db")
            .args([
                "--no-defaults",
                &format!("--datadir={d}/data"),
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ])
            .args(user)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mariadb-install-db failed: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let log = std::fs::File::create(server.dir.join("server.log")).unwrap();
        let child = Command::new("mariadbd")
            .args([
                "--no-defaults".to_string(),
                format!("--datadir={d}/data"),
                format!("--port={}", server.port),
                "--bind-address=127.0.0.1".into(),
                format!("--socket={d}/sock"),
                format!("--pid-file={d}/pid"),
                format!("--ssl-cert={d}/server.crt"),
                format!("--ssl-key={d}/server.key"),
                format!("--ssl-ca={d}/ca.pem"),
                "--require-secure-transport=ON".into(),
                "--skip-log-bin".into(),
                "--innodb-buffer-pool-size=16M".into(),
            ])
            .args(user)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        server.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = std::fs::read_to_string(server.dir.join("server.log")).unwrap_or_default();
            if log.contains("ready for connections") {
                break;
            }
            assert!(Instant::now() < deadline, "mariadbd did not start:\n{log}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(server)
    }

    /// Runs `sql` as root over the server's Unix socket (no TLS there).
    fn exec(&self, sql: &[String]) {
        let url = format!("mysql://root@localhost/?socket={}/sock", self.dir.display());
        block(async {
            let pool = mysql_async::Pool::new(url.as_str());
            let mut conn = pool.get_conn().await.unwrap();
            for s in sql {
                conn.query_drop(s).await.unwrap();
            }
            drop(conn);
            pool.disconnect().await.unwrap();
        });
    }

    /// The `shop` database as its user, over TCP to `host`, with `query`.
    fn url(&self, host: &str, query: &str) -> String {
        format!(
            "mysql://shop:{PASSWORD}@{host}:{}/shop?prefer_socket=false&{query}",
            self.port
        )
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_mariadb_dataset_over_verified_tls_is_reached_and_a_wrong_certificate_refused() {
    let Some(my) = Mariadb::start("MariaDB dataset over TLS (a server of the test's own)") else {
        return;
    };
    let mut sql = vec![
        "CREATE DATABASE shop".to_string(),
        format!("CREATE USER 'shop'@'%' IDENTIFIED BY '{PASSWORD}'"),
        "GRANT ALL ON shop.* TO 'shop'@'%'".to_string(),
        "USE shop".to_string(),
    ];
    sql.extend(SCHEMA.iter().map(|s| s.to_string()));
    sql.extend(seed_sql(1, 3));
    my.exec(&sql);
    let ca = my.dir.join("ca.pem");
    let other_ca = my.dir.join("other-ca.pem");

    // The server refuses TCP without TLS (`shop-plain` below): a request
    // that reaches the dataset went over TLS.
    let v = server_with(
        &[(
            "shop-maria",
            "shop-maria",
            my.url("localhost", &format!("ssl_ca={}", ca.display())),
        )],
        "mysql",
    );
    reaches(&v, "shop-maria");
    drop(v);

    let v = server_with(
        &[
            (
                "shop-other-ca",
                "other-ca",
                my.url("localhost", &format!("ssl_ca={}", other_ca.display())),
            ),
            (
                "shop-other-name",
                "other-name",
                my.url("127.0.0.1", &format!("ssl_ca={}", ca.display())),
            ),
            (
                "shop-plain",
                "plain",
                my.url("localhost", "require_ssl=false"),
            ),
        ],
        "mysql",
    );
    let errors = refusals(&v, &["shop-other-ca", "shop-other-name", "shop-plain"]);
    assert_refused(&errors, "shop-other-ca", &["certificate", "UnknownIssuer"]);
    assert_refused(
        &errors,
        "shop-other-name",
        &["certificate", "not valid for name"],
    );
    assert_refused(&errors, "shop-plain", &["MariaDB/MySQL"]);
    let log = v.server.log_text();
    assert!(!log.contains(PASSWORD), "{log}");
}
