//! Compelling grounds (Art. 21(1)): after a person objects to processing on
//! legitimate interests or a public task, the controller may go on only if
//! it demonstrates compelling legitimate grounds that override the person's
//! interests, rights and freedoms, or needs the data for legal claims. That
//! judgement is the data protection officer's to record; no grounds ever
//! override an objection to direct marketing (Art. 21(3)).
//!
//! The record is a consent-ledger event (a lift of the objection to that one
//! purpose, method `compelling-grounds`), so the person's history shows it
//! beside the objection it overrides, and the decision reads it as it reads
//! any lift. The assessment itself stays with the organisation: only its
//! SHA-256 and where it is filed are kept.

use super::collect::micros;
use super::consent::{ConsentResponse, preferences};
use super::error::{FieldProblem, Internal, written};
use super::{App, AppError, Operation, Principal};
use custodian_policy::consent::{COMPELLING_GROUNDS_METHOD, GroundsRefused, grounds_may_override};
use custodian_vault::audit::AuditDraft;
use custodian_vault::crypto::{new_id, sha256};
use custodian_vault::store::{Batch, ConsentAction, ConsentEvent, WriteOp};
use serde::Deserialize;
use time::OffsetDateTime;

/// The longest filing reference kept (it goes into the audit in clear, so
/// it must name a document, never describe the person).
const MAX_REFERENCE: usize = 200;

/// The DPO's record of compelling grounds for one purpose.
#[derive(Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CompellingGrounds {
    /// The purpose the person objected to (legitimate interests or a public
    /// task, not direct marketing).
    pub purpose: String,
    /// The assessment that demonstrates the grounds; only its SHA-256 is kept.
    #[cfg_attr(feature = "openapi", schema(min_length = 1))]
    pub grounds: String,
    /// Where the assessment is filed (a document reference, kept in the
    /// audit in clear: it must not describe the person).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200))]
    pub reference: String,
}

/// The grounds may hold personal data: never printed.
impl std::fmt::Debug for CompellingGrounds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompellingGrounds")
            .field("purpose", &self.purpose)
            .finish_non_exhaustive()
    }
}

fn refused(field: &str, code: &'static str, detail: impl Into<String>) -> AppError {
    AppError::Fields {
        code: "grounds_refused",
        problems: vec![FieldProblem {
            field: field.into(),
            code,
            detail: detail.into(),
        }],
    }
}

/// Records compelling grounds over the subject's objection to one purpose.
pub async fn record(
    app: &App,
    principal: &Principal,
    subject: crate::ids::SubjectId,
    req: CompellingGrounds,
    now: OffsetDateTime,
) -> Result<ConsentResponse, AppError> {
    let subject = subject.uuid();
    app.authorize_for(
        principal,
        Operation::RecordCompellingGrounds,
        &req.purpose,
        Some(subject),
        now,
    )
    .await?;
    let reference = req.reference.trim();
    if reference.is_empty()
        || reference.chars().count() > MAX_REFERENCE
        || reference.chars().any(char::is_control)
    {
        return Err(refused(
            "reference",
            "invalid_value",
            "where the assessment is filed: 1 to 200 characters, no control characters",
        ));
    }
    if req.grounds.trim().is_empty() {
        return Err(refused(
            "grounds",
            "grounds_required",
            "the assessment that demonstrates the compelling grounds",
        ));
    }
    let purpose = app
        .policy
        .document
        .purposes
        .iter()
        .find(|p| p.id.as_str() == req.purpose)
        .ok_or_else(|| AppError::UnknownPurpose(req.purpose.clone()))?;
    match grounds_may_override(*purpose.basis, purpose.marketing) {
        Ok(()) => {}
        Err(GroundsRefused::DirectMarketing) => {
            return Err(refused(
                "purpose",
                "direct_marketing",
                "an objection to direct marketing is absolute (Art. 21(3)): no grounds override it",
            ));
        }
        Err(GroundsRefused::NotObjectable) => {
            return Err(refused(
                "purpose",
                "not_objectable",
                "the purpose rests neither on legitimate interests nor on a public task: there is no Art. 21(1) objection to override",
            ));
        }
    }
    let record = app
        .store
        .subject(subject)
        .await?
        .ok_or(AppError::SubjectNotFound)?;
    if record.wrapped_key.is_none() {
        return Err(AppError::Erased);
    }
    if !record.state.preferences.objected(&req.purpose, None, false) {
        return Err(refused(
            "purpose",
            "no_objection",
            "the person has no objection in force to this purpose",
        ));
    }
    let at = micros(now);
    let event = ConsentEvent {
        id: new_id(),
        at,
        subject: Some(subject),
        visitor: None,
        purpose: Some(req.purpose.clone()),
        channel: None,
        action: ConsentAction::Lift,
        policy_version: app.policy_version().to_string(),
        method: COMPELLING_GROUNDS_METHOD.into(),
        agent: None,
        wording_hash: Some(sha256(req.grounds.as_bytes())),
        ip_prefix: None,
        recorded_by: principal.actor(),
        expires_at: None,
    };
    let batch = Batch {
        ops: vec![WriteOp::RecordConsent(event.clone())],
        audit: vec![AuditDraft {
            at,
            actor: principal.actor(),
            action: Operation::RecordCompellingGrounds.action().into(),
            purpose: Some(req.purpose.clone()),
            subject: Some(subject),
            decision: "recorded".into(),
            reason: Some(format!("assessment={reference}")),
        }],
        outbox: vec![
            crate::events::Event::ConsentChanged {
                event: event.id,
                subject: Some(subject),
                visitor: None,
                purpose: Some(req.purpose.clone()),
                channel: None,
                action: event.action.as_str().into(),
                method: event.method.clone(),
                policy_version: event.policy_version.clone(),
            }
            .outbox(at),
        ],
    };
    let prefs = written(app.store.write(batch).await)?
        .preferences
        .ok_or(AppError::Internal(Internal::FoldMissing))?;
    Ok(ConsentResponse {
        event: event.id,
        policy_version: app.policy_version().to_string(),
        preferences: preferences(app, &prefs, now).await?,
    })
}
