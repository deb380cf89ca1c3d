//! Data-subject requests: intake, identity checks, the statutory clock, and
//! the register's views. The work itself runs as durable tasks (`tasks`),
//! carried out in the vault by `work`.
//!
//! A request is never acted on before the person is verified: by a
//! one-time code sent to the address they gave, or by a call-centre agent
//! who records the check they did. Every transition is audited with who
//! made it.

pub mod archive;
pub(crate) mod drp;
mod register;
pub mod report_stream;
pub mod stored;
pub mod systems;
mod systems_rights;
pub mod tasks;
pub mod unverified;
mod work;

use crate::audit_action::AuditAction;
use register::view;
pub use register::{
    Asker, ListQuery, MAX_WAIT, Manage, ManageAction, get, get_settled, list, manage, report,
};

use stored::{Code, Identity, Meta, Request, Sealed};
pub use stored::{Kept, Outcome, Refusal};

use crate::authz::Operation;
use crate::collect::micros;
use crate::error::{Internal, written};
use crate::{App, AppError, Principal, Role};
use custodian_policy::requests::{
    self as rules, RequestEvent, RequestKind, RequestState, next_state,
};
use custodian_policy::rules::calendar::Division;
use custodian_policy::terms::{FieldType, LegalBasis};
use custodian_policy::values;
use custodian_vault::audit::AuditDraft;
use custodian_vault::crypto::{new_id, random_bytes, sha256};
use custodian_vault::store::requests::{RequestOp, RequestRecord};
use custodian_vault::store::{Batch, OutboxEvent, WriteOp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use uuid::Uuid;

/// How long a one-time code stays valid.
pub(crate) const CODE_LIFETIME_MICROS: i64 = 15 * 60 * 1_000_000;
/// Wrong codes allowed before the request is locked for a while.
const MAX_ATTEMPTS: u32 = 5;
const LOCKOUT_MICROS: i64 = 15 * 60 * 1_000_000;
/// How long a verified person's session lasts.
const SESSION_MICROS: i64 = 24 * 60 * 60 * 1_000_000;

/// A new request, from the portal (a service key) or a call-centre agent.
#[derive(Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewRequest {
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schema::request_kind))]
    pub kind: RequestKind,
    /// The person's email address: codes and notices go there.
    pub email: String,
    /// For rectification: the corrected values, by field name.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub fields: BTreeMap<String, serde_json::Value>,
    /// For an objection: the legitimate-interest or public-task purpose.
    #[serde(default)]
    pub purpose: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
    /// A call-centre agent's own identity check: the person is verified at
    /// once. Only agent and admin keys may give it.
    #[serde(default)]
    pub identity: Option<IdentityCheck>,
}

/// The address and values are personal data: they never print.
impl std::fmt::Debug for NewRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewRequest")
            .field("kind", &self.kind)
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .field("purpose", &self.purpose)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct IdentityCheck {
    /// How the agent checked (for example `security-questions`).
    pub method: String,
    /// What was checked, in words; never a document number.
    pub evidence: String,
}

/// A code the person received.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    pub code: String,
}

/// A task as the register shows it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskView {
    pub system: String,
    /// pending, done or failed
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
}

/// A request as the register shows it. No personal data: the address and
/// values stay sealed.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RequestView {
    pub id: Uuid,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schema::request_kind))]
    pub kind: RequestKind,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schema::request_state))]
    pub state: RequestState,
    pub received_at: String,
    /// The statutory due date, once the clock runs (and not paused).
    pub due: Option<String>,
    pub overdue: bool,
    pub due_soon: bool,
    pub verified_at: Option<String>,
    pub extended: bool,
    pub paused: bool,
    pub outcome: Option<Outcome>,
    pub tasks: Vec<TaskView>,
}

/// What a person gets for a right code: a session to follow their own
/// requests, shown once.
#[derive(Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Verified {
    /// `rs_...`: send as `Authorization: Bearer`; valid for 24 hours, for
    /// the requests of this address only.
    pub session: String,
    pub request: RequestView,
}

impl std::fmt::Debug for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verified")
            .field("session", &"<redacted>")
            .field("request", &self.request)
            .finish()
    }
}

/// The bank-holiday division of the controller: where it is registered.
pub fn division(app: &App) -> Division {
    let registered = app
        .policy
        .document
        .controller
        .registered_in
        .to_lowercase()
        .replace(' ', "-");
    Division::parse(&registered).unwrap_or(Division::EnglandAndWales)
}

fn parse_date(field: &str, text: &str) -> Result<time::Date, AppError> {
    time::Date::parse(
        text,
        &time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map_err(|_| AppError::Invalid(format!("`{field}` must be a date, YYYY-MM-DD")))
}

fn date_text(d: time::Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

fn contact_hash(app: &App, email_key: &str) -> [u8; 32] {
    app.keys.blind_index("request-contact", email_key)
}

fn code_hash(app: &App, id: &Uuid, code: &str) -> String {
    custodian_vault::audit::hex(
        &app.keys
            .blind_index("request-code", &format!("{id}:{code}")),
    )
}

/// Six digits from the CSPRNG, uniformly.
fn new_code() -> String {
    loop {
        let bytes: [u8; 4] = random_bytes();
        let n = u32::from_le_bytes(bytes);
        // Reject the top of the range so every code is equally likely.
        if n < 4_294_000_000 {
            return format!("{:06}", n % 1_000_000);
        }
    }
}

fn entry(
    actor: &str,
    action: AuditAction,
    subject: Option<Uuid>,
    decision: &str,
    reason: Option<String>,
    at: i64,
) -> AuditDraft {
    AuditDraft {
        at,
        actor: actor.to_string(),
        action: action.into(),
        purpose: None,
        subject,
        decision: decision.to_string(),
        reason,
    }
}

/// The event announcing a request's new state.
fn request_event(r: &Request, at: i64) -> OutboxEvent {
    crate::events::Event::RequestChanged {
        request: r.record.id,
        kind: r.kind.as_str().into(),
        state: r.state.as_str().into(),
        subject: r.record.subject,
        due: r.record.due.clone(),
    }
    .outbox(at)
}

/// Moves a request by `event`, or says why it cannot move.
fn advance(r: &mut Request, event: RequestEvent) -> Result<(), AppError> {
    r.state = next_state(r.state, event).map_err(|e| AppError::ForbiddenCode {
        code: "invalid_transition",
        detail: e.to_string(),
    })?;
    Ok(())
}

/// Recomputes the due date from the clock (none while paused).
fn recompute_due(app: &App, r: &mut Request) -> Result<(), AppError> {
    if r.meta.identity.is_none() {
        r.record.due = None;
        return Ok(());
    }
    let due =
        rules::due(&r.clock(), division(app)).map_err(|e| AppError::Invalid(e.to_string()))?;
    r.record.due = due.map(date_text);
    Ok(())
}

/// Verified: the clock starts, the work is queued, in the same batch.
fn start_work(
    app: &App,
    r: &mut Request,
    ops: &mut Vec<WriteOp>,
    now: i64,
) -> Result<(), AppError> {
    recompute_due(app, r)?;
    advance(r, RequestEvent::Start)?;
    ops.push(WriteOp::Request(RequestOp::CreateTask {
        request: r.record.id,
        system: tasks::VAULT.into(),
        run_after: now,
    }));
    // Each declared dataset is a task of its own: one system's failure
    // does not hold up the others.
    if systems::reaches_datasets(r.kind) {
        for d in &app.policy.document.datasets {
            ops.push(WriteOp::Request(RequestOp::CreateTask {
                request: r.record.id,
                system: d.id.to_string(),
                run_after: now,
            }));
        }
    }
    Ok(())
}

async fn find_subject(app: &App, email_key: &str) -> Result<Option<Uuid>, AppError> {
    for field in app
        .policy
        .compiled
        .fields
        .iter()
        .filter(|f| f.kind == FieldType::Email)
    {
        let hash = app.keys.blind_index(&field.name, email_key);
        if let Some(record) = app.store.subject_by_lookup(&field.name, &hash).await? {
            return Ok(Some(record.id));
        }
    }
    Ok(None)
}

fn check_details(app: &App, req: &NewRequest) -> Result<(), AppError> {
    match req.kind {
        RequestKind::Rectification => {
            if req.fields.is_empty() {
                return Err(AppError::Invalid(
                    "a rectification names the corrected values in `fields`".into(),
                ));
            }
            crate::collect::check_any(app, &req.fields).map(drop)
        }
        RequestKind::Objection => {
            let name = req.purpose.as_deref().ok_or_else(|| {
                AppError::Invalid("an objection names the purpose in `purpose`".into())
            })?;
            let purpose = app
                .policy
                .document
                .purposes
                .iter()
                .find(|p| p.id.as_str() == name)
                .ok_or_else(|| AppError::UnknownPurpose(name.to_string()))?;
            if !matches!(
                *purpose.basis,
                LegalBasis::LegitimateInterest | LegalBasis::PublicTask
            ) {
                return Err(AppError::Invalid(format!(
                    "purpose `{name}` does not rest on legitimate interest or a public task: an objection under Art. 21(1) does not apply (withdraw consent instead)"
                )));
            }
            Ok(())
        }
        _ if !req.fields.is_empty() || req.purpose.is_some() => Err(AppError::Invalid(
            "`fields` is for rectification and `purpose` for objection only".into(),
        )),
        _ => Ok(()),
    }
}

/// Takes a request in. With an agent's identity check it is verified and
/// queued at once; otherwise a one-time code goes to the address given.
pub async fn submit(
    app: &App,
    principal: &Principal,
    req: NewRequest,
    now: OffsetDateTime,
) -> Result<RequestView, AppError> {
    app.authorize(principal, Operation::SubmitRequest, now)
        .await?;
    if req.identity.is_some() && !matches!(principal.role, Role::Agent | Role::Admin) {
        let refusal = AppError::ForbiddenCode {
            code: "identity_not_allowed_for_key",
            detail: "only a call-centre agent (or an admin) attests a person's identity".into(),
        };
        return Err(app
            .refuse(
                principal,
                Operation::SubmitRequest,
                None,
                None,
                refusal,
                now,
            )
            .await);
    }
    let email_key = values::lookup_key(FieldType::Email, &req.email)
        .ok_or_else(|| AppError::Invalid("the email address given is not valid".into()))?;
    check_details(app, &req)?;
    let channel = if principal.role == Role::Agent {
        "call-centre"
    } else {
        "api"
    };
    let identity = req.identity.as_ref().map(|check| Identity {
        at: micros(now),
        method: check.method.clone(),
        by: principal.actor(),
        evidence: Some(check.evidence.clone()),
    });
    let (r, mailed) = intake(
        app,
        Intake {
            kind: req.kind,
            email_key,
            fields: req.fields,
            purpose: req.purpose,
            note: req.note,
            channel: channel.into(),
            submitted_by: principal.actor(),
            identity,
            agent: None,
        },
        now,
    )
    .await?;
    mailed?;
    view(app, r, now).await
}

/// A request as taken in, whoever took it: checked already.
pub(crate) struct Intake {
    pub kind: RequestKind,
    /// The contact address, normalised for lookups.
    pub email_key: String,
    pub fields: BTreeMap<String, serde_json::Value>,
    pub purpose: Option<String>,
    pub note: Option<String>,
    pub channel: String,
    pub submitted_by: String,
    /// Identity established by whoever took the request in; without it a
    /// one-time code goes to the address.
    pub identity: Option<Identity>,
    pub agent: Option<stored::AgentLink>,
}

/// Records a request: verified and queued at once with an identity, or
/// awaiting the one-time code mailed to the address. The request is
/// written before the mail goes; a failed mail is handed back beside it.
pub(crate) async fn intake(
    app: &App,
    input: Intake,
    now: OffsetDateTime,
) -> Result<(Request, Result<(), AppError>), AppError> {
    let at = micros(now);
    let id = new_id();
    let subject = find_subject(app, &input.email_key).await?;
    let (key, wrapped) = app
        .keys
        .new_data_key(&id)
        .map_err(|_| AppError::Internal(Internal::KeyGenerationFailed))?;
    let sealed = Sealed {
        email: input.email_key.clone(),
        fields: input.fields,
        note: input.note,
        identities: Default::default(),
    };
    let code = new_code();
    let mut r = Request {
        record: RequestRecord {
            id,
            kind: input.kind.as_str().into(),
            state: RequestState::Received.as_str().into(),
            version: 0,
            subject,
            contact_hash: Some(contact_hash(app, &input.email_key)),
            received_at: at,
            due: None,
            updated_at: at,
            wrapped_key: Some(wrapped),
            sealed: stored::seal(&key, &id, &sealed)?,
            meta: String::new(),
        },
        kind: input.kind,
        state: RequestState::Received,
        meta: Meta {
            channel: input.channel,
            submitted_by: input.submitted_by.clone(),
            purpose: input.purpose,
            agent: input.agent,
            ..Meta::default()
        },
    };
    let mut ops = Vec::new();
    let mut audit = vec![entry(
        &input.submitted_by,
        AuditAction::RequestReceive,
        subject,
        "recorded",
        Some(format!("kind={}", input.kind.as_str())),
        at,
    )];
    match input.identity {
        Some(identity) => {
            audit.push(entry(
                &identity.by,
                AuditAction::RequestVerify,
                subject,
                "verified",
                Some(identity.method.clone()),
                at,
            ));
            r.meta.identity = Some(identity);
            advance(&mut r, RequestEvent::Verify)?;
            start_work(app, &mut r, &mut ops, at)?;
        }
        None => {
            r.meta.code = Some(Code {
                hash: code_hash(app, &id, &code),
                expires_at: at + CODE_LIFETIME_MICROS,
                attempts: 0,
                locked_until: None,
                sent: 1,
                sent_at: Some(at),
            });
            advance(&mut r, RequestEvent::AskIdentity)?;
        }
    }
    let mut record = r.to_record(at)?;
    record.version = 1;
    ops.insert(0, WriteOp::Request(RequestOp::Create(record.clone())));
    r.record = record;
    let batch = Batch {
        ops,
        audit,
        outbox: vec![request_event(&r, at)],
    };
    written(app.store.write(batch).await)?;
    if r.state == RequestState::InProgress {
        app.tasks_queued.notify_one();
        return Ok((r, Ok(())));
    }
    let mailed = match app
        .mailer
        .send(code_mail(app, input.email_key, &code))
        .await
    {
        Ok(()) => Ok(()),
        Err(e) => {
            tracing::warn!(request = %id, code = e.code(), "the verification code could not be sent");
            Err(AppError::MailUnavailable(e.code()))
        }
    };
    Ok((r, mailed))
}

/// The message that carries a one-time code.
fn code_mail(app: &App, to: String, code: &str) -> crate::mail::OutgoingMail {
    crate::mail::OutgoingMail {
        to,
        subject: format!(
            "Your code for your request to {}",
            app.policy.document.controller.legal_name
        ),
        text: format!(
            "Your code is {code}. Enter it to confirm your request; it is valid for 15 minutes.\n\nIf you did not make a request, you can ignore this message.\n"
        ),
    }
}

/// The person enters the code they received. Right: verified, the work is
/// queued, and a session to follow their requests is returned. Wrong: the
/// attempts left shrink; too many lock the request for a while.
pub async fn verify(
    app: &App,
    id: Uuid,
    code: &str,
    now: OffsetDateTime,
) -> Result<Verified, AppError> {
    let at = micros(now);
    let not_found = || AppError::NotFound("no request awaits verification with this id".into());
    let record = app.store.request(id).await?.ok_or_else(not_found)?;
    let mut r = Request::from_record(record)?;
    if r.state != RequestState::AwaitingVerification {
        return Err(not_found());
    }
    let Some(mut stored) = r.meta.code.clone() else {
        return Err(not_found());
    };
    let expected = r.record.version;
    if stored.locked_until.is_some_and(|until| until > at) {
        return Err(AppError::ForbiddenCode {
            code: "verification_locked",
            detail: "too many wrong codes: try again later".into(),
        });
    }
    let refuse = |reason: &str| {
        entry(
            "person",
            AuditAction::RequestVerify,
            r.record.subject,
            "refused",
            Some(reason.to_string()),
            at,
        )
    };
    if stored.expires_at <= at {
        written(
            app.store
                .write(Batch::audit_only(refuse("code_expired")))
                .await,
        )?;
        return Err(AppError::ForbiddenCode {
            code: "code_expired",
            detail: "the code has expired; ask for the request to be sent again".into(),
        });
    }
    let right = code_hash(app, &id, code.trim()) == stored.hash;
    if !right {
        stored.attempts += 1;
        let left = MAX_ATTEMPTS.saturating_sub(stored.attempts);
        if left == 0 {
            stored.locked_until = Some(at + LOCKOUT_MICROS);
            stored.attempts = 0;
        }
        r.meta.code = Some(stored);
        let batch = Batch {
            ops: vec![WriteOp::Request(RequestOp::Update {
                record: r.to_record(at)?,
                expected_version: expected,
            })],
            audit: vec![refuse("wrong_code")],
            outbox: vec![],
        };
        written(app.store.write(batch).await)?;
        return Err(if left == 0 {
            AppError::ForbiddenCode {
                code: "verification_locked",
                detail: "too many wrong codes: try again in 15 minutes".into(),
            }
        } else {
            AppError::Invalid(format!("the code is not right; {left} attempts left"))
        });
    }
    r.meta.code = None;
    r.meta.identity = Some(Identity {
        at,
        method: "email-code".into(),
        by: "person".into(),
        evidence: None,
    });
    advance(&mut r, RequestEvent::Verify)?;
    let mut ops = Vec::new();
    start_work(app, &mut r, &mut ops, at)?;
    let token_bytes: [u8; 32] = random_bytes();
    let token = format!("rs_{}", custodian_vault::audit::hex(&token_bytes));
    let contact = r
        .record
        .contact_hash
        .ok_or_else(|| AppError::Corrupt(format!("requests row {id}, column contact_hash")))?;
    ops.push(WriteOp::Request(RequestOp::PutSession {
        hash: sha256(token.as_bytes()),
        contact_hash: contact,
        expires_at: at + SESSION_MICROS,
    }));
    let record = r.to_record(at)?;
    ops.insert(
        0,
        WriteOp::Request(RequestOp::Update {
            record: record.clone(),
            expected_version: expected,
        }),
    );
    r.record = record;
    let batch = Batch {
        ops,
        audit: vec![entry(
            "person",
            AuditAction::RequestVerify,
            r.record.subject,
            "verified",
            Some("email-code".into()),
            at,
        )],
        outbox: vec![request_event(&r, at)],
    };
    written(app.store.write(batch).await)?;
    app.tasks_queued.notify_one();
    Ok(Verified {
        session: token,
        request: view(app, r, now).await?,
    })
}
