//! The consent ledger's use cases: record a choice (grant, withdraw, refuse,
//! object) for a subject or a visitor, show the current preferences with the
//! policy's defaults and renewal, and move a visitor's choices to the subject
//! it becomes. Every change is audited and announced through the outbox in
//! the same transaction.

use super::authz::not_bound;
use super::collect::micros;
use super::error::Internal;
use super::error::{FieldProblem, written};
use super::read::rfc3339;
use super::{App, AppError, Operation, Principal, Role};
use crate::audit_action::AuditAction;
use custodian_policy::terms::{ChannelMode, FieldType, LegalBasis};
use custodian_policy::values;
use custodian_vault::audit::AuditDraft;
use custodian_vault::crypto::{new_id, sha256};
use custodian_vault::store::StoredConsentStatus;
use custodian_vault::store::{
    Batch, ConsentAction, ConsentEvent, GrantBlocked, Holder, Preferences, SubjectRecord, WriteOp,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

mod history;
mod link;
pub use history::{history, preferences};
pub use link::{LinkRequest, link_visitor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Grant,
    Withdraw,
    Refuse,
    Object,
    /// Lift an objection the person made (with a channel: narrow it).
    Lift,
    /// The soft opt-in's evidence (PECR reg. 22(3)): details collected in a
    /// sale or its negotiation, a simple means of refusing marketing of
    /// similar products offered (the wording shown), and not taken.
    SoftOptIn,
}

impl From<Action> for ConsentAction {
    fn from(a: Action) -> ConsentAction {
        match a {
            Action::Grant => ConsentAction::Grant,
            Action::Withdraw => ConsentAction::Withdraw,
            Action::Refuse => ConsentAction::Refuse,
            Action::Object => ConsentAction::Object,
            Action::Lift => ConsentAction::Lift,
            Action::SoftOptIn => ConsentAction::SoftOptIn,
        }
    }
}

/// How the choice was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    #[default]
    WebForm,
    App,
    CallCentre,
    Import,
    /// A Global Privacy Control signal.
    Gpc,
    /// Prompted by our own marketing message to the person. Refused while
    /// an objection covers the choice: asking an objector to opt back in is
    /// itself direct marketing.
    RePermission,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::WebForm => "web-form",
            Method::App => "app",
            Method::CallCentre => "call-centre",
            Method::Import => "import",
            Method::Gpc => "gpc",
            Method::RePermission => custodian_policy::consent::REPERMISSION_METHOD,
        }
    }
}

/// What the person saw and where from: kept as a hash of the wording and a
/// truncated address, never the address itself.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// The wording shown; only its SHA-256 is stored.
    #[serde(default)]
    pub wording: Option<String>,
    /// Or the SHA-256 of the wording, as 64 hex digits.
    #[serde(default)]
    pub wording_sha256: Option<String>,
    /// The person's IP address; stored truncated (IPv4 /24, IPv6 /48).
    #[serde(default)]
    pub ip: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConsentRequest {
    /// The subject; or give `visitor`.
    #[serde(default)]
    pub subject: Option<Uuid>,
    /// A pseudonymous browser id (16 to 64 letters, digits, `-` or `_`).
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^[A-Za-z0-9_-]{16,64}$", min_length = 16, max_length = 64)
    )]
    pub visitor: Option<String>,
    /// A purpose declared in the policy. Omitted only to object to (or
    /// withdraw an objection to) all direct marketing.
    #[serde(default)]
    pub purpose: Option<String>,
    /// email, phone (live calls), sms, post or automated-call, for marketing purposes.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schema::channel_or_null))]
    pub channel: Option<String>,
    pub action: Action,
    #[serde(default)]
    pub method: Method,
    #[serde(default)]
    pub evidence: Evidence,
    /// For call-centre choices made by an agent; an agent key is recorded as itself.
    #[serde(default)]
    pub agent: Option<String>,
    /// RFC 3339; when the consent lapses, if it does.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub expires_at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsentResponse {
    pub event: Uuid,
    pub policy_version: String,
    pub preferences: Vec<PreferenceView>,
}

/// The current state for one purpose and channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PreferenceView {
    pub purpose: String,
    pub channel: Option<String>,
    /// given, withdrawn, refused, not-given (an opt-in default), on (an
    /// opt-out default), objected
    pub status: String,
    /// Whether the purpose may be used now on this ground.
    pub effective: bool,
    /// Given under a policy version materially changed since for this purpose.
    pub needs_renewal: bool,
    pub since: Option<String>,
    pub policy_version: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventView {
    pub id: Uuid,
    pub at: String,
    pub purpose: Option<String>,
    pub channel: Option<String>,
    pub action: String,
    pub method: String,
    pub policy_version: String,
    pub agent: Option<String>,
    pub ip_prefix: Option<String>,
    pub wording_sha256: Option<String>,
    pub recorded_by: String,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsentHistory {
    pub preferences: Vec<PreferenceView>,
    /// Every event, oldest first: nothing is ever changed or removed.
    pub events: Vec<EventView>,
}

pub fn valid_visitor_id(id: &str) -> bool {
    crate::ids::VisitorId::is_well_formed(id)
}

fn invalid(field: &str, code: &'static str, detail: impl Into<String>) -> AppError {
    AppError::Fields {
        code: "consent_refused",
        problems: vec![FieldProblem {
            field: field.into(),
            code,
            detail: detail.into(),
        }],
    }
}

/// Checks a request against the policy: the purpose rests on consent (or
/// can be objected to), the channel belongs to the purpose.
fn check(app: &App, req: &ConsentRequest) -> Result<(), AppError> {
    let policy = &app.policy.document;
    let Some(purpose_id) = &req.purpose else {
        return match req.action {
            Action::Object | Action::Withdraw | Action::Lift => match &req.channel {
                Some(c)
                    if !policy
                        .marketing
                        .channels
                        .iter()
                        .any(|d| d.channel.as_str() == c) =>
                {
                    Err(invalid(
                        "channel",
                        "unknown_channel",
                        format!("`{c}` is not a marketing channel of the policy"),
                    ))
                }
                _ => Ok(()),
            },
            _ => Err(invalid(
                "purpose",
                "purpose_required",
                "only an objection to all direct marketing names no purpose",
            )),
        };
    };
    let purpose = policy
        .purposes
        .iter()
        .find(|p| p.id.as_str() == purpose_id)
        .ok_or_else(|| AppError::UnknownPurpose(purpose_id.clone()))?;
    let basis = *purpose.basis;
    match req.action {
        Action::Object | Action::Lift
            if !(purpose.marketing
                || matches!(
                    basis,
                    LegalBasis::LegitimateInterest | LegalBasis::PublicTask
                )) =>
        {
            return Err(invalid(
                "action",
                "not_objectable",
                format!(
                    "purpose `{purpose_id}` rests on {}: withdraw consent instead, or it cannot be objected to",
                    basis.as_str()
                ),
            ));
        }
        Action::SoftOptIn if !(*purpose.similar_products && policy.marketing.soft_opt_in) => {
            return Err(invalid(
                "action",
                "soft_opt_in_not_available",
                format!(
                    "purpose `{purpose_id}` is not marked as marketing our own similar products under a soft opt-in the policy turns on"
                ),
            ));
        }
        // A soft opt-in purpose records refusals too ("has not refused since").
        Action::Refuse if *purpose.similar_products => {}
        Action::Grant | Action::Refuse | Action::Withdraw if basis != LegalBasis::Consent => {
            return Err(invalid(
                "purpose",
                "not_consent_based",
                format!(
                    "purpose `{purpose_id}` rests on {}, not consent",
                    basis.as_str()
                ),
            ));
        }
        _ => {}
    }
    let channels: Vec<&str> = purpose.channels.iter().map(|c| c.as_str()).collect();
    match (&req.channel, channels.is_empty()) {
        (Some(c), false) if !channels.contains(&c.as_str()) => Err(invalid(
            "channel",
            "unknown_channel",
            format!("purpose `{purpose_id}` uses {}", channels.join(", ")),
        )),
        (Some(_), true) => Err(invalid(
            "channel",
            "no_channels",
            format!("purpose `{purpose_id}` has no channels"),
        )),
        (None, false) if !matches!(req.action, Action::Object | Action::Lift) => Err(invalid(
            "channel",
            "channel_required",
            format!(
                "consent to `{purpose_id}` is given per channel: {}",
                channels.join(", ")
            ),
        )),
        _ => Ok(()),
    }
}

fn wording_hash(e: &Evidence) -> Result<Option<[u8; 32]>, AppError> {
    if let Some(w) = &e.wording {
        return Ok(Some(sha256(w.as_bytes())));
    }
    let Some(hex) = &e.wording_sha256 else {
        return Ok(None);
    };
    custodian_vault::audit::parse_hex32(hex)
        .map(Some)
        .ok_or_else(|| {
            invalid(
                "evidence.wording_sha256",
                "invalid_value",
                "expected 64 hex digits",
            )
        })
}

/// Address fields of a subject that a suppression entry can key on, by the
/// channel they serve: (channel, lookup kind, normalised value).
pub(super) fn addresses(
    app: &App,
    record: &SubjectRecord,
) -> Result<Vec<(&'static str, String)>, AppError> {
    let Some(wrapped) = &record.wrapped_key else {
        return Ok(Vec::new());
    };
    let key = app.data_key(&record.id, wrapped)?;
    let mut out = Vec::new();
    for f in &record.fields {
        let Some(ix) = app.policy.compiled.field(&f.name) else {
            continue;
        };
        let kind = app.policy.compiled.fields.get(ix.get()).map(|x| x.kind);
        let label = match kind {
            Some(FieldType::Email) => "email",
            Some(FieldType::Phone) => "phone",
            _ => continue,
        };
        let plain = key
            .open(&record.id, &f.name, &f.sealed)
            .map_err(|_| AppError::Internal(Internal::DecryptFailed))?;
        let text =
            String::from_utf8(plain).map_err(|_| AppError::Internal(Internal::DecryptFailed))?;
        if let Some(k) = values::lookup_key(
            if label == "email" {
                FieldType::Email
            } else {
                FieldType::Phone
            },
            &text,
        ) {
            out.push((label, k));
        }
    }
    Ok(out)
}

/// The suppression kind that guards a channel's address.
pub fn suppression_kind(address: &str) -> String {
    format!("suppress:{address}")
}

fn channel_address(channel: Option<&str>) -> Option<&'static str> {
    match channel {
        Some("email") => Some("email"),
        Some("phone" | "sms" | "automated-call") => Some("phone"),
        _ => None,
    }
}

pub async fn record(
    app: &App,
    principal: &Principal,
    req: ConsentRequest,
    now: OffsetDateTime,
) -> Result<ConsentResponse, AppError> {
    match &req.purpose {
        Some(p) => {
            app.authorize_for(principal, Operation::RecordConsent, p, req.subject, now)
                .await?;
        }
        None => {
            app.authorize(principal, Operation::RecordConsent, now)
                .await?;
            if principal.role == Role::Service {
                // A choice without a purpose (a general objection) reaches
                // purposes beyond the key's own.
                let refusal = AppError::ForbiddenCode {
                    code: "purpose_not_allowed_for_key",
                    detail: "a service key records choices for its own purposes only".into(),
                };
                return Err(app
                    .refuse(
                        principal,
                        Operation::RecordConsent,
                        None,
                        req.subject,
                        refusal,
                        now,
                    )
                    .await);
            }
        }
    }
    let holder = match (&req.subject, &req.visitor) {
        (Some(s), None) => Holder::Subject(*s),
        (None, Some(v)) if valid_visitor_id(v) => Holder::Visitor(v.clone()),
        (None, Some(_)) => {
            return Err(invalid(
                "visitor",
                "invalid_value",
                "16 to 64 letters, digits, `-` or `_`",
            ));
        }
        _ => {
            return Err(AppError::Invalid(
                "give exactly one of `subject` or `visitor`".into(),
            ));
        }
    };
    check(app, &req)?;
    // Consent must be provable (Art. 7(1)): a grant carries what was shown,
    // unless the browser's own signal is the evidence.
    if matches!(req.action, Action::Grant | Action::SoftOptIn)
        && req.evidence.wording.is_none()
        && req.evidence.wording_sha256.is_none()
    {
        return Err(invalid(
            "evidence",
            "evidence_required",
            "a grant, or the refusal offered for a soft opt-in, records the wording shown (`evidence.wording` or `evidence.wording_sha256`)",
        ));
    }
    let record = match &holder {
        Holder::Subject(id) => Some(
            app.store
                .subject(*id)
                .await?
                .ok_or(AppError::SubjectNotFound)?,
        ),
        Holder::Visitor(_) => None,
    };
    if record.as_ref().is_some_and(|r| r.wrapped_key.is_none()) {
        return Err(AppError::Erased);
    }
    let at = micros(now);
    let expires_at = match &req.expires_at {
        Some(t) => Some(
            OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map(micros)
                .map_err(|_| {
                    invalid(
                        "expires_at",
                        "invalid_value",
                        "expected an RFC 3339 date and time",
                    )
                })?,
        ),
        None => None,
    };
    let agent = match (principal.role, req.method) {
        (Role::Agent, _) => Some(principal.key_id.clone()),
        (_, Method::CallCentre) => Some(req.agent.clone().ok_or_else(|| {
            invalid(
                "agent",
                "agent_required",
                "a call-centre choice names the agent",
            )
        })?),
        _ => None,
    };
    let event = ConsentEvent {
        id: new_id(),
        at,
        subject: req.subject,
        visitor: req.visitor.clone(),
        purpose: req.purpose.clone(),
        channel: req.channel.clone(),
        action: req.action.into(),
        policy_version: app.policy_version().to_string(),
        method: req.method.as_str().into(),
        agent,
        wording_hash: wording_hash(&req.evidence)?,
        ip_prefix: req.evidence.ip.as_deref().and_then(values::truncate_ip),
        recorded_by: principal.actor(),
        expires_at,
    };
    // Art. 21(3): an objection binds us. Only the person's own, evidenced,
    // later grant lifts it, for its purpose and channel; a choice prompted
    // by our own marketing to an objector is refused.
    if matches!(req.action, Action::Grant | Action::Lift | Action::SoftOptIn) {
        let current = match (&record, &holder) {
            (Some(r), _) => Some(r.state.preferences.clone()),
            (None, Holder::Visitor(v)) => app.store.visitor(v).await?.map(|r| r.preferences),
            (None, Holder::Subject(_)) => None,
        }
        .unwrap_or_default();
        let blocked = match req.action {
            Action::Lift
                if req.method == Method::RePermission && !current.objections.is_empty() =>
            {
                Some(GrantBlocked::Repermission)
            }
            Action::SoftOptIn
                if current.objected(
                    req.purpose.as_deref().unwrap_or_default(),
                    req.channel.as_deref(),
                    true,
                ) =>
            {
                Some(GrantBlocked::Objected)
            }
            _ => current.grant_blocked(&event),
        };
        match blocked {
            Some(GrantBlocked::Repermission) => {
                return Err(invalid(
                    "method",
                    "repermission_refused",
                    "the person objected to direct marketing: a choice prompted by our own marketing to them cannot be recorded",
                ));
            }
            Some(GrantBlocked::Objected) => {
                return Err(invalid(
                    "action",
                    "objected",
                    "an objection covers this purpose and channel: only the person's own choice (web-form, app or call-centre, with the wording shown), made after the objection, lifts it",
                ));
            }
            None => {}
        }
    }
    let mut ops = vec![WriteOp::RecordConsent(event.clone())];
    if let Some(record) = &record {
        ops.extend(suppression_changes(app, record, &req, at)?);
    }
    let batch = Batch {
        ops,
        audit: vec![AuditDraft {
            at,
            actor: principal.actor(),
            action: AuditAction::ConsentEvent(event.action).into(),
            purpose: req.purpose.clone(),
            subject: req.subject,
            decision: "recorded".into(),
            reason: req.channel.as_ref().map(|c| format!("channel={c}")),
        }],
        outbox: vec![
            crate::events::Event::ConsentChanged {
                event: event.id,
                subject: req.subject,
                visitor: req.visitor.clone(),
                purpose: req.purpose.clone(),
                channel: req.channel.clone(),
                action: event.action.as_str().into(),
                method: event.method.clone(),
                policy_version: event.policy_version.clone(),
            }
            .outbox(at),
        ],
    };
    // The preferences as folded in the write's own transaction: reading
    // them back would cost a second read of the subject.
    let prefs = written(app.store.write(batch).await)?
        .preferences
        .ok_or(AppError::Internal(Internal::FoldMissing))?;
    Ok(ConsentResponse {
        event: event.id,
        policy_version: app.policy_version().to_string(),
        preferences: preferences(app, &prefs, now).await?,
    })
}

/// An objection to marketing puts the subject's addresses on the suppression
/// list (which outlives erasure); a fresh grant for a channel takes that
/// channel's address off it.
fn suppression_changes(
    app: &App,
    record: &SubjectRecord,
    req: &ConsentRequest,
    at: i64,
) -> Result<Vec<WriteOp>, AppError> {
    let marketing = match &req.purpose {
        None => true,
        Some(p) => app
            .policy
            .document
            .purposes
            .iter()
            .any(|x| x.id.as_str() == p && x.marketing),
    };
    // Lifting an objection to one purpose leaves the addresses as they are:
    // an objection to all direct marketing may still keep them suppressed.
    let lifts_all = req.action == Action::Lift && req.purpose.is_none();
    if !marketing || !(matches!(req.action, Action::Object | Action::Grant) || lifts_all) {
        return Ok(Vec::new());
    }
    let wanted = channel_address(req.channel.as_deref());
    let mut ops = Vec::new();
    for (address, value) in addresses(app, record)? {
        if wanted.is_some_and(|w| w != address) || (req.action == Action::Grant && wanted.is_none())
        {
            continue;
        }
        let kind = suppression_kind(address);
        let hash = app.keys.blind_index(&kind, &value);
        ops.push(match req.action {
            Action::Object => WriteOp::Suppress {
                kind,
                hash,
                at,
                reason: "objection to direct marketing".into(),
            },
            _ => WriteOp::Unsuppress { kind, hash },
        });
    }
    Ok(ops)
}
