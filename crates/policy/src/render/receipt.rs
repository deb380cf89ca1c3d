//! Proof of consent: one consent event as a Kantara Consent Receipt v1.1
//! and as an ISO/IEC TS 27560 record in the W3C DPV JSON-LD profile. What
//! the documents say is the policy's; the signature over them is the
//! vault's (`custodian_vault::crypto::canonical_json`), and the use case
//! that hands them out is the engine's.

use crate::consent::{ConsentAction, ConsentEvent};
use crate::model::Policy;
use crate::terms::Sensitivity;
use serde_json::{Value, json};

/// A stored time (unix microseconds) as RFC 3339.
fn rfc3339(micros: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
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
pub fn documents(policy: &Policy, event: &ConsentEvent, public_key_b64url: &str) -> (Value, Value) {
    let c = &policy.controller;
    let purpose = event
        .purpose
        .as_deref()
        .and_then(|id| policy.purposes.iter().find(|p| p.id.as_str() == id));
    let categories: Vec<&crate::model::Category> = purpose
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
    let gpc = crate::consent::has_gpc_scope(&event.method);
    let purpose_text = match purpose {
        Some(p) => p.description.clone(),
        None if event.method == crate::consent::SALE_OPT_OUT_METHOD => "the sale or sharing of personal data, targeted advertising and third-party marketing cookies (asked for by an authorized agent)".to_string(),
        None if gpc => "the sale or sharing of personal data, targeted advertising and third-party marketing cookies (a Global Privacy Control signal)".to_string(),
        None => "all direct marketing".to_string(),
    };
    let basis_iri = |b: crate::terms::LegalBasis| {
        use crate::terms::LegalBasis::*;
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
        crate::terms::Regime::UkGdpr => "GB",
        crate::terms::Regime::EuGdpr => "EU",
    };
    let receipt = json!({
        "version": "KI-CR-v1.1.0",
        "jurisdiction": jurisdiction,
        "consentTimestamp": timestamp,
        "collectionMethod": event.method,
        "consentReceiptID": event.id.to_string(),
        "publicKey": public_key_b64url,
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

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn event(action: ConsentAction, purpose: Option<&str>) -> ConsentEvent {
        ConsentEvent {
            id: Uuid::from_u128(7),
            at: 1_790_000_000_000_000,
            subject: Some(Uuid::from_u128(1)),
            visitor: None,
            purpose: purpose.map(str::to_string),
            channel: Some("email".into()),
            action,
            policy_version: "2.1".into(),
            method: "web-form".into(),
            agent: None,
            wording_hash: None,
            ip_prefix: None,
            recorded_by: "key:test".into(),
            expires_at: None,
        }
    }

    #[test]
    fn a_grant_is_a_consent_receipt_and_a_consent_record() {
        let policy = crate::reference()
            .unwrap_or_else(|e| panic!("{e}"))
            .document;
        let (receipt, record) = documents(
            &policy,
            &event(ConsentAction::Grant, Some("requested-communications")),
            "KEY",
        );
        assert_eq!(receipt["version"], "KI-CR-v1.1.0");
        assert_eq!(receipt["jurisdiction"], "GB");
        assert_eq!(receipt["publicKey"], "KEY");
        assert_eq!(
            receipt["piiControllers"][0]["piiController"],
            policy.controller.legal_name.to_string()
        );
        assert_eq!(
            receipt["services"][0]["purposes"][0]["consentType"],
            "EXPLICIT"
        );
        assert_eq!(record["@type"], "dpv:ConsentRecord");
        assert_eq!(record["dpv:hasConsentStatus"], "dpv:ConsentGiven");
        assert_eq!(record["dpv:hasLegalBasis"], "dpv:Consent");
    }

    #[test]
    fn an_objection_to_all_marketing_is_a_record_of_a_right_exercised() {
        let policy = crate::reference()
            .unwrap_or_else(|e| panic!("{e}"))
            .document;
        let (receipt, record) = documents(&policy, &event(ConsentAction::Object, None), "KEY");
        assert_eq!(
            receipt["services"][0]["purposes"][0]["consentType"],
            "OBJECTION"
        );
        assert_eq!(
            receipt["services"][0]["purposes"][0]["purpose"],
            "all direct marketing"
        );
        assert_eq!(record["@type"], "dpv:RightExerciseRecord");
        assert_eq!(record["dpv:hasRight"], "eu-gdpr:A21");
        assert_eq!(record["dpv:hasConsentStatus"], Value::Null);
    }
}
