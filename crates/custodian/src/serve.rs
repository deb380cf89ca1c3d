//! `custodian serve`: the HTTP server. Until the vault lands it publishes
//! what the policy renders: the privacy notice, the cookie policy, the record
//! of processing and the policy itself as JSON, plus health and readiness.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clap::Args;
use custodian_policy::render::{Format, cookies, notice, ropa};
use custodian_policy::{LoadedPolicy, REFERENCE_POLICY_FILE};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Args)]
pub struct ServeArgs {
    /// The policy file; without it, the shipped reference policy.
    #[arg(long, env = "CUSTODIAN_POLICY")]
    policy: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "CUSTODIAN_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
}

/// Everything a request needs, rendered once at start-up: the pages never
/// change while the process runs, since the policy does not.
struct Published {
    policy: LoadedPolicy,
    notice_html: String,
    notice_md: String,
    cookies_html: String,
    cookies_md: String,
    ropa_json: String,
    policy_json: String,
}

pub fn run(args: ServeArgs) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CUSTODIAN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let policy = match &args.policy {
        Some(file) => crate::policy_cmd::read_policy(file),
        None => match custodian_policy::reference() {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("{e}");
                None
            }
        },
    };
    let Some(policy) = policy else {
        return ExitCode::FAILURE;
    };
    let source = args.policy.as_ref().map_or_else(
        || format!("{REFERENCE_POLICY_FILE} (built in)"),
        |p| p.display().to_string(),
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("custodian: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args.listen, policy, source)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("custodian: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(listen: SocketAddr, policy: LoadedPolicy, source: String) -> std::io::Result<()> {
    let doc = &policy.document;
    let published = Arc::new(Published {
        notice_html: notice::notice(doc).write(Format::Html),
        notice_md: notice::notice(doc).write(Format::Markdown),
        cookies_html: cookies::cookie_policy(doc).write(Format::Html),
        cookies_md: cookies::cookie_policy(doc).write(Format::Markdown),
        ropa_json: ropa::json(doc),
        policy_json: serde_json::to_string_pretty(doc).unwrap_or_default(),
        policy,
    });
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {listen}: {e}")))?;
    let bound = listener.local_addr()?;
    tracing::info!(
        policy = %source,
        version = %published.policy.compiled.version,
        "custodian listening on http://{bound}"
    );
    axum::serve(listener, router(published))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!("custodian stopped");
    Ok(())
}

fn router(published: Arc<Published>) -> Router {
    Router::new()
        .route("/", get(index))
        .route(
            "/privacy",
            get(|s: State<Arc<Published>>| async move { html(&s.notice_html) }),
        )
        .route(
            "/privacy.md",
            get(|s: State<Arc<Published>>| async move { markdown(&s.notice_md) }),
        )
        .route(
            "/cookies",
            get(|s: State<Arc<Published>>| async move { html(&s.cookies_html) }),
        )
        .route(
            "/cookies.md",
            get(|s: State<Arc<Published>>| async move { markdown(&s.cookies_md) }),
        )
        .route(
            "/v1/policy",
            get(|s: State<Arc<Published>>| async move { json(&s.policy_json) }),
        )
        .route(
            "/v1/policy/ropa",
            get(|s: State<Arc<Published>>| async move { json(&s.ropa_json) }),
        )
        .route("/healthz", get(|| async { json("{\"status\":\"ok\"}") }))
        .route("/readyz", get(|| async { json("{\"status\":\"ready\"}") }))
        .fallback(not_found)
        .with_state(published)
}

async fn index(State(p): State<Arc<Published>>) -> Response {
    let c = &p.policy.document.controller;
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Custodian</title></head>\
         <body><main><h1>{}</h1><p>Policy version {}.</p><ul>\
         <li><a href=\"/privacy\">Privacy notice</a> (<a href=\"/privacy.md\">Markdown</a>)</li>\
         <li><a href=\"/cookies\">Cookie policy</a> (<a href=\"/cookies.md\">Markdown</a>)</li>\
         <li><a href=\"/v1/policy\">The policy as JSON</a></li>\
         <li><a href=\"/v1/policy/ropa\">Record of processing activities</a></li>\
         </ul></main></body></html>\n",
        custodian_policy::render::escape(&c.legal_name),
        custodian_policy::render::escape(&p.policy.compiled.version),
    );
    html(&page)
}

fn with_type(body: &str, content_type: &'static str) -> Response {
    let mut response = body.to_string().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn html(body: &str) -> Response {
    with_type(body, "text/html; charset=utf-8")
}

fn markdown(body: &str) -> Response {
    with_type(body, "text/markdown; charset=utf-8")
}

fn json(body: &str) -> Response {
    with_type(body, "application/json")
}

/// RFC 9457 problem details for any path the server does not know.
async fn not_found() -> Response {
    let body = serde_json::json!({
        "type": "https://custodian.invalid/problems/not-found",
        "title": "Not found",
        "status": 404,
        "code": "not_found",
        "detail": "There is nothing at this address.",
    });
    let mut response = (StatusCode::NOT_FOUND, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
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
