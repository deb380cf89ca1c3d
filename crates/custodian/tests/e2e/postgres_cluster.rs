//! PostgreSQL over TLS, and through a restart, on a cluster of the test's
//! own (see `cluster`): `sslmode=verify-full` with the test's CA works, a
//! certificate that does not match is refused with a clear error, and while
//! the database restarts every request is answered 2xx or 503 with
//! `Retry-After`, never 500.

use super::cluster::Cluster;
use super::vault::{ada, collect, open_account};
use super::*;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};

/// A password the cluster does not need (trust), which must never show.
const PASSWORD: &str = "hunter2-not-shown";

fn with_password(url: &str) -> String {
    url.replacen("postgres@", &format!("postgres:{PASSWORD}@"), 1)
}

#[test]
fn tls_verify_full_works_and_a_certificate_that_does_not_match_is_refused() {
    let Some(pg) = Cluster::start("PostgreSQL TLS (a cluster of the test's own)") else {
        return;
    };
    let scratch = Scratch::new("pgtls");
    let keys = scratch.arg("keys.toml");
    let ca = pg.ca.to_str().unwrap();

    // verify-full against the test's CA, root certificate in the URL.
    let url = with_password(&pg.url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ));
    let out = run(&["migrate", "--database-url", &url, "--key-file", &keys]);
    assert!(
        text(&out.stdout).contains("migrated from version 0 to 7"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    // The server, root certificate as a setting; 127.0.0.1 is in the
    // certificate too. It writes and reads.
    let server = Server::start_with_env(
        &[
            "--database-url",
            &with_password(&pg.url("127.0.0.1", "sslmode=verify-full")),
            "--key-file",
            &keys,
            "--data-dir",
            &scratch.arg("data"),
        ],
        &[("CUSTODIAN_DATABASE_ROOT_CERT", ca)],
    );
    let admin = server
        .admin_key
        .clone()
        .expect("a fresh database prints an admin key");
    let id = collect(&server, &admin, &ada());
    open_account(&server, &admin, &id);
    let r = server.get(
        &format!("/v1/subjects/{id}?purpose=account-management"),
        Some(&admin),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["data"]["full_name"], "Ada Lovelace");
    let log = server.log_text();
    assert!(!log.contains(PASSWORD), "{log}");
    assert!(log.contains("sslmode=verify-full"), "{log}");
    assert_eq!(server.stop(), Some(0));

    // Refused: a CA that did not issue the certificate; a host name the
    // certificate is not for. Each error names the certificate, not the
    // password.
    let other_ca = pg.other_ca.to_str().unwrap();
    for (url, why, says) in [
        (
            pg.url(
                "localhost",
                &format!("sslmode=verify-full&sslrootcert={other_ca}"),
            ),
            "another CA",
            "UnknownIssuer",
        ),
        (
            pg.url(
                "db.example.org",
                &format!("sslmode=verify-full&sslrootcert={ca}"),
            ),
            "another host name",
            "not valid for name",
        ),
    ] {
        let out = run(&[
            "migrate",
            "--database-url",
            &with_password(&url),
            "--key-file",
            &keys,
        ]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{why}: {err}");
        assert!(
            err.contains("TLS") && err.contains("certificate") && err.contains(says),
            "{why}: {err}"
        );
        assert!(!err.contains(PASSWORD), "{why}: {err}");
    }

    // verify-ca checks the chain and not the name; require checks neither;
    // disable is refused by the server, which takes TLS only.
    for (query, works) in [
        (format!("sslmode=verify-ca&sslrootcert={ca}"), true),
        ("sslmode=require".to_string(), true),
        (format!("sslmode=verify-ca&sslrootcert={other_ca}"), false),
        ("sslmode=disable".to_string(), false),
    ] {
        let url = pg.url("db.example.org", &query);
        let out = run(&["migrate", "--database-url", &url, "--key-file", &keys]);
        assert_eq!(
            out.status.success(),
            works,
            "{query}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
}

/// Waits, up to a bound, until the server's log holds `needle`.
fn wait_for_log(server: &Server, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = server.log_text();
        if log.contains(needle) || Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_database_restart_answers_503_with_retry_after_never_500() {
    let Some(pg) = Cluster::start("PostgreSQL restart (a cluster of the test's own)") else {
        return;
    };
    let scratch = Scratch::new("pgrestart");
    let ca = pg.ca.to_str().unwrap();
    let server = Server::start(&[
        "--database-url",
        &pg.url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ),
        "--key-file",
        &scratch.arg("keys.toml"),
        "--data-dir",
        &scratch.arg("data"),
        "--rate-limit-per-key",
        "0",
        "--rate-limit-per-ip",
        "0",
    ]);
    let admin = server
        .admin_key
        .clone()
        .expect("a fresh database prints an admin key");
    let id = collect(&server, &admin, &ada());
    open_account(&server, &admin, &id);

    // Reads (each also writes its audit entry) and collections, from four
    // clients, before, during and after a fast restart.
    let stop = AtomicBool::new(false);
    let answers: Mutex<Vec<(u16, Option<String>, String)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for client in 0..4 {
            let (server, admin, id, stop, answers) = (&server, &admin, &id, &stop, &answers);
            s.spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let r = if i % 2 == 0 {
                        server.get(
                            &format!("/v1/subjects/{id}?purpose=account-management"),
                            Some(admin),
                        )
                    } else {
                        let mut body = ada();
                        body["data"] = json!({
                            "full_name": format!("Client {client} person {i}"),
                            "email": format!("c{client}p{i}@example.org"),
                        });
                        server.post("/v1/subjects", Some(admin), &body)
                    };
                    let retry = r.header("retry-after").map(str::to_string);
                    answers.lock().unwrap().push((r.status, retry, r.body));
                }
            });
        }
        std::thread::sleep(Duration::from_millis(500));
        pg.restart();
        // Requests go on for a while after the database is back.
        std::thread::sleep(Duration::from_millis(1500));
        stop.store(true, Ordering::Relaxed);
    });

    let answers = answers.into_inner().unwrap();
    let unavailable: Vec<_> = answers.iter().filter(|(s, _, _)| *s == 503).collect();
    let wrong: Vec<_> = answers
        .iter()
        .filter(|(s, _, _)| !(200..300).contains(s) && *s != 503)
        .collect();
    assert!(
        wrong.is_empty(),
        "answers other than 2xx and 503: {wrong:?}"
    );
    for (_, retry, body) in &unavailable {
        assert!(retry.is_some(), "a 503 without Retry-After: {body}");
        let problem: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(problem["code"], "store_unavailable", "{body}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "restart under load: {} answers, {} of them 503",
        answers.len(),
        unavailable.len()
    );

    // Back: reads and writes work again.
    let r = server.get(
        &format!("/v1/subjects/{id}?purpose=account-management"),
        Some(&admin),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let mut body = ada();
    body["data"] = json!({"full_name": "After", "email": "after@example.org"});
    collect(&server, &admin, &body);
    let v = server.get("/v1/audit/verify", Some(&admin)).json();
    assert_eq!(v["intact"], true, "{v}");

    // The log says once that the store went away and once that it came
    // back, whatever the number of requests in between.
    let log = wait_for_log(&server, "came back");
    assert_eq!(log.matches("went away").count(), 1, "{log}");
    assert_eq!(log.matches("came back").count(), 1, "{log}");
    // Nor once per pooled connection.
    assert!(!log.contains("could not be recycled"), "{log}");
    assert_eq!(server.stop(), Some(0));
}
