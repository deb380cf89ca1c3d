//! The register's side of requests: who may see a request, the list with
//! its filters, reports, a staff member's steering of a request's course,
//! and the view of a request that every answer gives.

use super::report_stream::ReportStream;
use super::stored::{self, Outcome, Refusal, Request};
use super::{
    RequestView, TaskView, advance, division, entry, parse_date, recompute_due, request_event,
};
use crate::audit_action::AuditAction;
use crate::authz::Operation;
use crate::collect::micros;
use crate::error::written;
use crate::{App, AppError, Principal};
use custodian_policy::requests::{self as rules, RequestEvent, RequestKind, RequestState};
use custodian_vault::crypto::sha256;
use custodian_vault::store::requests::{RequestFilter, RequestOp, RequestRecord};
use custodian_vault::store::{Batch, WriteOp};
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

/// Requests due within this many days are listed as due soon.
const DUE_SOON_DAYS: i64 = 7;

/// Who asks about a request: a key, or a verified person's session.
#[derive(Clone, Copy)]
pub enum Asker<'a> {
    Key(&'a Principal),
    Session(&'a str),
}

/// The filters of the register's list.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[cfg_attr(feature = "openapi", param(schema_with = crate::schema::request_state))]
    pub state: Option<String>,
    #[cfg_attr(feature = "openapi", param(schema_with = crate::schema::request_kind))]
    pub kind: Option<String>,
    /// Due on or before this date (YYYY-MM-DD).
    #[cfg_attr(feature = "openapi", param(format = Date))]
    pub due_by: Option<String>,
    /// Only requests past their due date.
    #[serde(default)]
    pub overdue: bool,
    /// Only requests due within seven days.
    #[serde(default)]
    pub due_soon: bool,
    /// Requests after this id (paging).
    pub after: Option<Uuid>,
    /// At most this many (default 100, at most 1000).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 1000))]
    pub limit: Option<i64>,
}

/// What a staff action does to a request's course.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ManageAction {
    /// The request is withdrawn (before work starts).
    Cancel,
    /// Refused, with the `reason` given to the person.
    Refuse,
    /// Art. 12(3): two further months for a complex or numerous request,
    /// with the `reason` and the date the person was `told` (within the
    /// first month).
    Extend,
    /// Art. 12A: waiting for clarification `asked` on that date; only with
    /// `large_amount` (the controller holds a large amount about the person).
    Pause,
    /// The clarification was `answered` on that date.
    Resume,
    /// The fee arrived `on` that date (the clock starts no earlier).
    FeeReceived,
    /// The request's failed tasks run again, their attempts counted afresh:
    /// for a system that failed for good (a missing table, a refused
    /// credential) once someone has put it right.
    RetryFailed,
}

/// A staff action on a request's course. Which of the other fields an
/// action needs is said on each action.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Manage {
    pub action: ManageAction,
    #[serde(default)]
    pub reason: Option<String>,
    /// YYYY-MM-DD
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(format = Date))]
    pub told: Option<String>,
    /// YYYY-MM-DD
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(format = Date))]
    pub asked: Option<String>,
    #[serde(default)]
    pub large_amount: Option<bool>,
    /// YYYY-MM-DD
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(format = Date))]
    pub answered: Option<String>,
    /// YYYY-MM-DD
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(format = Date))]
    pub on: Option<String>,
}

fn needed<'a>(value: &'a Option<String>, field: &str, action: &str) -> Result<&'a str, AppError> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| AppError::Invalid(format!("`{action}` needs `{field}`")))
}

/// May `asker` see request `r`? A key by the table; a session only for the
/// requests of the address it proved (others are "not found").
async fn may_see(
    app: &App,
    asker: &Asker<'_>,
    operation: Operation,
    r: &RequestRecord,
    now: OffsetDateTime,
) -> Result<(), AppError> {
    match asker {
        Asker::Key(p) => app.authorize(p, operation, now).await.map(drop),
        Asker::Session(token) => {
            let contact = app
                .store
                .session(&sha256(token.as_bytes()), micros(now))
                .await?;
            match contact {
                None => Err(AppError::Unauthorized),
                Some(c) if Some(c) == r.contact_hash => Ok(()),
                Some(_) => Err(AppError::NotFound("no request with this id".into())),
            }
        }
    }
}

pub async fn get(
    app: &App,
    asker: Asker<'_>,
    id: Uuid,
    now: OffsetDateTime,
) -> Result<RequestView, AppError> {
    let record = app.store.request(id).await?;
    let Some(record) = record else {
        if let Asker::Key(p) = asker {
            app.authorize(p, Operation::ReadRequest, now).await?;
        }
        return Err(AppError::NotFound("no request with this id".into()));
    };
    may_see(app, &asker, Operation::ReadRequest, &record, now).await?;
    view(app, Request::from_record(record)?, now).await
}

/// The longest a reader may wait for a request to settle.
pub const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// [`get`], waiting up to `wait` (at most [`MAX_WAIT`]) while the request's
/// work is under way: the answer comes as soon as it completes, is refused
/// or fails, without the caller polling. A request awaiting the person's
/// verification is answered at once: only the person can move it.
pub async fn get_settled(
    app: &App,
    asker: Asker<'_>,
    id: Uuid,
    wait: std::time::Duration,
    now: OffsetDateTime,
) -> Result<RequestView, AppError> {
    let deadline = tokio::time::Instant::now() + wait.min(MAX_WAIT);
    loop {
        // Registered before the read, so a completion between the read and
        // the wait is not missed.
        let settled = app.requests_settled.notified();
        tokio::pin!(settled);
        settled.as_mut().enable();
        let view = get(app, asker, id, now).await?;
        let working = matches!(
            view.state,
            RequestState::Received | RequestState::Verified | RequestState::InProgress
        );
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if !working || left.is_zero() {
            return Ok(view);
        }
        let _ =
            tokio::time::timeout(left.min(std::time::Duration::from_millis(100)), settled).await;
    }
}

/// The register, filtered: by state, kind, due date, overdue or due soon.
pub async fn list(
    app: &App,
    principal: &Principal,
    q: ListQuery,
    now: OffsetDateTime,
) -> Result<Vec<RequestView>, AppError> {
    app.authorize(principal, Operation::ListRequests, now)
        .await?;
    if let Some(s) = &q.state {
        RequestState::parse(s).ok_or_else(|| AppError::Invalid(format!("unknown state `{s}`")))?;
    }
    if let Some(k) = &q.kind {
        RequestKind::parse(k).ok_or_else(|| AppError::Invalid(format!("unknown kind `{k}`")))?;
    }
    if let Some(d) = &q.due_by {
        time::Date::parse(
            d,
            &time::macros::format_description!("[year]-[month]-[day]"),
        )
        .map_err(|_| AppError::Invalid("`due_by` must be a date, YYYY-MM-DD".into()))?;
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(AppError::Invalid("`limit` must be 1 to 1000".into()));
    }
    let filter = RequestFilter {
        state: q.state.clone(),
        kind: q.kind.clone(),
        due_by: q.due_by.clone(),
        contact_hash: None,
        after: q.after,
        limit,
    };
    let mut out = Vec::new();
    for record in app.store.requests(&filter).await? {
        let v = view_without_tasks(Request::from_record(record)?, now);
        if (q.overdue && !v.overdue) || (q.due_soon && !v.due_soon) {
            continue;
        }
        out.push(v);
    }
    Ok(out)
}

/// A report (json, html, or the portability archive), opened, with the
/// datasets' parts after the vault's report, served as a stream: the
/// refusals (who may see it, whether it exists) and the audit entry come
/// before it.
pub async fn report(
    app: &App,
    asker: Asker<'_>,
    id: Uuid,
    format: &str,
    now: OffsetDateTime,
) -> Result<ReportStream, AppError> {
    let (r, bytes) = open_checked(app, asker, id, format, now).await?;
    let systems = r
        .meta
        .outcome
        .as_ref()
        .map(|o| o.systems.clone())
        .unwrap_or_default();
    ReportStream::new(app, r.record, format, bytes, &systems)
}

/// The request and the vault's part of its report in `format`, opened,
/// once the asker may see it and the read is audited: everything that can
/// refuse a reader, settled before the first byte is sent.
pub(super) async fn open_checked(
    app: &App,
    asker: Asker<'_>,
    id: Uuid,
    format: &str,
    now: OffsetDateTime,
) -> Result<(Request, Vec<u8>), AppError> {
    let record = app
        .store
        .request(id)
        .await?
        .ok_or_else(|| AppError::NotFound("no request with this id".into()))?;
    may_see(app, &asker, Operation::ReadReport, &record, now).await?;
    let sealed =
        app.store.report(id, format).await?.ok_or_else(|| {
            AppError::NotFound(format!("this request has no {format} report (yet)"))
        })?;
    let entry_actor = match &asker {
        Asker::Key(p) => p.actor(),
        Asker::Session(_) => "person".into(),
    };
    written(
        app.store
            .write(Batch::audit_only(entry(
                &entry_actor,
                AuditAction::RequestReport,
                record.subject,
                "allowed",
                Some(format!("format={format}")),
                micros(now),
            )))
            .await,
    )?;
    let bytes = stored::open_report(app, &record, format, &sealed)?;
    Ok((Request::from_record(record)?, bytes))
}

/// A staff action on a request's course: cancel, refuse, extend, pause,
/// resume, record the fee, or retry the tasks that failed.
pub async fn manage(
    app: &App,
    principal: &Principal,
    id: Uuid,
    action: Manage,
    now: OffsetDateTime,
) -> Result<RequestView, AppError> {
    app.authorize(principal, Operation::ManageRequest, now)
        .await?;
    let at = micros(now);
    let record = app
        .store
        .request(id)
        .await?
        .ok_or_else(|| AppError::NotFound("no request with this id".into()))?;
    let mut r = Request::from_record(record)?;
    let expected = r.record.version;
    let mut outbox = Vec::new();
    let mut retry = Vec::new();
    let what = match action.action {
        ManageAction::Cancel => {
            advance(&mut r, RequestEvent::Cancel)?;
            outbox.push(request_event(&r, at));
            AuditAction::RequestCancel
        }
        ManageAction::Refuse => {
            let reason = needed(&action.reason, "reason", "refuse")?.to_string();
            advance(&mut r, RequestEvent::Refuse)?;
            let regulator = &app.policy.document.controller.regulator.name;
            r.meta.outcome = Some(Outcome {
                refusal: Some(Refusal {
                    reason,
                    complain_to: format!(
                        "You may complain to the {regulator}, and you may seek a remedy from a court."
                    ),
                }),
                ..r.meta.outcome.clone().unwrap_or_default()
            });
            outbox.push(request_event(&r, at));
            AuditAction::RequestRefuse
        }
        ManageAction::Extend => {
            if r.state.is_final() {
                return Err(AppError::Invalid(
                    "a closed request cannot be extended".into(),
                ));
            }
            let reason = needed(&action.reason, "reason", "extend")?.to_string();
            let told = parse_date("told", needed(&action.told, "told", "extend")?)?;
            let ext = rules::Extension {
                reason: reason.clone(),
                told,
            };
            rules::check_extension(&r.clock(), &ext, division(app))
                .map_err(|e| AppError::Invalid(e.to_string()))?;
            r.meta.extension = Some(stored::ExtensionRecord { reason, told });
            AuditAction::RequestExtend
        }
        ManageAction::Pause => {
            if r.state.is_final() {
                return Err(AppError::Invalid(
                    "a closed request cannot be paused".into(),
                ));
            }
            let asked = parse_date("asked", needed(&action.asked, "asked", "pause")?)?;
            rules::may_pause(action.large_amount.unwrap_or(false))
                .map_err(|e| AppError::Invalid(e.to_string()))?;
            if r.meta.pauses.iter().any(|p| p.answered.is_none()) {
                return Err(AppError::Invalid("the request is paused already".into()));
            }
            r.meta.pauses.push(stored::PauseRecord {
                asked,
                answered: None,
            });
            AuditAction::RequestPause
        }
        ManageAction::Resume => {
            let answered = parse_date("answered", needed(&action.answered, "answered", "resume")?)?;
            let open = r
                .meta
                .pauses
                .iter_mut()
                .find(|p| p.answered.is_none())
                .ok_or_else(|| AppError::Invalid("the request is not paused".into()))?;
            open.answered = Some(answered);
            AuditAction::RequestResume
        }
        ManageAction::FeeReceived => {
            let on = parse_date("on", needed(&action.on, "on", "fee-received")?)?;
            r.meta.fee_at = Some(micros(on.midnight().assume_utc()));
            AuditAction::RequestFee
        }
        ManageAction::RetryFailed => {
            if r.state != RequestState::InProgress {
                return Err(AppError::ForbiddenCode {
                    code: "invalid_transition",
                    detail: format!(
                        "the request is {}: only a request in progress has tasks to retry",
                        r.state.as_str()
                    ),
                });
            }
            let failed = app
                .store
                .tasks_of(id)
                .await?
                .iter()
                .filter(|t| t.state == "failed")
                .count();
            if failed == 0 {
                return Err(AppError::Invalid(
                    "no task of this request has failed".into(),
                ));
            }
            retry.push(WriteOp::Request(RequestOp::RetryFailedTasks {
                request: id,
                run_after: at,
            }));
            AuditAction::RequestRetry
        }
    };
    recompute_due(app, &mut r)?;
    let record = r.to_record(at)?;
    let retried = !retry.is_empty();
    let mut ops = vec![WriteOp::Request(RequestOp::Update {
        record: record.clone(),
        expected_version: expected,
    })];
    ops.append(&mut retry);
    let batch = Batch {
        ops,
        audit: vec![entry(
            &principal.actor(),
            what,
            r.record.subject,
            "recorded",
            None,
            at,
        )],
        outbox,
    };
    written(app.store.write(batch).await)?;
    if retried {
        app.tasks_queued.notify_one();
    }
    r.record = record;
    view(app, r, now).await
}

fn view_without_tasks(r: Request, now: OffsetDateTime) -> RequestView {
    let today = now.date();
    let due = r.record.due.as_deref().and_then(|d| {
        time::Date::parse(
            d,
            &time::macros::format_description!("[year]-[month]-[day]"),
        )
        .ok()
    });
    let open = r.state.is_open();
    RequestView {
        id: r.record.id,
        kind: r.kind,
        state: r.state,
        received_at: crate::read::rfc3339(r.record.received_at),
        due: r.record.due.clone(),
        overdue: open && due.is_some_and(|d| rules::overdue(d, today)),
        due_soon: open && due.is_some_and(|d| rules::due_soon(d, today, DUE_SOON_DAYS)),
        verified_at: r.meta.identity.as_ref().map(|i| crate::read::rfc3339(i.at)),
        extended: r.meta.extension.is_some(),
        paused: r.meta.pauses.iter().any(|p| p.answered.is_none()),
        outcome: r.meta.outcome.clone(),
        tasks: Vec::new(),
    }
}

pub(super) async fn view(
    app: &App,
    r: Request,
    now: OffsetDateTime,
) -> Result<RequestView, AppError> {
    let id = r.record.id;
    let mut v = view_without_tasks(r, now);
    v.tasks = app
        .store
        .tasks_of(id)
        .await?
        .into_iter()
        .map(|t| TaskView {
            system: t.system,
            state: t.state,
            attempts: t.attempts,
            last_error: t.last_error,
        })
        .collect();
    Ok(v)
}
