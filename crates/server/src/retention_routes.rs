//! Retention: the report of what expires when, legal holds, rule reviews,
//! and running the sweep by hand. Handlers translate; the engine decides.

use super::State;
use super::extract::{Caller, Id, Json, Query};
use super::problem::Problem;
use axum::Router;
use axum::extract::{Path, State as AxumState};
use axum::http::StatusCode;
use axum::routing::{get, post};
use custodian_engine::ids::HoldId;
use custodian_engine::retention::holds::{self, HoldRequest, HoldView};
use custodian_engine::retention::report::{
    self, ReportQuery, RetentionReport, ReviewRecorded, ReviewRequest,
};
use custodian_engine::retention::sweep::{self, SweepQuery, SweepSummary};
use time::OffsetDateTime;

type Answer<T> = Result<T, Problem>;

pub fn routes() -> Router<State> {
    Router::new()
        .route("/v1/retention/report", get(retention_report))
        .route("/v1/retention/run", post(run_sweep))
        .route("/v1/retention/holds", get(list_holds).post(set_hold))
        .route("/v1/retention/holds/{id}/release", post(release_hold))
        .route("/v1/retention/rules/{rule}/reviewed", post(rule_reviewed))
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// What will expire when and why, what is held and by which hold, and the
/// rules due for their periodic review.
#[utoipa::path(get, path = "/v1/retention/report", tag = "retention", params(ReportQuery),
    security(("api_key" = [])),
    responses((status = 200, body = RetentionReport), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn retention_report(
    AxumState(s): AxumState<State>,
    Caller(p): Caller,
    Query(q): Query<ReportQuery>,
) -> Answer<axum::Json<RetentionReport>> {
    Ok(axum::Json(report::report(&s.app, &p, q, now()).await?))
}

/// Run the retention sweep now (it also runs on the server's schedule);
/// `dry_run` says what it would erase. 409 while another sweep runs.
#[utoipa::path(post, path = "/v1/retention/run", tag = "retention", params(SweepQuery),
    security(("api_key" = [])),
    responses((status = 200, body = SweepSummary), (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, description = "Another sweep is running", body = Problem), (status = 422, body = Problem)))]
pub async fn run_sweep(
    AxumState(s): AxumState<State>,
    Caller(p): Caller,
    Query(q): Query<SweepQuery>,
) -> Answer<axum::Json<SweepSummary>> {
    Ok(axum::Json(sweep::run(&s.app, &p, q, now()).await?))
}

/// Every legal hold, in force or not.
#[utoipa::path(get, path = "/v1/retention/holds", tag = "retention",
    security(("api_key" = [])),
    responses((status = 200, body = Vec<HoldView>), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list_holds(
    AxumState(s): AxumState<State>,
    Caller(p): Caller,
) -> Answer<axum::Json<Vec<HoldView>>> {
    Ok(axum::Json(holds::list_holds(&s.app, &p, now()).await?))
}

/// Set a legal hold on a subject, a category or a dataset: what it covers
/// is neither expired nor erased, erasure requests included, until it is
/// released or ends.
#[utoipa::path(post, path = "/v1/retention/holds", tag = "retention", request_body = HoldRequest,
    security(("api_key" = [])),
    responses((status = 201, body = HoldView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn set_hold(
    AxumState(s): AxumState<State>,
    Caller(p): Caller,
    Json(req): Json<HoldRequest>,
) -> Answer<(StatusCode, axum::Json<HoldView>)> {
    let view = holds::set_hold(&s.app, &p, req, now()).await?;
    Ok((StatusCode::CREATED, axum::Json(view)))
}

/// Release a legal hold; what it kept is due again as its rules say.
#[utoipa::path(post, path = "/v1/retention/holds/{id}/release", tag = "retention",
    params(("id" = Uuid, Path, description = "Hold id")),
    security(("api_key" = [])),
    responses((status = 200, body = HoldView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn release_hold(
    AxumState(s): AxumState<State>,
    Caller(p): Caller,
    Id(id): Id<HoldId>,
) -> Answer<axum::Json<HoldView>> {
    Ok(axum::Json(
        holds::release_hold(&s.app, &p, id, now()).await?,
    ))
}

/// Record that a retention rule was reviewed (promise P8); audited.
#[utoipa::path(post, path = "/v1/retention/rules/{rule}/reviewed", tag = "retention",
    request_body = ReviewRequest,
    params(("rule" = String, Path, description = "The rule's id in the policy")),
    security(("api_key" = [])),
    responses((status = 200, body = ReviewRecorded), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn rule_reviewed(
    AxumState(s): AxumState<State>,
    Caller(p): Caller,
    Path(rule): Path<String>,
    Json(req): Json<ReviewRequest>,
) -> Answer<axum::Json<ReviewRecorded>> {
    Ok(axum::Json(
        report::review(&s.app, &p, &rule, req, now()).await?,
    ))
}
