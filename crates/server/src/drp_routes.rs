//! The Data Rights Protocol's endpoints (v1.0) and the admin routes for
//! authorized agents. The protocol's endpoints take a signed body as text
//! (`base64(signature || JSON)`) and answer errors in the protocol's own
//! shape, `{"code": "<status>", "message", "reason", "fatal"}`; each path is
//! served with and without a trailing slash, as the protocol asks.

use super::State;
use super::extract::{Caller, Json, bearer};
use super::problem::Problem;
use axum::Router;
use axum::extract::{Path, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use custodian_engine::agents::{self, AgentChange, AgentInfo, NewAgent};
use custodian_engine::drp::{self, AgentStatus, Discovery, DrpError, DrpStatus, Registered};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

/// The protocol's paths, each also served (and documented) with a trailing
/// slash by the same handlers.
pub const WITH_TRAILING_SLASH: [&str; 3] = [
    "/v1/agent/{id}",
    "/v1/data-rights-request",
    "/v1/data-rights-request/{id}",
];

pub fn routes() -> Router<State> {
    let [agent, requests, request] = WITH_TRAILING_SLASH;
    let both = |router: Router<State>, path: &str, methods: MethodRouter<State>| {
        router
            .route(path, methods.clone())
            .route(&format!("{path}/"), methods)
    };
    let router = Router::new().route("/.well-known/data-rights.json", get(discovery));
    let router = both(router, agent, post(register).get(agent_status));
    let router = both(router, requests, post(submit));
    both(router, request, get(status).delete(revoke))
        .route("/v1/agents", get(list_agents).post(add_agent))
        .route("/v1/agents/{id}", axum::routing::delete(remove_agent))
        .route("/v1/agents/{id}/status", post(change_agent))
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// An error as the protocol shapes it (its section 3.06), with a stable
/// reason code beside the status.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DrpProblem {
    /// The HTTP status, as a string.
    pub code: String,
    pub message: String,
    /// The stable machine code (bad_signature, expired, ...).
    pub reason: String,
    /// Whether the request is given up (never, for these refusals: a
    /// corrected request may be sent).
    pub fatal: bool,
}

pub struct Refused(DrpError);

impl From<DrpError> for Refused {
    fn from(e: DrpError) -> Refused {
        Refused(e)
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = DrpProblem {
            code: status.as_u16().to_string(),
            message: e.message,
            reason: e.reason.to_string(),
            fatal: false,
        };
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        match status {
            StatusCode::UNAUTHORIZED => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
            }
            _ => {}
        }
        response
    }
}

type DrpAnswer<T> = Result<axum::Json<T>, Refused>;

/// A signed body, as text: too large or not UTF-8 is refused in the
/// protocol's shape (axum's own `String` rejection is plain text).
pub struct Signed(String);

impl<S: Send + Sync> axum::extract::FromRequest<S> for Signed {
    type Rejection = Refused;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Refused> {
        use axum::extract::rejection::StringRejection;
        match String::from_request(req, state).await {
            Ok(text) => Ok(Signed(text)),
            Err(StringRejection::InvalidUtf8(_)) => Err(Refused(DrpError::new(
                400,
                "undecodable",
                "the body is not text",
            ))),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(Refused(DrpError::new(
                413,
                "too_large",
                "the body is larger than this server accepts",
            ))),
            Err(_) => Err(Refused(DrpError::new(
                400,
                "undecodable",
                "the body could not be read",
            ))),
        }
    }
}

fn token(headers: &HeaderMap) -> Option<&str> {
    bearer(headers)
}

/// The discovery document: the protocol version, the API base, and the
/// actions offered, which are exactly the rights the policy declares.
#[utoipa::path(get, path = "/.well-known/data-rights.json", tag = "data rights protocol",
    responses((status = 200, body = Discovery)))]
pub async fn discovery(AxumState(s): AxumState<State>) -> axum::Json<Discovery> {
    axum::Json(drp::discovery(&s.app))
}

/// An authorized agent registers ("pair-wise key setup"): the body is its
/// signed message naming itself and this business; the answer is its
/// bearer token, shown once (stored as a hash).
#[utoipa::path(post, path = "/v1/agent/{id}", tag = "data rights protocol",
    params(("id" = String, Path, description = "The agent's id")),
    request_body(content = String, content_type = "text/plain", description = "base64(Ed25519 signature || JSON)"),
    responses(
        (status = 200, body = Registered),
        (status = 400, description = "Undecodable, malformed, not yet valid, expired, or valid too long", body = DrpProblem),
        (status = 403, description = "Bad signature, another agent's or business's message, or a suspended agent", body = DrpProblem),
        (status = 404, description = "No agent with this id", body = DrpProblem),
        (status = 503, body = DrpProblem),
    ))]
pub async fn register(
    AxumState(s): AxumState<State>,
    Path(id): Path<String>,
    Signed(body): Signed,
) -> DrpAnswer<Registered> {
    Ok(axum::Json(drp::register(&s.app, &id, &body, now()).await?))
}

/// Whether the agent's token is still good.
#[utoipa::path(get, path = "/v1/agent/{id}", tag = "data rights protocol",
    params(("id" = String, Path, description = "The agent's id")),
    security(("agent_token" = [])),
    responses(
        (status = 200, body = AgentStatus),
        (status = 401, body = DrpProblem), (status = 403, body = DrpProblem), (status = 503, body = DrpProblem),
    ))]
pub async fn agent_status(
    AxumState(s): AxumState<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> DrpAnswer<AgentStatus> {
    Ok(axum::Json(
        drp::agent_status(&s.app, token(&headers), &id, now()).await?,
    ))
}

/// An agent submits a signed request (access and its variants, deletion,
/// opt-out of sale or sharing): it joins the register, is verified,
/// clocked and carried out like any other.
#[utoipa::path(post, path = "/v1/data-rights-request", tag = "data rights protocol",
    security(("agent_token" = [])),
    request_body(content = String, content_type = "text/plain", description = "base64(Ed25519 signature || JSON)"),
    responses(
        (status = 200, body = DrpStatus),
        (status = 400, description = "Undecodable or malformed, not yet valid, expired, valid too long, an action not offered, no email", body = DrpProblem),
        (status = 401, body = DrpProblem),
        (status = 403, description = "Bad signature, another agent's message, another business's, a suspended agent", body = DrpProblem),
        (status = 503, body = DrpProblem),
    ))]
pub async fn submit(
    AxumState(s): AxumState<State>,
    headers: HeaderMap,
    Signed(body): Signed,
) -> DrpAnswer<DrpStatus> {
    Ok(axum::Json(
        drp::submit(&s.app, token(&headers), &body, now()).await?,
    ))
}

/// The status of one of the agent's own requests.
#[utoipa::path(get, path = "/v1/data-rights-request/{id}", tag = "data rights protocol",
    params(("id" = String, Path, description = "The request id")),
    security(("agent_token" = [])),
    responses(
        (status = 200, body = DrpStatus),
        (status = 401, body = DrpProblem),
        (status = 403, description = "Another agent's request", body = DrpProblem),
        (status = 404, body = DrpProblem), (status = 503, body = DrpProblem),
    ))]
pub async fn status(
    AxumState(s): AxumState<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> DrpAnswer<DrpStatus> {
    Ok(axum::Json(
        drp::status(&s.app, token(&headers), &id, now()).await?,
    ))
}

/// The agent revokes one of its requests (signed body, `{"reason": ...}`),
/// until the work has started.
#[utoipa::path(delete, path = "/v1/data-rights-request/{id}", tag = "data rights protocol",
    params(("id" = String, Path, description = "The request id")),
    security(("agent_token" = [])),
    request_body(content = String, content_type = "text/plain", description = "base64(Ed25519 signature || JSON)"),
    responses(
        (status = 200, description = "Revoked", body = DrpStatus),
        (status = 400, body = DrpProblem), (status = 401, body = DrpProblem),
        (status = 403, body = DrpProblem), (status = 404, body = DrpProblem),
        (status = 409, description = "Being carried out or closed", body = DrpProblem),
        (status = 503, body = DrpProblem),
    ))]
pub async fn revoke(
    AxumState(s): AxumState<State>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Signed(body): Signed,
) -> DrpAnswer<DrpStatus> {
    Ok(axum::Json(
        drp::revoke(&s.app, token(&headers), &id, &body, now()).await?,
    ))
}

type Answer<T> = Result<T, Problem>;

/// The authorized agents (admins).
#[utoipa::path(get, path = "/v1/agents", tag = "agents",
    security(("api_key" = [])),
    responses((status = 200, body = Vec<AgentInfo>)))]
pub async fn list_agents(
    AxumState(s): AxumState<State>,
    Caller(p): Caller,
) -> Answer<axum::Json<Vec<AgentInfo>>> {
    Ok(axum::Json(agents::list(&s.app, &p, now()).await?))
}

/// Add an authorized agent with its Ed25519 verify key (admins).
#[utoipa::path(post, path = "/v1/agents", tag = "agents", request_body = NewAgent,
    security(("api_key" = [])),
    responses((status = 201, body = AgentInfo), (status = 409, description = "An agent with this id exists", body = Problem)))]
pub async fn add_agent(
    AxumState(s): AxumState<State>,
    Caller(p): Caller,
    Json(req): Json<NewAgent>,
) -> Answer<(StatusCode, axum::Json<AgentInfo>)> {
    let info = agents::add(&s.app, &p, req, now()).await?;
    Ok((StatusCode::CREATED, axum::Json(info)))
}

/// Suspend or reactivate an agent (admins).
#[utoipa::path(post, path = "/v1/agents/{id}/status", tag = "agents", request_body = AgentChange,
    params(("id" = String, Path, description = "The agent's id")),
    security(("api_key" = [])),
    responses((status = 200, body = AgentInfo)))]
pub async fn change_agent(
    AxumState(s): AxumState<State>,
    Caller(p): Caller,
    Path(id): Path<String>,
    Json(change): Json<AgentChange>,
) -> Answer<axum::Json<AgentInfo>> {
    Ok(axum::Json(
        agents::change(&s.app, &p, &id, change.action, now()).await?,
    ))
}

/// Remove an agent and its token; its requests stay in the register (admins).
#[utoipa::path(delete, path = "/v1/agents/{id}", tag = "agents",
    params(("id" = String, Path, description = "The agent's id")),
    security(("api_key" = [])),
    responses((status = 204, description = "Removed")))]
pub async fn remove_agent(
    AxumState(s): AxumState<State>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> Answer<StatusCode> {
    agents::remove(&s.app, &p, &id, now()).await?;
    Ok(StatusCode::NO_CONTENT)
}
