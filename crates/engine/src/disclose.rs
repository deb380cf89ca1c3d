//! Disclosures to recipients: only the recipient's categories, only for a
//! purpose that names it, only where the transfer is safe, and pseudonymised
//! by the engine (never by the caller) where the policy says so.

use super::authz::not_bound;
use super::collect::micros;
use super::error::written;
use super::read::{Refusal, actor_of, open_allowed, outcome, refusals, subject_state, wanted};
use super::{App, AppError, Operation, Principal, Role};
use crate::audit_action::AuditAction;
use custodian_policy::decision::{self, Actor, Request};
use custodian_policy::disclosure::{GateRefusal, records_gate};
use custodian_policy::terms::{DisclosureForm, FieldType};
use custodian_policy::values;
use custodian_vault::audit::AuditDraft;
use custodian_vault::store::Batch;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use uuid::Uuid;

pub const MAX_SUBJECTS: usize = 1_000;

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DisclosureRequest {
    /// A recipient declared in the policy.
    pub recipient: String,
    /// A purpose whose recipients include it.
    pub purpose: String,
    /// At most 1,000 subjects.
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 1_000))]
    pub subjects: Vec<Uuid>,
    /// Fields wanted (default: every field the recipient may receive).
    #[serde(default)]
    pub fields: Option<Vec<String>>,
}

#[derive(Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Disclosed {
    /// The subject id, or the recipient's pseudonym for it when the recipient
    /// must not identify people.
    pub subject: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: BTreeMap<String, String>,
    pub refused: Vec<Refusal>,
}

/// The values disclosed are personal data: only the field names print.
impl std::fmt::Debug for Disclosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Disclosed")
            .field("subject", &self.subject)
            .field("data", &self.data.keys().collect::<Vec<_>>())
            .field("refused", &self.refused)
            .finish()
    }
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DisclosureResponse {
    pub recipient: String,
    pub purpose: String,
    /// identified, pseudonymised or aggregated
    pub form: &'static str,
    pub policy_version: String,
    pub results: Vec<Disclosed>,
    /// Subjects asked for that do not exist.
    pub not_found: usize,
}

fn refusal_entry(
    principal: &Principal,
    req: &DisclosureRequest,
    code: &str,
    at: i64,
) -> AuditDraft {
    AuditDraft {
        at,
        actor: principal.actor(),
        action: AuditAction::Disclose(req.recipient.clone()).into(),
        purpose: Some(req.purpose.clone()),
        subject: None,
        decision: "refused".into(),
        reason: Some(code.into()),
    }
}

pub async fn disclose(
    app: &App,
    principal: &Principal,
    req: DisclosureRequest,
    now: OffsetDateTime,
) -> Result<DisclosureResponse, AppError> {
    let refused = |e| {
        app.refuse(
            principal,
            Operation::Disclose,
            Some(&req.purpose),
            None,
            e,
            now,
        )
    };
    if let Err(e) = principal.authorize(Operation::Disclose) {
        return Err(refused(e).await);
    }
    if principal.role == Role::Processor
        && principal.recipient.as_deref() != Some(req.recipient.as_str())
    {
        return Err(refused(AppError::ForbiddenCode {
            code: "recipient_mismatch",
            detail: "a processor key receives disclosures to its own recipient only".into(),
        })
        .await);
    }
    if !principal.covers_purpose(&req.purpose) {
        return Err(refused(not_bound(&req.purpose)).await);
    }
    if req.subjects.is_empty() || req.subjects.len() > MAX_SUBJECTS {
        return Err(AppError::Invalid(format!(
            "`subjects` must hold 1 to {MAX_SUBJECTS} ids"
        )));
    }
    let policy = &app.policy.compiled;
    let rix = policy
        .recipient(&req.recipient)
        .ok_or_else(|| AppError::UnknownRecipient(req.recipient.clone()))?;
    let pix = policy
        .purpose(&req.purpose)
        .ok_or_else(|| AppError::UnknownPurpose(req.purpose.clone()))?;
    let at = micros(now);
    let recipient = match records_gate(policy, pix, rix, now) {
        Ok(table) => table,
        Err(refusal) => {
            written(
                app.store
                    .write(Batch::audit_only(refusal_entry(
                        principal,
                        &req,
                        refusal.code(),
                        at,
                    )))
                    .await,
            )?;
            let detail = match refusal {
                GateRefusal::RecipientNotAllowed => format!(
                    "purpose `{}` does not disclose to `{}`",
                    req.purpose, req.recipient
                ),
                GateRefusal::UnsafeTransfer => format!(
                    "a transfer to `{}` has no adequacy or safeguard today",
                    req.recipient
                ),
                GateRefusal::AggregatedOnly => format!(
                    "`{}` receives only aggregated statistics, never records about individuals",
                    req.recipient
                ),
            };
            return Err(AppError::ForbiddenCode {
                code: refusal.code(),
                detail,
            });
        }
    };

    let actor = match principal.role {
        Role::Processor => Actor::Processor(rix),
        _ => actor_of(principal),
    };
    let form = recipient.form;
    let mut results = Vec::with_capacity(req.subjects.len());
    let mut audit = Vec::with_capacity(req.subjects.len());
    let mut not_found = 0;
    let fields = req.fields.as_ref().map(|f| f.join(","));
    for id in &req.subjects {
        let Some(record) = app.store.subject(*id).await? else {
            // Audited like every other outcome: asking for ids that do not
            // exist is how one probes for them.
            not_found += 1;
            audit.push(AuditDraft {
                at,
                actor: principal.actor(),
                action: AuditAction::Disclose(req.recipient.clone()).into(),
                purpose: Some(req.purpose.clone()),
                subject: Some(*id),
                decision: "not_found".into(),
                reason: None,
            });
            continue;
        };
        let wanted = match &fields {
            Some(f) => wanted(policy, &record, Some(f), pix)?,
            None => wanted(policy, &record, None, pix)?.intersect(recipient.fields),
        };
        let request = Request {
            actor,
            purpose: pix,
            wanted,
            recipient: Some(rix),
            channel: None,
        };
        let state = subject_state(app, &record).await?;
        let decision = decision::decide(policy, &state, &request, now);
        let mut data = open_allowed(app, &record, decision.allowed)?;
        for (name, value) in data.iter_mut() {
            let Some(fix) = policy.field(name) else {
                continue;
            };
            if decision.pseudonymise.contains(fix) {
                *value = pseudonymise(
                    app,
                    &req.recipient,
                    policy.fields.get(fix.get()).map(|f| f.kind),
                    name,
                    value,
                );
            }
        }
        let (word, reason) = outcome(&decision);
        audit.push(AuditDraft {
            at,
            actor: principal.actor(),
            action: AuditAction::Disclose(req.recipient.clone()).into(),
            purpose: Some(req.purpose.clone()),
            subject: Some(*id),
            decision: word.into(),
            reason,
        });
        results.push(Disclosed {
            subject: subject_label(app, &req.recipient, form, id),
            data,
            refused: refusals(policy, &decision),
        });
    }
    written(
        app.store
            .write(Batch {
                ops: vec![],
                audit,
                outbox: vec![],
            })
            .await,
    )?;
    if form != DisclosureForm::Identified {
        // In request order, a caller could pair each pseudonym with the id it sent.
        results.sort_by(|a, b| a.subject.cmp(&b.subject));
    }
    Ok(DisclosureResponse {
        recipient: req.recipient,
        purpose: req.purpose,
        form: form.as_str(),
        policy_version: app.policy_version().to_string(),
        results,
        not_found,
    })
}

/// IP addresses are truncated (so they still say roughly where); every other
/// value becomes a pseudonym keyed for this recipient alone.
fn pseudonymise(
    app: &App,
    recipient: &str,
    kind: Option<FieldType>,
    field: &str,
    value: &str,
) -> String {
    match kind {
        Some(FieldType::IpAddress) => values::truncate_ip(value)
            .unwrap_or_else(|| app.keys.pseudonym(recipient, field, value.as_bytes())),
        _ => app.keys.pseudonym(recipient, field, value.as_bytes()),
    }
}

fn subject_label(app: &App, recipient: &str, form: DisclosureForm, id: &Uuid) -> String {
    match form {
        DisclosureForm::Identified => id.to_string(),
        _ => app.keys.pseudonym(recipient, "subject", id.as_bytes()),
    }
}
