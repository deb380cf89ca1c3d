//! Collection: new subjects, more data (or rectification), relationships.
//! Every value is checked against the purpose and its declared type before
//! anything is encrypted; nothing is stored unless everything is valid.

use super::error::Internal;
use super::error::{FieldProblem, written};
use super::{App, AppError, Operation, Principal, Role};
use crate::audit_action::AuditAction;
use crate::events::Event;
use custodian_policy::compiled::PurposeIx;
use custodian_policy::terms::FieldType;
use custodian_policy::values;
use custodian_vault::audit::AuditDraft;
use custodian_vault::crypto::{DataKey, new_id};
use custodian_vault::store::{Batch, Lookup, Provenance, StoredField, StoredRelationship, WriteOp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use uuid::Uuid;

/// How data reached the organisation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Channel {
    #[default]
    Web,
    App,
    CallCentre,
    Import,
}

impl Channel {
    fn as_str(self) -> &'static str {
        match self {
            Channel::Web => "web",
            Channel::App => "app",
            Channel::CallCentre => "call-centre",
            Channel::Import => "import",
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Source {
    #[serde(default)]
    pub channel: Channel,
    /// The call-centre agent, for `call-centre`; an agent key is always recorded as itself.
    #[serde(default)]
    pub agent: Option<String>,
}

/// Personal data to collect for one purpose.
#[derive(Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CollectRequest {
    /// A purpose declared in the policy; only its fields are accepted.
    pub purpose: String,
    #[serde(default)]
    pub source: Source,
    /// Field name to value. Numbers and booleans may be given as JSON numbers and booleans.
    #[cfg_attr(feature = "openapi", schema(value_type = Object, example = json!({"full_name": "Ada Lovelace", "email": "ada@example.org"})))]
    pub data: BTreeMap<String, serde_json::Value>,
}

/// The values are personal data: only the field names print.
impl std::fmt::Debug for CollectRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollectRequest")
            .field("purpose", &self.purpose)
            .field("source", &self.source)
            .field("data", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CollectResponse {
    pub id: Uuid,
    /// The fields stored.
    pub fields: Vec<String>,
    pub policy_version: String,
}

pub fn micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

/// A validated value, ready to seal.
pub(crate) struct Checked {
    pub(crate) field: String,
    pub(crate) kind: FieldType,
    pub(crate) value: String,
}

/// Validates values for fields of any declared category, whatever the
/// purpose (a rectification corrects data held for whatever purpose).
pub(crate) fn check_any(
    app: &App,
    data: &BTreeMap<String, serde_json::Value>,
) -> Result<Vec<Checked>, AppError> {
    check(app, None, data)
}

fn check_values(
    app: &App,
    purpose: PurposeIx,
    data: &BTreeMap<String, serde_json::Value>,
) -> Result<Vec<Checked>, AppError> {
    check(app, Some(purpose), data)
}

fn check(
    app: &App,
    purpose: Option<PurposeIx>,
    data: &BTreeMap<String, serde_json::Value>,
) -> Result<Vec<Checked>, AppError> {
    if data.is_empty() {
        return Err(AppError::Invalid(
            "`data` must hold at least one field".into(),
        ));
    }
    let compiled = &app.policy.compiled;
    let allowed = match purpose {
        Some(p) => compiled
            .purposes
            .get(p.get())
            .map(|p| p.fields)
            .unwrap_or_default(),
        None => compiled.all_fields,
    };
    let mut problems = Vec::new();
    let mut checked = Vec::new();
    for (name, value) in data {
        let problem = |code: &'static str, detail: String| FieldProblem {
            field: name.clone(),
            code,
            detail,
        };
        let Some(fix) = compiled.field(name) else {
            problems.push(problem(
                "unknown_field",
                format!("`{name}` is not a field of any declared category"),
            ));
            continue;
        };
        if !allowed.contains(fix) {
            problems.push(problem(
                "not_declared_for_purpose",
                format!("`{name}` is not among the data this purpose needs"),
            ));
            continue;
        }
        let kind = compiled
            .fields
            .get(fix.get())
            .map_or(FieldType::Text, |f| f.kind);
        let raw = match value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => {
                problems.push(problem(
                    "invalid_value",
                    "expected a string, number or boolean".into(),
                ));
                continue;
            }
        };
        match values::normalise(kind, &raw) {
            Ok(value) => checked.push(Checked {
                field: name.clone(),
                kind,
                value,
            }),
            Err(e) => problems.push(problem(
                "invalid_value",
                format!("expected {}: {e}", kind.label()),
            )),
        }
    }
    if problems.is_empty() {
        Ok(checked)
    } else {
        Err(AppError::Fields {
            code: "fields_refused",
            problems,
        })
    }
}

fn provenance(
    app: &App,
    principal: &Principal,
    source: &Source,
    purpose: &str,
    now: i64,
) -> Result<Provenance, AppError> {
    let (channel, agent) = if principal.role == Role::Agent {
        (Channel::CallCentre, Some(principal.key_id.clone()))
    } else {
        match (source.channel, &source.agent) {
            (Channel::CallCentre, None) => {
                return Err(AppError::Invalid(
                    "data collected by a call-centre names the agent in `source.agent`".into(),
                ));
            }
            (Channel::CallCentre, Some(a)) => (Channel::CallCentre, Some(a.clone())),
            (other, _) => (other, None),
        }
    };
    Ok(Provenance {
        channel: channel.as_str().to_string(),
        agent,
        collected_at: now,
        purpose: purpose.to_string(),
        policy_version: app.policy_version().to_string(),
    })
}

fn seal_all(
    app: &App,
    key: &DataKey,
    subject: &Uuid,
    checked: &[Checked],
    provenance: &Provenance,
) -> (Vec<StoredField>, Vec<Lookup>) {
    let mut fields = Vec::with_capacity(checked.len());
    let mut lookups = Vec::new();
    for c in checked {
        fields.push(StoredField {
            name: c.field.clone(),
            sealed: key.seal(subject, &c.field, c.value.as_bytes()),
            provenance: provenance.clone(),
        });
        if let Some(k) = values::lookup_key(c.kind, &c.value) {
            lookups.push(Lookup {
                kind: c.field.clone(),
                hash: app.keys.blind_index(&c.field, &k),
            });
        }
    }
    (fields, lookups)
}

fn audit(
    principal: &Principal,
    action: AuditAction,
    purpose: &str,
    subject: Uuid,
    at: i64,
) -> AuditDraft {
    AuditDraft {
        at,
        actor: principal.actor(),
        action: action.into(),
        purpose: Some(purpose.into()),
        subject: Some(subject),
        decision: "allowed".into(),
        reason: None,
    }
}

/// Writes a collection. A refusal because an address already belongs to
/// another subject is audited on its own (the batch's own entry is rolled
/// back with it): otherwise whether an address is held could be probed
/// without a trace. The entry names the field kind, never the address.
async fn write_collection(app: &App, batch: Batch, refused: AuditDraft) -> Result<(), AppError> {
    match written(app.store.write(batch).await) {
        Err(AppError::Conflict(kind)) => {
            let entry = AuditDraft {
                decision: "refused".into(),
                reason: Some(format!("lookup_conflict: {kind}")),
                ..refused
            };
            written(app.store.write(Batch::audit_only(entry)).await)?;
            Err(AppError::Conflict(kind))
        }
        other => other.map(|_| ()),
    }
}

pub async fn collect_new(
    app: &App,
    principal: &Principal,
    req: CollectRequest,
    now: OffsetDateTime,
) -> Result<CollectResponse, AppError> {
    let purpose = app
        .authorize_for(principal, Operation::CollectNew, &req.purpose, None, now)
        .await?;
    let checked = check_values(app, purpose, &req.data)?;
    let at = micros(now);
    let provenance = provenance(app, principal, &req.source, &req.purpose, at)?;
    let id = new_id();
    let (key, wrapped) = app
        .keys
        .new_data_key(&id)
        .map_err(|_| AppError::Internal(Internal::KeyGenerationFailed))?;
    let (fields, lookups) = seal_all(app, &key, &id, &checked, &provenance);
    let names: Vec<String> = checked.iter().map(|c| c.field.clone()).collect();
    // A new subject's expiries are known now: stored with it, so the
    // sweep need not work them out (later changes mark them for it).
    let expiry = crate::retention::assess(
        app.retention(),
        &custodian_vault::store::SubjectRecord {
            id,
            wrapped_key: None,
            created_at: at,
            erased_at: None,
            fields: fields.clone(),
            state: Default::default(),
        },
        &[],
        at,
    )
    .row;
    let batch = Batch {
        ops: vec![
            WriteOp::CreateSubject {
                id,
                wrapped_key: wrapped,
                created_at: at,
                fields,
                lookups,
            },
            WriteOp::Retention(custodian_vault::store::retention::RetentionOp::PutExpiry(
                expiry,
            )),
        ],
        audit: vec![audit(principal, AuditAction::Collect, &req.purpose, id, at)],
        outbox: vec![
            Event::SubjectCreated {
                subject: id,
                purpose: req.purpose.clone(),
                fields: names.clone(),
                channel: provenance.channel.clone(),
                policy_version: provenance.policy_version.clone(),
            }
            .outbox(at),
        ],
    };
    // Refused, the new id was never stored: the entry names no subject.
    let refused = AuditDraft {
        subject: None,
        ..audit(principal, AuditAction::Collect, &req.purpose, id, at)
    };
    write_collection(app, batch, refused).await?;
    Ok(CollectResponse {
        id,
        fields: names,
        policy_version: app.policy_version().to_string(),
    })
}

/// More data for a subject, or corrected data: a replaced value is kept,
/// still encrypted, in the subject's history.
pub async fn collect_more(
    app: &App,
    principal: &Principal,
    subject: crate::ids::SubjectId,
    req: CollectRequest,
    now: OffsetDateTime,
) -> Result<CollectResponse, AppError> {
    let subject = subject.uuid();
    let purpose = app
        .authorize_for(
            principal,
            Operation::AddData,
            &req.purpose,
            Some(subject),
            now,
        )
        .await?;
    let checked = check_values(app, purpose, &req.data)?;
    let record = app
        .store
        .subject(subject)
        .await?
        .ok_or(AppError::SubjectNotFound)?;
    let wrapped = record.wrapped_key.as_ref().ok_or(AppError::Erased)?;
    let key = app.data_key(&subject, wrapped)?;
    let at = micros(now);
    let provenance = provenance(app, principal, &req.source, &req.purpose, at)?;
    let (fields, lookups) = seal_all(app, &key, &subject, &checked, &provenance);
    let names: Vec<String> = checked.iter().map(|c| c.field.clone()).collect();
    let rectified: Vec<&String> = names
        .iter()
        .filter(|n| record.fields.iter().any(|f| &f.name == *n))
        .collect();
    let action = if rectified.is_empty() {
        AuditAction::Collect
    } else {
        AuditAction::Rectify
    };
    let batch = Batch {
        ops: vec![WriteOp::PutFields {
            subject,
            fields,
            lookups,
            at,
        }],
        audit: vec![audit(principal, action.clone(), &req.purpose, subject, at)],
        outbox: vec![
            Event::SubjectUpdated {
                subject,
                purpose: req.purpose.clone(),
                fields: names.clone(),
                rectified: rectified.iter().map(|r| r.to_string()).collect(),
            }
            .outbox(at),
        ],
    };
    write_collection(
        app,
        batch,
        audit(principal, action, &req.purpose, subject, at),
    )
    .await?;
    Ok(CollectResponse {
        id: subject,
        fields: names,
        policy_version: app.policy_version().to_string(),
    })
}

pub use custodian_vault::store::RelationshipStatus;

/// A relationship (account, order, contract, ...): grounds a contract basis
/// and starts retention clocks.
#[derive(Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RelationshipRequest {
    /// A relationship kind declared in the policy.
    pub kind: String,
    pub status: RelationshipStatus,
    /// RFC 3339; default now.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub started_at: Option<String>,
    /// RFC 3339; default now when the status is `ended`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub ended_at: Option<String>,
    /// The organisation's own reference (an account or order number).
    #[serde(default)]
    pub reference: Option<String>,
    /// To update a relationship recorded before.
    #[serde(default)]
    pub id: Option<Uuid>,
}

/// The organisation's reference may identify the person: it never prints.
impl std::fmt::Debug for RelationshipRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelationshipRequest")
            .field("kind", &self.kind)
            .field("status", &self.status)
            .field("reference", &self.reference.as_ref().map(|_| "<redacted>"))
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RelationshipResponse {
    pub id: Uuid,
    pub subject: Uuid,
    pub kind: String,
    pub status: RelationshipStatus,
}

fn parse_time(text: &str, field: &str) -> Result<i64, AppError> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(micros)
        .map_err(|_| AppError::Invalid(format!("`{field}` must be an RFC 3339 date and time")))
}

pub async fn put_relationship(
    app: &App,
    principal: &Principal,
    subject: crate::ids::SubjectId,
    req: RelationshipRequest,
    now: OffsetDateTime,
) -> Result<RelationshipResponse, AppError> {
    let subject = subject.uuid();
    app.authorize(principal, Operation::PutRelationship, now)
        .await?;
    if principal.role == Role::Service {
        // A service may record only the relationships that ground one of its own purposes.
        let grounds_own = app.policy.document.purposes.iter().any(|p| {
            principal.purposes.iter().any(|b| b == p.id.as_str())
                && p.relationships.iter().any(|r| r.as_str() == req.kind)
        });
        if !grounds_own {
            let refusal = AppError::ForbiddenCode {
                code: "relationship_not_allowed_for_key",
                detail: format!(
                    "none of this key's purposes rests on a `{}` relationship",
                    req.kind
                ),
            };
            return Err(app
                .refuse(
                    principal,
                    Operation::PutRelationship,
                    None,
                    Some(subject),
                    refusal,
                    now,
                )
                .await);
        }
    }
    if app.policy.compiled.relationship(&req.kind).is_none() {
        let known = app.policy.compiled.relationships.join(", ");
        return Err(AppError::Invalid(format!(
            "relationship kind `{}` is not declared; expected one of: {known}",
            req.kind
        )));
    }
    let at = micros(now);
    let started_at = req
        .started_at
        .as_deref()
        .map(|t| parse_time(t, "started_at"))
        .transpose()?
        .unwrap_or(at);
    let ended_at = match (req.status, req.ended_at.as_deref()) {
        (_, Some(t)) => Some(parse_time(t, "ended_at")?),
        (RelationshipStatus::Ended, None) => Some(at),
        (RelationshipStatus::Active, None) => None,
    };
    if ended_at.is_some_and(|e| e < started_at) {
        return Err(AppError::Invalid(
            "`ended_at` is before `started_at`".into(),
        ));
    }
    let id = req.id.unwrap_or_else(new_id);
    let batch = Batch {
        ops: vec![WriteOp::PutRelationship {
            subject,
            relationship: StoredRelationship {
                id,
                kind: req.kind.clone(),
                status: req.status,
                started_at,
                ended_at,
                reference: req.reference.clone(),
            },
        }],
        audit: vec![AuditDraft {
            purpose: None,
            ..audit(principal, AuditAction::Relationship, "", subject, at)
        }],
        outbox: vec![
            Event::RelationshipRecorded {
                subject,
                relationship: id,
                kind: req.kind.clone(),
                status: req.status.as_str().to_string(),
            }
            .outbox(at),
        ],
    };
    written(app.store.write(batch).await)?;
    Ok(RelationshipResponse {
        id,
        subject,
        kind: req.kind,
        status: req.status,
    })
}
