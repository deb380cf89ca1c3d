//! Proof of consent: every consent event exports as a Kantara Consent Receipt
//! v1.1 and as an ISO/IEC TS 27560 record in the W3C DPV JSON-LD profile,
//! both signed together with the controller's Ed25519 receipt key, whose
//! public half is published at `/.well-known/custodian-receipt-key`.

use super::error::Internal;
use super::{App, AppError, Operation, Principal, Role};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use custodian_policy::render::receipt::documents;
use custodian_vault::crypto::{canonical_json as canonical, verify_ed25519};
use custodian_vault::store::ConsentEvent;
use serde_json::{Value, json};

/// A signed bundle: `{receipt, record, signature}`.
pub fn sign(app: &App, event: &ConsentEvent) -> Result<Value, AppError> {
    let public = app
        .keys
        .receipt_public_key()
        .ok_or(AppError::Internal(Internal::ReceiptKeyMissing))?;
    let (receipt, record) = documents(&app.policy.document, event, &URL_SAFE_NO_PAD.encode(public));
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
    id: crate::ids::ConsentEventId,
    now: time::OffsetDateTime,
) -> Result<Value, AppError> {
    let id = id.uuid();
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
