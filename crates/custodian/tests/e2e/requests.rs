//! Data-subject requests end to end through the real server: intake by a
//! call-centre agent who checked the caller's identity, the durable task
//! that carries each right out in the vault, and what every later read,
//! lookup and check answers.

use super::vault::{Backend, Vault, ada, collect, open_account, vault_on};
use serde_json::{Value, json};
use std::io::Write as _;

both_stores!(
    an_access_request_reports_everything_held_and_nothing_of_anyone_else,
    an_erasure_shreds_the_subject_and_every_later_answer_says_so,
    rectification_restriction_and_objection_change_what_reads_answer,
    wrong_transitions_are_refused_and_the_clock_moves_with_pauses_and_extensions,
    a_portability_archive_holds_json_and_csv,
    only_the_dpo_overrides_an_objection_and_never_one_to_direct_marketing,
);

both_stores!(by backend:
    a_code_by_email_verifies_and_the_session_follows_only_its_own_requests,
    too_many_wrong_codes_lock_the_request,
    a_code_sent_again_replaces_the_first,
    a_request_never_verified_expires,
    lifting_a_restriction_tells_the_person_first_and_an_opt_out_stops_marketing,
);

fn agent(v: &Vault) -> String {
    let r = v
        .server
        .post("/v1/keys", Some(&v.admin), &json!({"role": "agent"}));
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["key"].as_str().unwrap().to_string()
}

/// Submits a request the agent verified on the phone.
fn submit(v: &Vault, key: &str, body: Value) -> String {
    let mut body = body;
    body["identity"] =
        json!({"method": "security-questions", "evidence": "answered two security questions"});
    let r = v.server.post("/v1/requests", Some(key), &body);
    assert_eq!(r.status, 201, "{}", r.body);
    let view = r.json();
    assert_eq!(view["state"], "in-progress", "{view}");
    assert!(view["due"].is_string(), "{view}");
    view["id"].as_str().unwrap().to_string()
}

/// The request once its task has run: the server answers when it settles
/// (`wait_ms`), within ten seconds.
fn finished(v: &Vault, id: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = v
            .server
            .get(&format!("/v1/requests/{id}?wait_ms=10000"), Some(&v.admin))
            .json();
        let state = r["state"].as_str().unwrap_or_default().to_string();
        if state != "in-progress" || std::time::Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn an_access_request_reports_everything_held_and_nothing_of_anyone_else(v: Vault) {
    let s = &v.server;
    let id = collect(s, &v.admin, &ada());
    open_account(s, &v.admin, &id);
    let mut other = ada();
    other["data"] = json!({"full_name": "Charles Babbage", "email": "charles@example.org"});
    collect(s, &v.admin, &other);
    let a = agent(&v);
    let request = submit(
        &v,
        &a,
        json!({"kind": "access", "email": "ada.lovelace@example.org"}),
    );
    let done = finished(&v, &request);
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["outcome"]["found"], true);
    assert_eq!(done["tasks"][0]["state"], "done", "{done}");
    // The agent follows the register but does not read reports.
    let r = s.get(&format!("/v1/requests/{request}/report"), Some(&a));
    assert_eq!(r.status, 403, "{}", r.body);
    let report = s
        .get(&format!("/v1/requests/{request}/report"), Some(&v.admin))
        .json();
    let data = report["data"].as_array().unwrap();
    let value = |field: &str| {
        data.iter()
            .find(|d| d["field"] == field)
            .map(|d| d["value"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(value("full_name"), "Ada Lovelace");
    assert_eq!(value("email"), "Ada.Lovelace@example.org");
    assert_eq!(value("username"), "countess-of-lovelace");
    assert_eq!(data.len(), 5, "{report}");
    for d in data {
        assert_eq!(d["provenance"]["purpose"], "account-management", "{d}");
        assert_eq!(d["provenance"]["source"], "web", "{d}");
    }
    assert_eq!(report["relationships"][0]["kind"], "account");
    let statement = report["statement"].as_str().unwrap();
    for must in ["Information Commissioner", "erasure", "restriction"] {
        assert!(statement.contains(must), "{must} missing: {statement}");
    }
    let html = s.get(
        &format!("/v1/requests/{request}/report.html"),
        Some(&v.admin),
    );
    assert_eq!(html.status, 200);
    assert!(
        html.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(html.header("cache-control"), Some("no-store"));
    assert!(html.body.contains("Ada Lovelace"));
    assert!(
        !html.body.contains("Babbage"),
        "another person's data in the report"
    );
    assert!(
        !html.body.contains("charles@"),
        "another person's data in the report"
    );
    // Someone the vault does not know gets an answer too.
    let nobody = submit(
        &v,
        &a,
        json!({"kind": "access", "email": "nobody@example.org"}),
    );
    let done = finished(&v, &nobody);
    assert_eq!(done["state"], "completed");
    assert_eq!(done["outcome"]["found"], false);
}

fn an_erasure_shreds_the_subject_and_every_later_answer_says_so(v: Vault) {
    let s = &v.server;
    let id = collect(s, &v.admin, &ada());
    // The person objected to all direct marketing before asking for erasure.
    let r = s.post(
        "/v1/consents",
        Some(&v.admin),
        &json!({"subject": id, "action": "object"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let a = agent(&v);
    let request = submit(
        &v,
        &a,
        json!({"kind": "erasure", "email": "Ada.Lovelace@Example.ORG"}),
    );
    let done = finished(&v, &request);
    assert_eq!(done["state"], "completed", "{done}");
    let r = s.get(
        &format!("/v1/subjects/{id}?purpose=account-management"),
        Some(&v.admin),
    );
    assert!(
        r.status == 410 || r.body.contains("erased"),
        "{} {}",
        r.status,
        r.body
    );
    let r = s.get(
        "/v1/subjects?email=ada.lovelace@example.org&purpose=account-management",
        Some(&v.admin),
    );
    assert_eq!(r.status, 404, "{}", r.body);
    let check = s
        .get(
            "/v1/marketing/check?channel=email&email=ada.lovelace@example.org",
            Some(&v.admin),
        )
        .json();
    assert_eq!(check["allowed"], false, "{check}");
    // The address is on the suppression list: a later import cannot mail it.
    assert!(check.to_string().contains("suppressed"), "{check}");
    // Erasing again changes nothing and still completes.
    let again = submit(
        &v,
        &a,
        json!({"kind": "erasure", "email": "ada.lovelace@example.org"}),
    );
    assert_eq!(finished(&v, &again)["state"], "completed");
    // The audit chain holds the erasure and stays intact.
    let audit = s.get("/v1/audit/verify", Some(&v.admin)).json();
    assert_eq!(audit["intact"], true, "{audit}");
}

fn rectification_restriction_and_objection_change_what_reads_answer(v: Vault) {
    let s = &v.server;
    let id = collect(s, &v.admin, &ada());
    open_account(s, &v.admin, &id);
    let a = agent(&v);
    let request = submit(
        &v,
        &a,
        json!({"kind": "rectification", "email": "ada.lovelace@example.org", "fields": {"full_name": "Augusta Ada King"}}),
    );
    assert_eq!(finished(&v, &request)["state"], "completed");
    let read = s
        .get(
            &format!("/v1/subjects/{id}?purpose=account-management"),
            Some(&v.admin),
        )
        .json();
    assert_eq!(read["data"]["full_name"], "Augusta Ada King", "{read}");
    // Restricted: the decision allows storage only.
    let request = submit(
        &v,
        &a,
        json!({"kind": "restriction", "email": "ada.lovelace@example.org"}),
    );
    assert_eq!(finished(&v, &request)["state"], "completed");
    let read = s
        .get(
            &format!("/v1/subjects/{id}?purpose=account-management"),
            Some(&v.admin),
        )
        .json();
    assert_eq!(read["data"], json!({}), "{read}");
    assert!(read.to_string().contains("restricted"), "{read}");
    // Art. 18(2): a purpose that may read under restriction does so only
    // when the read states its exception and a reason.
    let path = format!("/v1/subjects/{id}?purpose=security");
    let read = s.get(&path, Some(&v.admin)).json();
    assert_eq!(read["data"], json!({}), "{read}");
    let r = s.get(
        &format!("{path}&restriction_exception=legal-claims"),
        Some(&v.admin),
    );
    assert_eq!(r.status, 422, "a reason is needed: {}", r.body);
    let read = s
        .get(
            &format!("{path}&restriction_exception=public-interest&restriction_reason=inquiry"),
            Some(&v.admin),
        )
        .json();
    assert_eq!(
        read["data"],
        json!({}),
        "another exception does not open it: {read}"
    );
    let read = s
        .get(
            &format!(
                "{path}&restriction_exception=legal-claims&restriction_reason=claim%20ref%2042"
            ),
            Some(&v.admin),
        )
        .json();
    assert_eq!(read["data"]["username"], "countess-of-lovelace", "{read}");
    // Objection to a legitimate-interest purpose: refused from now on.
    let request = submit(
        &v,
        &a,
        json!({"kind": "objection", "email": "ada.lovelace@example.org", "purpose": "postal-marketing"}),
    );
    assert_eq!(finished(&v, &request)["state"], "completed");
    let history = s
        .get(&format!("/v1/subjects/{id}/consents"), Some(&v.admin))
        .json();
    assert!(
        history["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "object" && e["purpose"] == "postal-marketing"),
        "{history}"
    );
    // An objection to a purpose on consent is refused at intake.
    let r = s.post(
        "/v1/requests",
        Some(&a),
        &json!({"kind": "objection", "email": "ada.lovelace@example.org", "purpose": "requested-communications",
                "identity": {"method": "security-questions", "evidence": "answered"}}),
    );
    assert_eq!(r.status, 422, "{}", r.body);
}

fn wrong_transitions_are_refused_and_the_clock_moves_with_pauses_and_extensions(v: Vault) {
    let s = &v.server;
    collect(s, &v.admin, &ada());
    let a = agent(&v);
    let request = submit(
        &v,
        &a,
        json!({"kind": "access", "email": "ada.lovelace@example.org"}),
    );
    let done = finished(&v, &request);
    assert_eq!(done["state"], "completed");
    let manage = |body: Value| {
        s.post(
            &format!("/v1/requests/{request}/manage"),
            Some(&v.admin),
            &body,
        )
    };
    let r = manage(json!({"action": "cancel"}));
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (403, Some("invalid_transition")),
        "{}",
        r.body
    );
    // A pause needs a large amount of information about the person.
    let r = manage(json!({"action": "pause", "asked": "2026-12-02", "large_amount": false}));
    assert_eq!(r.status, 422, "{}", r.body);
    // The agent cannot steer a request.
    let r = s.post(
        &format!("/v1/requests/{request}/manage"),
        Some(&a),
        &json!({"action": "cancel"}),
    );
    assert_eq!(r.status, 403);
    // The register lists it as completed, not overdue.
    let list = s.get("/v1/requests?state=completed", Some(&v.admin)).json();
    assert!(list.as_array().unwrap().iter().any(|r| r["id"] == request));
    let r = s.get("/v1/requests?state=nonsense", Some(&v.admin));
    assert_eq!(r.status, 422);
    // A wait is bounded, and a settled request answers at once.
    let r = s.get(
        &format!("/v1/requests/{request}?wait_ms=30001"),
        Some(&v.admin),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    let t = std::time::Instant::now();
    let r = s.get(
        &format!("/v1/requests/{request}?wait_ms=30000"),
        Some(&v.admin),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(t.elapsed() < std::time::Duration::from_secs(25));
}

fn a_portability_archive_holds_json_and_csv(v: Vault) {
    let s = &v.server;
    let id = collect(s, &v.admin, &ada());
    open_account(s, &v.admin, &id);
    let a = agent(&v);
    let request = submit(
        &v,
        &a,
        json!({"kind": "portability", "email": "ada.lovelace@example.org"}),
    );
    assert_eq!(finished(&v, &request)["state"], "completed");
    let r = s.get(&format!("/v1/requests/{request}/archive"), Some(&v.admin));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-tar"));
    assert!(r.body.contains("data.json") && r.body.contains("data.csv"));
    assert!(r.body.contains("Ada Lovelace"));
    assert!(r.body.contains("field,value,source,collected_at,purpose"));
}

/// How many times each request was completed, from the audit (a request's
/// completion and its work commit in one transaction, so this counts both).
fn completions(db: &std::path::Path) -> std::collections::BTreeMap<String, i64> {
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

/// A batch of erasures is queued, the server is killed with SIGKILL while
/// it works through them, and restarted: every request completes, each
/// exactly once, nothing missed and nothing done twice.
#[test]
fn erasures_survive_a_crash_and_complete_exactly_once() {
    let scratch = super::Scratch::new("crash");
    let data = scratch.arg("data");
    let server = super::Server::start(&["--data-dir", &data, "--task-lease-ms", "300"]);
    let admin = server.admin_key.clone().unwrap();
    let v = Vault {
        server,
        admin,
        scratch,
        database: None,
    };
    let a = agent(&v);
    let mut emails = Vec::new();
    for i in 0..60 {
        let mut body = ada();
        let email = format!("crash{i}@example.org");
        body["data"] = json!({"full_name": format!("Person {i}"), "email": email});
        collect(&v.server, &v.admin, &body);
        emails.push(email);
    }
    let mut ids = Vec::new();
    for email in &emails {
        ids.push(submit(&v, &a, json!({"kind": "erasure", "email": email})));
    }
    let Vault {
        server,
        admin,
        scratch,
        ..
    } = v;
    server.kill();
    let before = completions(&std::path::Path::new(&data).join("custodian.db")).len();
    let _ = writeln!(
        std::io::stderr(),
        "crash test: {before} of {} requests completed before the kill",
        ids.len()
    );
    let server = super::Server::start(&["--data-dir", &data, "--task-lease-ms", "300"]);
    let v = Vault {
        server,
        admin,
        scratch,
        database: None,
    };
    for id in &ids {
        let done = finished(&v, id);
        assert_eq!(done["state"], "completed", "{done}");
    }
    for email in &emails {
        let r = v.server.get(
            &format!("/v1/subjects?email={email}&purpose=account-management"),
            Some(&v.admin),
        );
        assert_eq!(r.status, 404, "{email}: {}", r.body);
    }
    let audit = v.server.get("/v1/audit/verify", Some(&v.admin)).json();
    assert_eq!(audit["intact"], true, "{audit}");
    assert_eq!(v.server.stop(), Some(0));
    let counts = completions(&std::path::Path::new(&data).join("custodian.db"));
    assert_eq!(counts.len(), ids.len(), "{counts:?}");
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
}

/// A server whose mail goes to a real SMTP server on loopback.
fn with_mailbox(backend: Backend) -> Option<(Vault, super::mailbox::Mailbox)> {
    with_mailbox_and(backend, &[])
}

fn with_mailbox_and(backend: Backend, extra: &[&str]) -> Option<(Vault, super::mailbox::Mailbox)> {
    let mailbox = super::mailbox::Mailbox::start();
    let port = mailbox.addr().port().to_string();
    let mut args = vec![
        "--smtp-host",
        "127.0.0.1",
        "--smtp-port",
        &port,
        "--smtp-tls",
        "none",
        "--smtp-from",
        "privacy@example.org",
    ];
    args.extend_from_slice(extra);
    let v = vault_on(backend, &args)?;
    Some((v, mailbox))
}

fn portal(v: &Vault) -> String {
    let r = v.server.post(
        "/v1/keys",
        Some(&v.admin),
        &json!({"role": "service", "purposes": ["account-management"], "label": "portal"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["key"].as_str().unwrap().to_string()
}

/// A request from the portal (no identity check): its id, once taken in.
fn from_portal(v: &Vault, key: &str, kind: &str, email: &str) -> String {
    let r = v.server.post(
        "/v1/requests",
        Some(key),
        &json!({"kind": kind, "email": email}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["id"].as_str().unwrap().to_string()
}

/// The code in the first message to `address` after the first `seen`
/// messages, within ten seconds.
fn code_mailed(mailbox: &super::mailbox::Mailbox, address: &str, seen: usize) -> String {
    mailbox
        .wait_for(address, seen, std::time::Duration::from_secs(10))
        .and_then(|m| m.code())
        .unwrap()
}

/// From the portal: a code by email, a session for the right code, and the
/// session sees this person's requests and reports only.
fn a_code_by_email_verifies_and_the_session_follows_only_its_own_requests(backend: Backend) {
    let Some((v, mailbox)) = with_mailbox(backend) else {
        return;
    };
    let s = &v.server;
    let id = collect(s, &v.admin, &ada());
    open_account(s, &v.admin, &id);
    let key = portal(&v);
    let r = s.post(
        "/v1/requests",
        Some(&key),
        &json!({"kind": "access", "email": "Ada.Lovelace@example.org"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let view = r.json();
    assert_eq!(view["state"], "awaiting-verification", "{view}");
    assert!(
        view["due"].is_null(),
        "the clock waits for the identity: {view}"
    );
    let request = view["id"].as_str().unwrap().to_string();
    let mail = mailbox
        .wait_for(
            "ada.lovelace@example.org",
            0,
            std::time::Duration::from_secs(10),
        )
        .expect("a code was mailed");
    let code = mail.code().expect("the mail holds a code");
    // A wrong code is refused and counted.
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r = s.post(
        &format!("/v1/requests/{request}/verify"),
        None,
        &json!({"code": wrong}),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("4 attempts left"), "{}", r.body);
    let r = s.post(
        &format!("/v1/requests/{request}/verify"),
        None,
        &json!({"code": code}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let verified = r.json();
    let session = verified["session"].as_str().unwrap().to_string();
    assert!(session.starts_with("rs_"));
    assert!(verified["request"]["due"].is_string(), "{verified}");
    // The code works once.
    let r = s.post(
        &format!("/v1/requests/{request}/verify"),
        None,
        &json!({"code": code}),
    );
    assert_eq!(r.status, 404, "{}", r.body);
    let done = finished(&v, &request);
    assert_eq!(done["state"], "completed", "{done}");
    // The person follows their request and reads their report.
    let mine = s.get(&format!("/v1/requests/{request}"), Some(&session));
    assert_eq!(mine.status, 200, "{}", mine.body);
    let report = s.get(&format!("/v1/requests/{request}/report"), Some(&session));
    assert_eq!(report.status, 200, "{}", report.body);
    assert!(report.body.contains("Ada Lovelace"));
    // Somebody else's request is not theirs to see.
    let a = agent(&v);
    let other = submit(
        &v,
        &a,
        json!({"kind": "access", "email": "someone.else@example.org"}),
    );
    let r = s.get(&format!("/v1/requests/{other}"), Some(&session));
    assert_eq!(r.status, 404, "{}", r.body);
    let r = s.get(&format!("/v1/requests/{other}/report"), Some(&session));
    assert_eq!(r.status, 404, "{}", r.body);
    // A made-up session is no session.
    let r = s.get(
        &format!("/v1/requests/{request}"),
        Some("rs_0000000000000000000000000000000000000000000000000000000000000000"),
    );
    assert_eq!(r.status, 401, "{}", r.body);
}

/// Five wrong codes lock the request; the right code then waits too.
fn too_many_wrong_codes_lock_the_request(backend: Backend) {
    let Some((v, mailbox)) = with_mailbox(backend) else {
        return;
    };
    let s = &v.server;
    collect(s, &v.admin, &ada());
    let key = portal(&v);
    let request = from_portal(&v, &key, "erasure", "ada.lovelace@example.org");
    let code = code_mailed(&mailbox, "ada.lovelace@example.org", 0);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for left in (0..5).rev() {
        let r = s.post(
            &format!("/v1/requests/{request}/verify"),
            None,
            &json!({"code": wrong}),
        );
        if left > 0 {
            assert_eq!(r.status, 422, "{}", r.body);
        } else {
            assert_eq!(
                (r.status, r.json()["code"].as_str()),
                (403, Some("verification_locked")),
                "{}",
                r.body
            );
        }
    }
    let r = s.post(
        &format!("/v1/requests/{request}/verify"),
        None,
        &json!({"code": code}),
    );
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (403, Some("verification_locked")),
        "{}",
        r.body
    );
    // A new code does not undo the lockout.
    let r = s.post(
        &format!("/v1/requests/{request}/resend-code"),
        Some(&key),
        &json!({}),
    );
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (403, Some("verification_locked")),
        "{}",
        r.body
    );
    // Nothing was erased.
    let r = s.get(
        "/v1/subjects?email=ada.lovelace@example.org&purpose=account-management",
        Some(&v.admin),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

fn only_the_dpo_overrides_an_objection_and_never_one_to_direct_marketing(v: Vault) {
    let s = &v.server;
    let id = collect(s, &v.admin, &ada());
    open_account(s, &v.admin, &id);
    let a = agent(&v);
    let read = |purpose: &str| {
        s.get(
            &format!("/v1/subjects/{id}?purpose={purpose}"),
            Some(&v.admin),
        )
        .json()
    };
    assert_eq!(read("seek-feedback")["data"]["full_name"], "Ada Lovelace");
    let dpo = {
        let r = s.post("/v1/keys", Some(&v.admin), &json!({"role": "dpo"}));
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()["key"].as_str().unwrap().to_string()
    };
    let grounds = |key: &str, purpose: &str| {
        s.post(
            &format!("/v1/subjects/{id}/compelling-grounds"),
            Some(key),
            &json!({"purpose": purpose, "grounds": "Feedback on a disputed order is needed to settle the complaint.", "reference": "DPO-2026-017"}),
        )
    };
    // No objection yet: nothing to override.
    let r = grounds(&dpo, "seek-feedback");
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("no_objection"), "{}", r.body);
    // Art. 21(1): the person objects; the purpose stops.
    for purpose in ["seek-feedback", "postal-marketing"] {
        let request = submit(
            &v,
            &a,
            json!({"kind": "objection", "email": "ada.lovelace@example.org", "purpose": purpose}),
        );
        assert_eq!(finished(&v, &request)["state"], "completed");
    }
    let refused = read("seek-feedback");
    assert_eq!(refused["data"], json!({}), "{refused}");
    assert!(refused.to_string().contains("objected"), "{refused}");
    // Only the DPO records grounds: the admin is refused.
    let r = grounds(&v.admin, "seek-feedback");
    assert_eq!(r.status, 403, "{}", r.body);
    // Art. 21(3): no grounds outweigh an objection to direct marketing.
    let r = grounds(&dpo, "postal-marketing");
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("direct_marketing"), "{}", r.body);
    // A purpose on consent has no Art. 21(1) objection to override.
    let r = grounds(&dpo, "requested-communications");
    assert_eq!(r.status, 422, "{}", r.body);
    // A reference is where the assessment is filed, not free text.
    let r = s.post(
        &format!("/v1/subjects/{id}/compelling-grounds"),
        Some(&dpo),
        &json!({"purpose": "seek-feedback", "grounds": "x", "reference": ""}),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    // The DPO's grounds reopen the purpose, and only that one.
    let r = grounds(&dpo, "seek-feedback");
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(read("seek-feedback")["data"]["full_name"], "Ada Lovelace");
    assert_eq!(read("postal-marketing")["data"], json!({}));
    // The person's history shows the grounds beside the objection.
    let history = s
        .get(&format!("/v1/subjects/{id}/consents"), Some(&v.admin))
        .json();
    assert!(
        history["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "lift"
                && e["method"] == "compelling-grounds"
                && e["purpose"] == "seek-feedback"),
        "{history}"
    );
    let audit = s.get("/v1/audit/verify", Some(&v.admin)).json();
    assert_eq!(audit["intact"], true, "{audit}");
}

/// A person whose code did not arrive asks again: a fresh code replaces
/// the first, not sooner than the configured gap; once verified there is
/// nothing left to send.
fn a_code_sent_again_replaces_the_first(backend: Backend) {
    let Some((v, mailbox)) = with_mailbox_and(backend, &["--code-resend-gap-ms", "300"]) else {
        return;
    };
    let s = &v.server;
    collect(s, &v.admin, &ada());
    let key = portal(&v);
    let ada_mail = "ada.lovelace@example.org";
    let request = from_portal(&v, &key, "access", ada_mail);
    let first = code_mailed(&mailbox, ada_mail, 0);
    let resend = || {
        s.post(
            &format!("/v1/requests/{request}/resend-code"),
            Some(&key),
            &json!({}),
        )
    };
    // Too soon after the first.
    let r = resend();
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.header("retry-after").is_some());
    std::thread::sleep(std::time::Duration::from_millis(400));
    let r = resend();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["state"], "awaiting-verification");
    let second = code_mailed(&mailbox, ada_mail, 1);
    if first != second {
        let r = s.post(
            &format!("/v1/requests/{request}/verify"),
            None,
            &json!({"code": first}),
        );
        assert_eq!(r.status, 422, "the first code still works: {}", r.body);
    }
    let r = s.post(
        &format!("/v1/requests/{request}/verify"),
        None,
        &json!({"code": second}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    std::thread::sleep(std::time::Duration::from_millis(400));
    let r = resend();
    assert_eq!(r.status, 404, "{}", r.body);
    // An id that is not a request's, and a key that may not ask.
    let r = s.post(
        "/v1/requests/00000000-0000-0000-0000-000000000000/resend-code",
        Some(&key),
        &json!({}),
    );
    assert_eq!(r.status, 404, "{}", r.body);
}

/// A request the person never verifies expires after the configured time,
/// audited, and its code stops working.
fn a_request_never_verified_expires(backend: Backend) {
    let Some((v, mailbox)) = with_mailbox_and(backend, &["--unverified-expiry-ms", "1500"]) else {
        return;
    };
    let s = &v.server;
    let key = portal(&v);
    let request = from_portal(&v, &key, "erasure", "someone@example.org");
    let code = code_mailed(&mailbox, "someone@example.org", 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let state = loop {
        let view = s
            .get(&format!("/v1/requests/{request}"), Some(&v.admin))
            .json();
        let state = view["state"].as_str().unwrap_or_default().to_string();
        if state != "awaiting-verification" || std::time::Instant::now() > deadline {
            break state;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(state, "expired");
    let r = s.post(
        &format!("/v1/requests/{request}/verify"),
        None,
        &json!({"code": code}),
    );
    assert_eq!(r.status, 404, "{}", r.body);
    let list = s.get("/v1/requests?state=expired", Some(&v.admin)).json();
    assert!(list.as_array().unwrap().iter().any(|r| r["id"] == request));
    let audit = s.get("/v1/audit/verify", Some(&v.admin)).json();
    assert_eq!(audit["intact"], true, "{audit}");
}

/// Art. 18(3): the person hears of the lifting before it happens; and a
/// marketing opt-out objects to all direct marketing and suppresses the
/// person's addresses.
fn lifting_a_restriction_tells_the_person_first_and_an_opt_out_stops_marketing(backend: Backend) {
    let Some((v, mailbox)) = with_mailbox(backend) else {
        return;
    };
    let s = &v.server;
    let id = collect(s, &v.admin, &ada());
    open_account(s, &v.admin, &id);
    let a = agent(&v);
    let read = || {
        s.get(
            &format!("/v1/subjects/{id}?purpose=account-management"),
            Some(&v.admin),
        )
        .json()
    };
    let request = submit(
        &v,
        &a,
        json!({"kind": "restriction", "email": "ada.lovelace@example.org"}),
    );
    assert_eq!(finished(&v, &request)["state"], "completed");
    assert_eq!(read()["data"], json!({}));
    let request = submit(
        &v,
        &a,
        json!({"kind": "lift-restriction", "email": "ada.lovelace@example.org"}),
    );
    assert_eq!(finished(&v, &request)["state"], "completed");
    let told = mailbox
        .wait_for(
            "ada.lovelace@example.org",
            0,
            std::time::Duration::from_secs(10),
        )
        .expect("the person is told before the restriction is lifted");
    assert!(
        told.body().contains("lifting the restriction"),
        "{}",
        told.body()
    );
    assert_eq!(read()["data"]["full_name"], "Ada Lovelace");

    let check = || {
        s.get(
            "/v1/marketing/check?channel=email&email=ada.lovelace@example.org",
            Some(&v.admin),
        )
        .json()
    };
    let request = submit(
        &v,
        &a,
        json!({"kind": "marketing-opt-out", "email": "ada.lovelace@example.org"}),
    );
    assert_eq!(finished(&v, &request)["state"], "completed");
    let answer = check();
    assert_eq!(answer["allowed"], false, "{answer}");
    let history = s
        .get(&format!("/v1/subjects/{id}/consents"), Some(&v.admin))
        .json();
    assert!(
        history["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "object" && e["purpose"].is_null()),
        "{history}"
    );
    // The account itself goes on: an opt-out is about marketing only.
    assert_eq!(read()["data"]["full_name"], "Ada Lovelace");
}
