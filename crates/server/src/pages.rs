//! What the policy publishes: the privacy notice, the cookie policy, the
//! record of processing and the policy itself. Rendered once at start-up,
//! since the policy does not change while the process runs.

use super::State;
use axum::Router;
use axum::extract::State as AxumState;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use custodian_policy::LoadedPolicy;
use custodian_policy::render::{Format, cookies, escape, notice, ropa};

pub struct Published {
    index: String,
    notice_html: String,
    notice_md: String,
    cookies_html: String,
    cookies_md: String,
    ropa_json: String,
    policy_json: String,
}

impl Published {
    pub fn render(
        policy: &LoadedPolicy,
        capabilities: &custodian_policy::render::Capabilities,
    ) -> Published {
        let doc = &policy.document;
        let index = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Custodian</title></head>\
             <body><main><h1>{}</h1><p>Policy version {}.</p><ul>\
             <li><a href=\"/privacy\">Privacy notice</a> (<a href=\"/privacy.md\">Markdown</a>)</li>\
             <li><a href=\"/cookies\">Cookie policy</a> (<a href=\"/cookies.md\">Markdown</a>)</li>\
             <li><a href=\"/v1/policy\">The policy as JSON</a></li>\
             <li><a href=\"/v1/policy/ropa\">Record of processing activities</a></li>\
             <li><a href=\"/docs/\">API documentation</a> (<a href=\"/openapi.json\">OpenAPI</a>)</li>\
             </ul></main></body></html>\n",
            escape(&doc.controller.legal_name),
            escape(&policy.compiled.version),
        );
        let (notice, cookie_policy) = (
            notice::notice_with(doc, capabilities),
            cookies::cookie_policy(doc),
        );
        Published {
            index,
            notice_html: notice.write(Format::Html),
            notice_md: notice.write(Format::Markdown),
            // The page's own control to change the choice, wired by the banner's script.
            cookies_html: cookie_policy.write(Format::Html).replacen(
                "</main>",
                "<p><button type=\"button\" id=\"custodian-change\" data-custodian-show>Change your cookie choices</button></p>\n</main>\n<script src=\"/consent.js\" defer></script>",
                1,
            ),
            cookies_md: cookie_policy.write(Format::Markdown),
            ropa_json: ropa::json(doc),
            policy_json: serde_json::to_string_pretty(doc).unwrap_or_default(),
        }
    }
}

fn with_type(body: &str, content_type: &'static str) -> Response {
    let mut response = body.to_string().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

const HTML: &str = "text/html; charset=utf-8";
const MARKDOWN: &str = "text/markdown; charset=utf-8";
const JSON: &str = "application/json";

pub fn routes() -> Router<State> {
    Router::new()
        .route("/", get(index))
        .route("/privacy", get(notice_html))
        .route("/privacy.md", get(notice_md))
        .route("/cookies", get(cookies_html))
        .route("/cookies.md", get(cookies_md))
        .route("/v1/policy", get(policy_json))
        .route("/v1/policy/ropa", get(ropa_json))
        .route("/requests/{id}/verify", get(verify_page))
}

/// The page where a person enters the one-time code of a request made for
/// them by an authorized agent (the protocol's `user_verification_url`).
/// The same page for every id: it reads the id from its own address.
const VERIFY_PAGE: &str = include_str!("verify_page.html");

/// Where a person confirms a request with the code they were mailed.
#[utoipa::path(get, path = "/requests/{id}/verify", tag = "documents",
    params(("id" = String, Path, description = "The request id")),
    responses((status = 200, description = "HTML", content_type = "text/html")))]
pub async fn verify_page() -> Response {
    let mut response = with_type(VERIFY_PAGE, HTML);
    // Never framed by another site (the code is typed here).
    response.headers_mut().insert(
        header::HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
    response
}

/// The published documents' index page.
#[utoipa::path(get, path = "/", tag = "documents",
    responses((status = 200, description = "HTML", content_type = "text/html")))]
pub async fn index(s: AxumState<State>) -> Response {
    with_type(&s.pages.index, HTML)
}

/// The privacy notice, rendered from the running policy.
#[utoipa::path(get, path = "/privacy", tag = "documents",
    responses((status = 200, description = "HTML", content_type = "text/html")))]
pub async fn notice_html(s: AxumState<State>) -> Response {
    with_type(&s.pages.notice_html, HTML)
}

/// The privacy notice as Markdown.
#[utoipa::path(get, path = "/privacy.md", tag = "documents",
    responses((status = 200, description = "Markdown", content_type = "text/markdown")))]
pub async fn notice_md(s: AxumState<State>) -> Response {
    with_type(&s.pages.notice_md, MARKDOWN)
}

/// The cookie policy, with the control that changes a visitor's choice.
#[utoipa::path(get, path = "/cookies", tag = "documents",
    responses((status = 200, description = "HTML", content_type = "text/html")))]
pub async fn cookies_html(s: AxumState<State>) -> Response {
    with_type(&s.pages.cookies_html, HTML)
}

/// The cookie policy as Markdown.
#[utoipa::path(get, path = "/cookies.md", tag = "documents",
    responses((status = 200, description = "Markdown", content_type = "text/markdown")))]
pub async fn cookies_md(s: AxumState<State>) -> Response {
    with_type(&s.pages.cookies_md, MARKDOWN)
}

/// The running policy as JSON.
#[utoipa::path(get, path = "/v1/policy", tag = "documents",
    responses((status = 200, description = "The policy document", content_type = "application/json", body = Object)))]
pub async fn policy_json(s: AxumState<State>) -> Response {
    with_type(&s.pages.policy_json, JSON)
}

/// The record of processing activities (Art. 30) as JSON.
#[utoipa::path(get, path = "/v1/policy/ropa", tag = "documents",
    responses((status = 200, description = "The record of processing", content_type = "application/json", body = Object)))]
pub async fn ropa_json(s: AxumState<State>) -> Response {
    with_type(&s.pages.ropa_json, JSON)
}
