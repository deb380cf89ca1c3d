//! Requests from authorized agents (Data Rights Protocol): a verified
//! message becomes a request of the register, taken in with the agent as
//! its channel, verified by the identity the agent attests (when the
//! business trusts it to) or by the one-time code, clocked, carried out by
//! the same tasks, and reported in the protocol's terms. An agent reaches
//! its own requests only.

use super::stored::{AgentLink, Identity, Request};
use super::{Intake, advance, entry, intake, request_event};
use crate::audit_action::AuditAction;
use crate::collect::micros;
use crate::drp::{DrpError, KnownAgent, authenticate, open, refuse};
use crate::error::written;
use crate::{App, AppError};
use custodian_policy::drp::{self as rules, Action};
use custodian_policy::requests::{self as clock, RequestEvent, RequestState};
use custodian_policy::terms::FieldType;
use custodian_policy::values;
use custodian_vault::store::requests::RequestOp;
use custodian_vault::store::{Batch, WriteOp};
use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

/// A request's status in the protocol's terms (its "Exercise Status").
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DrpStatus {
    pub request_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_request_id: Option<String>,
    /// open, in_progress, fulfilled, revoked, denied or expired
    pub status: String,
    /// need_user_verification, or why a request was denied
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub received_at: String,
    /// The statutory due date (UK GDPR Art. 12(3), bank holidays of the
    /// controller's nation); while the person is still to verify, the date
    /// if they verify today.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_by: Option<String>,
    pub processing_details: String,
    /// The page where the person enters the code this business sent them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_verification_url: Option<String>,
}

fn refused_here(status: u16, reason: &'static str, message: &str) -> DrpError {
    DrpError::new(status, reason, message)
}

fn date_text(d: time::Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// The protocol's view of a register request.
fn status_of(app: &App, r: &Request, now: OffsetDateTime) -> DrpStatus {
    let outcome = r.meta.outcome.as_ref();
    let found = outcome.is_some_and(|o| o.found);
    let refusal = outcome.and_then(|o| o.refusal.as_ref());
    let (status, reason) = rules::status(r.state, found, refusal.map(|x| x.reason.as_str()));
    let expected_by = match (&r.record.due, r.state) {
        (Some(due), _) => Some(due.clone()),
        (None, RequestState::AwaitingVerification | RequestState::Received) => {
            // The clock starts with the identity: were it today, this.
            let mut provisional = r.clock();
            provisional.identity = Some(now.date());
            clock::due(&provisional, super::division(app))
                .ok()
                .flatten()
                .map(date_text)
        }
        _ => None,
    };
    let details = match r.state {
        RequestState::Received => "received".to_string(),
        RequestState::AwaitingVerification => format!(
            "{} sent a one-time code to the email address given; the person enters it at user_verification_url within 15 minutes",
            app.policy.document.controller.legal_name
        ),
        RequestState::Verified | RequestState::InProgress => {
            let mut text = "verified; being carried out".to_string();
            if let Some(ext) = &r.meta.extension {
                text.push_str(&format!(
                    "; extended by two further months (Art. 12(3)): {}",
                    ext.reason
                ));
            }
            if r.meta.pauses.iter().any(|p| p.answered.is_none()) {
                text.push_str("; paused while clarification is awaited");
            }
            text
        }
        RequestState::Completed | RequestState::PartiallyCompleted if !found => {
            "no personal data matching the identity given is held".to_string()
        }
        RequestState::Completed => "completed".to_string(),
        RequestState::PartiallyCompleted => {
            let kept: Vec<String> = outcome
                .map(|o| {
                    o.kept
                        .iter()
                        .map(|k| format!("{} ({})", k.field, k.ground))
                        .collect()
                })
                .unwrap_or_default();
            format!("completed; kept on a legal ground: {}", kept.join(", "))
        }
        RequestState::Refused => refusal.map_or_else(
            || "refused".to_string(),
            |x| format!("refused: {}. {}", x.reason, x.complain_to),
        ),
        RequestState::Cancelled => "revoked".to_string(),
        RequestState::Expired => "the person did not verify their identity in time".to_string(),
    };
    let verifying = r.state == RequestState::AwaitingVerification;
    DrpStatus {
        request_id: r.record.id,
        agent_request_id: r.meta.agent.as_ref().and_then(|a| a.request_id.clone()),
        status: status.as_str().into(),
        reason: reason.map(str::to_string),
        received_at: crate::read::rfc3339(r.record.received_at),
        expected_by,
        processing_details: details,
        user_verification_url: verifying
            .then(|| format!("{}/requests/{}/verify", app.drp.api_base, r.record.id)),
    }
}

fn optional_text(message: &Map<String, Value>, name: &str) -> Result<Option<String>, DrpError> {
    match message.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(refused_here(
            400,
            "malformed",
            &format!("`{name}` must be a string"),
        )),
    }
}

/// What the message asks for, checked against what this business offers.
fn action_of(app: &App, message: &Map<String, Value>) -> Result<Action, DrpError> {
    let version = message.get("drp.version").and_then(Value::as_str);
    if version != Some(rules::VERSION) {
        return Err(refused_here(
            400,
            "unsupported_version",
            "`drp.version` must be \"1.0\"",
        ));
    }
    let exercise = message
        .get("exercise")
        .and_then(Value::as_str)
        .ok_or_else(|| refused_here(400, "malformed", "the message lacks `exercise`"))?;
    let action = Action::parse(exercise).ok_or_else(|| {
        refused_here(
            400,
            "unsupported_action",
            "`exercise` is not an action of the protocol",
        )
    })?;
    if !rules::offered(&app.policy.compiled).contains(&action) {
        return Err(refused_here(
            400,
            "action_not_offered",
            "this business does not offer that action (see /.well-known/data-rights.json)",
        ));
    }
    Ok(action)
}

/// `POST /v1/data-rights-request`: a signed request from the agent the
/// token names becomes a register request. Only the email address is kept
/// of the identity claims (sealed, as every request's contact is).
pub async fn submit(
    app: &App,
    token: Option<&str>,
    body: &str,
    now: OffsetDateTime,
) -> Result<DrpStatus, DrpError> {
    const ACTION: &AuditAction = &AuditAction::DrpRequest;
    let known = authenticate(app, token, ACTION, now).await?;
    let agent = &known.record;
    let checked = async {
        let message = open(app, &known, body, true, now)?;
        let action = action_of(app, &message)?;
        let email = message
            .get("email")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                refused_here(
                    400,
                    "email_required",
                    "this business needs the person's `email` to match and reach them",
                )
            })?;
        let email_key = values::lookup_key(FieldType::Email, email)
            .ok_or_else(|| refused_here(400, "invalid_email", "`email` is not an email address"))?;
        let verified = message.get("email_verified").and_then(Value::as_bool) == Some(true);
        let link = AgentLink {
            id: agent.id.clone(),
            action: action.as_str().into(),
            request_id: optional_text(&message, "agent-request-id")?,
            regime: optional_text(&message, "regime")?,
        };
        Ok((action, email_key, verified, link))
    }
    .await;
    let (action, email_key, verified, link) = match checked {
        Ok(checked) => checked,
        Err(e) => return Err(refuse(app, Some(&agent.id), ACTION, e, now).await),
    };
    let kind = action.kind().ok_or_else(|| {
        refused_here(
            400,
            "action_not_offered",
            "this business does not offer that action",
        )
    })?;
    // The agent's attestation stands for the identity only where the
    // business trusts this agent to check it, and only for an address the
    // agent says it verified; otherwise this business sends its own code.
    let identity = (agent.trust_identity && verified).then(|| Identity {
        at: micros(now),
        method: "drp-agent-attested".into(),
        by: format!("agent:{}", agent.id),
        evidence: Some(format!(
            "email address verified by authorized agent {}",
            agent.id
        )),
    });
    let (r, mailed) = intake(
        app,
        Intake {
            kind,
            email_key,
            fields: Default::default(),
            purpose: None,
            note: None,
            channel: "drp".into(),
            submitted_by: format!("agent:{}", agent.id),
            identity,
            agent: Some(link),
        },
        now,
    )
    .await?;
    let mut answer = status_of(app, &r, now);
    if let Err(e) = mailed {
        // The request is kept; the agent learns why the person has no code.
        answer.processing_details = format!(
            "the one-time code could not be mailed to the person yet ({}); the request is kept",
            e.code()
        );
    }
    Ok(answer)
}

/// The request `id`, if it is `agent`'s: another agent's request is
/// refused (403), one that does not exist is not found (404).
async fn own_request(
    app: &App,
    agent: &custodian_vault::store::agents::AgentRecord,
    id: &str,
    action: &AuditAction,
    now: OffsetDateTime,
) -> Result<Request, DrpError> {
    let not_found = || refused_here(404, "not_found", "no request with this id");
    let found = match Uuid::parse_str(id) {
        Ok(id) => app.store.request(id).await?,
        Err(_) => None,
    };
    let Some(record) = found else {
        return Err(refuse(app, Some(&agent.id), action, not_found(), now).await);
    };
    let r = Request::from_record(record)?;
    if r.meta.agent.as_ref().map(|a| a.id.as_str()) != Some(agent.id.as_str()) {
        let refusal = refused_here(
            403,
            "not_this_agents_request",
            "this request was not submitted by the agent this token names",
        );
        return Err(refuse(app, Some(&agent.id), action, refusal, now).await);
    }
    Ok(r)
}

/// `GET /v1/data-rights-request/{id}`.
pub async fn status(
    app: &App,
    token: Option<&str>,
    id: &str,
    now: OffsetDateTime,
) -> Result<DrpStatus, DrpError> {
    const ACTION: &AuditAction = &AuditAction::DrpStatus;
    let agent = authenticate(app, token, ACTION, now).await?.record;
    let r = own_request(app, &agent, id, ACTION, now).await?;
    Ok(status_of(app, &r, now))
}

/// `DELETE /v1/data-rights-request/{id}`: the agent revokes its request,
/// with a signed message (its `reason` is not kept: it is the person's free
/// text). A request already being carried out can no longer be revoked.
pub async fn revoke(
    app: &App,
    token: Option<&str>,
    id: &str,
    body: &str,
    now: OffsetDateTime,
) -> Result<DrpStatus, DrpError> {
    const ACTION: &AuditAction = &AuditAction::DrpRevoke;
    let known: KnownAgent = authenticate(app, token, ACTION, now).await?;
    let agent = &known.record;
    let mut r = own_request(app, agent, id, ACTION, now).await?;
    // The protocol's revoke message need not carry the claims; when it
    // does, they are checked like any other message's.
    let opened = open(app, &known, body, false, now).and_then(|message| {
        if message.contains_key("agent-id") || message.contains_key("expires-at") {
            open(app, &known, body, true, now).map(drop)
        } else {
            Ok(())
        }
    });
    if let Err(e) = opened {
        return Err(refuse(app, Some(&agent.id), ACTION, e, now).await);
    }
    let expected = r.record.version;
    if let Err(AppError::ForbiddenCode { .. }) = advance(&mut r, RequestEvent::Cancel) {
        let refusal = refused_here(
            409,
            "not_revocable",
            "the request is being carried out or is closed, and can no longer be revoked",
        );
        return Err(refuse(app, Some(&agent.id), ACTION, refusal, now).await);
    }
    let at = micros(now);
    let record = r.to_record(at)?;
    let batch = Batch {
        ops: vec![WriteOp::Request(RequestOp::Update {
            record: record.clone(),
            expected_version: expected,
        })],
        audit: vec![entry(
            &format!("agent:{}", agent.id),
            AuditAction::RequestCancel,
            r.record.subject,
            "recorded",
            Some(format!("request={}", r.record.id)),
            at,
        )],
        outbox: vec![request_event(&r, at)],
    };
    written(app.store.write(batch).await)?;
    r.record = record;
    Ok(status_of(app, &r, now))
}
