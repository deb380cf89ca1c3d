//! Purpose-checked reads: load the subject (one query), decide, decrypt only
//! what the decision allows, and audit the decision, allowed or refused,
//! before anything is returned.

use super::collect::micros;
use super::error::Internal;
use super::error::written;
use super::{App, AppError, Operation, Principal, reasons_text};
use crate::audit_action::AuditAction;
use custodian_policy::compiled::{CompiledPolicy, FieldSet, PurposeIx};
use custodian_policy::decision::{
    self, Actor, ConsentState, ConsentStatus, Decision, Objection, Reason, RelationshipState,
    Request, SubjectState,
};
use custodian_policy::terms::{Channel, FieldType, RestrictionGround};
use custodian_policy::values;
use custodian_vault::audit::AuditDraft;
use custodian_vault::store::{
    Batch, StoredConsent, StoredConsentStatus, SubjectRecord, SubjectStateRecord,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ReadQuery {
    /// The purpose of this read; only its fields can be returned.
    pub purpose: String,
    /// Comma-separated fields wanted (default: every field held).
    #[serde(default)]
    pub fields: Option<String>,
    /// For marketing purposes: the channel about to be used.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", param(schema_with = crate::schema::channel))]
    pub channel: Option<String>,
    /// Under a restriction (Art. 18), the exception this read relies on:
    /// legal-claims, other-persons-rights or public-interest. Only the
    /// purpose's own exception opens it, and only with a reason.
    #[serde(default)]
    pub restriction_exception: Option<String>,
    /// Why the exception applies to this read (recorded, as a hash, in the audit).
    #[serde(default)]
    pub restriction_reason: Option<String>,
}

#[derive(Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct LookupQuery {
    pub purpose: String,
    /// Find the subject by email address.
    #[serde(default)]
    pub email: Option<String>,
    /// Find the subject by telephone number (E.164).
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub fields: Option<String>,
    /// For marketing purposes: the channel about to be used.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", param(schema_with = crate::schema::channel))]
    pub channel: Option<String>,
    /// Under a restriction (Art. 18), the exception this read relies on:
    /// legal-claims, other-persons-rights or public-interest. Only the
    /// purpose's own exception opens it, and only with a reason.
    #[serde(default)]
    pub restriction_exception: Option<String>,
    /// Why the exception applies to this read (recorded, as a hash, in the audit).
    #[serde(default)]
    pub restriction_reason: Option<String>,
}

/// The address looked up is personal data: it never prints.
impl std::fmt::Debug for LookupQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LookupQuery")
            .field("purpose", &self.purpose)
            .field("email", &self.email.as_ref().map(|_| "<redacted>"))
            .field("phone", &self.phone.as_ref().map(|_| "<redacted>"))
            .field("fields", &self.fields)
            .field("channel", &self.channel)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Refusal {
    pub field: String,
    /// erased, restricted, category_not_needed, recipient_not_allowed,
    /// unsafe_transfer, objected, consent_withdrawn, no_consent, no_contract
    pub reason: &'static str,
}

#[derive(Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReadResponse {
    pub id: Uuid,
    pub purpose: String,
    pub policy_version: String,
    /// Only the fields the purpose may see.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: BTreeMap<String, String>,
    pub refused: Vec<Refusal>,
}

/// The values read are personal data: only the field names print.
impl std::fmt::Debug for ReadResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadResponse")
            .field("id", &self.id)
            .field("purpose", &self.purpose)
            .field("data", &self.data.keys().collect::<Vec<_>>())
            .field("refused", &self.refused)
            .finish_non_exhaustive()
    }
}

pub fn time_of(micros: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A stored time (unix microseconds) as RFC 3339.
pub fn rfc3339(micros: i64) -> String {
    time_of(micros)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The decision's snapshot of a stored subject. `stale` says whether a
/// consent was given under a policy version materially changed since for its
/// purpose: such a consent is reported for renewal and not relied on.
pub fn state_of(
    policy: &CompiledPolicy,
    erased: bool,
    record: &SubjectStateRecord,
    stale: &dyn Fn(&StoredConsent) -> bool,
) -> SubjectState {
    let prefs = &record.preferences;
    SubjectState {
        erased,
        restricted: record.restricted,
        consents: prefs
            .consents
            .iter()
            .filter_map(|c| {
                let status = match c.status {
                    _ if stale(c) => ConsentStatus::Invalidated,
                    StoredConsentStatus::Given => ConsentStatus::Given,
                    StoredConsentStatus::Withdrawn => ConsentStatus::Withdrawn,
                    StoredConsentStatus::SoftOptIn => ConsentStatus::RefusalOffered,
                    StoredConsentStatus::Refused => ConsentStatus::Refused,
                };
                Some(ConsentState {
                    purpose: policy.purpose(&c.purpose)?,
                    channel: match &c.channel {
                        Some(ch) => Some(Channel::parse(ch)?),
                        None => None,
                    },
                    status,
                    expires_at: c.expires_at.map(time_of),
                })
            })
            .collect(),
        relationships: record
            .relationships
            .iter()
            .filter_map(|r| {
                Some(RelationshipState {
                    kind: policy.relationship(&r.kind)?,
                    started_at: time_of(r.started_at),
                    ended_at: r.ended_at.map(time_of),
                })
            })
            .collect(),
        objections: prefs
            .objections
            .iter()
            .filter_map(|o| {
                Some(Objection {
                    purpose: match &o.purpose {
                        Some(p) => Some(policy.purpose(p)?),
                        None => None,
                    },
                    channel: match &o.channel {
                        Some(ch) => Some(Channel::parse(ch)?),
                        None => None,
                    },
                    gpc: o.is_gpc(),
                    // A lifting that names what this policy no longer
                    // knows lifts nothing.
                    lifted: o
                        .lifted
                        .iter()
                        .filter_map(|l| {
                            let purpose = match &l.purpose {
                                Some(p) => Some(policy.purpose(p)?),
                                None => None,
                            };
                            let channel = match &l.channel {
                                Some(ch) => Some(Channel::parse(ch)?),
                                None => None,
                            };
                            Some((purpose, channel))
                        })
                        .collect(),
                })
            })
            .collect(),
        legal_holds: 0,
        restriction_exception: None,
    }
}

/// The purposes needing renewal for every older version a record's consents
/// were given under, fetched before the (synchronous) decision.
pub async fn stale_versions(
    app: &App,
    consents: &[StoredConsent],
) -> Result<HashMap<String, Arc<HashSet<String>>>, AppError> {
    let mut out = HashMap::new();
    for c in consents {
        if c.policy_version != app.policy_version() && !out.contains_key(&c.policy_version) {
            out.insert(
                c.policy_version.clone(),
                app.stale_purposes(&c.policy_version).await?,
            );
        }
    }
    Ok(out)
}

/// The decision's snapshot of a subject, with renewal taken into account.
pub async fn subject_state(app: &App, record: &SubjectRecord) -> Result<SubjectState, AppError> {
    let erased = record.erased_at.is_some() || record.wrapped_key.is_none();
    state_for(app, erased, &record.state).await
}

/// The same for a subject's stored state alone.
pub async fn state_for(
    app: &App,
    erased: bool,
    state: &SubjectStateRecord,
) -> Result<SubjectState, AppError> {
    let stale = stale_versions(app, &state.preferences.consents).await?;
    let is_stale = |c: &StoredConsent| {
        stale
            .get(&c.policy_version)
            .is_some_and(|p| p.contains(&c.purpose))
    };
    Ok(state_of(&app.policy.compiled, erased, state, &is_stale))
}

pub fn actor_of(principal: &Principal) -> Actor {
    match principal.role {
        super::Role::Service => Actor::Service,
        _ => Actor::Staff,
    }
}

pub fn parse_channel(channel: Option<&str>) -> Result<Option<Channel>, AppError> {
    channel
        .map(|c| {
            Channel::parse(c).ok_or_else(|| {
                AppError::Invalid(format!(
                    "unknown channel `{c}`; expected email, phone, sms, post or automated-call"
                ))
            })
        })
        .transpose()
}

/// The fields asked for: the named ones, or the held fields the purpose
/// needs (so that a read does not reveal which other fields a subject has).
pub fn wanted(
    policy: &CompiledPolicy,
    record: &SubjectRecord,
    fields: Option<&str>,
    purpose: PurposeIx,
) -> Result<FieldSet, AppError> {
    match fields {
        Some(list) => policy
            .field_set(list.split(',').map(str::trim).filter(|f| !f.is_empty()))
            .map_err(|unknown| AppError::Invalid(format!("`{unknown}` is not a declared field"))),
        None => {
            let needed = policy
                .purposes
                .get(purpose.get())
                .map(|p| p.fields)
                .unwrap_or_default();
            Ok(record
                .fields
                .iter()
                .filter_map(|f| policy.field(&f.name))
                .collect::<FieldSet>()
                .intersect(needed))
        }
    }
}

pub fn refusals(policy: &CompiledPolicy, decision: &Decision) -> Vec<Refusal> {
    decision
        .refusals()
        .map(|(f, r)| Refusal {
            field: policy.field_name(f).to_string(),
            reason: r.code(),
        })
        .collect()
}

pub fn outcome(decision: &Decision) -> (&'static str, Option<String>) {
    let reasons = reasons_text(decision.refusals().map(|(_, r)| Reason::code(r)));
    let word = match (decision.allowed.is_empty(), reasons.is_none()) {
        (false, true) => "allowed",
        (false, false) => "partial",
        (true, _) => "refused",
    };
    (word, reasons)
}

/// Opens the allowed fields of a record.
pub fn open_allowed(
    app: &App,
    record: &SubjectRecord,
    allowed: FieldSet,
) -> Result<BTreeMap<String, String>, AppError> {
    let mut data = BTreeMap::new();
    if allowed.is_empty() {
        return Ok(data);
    }
    let wrapped = record.wrapped_key.as_ref().ok_or(AppError::Erased)?;
    let key = app.data_key(&record.id, wrapped)?;
    for f in &record.fields {
        if app
            .policy
            .compiled
            .field(&f.name)
            .is_some_and(|ix| allowed.contains(ix))
        {
            let plain = key
                .open(&record.id, &f.name, &f.sealed)
                .map_err(|_| AppError::Internal(Internal::DecryptFailed))?;
            data.insert(
                f.name.clone(),
                String::from_utf8(plain)
                    .map_err(|_| AppError::Internal(Internal::DecryptFailed))?,
            );
        }
    }
    Ok(data)
}

/// What a read asks for, once its purpose is authorized.
struct Asked<'a> {
    pix: PurposeIx,
    purpose: &'a str,
    fields: Option<&'a str>,
    channel: Option<&'a str>,
    exception: Option<(RestrictionGround, &'a str)>,
}

/// The Art. 18(2) exception a read states, with its reason.
fn stated_exception<'a>(
    ground: Option<&str>,
    reason: Option<&'a str>,
) -> Result<Option<(RestrictionGround, &'a str)>, AppError> {
    let Some(ground) = ground else {
        return Ok(None);
    };
    let parsed = RestrictionGround::ALL
        .iter()
        .copied()
        .find(|g| g.as_str() == ground)
        .ok_or_else(|| {
            AppError::Invalid(
                "`restriction_exception` must be legal-claims, other-persons-rights or public-interest".into(),
            )
        })?;
    let reason = reason
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            AppError::Invalid(
                "a restriction exception needs its reason in `restriction_reason`".into(),
            )
        })?;
    Ok(Some((parsed, reason)))
}

async fn decide_and_open(
    app: &App,
    principal: &Principal,
    record: SubjectRecord,
    asked: Asked<'_>,
    now: OffsetDateTime,
) -> Result<ReadResponse, AppError> {
    let Asked {
        pix,
        purpose,
        fields,
        channel,
        exception,
    } = asked;
    if record.erased_at.is_some() || record.wrapped_key.is_none() {
        // Erased: the read is refused as a whole (what an erasure kept on a
        // legal ground is not for ordinary purposes), and audited.
        let entry = AuditDraft {
            at: micros(now),
            actor: principal.actor(),
            action: AuditAction::Read.into(),
            purpose: Some(purpose.to_string()),
            subject: Some(record.id),
            decision: "refused".into(),
            reason: Some("erased".into()),
        };
        written(app.store.write(Batch::audit_only(entry)).await)?;
        return Err(AppError::Erased);
    }
    let policy = &app.policy.compiled;
    let request = Request {
        actor: actor_of(principal),
        purpose: pix,
        wanted: wanted(policy, &record, fields, pix)?,
        recipient: None,
        channel: parse_channel(channel)?,
    };
    let mut state = subject_state(app, &record).await?;
    state.restriction_exception = exception.map(|(g, _)| g);
    let decision = decision::decide(policy, &state, &request, now);
    let data = open_allowed(app, &record, decision.allowed)?;
    let (word, reason) = outcome(&decision);
    // A read under an Art. 18(2) exception records the ground and a hash
    // of the stated reason (the reason itself may name people).
    let reason = match exception {
        Some((g, why)) if state.restricted => {
            let stated = format!(
                "restriction-exception={} reason-sha256={}",
                g.as_str(),
                custodian_vault::audit::hex(&custodian_vault::crypto::sha256(why.as_bytes()))
            );
            Some(match reason {
                Some(r) => format!("{r};{stated}"),
                None => stated,
            })
        }
        _ => reason,
    };
    let entry = AuditDraft {
        at: micros(now),
        actor: principal.actor(),
        action: AuditAction::Read.into(),
        purpose: Some(purpose.to_string()),
        subject: Some(record.id),
        decision: word.into(),
        reason,
    };
    // Nothing leaves before its audit entry is committed.
    written(app.store.write(Batch::audit_only(entry)).await)?;
    Ok(ReadResponse {
        id: record.id,
        purpose: purpose.to_string(),
        policy_version: app.policy_version().to_string(),
        data,
        refused: refusals(policy, &decision),
    })
}

pub async fn read(
    app: &App,
    principal: &Principal,
    id: crate::ids::SubjectId,
    q: ReadQuery,
    now: OffsetDateTime,
) -> Result<ReadResponse, AppError> {
    let id = id.uuid();
    let pix = app
        .authorize_for(principal, Operation::ReadSubject, &q.purpose, Some(id), now)
        .await?;
    let Some(record) = app.store.subject(id).await? else {
        // A read of an id that does not exist is audited like a refusal, so
        // that probing for ids leaves a trace.
        let entry = AuditDraft {
            at: micros(now),
            actor: principal.actor(),
            action: AuditAction::Read.into(),
            purpose: Some(q.purpose.clone()),
            subject: Some(id),
            decision: "not_found".into(),
            reason: None,
        };
        written(app.store.write(Batch::audit_only(entry)).await)?;
        return Err(AppError::SubjectNotFound);
    };
    decide_and_open(
        app,
        principal,
        record,
        Asked {
            pix,
            purpose: &q.purpose,
            fields: q.fields.as_deref(),
            channel: q.channel.as_deref(),
            exception: stated_exception(
                q.restriction_exception.as_deref(),
                q.restriction_reason.as_deref(),
            )?,
        },
        now,
    )
    .await
}

pub async fn lookup(
    app: &App,
    principal: &Principal,
    q: LookupQuery,
    now: OffsetDateTime,
) -> Result<ReadResponse, AppError> {
    let pix = app
        .authorize_for(principal, Operation::LookupSubject, &q.purpose, None, now)
        .await?;
    let (kind, raw) = match (&q.email, &q.phone) {
        (Some(e), None) => (FieldType::Email, e),
        (None, Some(p)) => (FieldType::Phone, p),
        _ => {
            return Err(AppError::Invalid(
                "give exactly one of `email` or `phone`".into(),
            ));
        }
    };
    let key = values::lookup_key(kind, raw)
        .ok_or_else(|| AppError::Invalid(format!("the {} given is not valid", kind.label())))?;
    let policy = &app.policy.compiled;
    for field in policy.fields.iter().filter(|f| f.kind == kind) {
        let hash = app.keys.blind_index(&field.name, &key);
        if let Some(record) = app.store.subject_by_lookup(&field.name, &hash).await? {
            return decide_and_open(
                app,
                principal,
                record,
                Asked {
                    pix,
                    purpose: &q.purpose,
                    fields: q.fields.as_deref(),
                    channel: q.channel.as_deref(),
                    exception: stated_exception(
                        q.restriction_exception.as_deref(),
                        q.restriction_reason.as_deref(),
                    )?,
                },
                now,
            )
            .await;
        }
    }
    // A lookup that finds no one is audited too, so that probing for who is
    // a customer leaves a trace; the entry names the kind, not the address.
    let entry = AuditDraft {
        at: micros(now),
        actor: principal.actor(),
        action: AuditAction::Lookup.into(),
        purpose: Some(q.purpose.clone()),
        subject: None,
        decision: "not_found".into(),
        reason: Some(format!("by {}", kind.label())),
    };
    written(app.store.write(Batch::audit_only(entry)).await)?;
    Err(AppError::NoSubjectMatches)
}
