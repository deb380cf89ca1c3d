//! Cookie consent from the banner (`/consent.js`): a visitor's choice per
//! cookie category, recorded as consent events for the purposes that cover
//! those cookies; Global Privacy Control recorded as an objection.

use super::collect::micros;
use super::consent::valid_visitor_id;
use super::error::{FieldProblem, written};
use super::{App, AppError};
use crate::audit_action::AuditAction;
use custodian_policy::terms::CookieCategory;
use custodian_policy::values;
use custodian_vault::audit::AuditDraft;
use custodian_vault::crypto::{new_id, random_bytes};
use custodian_vault::store::{Batch, ConsentAction, ConsentEvent, WriteOp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CookieChoice {
    /// The visitor's pseudonymous id; a new one is made when absent.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^[A-Za-z0-9_-]{16,64}$", min_length = 16, max_length = 64)
    )]
    pub visitor: Option<String>,
    /// Category (functional, analytics, marketing) to accepted or not.
    /// Strictly necessary cookies need no choice.
    pub choices: BTreeMap<String, bool>,
    /// SHA-256 (hex) of the banner's wording, as shown.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9a-fA-F]{64}$"))]
    pub wording_sha256: Option<String>,
    /// The browser's `navigator.globalPrivacyControl`, as the banner saw it.
    #[serde(default)]
    pub gpc: bool,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CookieChoiceResponse {
    pub visitor: String,
    /// What was recorded, per category, after Global Privacy Control.
    pub choices: BTreeMap<String, bool>,
    pub gpc: bool,
    pub policy_version: String,
}

/// The purposes that cover the cookies of one category.
fn purposes_of(app: &App, category: CookieCategory) -> Vec<String> {
    let mut out: Vec<String> = app
        .policy
        .document
        .cookies
        .iter()
        .filter(|c| *c.category == category)
        .filter_map(|c| c.purpose.as_ref().map(|p| p.to_string()))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The categories a banner choice can name to record something: those
/// whose cookies serve a purpose of the policy.
pub fn choice_categories(app: &App) -> Vec<&'static str> {
    CookieCategory::ALL
        .iter()
        .filter(|c| !purposes_of(app, **c).is_empty())
        .map(|c| c.as_str())
        .collect()
}

fn category(name: &str) -> Option<CookieCategory> {
    CookieCategory::ALL
        .iter()
        .copied()
        .find(|c| c.as_str() == name)
}

pub fn new_visitor_id() -> String {
    let bytes: [u8; 16] = random_bytes();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Records a banner choice. `gpc` is the `Sec-GPC: 1` signal; `ip` the
/// client's address, stored truncated.
pub async fn record_choice(
    app: &App,
    choice: CookieChoice,
    gpc_header: bool,
    ip: Option<&str>,
    now: OffsetDateTime,
) -> Result<CookieChoiceResponse, AppError> {
    let gpc = gpc_header || choice.gpc;
    let visitor = match choice.visitor {
        Some(v) if valid_visitor_id(&v) => v,
        Some(_) => {
            return Err(AppError::Fields {
                code: "consent_refused",
                problems: vec![FieldProblem {
                    field: "visitor".into(),
                    code: "invalid_value",
                    detail: "16 to 64 letters, digits, `-` or `_`".into(),
                }],
            });
        }
        None => new_visitor_id(),
    };
    let wording = match choice.wording_sha256.as_deref() {
        None => None,
        Some(text) => match custodian_vault::audit::parse_hex32(text) {
            Some(hash) => Some(hash),
            None => {
                return Err(AppError::Fields {
                    code: "consent_refused",
                    problems: vec![FieldProblem {
                        field: "wording_sha256".into(),
                        code: "invalid_value",
                        detail: "64 hexadecimal digits".into(),
                    }],
                });
            }
        },
    };
    if wording.is_none() && choice.choices.values().any(|accepted| *accepted) {
        return Err(AppError::Fields {
            code: "consent_refused",
            problems: vec![FieldProblem {
                field: "wording_sha256".into(),
                code: "evidence_required",
                detail: "an acceptance records the SHA-256 of the banner's wording".into(),
            }],
        });
    }
    let at = micros(now);
    let ip_prefix = ip.and_then(values::truncate_ip);
    let event = |purpose: Option<String>, action: ConsentAction, method: &str| ConsentEvent {
        id: new_id(),
        at,
        subject: None,
        visitor: Some(visitor.clone()),
        purpose,
        channel: None,
        action,
        policy_version: app.policy_version().to_string(),
        method: method.into(),
        agent: None,
        wording_hash: wording,
        ip_prefix: ip_prefix.clone(),
        recorded_by: "banner".into(),
        expires_at: None,
    };
    let mut recorded = BTreeMap::new();
    let mut ops = Vec::new();
    for (name, accepted) in &choice.choices {
        let cat = category(name)
            .ok_or_else(|| AppError::Invalid(format!("unknown cookie category `{name}`")))?;
        if cat == CookieCategory::StrictlyNecessary {
            continue;
        }
        // GPC: no marketing (sale or sharing) cookies, whatever was clicked.
        let accepted = *accepted && !(gpc && cat == CookieCategory::Marketing);
        recorded.insert(name.clone(), accepted);
        for purpose in purposes_of(app, cat) {
            let action = if accepted {
                ConsentAction::Grant
            } else {
                ConsentAction::Refuse
            };
            ops.push(WriteOp::RecordConsent(event(
                Some(purpose),
                action,
                "web-form",
            )));
        }
    }
    if gpc {
        // Art. 21(5): an objection by automated means, meaning what the
        // signal says: to sale or sharing, targeted advertising and
        // third-party marketing cookies (method `gpc`), not to all
        // first-party marketing.
        ops.push(WriteOp::RecordConsent(event(
            None,
            ConsentAction::Object,
            "gpc",
        )));
    }
    if ops.is_empty() {
        return Err(AppError::Invalid(
            "`choices` names no category that needs consent".into(),
        ));
    }
    let batch = Batch {
        ops,
        audit: vec![AuditDraft {
            at,
            actor: "banner".into(),
            action: AuditAction::ConsentCookies.into(),
            purpose: None,
            subject: None,
            decision: "recorded".into(),
            reason: Some(format!("gpc={gpc}")),
        }],
        outbox: vec![
            crate::events::Event::CookieChoices {
                visitor: visitor.clone(),
                choices: recorded.clone(),
                gpc,
                policy_version: app.policy_version().to_string(),
            }
            .outbox(at),
        ],
    };
    written(app.store.write(batch).await)?;
    Ok(CookieChoiceResponse {
        visitor,
        choices: recorded,
        gpc,
        policy_version: app.policy_version().to_string(),
    })
}

/// Whether a choice made under `version` must be asked again: a material
/// change since touched a purpose that covers cookies.
pub async fn needs_renewal(app: &App, version: &str) -> Result<bool, AppError> {
    let stale = app.stale_purposes(version).await?;
    Ok(app
        .policy
        .document
        .cookies
        .iter()
        .filter_map(|c| c.purpose.as_ref())
        .any(|p| stale.contains(p.as_str())))
}
