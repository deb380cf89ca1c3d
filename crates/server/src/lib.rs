//! The HTTP shell: the JSON API, the published documents, health and
//! readiness, rate limits and authentication. Handlers only translate
//! between HTTP and the use cases in `app`.

mod banner;
mod consent_routes;
mod drp_routes;
mod extract;
mod openapi;
mod pages;
mod problem;
mod ratelimit;
mod request_routes;
mod retention_routes;
mod routes;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State as AxumState};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use custodian_engine::{App, AppError, Operation, Principal, keys};
use problem::Problem;
use ratelimit::RateLimiter;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Who may call a route: anyone, or a key, as the engine's table says for
/// the route's operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    Key(Operation),
    /// A key, as the table says, or a verified person's session for their
    /// own requests.
    KeyOrSession(Operation),
    /// An authorized agent's registration: its signed body is the proof.
    AgentSigned,
    /// An authorized agent's bearer token (Data Rights Protocol); API keys
    /// are not agent tokens.
    AgentToken,
}

/// Every route the server answers, with its access. The OpenAPI document
/// lists exactly these (a test compares them), and the authorization test
/// calls each with every kind of key.
pub const ROUTES: &[(&str, &str, Access)] = {
    use Access::{Key, Public};
    use Operation as Op;
    &[
        ("POST", "/v1/subjects", Key(Op::CollectNew)),
        ("GET", "/v1/subjects", Key(Op::LookupSubject)),
        ("GET", "/v1/subjects/{id}", Key(Op::ReadSubject)),
        ("POST", "/v1/subjects/{id}/data", Key(Op::AddData)),
        (
            "POST",
            "/v1/subjects/{id}/relationships",
            Key(Op::PutRelationship),
        ),
        (
            "GET",
            "/v1/subjects/{id}/consents",
            Key(Op::SubjectConsents),
        ),
        (
            "POST",
            "/v1/subjects/{id}/compelling-grounds",
            Key(Op::RecordCompellingGrounds),
        ),
        ("POST", "/v1/disclosures", Key(Op::Disclose)),
        ("POST", "/v1/consents", Key(Op::RecordConsent)),
        ("GET", "/v1/consents/{id}/receipt", Key(Op::ConsentReceipt)),
        (
            "GET",
            "/v1/visitors/{id}/consents",
            Key(Op::VisitorConsents),
        ),
        ("POST", "/v1/visitors/{id}/link", Key(Op::LinkVisitor)),
        ("GET", "/v1/marketing/check", Key(Op::MarketingCheck)),
        ("POST", "/v1/marketing/check", Key(Op::CampaignCheck)),
        ("POST", "/v1/marketing/suppressions", Key(Op::Suppress)),
        ("GET", "/v1/keys", Key(Op::ListKeys)),
        ("POST", "/v1/keys", Key(Op::CreateKey)),
        ("DELETE", "/v1/keys/{id}", Key(Op::RevokeKey)),
        ("GET", "/v1/audit/verify", Key(Op::VerifyAudit)),
        ("POST", "/v1/requests", Key(Op::SubmitRequest)),
        ("GET", "/v1/requests", Key(Op::ListRequests)),
        (
            "GET",
            "/v1/requests/{id}",
            Access::KeyOrSession(Op::ReadRequest),
        ),
        ("POST", "/v1/requests/{id}/verify", Public),
        ("POST", "/v1/requests/{id}/resend-code", Key(Op::ResendCode)),
        ("POST", "/v1/requests/{id}/manage", Key(Op::ManageRequest)),
        (
            "GET",
            "/v1/requests/{id}/report",
            Access::KeyOrSession(Op::ReadReport),
        ),
        (
            "GET",
            "/v1/requests/{id}/report.html",
            Access::KeyOrSession(Op::ReadReport),
        ),
        (
            "GET",
            "/v1/requests/{id}/archive",
            Access::KeyOrSession(Op::ReadReport),
        ),
        ("GET", "/v1/retention/report", Key(Op::RetentionReport)),
        ("POST", "/v1/retention/run", Key(Op::RetentionRun)),
        ("GET", "/v1/retention/holds", Key(Op::RetentionReport)),
        ("POST", "/v1/retention/holds", Key(Op::SetHold)),
        (
            "POST",
            "/v1/retention/holds/{id}/release",
            Key(Op::ReleaseHold),
        ),
        (
            "POST",
            "/v1/retention/rules/{rule}/reviewed",
            Key(Op::ReviewRule),
        ),
        ("POST", "/v1/cookie-consent", Public),
        ("GET", "/v1/cookie-consent/renewal", Public),
        ("GET", "/.well-known/custodian-receipt-key", Public),
        ("GET", "/.well-known/gpc.json", Public),
        ("GET", "/.well-known/data-rights.json", Public),
        ("POST", "/v1/agent/{id}", Access::AgentSigned),
        ("POST", "/v1/agent/{id}/", Access::AgentSigned),
        ("GET", "/v1/agent/{id}", Access::AgentToken),
        ("GET", "/v1/agent/{id}/", Access::AgentToken),
        ("POST", "/v1/data-rights-request", Access::AgentToken),
        ("POST", "/v1/data-rights-request/", Access::AgentToken),
        ("GET", "/v1/data-rights-request/{id}", Access::AgentToken),
        ("GET", "/v1/data-rights-request/{id}/", Access::AgentToken),
        ("DELETE", "/v1/data-rights-request/{id}", Access::AgentToken),
        (
            "DELETE",
            "/v1/data-rights-request/{id}/",
            Access::AgentToken,
        ),
        ("GET", "/v1/agents", Key(Op::ListAgents)),
        ("POST", "/v1/agents", Key(Op::AddAgent)),
        ("POST", "/v1/agents/{id}/status", Key(Op::ChangeAgent)),
        ("DELETE", "/v1/agents/{id}", Key(Op::RemoveAgent)),
        ("GET", "/consent.js", Public),
        ("GET", "/consent/preview", Public),
        ("GET", "/", Public),
        ("GET", "/privacy", Public),
        ("GET", "/privacy.md", Public),
        ("GET", "/cookies", Public),
        ("GET", "/cookies.md", Public),
        ("GET", "/v1/policy", Public),
        ("GET", "/v1/policy/ropa", Public),
        ("GET", "/requests/{id}/verify", Public),
        ("GET", "/openapi.json", Public),
        ("GET", "/healthz", Public),
        ("GET", "/readyz", Public),
    ]
};

/// What every handler shares. Cloned once or more per request by the
/// router and its layers, so it is one reference count, not one per part.
#[derive(Clone)]
pub struct State(Arc<Shared>);

pub struct Shared {
    pub app: App,
    pages: pages::Published,
    banner: banner::Banner,
    per_key: RateLimiter,
    per_ip: RateLimiter,
    auth_cache: Mutex<AuthCache>,
    /// How long a verified key is trusted before the store is asked again;
    /// a key revoked on another node stops working within this time.
    key_cache: Duration,
}

/// Token hash to the key it names and when that was last checked.
type AuthCache = HashMap<[u8; 32], (Arc<Principal>, Instant)>;

pub struct Limits {
    pub per_key: u32,
    pub per_ip: u32,
    pub body_bytes: usize,
    pub key_cache: Duration,
}

impl std::ops::Deref for State {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl Shared {
    async fn authenticate(&self, token: &str) -> Result<Arc<Principal>, AppError> {
        let hash = custodian_engine::auth::token_hash(token);
        let now = Instant::now();
        if let Ok(cache) = self.auth_cache.lock() {
            if let Some((p, at)) = cache.get(&hash) {
                if now.duration_since(*at) < self.key_cache {
                    return Ok(p.clone());
                }
            }
        }
        let principal = Arc::new(keys::authenticate(&self.app, token).await?);
        if let Ok(mut cache) = self.auth_cache.lock() {
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(hash, (principal.clone(), now));
        }
        Ok(principal)
    }

    fn forget_keys(&self) {
        if let Ok(mut cache) = self.auth_cache.lock() {
            cache.clear();
        }
    }
}

pub fn router(app: App, limits: &Limits) -> Router {
    let state = State(Arc::new(Shared {
        pages: pages::Published::render(&app.policy, &app.capabilities()),
        banner: banner::Banner::render(&app.policy),
        app,
        per_key: RateLimiter::new(limits.per_key),
        per_ip: RateLimiter::new(limits.per_ip),
        auth_cache: Mutex::new(HashMap::new()),
        key_cache: limits.key_cache,
    }));
    Router::new()
        .merge(routes::api())
        .merge(consent_routes::routes())
        .merge(request_routes::routes())
        .merge(drp_routes::routes())
        .merge(retention_routes::routes())
        .merge(banner::routes())
        .merge(pages::routes())
        .merge(openapi::routes(&state.app))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limits.body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

fn too_many(wait: u64, code: &str) -> Response {
    let mut response = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        code,
        format!("too many requests; retry in {wait} s"),
    )
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// The rate-limit key of a client address: IPv6 clients usually hold a whole
/// /64, so they are limited per /64, not per address.
fn client_key(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => {
            let [a, b, c, d, ..] = v6.segments();
            format!("{a:x}:{b:x}:{c:x}:{d:x}::/64")
        }
    }
}

/// Every request passes here once: the debug log line, rate limits and
/// authentication. One layer rather than one each: a layer costs a clone of
/// the service below it and an allocation per request.
async fn guard(AxumState(state): AxumState<State>, req: Request, next: Next) -> Response {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return limit_and_authenticate(&state, req, next).await;
    }
    // Method and route template only: never the path with its ids, never the
    // query, which may hold an email address.
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(unmatched)".to_string(), |m| m.as_str().to_string());
    let start = Instant::now();
    let response = limit_and_authenticate(&state, req, next).await;
    tracing::debug!(%method, route, status = response.status().as_u16(), micros = start.elapsed().as_micros() as u64, "request");
    response
}

async fn limit_and_authenticate(state: &State, mut req: Request, next: Next) -> Response {
    let now = Instant::now();
    if state.per_ip.enabled() {
        let ip = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| client_key(c.0.ip()))
            .unwrap_or_default();
        if let Err(wait) = state.per_ip.check(&ip, now) {
            return too_many(wait, "rate_limited");
        }
    }
    // A verified person's session (`rs_...`) and an authorized agent's token
    // (`drp_...`) are not API keys: their routes check them themselves.
    if let Some(token) =
        extract::bearer(req.headers()).filter(|t| !t.starts_with("rs_") && !t.starts_with("drp_"))
    {
        match state.authenticate(token).await {
            Ok(principal) => {
                if let Err(wait) = state.per_key.check(&principal.key_id, now) {
                    return too_many(wait, "rate_limited");
                }
                req.extensions_mut().insert(principal);
            }
            // Kept for the routes that need a caller: a public route
            // (health, the banner, the published documents) stays public
            // whatever the Authorization header holds.
            Err(e) => {
                req.extensions_mut()
                    .insert(extract::AuthFailure(Problem::from(e)));
            }
        }
    }
    next.run(req).await
}

async fn not_found() -> Response {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "There is nothing at this address.",
    )
    .into_response()
}

/// Serves until SIGTERM or Ctrl-C, then finishes the requests under way.
/// The signal handlers are installed by [`shutdown_signal`] before this is
/// called, so a signal that arrives as soon as the server says it is
/// listening is still a graceful stop.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Installs the SIGTERM and Ctrl-C handlers now and returns the future that
/// completes when either arrives.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        let ctrl_c = async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        #[cfg(unix)]
        let terminate = async move {
            match terminate {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            () = ctrl_c => {},
            () = terminate => {},
        }
        tracing::info!("shutting down");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ipv6_clients_are_limited_per_64() {
        let a: std::net::IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: std::net::IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(super::client_key(a), super::client_key(b));
        assert_eq!(
            super::client_key("203.0.113.7".parse().unwrap()),
            "203.0.113.7"
        );
    }
}
