//! The vault through the real server on the embedded store: collection,
//! purpose-checked reads, disclosures, keys, the audit chain, and no
//! plaintext personal data anywhere on disk or in the logs.

use super::*;
use serde_json::json;

both_stores!(
    collection_then_reads_return_only_what_the_purpose_may_see,
    rectification_replaces_the_value_and_reuses_the_lookup,
    keys_roles_and_purposes_are_enforced,
    disclosures_keep_to_the_recipient_and_pseudonymise,
);

/// A fresh server on its own data folder, with its admin key.
pub struct Vault {
    pub server: Server,
    pub admin: String,
    pub scratch: Scratch,
    /// The PostgreSQL database the server uses, if any; held only to be
    /// dropped after the server stops (fields drop in order).
    #[allow(dead_code)]
    pub database: Option<super::postgres::Database>,
}

/// Which store a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh server on the given store; `None` when PostgreSQL is not
/// configured (the skip is printed, and is a failure in CI).
pub fn vault_on(backend: Backend, extra: &[&str]) -> Option<Vault> {
    match backend {
        Backend::Sqlite => Some(vault(extra)),
        Backend::Postgres => {
            let database = super::postgres::Database::create()?;
            let scratch = Scratch::new("vault-pg");
            let data = scratch.arg("data");
            let keys = scratch.arg("keys.toml");
            let mut args = vec![
                "--database-url",
                database.url.as_str(),
                "--key-file",
                keys.as_str(),
                "--data-dir",
                data.as_str(),
            ];
            args.extend_from_slice(extra);
            let server = Server::start(&args);
            let admin = server
                .admin_key
                .clone()
                .expect("a fresh database prints an admin key");
            Some(Vault {
                server,
                admin,
                scratch,
                database: Some(database),
            })
        }
    }
}

pub fn vault(extra: &[&str]) -> Vault {
    let scratch = Scratch::new("vault");
    let data = scratch.arg("data");
    let mut args = vec!["--data-dir", data.as_str()];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    let admin = server
        .admin_key
        .clone()
        .expect("a fresh store prints an admin key");
    Vault {
        server,
        admin,
        scratch,
        database: None,
    }
}

impl Vault {
    fn key(&self, body: serde_json::Value) -> String {
        let r = self.server.post("/v1/keys", Some(&self.admin), &body);
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()["key"].as_str().unwrap().to_string()
    }

    fn audit_entries(&self) -> i64 {
        let r = self
            .server
            .get("/v1/audit/verify", Some(&self.admin))
            .json();
        assert_eq!(r["intact"], true, "{r}");
        r["entries"].as_i64().unwrap()
    }
}

pub fn ada() -> serde_json::Value {
    json!({
        "purpose": "account-management",
        "source": {"channel": "web"},
        "data": {
            "full_name": "Ada Lovelace",
            "email": "Ada.Lovelace@Example.ORG",
            "phone": "+44 (0) 7700 900123",
            "username": "countess-of-lovelace",
            "postal_address": "12 St James's Square, London SW1Y 4JH"
        }
    })
}

pub fn collect(server: &Server, key: &str, body: &serde_json::Value) -> String {
    let r = server.post("/v1/subjects", Some(key), body);
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["id"].as_str().unwrap().to_string()
}

pub fn open_account(server: &Server, key: &str, id: &str) {
    let r = server.post(
        &format!("/v1/subjects/{id}/relationships"),
        Some(key),
        &json!({"kind": "account", "status": "active"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
}

#[test]
fn first_start_makes_a_key_file_and_one_admin_key() {
    let v = vault(&[]);
    let key_file = v.scratch.path("data").join("keys.toml");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // The database and its WAL are the owner's alone too, whatever the umask.
        for name in ["custodian.db", "custodian.db-wal"] {
            let file = v.scratch.path("data").join(name);
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name}");
        }
    }
    assert!(v.server.log_text().contains("created a new key file"));
    assert!(v.admin.starts_with("ck_"));
    assert_eq!(v.server.stop(), Some(0));
    // A second start on the same folder makes no new key.
    let again = Server::start(&["--data-dir", &v.scratch.arg("data")]);
    assert!(again.admin_key.is_none(), "{}", again.stdout);
    assert!(!again.log_text().contains("created a new key file"));
    assert_eq!(
        again
            .get("/v1/keys", Some(&v.admin))
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

fn collection_then_reads_return_only_what_the_purpose_may_see(v: Vault) {
    let s = &v.server;
    let id = collect(s, &v.admin, &ada());
    // No account yet: a contract purpose has no ground.
    let r = s
        .get(
            &format!("/v1/subjects/{id}?purpose=account-management"),
            Some(&v.admin),
        )
        .json();
    assert_eq!(r["data"], json!({}));
    assert!(
        r["refused"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["reason"] == "no_contract"),
        "{r}"
    );
    open_account(s, &v.admin, &id);
    let r = s
        .get(
            &format!("/v1/subjects/{id}?purpose=account-management"),
            Some(&v.admin),
        )
        .json();
    assert_eq!(r["data"]["full_name"], "Ada Lovelace");
    assert_eq!(r["data"]["email"], "Ada.Lovelace@example.org");
    assert_eq!(r["data"]["phone"], "+447700900123");
    assert_eq!(r["refused"], json!([]));
    // Post marketing (legitimate interest, opt-out) sees only name and address.
    let r = s
        .get(
            &format!("/v1/subjects/{id}?purpose=postal-marketing"),
            Some(&v.admin),
        )
        .json();
    let mut fields: Vec<&str> = r["data"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["full_name", "postal_address"]);
    let refused: Vec<(&str, &str)> = r["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["field"].as_str().unwrap(), x["reason"].as_str().unwrap()))
        .collect();
    // Held fields the purpose does not need are neither returned nor named.
    assert!(refused.is_empty(), "{refused:?}");
    let r = s
        .get(
            &format!("/v1/subjects/{id}?purpose=postal-marketing&fields=email"),
            Some(&v.admin),
        )
        .json();
    assert_eq!(r["refused"][0]["reason"], "category_not_needed");
    // Email marketing needs consent, which nobody has given.
    let r = s
        .get(
            &format!("/v1/subjects/{id}?purpose=requested-communications"),
            Some(&v.admin),
        )
        .json();
    assert_eq!(r["data"], json!({}));
    assert!(
        r["refused"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["field"] == "email" && x["reason"] == "no_consent")
    );
    // Lookup by email, case-insensitively, and by phone written differently.
    let r = s.get(
        "/v1/subjects?email=ada.lovelace@example.org&purpose=account-management",
        Some(&v.admin),
    );
    assert_eq!(r.json()["id"], id.as_str());
    let r = s.get(
        "/v1/subjects?phone=%2B447700900123&purpose=account-management",
        Some(&v.admin),
    );
    assert_eq!(r.json()["id"], id.as_str());
    let r = s.get(
        "/v1/subjects?email=nobody@example.org&purpose=account-management",
        Some(&v.admin),
    );
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (404, Some("subject_not_found"))
    );
    // It says what was not found, and never echoes the address.
    let detail = r.json()["detail"].as_str().unwrap_or_default().to_string();
    assert_eq!(detail, "no subject has this email address or phone number");
    // Each read decision, allowed or refused, is in the chain: 1 key + 1 collect
    // + 1 relationship + 7 reads + the lookup that found nobody.
    assert_eq!(v.audit_entries(), 11);
}

fn rectification_replaces_the_value_and_reuses_the_lookup(v: Vault) {
    let s = &v.server;
    let id = collect(s, &v.admin, &ada());
    open_account(s, &v.admin, &id);
    let r = s.post(
        &format!("/v1/subjects/{id}/data"),
        Some(&v.admin),
        &json!({"purpose": "account-management", "data": {"email": "ada@analytical.example"}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .get(
            &format!("/v1/subjects/{id}?purpose=account-management&fields=email"),
            Some(&v.admin),
        )
        .json();
    assert_eq!(r["data"], json!({"email": "ada@analytical.example"}));
    // A lookup that finds no one is audited too (probing leaves a trace).
    let before = v.audit_entries();
    assert_eq!(
        s.get(
            "/v1/subjects?email=ada.lovelace@example.org&purpose=account-management",
            Some(&v.admin)
        )
        .status,
        404
    );
    assert_eq!(v.audit_entries(), before + 1);
    assert_eq!(
        s.get(
            "/v1/subjects?email=ada@analytical.example&purpose=account-management",
            Some(&v.admin)
        )
        .status,
        200
    );
    // Another subject cannot take that address; the refusal is audited.
    let before = v.audit_entries();
    let mut other = ada();
    other["data"] = json!({"full_name": "Someone Else", "email": "ADA@analytical.example"});
    let r = s.post("/v1/subjects", Some(&v.admin), &other);
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (409, Some("lookup_conflict"))
    );
    assert_eq!(v.audit_entries(), before + 1);
    let r = s.post(
        &format!(
            "/v1/subjects/{}/data",
            "01890000-0000-7000-8000-000000000000"
        ),
        Some(&v.admin),
        &json!({"purpose": "account-management", "data": {"full_name": "X"}}),
    );
    assert_eq!(r.status, 404);
}

#[test]
fn bad_input_is_refused_clearly_and_changes_nothing() {
    let v = vault(&["--body-limit", "2000"]);
    let s = &v.server;
    let before = v.audit_entries();
    // Undeclared fields and malformed values: 422 naming each field.
    let r = s.post(
        "/v1/subjects",
        Some(&v.admin),
        &json!({"purpose": "account-management", "data": {"full_name": "X", "cv": "y", "email": "not-an-email", "phone": "0770", "ip_address": "1.2.3.4"}}),
    );
    assert_eq!(r.status, 422);
    let p = r.json();
    assert_eq!(p["code"], "fields_refused");
    let mut named: Vec<(String, String)> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap().to_string(),
                e["code"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    named.sort();
    assert_eq!(
        named,
        [
            ("cv".to_string(), "not_declared_for_purpose".to_string()),
            ("email".into(), "invalid_value".into()),
            ("ip_address".into(), "not_declared_for_purpose".into()),
            ("phone".into(), "invalid_value".into()),
        ]
    );
    assert!(
        !r.body.contains("not-an-email"),
        "a refusal repeats a submitted value: {}",
        r.body
    );
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    // Unknown purpose, unknown field in the body, malformed JSON, not JSON, too large.
    let r = s.post(
        "/v1/subjects",
        Some(&v.admin),
        &json!({"purpose": "selling", "data": {"full_name": "X"}}),
    );
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (422, Some("unknown_purpose"))
    );
    let r = s.post(
        "/v1/subjects",
        Some(&v.admin),
        &json!({"purpose": "account-management", "data": {"full_name": "X"}, "extra": true}),
    );
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (422, Some("invalid_body"))
    );
    assert!(r.json()["detail"].as_str().unwrap().contains("extra"));
    let r = s.request(
        "POST",
        "/v1/subjects",
        Some(&v.admin),
        Some("{\"purpose\": "),
    );
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (400, Some("malformed_json"))
    );
    let big = json!({"purpose": "account-management", "data": {"full_name": "x".repeat(5000)}});
    let r = s.post("/v1/subjects", Some(&v.admin), &big);
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (413, Some("body_too_large"))
    );
    let r = s.get("/v1/subjects/not-a-uuid?purpose=security", Some(&v.admin));
    assert_eq!(r.status, 404);
    // A path segment that is not an id of its kind names nothing: each
    // route answers its own "not found", before reading a body.
    for (method, path, detail) in [
        ("POST", "/v1/subjects/nope/data", "no subject with this id"),
        (
            "POST",
            "/v1/subjects/nope/relationships",
            "no subject with this id",
        ),
        (
            "GET",
            "/v1/subjects/nope/consents",
            "no subject with this id",
        ),
        (
            "POST",
            "/v1/subjects/nope/compelling-grounds",
            "no subject with this id",
        ),
        (
            "GET",
            "/v1/consents/nope/receipt",
            "no consent event with this id",
        ),
        ("DELETE", "/v1/keys/nope", "no key with this id"),
        ("DELETE", "/v1/keys/ck_a%20b", "no key with this id"),
        (
            "POST",
            "/v1/retention/holds/nope/release",
            "no legal hold in force with this id",
        ),
        ("GET", "/v1/requests/nope", "no request with this id"),
    ] {
        let r = s.request(method, path, Some(&v.admin), Some("{}"));
        assert_eq!(
            (r.status, r.json()["detail"].as_str()),
            (404, Some(detail)),
            "{method} {path}: {}",
            r.body
        );
    }
    let r = s.get(
        "/v1/subjects/01890000-0000-7000-8000-000000000000?purpose=security&colour=red",
        Some(&v.admin),
    );
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (422, Some("invalid_query"))
    );
    // Nothing was written by any of them.
    assert_eq!(v.audit_entries(), before);
}

fn keys_roles_and_purposes_are_enforced(v: Vault) {
    let s = &v.server;
    let id = collect(s, &v.admin, &ada());
    open_account(s, &v.admin, &id);
    let service =
        v.key(json!({"role": "service", "purposes": ["account-management"], "label": "accounts"}));
    assert_eq!(
        s.get(
            &format!("/v1/subjects/{id}?purpose=account-management"),
            Some(&service)
        )
        .status,
        200
    );
    let r = s.get(
        &format!("/v1/subjects/{id}?purpose=security"),
        Some(&service),
    );
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (403, Some("purpose_not_allowed_for_key"))
    );
    assert_eq!(s.get("/v1/keys", Some(&service)).status, 403);
    // Missing, malformed and wrong keys.
    assert_eq!(
        s.get(
            &format!("/v1/subjects/{id}?purpose=account-management"),
            None
        )
        .status,
        401
    );
    assert_eq!(
        s.get(
            &format!("/v1/subjects/{id}?purpose=account-management"),
            Some("ck_nope_nope")
        )
        .status,
        401
    );
    // An agent collects as the call-centre, under its own id.
    let agent = v.key(json!({"role": "agent"}));
    let agent_id = agent.split('_').take(2).collect::<Vec<_>>().join("_");
    assert_eq!(
        collect(
            s,
            &agent,
            &ada()
                .as_object()
                .map(|o| {
                    let mut o = o.clone();
                    o.insert("data".into(), json!({"full_name": "Charles Babbage"}));
                    serde_json::Value::Object(o)
                })
                .unwrap()
        )
        .len(),
        36
    );
    // A processor key is bound to its recipient.
    let processor = v.key(json!({"role": "processor", "recipient": "mailing-house"}));
    let r = s.post(
        "/v1/disclosures",
        Some(&processor),
        &json!({"recipient": "web-analytics", "purpose": "analytics-research", "subjects": [id]}),
    );
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (403, Some("recipient_mismatch"))
    );
    assert_eq!(
        s.get(
            &format!("/v1/subjects/{id}?purpose=account-management"),
            Some(&processor)
        )
        .status,
        403
    );
    // Bound to purposes too, it receives disclosures for those purposes only,
    // though the policy discloses to its recipient for others as well.
    let post_only = v.key(json!({"role": "processor", "recipient": "mailing-house", "purposes": ["postal-marketing"]}));
    let to_mailing_house = |purpose: &str| {
        s.post(
            "/v1/disclosures",
            Some(&post_only),
            &json!({"recipient": "mailing-house", "purpose": purpose, "subjects": [id]}),
        )
    };
    assert_eq!(to_mailing_house("postal-marketing").status, 200);
    let r = to_mailing_house("process-orders");
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (403, Some("purpose_not_allowed_for_key"))
    );
    // A processor's purpose must disclose to its recipient.
    let r = s.post(
        "/v1/keys",
        Some(&v.admin),
        &json!({"role": "processor", "recipient": "mailing-house", "purposes": ["analytics-research"]}),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(
        r.body.contains("discloses nothing to `mailing-house`"),
        "{}",
        r.body
    );
    // Bindings are checked against the policy.
    let r = s.post(
        "/v1/keys",
        Some(&v.admin),
        &json!({"role": "service", "purposes": ["selling"]}),
    );
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (422, Some("unknown_purpose"))
    );
    let r = s.post("/v1/keys", Some(&v.admin), &json!({"role": "service"}));
    assert_eq!(r.status, 422);
    // Listing shows ids and roles, never the keys; revoking stops a key at once.
    let list = s.get("/v1/keys", Some(&v.admin));
    assert!(!list.body.contains(&service), "a key list shows a key");
    let service_id = service.split('_').take(2).collect::<Vec<_>>().join("_");
    assert!(list.body.contains(&service_id) && list.body.contains(&agent_id));
    assert_eq!(
        s.request(
            "DELETE",
            &format!("/v1/keys/{service_id}"),
            Some(&v.admin),
            None
        )
        .status,
        204
    );
    assert_eq!(
        s.get(
            &format!("/v1/subjects/{id}?purpose=account-management"),
            Some(&service)
        )
        .status,
        401
    );
    assert_eq!(
        s.request("DELETE", "/v1/keys/ck_000000000000", Some(&v.admin), None)
            .status,
        404
    );
    // Key operations are audited; the log names key ids, not keys.
    let verify = s.get("/v1/audit/verify", Some(&v.admin)).json();
    assert_eq!(verify["intact"], true);
}

#[test]
fn the_cli_creates_lists_and_revokes_keys() {
    let v = vault(&["--key-cache-ms", "0"]);
    let data = v.scratch.arg("data");
    let out = run(&[
        "keys",
        "create",
        "--data-dir",
        &data,
        "--role",
        "service",
        "--purpose",
        "security",
        "--purpose",
        "account-management",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let key = text(&out.stdout);
    assert_eq!(key.lines().count(), 1, "the key alone on stdout: {key}");
    let key = key.trim();
    assert!(key.starts_with("ck_"));
    // The running server accepts it at once.
    assert_eq!(
        v.server
            .get(
                "/v1/subjects?email=x@example.org&purpose=security",
                Some(key)
            )
            .status,
        404
    );
    let list = text(&run(&["keys", "list", "--data-dir", &data]).stdout);
    let id = key.split('_').take(2).collect::<Vec<_>>().join("_");
    assert!(
        list.contains(&id) && list.contains("purposes=security,account-management"),
        "{list}"
    );
    let out = run(&[
        "keys",
        "create",
        "--data-dir",
        &data,
        "--role",
        "service",
        "--purpose",
        "selling",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("selling"));
    assert!(
        run(&["keys", "revoke", "--data-dir", &data, &id])
            .status
            .success()
    );
    assert_eq!(
        v.server
            .get(
                "/v1/subjects?email=x@example.org&purpose=security",
                Some(key)
            )
            .status,
        401
    );
    // The CLI and the server extend one chain.
    let out = run(&["audit", "verify", "--data-dir", &data]);
    assert!(
        text(&out.stdout).contains("audit chain intact"),
        "{}",
        text(&out.stdout)
    );
}

fn disclosures_keep_to_the_recipient_and_pseudonymise(v: Vault) {
    let s = &v.server;
    let visit = json!({
        "purpose": "analytics-research",
        "source": {"channel": "web"},
        "data": {"ip_address": "203.0.113.77", "referrer": "https://search.example/?q=lovelace", "landing_page": "https://www.iimageit.com/", "user_agent": "Firefox"}
    });
    let id = collect(s, &v.admin, &visit);
    let r = s.post("/v1/disclosures", Some(&v.admin), &json!({"recipient": "web-analytics", "purpose": "analytics-research", "subjects": [id, "01890000-0000-7000-8000-000000000000"]}));
    assert_eq!(r.status, 200, "{}", r.body);
    let d = r.json();
    assert_eq!(d["form"], "pseudonymised");
    assert_eq!(d["not_found"], 1);
    let one = &d["results"][0];
    assert_ne!(
        one["subject"],
        id.as_str(),
        "the subject id reached a pseudonymised-only recipient"
    );
    assert!(one["subject"].as_str().unwrap().starts_with("ps_"));
    assert_eq!(one["data"]["ip_address"], "203.0.113.0");
    assert!(one["data"]["referrer"].as_str().unwrap().starts_with("ps_"));
    assert!(!r.body.contains("lovelace") && !r.body.contains("Firefox"));
    // Several subjects: the answer is not in request order, so pseudonyms cannot be paired with ids.
    let more: Vec<String> = (0..6).map(|i| collect(s, &v.admin, &json!({"purpose": "analytics-research", "data": {"ip_address": format!("198.51.100.{i}")}}))).collect();
    let r = s.post(
        "/v1/disclosures",
        Some(&v.admin),
        &json!({"recipient": "web-analytics", "purpose": "analytics-research", "subjects": more}),
    );
    let labels: Vec<String> = r.json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["subject"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = labels.clone();
    sorted.sort();
    assert_eq!(labels, sorted);
    // The same subject gets a different pseudonym at another recipient.
    let r = s.post(
        "/v1/disclosures",
        Some(&v.admin),
        &json!({"recipient": "search-engine", "purpose": "analytics-research", "subjects": [id]}),
    );
    let other = r.json();
    assert_ne!(other["results"][0]["subject"], one["subject"]);
    assert_eq!(
        other["results"][0]["data"].as_object().unwrap().len(),
        2,
        "{other}"
    );
    // A recipient the purpose does not name, and one the policy does not know.
    let r = s.post(
        "/v1/disclosures",
        Some(&v.admin),
        &json!({"recipient": "mailing-house", "purpose": "analytics-research", "subjects": [id]}),
    );
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (403, Some("recipient_not_allowed"))
    );
    let r = s.post(
        "/v1/disclosures",
        Some(&v.admin),
        &json!({"recipient": "data-broker", "purpose": "analytics-research", "subjects": [id]}),
    );
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (422, Some("unknown_recipient"))
    );
    // An identified recipient gets identified data, but only its categories.
    let account = collect(s, &v.admin, &ada());
    open_account(s, &v.admin, &account);
    let r = s.post("/v1/disclosures", Some(&v.admin), &json!({"recipient": "business-acquirer", "purpose": "business-transfer", "subjects": [account]}));
    let d = r.json();
    assert_eq!(d["results"][0]["subject"], account.as_str());
    assert_eq!(d["results"][0]["data"]["full_name"], "Ada Lovelace");
    let verify = s.get("/v1/audit/verify", Some(&v.admin)).json();
    assert_eq!(verify["intact"], true);
}

#[test]
fn transfers_follow_adequacy_and_safeguards() {
    let scratch = Scratch::new("transfer");
    // The analytics provider relies on the UK extension to the Data Privacy
    // Framework instead of a safeguard: adequate from 2023-10-12.
    let policy = reference_text()
        .replacen("effective = 2026-12-01", "effective = 2023-10-12", 1)
        .replacen(
            "country = \"US\"\nsafeguard = \"uk-idta\"\nagreement = \"DPA-2018-ANALYTICS-01\"",
            "country = \"US\"\ndpf_certified = true\ndpf_checked = 2023-10-12\nagreement = \"DPA-2018-ANALYTICS-01\"",
            1,
        );
    let file = scratch.write("policy.toml", &policy);
    assert!(
        run(&["policy", "check", file.to_str().unwrap()])
            .status
            .success()
    );
    let v = vault(&["--policy", file.to_str().unwrap()]);
    let id = collect(
        &v.server,
        &v.admin,
        &json!({"purpose": "analytics-research", "data": {"ip_address": "203.0.113.7"}}),
    );
    // Adequate today: allowed. (A lapsed adequacy is refused at disclosure
    // time; the decision's unit tests cover it, since no shipped decision has lapsed.)
    let r = v.server.post(
        "/v1/disclosures",
        Some(&v.admin),
        &json!({"recipient": "web-analytics", "purpose": "analytics-research", "subjects": [id]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    drop(v);
    // Transfers to a country with no adequacy and no safeguard never pass validation.
    let unsafe_policy = reference_text().replacen(
        "country = \"US\"\nsafeguard = \"uk-idta\"\nagreement",
        "country = \"CN\"\nagreement",
        1,
    );
    let file = scratch.write("unsafe.toml", &unsafe_policy);
    let out = run(&["policy", "check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no adequacy"));
}

#[test]
fn the_audit_chain_names_the_first_tampered_entry() {
    let v = vault(&[]);
    for i in 0..4 {
        let mut body = ada();
        body["data"] =
            json!({"full_name": format!("Person {i}"), "email": format!("p{i}@example.org")});
        collect(&v.server, &v.admin, &body);
    }
    let data = v.scratch.arg("data");
    assert_eq!(v.server.stop(), Some(0));
    let out = run(&["audit", "verify", "--data-dir", &data]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).contains("intact: 5 entries"),
        "{}",
        text(&out.stdout)
    );
    let db = rusqlite::Connection::open(std::path::Path::new(&data).join("custodian.db")).unwrap();
    db.execute("UPDATE audit SET action = 'read' WHERE seq = 3", [])
        .unwrap();
    let out = run(&["audit", "verify", "--data-dir", &data]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("BROKEN at entry 3"),
        "{}",
        text(&out.stdout)
    );
    db.execute("UPDATE audit SET action = 'collect' WHERE seq = 3", [])
        .unwrap();
    db.execute("DELETE FROM audit WHERE seq = 2", []).unwrap();
    let out = run(&["audit", "verify", "--data-dir", &data]);
    assert!(
        text(&out.stdout).contains("BROKEN at entry 2"),
        "{}",
        text(&out.stdout)
    );
}

/// One who can write the database (but has no key file) rewrites an entry
/// and recomputes every later hash and the head the way an unkeyed chain
/// would: verification still names the rewritten entry, because the chain
/// is a MAC under a key kept apart from the database.
#[test]
fn a_database_writer_cannot_rewrite_the_chain() {
    use custodian_vault::audit::{AuditDraft, entry_hash};
    let v = vault(&[]);
    for i in 0..4 {
        let mut body = ada();
        body["data"] =
            json!({"full_name": format!("Person {i}"), "email": format!("q{i}@example.org")});
        collect(&v.server, &v.admin, &body);
    }
    let data = v.scratch.arg("data");
    assert_eq!(v.server.stop(), Some(0));
    let db = rusqlite::Connection::open(std::path::Path::new(&data).join("custodian.db")).unwrap();
    let mut stmt = db
        .prepare("SELECT seq, at, actor, action, purpose, subject_id, decision, reason, prev_hash FROM audit ORDER BY seq")
        .unwrap();
    // (seq, content, prev_hash) of every entry.
    let rows: Vec<(i64, AuditDraft, Vec<u8>)> = stmt
        .query_map([], |r| {
            let subject: Option<Vec<u8>> = r.get(5)?;
            Ok((
                r.get(0)?,
                AuditDraft {
                    at: r.get(1)?,
                    actor: r.get(2)?,
                    action: r.get(3)?,
                    purpose: r.get(4)?,
                    subject: subject.map(|b| uuid::Uuid::from_slice(&b).unwrap()),
                    decision: r.get(6)?,
                    reason: r.get(7)?,
                },
                r.get(8)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    drop(stmt);
    // Entry 3 follows entry 2's stored hash: the rewrite starts there.
    let mut prev: [u8; 32] = rows[2].2.clone().try_into().unwrap();
    for (seq, draft, _) in rows.into_iter().skip(2) {
        let mut draft = draft;
        if seq == 3 {
            draft.decision = "refused".into();
        }
        let hash = entry_hash(None, seq, &prev, &draft);
        db.execute(
            "UPDATE audit SET decision = ?1, prev_hash = ?2, hash = ?3 WHERE seq = ?4",
            rusqlite::params![draft.decision, prev.as_slice(), hash.as_slice(), seq],
        )
        .unwrap();
        db.execute(
            "UPDATE audit_head SET seq = ?1, hash = ?2 WHERE id = 1",
            rusqlite::params![seq, hash.as_slice()],
        )
        .unwrap();
        prev = hash;
    }
    let out = run(&["audit", "verify", "--data-dir", &data]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("BROKEN at entry 3"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn no_plaintext_personal_data_on_disk_or_in_the_logs() {
    let scratch = Scratch::new("plaintext");
    let data = scratch.arg("data");
    let server = Server::start_with_env(&["--data-dir", &data], &[("CUSTODIAN_LOG", "debug")]);
    let admin = server.admin_key.clone().unwrap();
    let secrets = [
        "Zebedee Quuxworth",
        "zebedee.quux@plaintext-probe.example",
        "+447700900987",
        "99 Probe Lane, Testbury TB9 9ZZ",
        "198.51.100.201",
    ];
    let body = json!({"purpose": "account-management", "data": {"full_name": secrets[0], "email": secrets[1], "phone": secrets[2], "postal_address": secrets[3]}});
    let id = collect(&server, &admin, &body);
    open_account(&server, &admin, &id);
    collect(
        &server,
        &admin,
        &json!({"purpose": "security", "data": {"ip_address": secrets[4]}}),
    );
    // Reads, lookups (the email in the query string) and refusals all run.
    assert_eq!(
        server
            .get(
                &format!("/v1/subjects/{id}?purpose=account-management"),
                Some(&admin)
            )
            .status,
        200
    );
    assert_eq!(
        server
            .get(
                &format!(
                    "/v1/subjects?email={}&purpose=account-management",
                    secrets[1]
                ),
                Some(&admin)
            )
            .status,
        200
    );
    let bad = json!({"purpose": "account-management", "data": {"email": "zebedee@@plaintext-probe.example"}});
    assert_eq!(server.post("/v1/subjects", Some(&admin), &bad).status, 422);
    let wal = std::path::Path::new(&data).join("custodian.db-wal");
    let mut files = vec![std::fs::read(std::path::Path::new(&data).join("custodian.db")).unwrap()];
    if wal.exists() {
        files.push(std::fs::read(&wal).unwrap());
    }
    // The log is read by another thread: wait for the request lines, then,
    // after the stop, for everything the server wrote.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !server.log_text().contains("request") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        server.log_text().contains("request"),
        "debug request logs were captured"
    );
    let log_handle = server.log.clone();
    // `stop` joins the log reader: the log is whole once it returns.
    assert_eq!(server.stop(), Some(0));
    let log = log_handle.lock().unwrap().clone() + &server_log_after_stop(&data);
    for secret in secrets
        .iter()
        .chain(["zebedee", "Quuxworth", "Testbury"].iter())
    {
        for (i, bytes) in files.iter().enumerate() {
            assert!(
                !contains(bytes, secret.as_bytes()),
                "`{secret}` found in plaintext in database file {i}"
            );
            assert!(
                !contains(bytes, secret.to_lowercase().as_bytes()),
                "`{secret}` found in database file {i}"
            );
        }
        assert!(
            !log.to_lowercase().contains(&secret.to_lowercase()),
            "`{secret}` found in the log"
        );
    }
}

/// After a stop the WAL may have been checkpointed into the main file: read both again.
fn server_log_after_stop(data: &str) -> String {
    let dir = std::path::Path::new(data);
    for name in ["custodian.db", "custodian.db-wal"] {
        if let Ok(bytes) = std::fs::read(dir.join(name)) {
            assert!(
                !contains(&bytes, b"Zebedee"),
                "plaintext in {name} after stop"
            );
            assert!(
                !contains(&bytes, b"plaintext-probe"),
                "plaintext in {name} after stop"
            );
        }
    }
    String::new()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn rate_limits_answer_429_with_retry_after() {
    let v = vault(&["--rate-limit-per-key", "10"]);
    let mut statuses = Vec::new();
    for _ in 0..30 {
        statuses.push(v.server.get("/v1/keys", Some(&v.admin)));
    }
    let limited = statuses
        .iter()
        .find(|r| r.status == 429)
        .expect("no request was limited");
    assert_eq!(limited.json()["code"], "rate_limited");
    assert!(limited.header("retry-after").is_some());
    assert!(statuses.iter().filter(|r| r.status == 200).count() >= 10);
}

#[test]
fn openapi_and_swagger_are_served_locally() {
    let v = vault(&[]);
    let doc = v.server.get("/openapi.json", None).json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/v1/subjects",
        "/v1/subjects/{id}",
        "/v1/subjects/{id}/data",
        "/v1/disclosures",
        "/v1/keys",
        "/v1/audit/verify",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["securitySchemes"]["api_key"].is_object());
    let ui = v.server.get("/docs/", None);
    assert_eq!(ui.status, 200);
    for external in ["unpkg", "cdn", "jsdelivr", "http://", "https://"] {
        assert!(
            !ui.body.contains(external),
            "Swagger UI loads {external}: {}",
            ui.body
        );
    }
}

#[test]
fn a_store_newer_than_the_build_is_refused() {
    let v = vault(&[]);
    let data = v.scratch.arg("data");
    assert_eq!(v.server.stop(), Some(0));
    let db = rusqlite::Connection::open(std::path::Path::new(&data).join("custodian.db")).unwrap();
    db.execute(
        "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
        [],
    )
    .unwrap();
    let out = run(&["serve", "--listen", "127.0.0.1:0", "--data-dir", &data]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("newer than this build"),
        "{}",
        text(&out.stderr)
    );
    db.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
        [custodian_vault::store::SCHEMA_VERSION.to_string()],
    )
    .unwrap();
    let out = run(&["migrate", "--data-dir", &data]);
    assert!(
        text(&out.stdout).contains("nothing to do"),
        "{}",
        text(&out.stdout)
    );
    // A store the previous release wrote (schema 2) is brought up to date.
    db.execute_batch(
        "DROP TRIGGER lookup_state_follows_subject;
         ALTER TABLE lookup DROP COLUMN state;
         DROP INDEX subjects_by_kek;
         DELETE FROM meta WHERE key = 'audit_keyed_from';
         DROP TABLE requests; DROP TABLE request_reports; DROP TABLE request_sessions;
         DROP TABLE tasks; DROP INDEX audit_disclosures; DROP TABLE agents;
         DROP TRIGGER retention_follows_new_subject; DROP TRIGGER retention_follows_subject;
         DROP TABLE retention_due; DROP TABLE legal_holds; DROP TABLE retention_reviews;
         DROP TABLE retention_sweep;
         UPDATE meta SET value = '2' WHERE key = 'schema_version';",
    )
    .unwrap();
    let out = run(&["migrate", "--data-dir", &data]);
    assert!(
        text(&out.stdout).contains(&format!(
            "schema migrated from version 2 to {}",
            custodian_vault::store::SCHEMA_VERSION
        )),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn key_encryption_keys_rotate_without_losing_data() {
    let v = vault(&[]);
    let data = v.scratch.arg("data");
    let name_of = |s: &Server, id: &str| {
        let r = s.get(
            &format!("/v1/subjects/{id}?purpose=account-management"),
            Some(&v.admin),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["data"]["full_name"].as_str().unwrap().to_string()
    };
    let person = |s: &Server, name: &str, email: &str| {
        let id = collect(
            s,
            &v.admin,
            &json!({"purpose": "account-management", "data": {"full_name": name, "email": email}}),
        );
        open_account(s, &v.admin, &id);
        id
    };
    let ada = person(&v.server, "Ada Lovelace", "ada@rotate.example");
    let old_keys = v.scratch.arg("old-keys.toml");
    std::fs::copy(v.scratch.path("data").join("keys.toml"), &old_keys).unwrap();

    // Rotate while the server runs: it keeps the old key file in memory.
    let out = run(&["keys", "rotate", "--data-dir", &data]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("key-encryption key 2 added"));
    // The old key still wraps Ada's data key: it cannot be retired yet.
    let out = run(&["keys", "retire-kek", "--data-dir", &data, "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("still wraps 1 data keys"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&["keys", "rewrap", "--data-dir", &data]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(
        said.contains("re-wrapped 1 data keys under key-encryption key 2"),
        "{said}"
    );
    assert!(said.contains("key-encryption key 2: 1 data keys"), "{said}");
    assert!(!said.contains("key-encryption key 1:"), "{said}");
    // The node not restarted with the new key file cannot open the moved key:
    // a clear 503 that says what to do, not a 500.
    let r = v.server.get(
        &format!("/v1/subjects/{ada}?purpose=account-management"),
        Some(&v.admin),
    );
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (503, Some("key_unavailable")),
        "{}",
        r.body
    );
    assert!(r.body.contains("key-encryption key 2"), "{}", r.body);
    assert_eq!(v.server.stop(), Some(0));
    // A node started with the old key file refuses to start, and says why.
    let out = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &data,
        "--key-file",
        &old_keys,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("lacks key-encryption key 2"),
        "{}",
        text(&out.stderr)
    );

    // Restarted with the new key file, it reads Ada; new people use key 2.
    let server = Server::start(&["--data-dir", &data]);
    assert_eq!(name_of(&server, &ada), "Ada Lovelace");
    let grace = person(&server, "Grace Hopper", "grace@rotate.example");
    // Nothing left to move; the current key is never retired, the old one now can be.
    let again = text(&run(&["keys", "rewrap", "--data-dir", &data]).stdout);
    assert!(again.contains("re-wrapped 0 data keys"), "{again}");
    assert!(
        again.contains("key-encryption key 2: 2 data keys"),
        "{again}"
    );
    assert_eq!(
        run(&["keys", "retire-kek", "--data-dir", &data, "2"])
            .status
            .code(),
        Some(1)
    );
    let out = run(&["keys", "retire-kek", "--data-dir", &data, "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(server.stop(), Some(0));

    // With only the new key in the key file, both people are still readable.
    let server = Server::start(&["--data-dir", &data]);
    assert_eq!(name_of(&server, &ada), "Ada Lovelace");
    assert_eq!(name_of(&server, &grace), "Grace Hopper");
    let keys = std::fs::read_to_string(v.scratch.path("data").join("keys.toml")).unwrap();
    assert_eq!(keys.matches("[[kek]]").count(), 1, "{keys}");
    let out = run(&["audit", "verify", "--data-dir", &data]);
    assert!(
        text(&out.stdout).contains("audit chain intact"),
        "{}",
        text(&out.stdout)
    );
}
