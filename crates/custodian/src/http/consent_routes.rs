//! Consent, marketing checks, receipts and the banner's public endpoints.

use super::State;
use super::extract::{Caller, Json, Query};
use super::problem::Problem;
use crate::app::consent::{self, ConsentHistory, ConsentRequest, ConsentResponse, LinkRequest};
use crate::app::cookies::{self, CookieChoice, CookieChoiceResponse};
use crate::app::marketing::{self, CheckAnswer, CheckQuery, SuppressRequest, SuppressResponse};
use crate::app::{AppError, receipt};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use custodian_vault::store::Holder;
use futures_util::StreamExt;
use serde::Deserialize;
use std::net::SocketAddr;
use time::OffsetDateTime;
use uuid::Uuid;

type Answer<T> = Result<T, Problem>;

pub fn routes() -> Router<State> {
    Router::new()
        .route("/v1/consents", post(record_consent))
        .route("/v1/consents/{id}/receipt", get(consent_receipt))
        .route("/v1/subjects/{id}/consents", get(subject_consents))
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
    Path(id): Path<String>,
) -> Answer<axum::Json<ConsentHistory>> {
    let id = Uuid::parse_str(&id).map_err(|_| AppError::SubjectNotFound)?;
    Ok(axum::Json(
        consent::history(&s.app, &p, Holder::Subject(id), now()).await?,
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
    Path(id): Path<String>,
) -> Answer<axum::Json<serde_json::Value>> {
    let id = Uuid::parse_str(&id)
        .map_err(|_| AppError::NotFound("no consent event with this id".into()))?;
    Ok(axum::Json(receipt::receipt(&s.app, &p, id).await?))
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
    let scope = marketing::scope(&s.app, &p, &header.channel, header.purpose.as_deref())?;
    let channel =
        custodian_policy::terms::Channel::parse(&header.channel).ok_or(AppError::Internal)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let app = s.app.clone();
    let start = now();
    // The index is built before the answer starts, so a failure is a clean 5xx.
    let index = if channel == custodian_policy::terms::Channel::Post {
        None
    } else {
        Some(marketing::campaign_index(&app, &p, &scope, start).await?)
    };
    tokio::spawn(async move {
        let mut out = Vec::with_capacity(64 * 1024);
        let decide_line = async |line: &[u8], out: &mut Vec<u8>| {
            let Ok(text) = std::str::from_utf8(line) else {
                return;
            };
            let text = text.trim().trim_matches('"');
            if text.is_empty() {
                return;
            }
            // Only a 36-character line can be a subject id; most lines are addresses.
            let id = if text.len() == 36 {
                uuid::Uuid::parse_str(text)
            } else {
                uuid::Uuid::parse_str("")
            };
            let allowed = match (&index, id) {
                (Some(index), Err(_)) => index.allows(&app, text),
                (_, Ok(id)) => {
                    marketing::check(&app, &p, &scope, &marketing::Target::Subject(id), start)
                        .await
                        .is_ok_and(|a| a.allowed)
                }
                (None, Err(_)) => false,
            };
            if allowed && serde_json::to_writer(&mut *out, text).is_ok() {
                out.push(b'\n');
            }
        };
        loop {
            let mut start_of_line = 0;
            while let Some(i) = pending
                .get(start_of_line..)
                .and_then(|rest| rest.iter().position(|b| *b == b'\n'))
            {
                let end = start_of_line + i;
                if end - start_of_line <= MAX_LINE {
                    decide_line(
                        pending.get(start_of_line..end).unwrap_or_default(),
                        &mut out,
                    )
                    .await;
                }
                start_of_line = end + 1;
            }
            pending.drain(..start_of_line);
            if pending.len() > MAX_LINE {
                pending.clear();
            }
            if out.len() >= 32 * 1024
                && tx
                    .send(Bytes::from(std::mem::take(&mut out)))
                    .await
                    .is_err()
            {
                return;
            }
            match chunks.next().await {
                Some(Ok(c)) => pending.extend_from_slice(&c),
                _ => break,
            }
        }
        if !pending.is_empty() && pending.len() <= MAX_LINE {
            let rest = std::mem::take(&mut pending);
            decide_line(&rest, &mut out).await;
        }
        if !out.is_empty() {
            let _ = tx.send(Bytes::from(out)).await;
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    let mut response = Body::from_stream(stream).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(response)
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
pub struct RenewalQuery {
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
