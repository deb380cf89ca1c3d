//! Authorized agents over the Data Rights Protocol, through the real
//! server, on SQLite and (with `CUSTODIAN_TEST_POSTGRES_URL`) PostgreSQL:
//! the test plays the agent with a key pair it generates, registers,
//! submits access and erasure requests and follows them to completion,
//! revokes a third, and sees every message that fails a check refused with
//! its own status and reason, audited, and changing nothing.

use super::mailbox::Mailbox;
use super::postgres::Database;
use super::vault::{ada, collect, open_account};
use super::*;
use base64::Engine;
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const BUSINESS: &str = "TEST_CB";
const ADA: &str = "ada.lovelace@example.org";

struct Agent {
    id: &'static str,
    key: SigningKey,
}

impl Agent {
    /// A fresh Ed25519 key pair from the operating system's CSPRNG.
    fn new(id: &'static str) -> Agent {
        Agent {
            id,
            key: SigningKey::from_bytes(&custodian_vault::crypto::random_bytes::<32>()),
        }
    }

    fn verify_key(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.key.verifying_key().as_bytes())
    }

    fn sign(&self, message: &Value) -> String {
        custodian_vault::signed::sign(&self.key, message.to_string().as_bytes())
    }
}

fn at(offset_seconds: i64) -> String {
    (OffsetDateTime::now_utc() + time::Duration::seconds(offset_seconds))
        .format(&Rfc3339)
        .unwrap()
}

/// The claims every message carries, valid now for ten minutes.
fn claims(agent: &str) -> Value {
    json!({"agent-id": agent, "business-id": BUSINESS, "issued-at": at(-5), "expires-at": at(595), "drp.version": "1.0"})
}

fn exercise(agent: &str, action: &str, email_verified: bool) -> Value {
    let mut m = claims(agent);
    m["exercise"] = json!(action);
    m["regime"] = json!("voluntary");
    m["agent-request-id"] = json!(format!("{action}-{}", custodian_vault::crypto::new_id()));
    m["name"] = json!("Ada Lovelace");
    m["email"] = json!(ADA);
    m["email_verified"] = json!(email_verified);
    m
}

fn send(s: &Server, method: &str, path: &str, token: Option<&str>, body: &str) -> Reply {
    s.request(method, path, token, Some(body))
}

fn add_agent(s: &Server, admin: &str, agent: &Agent, trust: bool) {
    let r = s.post(
        "/v1/agents",
        Some(admin),
        &json!({"id": agent.id, "verify_key": agent.verify_key(), "name": format!("{} app", agent.id), "trust_identity": trust}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["status"], "active");
}

fn register(s: &Server, agent: &Agent, path: &str) -> String {
    let r = send(s, "POST", path, None, &agent.sign(&claims(agent.id)));
    assert_eq!(r.status, 200, "{}", r.body);
    let answer = r.json();
    assert_eq!(answer["agent-id"], agent.id);
    let token = answer["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("drp_"), "{token}");
    token
}

/// The status once it leaves in_progress (at most ten seconds).
fn settled(s: &Server, token: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = s.get(&format!("/v1/data-rights-request/{id}"), Some(token));
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        if v["status"] != "in_progress" || Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn audit_entries(s: &Server, admin: &str) -> i64 {
    let r = s.get("/v1/audit/verify", Some(admin)).json();
    assert_eq!(r["intact"], true, "{r}");
    r["entries"].as_i64().unwrap()
}

fn register_size(s: &Server, admin: &str) -> usize {
    let r = s.get("/v1/requests?limit=1000", Some(admin));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json().as_array().unwrap().len()
}

fn smtp_flags(mailbox: &Mailbox) -> Vec<String> {
    [
        "--smtp-host",
        "127.0.0.1",
        "--smtp-port",
        &mailbox.addr().port().to_string(),
        "--smtp-tls",
        "none",
        "--smtp-from",
        "privacy@example.org",
        "--drp-business-id",
        BUSINESS,
    ]
    .map(str::to_string)
    .to_vec()
}

/// The whole protocol against one running server.
fn the_protocol(s: &Server, admin: &str, mailbox: &Mailbox) {
    // Discovery: the actions are the policy's rights, the base is this server.
    let d = s.get("/.well-known/data-rights.json", None);
    assert_eq!(d.status, 200, "{}", d.body);
    let d = d.json();
    assert_eq!(d["version"], "1.0");
    assert_eq!(d["api_base"], format!("http://{}", s.addr));
    let actions: Vec<&str> = d["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for a in ["access", "access:categories", "access:specific", "deletion"] {
        assert!(actions.contains(&a), "{d}");
    }
    assert!(!actions.contains(&"sale:opt_in"), "{d}");

    let agent = Agent::new("TEST_AGENT");
    let other = Agent::new("OTHER_AGENT");
    add_agent(s, admin, &agent, true);
    add_agent(s, admin, &other, false);
    let r = s.post(
        "/v1/agents",
        Some(admin),
        &json!({"id": agent.id, "verify_key": agent.verify_key(), "name": "again"}),
    );
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (409, Some("agent_exists"))
    );
    let token = register(s, &agent, &format!("/v1/agent/{}", agent.id));
    let other_token = register(s, &other, &format!("/v1/agent/{}/", other.id));
    let r = s.get(&format!("/v1/agent/{}", agent.id), Some(&token));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s.get(&format!("/v1/agent/{}/", agent.id), Some(&other_token));
    assert_eq!(
        (r.status, r.json()["reason"].as_str()),
        (403, Some("agent_mismatch"))
    );
    let listed = s.get("/v1/agents", Some(admin)).json();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["registered"] == true
                && a.get("token").is_none()
                && a.get("token_hash").is_none()),
        "{listed}"
    );

    let subject = collect(s, admin, &ada());
    open_account(s, admin, &subject);

    // Access, with the identity the trusted agent attests: done at once.
    let r = send(
        s,
        "POST",
        "/v1/data-rights-request",
        Some(&token),
        &agent.sign(&exercise(agent.id, "access", true)),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let opened = r.json();
    assert!(
        ["in_progress", "fulfilled"].contains(&opened["status"].as_str().unwrap()),
        "{opened}"
    );
    assert!(opened["expected_by"].is_string(), "{opened}");
    assert!(opened["agent_request_id"].is_string(), "{opened}");
    let access = opened["request_id"].as_str().unwrap().to_string();
    let done = settled(s, &token, &access);
    assert_eq!(done["status"], "fulfilled", "{done}");
    assert!(done.get("reason").is_none(), "{done}");
    // The same request in the register: an access request, completed, with
    // its report, clocked from the agent's attestation.
    let register_view = s.get(&format!("/v1/requests/{access}"), Some(admin)).json();
    assert_eq!(register_view["kind"], "access", "{register_view}");
    assert_eq!(register_view["state"], "completed", "{register_view}");
    assert_eq!(register_view["due"], done["expected_by"], "{register_view}");
    let report = s
        .get(&format!("/v1/requests/{access}/report"), Some(admin))
        .json();
    assert!(report.to_string().contains("Ada Lovelace"), "{report}");

    // The third request, without an attested identity: the business sends
    // its own code, and the agent revokes the request before it is used.
    let seen = mailbox.messages().len();
    let r = send(
        s,
        "POST",
        "/v1/data-rights-request/",
        Some(&token),
        &agent.sign(&exercise(agent.id, "access:categories", false)),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let waiting = r.json();
    assert_eq!(waiting["status"], "in_progress", "{waiting}");
    assert_eq!(waiting["reason"], "need_user_verification", "{waiting}");
    assert!(waiting["expected_by"].is_string(), "{waiting}");
    let third = waiting["request_id"].as_str().unwrap().to_string();
    assert_eq!(
        waiting["user_verification_url"],
        format!("http://{}/requests/{third}/verify", s.addr)
    );
    let page = s.get(&format!("/requests/{third}/verify"), None);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("/v1/requests/"), "{}", page.body);
    assert!(!page.body.contains(&third), "the page echoes nothing");
    assert!(
        mailbox
            .wait_for(ADA, seen, Duration::from_secs(10))
            .and_then(|m| m.code())
            .is_some(),
        "no code was mailed"
    );
    // Another agent's token reaches neither this request nor its revocation.
    let r = s.get(
        &format!("/v1/data-rights-request/{third}"),
        Some(&other_token),
    );
    assert_eq!(
        (r.status, r.json()["reason"].as_str()),
        (403, Some("not_this_agents_request"))
    );
    let r = send(
        s,
        "DELETE",
        &format!("/v1/data-rights-request/{third}"),
        Some(&other_token),
        &other.sign(&json!({"reason": "not mine"})),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let r = send(
        s,
        "DELETE",
        &format!("/v1/data-rights-request/{third}/"),
        Some(&token),
        &agent.sign(&json!({"reason": "I changed my mind"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["status"], "revoked", "{}", r.body);
    let r = s.get(&format!("/v1/requests/{third}"), Some(admin)).json();
    assert_eq!(r["state"], "cancelled", "{r}");

    // Deletion: the vault erases the person.
    let r = send(
        s,
        "POST",
        "/v1/data-rights-request",
        Some(&token),
        &agent.sign(&exercise(agent.id, "deletion", true)),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let deletion = r.json()["request_id"].as_str().unwrap().to_string();
    let done = settled(s, &token, &deletion);
    assert_eq!(done["status"], "fulfilled", "{done}");
    let r = s.get(
        &format!("/v1/subjects/{subject}?purpose=account-management"),
        Some(admin),
    );
    assert_eq!(r.status, 410, "{}", r.body);
    // A finished request can no longer be revoked.
    let r = send(
        s,
        "DELETE",
        &format!("/v1/data-rights-request/{deletion}"),
        Some(&token),
        &agent.sign(&json!({"reason": "too late"})),
    );
    assert_eq!(
        (r.status, r.json()["reason"].as_str()),
        (409, Some("not_revocable"))
    );

    every_failed_check_is_refused_audited_and_changes_nothing(s, admin, &agent, &other, &token);

    // A suspended agent's token is refused; reactivated, it works again.
    let r = s.post(
        &format!("/v1/agents/{}/status", agent.id),
        Some(admin),
        &json!({"action": "suspend"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s.get(&format!("/v1/data-rights-request/{access}"), Some(&token));
    assert_eq!(
        (r.status, r.json()["reason"].as_str()),
        (403, Some("agent_suspended"))
    );
    let r = send(
        s,
        "POST",
        &format!("/v1/agent/{}", agent.id),
        None,
        &agent.sign(&claims(agent.id)),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let r = s.post(
        &format!("/v1/agents/{}/status", agent.id),
        Some(admin),
        &json!({"action": "activate"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        s.get(&format!("/v1/data-rights-request/{access}"), Some(&token))
            .status,
        200
    );
    // Removed, its token is gone; its requests stay in the register.
    let r = s.request(
        "DELETE",
        &format!("/v1/agents/{}", other.id),
        Some(admin),
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let r = s.get(&format!("/v1/agent/{}", other.id), Some(&other_token));
    assert_eq!(
        (r.status, r.json()["reason"].as_str()),
        (401, Some("unknown_token"))
    );
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    audit_entries(s, admin);
}

fn every_failed_check_is_refused_audited_and_changes_nothing(
    s: &Server,
    admin: &str,
    agent: &Agent,
    other: &Agent,
    token: &str,
) {
    let valid = exercise(agent.id, "access", true);
    let with = |name: &str, value: Value| {
        let mut m = valid.clone();
        m[name] = value;
        m
    };
    let one_byte_changed = {
        let body = agent.sign(&valid);
        let mut bytes = base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap();
        // The `a` of "access" becomes a `b`: the message, not the signature.
        let at = bytes.windows(8).position(|w| w == b"\"access\"").unwrap();
        bytes[at + 1] = b'b';
        base64::engine::general_purpose::STANDARD.encode(bytes)
    };
    let cases: Vec<(&str, String, Option<&str>, u16, &str)> = vec![
        (
            "signed by another key",
            other.sign(&valid),
            Some(token),
            403,
            "bad_signature",
        ),
        (
            "one byte changed",
            one_byte_changed,
            Some(token),
            403,
            "bad_signature",
        ),
        (
            "another agent named",
            agent.sign(&with("agent-id", json!(other.id))),
            Some(token),
            403,
            "agent_mismatch",
        ),
        (
            "another business",
            agent.sign(&with("business-id", json!("SOME_OTHER_CB"))),
            Some(token),
            403,
            "wrong_business",
        ),
        (
            "not yet valid",
            agent.sign(&with("issued-at", json!(at(300))).pipe(|m| {
                let mut m = m;
                m["expires-at"] = json!(at(600));
                m
            })),
            Some(token),
            400,
            "not_yet_valid",
        ),
        (
            "expired",
            agent.sign(&with("issued-at", json!(at(-1200))).pipe(|m| {
                let mut m = m;
                m["expires-at"] = json!(at(-300));
                m
            })),
            Some(token),
            400,
            "expired",
        ),
        (
            "valid for too long",
            agent.sign(&with("expires-at", json!(at(16 * 60)))),
            Some(token),
            400,
            "window_too_long",
        ),
        (
            "not base64",
            "this is not a signed message".to_string(),
            Some(token),
            400,
            "undecodable",
        ),
        (
            "an action not offered",
            agent.sign(&with("exercise", json!("sale:opt_in"))),
            Some(token),
            400,
            "action_not_offered",
        ),
        ("no token", agent.sign(&valid), None, 401, "unknown_token"),
        (
            "an API key instead of a token",
            agent.sign(&valid),
            Some(admin),
            401,
            "unknown_token",
        ),
    ];
    for (what, body, bearer, status, reason) in cases {
        let before_audit = audit_entries(s, admin);
        let before_register = register_size(s, admin);
        let r = send(s, "POST", "/v1/data-rights-request", bearer, &body);
        assert_eq!(
            (r.status, r.json()["reason"].as_str()),
            (status, Some(reason)),
            "{what}: {}",
            r.body
        );
        assert_eq!(r.json()["code"], status.to_string(), "{what}");
        assert_eq!(
            audit_entries(s, admin),
            before_audit + 1,
            "{what}: the refusal is audited"
        );
        assert_eq!(
            register_size(s, admin),
            before_register,
            "{what}: nothing is registered"
        );
    }
    // Registration checks the same claims, against the agent the path names.
    let r = send(
        s,
        "POST",
        &format!("/v1/agent/{}", other.id),
        None,
        &agent.sign(&claims(agent.id)),
    );
    assert_eq!(
        (r.status, r.json()["reason"].as_str()),
        (403, Some("bad_signature"))
    );
    let r = send(
        s,
        "POST",
        &format!("/v1/agent/{}", agent.id),
        None,
        &agent.sign(&claims(other.id)),
    );
    assert_eq!(
        (r.status, r.json()["reason"].as_str()),
        (403, Some("agent_mismatch"))
    );
    let r = send(
        s,
        "POST",
        "/v1/agent/NO_SUCH_AGENT",
        None,
        &agent.sign(&claims("NO_SUCH_AGENT")),
    );
    assert_eq!(
        (r.status, r.json()["reason"].as_str()),
        (404, Some("unknown_agent"))
    );
    // The token still works: a refused registration changed nothing.
    assert_eq!(
        s.get(&format!("/v1/agent/{}", agent.id), Some(token))
            .status,
        200
    );
}

trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}

impl Pipe for Value {}

#[test]
fn an_agent_registers_submits_follows_and_revokes_on_sqlite() {
    let mailbox = Mailbox::start();
    let flags = smtp_flags(&mailbox);
    let scratch = Scratch::new("drp");
    let data = scratch.arg("data");
    let mut args: Vec<&str> = vec!["--data-dir", &data];
    args.extend(flags.iter().map(String::as_str));
    let server = Server::start(&args);
    let admin = server.admin_key.clone().unwrap();
    the_protocol(&server, &admin, &mailbox);
}

#[test]
fn an_agent_registers_submits_follows_and_revokes_on_postgres() {
    let Some(db) = Database::create() else { return };
    let mailbox = Mailbox::start();
    let flags = smtp_flags(&mailbox);
    let scratch = Scratch::new("drp-pg");
    let keys = scratch.arg("keys.toml");
    let data = scratch.arg("data");
    let mut args: Vec<&str> = vec![
        "--database-url",
        &db.url,
        "--key-file",
        &keys,
        "--data-dir",
        &data,
    ];
    args.extend(flags.iter().map(String::as_str));
    let server = Server::start(&args);
    let admin = server.admin_key.clone().unwrap();
    the_protocol(&server, &admin, &mailbox);
}

#[test]
fn agents_are_managed_from_the_command_line_and_each_change_is_audited() {
    let scratch = Scratch::new("drp-cli");
    let data = scratch.arg("data");
    let server = Server::start(&["--data-dir", &data]);
    let admin = server.admin_key.clone().unwrap();
    let agent = Agent::new("CLI_AGENT");
    let before = audit_entries(&server, &admin);
    let out = run(&[
        "agents",
        "add",
        "--data-dir",
        &data,
        "--id",
        agent.id,
        "--verify-key",
        &agent.verify_key(),
        "--name",
        "An agent",
        "--trust-identity",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&["agents", "list", "--data-dir", &data]);
    let listed = text(&out.stdout);
    assert!(
        listed.starts_with("CLI_AGENT\tactive\ttrusts-identity\tnot registered"),
        "{listed}"
    );
    // A key that is not an Ed25519 public key is refused.
    let out = run(&[
        "agents",
        "add",
        "--data-dir",
        &data,
        "--id",
        "BROKEN",
        "--verify-key",
        "AAAA",
        "--name",
        "Broken",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("verify_key"),
        "{}",
        text(&out.stderr)
    );
    for command in ["suspend", "activate", "remove"] {
        let out = run(&["agents", command, "--data-dir", &data, agent.id]);
        assert!(out.status.success(), "{command}: {}", text(&out.stderr));
    }
    let out = run(&["agents", "remove", "--data-dir", &data, agent.id]);
    assert!(!out.status.success(), "removing twice");
    // add, suspend, activate, remove.
    assert_eq!(audit_entries(&server, &admin), before + 4);
    let listed = server.get("/v1/agents", Some(&admin)).json();
    assert_eq!(listed, json!([]));
}
