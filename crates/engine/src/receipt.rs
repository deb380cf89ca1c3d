//! Proof of consent: every consent event exports as a Kantara Consent Receipt
//! v1.1 and as an ISO/IEC TS 27560 record in the W3C DPV JSON-LD profile,
//! both signed together with the controller's Ed25519 receipt key, whose
//! public half is published at `/.well-known/custodian-receipt-key`.

use super::error::Internal;
use super::read::rfc3339;
use super::{App, AppError, Operation, Principal, Role};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use custodian_policy::model::Policy;
use custodian_policy::terms::Sensitivity;
use custodian_vault::crypto::verify_ed25519;
use custodian_vault::store::{ConsentAction, ConsentEvent};
use serde_json::{Value, json};
use uuid::Uuid;

/// JSON with object keys sorted at every level and no insignificant space:
/// the exact bytes a receipt's signature covers.
pub fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        Value::String(k.clone()),
                        map.get(k).map_or_else(String::new, canonical)
                    )
                })
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

fn status_iri(action: ConsentAction) -> &'static str {
    match action {
        ConsentAction::Grant => "dpv:ConsentGiven",
        ConsentAction::Withdraw => "dpv:ConsentWithdrawn",
        ConsentAction::Refuse => "dpv:ConsentRefused",
        // Objections and the soft opt-in are not consent: their records
        // carry no consent status.
        ConsentAction::Object | ConsentAction::Lift | ConsentAction::SoftOptIn => "",
    }
}

/// The Kantara receipt and the 27560 record for one event.
pub fn documents(policy: &Policy, event: &ConsentEvent, public_key: &[u8; 32]) -> (Value, Value) {
    let c = &policy.controller;
    let purpose = event
        .purpose
        .as_deref()
        .and_then(|id| policy.purposes.iter().find(|p| p.id.as_str() == id));
    let categories: Vec<&custodian_policy::model::Category> = purpose
        .map(|p| {
            p.categories
                .iter()
                .filter_map(|r| {
                    let id = r.split('.').next().unwrap_or_default();
                    policy.categories.iter().find(|c| c.id.as_str() == id)
                })
                .collect()
        })
        .unwrap_or_default();
    let recipients: Vec<String> = purpose
        .map(|p| {
            p.recipients
                .iter()
                .filter_map(|r| {
                    policy
                        .recipients
                        .iter()
                        .find(|x| x.id.as_str() == r.as_str())
                        .map(|x| x.name.clone())
                })
                .collect()
        })
        .unwrap_or_default();
    let termination = purpose
        .and_then(|p| p.retention.as_ref())
        .and_then(|r| {
            policy
                .retention
                .iter()
                .find(|x| x.id.as_str() == r.as_str())
        })
        .map_or_else(String::new, |r| r.description.clone());
    let principal = match (&event.subject, &event.visitor) {
        (Some(s), _) => s.to_string(),
        (None, Some(v)) => format!("visitor:{v}"),
        _ => String::new(),
    };
    let timestamp = event.at / 1_000_000;
    let created = rfc3339(event.at);
    let sensitive = categories
        .iter()
        .any(|c| *c.sensitivity == Sensitivity::Special);
    let spi: Vec<String> = categories
        .iter()
        .filter_map(|c| c.art9_condition.as_ref().map(|a| a.to_string()))
        .collect();
    let objection = matches!(event.action, ConsentAction::Object | ConsentAction::Lift);
    let gpc = custodian_policy::consent::has_gpc_scope(&event.method);
    let purpose_text = match purpose {
        Some(p) => p.description.clone(),
        None if event.method == custodian_policy::consent::SALE_OPT_OUT_METHOD => "the sale or sharing of personal data, targeted advertising and third-party marketing cookies (asked for by an authorized agent)".to_string(),
        None if gpc => "the sale or sharing of personal data, targeted advertising and third-party marketing cookies (a Global Privacy Control signal)".to_string(),
        None => "all direct marketing".to_string(),
    };
    let basis_iri = |b: custodian_policy::terms::LegalBasis| {
        use custodian_policy::terms::LegalBasis::*;
        match b {
            Consent => "dpv:Consent",
            Contract => "dpv:Contract",
            LegalObligation => "dpv:LegalObligation",
            LegitimateInterest => "dpv:LegitimateInterest",
            VitalInterest => "dpv:VitalInterest",
            PublicTask => "dpv:PublicInterest",
        }
    };
    // What the event is: a consent choice under the consent basis, or an
    // Art. 21 objection (or its lifting) to processing on whatever basis
    // the purpose names.
    let soft = event.action == ConsentAction::SoftOptIn;
    let consent_type = match event.action {
        ConsentAction::Lift => "OBJECTION-LIFTED",
        ConsentAction::Object => "OBJECTION",
        ConsentAction::SoftOptIn => "SOFT-OPT-IN",
        _ => "EXPLICIT",
    };
    let legal_basis = if objection || soft {
        purpose.map(|p| basis_iri(*p.basis))
    } else {
        Some("dpv:Consent")
    };
    let record_type = match (objection, soft) {
        (true, _) => "dpv:RightExerciseRecord",
        (_, true) => "dpv:Record",
        _ => "dpv:ConsentRecord",
    };
    let not_consent = objection || soft;
    let purpose_dpv = purpose
        .and_then(|p| p.dpv.clone())
        .unwrap_or_else(|| "dpv:DirectMarketing".into());
    let jurisdiction = match *policy.policy.regime {
        custodian_policy::terms::Regime::UkGdpr => "GB",
        custodian_policy::terms::Regime::EuGdpr => "EU",
    };
    let receipt = json!({
        "version": "KI-CR-v1.1.0",
        "jurisdiction": jurisdiction,
        "consentTimestamp": timestamp,
        "collectionMethod": event.method,
        "consentReceiptID": event.id.to_string(),
        "publicKey": URL_SAFE_NO_PAD.encode(public_key),
        "language": "en",
        "piiPrincipalId": principal,
        "piiControllers": [{
            "piiController": c.legal_name.to_string(),
            "onBehalf": false,
            "contact": c.dpo.name.to_string(),
            "address": c.contact_address.to_string(),
            "phone": c.phone,
            "email": c.email.clone().unwrap_or_default(),
            "piiControllerUrl": c.website.clone().unwrap_or_default(),
        }],
        "policyUrl": policy.policy.notice_url,
        "services": [{
            "service": c.trading_name.clone().unwrap_or_else(|| c.legal_name.to_string()),
            "purposes": [{
                "purpose": purpose_text,
                "purposeCategory": [purpose_dpv.clone()],
                "consentType": consent_type,
                "piiCategory": categories.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
                "primaryPurpose": true,
                "termination": termination,
                "thirdPartyDisclosure": !recipients.is_empty(),
                "thirdPartyName": recipients.join(", "),
            }],
        }],
        "sensitive": sensitive,
        "spiCat": spi,
        "x-custodian": {
            "action": event.action.as_str(),
            "channel": event.channel,
            "policyVersion": event.policy_version,
            "purposeId": event.purpose,
        },
    });
    let record = json!({
        "@context": {
            "dpv": "https://w3id.org/dpv#",
            "pd": "https://w3id.org/dpv/pd#",
            "dct": "http://purl.org/dc/terms/",
        },
        "@id": format!("urn:uuid:{}", event.id),
        "@type": record_type,
        "dct:conformsTo": "https://w3id.org/dpv/schema/dpv-27560#record",
        "dct:identifier": event.id.to_string(),
        "dct:created": created,
        "dpv:hasDataSubject": {"@id": format!("urn:custodian:{principal}")},
        "dpv:hasDataController": {"@type": "dpv:DataController", "dct:title": c.legal_name.to_string()},
        "dpv:hasPurpose": {"@type": purpose_dpv, "dct:description": purpose_text},
        "dpv:hasPersonalData": categories.iter().map(|c| c.dpv.clone().unwrap_or_else(|| c.id.to_string())).collect::<Vec<_>>(),
        "dpv:hasLegalBasis": legal_basis,
        "dpv:hasConsentStatus": if not_consent { Value::Null } else { Value::from(status_iri(event.action)) },
        "dpv:hasRight": if objection { Value::from("eu-gdpr:A21") } else { Value::Null },
        "dpv:hasRecipient": recipients,
        "dpv:hasNotice": {"@id": policy.policy.notice_url, "dct:hasVersion": event.policy_version},
        "dpv:isIndicatedBy": event.method,
        "dpv:hasJurisdiction": jurisdiction,
    });
    (receipt, record)
}

/// A signed bundle: `{receipt, record, signature}`.
pub fn sign(app: &App, event: &ConsentEvent) -> Result<Value, AppError> {
    let public = app
        .keys
        .receipt_public_key()
        .ok_or(AppError::Internal(Internal::ReceiptKeyMissing))?;
    let (receipt, record) = documents(&app.policy.document, event, &public);
    let signed = json!({"receipt": receipt, "record": record});
    let message = canonical(&signed);
    let signature = app
        .keys
        .sign_receipt(message.as_bytes())
        .ok_or(AppError::Internal(Internal::ReceiptKeyMissing))?;
    Ok(json!({
        "receipt": at(&signed, &["receipt"]),
        "record": at(&signed, &["record"]),
        "signature": {
            "alg": "EdDSA",
            "crv": "Ed25519",
            "public_key": URL_SAFE_NO_PAD.encode(public),
            "covers": "the canonical JSON (keys sorted, no spaces) of {\"receipt\", \"record\"}",
            "value": URL_SAFE_NO_PAD.encode(signature),
        },
    }))
}

pub async fn receipt(
    app: &App,
    principal: &Principal,
    id: Uuid,
    now: time::OffsetDateTime,
) -> Result<Value, AppError> {
    app.authorize(principal, Operation::ConsentReceipt, now)
        .await?;
    let Some(event) = app.store.consent_event(id).await? else {
        let missing = AppError::NotFound("no consent event with this id".into());
        return Err(app
            .refuse(
                principal,
                Operation::ConsentReceipt,
                None,
                None,
                missing,
                now,
            )
            .await);
    };
    if principal.role == Role::Service
        && !event
            .purpose
            .as_ref()
            .is_some_and(|p| principal.purposes.contains(p))
    {
        let refusal = AppError::ForbiddenCode {
            code: "purpose_not_allowed_for_key",
            detail: "this key is not bound to the event's purpose".into(),
        };
        return Err(app
            .refuse(
                principal,
                Operation::ConsentReceipt,
                event.purpose.as_deref(),
                event.subject,
                refusal,
                now,
            )
            .await);
    }
    sign(app, &event)
}

/// The published public key, as a JWK.
pub fn public_jwk(app: &App) -> Value {
    match app.keys.receipt_public_key() {
        Some(k) => {
            json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "x": URL_SAFE_NO_PAD.encode(k)})
        }
        None => json!({}),
    }
}

/// The value at a path of object keys, or null where there is none.
fn at<'a>(value: &'a Value, path: &[&str]) -> &'a Value {
    static NULL: Value = Value::Null;
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .unwrap_or(&NULL)
}

/// Checks a signed bundle. With `pinned`, the key must also be that one.
pub fn verify(bundle: &Value, pinned: Option<&str>) -> Result<String, String> {
    let sig = at(bundle, &["signature"]);
    let key_text = at(sig, &["public_key"])
        .as_str()
        .ok_or("the receipt has no signature.public_key")?;
    if let Some(p) = pinned {
        if p.trim_end_matches('=') != key_text {
            return Err("the receipt is signed with a different key than the one given".into());
        }
    }
    if at(bundle, &["receipt", "publicKey"]).as_str() != Some(key_text) {
        return Err("the receipt's publicKey does not match the signing key".into());
    }
    let key = URL_SAFE_NO_PAD
        .decode(key_text)
        .map_err(|_| "the public key is not base64url")?;
    let value = URL_SAFE_NO_PAD
        .decode(
            at(sig, &["value"])
                .as_str()
                .ok_or("the receipt has no signature.value")?,
        )
        .map_err(|_| "the signature is not base64url")?;
    let signed = json!({"receipt": at(bundle, &["receipt"]), "record": at(bundle, &["record"])});
    if verify_ed25519(&key, canonical(&signed).as_bytes(), &value) {
        Ok(format!(
            "valid: consent receipt {} ({} of `{}`), signed by key {key_text}",
            at(bundle, &["receipt", "consentReceiptID"])
                .as_str()
                .unwrap_or("?"),
            at(bundle, &["receipt", "x-custodian", "action"])
                .as_str()
                .unwrap_or("?"),
            at(bundle, &["receipt", "x-custodian", "purposeId"])
                .as_str()
                .unwrap_or("all direct marketing"),
        ))
    } else {
        Err("the signature does not match: the receipt was altered or signed by another key".into())
    }
}

#[cfg(test)]
mod tests {
    use super::canonical;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v = json!({"b": 1, "a": {"d": [1, {"z": 2, "y": 1}], "c": "x"}});
        assert_eq!(
            canonical(&v),
            r#"{"a":{"c":"x","d":[1,{"y":1,"z":2}]},"b":1}"#
        );
    }
}
