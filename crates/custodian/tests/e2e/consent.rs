//! Consent, marketing checks, receipts, cookie consent and Global Privacy
//! Control, through the real server.

use super::vault::{Vault, collect, vault};
use super::*;
use serde_json::json;

both_stores!(
    consent_is_per_channel_withdrawable_and_never_rewritten,
    an_objection_stops_all_marketing_and_suppresses_the_address,
    campaign_lists_stream_back_only_the_allowed,
    global_privacy_control_is_an_objection,
    a_visitors_choices_move_to_the_subject_it_becomes,
    long_campaign_lists_keep_their_order_across_batches,
    an_objection_ends_consents_and_a_later_own_grant_lifts_one_channel,
    objections_are_lifted_and_narrowed_as_events,
    a_gpc_visitor_who_signs_up_can_ask_for_the_newsletter,
    data_from_refused_cookies_is_refused_under_every_basis,
);

/// A subscriber with an email address and, for the first one of a test, +447700900555.
fn subscriber(server: &Server, key: &str, email: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let phone = if email.starts_with("grace@") {
        "+447700900555".to_string()
    } else {
        format!("+4477009{:05}", 10_000 + n)
    };
    collect(
        server,
        key,
        &json!({"purpose": "requested-communications", "data": {"full_name": "Grace Hopper", "email": email, "phone": phone}}),
    )
}

/// Records a consent event; a grant gets the wording shown as its evidence if it has none.
fn consent(server: &Server, key: &str, mut body: serde_json::Value) -> serde_json::Value {
    if body["action"] == "grant" && body.get("evidence").is_none() {
        body["evidence"] = json!({"wording": "Yes, you may contact me about your products"});
    }
    let r = server.post("/v1/consents", Some(key), &body);
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()
}

fn check(server: &Server, key: &str, query: &str) -> serde_json::Value {
    let r = server.get(&format!("/v1/marketing/check?{query}"), Some(key));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn preference<'a>(
    prefs: &'a serde_json::Value,
    purpose: &str,
    channel: Option<&str>,
) -> &'a serde_json::Value {
    prefs
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["purpose"] == purpose && p["channel"].as_str() == channel)
        .unwrap_or_else(|| panic!("no preference for {purpose}/{channel:?} in {prefs}"))
}

fn consent_is_per_channel_withdrawable_and_never_rewritten(v: Vault) {
    let s = &v.server;
    let id = subscriber(s, &v.admin, "grace@example.org");
    // Defaults from the policy: email, phone and SMS off until granted; post on.
    let history = s
        .get(&format!("/v1/subjects/{id}/consents"), Some(&v.admin))
        .json();
    let prefs = &history["preferences"];
    assert_eq!(
        preference(prefs, "requested-communications", Some("email"))["status"],
        "not-given"
    );
    assert_eq!(
        preference(prefs, "requested-communications", Some("sms"))["status"],
        "not-given"
    );
    assert_eq!(
        preference(prefs, "postal-marketing", Some("post"))["status"],
        "on"
    );
    assert_eq!(
        check(s, &v.admin, "channel=email&email=grace@example.org")["reason"],
        "no_consent"
    );

    let granted = consent(
        s,
        &v.admin,
        json!({"subject": id, "purpose": "requested-communications", "channel": "email", "action": "grant",
               "method": "web-form", "evidence": {"wording": "Yes, email me the newsletter", "ip": "203.0.113.45"}}),
    );
    let effective = preference(
        &granted["preferences"],
        "requested-communications",
        Some("email"),
    );
    assert_eq!(
        (
            effective["status"].as_str(),
            effective["effective"].as_bool()
        ),
        (Some("given"), Some(true))
    );
    let a = check(s, &v.admin, "channel=email&email=GRACE@example.org");
    assert_eq!(
        (a["allowed"].as_bool(), a["purpose"].as_str()),
        (Some(true), Some("requested-communications"))
    );
    assert_eq!(
        check(s, &v.admin, "channel=sms&phone=%2B447700900555")["allowed"],
        false
    );
    // A read for email marketing sees the email address and not the phone number.
    let r = s
        .get(
            &format!("/v1/subjects/{id}?purpose=requested-communications&channel=email"),
            Some(&v.admin),
        )
        .json();
    assert_eq!(r["data"]["email"], "grace@example.org");
    assert!(r["data"].get("phone").is_none());

    // Withdrawal is one request, like the grant.
    consent(
        s,
        &v.admin,
        json!({"subject": id, "purpose": "requested-communications", "channel": "email", "action": "withdraw"}),
    );
    assert_eq!(
        check(s, &v.admin, "channel=email&email=grace@example.org")["reason"],
        "consent_withdrawn"
    );
    let history = s
        .get(&format!("/v1/subjects/{id}/consents"), Some(&v.admin))
        .json();
    let events = history["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["action"], "grant");
    assert_eq!(events[0]["ip_prefix"], "203.0.113.0");
    assert_eq!(events[0]["wording_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(events[0]["policy_version"], "2.2");
    assert_eq!(events[1]["action"], "withdraw");
    assert!(
        !history.to_string().contains("203.0.113.45"),
        "the full IP address was stored"
    );

    // Refusals are clear: consent to a purpose that does not rest on it, a channel the purpose lacks.
    let r = s.post(
        "/v1/consents",
        Some(&v.admin),
        &json!({"subject": id, "purpose": "process-orders", "action": "grant"}),
    );
    assert_eq!(
        (r.status, r.json()["errors"][0]["code"].as_str()),
        (422, Some("not_consent_based"))
    );
    let r = s.post("/v1/consents", Some(&v.admin), &json!({"subject": id, "purpose": "requested-communications", "channel": "post", "action": "grant"}));
    // A grant without evidence of what was shown is not provable: refused, nothing recorded.
    let r2 = s.post("/v1/consents", Some(&v.admin), &json!({"subject": id, "purpose": "requested-communications", "channel": "sms", "action": "grant"}));
    assert_eq!(
        (r2.status, r2.json()["errors"][0]["code"].as_str()),
        (422, Some("evidence_required"))
    );
    let unknown = s.post("/v1/consents", Some(&v.admin), &json!({"subject": "01890000-0000-7000-8000-000000000000", "purpose": "requested-communications", "channel": "sms", "action": "grant", "evidence": {"wording": "x"}}));
    assert_eq!(unknown.status, 404);
    assert_eq!(
        s.get(&format!("/v1/subjects/{id}/consents"), Some(&v.admin))
            .json()["events"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(r.json()["errors"][0]["code"], "unknown_channel");
    let r = s.post(
        "/v1/consents",
        Some(&v.admin),
        &json!({"subject": id, "purpose": "requested-communications", "action": "grant"}),
    );
    assert_eq!(r.json()["errors"][0]["code"], "channel_required");
}

fn an_objection_stops_all_marketing_and_suppresses_the_address(v: Vault) {
    let s = &v.server;
    let id = subscriber(s, &v.admin, "ada@objection.example");
    consent(
        s,
        &v.admin,
        json!({"subject": id, "purpose": "requested-communications", "channel": "email", "action": "grant"}),
    );
    assert_eq!(
        check(s, &v.admin, "channel=email&email=ada@objection.example")["allowed"],
        true
    );
    assert_eq!(
        check(s, &v.admin, &format!("channel=post&subject={id}"))["allowed"],
        true
    );
    consent(
        s,
        &v.admin,
        json!({"subject": id, "action": "object", "method": "call-centre", "agent": "agent-7"}),
    );
    assert_eq!(
        check(s, &v.admin, "channel=email&email=ada@objection.example")["reason"],
        "suppressed"
    );
    assert_eq!(
        check(s, &v.admin, &format!("channel=post&subject={id}"))["reason"],
        "objected"
    );
    // Addresses Custodian knows nothing else about can be suppressed too.
    let r = s.post(
        "/v1/marketing/suppressions",
        Some(&v.admin),
        &json!({"channel": "email", "addresses": ["Stranger@Elsewhere.example", "not an address"], "reason": "unsubscribed by reply"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["invalid"], json!([1]));
    assert_eq!(
        check(
            s,
            &v.admin,
            "channel=email&email=stranger@elsewhere.example"
        )["reason"],
        "suppressed"
    );
    assert_eq!(
        check(s, &v.admin, "channel=email&email=other@elsewhere.example")["reason"],
        "unknown"
    );
}

fn campaign_lists_stream_back_only_the_allowed(v: Vault) {
    let s = &v.server;
    let mut expected = Vec::new();
    let mut ids = Vec::new();
    for i in 0..30 {
        let email = format!("reader{i}@list.example");
        let id = subscriber(s, &v.admin, &email);
        if i % 3 == 0 {
            consent(
                s,
                &v.admin,
                json!({"subject": id, "purpose": "requested-communications", "channel": "email", "action": "grant"}),
            );
            // Reader 3 objects afterwards: suppressed, whatever the consent said.
            if i == 3 {
                consent(s, &v.admin, json!({"subject": id, "action": "object"}));
            } else {
                expected.push(email);
            }
        }
        ids.push(id);
    }
    let r = s.post(
        "/v1/marketing/suppressions",
        Some(&v.admin),
        &json!({"channel": "email", "addresses": ["reader6@list.example"]}),
    );
    assert_eq!(r.status, 201);
    expected.retain(|e| e != "reader6@list.example");
    let mut body = String::from("{\"channel\":\"email\"}\n");
    for i in 0..2_000 {
        body.push_str(&format!("reader{i}@list.example\n"));
    }
    // A subject id on its own line is checked too; one without consent is not returned.
    body.push_str(&format!("{}\n{}\n", ids[9], ids[1]));
    expected.push(ids[9].clone());
    body.push_str("not-an-address\n\n");
    let r = s.request("POST", "/v1/marketing/check", Some(&v.admin), Some(&body));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(allowed_lines(&r), expected);
    let r = s.request(
        "POST",
        "/v1/marketing/check",
        Some(&v.admin),
        Some("{\"channel\":\"fax\"}\nx@y.example\n"),
    );
    assert_eq!(r.status, 422);
}

/// The lines a streamed campaign check answered, each a JSON string (the
/// client has joined the answer's chunks).
fn allowed_lines(r: &Reply) -> Vec<String> {
    r.body
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str::<String>(l).unwrap())
        .collect()
}

#[test]
fn receipts_are_signed_and_verifiable() {
    let v = vault(&[]);
    let s = &v.server;
    let id = subscriber(s, &v.admin, "receipt@example.org");
    let event = consent(
        s,
        &v.admin,
        json!({"subject": id, "purpose": "requested-communications", "channel": "sms", "action": "grant", "evidence": {"wording": "Text me offers"}}),
    )["event"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s.get(&format!("/v1/consents/{event}/receipt"), Some(&v.admin));
    assert_eq!(r.status, 200, "{}", r.body);
    let bundle = r.json();
    let receipt = &bundle["receipt"];
    assert_eq!(receipt["version"], "KI-CR-v1.1.0");
    assert!(receipt["consentTimestamp"].is_i64());
    assert_eq!(receipt["consentReceiptID"], event.as_str());
    assert_eq!(receipt["piiPrincipalId"], id.as_str());
    assert_eq!(
        receipt["piiControllers"][0]["piiController"],
        "i-Image IT Limited"
    );
    assert_eq!(
        receipt["policyUrl"],
        "https://www.iimageit.com/privacy-policy"
    );
    let purpose = &receipt["services"][0]["purposes"][0];
    for key in [
        "purpose",
        "purposeCategory",
        "consentType",
        "piiCategory",
        "primaryPurpose",
        "termination",
        "thirdPartyDisclosure",
        "thirdPartyName",
    ] {
        assert!(purpose.get(key).is_some(), "{key} missing from {purpose}");
    }
    assert!(receipt.get("sensitive").is_some() && receipt.get("spiCat").is_some());
    let record = &bundle["record"];
    assert_eq!(
        record["dct:conformsTo"],
        "https://w3id.org/dpv/schema/dpv-27560#record"
    );
    assert_eq!(record["dpv:hasConsentStatus"], "dpv:ConsentGiven");

    let scratch = Scratch::new("receipt");
    let file = scratch.write("receipt.json", &r.body);
    let key = s.get("/.well-known/custodian-receipt-key", None).json();
    let x = key["x"].as_str().unwrap();
    let out = run(&[
        "receipt",
        "verify",
        file.to_str().unwrap(),
        "--public-key",
        x,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("valid"));
    // A key that starts with `-` (one in 64 do) is a value, not a flag:
    // pinned to another key, the receipt is refused, not misparsed.
    let out = run(&[
        "receipt",
        "verify",
        file.to_str().unwrap(),
        "--public-key",
        "-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("unexpected argument"));
    let altered = r
        .body
        .replacen("Text me offers", "x", 1)
        .replacen("\"sms\"", "\"email\"", 1);
    let bad = scratch.write("altered.json", &altered);
    let out = run(&[
        "receipt",
        "verify",
        bad.to_str().unwrap(),
        "--public-key",
        x,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("INVALID"));
    // Issue 10: without a key it trusts, nothing is verified: a receipt
    // signed by any server would carry its own key.
    let empty = scratch.arg("no-node-here");
    let out = run(&[
        "receipt",
        "verify",
        file.to_str().unwrap(),
        "--data-dir",
        &empty,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("the signer is not pinned"),
        "{}",
        text(&out.stderr)
    );
    // The signing node's own key file pins it.
    let data = v.scratch.arg("data");
    let out = run(&[
        "receipt",
        "verify",
        file.to_str().unwrap(),
        "--data-dir",
        &data,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = run(&[
        "receipt",
        "verify",
        file.to_str().unwrap(),
        "--public-key",
        "AAAA",
    ]);
    assert_eq!(out.status.code(), Some(1));
}

fn global_privacy_control_is_an_objection(v: Vault) {
    let s = &v.server;
    let gpc = s.get("/.well-known/gpc.json", None).json();
    assert_eq!(gpc["gpc"], true);
    assert_eq!(gpc["lastUpdate"], "2026-12-01");
    let choose = |headers: &str, visitor: &str| {
        let body = json!({"visitor": visitor, "choices": {"analytics": true, "functional": false}, "wording_sha256": "ab".repeat(32)})
            .to_string();
        let mut stream = std::net::TcpStream::connect(&s.addr).unwrap();
        use std::io::{Read, Write};
        write!(
            stream,
            "POST /v1/cookie-consent HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 201"), "{out}");
    };
    let events = |visitor: &str| {
        s.get(&format!("/v1/visitors/{visitor}/consents"), Some(&v.admin))
            .json()["events"]
            .clone()
    };
    choose("Sec-GPC: 1\r\n", "visitor-with-gpc-0001");
    let e = events("visitor-with-gpc-0001");
    assert!(
        e.as_array()
            .unwrap()
            .iter()
            .any(|x| x["action"] == "object" && x["method"] == "gpc" && x["purpose"].is_null()),
        "{e}"
    );
    assert!(
        e.as_array()
            .unwrap()
            .iter()
            .any(|x| x["action"] == "grant" && x["purpose"] == "cookie-analytics")
    );
    choose("Sec-GPC: 0\r\n", "visitor-without-gpc-1");
    assert!(
        !events("visitor-without-gpc-1")
            .to_string()
            .contains("\"object\"")
    );
    choose("Sec-GPC: 0\r\nSec-GPC: 1\r\n", "visitor-two-headers-1");
    assert!(
        events("visitor-two-headers-1")
            .to_string()
            .contains("\"gpc\"")
    );
    choose("", "visitor-no-header-001");
    assert!(
        !events("visitor-no-header-001")
            .to_string()
            .contains("\"object\"")
    );
}

fn a_visitors_choices_move_to_the_subject_it_becomes(v: Vault) {
    let s = &v.server;
    let r = s.post(
        "/v1/cookie-consent",
        None,
        &json!({"choices": {"analytics": true, "functional": true}}),
    );
    assert_eq!(
        (r.status, r.json()["errors"][0]["code"].as_str()),
        (422, Some("evidence_required"))
    );
    // A hash that is not one is refused, even with nothing accepted.
    let r = s.post(
        "/v1/cookie-consent",
        None,
        &json!({"choices": {"analytics": false}, "wording_sha256": ""}),
    );
    assert_eq!(
        (r.status, r.json()["errors"][0]["code"].as_str()),
        (422, Some("invalid_value"))
    );
    let r = s.post("/v1/cookie-consent", None, &json!({"choices": {"analytics": true, "functional": true}, "wording_sha256": "cd".repeat(32)}));
    assert_eq!(r.status, 201, "{}", r.body);
    let visitor = r.json()["visitor"].as_str().unwrap().to_string();
    let id = subscriber(s, &v.admin, "signup@example.org");
    let r = s.post(
        &format!("/v1/visitors/{visitor}/link"),
        Some(&v.admin),
        &json!({"subject": id}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let history = r.json();
    assert_eq!(
        preference(&history["preferences"], "cookie-analytics", None)["status"],
        "given"
    );
    // Ticking "functional" consents to the functional cookies' own purpose,
    // not to the features that read name, username and comments.
    assert_eq!(
        preference(&history["preferences"], "remember-login", None)["status"],
        "given"
    );
    assert_eq!(
        preference(&history["preferences"], "interactive-features", None)["status"],
        "not-given"
    );
    // The visitor's own method stays: linking is not a new choice.
    assert!(
        history["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["method"] == "web-form"),
        "{history}"
    );
    // The subject's analytics read now has a consent to rest on.
    let other = subscriber(s, &v.admin, "other@example.org");
    let r = s.post(
        &format!("/v1/visitors/{visitor}/link"),
        Some(&v.admin),
        &json!({"subject": other}),
    );
    assert_eq!(r.status, 409);
}

#[test]
fn a_material_change_asks_for_consent_again() {
    let scratch = Scratch::new("renewal");
    let data = scratch.arg("data");
    let first = Server::start(&["--data-dir", &data]);
    let admin = first.admin_key.clone().unwrap();
    let id = subscriber(&first, &admin, "renew@example.org");
    consent(
        &first,
        &admin,
        json!({"subject": id, "purpose": "requested-communications", "channel": "email", "action": "grant"}),
    );
    let visitor = first
        .post(
            "/v1/cookie-consent",
            None,
            &json!({"choices": {"analytics": true}, "wording_sha256": "ef".repeat(32)}),
        )
        .json()["visitor"]
        .clone();
    assert!(visitor.is_string());
    assert_eq!(first.stop(), Some(0));

    // Version 2.3: the newsletter purpose now also uses postal addresses (material).
    let changed = reference_text()
        .replacen("version = \"2.2\"", "version = \"2.3\"", 1)
        .replacen("categories = [\"name\", \"email\", \"phone\"]\nsubjects = [\"customers\", \"prospects\"]", "categories = [\"name\", \"email\", \"phone\", \"postal-address\"]\nsubjects = [\"customers\", \"prospects\"]", 1);
    assert_ne!(changed, reference_text());
    let file = scratch.write("v21.toml", &changed);
    let second = Server::start(&["--data-dir", &data, "--policy", file.to_str().unwrap()]);
    let prefs = second
        .get(&format!("/v1/subjects/{id}/consents"), Some(&admin))
        .json()["preferences"]
        .clone();
    let email = preference(&prefs, "requested-communications", Some("email"));
    assert_eq!(
        (
            email["needs_renewal"].as_bool(),
            email["effective"].as_bool()
        ),
        (Some(true), Some(false)),
        "{email}"
    );
    assert_eq!(
        check(&second, &admin, "channel=email&email=renew@example.org")["allowed"],
        false
    );
    // Cookie purposes did not change: the banner need not ask again.
    let renewal = second
        .get("/v1/cookie-consent/renewal?since=2.2", None)
        .json();
    assert_eq!(renewal["renew"], false);
    // Consent given again under 2.3 is effective.
    consent(
        &second,
        &admin,
        json!({"subject": id, "purpose": "requested-communications", "channel": "email", "action": "grant"}),
    );
    assert_eq!(
        check(&second, &admin, "channel=email&email=renew@example.org")["allowed"],
        true
    );
    assert_eq!(second.stop(), Some(0));

    // The same version number with other content is refused.
    let sneaky = scratch.write(
        "sneaky.toml",
        &changed.replacen("version = \"2.3\"", "version = \"2.2\"", 1),
    );
    let out = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &data,
        "--policy",
        sneaky.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("give the changed policy a new version"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_banner_script_is_small_and_self_contained() {
    let v = vault(&[]);
    let r = v.server.get("/consent.js", None);
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(
        r.body.len() < 10 * 1024,
        "consent.js is {} bytes",
        r.body.len()
    );
    assert!(!r.body.contains("https://") && !r.body.contains("http://"));
    assert!(r.body.contains("\"analytics\"") && r.body.contains("globalPrivacyControl"));
    assert!(
        v.server
            .get("/consent/preview", None)
            .body
            .contains("/consent.js")
    );
    // The lifetime of the choice and where it is kept come from the policy.
    assert!(
        r.body.contains("\"lifetimeDays\":183"),
        "6 months, as the policy says"
    );
    assert!(r.body.contains("\"key\":\"cookie_choices\""));
    assert!(r.body.contains("\"firstParty\":[\"remember_login\"]"));
    // The cookie policy page carries the control that changes the choice.
    let page = v.server.get("/cookies", None).body;
    assert!(
        page.contains("data-custodian-show") && page.contains("/consent.js"),
        "{page}"
    );
}

/// Issue 10: consent.js is served compressed (gzip and Brotli, compressed
/// once at start) with an ETag and caching headers.
#[test]
fn the_banner_script_is_served_compressed_with_an_etag() {
    let v = vault(&[]);
    let raw = |headers: &str| -> (String, Vec<u8>) {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&v.server.addr).unwrap();
        write!(
            stream,
            "GET /consent.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n"
        )
        .unwrap();
        let mut out = Vec::new();
        stream.read_to_end(&mut out).unwrap();
        let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        (
            String::from_utf8_lossy(&out[..split]).to_lowercase(),
            out[split + 4..].to_vec(),
        )
    };
    let plain = v.server.get("/consent.js", None);
    let (head, br) = raw("Accept-Encoding: gzip, deflate, br\r\n");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-encoding: br"), "{head}");
    assert!(head.contains("vary: accept-encoding"), "{head}");
    assert!(
        head.contains("cache-control: public, max-age=300"),
        "{head}"
    );
    assert!(
        br.len() * 2 < plain.body.len(),
        "{} vs {}",
        br.len(),
        plain.body.len()
    );
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .unwrap()
        .trim()
        .to_string();
    let (head, gz) = raw("Accept-Encoding: gzip\r\n");
    assert!(head.contains("content-encoding: gzip"), "{head}");
    assert_eq!(&gz[..2], &[0x1f, 0x8b], "not gzip");
    let (head, _) = raw("Accept-Encoding: br;q=0, gzip;q=0\r\n");
    assert!(!head.contains("content-encoding"), "{head}");
    let (head, body) = raw(&format!("Accept-Encoding: br\r\nIf-None-Match: {etag}\r\n"));
    assert!(head.starts_with("http/1.1 304"), "{head}");
    assert!(body.is_empty());
}

fn long_campaign_lists_keep_their_order_across_batches(v: Vault) {
    let s = &v.server;
    let mut allowed = Vec::new();
    for i in 0..4 {
        let email = format!("fan{i}@order.example");
        let id = subscriber(s, &v.admin, &email);
        consent(
            s,
            &v.admin,
            json!({"subject": id, "purpose": "requested-communications", "channel": "email", "action": "grant"}),
        );
        allowed.push(email);
    }
    // About 2 MB: decided in several batches at once, answered in list order.
    // An overlong line (longer than a batch) is skipped; the next line is not.
    let mut body = String::from("{\"channel\":\"email\"}\n");
    let mut expected = Vec::new();
    for i in 0..80_000 {
        if i % 20_000 == 7 {
            let fan = &allowed[i / 20_000];
            body.push_str(&format!("{fan}\n"));
            expected.push(fan.clone());
        } else if i == 50_000 {
            body.push_str(&"x".repeat(600_000));
            body.push('\n');
            body.push_str(&format!("\"{}\"\n", allowed[0].to_uppercase()));
            expected.push(allowed[0].to_uppercase());
        } else {
            body.push_str(&format!("stranger{i}@order.example\n"));
        }
    }
    let r = s.request("POST", "/v1/marketing/check", Some(&v.admin), Some(&body));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(allowed_lines(&r), expected);
}

fn audit_count(s: &Server, key: &str) -> i64 {
    let r = s.get("/v1/audit/verify", Some(key)).json();
    assert_eq!(r["intact"], true, "{r}");
    r["entries"].as_i64().unwrap()
}

fn refused_code(s: &Server, key: &str, body: serde_json::Value) -> (u16, String) {
    let r = s.post("/v1/consents", Some(key), &body);
    (
        r.status,
        r.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// Issue 10: grant SMS, object to the purpose on every channel, grant email
/// only: SMS stays ended and objected; the person's own later grant lifts
/// the objection for email alone, and post stays objected after a general
/// objection.
fn an_objection_ends_consents_and_a_later_own_grant_lifts_one_channel(v: Vault) {
    let s = &v.server;
    let id = subscriber(s, &v.admin, "grace@lift.example");
    let rc = "requested-communications";
    consent(
        s,
        &v.admin,
        json!({"subject": id, "purpose": rc, "channel": "sms", "action": "grant"}),
    );
    consent(
        s,
        &v.admin,
        json!({"subject": id, "purpose": rc, "action": "object"}),
    );
    let granted = consent(
        s,
        &v.admin,
        json!({"subject": id, "purpose": rc, "channel": "email", "action": "grant"}),
    );
    let prefs = &granted["preferences"];
    assert_eq!(preference(prefs, rc, Some("sms"))["status"], "objected");
    assert_eq!(preference(prefs, rc, Some("sms"))["effective"], false);
    assert_eq!(preference(prefs, rc, Some("email"))["status"], "given");
    assert_eq!(
        check(s, &v.admin, &format!("channel=sms&subject={id}"))["reason"],
        "objected"
    );
    assert_eq!(
        check(s, &v.admin, &format!("channel=email&subject={id}"))["allowed"],
        true
    );

    // A general objection, then the person's own newsletter grant by email.
    let other = subscriber(s, &v.admin, "ada@lift.example");
    consent(s, &v.admin, json!({"subject": other, "action": "object"}));
    // Asking an objector to opt back in is marketing: a grant that our own
    // marketing prompted is refused, and nothing is recorded.
    assert_eq!(
        refused_code(
            s,
            &v.admin,
            json!({"subject": other, "purpose": rc, "channel": "email", "action": "grant", "method": "re-permission", "evidence": {"wording": "Come back?"}})
        ),
        (422, "repermission_refused".to_string())
    );
    // An import is not the person's own act after the objection.
    assert_eq!(
        refused_code(
            s,
            &v.admin,
            json!({"subject": other, "purpose": rc, "channel": "email", "action": "grant", "method": "import", "evidence": {"wording": "Imported"}})
        ),
        (422, "objected".to_string())
    );
    consent(
        s,
        &v.admin,
        json!({"subject": other, "purpose": rc, "channel": "email", "action": "grant", "method": "web-form", "evidence": {"wording": "Email me the newsletter"}}),
    );
    assert_eq!(
        check(s, &v.admin, "channel=email&email=ada@lift.example")["allowed"],
        true
    );
    assert_eq!(
        check(s, &v.admin, &format!("channel=post&subject={other}"))["reason"],
        "objected"
    );
    assert_eq!(
        check(s, &v.admin, &format!("channel=sms&subject={other}"))["allowed"],
        false
    );
}

/// Issue 10: an objection to postal marketing alone is lifted by the
/// person; a general objection is narrowed to some channels; each is an
/// event in the ledger.
fn objections_are_lifted_and_narrowed_as_events(v: Vault) {
    let s = &v.server;
    let id = subscriber(s, &v.admin, "post@lift.example");
    consent(
        s,
        &v.admin,
        json!({"subject": id, "purpose": "postal-marketing", "action": "object"}),
    );
    assert_eq!(
        check(s, &v.admin, &format!("channel=post&subject={id}"))["reason"],
        "objected"
    );
    assert_eq!(
        refused_code(
            s,
            &v.admin,
            json!({"subject": id, "purpose": "postal-marketing", "action": "lift", "method": "re-permission"})
        ),
        (422, "repermission_refused".to_string())
    );
    consent(
        s,
        &v.admin,
        json!({"subject": id, "purpose": "postal-marketing", "action": "lift"}),
    );
    assert_eq!(
        check(s, &v.admin, &format!("channel=post&subject={id}"))["allowed"],
        true
    );
    consent(s, &v.admin, json!({"subject": id, "action": "object"}));
    consent(
        s,
        &v.admin,
        json!({"subject": id, "action": "lift", "channel": "post"}),
    );
    assert_eq!(
        check(s, &v.admin, &format!("channel=post&subject={id}"))["allowed"],
        true
    );
    consent(
        s,
        &v.admin,
        json!({"subject": id, "purpose": "requested-communications", "channel": "email", "action": "grant", "method": "call-centre", "agent": "agent-1"}),
    );
    // Granted over the phone after the objection: the person's own act.
    assert_eq!(
        check(s, &v.admin, &format!("channel=email&subject={id}"))["allowed"],
        true
    );
    let history = s
        .get(&format!("/v1/subjects/{id}/consents"), Some(&v.admin))
        .json();
    let actions: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["object", "lift", "object", "lift", "grant"]);
}

/// Issue 10: GPC is an objection to sale or sharing, targeted advertising
/// and third-party marketing cookies, not to first-party marketing; its
/// method stays `gpc` through linking; its receipt describes an objection.
fn a_gpc_visitor_who_signs_up_can_ask_for_the_newsletter(v: Vault) {
    let s = &v.server;
    let body = json!({"visitor": "visitor-gpc-signup-01", "choices": {"analytics": false, "functional": false}})
        .to_string();
    let mut stream = std::net::TcpStream::connect(&s.addr).unwrap();
    {
        use std::io::{Read, Write};
        write!(
            stream,
            "POST /v1/cookie-consent HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nSec-GPC: 1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 201"), "{out}");
    }
    let id = subscriber(s, &v.admin, "gpc@signup.example");
    let r = s.post(
        "/v1/visitors/visitor-gpc-signup-01/link",
        Some(&v.admin),
        &json!({"subject": id}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let linked = r.json();
    let objection = linked["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "object")
        .unwrap_or_else(|| panic!("{linked}"))
        .clone();
    assert_eq!(objection["method"], "gpc");
    // Post (first-party, legitimate interests) is not reached by the signal.
    assert_eq!(
        check(s, &v.admin, &format!("channel=post&subject={id}"))["allowed"],
        true
    );
    consent(
        s,
        &v.admin,
        json!({"subject": id, "purpose": "requested-communications", "channel": "email", "action": "grant", "evidence": {"wording": "Email me the newsletter"}}),
    );
    assert_eq!(
        check(s, &v.admin, "channel=email&email=gpc@signup.example")["allowed"],
        true
    );
    let receipt = s
        .get(
            &format!("/v1/consents/{}/receipt", objection["id"].as_str().unwrap()),
            Some(&v.admin),
        )
        .json();
    let purpose = &receipt["receipt"]["services"][0]["purposes"][0];
    assert_eq!(purpose["consentType"], "OBJECTION", "{receipt}");
    assert!(
        purpose["purpose"]
            .as_str()
            .unwrap()
            .contains("sale or sharing")
    );
    assert_eq!(receipt["record"]["@type"], "dpv:RightExerciseRecord");
    assert_eq!(receipt["record"]["dpv:hasRight"], "eu-gdpr:A21");
    assert!(receipt["record"]["dpv:hasLegalBasis"].is_null());
    assert!(receipt["record"]["dpv:hasConsentStatus"].is_null());
}

/// Issue 10, PECR reg. 6: analytics data about someone who refused
/// analytics cookies is neither read nor disclosed, also for the
/// legitimate-interest purpose `analytics-research`.
fn data_from_refused_cookies_is_refused_under_every_basis(v: Vault) {
    let s = &v.server;
    let id = collect(
        s,
        &v.admin,
        &json!({"purpose": "analytics-research", "data": {"ip_address": "203.0.113.77", "referrer": "https://search.example/q"}}),
    );
    let read = |s: &Server| {
        s.get(
            &format!("/v1/subjects/{id}?purpose=analytics-research"),
            Some(&v.admin),
        )
        .json()
    };
    assert_eq!(read(s)["data"]["ip_address"], "203.0.113.77");
    let r = s.post(
        "/v1/consents",
        Some(&v.admin),
        &json!({"subject": id, "purpose": "cookie-analytics", "action": "refuse"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let after = read(s);
    assert!(after["data"].get("ip_address").is_none(), "{after}");
    assert!(after["data"].get("referrer").is_none(), "{after}");
    assert!(
        after["refused"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["field"] == "ip_address" && x["reason"] == "cookie_consent_refused"),
        "{after}"
    );
    let d = s.post(
        "/v1/disclosures",
        Some(&v.admin),
        &json!({"recipient": "web-analytics", "purpose": "analytics-research", "subjects": [id]}),
    );
    assert_eq!(d.status, 200, "{}", d.body);
    let d = d.json();
    assert!(d["results"][0]["data"].get("ip_address").is_none(), "{d}");
    assert!(d.to_string().contains("cookie_consent_refused"), "{d}");
    // Security logs do not come from cookies: still read.
    let sec = s
        .get(
            &format!("/v1/subjects/{id}?purpose=security"),
            Some(&v.admin),
        )
        .json();
    assert_eq!(sec["data"]["ip_address"], "203.0.113.77", "{sec}");
}

/// Issue 10: marketing checks are counted, not audited one by one; a
/// campaign check appends one entry.
#[test]
fn checks_are_not_audited_one_by_one_and_a_campaign_once() {
    let v = vault(&[]);
    let s = &v.server;
    let id = subscriber(s, &v.admin, "count@example.org");
    consent(
        s,
        &v.admin,
        json!({"subject": id, "purpose": "requested-communications", "channel": "email", "action": "grant"}),
    );
    // What counting the entries adds by itself.
    let first = audit_count(s, &v.admin);
    let before = audit_count(s, &v.admin);
    let own = before - first;
    for _ in 0..5 {
        check(s, &v.admin, "channel=email&email=count@example.org");
    }
    assert_eq!(audit_count(s, &v.admin), before + own);
    let before = audit_count(s, &v.admin);
    let r = s.request(
        "POST",
        "/v1/marketing/check",
        Some(&v.admin),
        Some("{\"channel\":\"email\"}\ncount@example.org\nnobody@example.org\n"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(allowed_lines(&r), ["count@example.org"]);
    assert_eq!(audit_count(s, &v.admin), before + own + 1);
    // The entry: the key, the channel, lines in and allowed, the list's SHA-256.
    let db = rusqlite::Connection::open(
        std::path::Path::new(&v.scratch.arg("data")).join("custodian.db"),
    )
    .unwrap();
    let (actor, reason): (String, String) = db
        .query_row(
            "SELECT actor, reason FROM audit WHERE action = 'marketing.campaign-check'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(actor.starts_with("key:ck_"), "{actor}");
    // SHA-256 of "count@example.org\nnobody@example.org\n".
    assert_eq!(
        reason,
        "channel=email lines_in=2 lines_allowed=1 list_sha256=fa507ddc9942d6a7b3b8e802d376d1f5f782c8b11e41ecb82e33660fa3bc9b82"
    );
}

/// Issue 10, PECR reg. 21: live calls are never made to a number on the
/// TPS lists, which the organisation loads from files; automated calls
/// need consent like email.
#[test]
fn live_calls_are_screened_against_the_tps_lists() {
    let v = vault(&[]);
    let s = &v.server;
    let id = subscriber(s, &v.admin, "grace@calls.example");
    consent(
        s,
        &v.admin,
        json!({"subject": id, "purpose": "requested-communications", "channel": "phone", "action": "grant"}),
    );
    assert_eq!(
        check(s, &v.admin, "channel=phone&phone=%2B447700900555")["allowed"],
        true
    );
    // Automated calls are a channel of their own, needing their own consent.
    assert_eq!(
        check(s, &v.admin, "channel=automated-call&phone=%2B447700900555")["reason"],
        "no_consent"
    );
    let mut list = String::from("number\n");
    for i in 0..25_000 {
        list.push_str(&format!("0161 496 {:04}\n", i % 10_000));
    }
    list.push_str("07700 900555\n");
    let file = v.scratch.write("tps.txt", &list);
    let out = run(&[
        "suppressions",
        "import",
        "--list",
        "tps",
        file.to_str().unwrap(),
        "--data-dir",
        &v.scratch.arg("data"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("25001 numbers loaded"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("lines read"),
        "no progress shown"
    );
    assert_eq!(
        check(s, &v.admin, "channel=phone&phone=%2B447700900555")["reason"],
        "tps"
    );
    assert_eq!(
        check(s, &v.admin, &format!("channel=phone&subject={id}"))["reason"],
        "tps"
    );
    // SMS is not a call: the TPS does not reach it.
    consent(
        s,
        &v.admin,
        json!({"subject": id, "purpose": "requested-communications", "channel": "sms", "action": "grant"}),
    );
    assert_eq!(
        check(s, &v.admin, "channel=sms&phone=%2B447700900555")["allowed"],
        true
    );
    let r = s.request(
        "POST",
        "/v1/marketing/check",
        Some(&v.admin),
        Some("{\"channel\":\"phone\"}\n+447700900555\n"),
    );
    assert_eq!(allowed_lines(&r), Vec::<String>::new());
    let out = run(&[
        "suppressions",
        "import",
        "--list",
        "dnc",
        file.to_str().unwrap(),
        "--data-dir",
        &v.scratch.arg("data"),
    ]);
    assert_eq!(out.status.code(), Some(1));
}

/// Issue 10, PECR reg. 22(3): the soft opt-in covers only known people
/// whose details were obtained in a sale, for the controller's own similar
/// products, with the refusal offered at collection and not taken since;
/// never a stranger or a person without such a relationship.
#[test]
fn the_soft_opt_in_is_no_switch_that_makes_email_opt_out() {
    let policy = reference_text()
        .replacen("soft_opt_in = false", "soft_opt_in = true", 1)
        .replacen(
            "channels = [\"email\", \"phone\", \"sms\", \"automated-call\"]",
            "channels = [\"phone\", \"sms\", \"automated-call\"]",
            1,
        )
        .replacen(
            "channel = \"email\"\nmode = \"opt-in\"",
            "channel = \"email\"\nmode = \"opt-out\"",
            1,
        )
        .replacen(
            "[[relationships]]\nid = \"order\"",
            "[[relationships]]\nid = \"order\"\nsale = true",
            1,
        )
        .replacen(
            "[[purposes]]\nid = \"job-applications\"",
            "[[purposes]]\nid = \"customer-offers\"\nname = \"Offers on what you bought from us\"\ndescription = \"Emailing our customers about our own products like those they bought.\"\nbasis = \"legitimate-interest\"\ninterest = \"Telling customers about products like theirs.\"\nlia = \"LIA-TEST\"\nmarketing = true\nsimilar_products = true\nchannels = [\"email\"]\ncategories = [\"name\", \"email\"]\nsubjects = [\"customers\"]\nretention = \"marketing-inactive-2y\"\n\n[[purposes]]\nid = \"job-applications\"",
            1,
        )
        .replacen("version = \"2.2\"", "version = \"2.2-soft\"", 1);
    let scratch = Scratch::new("soft-opt-in");
    let file = scratch.write("policy.toml", &policy);
    let out = run(&["policy", "check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let v = vault(&["--policy", file.to_str().unwrap()]);
    let s = &v.server;
    let co = "channel=email&purpose=customer-offers";
    // A stranger's address: never.
    assert_eq!(
        check(s, &v.admin, &format!("{co}&email=stranger@soft.example"))["reason"],
        "unknown"
    );
    // A person with no sale relationship (an enquiry): never.
    let patient = collect(
        s,
        &v.admin,
        &json!({"purpose": "customer-offers", "data": {"full_name": "Pat", "email": "patient@soft.example"}}),
    );
    let r = s.post(
        &format!("/v1/subjects/{patient}/relationships"),
        Some(&v.admin),
        &json!({"kind": "enquiry", "status": "active"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let offered = json!({"purpose": "customer-offers", "channel": "email", "action": "soft-opt-in", "evidence": {"wording": "Untick if you do not want offers on similar products"}});
    let mut body = offered.clone();
    body["subject"] = json!(patient);
    consent(s, &v.admin, body);
    assert_ne!(
        check(s, &v.admin, &format!("{co}&email=patient@soft.example"))["allowed"],
        true
    );
    // A customer with an order, and the refusal offered at collection.
    let customer = collect(
        s,
        &v.admin,
        &json!({"purpose": "customer-offers", "data": {"full_name": "Cu", "email": "customer@soft.example"}}),
    );
    let r = s.post(
        &format!("/v1/subjects/{customer}/relationships"),
        Some(&v.admin),
        &json!({"kind": "order", "status": "active"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        check(s, &v.admin, &format!("{co}&email=customer@soft.example"))["allowed"],
        false,
        "no refusal was offered at collection"
    );
    let mut body = offered.clone();
    body["subject"] = json!(customer);
    consent(s, &v.admin, body);
    let a = check(s, &v.admin, &format!("{co}&email=customer@soft.example"));
    assert_eq!(a["allowed"], true, "{a}");
    assert_eq!(a["reason"], "soft_opt_in");
    assert!(
        a["condition"]
            .as_str()
            .unwrap()
            .contains("simple means of refusing")
    );
    // Refused since: over.
    consent(
        s,
        &v.admin,
        json!({"subject": customer, "purpose": "customer-offers", "channel": "email", "action": "refuse"}),
    );
    assert_eq!(
        check(s, &v.admin, &format!("{co}&email=customer@soft.example"))["allowed"],
        false
    );
}
