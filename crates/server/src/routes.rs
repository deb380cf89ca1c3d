//! The JSON API. Each handler checks nothing itself: it hands the caller and
//! the parsed input to a use case and translates the answer.

use super::State;
use super::extract::{Caller, Id, Json, Query};
use super::problem::Problem;
use axum::Router;
use axum::extract::State as AxumState;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use custodian_engine::AppError;
use custodian_engine::collect::{
    self, CollectRequest, CollectResponse, RelationshipRequest, RelationshipResponse,
};
use custodian_engine::disclose::{self, DisclosureRequest, DisclosureResponse};
use custodian_engine::ids::{KeyId, SubjectId};
use custodian_engine::keys::{self, KeyInfo, NewKeyRequest, NewKeyResponse};
use custodian_engine::read::{self, LookupQuery, ReadQuery, ReadResponse};
use custodian_vault::audit::Verification;
use time::OffsetDateTime;

type Answer<T> = Result<T, Problem>;

pub fn api() -> Router<State> {
    Router::new()
        .route("/v1/subjects", post(create_subject).get(lookup_subject))
        .route("/v1/subjects/{id}", get(read_subject))
        .route("/v1/subjects/{id}/data", post(add_data))
        .route("/v1/subjects/{id}/relationships", post(put_relationship))
        .route("/v1/disclosures", post(create_disclosure))
        .route("/v1/keys", get(list_keys).post(create_key))
        .route("/v1/keys/{id}", delete(revoke_key))
        .route("/v1/audit/verify", get(verify_audit))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Collect personal data about a new subject, for one purpose.
#[utoipa::path(post, path = "/v1/subjects", tag = "subjects", request_body = CollectRequest,
    security(("api_key" = [])),
    responses(
        (status = 201, description = "Stored, encrypted", body = CollectResponse),
        (status = 400, description = "Malformed JSON", body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 409, description = "The email or phone belongs to another subject", body = Problem),
        (status = 413, body = Problem),
        (status = 422, description = "Unknown purpose, undeclared fields or invalid values", body = Problem),
    ))]
pub async fn create_subject(
    AxumState(s): AxumState<State>,
    Caller(p): Caller,
    Json(req): Json<CollectRequest>,
) -> Answer<(StatusCode, axum::Json<CollectResponse>)> {
    let created = collect::collect_new(&s.app, &p, req, now()).await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// Add data to a subject, or correct it: the old value is kept, encrypted, in the history.
#[utoipa::path(post, path = "/v1/subjects/{id}/data", tag = "subjects", request_body = CollectRequest,
    security(("api_key" = [])),
    params(("id" = Uuid, Path, description = "Subject id")),
    responses(
        (status = 200, body = CollectResponse),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem),
    ))]
pub async fn add_data(
    AxumState(s): AxumState<State>,
    Caller(p): Caller,
    Id(id): Id<SubjectId>,
    Json(req): Json<CollectRequest>,
) -> Answer<axum::Json<CollectResponse>> {
    Ok(axum::Json(
        collect::collect_more(&s.app, &p, id, req, now()).await?,
    ))
}

/// Record a relationship (account, order, contract, ...) that grounds a contract basis.
#[utoipa::path(post, path = "/v1/subjects/{id}/relationships", tag = "subjects", request_body = RelationshipRequest,
    security(("api_key" = [])),
    params(("id" = Uuid, Path, description = "Subject id")),
    responses(
        (status = 201, body = RelationshipResponse),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem),
    ))]
pub async fn put_relationship(
    AxumState(s): AxumState<State>,
    Caller(p): Caller,
    Id(id): Id<SubjectId>,
    Json(req): Json<RelationshipRequest>,
) -> Answer<(StatusCode, axum::Json<RelationshipResponse>)> {
    let r = collect::put_relationship(&s.app, &p, id, req, now()).await?;
    Ok((StatusCode::CREATED, axum::Json(r)))
}

/// Read a subject for a purpose: only the fields the purpose may see, the others listed with their reasons.
#[utoipa::path(get, path = "/v1/subjects/{id}", tag = "subjects",
    security(("api_key" = [])),
    params(("id" = Uuid, Path, description = "Subject id"), ReadQuery),
    responses(
        (status = 200, body = ReadResponse),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem),
    ))]
pub async fn read_subject(
    AxumState(s): AxumState<State>,
    Caller(p): Caller,
    Id(id): Id<SubjectId>,
    Query(q): Query<ReadQuery>,
) -> Answer<axum::Json<ReadResponse>> {
    Ok(axum::Json(read::read(&s.app, &p, id, q, now()).await?))
}

/// Find a subject by email or phone (through a blind index) and read it for a purpose.
#[utoipa::path(get, path = "/v1/subjects", tag = "subjects",
    security(("api_key" = [])),
    params(LookupQuery),
    responses(
        (status = 200, body = ReadResponse),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem),
    ))]
pub async fn lookup_subject(
    AxumState(s): AxumState<State>,
    Caller(p): Caller,
    Query(q): Query<LookupQuery>,
) -> Answer<axum::Json<ReadResponse>> {
    Ok(axum::Json(read::lookup(&s.app, &p, q, now()).await?))
}

/// Disclose subjects to a recipient: its categories only, pseudonymised where the policy says so.
#[utoipa::path(post, path = "/v1/disclosures", tag = "disclosures", request_body = DisclosureRequest,
    security(("api_key" = [])),
    responses(
        (status = 200, body = DisclosureResponse),
        (status = 401, body = Problem),
        (status = 403, description = "Recipient not allowed for the purpose, or an unsafe transfer", body = Problem),
        (status = 422, body = Problem),
    ))]
pub async fn create_disclosure(
    AxumState(s): AxumState<State>,
    Caller(p): Caller,
    Json(req): Json<DisclosureRequest>,
) -> Answer<axum::Json<DisclosureResponse>> {
    Ok(axum::Json(
        disclose::disclose(&s.app, &p, req, now()).await?,
    ))
}

/// List API keys (admin).
#[utoipa::path(get, path = "/v1/keys", tag = "keys", security(("api_key" = [])),
    responses((status = 200, body = Vec<KeyInfo>), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list_keys(
    AxumState(s): AxumState<State>,
    Caller(p): Caller,
) -> Answer<axum::Json<Vec<KeyInfo>>> {
    Ok(axum::Json(keys::list(&s.app, &p, now()).await?))
}

/// Create an API key (admin). The key is in the answer, once.
#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = NewKeyRequest, security(("api_key" = [])),
    responses((status = 201, body = NewKeyResponse), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_key(
    AxumState(s): AxumState<State>,
    Caller(p): Caller,
    Json(req): Json<NewKeyRequest>,
) -> Answer<(StatusCode, axum::Json<NewKeyResponse>)> {
    let created = keys::create(&s.app, &p, req, now()).await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// Revoke an API key (admin).
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys", security(("api_key" = [])),
    params(("id" = String, Path, description = "Key id, ck_...")),
    responses((status = 204, description = "Revoked"), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "The last active admin key", body = Problem)))]
pub async fn revoke_key(
    AxumState(s): AxumState<State>,
    Caller(p): Caller,
    Id(id): Id<KeyId>,
) -> Answer<StatusCode> {
    keys::revoke(&s.app, &p, &id, now()).await?;
    s.forget_keys();
    Ok(StatusCode::NO_CONTENT)
}

/// Recompute the audit chain and name the first broken entry (admin, DPO).
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit", security(("api_key" = [])),
    responses((status = 200, body = Verification), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn verify_audit(
    AxumState(s): AxumState<State>,
    Caller(p): Caller,
) -> Answer<axum::Json<Verification>> {
    Ok(axum::Json(keys::verify_audit(&s.app, &p, now()).await?))
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "The process is up")))]
pub async fn healthz() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"status": "ok"}))
}

/// Readiness: the store answers.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "Ready"), (status = 503, body = Problem)))]
pub async fn readyz(AxumState(s): AxumState<State>) -> Answer<axum::Json<serde_json::Value>> {
    s.app.store.ping().await.map_err(AppError::from)?;
    Ok(axum::Json(
        serde_json::json!({"status": "ready", "store": s.app.store.backend()}),
    ))
}
