//! Data-subject requests: intake, the person's verification, the register,
//! reports and a request's course. Handlers translate; the engine decides.

use super::State;
use super::extract::{Caller, Id, Json, Query, bearer};
use super::problem::Problem;
use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, State as AxumState};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use custodian_engine::ids::RequestId;
use custodian_engine::requests::{
    self, Asker, ListQuery, Manage, NewRequest, RequestView, Verified, VerifyRequest,
};
use custodian_engine::{AppError, Principal};
use serde::Deserialize;
use std::sync::Arc;
use time::OffsetDateTime;

type Answer<T> = Result<T, Problem>;

pub fn routes() -> Router<State> {
    Router::new()
        .route("/v1/requests", post(submit).get(list))
        .route("/v1/requests/{id}", get(read))
        .route("/v1/requests/{id}/verify", post(verify))
        .route("/v1/requests/{id}/resend-code", post(resend_code))
        .route("/v1/requests/{id}/manage", post(manage))
        .route("/v1/requests/{id}/report", get(report_json))
        .route("/v1/requests/{id}/report.html", get(report_html))
        .route("/v1/requests/{id}/archive", get(archive))
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// A key, or a verified person's session token (`rs_...`).
pub enum KeyOrSession {
    Key(Arc<Principal>),
    Session(String),
}

impl KeyOrSession {
    fn asker(&self) -> Asker<'_> {
        match self {
            KeyOrSession::Key(p) => Asker::Key(p),
            KeyOrSession::Session(t) => Asker::Session(t),
        }
    }
}

impl FromRequestParts<State> for KeyOrSession {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &State) -> Result<Self, Self::Rejection> {
        if let Some(token) = bearer(&parts.headers).filter(|t| t.starts_with("rs_")) {
            return Ok(KeyOrSession::Session(token.to_string()));
        }
        Caller::from_request_parts(parts, state)
            .await
            .map(|Caller(p)| KeyOrSession::Key(p))
    }
}

/// Take in a request: a code goes to the person's address, unless a
/// call-centre agent attests the identity check they did.
#[utoipa::path(post, path = "/v1/requests", tag = "requests", request_body = NewRequest,
    security(("api_key" = [])),
    responses(
        (status = 201, body = RequestView),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem),
        (status = 503, description = "The store is unavailable, or the code could not be mailed (the request is kept)", body = Problem),
    ))]
pub async fn submit(
    AxumState(s): AxumState<State>,
    Caller(p): Caller,
    Json(req): Json<NewRequest>,
) -> Answer<(StatusCode, axum::Json<RequestView>)> {
    let view = requests::submit(&s.app, &p, req, now()).await?;
    Ok((StatusCode::CREATED, axum::Json(view)))
}

/// The register: requests by state, kind and due date; overdue and due soon.
#[utoipa::path(get, path = "/v1/requests", tag = "requests", params(ListQuery),
    security(("api_key" = [])),
    responses((status = 200, body = Vec<RequestView>), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list(
    AxumState(s): AxumState<State>,
    Caller(p): Caller,
    Query(q): Query<ListQuery>,
) -> Answer<axum::Json<Vec<RequestView>>> {
    Ok(axum::Json(requests::list(&s.app, &p, q, now()).await?))
}

/// How long to wait for a request to settle.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReadQuery {
    /// Wait up to this many milliseconds (at most 30000) while the request's
    /// work is under way; the answer comes as soon as it settles.
    #[param(maximum = 30000)]
    pub wait_ms: Option<u64>,
}

/// One request: its state, clock, tasks and outcome. With a key, or with
/// the session of the person who made it. `wait_ms` waits for the work to
/// finish instead of polling.
#[utoipa::path(get, path = "/v1/requests/{id}", tag = "requests",
    params(("id" = Uuid, Path, description = "Request id"), ReadQuery),
    security(("api_key" = []), ("session" = [])),
    responses((status = 200, body = RequestView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn read(
    AxumState(s): AxumState<State>,
    who: KeyOrSession,
    Id(id): Id<RequestId>,
    Query(q): Query<ReadQuery>,
) -> Answer<axum::Json<RequestView>> {
    let id = id.uuid();
    let wait = std::time::Duration::from_millis(q.wait_ms.unwrap_or(0));
    if wait > requests::MAX_WAIT {
        return Err(AppError::Invalid("`wait_ms` is at most 30000".into()).into());
    }
    Ok(axum::Json(
        requests::get_settled(&s.app, who.asker(), id, wait, now()).await?,
    ))
}

/// The person enters the code they were sent. No key: the code is the proof.
#[utoipa::path(post, path = "/v1/requests/{id}/verify", tag = "requests", request_body = VerifyRequest,
    params(("id" = Uuid, Path, description = "Request id")),
    responses(
        (status = 200, description = "Verified; the session follows this person's requests", body = Verified),
        (status = 403, description = "Locked after too many wrong codes, or the code expired", body = Problem),
        (status = 404, body = Problem), (status = 422, description = "Wrong code", body = Problem),
    ))]
pub async fn verify(
    AxumState(s): AxumState<State>,
    Id(id): Id<RequestId>,
    Json(req): Json<VerifyRequest>,
) -> Answer<axum::Json<Verified>> {
    let id = id.uuid();
    Ok(axum::Json(
        requests::verify(&s.app, id, &req.code, now()).await?,
    ))
}

/// A fresh one-time code for a request still awaiting verification, sent
/// to the address the person gave; the old code stops working. At most five
/// codes per request, one a minute.
#[utoipa::path(post, path = "/v1/requests/{id}/resend-code", tag = "requests",
    params(("id" = Uuid, Path, description = "Request id")),
    security(("api_key" = [])),
    responses(
        (status = 200, body = RequestView), (status = 401, body = Problem),
        (status = 403, description = "Locked after wrong codes, or five codes already sent", body = Problem),
        (status = 404, description = "No request awaits verification with this id", body = Problem),
        (status = 429, description = "A code was sent less than a minute ago", body = Problem),
        (status = 503, description = "The mail relay could not take the message", body = Problem),
    ))]
pub async fn resend_code(
    AxumState(s): AxumState<State>,
    Caller(p): Caller,
    Id(id): Id<RequestId>,
) -> Answer<axum::Json<RequestView>> {
    let id = id.uuid();
    Ok(axum::Json(
        requests::unverified::resend_code(&s.app, &p, id, now()).await?,
    ))
}

/// Steer a request: cancel, refuse (with the reason), extend, pause for
/// clarification, resume, record the fee.
#[utoipa::path(post, path = "/v1/requests/{id}/manage", tag = "requests", request_body = Manage,
    params(("id" = Uuid, Path, description = "Request id")),
    security(("api_key" = [])),
    responses((status = 200, body = RequestView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn manage(
    AxumState(s): AxumState<State>,
    Caller(p): Caller,
    Id(id): Id<RequestId>,
    Json(action): Json<Manage>,
) -> Answer<axum::Json<RequestView>> {
    let id = id.uuid();
    Ok(axum::Json(
        requests::manage(&s.app, &p, id, action, now()).await?,
    ))
}

async fn report(
    s: &State,
    who: &KeyOrSession,
    id: RequestId,
    format: &str,
    content_type: &'static str,
) -> Answer<Response> {
    let id = id.uuid();
    let report = requests::report(&s.app, who.asker(), id, format, now()).await?;
    // Chunk by chunk, as the reader takes them: a report of any length is
    // never held whole. A failure after the first byte can only cut the
    // answer short; it is logged by its code (never a value).
    let chunks = futures_util::stream::try_unfold(report, |mut report| async move {
        match report.next_chunk().await {
            Ok(chunk) => Ok(chunk.map(|c| (c, report))),
            Err(e) => {
                tracing::warn!(code = e.code(), "a report stream ended early");
                Err(e)
            }
        }
    });
    let mut response = Body::from_stream(chunks).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Personal data: never kept by a cache on the way.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The access report as JSON: the data, its provenance and history, the
/// consent ledger, the disclosures made, the Art. 15 statement, and under
/// `systems` the rows each dataset holds (streamed: sent as it is read).
#[utoipa::path(get, path = "/v1/requests/{id}/report", tag = "requests",
    params(("id" = Uuid, Path, description = "Request id")),
    security(("api_key" = []), ("session" = [])),
    responses((status = 200, description = "The report", content_type = "application/json", body = Object), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn report_json(
    AxumState(s): AxumState<State>,
    who: KeyOrSession,
    Id(id): Id<RequestId>,
) -> Answer<Response> {
    report(&s, &who, id, "json", "application/json").await
}

/// The access report as a readable page: the Art. 15 statement, then a
/// section per dataset with its tables, fields, categories and rows.
#[utoipa::path(get, path = "/v1/requests/{id}/report.html", tag = "requests",
    params(("id" = Uuid, Path, description = "Request id")),
    security(("api_key" = []), ("session" = [])),
    responses((status = 200, description = "The report", content_type = "text/html"), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn report_html(
    AxumState(s): AxumState<State>,
    who: KeyOrSession,
    Id(id): Id<RequestId>,
) -> Answer<Response> {
    report(&s, &who, id, "html", "text/html; charset=utf-8").await
}

/// The portability archive (Art. 20): the vault's data.json and data.csv,
/// and each dataset's rows (`datasets/<id>/part-<n>.json` and `.csv`), in
/// one tar, streamed.
#[utoipa::path(get, path = "/v1/requests/{id}/archive", tag = "requests",
    params(("id" = Uuid, Path, description = "Request id")),
    security(("api_key" = []), ("session" = [])),
    responses((status = 200, description = "A tar archive", content_type = "application/x-tar"), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn archive(
    AxumState(s): AxumState<State>,
    who: KeyOrSession,
    Id(id): Id<RequestId>,
) -> Answer<Response> {
    let id = id.uuid();
    let archive =
        custodian_engine::requests::archive::archive(&s.app, who.asker(), id, now()).await?;
    // Written as it is read, a part at a time: a failure halfway ends the
    // body early (the client sees a cut archive), and is logged by code.
    let chunks = futures_util::stream::unfold(archive, |mut a| async move {
        let chunk = a.next_chunk().await?;
        let chunk = chunk.map_err(|e| {
            tracing::warn!(code = e.code(), "a portability archive stopped halfway");
            std::io::Error::other(e.code())
        });
        Some((chunk, a))
    });
    let mut response = axum::body::Body::from_stream(chunks).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
