//! Authorization as declared: every route of the server, called with every
//! kind of key (each role, a service key bound to one purpose, a processor
//! key, no key, a malformed key, an unknown key and a revoked key), answers
//! as the engine's table says. And the ways round a key's binding that a
//! review found stay closed, each refusal in the audit.

use super::vault::{Backend, Vault, collect, vault_on};
use custodian_engine::Role;
use custodian_engine::authz::rule_for;
use custodian_server::{Access, ROUTES};
use serde_json::json;

both_stores!(by backend:
    every_route_answers_every_kind_of_key_as_the_table_says,
    a_bound_key_cannot_link_a_visitor_into_consents_beyond_its_purposes,
    a_service_key_sees_only_its_purposes_history_and_every_look_is_audited,
    refusals_and_probes_are_in_the_audit,
    the_last_admin_key_cannot_be_revoked,
);

/// Who calls, and what the answer must be for a keyed route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Role(Role),
    NoKey,
    Malformed,
    Unknown,
    Revoked,
}

struct Fixture {
    v: Vault,
    subject: String,
    visitor: String,
    event: String,
    request: String,
    keys: Vec<(Caller, Option<String>)>,
}

fn fixture(backend: Backend) -> Option<Fixture> {
    let v = vault_on(backend, &[])?;
    let s = &v.server;
    let subject = collect(
        s,
        &v.admin,
        &json!({"purpose": "postal-marketing", "source": {"channel": "web"},
                "data": {"full_name": "Ada Lovelace", "postal_address": "12 St James's Square, London"}}),
    );
    let r = s.post(
        "/v1/consents",
        Some(&v.admin),
        &json!({"subject": subject, "purpose": "postal-marketing", "channel": "post", "action": "object"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let event = r.json()["event"].as_str().unwrap().to_string();
    let r = s.post(
        "/v1/cookie-consent",
        None,
        &json!({"choices": {"analytics": true, "functional": true}, "wording_sha256": "cd".repeat(32)}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let visitor = r.json()["visitor"].as_str().unwrap().to_string();
    let r = s.post(
        "/v1/requests",
        Some(&v.admin),
        &json!({"kind": "access", "email": "ada@example.org",
                "identity": {"method": "security-questions", "evidence": "answered two questions"}}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let request = r.json()["id"].as_str().unwrap().to_string();
    let key = |body: serde_json::Value| {
        let r = s.post("/v1/keys", Some(&v.admin), &body);
        assert_eq!(r.status, 201, "{}", r.body);
        r.json()["key"].as_str().unwrap().to_string()
    };
    let revoked = key(json!({"role": "agent"}));
    let revoked_id = revoked.split('_').take(2).collect::<Vec<_>>().join("_");
    let r = s.request(
        "DELETE",
        &format!("/v1/keys/{revoked_id}"),
        Some(&v.admin),
        None,
    );
    assert_eq!(r.status, 204, "{}", r.body);
    let keys = vec![
        (Caller::Role(Role::Admin), Some(v.admin.clone())),
        (Caller::Role(Role::Dpo), Some(key(json!({"role": "dpo"})))),
        (
            Caller::Role(Role::Agent),
            Some(key(json!({"role": "agent"}))),
        ),
        (
            Caller::Role(Role::Service),
            Some(key(
                json!({"role": "service", "purposes": ["postal-marketing"]}),
            )),
        ),
        (
            Caller::Role(Role::Processor),
            Some(key(
                json!({"role": "processor", "recipient": "mailing-house"}),
            )),
        ),
        (Caller::NoKey, None),
        (Caller::Malformed, Some("not a key at all".to_string())),
        (
            Caller::Unknown,
            Some("ck_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_string()),
        ),
        (Caller::Revoked, Some(revoked)),
    ];
    Some(Fixture {
        v,
        subject,
        visitor,
        event,
        request,
        keys,
    })
}

/// A request for a route that passes input validation, so that what
/// answers is authorization; and the refusal a service key bound to
/// `postal-marketing` must get from its binding, if any.
fn request_for(
    f: &Fixture,
    method: &str,
    path: &str,
) -> (String, Option<String>, Option<&'static str>) {
    let id = &f.subject;
    let (path, body, service_refusal): (String, Option<serde_json::Value>, Option<&str>) = match (
        method, path,
    ) {
        ("POST", "/v1/subjects") => (
            path.into(),
            Some(
                json!({"purpose": "postal-marketing", "source": {"channel": "web"}, "data": {"full_name": "Grace Hopper"}}),
            ),
            None,
        ),
        ("GET", "/v1/subjects") => (
            "/v1/subjects?email=nobody%40example.org&purpose=postal-marketing".into(),
            None,
            None,
        ),
        ("GET", "/v1/subjects/{id}") => (
            format!("/v1/subjects/{id}?purpose=postal-marketing"),
            None,
            None,
        ),
        ("POST", "/v1/subjects/{id}/data") => (
            format!("/v1/subjects/{id}/data"),
            Some(
                json!({"purpose": "postal-marketing", "source": {"channel": "web"}, "data": {"full_name": "Ada King"}}),
            ),
            None,
        ),
        ("POST", "/v1/subjects/{id}/relationships") => (
            format!("/v1/subjects/{id}/relationships"),
            Some(json!({"kind": "account", "status": "active"})),
            // No purpose of the key rests on an account.
            Some("relationship_not_allowed_for_key"),
        ),
        ("GET", "/v1/subjects/{id}/consents") => {
            (format!("/v1/subjects/{id}/consents"), None, None)
        }
        ("POST", "/v1/subjects/{id}/compelling-grounds") => (
            format!("/v1/subjects/{id}/compelling-grounds"),
            // Direct marketing: refused on the merits (422) once allowed.
            Some(
                json!({"purpose": "postal-marketing", "grounds": "assessment", "reference": "DPO-1"}),
            ),
            None,
        ),
        ("POST", "/v1/disclosures") => (
            path.into(),
            Some(
                json!({"recipient": "mailing-house", "purpose": "postal-marketing", "subjects": [id]}),
            ),
            None,
        ),
        ("POST", "/v1/consents") => (
            path.into(),
            Some(
                json!({"subject": id, "purpose": "postal-marketing", "channel": "post", "action": "object"}),
            ),
            None,
        ),
        ("GET", "/v1/consents/{id}/receipt") => {
            (format!("/v1/consents/{}/receipt", f.event), None, None)
        }
        ("GET", "/v1/visitors/{id}/consents") => {
            (format!("/v1/visitors/{}/consents", f.visitor), None, None)
        }
        ("POST", "/v1/visitors/{id}/link") => (
            format!("/v1/visitors/{}/link", f.visitor),
            Some(json!({"subject": id})),
            // The visitor granted analytics cookies: the key may not
            // carry a consent it could not have recorded itself.
            Some("purpose_not_allowed_for_key"),
        ),
        ("GET", "/v1/marketing/check") => (
            format!("/v1/marketing/check?channel=post&subject={id}"),
            None,
            None,
        ),
        ("POST", "/v1/marketing/check") => {
            // NDJSON, sent raw below.
            (path.into(), None, None)
        }
        ("POST", "/v1/marketing/suppressions") => (
            path.into(),
            Some(json!({"channel": "email", "addresses": ["gone@example.org"]})),
            None,
        ),
        ("GET", "/v1/keys") => (path.into(), None, None),
        ("POST", "/v1/keys") => (path.into(), Some(json!({"role": "dpo"})), None),
        ("DELETE", "/v1/keys/{id}") => ("/v1/keys/ck_000000000000".into(), None, None),
        ("GET", "/v1/audit/verify") => (path.into(), None, None),
        ("POST", "/v1/cookie-consent") => (
            path.into(),
            Some(json!({"choices": {"analytics": false}, "wording_sha256": "ab".repeat(32)})),
            None,
        ),
        ("GET", "/v1/cookie-consent/renewal") => {
            ("/v1/cookie-consent/renewal?since=1.0".into(), None, None)
        }
        ("POST", "/v1/requests") => (
            path.into(),
            Some(json!({"kind": "access", "email": "grace@example.org",
                        "identity": {"method": "security-questions", "evidence": "answered"}})),
            // Only agents (and admins) attest a person's identity.
            Some("identity_not_allowed_for_key"),
        ),
        ("GET", "/v1/requests") => ("/v1/requests?state=completed".into(), None, None),
        ("GET", "/v1/requests/{id}") => (format!("/v1/requests/{}", f.request), None, None),
        ("POST", "/v1/requests/{id}/verify") => (
            format!("/v1/requests/{}/verify", f.request),
            Some(json!({"code": "000000"})),
            None,
        ),
        // In progress already: no code to send (404), once allowed.
        ("POST", "/v1/requests/{id}/resend-code") => (
            format!("/v1/requests/{}/resend-code", f.request),
            None,
            None,
        ),
        ("POST", "/v1/requests/{id}/manage") => (
            format!("/v1/requests/{}/manage", f.request),
            Some(json!({"action": "pause", "asked": "2026-12-01", "large_amount": true})),
            None,
        ),
        // The protocol's routes: a body no check passes, so that what
        // answers is the agent's token (or, for registration, the body).
        ("POST", "/v1/agent/{id}" | "/v1/agent/{id}/") => {
            (path.replace("{id}", "NO_SUCH_AGENT"), None, None)
        }
        ("GET", "/v1/agent/{id}" | "/v1/agent/{id}/") => {
            (path.replace("{id}", "NO_SUCH_AGENT"), None, None)
        }
        ("POST", "/v1/data-rights-request" | "/v1/data-rights-request/") => {
            (path.into(), None, None)
        }
        ("GET" | "DELETE", "/v1/data-rights-request/{id}" | "/v1/data-rights-request/{id}/") => {
            (path.replace("{id}", &f.request), None, None)
        }
        ("GET", "/v1/agents") => (path.into(), None, None),
        ("GET", "/requests/{id}/verify") => (path.replace("{id}", &f.request), None, None),
        ("POST", "/v1/agents") => (
            path.into(),
            Some(json!({"id": "AUTHZ_AGENT", "name": "An agent",
                        "verify_key": "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="})),
            None,
        ),
        ("POST", "/v1/agents/{id}/status") => (
            "/v1/agents/NO_SUCH_AGENT/status".into(),
            Some(json!({"action": "suspend"})),
            None,
        ),
        ("DELETE", "/v1/agents/{id}") => ("/v1/agents/NO_SUCH_AGENT".into(), None, None),
        ("POST", "/v1/retention/holds") => (
            path.into(),
            Some(
                json!({"scope": "category", "target": "feedback", "reason": "a claim is pending"}),
            ),
            None,
        ),
        // An unknown hold: allowed roles get 404, the others 403.
        ("POST", "/v1/retention/holds/{id}/release") => (
            format!("/v1/retention/holds/{}/release", uuid::Uuid::nil()),
            None,
            None,
        ),
        ("POST", "/v1/retention/rules/{rule}/reviewed") => (
            "/v1/retention/rules/feedback-1y/reviewed".into(),
            Some(json!({"note": "still needed"})),
            None,
        ),
        ("GET", p) if p.starts_with("/v1/requests/{id}/") => {
            (p.replace("{id}", &f.request), None, None)
        }
        (_, p) if !p.contains('{') => (p.into(), None, None),
        other => panic!("no request written for {other:?}: add one"),
    };
    let body = if (method, path.as_str()) == ("POST", "/v1/marketing/check") {
        Some(format!("{{\"channel\":\"post\"}}\n{id}\n"))
    } else if path.starts_with("/v1/agent/") || path.starts_with("/v1/data-rights-request") {
        // Not a signed message: refused at decoding, whoever sends it.
        (method != "GET").then(|| "AAAA".to_string())
    } else {
        body.map(|b| b.to_string())
    };
    (path, body, service_refusal)
}

fn every_route_answers_every_kind_of_key_as_the_table_says(backend: Backend) {
    let Some(f) = fixture(backend) else {
        return;
    };
    let s = &f.v.server;
    let mut checked = 0;
    for (method, template, access) in ROUTES {
        let (path, body, service_refusal) = request_for(&f, method, template);
        let mut public_statuses = Vec::new();
        for (caller, key) in &f.keys {
            let r = s.request(method, &path, key.as_deref(), body.as_deref());
            let code = serde_json::from_str::<serde_json::Value>(&r.body)
                .ok()
                .and_then(|v| v["code"].as_str().map(str::to_string));
            let what = format!("{method} {template} as {caller:?}: {} {}", r.status, r.body);
            checked += 1;
            match (access, caller) {
                (Access::Public | Access::AgentSigned, _) => {
                    // Public stays public, whatever the Authorization header holds.
                    assert_ne!(r.status, 401, "{what}");
                    assert_ne!(r.status, 403, "{what}");
                    public_statuses.push(r.status);
                }
                // No API key is an agent's token.
                (Access::AgentToken, _) => {
                    assert_eq!(r.status, 401, "{what}");
                    assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{what}");
                }
                (
                    Access::Key(_) | Access::KeyOrSession(_),
                    Caller::NoKey | Caller::Malformed | Caller::Unknown | Caller::Revoked,
                ) => {
                    assert_eq!(r.status, 401, "{what}");
                    assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{what}");
                }
                (Access::Key(op) | Access::KeyOrSession(op), Caller::Role(role)) => {
                    let rule = rule_for(*op);
                    if !rule.roles.contains(role) {
                        assert_eq!(
                            (r.status, code.as_deref()),
                            (403, Some("role_not_allowed")),
                            "{what}"
                        );
                    } else if *role == Role::Service && service_refusal.is_some() {
                        assert_eq!(
                            (r.status, code.as_deref()),
                            (403, service_refusal),
                            "{what}"
                        );
                    } else {
                        assert!(
                            r.status < 400 || [404, 409, 422].contains(&r.status),
                            "{what}"
                        );
                    }
                }
            }
        }
        if matches!(access, Access::Public | Access::AgentSigned) {
            public_statuses.dedup();
            assert_eq!(
                public_statuses.len(),
                1,
                "{method} {template}: {public_statuses:?}"
            );
        }
    }
    assert_eq!(checked, ROUTES.len() * f.keys.len());
}

fn audit_entries(v: &Vault) -> i64 {
    let r = v.server.get("/v1/audit/verify", Some(&v.admin)).json();
    assert_eq!(r["intact"], true, "{r}");
    r["entries"].as_i64().unwrap()
}

fn a_bound_key_cannot_link_a_visitor_into_consents_beyond_its_purposes(backend: Backend) {
    let Some(f) = fixture(backend) else {
        return;
    };
    let (s, v) = (&f.v.server, &f.v);
    let service = f.keys[3].1.clone().unwrap();
    let before = audit_entries(v);
    let r = s.post(
        &format!("/v1/visitors/{}/link", f.visitor),
        Some(&service),
        &json!({"subject": f.subject}),
    );
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (403, Some("purpose_not_allowed_for_key")),
        "{}",
        r.body
    );
    assert_eq!(audit_entries(v), before + 1, "the refusal is audited");
    // Nothing moved: the subject holds no analytics consent.
    let history = s
        .get(
            &format!("/v1/subjects/{}/consents", f.subject),
            Some(&v.admin),
        )
        .json();
    assert!(
        history["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["method"] != "visitor-link"),
        "{history}"
    );
}

fn a_service_key_sees_only_its_purposes_history_and_every_look_is_audited(backend: Backend) {
    let Some(f) = fixture(backend) else {
        return;
    };
    let (s, v) = (&f.v.server, &f.v);
    let service = f.keys[3].1.clone().unwrap();
    // A choice for another purpose that the service key must not see.
    let r = s.post(
        "/v1/consents",
        Some(&v.admin),
        &json!({"subject": f.subject, "purpose": "requested-communications", "channel": "email",
                "action": "grant", "evidence": {"wording": "Send me news"}}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let before = audit_entries(v);
    let mine = s
        .get(
            &format!("/v1/subjects/{}/consents", f.subject),
            Some(&service),
        )
        .json();
    for e in mine["events"].as_array().unwrap() {
        assert!(
            e["purpose"] == "postal-marketing" || e["purpose"].is_null(),
            "{e}"
        );
    }
    for p in mine["preferences"].as_array().unwrap() {
        assert_eq!(p["purpose"], "postal-marketing", "{p}");
    }
    let all = s
        .get(
            &format!("/v1/subjects/{}/consents", f.subject),
            Some(&v.admin),
        )
        .json();
    assert!(all["events"].as_array().unwrap().len() > mine["events"].as_array().unwrap().len());
    // A probe for an id that does not exist is audited too.
    let r = s.get(
        "/v1/subjects/00000000-0000-7000-8000-000000000000/consents",
        Some(&service),
    );
    assert_eq!(r.status, 404);
    assert_eq!(audit_entries(v), before + 3);
}

fn refusals_and_probes_are_in_the_audit(backend: Backend) {
    let Some(f) = fixture(backend) else {
        return;
    };
    let (s, v) = (&f.v.server, &f.v);
    let service = f.keys[3].1.clone().unwrap();
    let before = audit_entries(v);
    // A purpose the key is not bound to.
    let r = s.get(
        &format!("/v1/subjects/{}?purpose=security", f.subject),
        Some(&service),
    );
    assert_eq!(r.json()["code"], "purpose_not_allowed_for_key");
    assert_eq!(audit_entries(v), before + 1);
    // A read of an id that does not exist.
    let r = s.get(
        "/v1/subjects/00000000-0000-7000-8000-000000000000?purpose=postal-marketing",
        Some(&service),
    );
    assert_eq!(r.status, 404);
    assert_eq!(audit_entries(v), before + 2);
    // Disclosure ids that are not found, beside one that is.
    let r = s.post(
        "/v1/disclosures",
        Some(&service),
        &json!({"recipient": "mailing-house", "purpose": "postal-marketing",
                "subjects": [f.subject, "00000000-0000-7000-8000-000000000001", "00000000-0000-7000-8000-000000000002"]}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["not_found"], 2);
    assert_eq!(audit_entries(v), before + 5);
    // A role refusal.
    let dpo = f.keys[1].1.clone().unwrap();
    let r = s.post(
        "/v1/subjects",
        Some(&dpo),
        &json!({"purpose": "postal-marketing", "source": {"channel": "web"}, "data": {"full_name": "Grace Hopper"}}),
    );
    assert_eq!(r.json()["code"], "role_not_allowed");
    assert_eq!(audit_entries(v), before + 6);
}

fn the_last_admin_key_cannot_be_revoked(backend: Backend) {
    let Some(f) = fixture(backend) else {
        return;
    };
    let (s, v) = (&f.v.server, &f.v);
    let own_id = v.admin.split('_').take(2).collect::<Vec<_>>().join("_");
    let r = s.request(
        "DELETE",
        &format!("/v1/keys/{own_id}"),
        Some(&v.admin),
        None,
    );
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (409, Some("last_admin_key")),
        "{}",
        r.body
    );
    assert_eq!(s.get("/v1/keys", Some(&v.admin)).status, 200);
    // With a second admin, the first can go.
    let r = s.post("/v1/keys", Some(&v.admin), &json!({"role": "admin"}));
    let second = r.json()["key"].as_str().unwrap().to_string();
    let r = s.request("DELETE", &format!("/v1/keys/{own_id}"), Some(&second), None);
    assert_eq!(r.status, 204, "{}", r.body);
    let second_id = second.split('_').take(2).collect::<Vec<_>>().join("_");
    let r = s.request(
        "DELETE",
        &format!("/v1/keys/{second_id}"),
        Some(&second),
        None,
    );
    assert_eq!(r.status, 409, "{}", r.body);
}
