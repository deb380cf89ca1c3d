//! Retention end to end through the real server and CLI: a legal hold that
//! keeps data through an erasure request (which says what was kept and
//! why) until it is released; the sweep by hand and its dry run; the
//! published notice, which says data is erased automatically only when the
//! sweep runs; and two nodes on one PostgreSQL sweeping at once without
//! erasing anything twice. The clock is the real one here: data falls due
//! because its relationship ended years ago (the engine's unit tests inject
//! the clock).

use super::postgres::{Database, count};
use super::vault::{ada, collect, vault};
use super::*;
use serde_json::{Value, json};

/// A subject whose username is due now: its account ended ten years ago.
fn expired_account(server: &Server, key: &str, name: &str) -> String {
    let id = collect(
        server,
        key,
        &json!({"purpose": "account-management", "data": {"username": name}}),
    );
    let r = server.post(
        &format!("/v1/subjects/{id}/relationships"),
        Some(key),
        &json!({"kind": "account", "status": "ended",
                "started_at": "2014-01-01T00:00:00Z", "ended_at": "2016-01-01T00:00:00Z"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    id
}

fn finished(server: &Server, key: &str, id: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = server.get(&format!("/v1/requests/{id}"), Some(key)).json();
        if r["state"] != "in-progress" || std::time::Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn a_hold_keeps_data_through_an_erasure_request_until_released_then_the_sweep_erases_it() {
    let v = vault(&[]);
    let s = &v.server;
    let id = collect(s, &v.admin, &ada());
    let r = s.post(
        "/v1/retention/holds",
        Some(&v.admin),
        &json!({"scope": "subject", "target": id, "reason": "claim 2026-114 before the county court"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let hold = r.json()["id"].as_str().unwrap().to_string();

    // An erasure request while the hold lasts: kept, and the answer says why.
    let r = s.post("/v1/keys", Some(&v.admin), &json!({"role": "agent"}));
    let agent = r.json()["key"].as_str().unwrap().to_string();
    let r = s.post(
        "/v1/requests",
        Some(&agent),
        &json!({"kind": "erasure", "email": "ada.lovelace@example.org",
                "identity": {"method": "security-questions", "evidence": "answered two questions"}}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let request = r.json()["id"].as_str().unwrap().to_string();
    let done = finished(s, &v.admin, &request);
    assert_eq!(done["state"], "partially-completed", "{done}");
    let kept = done["outcome"]["kept"].as_array().unwrap();
    assert_eq!(kept.len(), 5, "{done}");
    for k in kept {
        let ground = k["ground"].as_str().unwrap();
        assert!(ground.contains(&format!("legal hold {hold}")), "{ground}");
        assert!(ground.contains("county court"), "{ground}");
    }

    // Another subject's data is due; the dry run says so and erases nothing.
    let due = expired_account(s, &v.admin, "old-account");
    let data = v.scratch.arg("data");
    let out = run(&["retention", "run", "--dry-run", "--data-dir", &data]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("dry run: 1 data due"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("batch 1:"),
        "{}",
        text(&out.stderr)
    );
    let r = s.get(
        &format!("/v1/subjects/{due}?purpose=account-management"),
        Some(&v.admin),
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // The report lists the hold.
    let report = s
        .get("/v1/retention/report?within=30d", Some(&v.admin))
        .json();
    assert_eq!(report["holds"][0]["id"], hold.as_str(), "{report}");
    assert_eq!(report["sweep_scheduled"], true, "{report}");

    // Released: the sweep erases what the erasure request had to keep.
    let r = s.post(
        &format!("/v1/retention/holds/{hold}/release"),
        Some(&v.admin),
        &json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s.request("POST", "/v1/retention/run", Some(&v.admin), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let summary = r.json();
    assert_eq!(summary["data_erased"], 6, "{summary}");
    assert_eq!(summary["subjects_shredded"], 2, "{summary}");
    for subject in [&id, &due] {
        let r = s.get(
            &format!("/v1/subjects/{subject}?purpose=account-management"),
            Some(&v.admin),
        );
        assert_eq!(r.status, 410, "{}", r.body);
    }
    let audit = s.get("/v1/audit/verify", Some(&v.admin)).json();
    assert_eq!(audit["intact"], true, "{audit}");

    // Marking a rule reviewed is audited; an unknown one is 404.
    let r = s.post(
        "/v1/retention/rules/feedback-1y/reviewed",
        Some(&v.admin),
        &json!({"note": "still needed"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s.post(
        "/v1/retention/rules/nope/reviewed",
        Some(&v.admin),
        &json!({}),
    );
    assert_eq!(r.status, 404, "{}", r.body);
    let out = run(&["retention", "report", "--within", "1y", "--data-dir", &data]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Rules due for review"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn the_notice_says_data_is_erased_automatically_only_when_the_sweep_runs() {
    let on = vault(&[]);
    let notice = on.server.get("/privacy.md", None).body;
    assert!(notice.contains("erased automatically"), "{notice}");
    drop(on);
    let off = vault(&["--retention-sweep-interval", "0"]);
    let notice = off.server.get("/privacy.md", None).body;
    assert!(!notice.contains("erased automatically"), "{notice}");
    assert!(notice.contains("we erase it"), "{notice}");
    let report = off
        .server
        .get("/v1/retention/report", Some(&off.admin))
        .json();
    assert_eq!(report["sweep_scheduled"], false, "{report}");
    let policy = reference();
    let policy = policy.to_str().unwrap();
    let out = run(&["policy", "render", policy]);
    assert!(text(&out.stdout).contains("erased automatically"));
    let out = run(&["policy", "render", policy, "--without-retention-sweep"]);
    assert!(!text(&out.stdout).contains("erased automatically"));
}

#[test]
fn two_nodes_on_one_postgres_sweep_at_once_and_erase_each_datum_once() {
    let Some(db) = Database::create() else { return };
    let scratch = Scratch::new("pgsweep");
    let keys = scratch.arg("keys.toml");
    let node = |dir: &str| {
        Server::start(&[
            "--database-url",
            &db.url,
            "--key-file",
            &keys,
            "--data-dir",
            &scratch.arg(dir),
            "--retention-sweep-interval",
            "0",
        ])
    };
    let first = node("a");
    let admin = first.admin_key.clone().expect("an admin key");
    let second = node("b");
    let subjects: Vec<String> = (0..40)
        .map(|i| expired_account(&first, &admin, &format!("user-{i}")))
        .collect();
    // Both nodes sweep at once, several times: each run either sweeps or
    // is told another is running (409); none erases what another did.
    let mut answers = Vec::new();
    std::thread::scope(|s| {
        let runs: Vec<_> = [&first, &second, &first, &second]
            .into_iter()
            .map(|n| {
                let admin = admin.clone();
                s.spawn(move || n.request("POST", "/v1/retention/run", Some(&admin), None))
            })
            .collect();
        for r in runs {
            answers.push(r.join().unwrap());
        }
    });
    let mut erased = 0;
    for r in &answers {
        match r.status {
            200 => erased += r.json()["data_erased"].as_i64().unwrap(),
            409 => assert_eq!(r.json()["code"], "sweep_running", "{}", r.body),
            other => panic!("{other}: {}", r.body),
        }
    }
    // Whatever the interleaving, once more settles what is left.
    let r = second.request("POST", "/v1/retention/run", Some(&admin), None);
    assert_eq!(r.status, 200, "{}", r.body);
    erased += r.json()["data_erased"].as_i64().unwrap();
    assert_eq!(erased, 40);
    assert_eq!(
        count(
            &db.url,
            "SELECT count(*) FROM audit WHERE action = 'retention.erase'"
        ),
        40
    );
    assert_eq!(
        count(
            &db.url,
            "SELECT count(DISTINCT subject_id) FROM audit WHERE action = 'retention.erase'"
        ),
        40
    );
    for id in &subjects {
        let r = first.get(
            &format!("/v1/subjects/{id}?purpose=account-management"),
            Some(&admin),
        );
        assert_eq!(r.status, 410, "{}", r.body);
    }
    assert_eq!(
        first.get("/v1/audit/verify", Some(&admin)).json()["intact"],
        true
    );
    assert_eq!(first.stop(), Some(0));
    assert_eq!(second.stop(), Some(0));
}
