//! The cookie banner script, a preview page for it, and the Global Privacy
//! Control well-known resource. The script is rendered once from the policy:
//! its categories, wording and version are data, not code.

use super::State;
use axum::Router;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use custodian_policy::LoadedPolicy;
use custodian_policy::terms::CookieCategory;

const SCRIPT: &str = include_str!("consent.js");

pub struct Banner {
    script: String,
    /// The script compressed once, at start: gzip and Brotli.
    script_gzip: Vec<u8>,
    script_br: Vec<u8>,
    /// A strong validator of the script's content (all encodings share it,
    /// each with its own suffix).
    etag: String,
    gpc_json: String,
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail; should it, the identity encoding serves.
    if encoder.write_all(data).is_err() {
        return Vec::new();
    }
    encoder.finish().unwrap_or_default()
}

fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        lgwin: 22,
        ..Default::default()
    };
    match brotli::BrotliCompress(&mut &data[..], &mut out, &params) {
        Ok(_) => out,
        Err(_) => Vec::new(),
    }
}

const TITLE: &str = "Cookies on this website";

impl Banner {
    pub fn render(policy: &LoadedPolicy) -> Banner {
        let doc = &policy.document;
        let categories: Vec<serde_json::Value> = CookieCategory::ALL
            .iter()
            .filter(|c| **c != CookieCategory::StrictlyNecessary)
            .filter_map(|c| {
                let cookies: Vec<&str> = doc.cookies.iter().filter(|k| *k.category == *c).map(|k| k.name.as_str()).collect();
                if cookies.is_empty() {
                    return None;
                }
                // Ours to delete when the category is rejected after it was accepted.
                let first_party: Vec<&str> = doc
                    .cookies
                    .iter()
                    .filter(|k| *k.category == *c && k.provider.as_str() == "first-party")
                    .map(|k| k.name.as_str())
                    .collect();
                let description = doc
                    .cookies
                    .iter()
                    .filter(|k| *k.category == *c)
                    .map(|k| k.description.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                Some(serde_json::json!({"id": c.as_str(), "label": c.label(), "description": description, "cookies": cookies, "firstParty": first_party}))
            })
            .collect();
        let name = doc
            .controller
            .trading_name
            .as_deref()
            .unwrap_or(&doc.controller.legal_name);
        let text = format!(
            "{name} uses strictly necessary cookies to make this website work. With your permission we also use the cookies below. You can change your choice at any time."
        );
        // Where and for how long the choice is kept: the policy's own entry.
        let storage = doc.choice_storage();
        let key = storage.map_or("cookie_choices", |c| c.name.as_str());
        let lifetime_days = storage
            .and_then(|c| custodian_policy::period::Period::parse(&c.duration))
            .map_or(180, |p| p.approximate_days());
        let mut config = serde_json::json!({
            "key": key,
            "lifetimeDays": lifetime_days,
            "endpoint": "/v1/cookie-consent",
            "renewal": "/v1/cookie-consent/renewal",
            "cookiePolicy": "/cookies",
            "version": policy.compiled.version,
            "title": TITLE,
            "text": text,
            "necessary": "Strictly necessary (always on)",
            "gpcText": "Your browser sends a Global Privacy Control signal: we treat it as an objection to the sale or sharing of your data, to targeted advertising and to third-party marketing cookies, and set no marketing cookies.",
            "accept": "Accept all",
            "reject": "Reject all",
            "save": "Save my choices",
            "more": "Read our cookie policy",
            "categories": categories,
        });
        // The evidence kept with each choice: a hash of exactly this wording.
        let wording = custodian_vault::crypto::sha256(
            serde_json::to_string(&config)
                .unwrap_or_default()
                .as_bytes(),
        );
        if let Some(fields) = config.as_object_mut() {
            fields.insert(
                "wording".into(),
                serde_json::Value::String(custodian_vault::audit::hex(&wording)),
            );
        }
        let config = serde_json::to_string(&config)
            .unwrap_or_else(|_| "null".into())
            .replace("</", "<\\/");
        let script = SCRIPT.replace("/*CONFIG*/null/*END*/", &config);
        let gpc_json =
            serde_json::json!({"gpc": true, "lastUpdate": doc.policy.effective.to_string()})
                .to_string();
        let digest = custodian_vault::crypto::sha256(script.as_bytes());
        let etag = custodian_vault::audit::hex(digest.get(..12).unwrap_or_default());
        Banner {
            script_gzip: gzip(script.as_bytes()),
            script_br: brotli(script.as_bytes()),
            etag,
            script,
            gpc_json,
        }
    }
}

fn typed(body: String, content_type: &'static str, cache: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

const PREVIEW: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Cookie banner preview</title>\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"></head><body><main><h1>Cookie banner preview</h1>\
<p>This page includes <code>/consent.js</code> as a website would.</p><p>Current choice: <output id=\"choice\">none yet</output></p>\
<p><button type=\"button\" id=\"change\">Change cookie settings</button></p></main>\
<script src=\"/consent.js\"></script><script>\
function shown(){document.getElementById('choice').textContent=JSON.stringify(window.Custodian.consent);}\
document.addEventListener('custodian:consent',shown);document.getElementById('change').onclick=function(){window.Custodian.show();};\
</script></body></html>\n";

pub fn routes() -> Router<State> {
    Router::new()
        .route("/consent.js", get(consent_js))
        .route("/consent/preview", get(consent_preview))
        .route("/.well-known/gpc.json", get(gpc_json))
}

/// The cookie banner's script, generated from the policy's cookie categories.
#[utoipa::path(get, path = "/consent.js", tag = "documents",
    responses((status = 200, description = "JavaScript", content_type = "text/javascript")))]
pub async fn consent_js(s: AxumState<State>, headers: HeaderMap) -> Response {
    let banner = &s.banner;
    let accepts = |coding: &str| {
        headers
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|item| {
                let mut parts = item.split(';');
                let name = parts.next().unwrap_or_default().trim();
                let refused = parts.any(|p| {
                    let p = p.trim().replace(' ', "");
                    p == "q=0" || p == "q=0.0" || p == "q=0.00" || p == "q=0.000"
                });
                name.eq_ignore_ascii_case(coding) && !refused
            })
    };
    let (body, encoding, suffix) = if accepts("br") && !banner.script_br.is_empty() {
        (banner.script_br.clone(), Some("br"), "-br")
    } else if accepts("gzip") && !banner.script_gzip.is_empty() {
        (banner.script_gzip.clone(), Some("gzip"), "-gz")
    } else {
        (banner.script.clone().into_bytes(), None, "")
    };
    let etag = format!("\"{}{suffix}\"", banner.etag);
    let matches = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim().trim_start_matches("W/");
            t == etag || t == "*"
        });
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        body.into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    // Five minutes fresh, then revalidated with the ETag: a policy change
    // reaches every page within minutes.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300, must-revalidate"),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if let Some(e) = encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(e));
    }
    response
}

/// A page that includes the banner as a website would.
#[utoipa::path(get, path = "/consent/preview", tag = "documents",
    responses((status = 200, description = "HTML", content_type = "text/html")))]
pub async fn consent_preview() -> Response {
    typed(PREVIEW.to_string(), "text/html; charset=utf-8", "no-store")
}

/// The Global Privacy Control support statement.
#[utoipa::path(get, path = "/.well-known/gpc.json", tag = "documents",
    responses((status = 200, description = "{\"gpc\": true, \"lastUpdate\": \"YYYY-MM-DD\"}", content_type = "application/json", body = Object)))]
pub async fn gpc_json(s: AxumState<State>) -> Response {
    typed(
        s.banner.gpc_json.clone(),
        "application/json",
        "public, max-age=86400",
    )
}
