//! Consent, marketing checks, receipts and the banner's public endpoints.

use super::State;
use super::extract::{Caller, Id, Json, Query};
use super::problem::Problem;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use custodian_engine::campaign::Campaign;
use custodian_engine::consent::{
    self, ConsentHistory, ConsentRequest, ConsentResponse, LinkRequest,
};
use custodian_engine::cookies::{self, CookieChoice, CookieChoiceResponse};
use custodian_engine::ids::{ConsentEventId, SubjectId};
use custodian_engine::marketing::{
    self, CheckAnswer, CheckQuery, SuppressRequest, SuppressResponse,
};
use custodian_engine::objection::{self, CompellingGrounds};
use custodian_engine::{AppError, receipt};
use custodian_vault::store::Holder;
use futures_util::StreamExt;
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;
use time::OffsetDateTime;

type Answer<T> = Result<T, Problem>;

pub fn routes() -> Router<State> {
    Router::new()
        .route("/v1/consents", post(record_consent))
        .route("/v1/consents/{id}/receipt", get(consent_receipt))
        .route("/v1/subjects/{id}/consents", get(subject_consents))
        .route(
            "/v1/subjects/{id}/compelling-grounds",
            post(compelling_grounds),
        )
        .route("/v1/visitors/{id}/consents", get(visitor_consents))
        .route("/v1/visitors/{id}/link", post(link_visitor))
        .route(
            "/v1/marketing/check",
            get(check)
                .post(check_many)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/marketing/suppressions", post(suppress))
        .route("/v1/cookie-consent", post(cookie_choice))
        .route("/v1/cookie-consent/renewal", get(cookie_renewal))
        .route("/.well-known/custodian-receipt-key", get(receipt_key))
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// `Sec-GPC: 1` is the only signal; several headers with one `1` count too.
pub fn gpc(headers: &HeaderMap) -> bool {
    headers
        .get_all("sec-gpc")
        .iter()
        .any(|v| v.to_str().is_ok_and(|s| s.trim() == "1"))
}

/// Record a consent event: grant, withdraw, refuse or object.
#[utoipa::path(post, path = "/v1/consents", tag = "consent", request_body = ConsentRequest, security(("api_key" = [])),
    responses((status = 201, body = ConsentResponse), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn record_consent(
    AxumState(s): AxumState<State>,
    Caller(p): Caller,
    Json(req): Json<ConsentRequest>,
) -> Answer<(StatusCode, axum::Json<ConsentResponse>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(consent::record(&s.app, &p, req, now()).await?),
    ))
}

/// A subject's preferences (with the policy's defaults and renewal) and full consent history.
#[utoipa::path(get, path = "/v1/subjects/{id}/consents", tag = "consent", security(("api_key" = [])),
    params(("id" = Uuid, Path, description = "Subject id")),
    responses((status = 200, body = ConsentHistory), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn subject_consents(
    AxumState(s): AxumState<State>,
    Caller(p): Caller,
    Id(id): Id<SubjectId>,
) -> Answer<axum::Json<ConsentHistory>> {
    Ok(axum::Json(
        consent::history(&s.app, &p, Holder::Subject(id.uuid()), now()).await?,
    ))
}

/// The DPO records compelling grounds that override the subject's objection
/// to one purpose on legitimate interests or a public task (Art. 21(1));
/// never for direct marketing (Art. 21(3)).
#[utoipa::path(post, path = "/v1/subjects/{id}/compelling-grounds", tag = "consent", request_body = CompellingGrounds, security(("api_key" = [])),
    params(("id" = Uuid, Path, description = "Subject id")),
    responses((status = 201, body = ConsentResponse), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 410, body = Problem), (status = 422, body = Problem)))]
pub async fn compelling_grounds(
    AxumState(s): AxumState<State>,
    Caller(p): Caller,
    Id(id): Id<SubjectId>,
    Json(req): Json<CompellingGrounds>,
) -> Answer<(StatusCode, axum::Json<ConsentResponse>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(objection::record(&s.app, &p, id, req, now()).await?),
    ))
}

/// A visitor's cookie choices and history.
#[utoipa::path(get, path = "/v1/visitors/{id}/consents", tag = "consent", security(("api_key" = [])),
    params(("id" = String, Path, description = "Visitor id")),
    responses((status = 200, body = ConsentHistory), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn visitor_consents(
    AxumState(s): AxumState<State>,
    Caller(p): Caller,
    Path(id): Path<String>,
) -> Answer<axum::Json<ConsentHistory>> {
    Ok(axum::Json(
        consent::history(&s.app, &p, Holder::Visitor(id), now()).await?,
    ))
}

/// A visitor becomes a subject: its choices move to the subject.
#[utoipa::path(post, path = "/v1/visitors/{id}/link", tag = "consent", request_body = LinkRequest, security(("api_key" = [])),
    params(("id" = String, Path, description = "Visitor id")),
    responses((status = 200, body = ConsentHistory), (status = 401, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn link_visitor(
    AxumState(s): AxumState<State>,
    Caller(p): Caller,
    Path(id): Path<String>,
    Json(req): Json<LinkRequest>,
) -> Answer<axum::Json<ConsentHistory>> {
    Ok(axum::Json(
        consent::link_visitor(&s.app, &p, &id, req, now()).await?,
    ))
}

/// A signed Kantara Consent Receipt v1.1 and ISO/IEC TS 27560 (DPV JSON-LD) record of one event.
#[utoipa::path(get, path = "/v1/consents/{id}/receipt", tag = "consent", security(("api_key" = [])),
    params(("id" = Uuid, Path, description = "Consent event id")),
    responses((status = 200, description = "{receipt, record, signature}"), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn consent_receipt(
    AxumState(s): AxumState<State>,
    Caller(p): Caller,
    Id(id): Id<ConsentEventId>,
) -> Answer<axum::Json<serde_json::Value>> {
    Ok(axum::Json(receipt::receipt(&s.app, &p, id, now()).await?))
}

/// The public key that verifies consent receipts (a JWK).
#[utoipa::path(get, path = "/.well-known/custodian-receipt-key", tag = "consent", responses((status = 200, description = "JWK")))]
pub async fn receipt_key(AxumState(s): AxumState<State>) -> axum::Json<serde_json::Value> {
    axum::Json(receipt::public_jwk(&s.app))
}

/// May this address (or subject) be contacted on this channel now?
#[utoipa::path(get, path = "/v1/marketing/check", tag = "marketing", security(("api_key" = [])), params(CheckQuery),
    responses((status = 200, body = CheckAnswer), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn check(
    AxumState(s): AxumState<State>,
    Caller(p): Caller,
    Query(q): Query<CheckQuery>,
) -> Answer<axum::Json<CheckAnswer>> {
    Ok(axum::Json(
        marketing::check_one(&s.app, &p, q, now()).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkHeader {
    channel: String,
    #[serde(default)]
    purpose: Option<String>,
}

const MAX_LINE: usize = 1024;

/// Checks a campaign list of any length: NDJSON in (a first line
/// `{"channel": "email"}`, then one address or subject id per line), the
/// allowed lines streamed back as they are decided. Nothing is held in
/// memory beyond one chunk.
#[utoipa::path(post, path = "/v1/marketing/check", tag = "marketing", security(("api_key" = [])),
    request_body(content = String, content_type = "application/x-ndjson", description = "{\"channel\":\"email\"} then one address per line"),
    responses((status = 200, content_type = "application/x-ndjson", description = "The allowed lines, one JSON string each"), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn check_many(
    AxumState(s): AxumState<State>,
    Caller(p): Caller,
    body: Body,
) -> Answer<Response> {
    let mut chunks = body.into_data_stream();
    let mut pending: Vec<u8> = Vec::new();
    // The header line decides the scope before anything is streamed back.
    let header = loop {
        if let Some(i) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=i).collect();
            break line;
        }
        if pending.len() > MAX_LINE {
            return Err(Problem::from(AppError::Invalid(
                "the first line must be a short JSON object".into(),
            )));
        }
        match chunks.next().await {
            Some(Ok(c)) => pending.extend_from_slice(&c),
            Some(Err(_)) => {
                return Err(Problem::from(AppError::Invalid(
                    "the body could not be read".into(),
                )));
            }
            None => break std::mem::take(&mut pending),
        }
    };
    let header: BulkHeader = serde_json::from_slice(&header).map_err(|_| {
        AppError::Invalid(
            "the first line must be {\"channel\": \"email\"} (and optionally \"purpose\")".into(),
        )
    })?;
    let scope = marketing::scope(
        &s.app,
        &p,
        custodian_engine::Operation::CampaignCheck,
        &header.channel,
        header.purpose.as_deref(),
        now(),
    )
    .await?;
    // The index is built before the answer starts, so a failure is a clean 5xx.
    let campaign = Arc::new(Campaign::prepare(&s.app, p, scope, now()).await?);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    tokio::spawn(decide_list(campaign, chunks, pending, tx));
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    let mut response = Body::from_stream(stream).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(response)
}

/// Lines decided per blocking task: about ten thousand addresses.
const BATCH: usize = 256 * 1024;

/// Reads the rest of a campaign list in batches of whole lines, decides each
/// batch on a blocking thread (as many at once as there are cores, plus one
/// being read), and sends the allowed lines back in the list's order. If a
/// batch cannot be decided the answer is cut off with an error, so that a
/// mailer never takes a truncated list for a whole one.
///
/// Then the check's one audit entry is appended (lines in and allowed, and
/// the SHA-256 of the list); the answer ends only once it is written, and is
/// cut off with an error if it cannot be.
async fn decide_list(
    campaign: Arc<Campaign>,
    chunks: axum::body::BodyDataStream,
    pending: Vec<u8>,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    let mut hash = custodian_vault::crypto::Sha256Stream::default();
    hash.update(&pending);
    let complete = decide_all(&campaign, chunks, pending, &tx, &mut hash).await;
    if campaign.record(hash.finish(), complete).await.is_err() {
        let _ = tx
            .send(Err(std::io::Error::other(
                "the campaign check could not be audited",
            )))
            .await;
    }
}

/// Whether the whole list was decided and sent.
async fn decide_all(
    campaign: &Arc<Campaign>,
    mut chunks: axum::body::BodyDataStream,
    mut pending: Vec<u8>,
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    hash: &mut custodian_vault::crypto::Sha256Stream,
) -> bool {
    let runtime = tokio::runtime::Handle::current();
    let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut in_flight = std::collections::VecDeque::new();
    let mut ended = false;
    // Inside a line too long to be an address: drop bytes up to its end.
    let mut skipping = false;
    while !ended || !in_flight.is_empty() {
        while !ended && pending.len() < BATCH {
            match chunks.next().await {
                Some(Ok(chunk)) => {
                    hash.update(&chunk);
                    let mut chunk: &[u8] = &chunk;
                    if skipping {
                        match chunk.iter().position(|b| *b == b'\n') {
                            Some(i) => {
                                chunk = chunk.get(i + 1..).unwrap_or_default();
                                skipping = false;
                            }
                            None => continue,
                        }
                    }
                    pending.extend_from_slice(chunk);
                }
                Some(Err(_)) => {
                    let _ = tx
                        .send(Err(std::io::Error::other("the list could not be read")))
                        .await;
                    return false;
                }
                None => ended = true,
            }
        }
        let cut = if ended {
            pending.len()
        } else {
            match pending.iter().rposition(|b| *b == b'\n') {
                Some(i) => i + 1,
                None => {
                    // A batch's worth of bytes and no line end: not an address.
                    pending.clear();
                    skipping = true;
                    continue;
                }
            }
        };
        let rest = pending.split_off(cut);
        let batch = std::mem::replace(&mut pending, rest);
        if !batch.is_empty() {
            let (campaign, runtime) = (campaign.clone(), runtime.clone());
            in_flight.push_back(tokio::task::spawn_blocking(move || {
                let mut out = Vec::with_capacity(batch.len() / 2);
                campaign.decide_lines(&batch, MAX_LINE, &runtime, &mut out);
                out
            }));
        }
        while in_flight.len() > parallel || (ended && !in_flight.is_empty()) {
            let Some(task) = in_flight.pop_front() else {
                break;
            };
            let sent = match task.await {
                Ok(out) if out.is_empty() => true,
                Ok(out) => tx.send(Ok(Bytes::from(out))).await.is_ok(),
                Err(_) => {
                    let _ = tx.send(Err(std::io::Error::other("a batch failed"))).await;
                    false
                }
            };
            if !sent {
                return false;
            }
        }
    }
    true
}

/// Add addresses to the suppression list (kept as keyed hashes only).
#[utoipa::path(post, path = "/v1/marketing/suppressions", tag = "marketing", request_body = SuppressRequest, security(("api_key" = [])),
    responses((status = 201, body = SuppressResponse), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn suppress(
    AxumState(s): AxumState<State>,
    Caller(p): Caller,
    Json(req): Json<SuppressRequest>,
) -> Answer<(StatusCode, axum::Json<SuppressResponse>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(marketing::suppress(&s.app, &p, req, now()).await?),
    ))
}

/// The cookie banner records a visitor's choice. No API key; `Sec-GPC: 1` is honoured.
#[utoipa::path(post, path = "/v1/cookie-consent", tag = "consent", request_body = CookieChoice,
    responses((status = 201, body = CookieChoiceResponse), (status = 422, body = Problem)))]
pub async fn cookie_choice(
    AxumState(s): AxumState<State>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(choice): Json<CookieChoice>,
) -> Answer<(StatusCode, axum::Json<CookieChoiceResponse>)> {
    let ip = addr.ip().to_string();
    let recorded = cookies::record_choice(&s.app, choice, gpc(&headers), Some(&ip), now()).await?;
    Ok((StatusCode::CREATED, axum::Json(recorded)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RenewalQuery {
    /// The policy version the visitor's choice was made under.
    /// The policy version the stored choice was made under.
    since: String,
}

/// Must a cookie choice made under `since` be asked for again?
#[utoipa::path(get, path = "/v1/cookie-consent/renewal", tag = "consent", params(RenewalQuery),
    responses((status = 200, description = "{\"renew\": bool, \"policy_version\": ...}")))]
pub async fn cookie_renewal(
    AxumState(s): AxumState<State>,
    Query(q): Query<RenewalQuery>,
) -> Answer<axum::Json<serde_json::Value>> {
    let renew = cookies::needs_renewal(&s.app, &q.since).await?;
    Ok(axum::Json(
        serde_json::json!({"renew": renew, "policy_version": s.app.policy_version()}),
    ))
}
