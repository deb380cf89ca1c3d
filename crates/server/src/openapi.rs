//! The OpenAPI 3.1 document, generated from the handlers and types, and
//! Swagger UI served from the binary itself (no CDN).

use super::State;
use super::problem::Problem;
use super::{banner, consent_routes, drp_routes, pages, request_routes, retention_routes, routes};
use axum::Router;
use custodian_engine::collect::{
    Channel, CollectRequest, CollectResponse, RelationshipRequest, RelationshipResponse,
    RelationshipStatus, Source,
};
use custodian_engine::consent::{
    Action, ConsentHistory, ConsentRequest, ConsentResponse, EventView, Evidence, LinkRequest,
    Method, PreferenceView,
};
use custodian_engine::cookies::{CookieChoice, CookieChoiceResponse};
use custodian_engine::disclose::{Disclosed, DisclosureRequest, DisclosureResponse};
use custodian_engine::error::FieldProblem;
use custodian_engine::keys::{KeyInfo, NewKeyRequest, NewKeyResponse};
use custodian_engine::marketing::{CheckAnswer, SuppressRequest, SuppressResponse};
use custodian_engine::read::{ReadResponse, Refusal};
use custodian_engine::{App, Role};
use custodian_vault::audit::Verification;
use utoipa::OpenApi;
use utoipa::openapi::content::{Content, ContentBuilder};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Ref, RefOr};
use utoipa_swagger_ui::SwaggerUi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Custodian",
        description = "The privacy engine: personal data behind purpose-checked reads. Every read names a purpose and gets only the fields that purpose may see. Errors are RFC 9457 problem details with a stable `code`.",
        license(name = "MIT OR Apache-2.0")
    ),
    paths(
        routes::create_subject, routes::add_data, routes::put_relationship, routes::read_subject,
        routes::lookup_subject, routes::create_disclosure, routes::list_keys, routes::create_key,
        routes::revoke_key, routes::verify_audit, routes::healthz, routes::readyz,
        consent_routes::record_consent, consent_routes::subject_consents, consent_routes::compelling_grounds, consent_routes::visitor_consents,
        consent_routes::link_visitor, consent_routes::consent_receipt, consent_routes::receipt_key,
        consent_routes::check, consent_routes::check_many, consent_routes::suppress, consent_routes::cookie_choice, consent_routes::cookie_renewal,
        pages::index, pages::notice_html, pages::notice_md, pages::cookies_html, pages::cookies_md,
        pages::policy_json, pages::ropa_json, pages::verify_page, banner::consent_js, banner::consent_preview, banner::gpc_json,
        openapi_json,
        request_routes::submit, request_routes::list, request_routes::read, request_routes::verify, request_routes::resend_code,
        request_routes::manage, request_routes::report_json, request_routes::report_html, request_routes::archive,
        drp_routes::discovery, drp_routes::register, drp_routes::agent_status,
        drp_routes::submit, drp_routes::status, drp_routes::revoke,
        drp_routes::list_agents, drp_routes::add_agent, drp_routes::change_agent, drp_routes::remove_agent,
        retention_routes::retention_report, retention_routes::run_sweep, retention_routes::list_holds,
        retention_routes::set_hold, retention_routes::release_hold, retention_routes::rule_reviewed,
    ),
    components(schemas(
        Problem, FieldProblem, CollectRequest, CollectResponse, Source, Channel, RelationshipRequest,
        RelationshipResponse, RelationshipStatus, ReadResponse, Refusal, DisclosureRequest,
        DisclosureResponse, Disclosed, NewKeyRequest, NewKeyResponse, KeyInfo, Role, Verification,
        ConsentRequest, ConsentResponse, ConsentHistory, PreferenceView, EventView, Evidence, Action, Method,
        LinkRequest, CheckAnswer, CookieChoice, CookieChoiceResponse, SuppressRequest, SuppressResponse,
        custodian_engine::requests::NewRequest, custodian_engine::requests::IdentityCheck,
        custodian_engine::requests::VerifyRequest, custodian_engine::requests::RequestView,
        custodian_engine::requests::TaskView, custodian_engine::requests::Verified,
        custodian_engine::requests::Manage, custodian_engine::requests::ManageAction,
        custodian_engine::requests::Outcome,
        custodian_engine::requests::Kept, custodian_engine::requests::Refusal,
        custodian_engine::objection::CompellingGrounds,
        drp_routes::DrpProblem, custodian_engine::drp::Discovery, custodian_engine::drp::Registered,
        custodian_engine::drp::AgentStatus, custodian_engine::drp::DrpStatus,
        custodian_engine::agents::NewAgent, custodian_engine::agents::AgentInfo,
        custodian_engine::agents::AgentChange, custodian_engine::agents::AgentStatusChange,
        custodian_engine::retention::holds::HoldRequest, custodian_engine::retention::holds::HoldView,
        custodian_engine::retention::holds::HoldScope,
        custodian_engine::retention::report::RetentionReport, custodian_engine::retention::report::ExpiringDatum,
        custodian_engine::retention::report::RuleReviewDue, custodian_engine::retention::report::HeldSubject,
        custodian_engine::retention::report::ReviewRequest, custodian_engine::retention::report::ReviewRecorded,
        custodian_engine::retention::sweep::SweepSummary,
        custodian_engine::retention::datasets::DatasetSwept, custodian_engine::retention::datasets::PartSwept,
        custodian_engine::retention::datasets::DatasetRetention,
    )),
    modifiers(&BearerKeys, &TrailingSlash, &Contract),
)]
pub struct ApiDoc;

struct BearerKeys;

impl utoipa::Modify for BearerKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("ck_...")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "agent_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("drp_... (an authorized agent's, from POST /v1/agent/{id})")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format(
                        "rs_... (a verified person's session, from /v1/requests/{id}/verify)",
                    )
                    .build(),
            ),
        );
    }
}

/// The protocol's paths are served with and without a trailing slash by the
/// same handlers; the document lists both, the second a copy of the first
/// with operation ids of their own.
struct TrailingSlash;

impl utoipa::Modify for TrailingSlash {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for path in drp_routes::WITH_TRAILING_SLASH {
            let Some(mut item) = openapi.paths.paths.get(path).cloned() else {
                continue;
            };
            for op in [&mut item.get, &mut item.post, &mut item.delete]
                .into_iter()
                .flatten()
            {
                op.operation_id = op.operation_id.as_ref().map(|id| format!("{id}_slash"));
            }
            openapi.paths.paths.insert(format!("{path}/"), item);
        }
    }
}

/// The answers every route of a kind can give, added to each operation so
/// that no handler has to repeat them, and problem details typed as what
/// they are (`application/problem+json`, RFC 9457):
///
/// - every route: 429 (the per-address and per-key rate limits);
/// - a route that needs a key: 401, 403, and 503 (the key is checked in the
///   store);
/// - a route with a JSON body: 400 (malformed), 413 (too large), 415 (not
///   JSON), 422 (wrong shape or values);
/// - a route with parameters in the query string: 422;
/// - a route with an id in the path: 404;
/// - a public route that reads or writes the store: 503.
struct Contract;

/// Public routes that use the store, so can answer 503.
const PUBLIC_STORE_ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/cookie-consent"),
    ("GET", "/v1/cookie-consent/renewal"),
    ("GET", "/readyz"),
    ("POST", "/v1/requests/{id}/verify"),
];

const PROBLEM_JSON: &str = "application/problem+json";

fn problem_response(description: &str, retry_after: bool) -> Response {
    let mut response = ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build();
    if retry_after {
        response.headers.insert(
            "Retry-After".to_string(),
            HeaderBuilder::new()
                .schema(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(0)),
                )
                .description(Some("Seconds to wait before trying again"))
                .build(),
        );
    }
    response
}

/// The description of a standard answer, by status.
fn standard(status: u16) -> (&'static str, bool) {
    match status {
        400 => ("The body is not valid JSON", false),
        401 => ("A valid API key is required", false),
        403 => ("The key may not do this", false),
        404 => ("Nothing has this id", false),
        413 => ("The body is larger than this server accepts", false),
        415 => ("The body is not sent as application/json", false),
        422 => ("The request has the wrong shape or values", false),
        429 => ("Too many requests; see Retry-After", true),
        503 => ("The store is unavailable; see Retry-After", true),
        _ => ("Problem", false),
    }
}

fn refers_to_problem(content: &Content) -> bool {
    matches!(&content.schema, Some(RefOr::Ref(r)) if r.ref_location.ends_with("/Problem"))
}

fn with_contract(method: &str, path: &str, op: &mut Operation) {
    // Problems documented with `body = Problem` are typed as problem+json.
    for (status, response) in op.responses.responses.iter_mut() {
        if let RefOr::T(response) = response {
            if response.description.is_empty() {
                response.description = status
                    .parse::<u16>()
                    .ok()
                    .and_then(|s| axum::http::StatusCode::from_u16(s).ok())
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("Answer")
                    .to_string();
            }
            let problem = response
                .content
                .get("application/json")
                .is_some_and(refers_to_problem);
            if problem {
                if let Some(content) = response.content.shift_remove("application/json") {
                    response.content.insert(PROBLEM_JSON.to_string(), content);
                }
            }
        }
    }
    let access = crate::ROUTES
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .map(|(_, _, access)| *access);
    let json_body = op
        .request_body
        .as_ref()
        .is_some_and(|b| b.content.contains_key("application/json"));
    let query = op
        .parameters
        .iter()
        .flatten()
        .any(|p| matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Query));
    let mut statuses = vec![429];
    if matches!(
        access,
        Some(crate::Access::Key(_) | crate::Access::KeyOrSession(_))
    ) {
        statuses.extend([401, 403, 503]);
    }
    if json_body {
        statuses.extend([400, 413, 415, 422]);
    }
    if query {
        statuses.push(422);
    }
    let protocol = matches!(
        access,
        Some(crate::Access::AgentSigned | crate::Access::AgentToken)
    );
    // The protocol's routes document their own answers, in its own shape.
    if path.contains('{') && !protocol {
        statuses.push(404);
    }
    if PUBLIC_STORE_ROUTES.contains(&(method, path)) {
        statuses.push(503);
    }
    for status in statuses {
        let (description, retry_after) = standard(status);
        let entry = op
            .responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(problem_response(description, retry_after)));
        if let RefOr::T(response) = entry {
            if response.description.is_empty() {
                response.description = description.to_string();
            }
            if retry_after && !response.headers.contains_key("Retry-After") {
                response.headers = problem_response(description, true).headers;
            }
        }
    }
}

impl utoipa::Modify for Contract {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            for (method, op) in [
                ("GET", &mut item.get),
                ("POST", &mut item.post),
                ("PUT", &mut item.put),
                ("PATCH", &mut item.patch),
                ("DELETE", &mut item.delete),
            ] {
                if let Some(op) = op {
                    with_contract(method, path, op);
                }
            }
        }
    }
}

/// This document (OpenAPI 3.1); Swagger UI at `/docs/` reads it.
#[utoipa::path(get, path = "/openapi.json", tag = "documents",
    responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json", body = Object)))]
#[allow(dead_code)] // Served by SwaggerUi; declared here for the document only.
fn openapi_json() {}

pub fn routes(app: &App) -> Router<State> {
    Router::new()
        .merge(SwaggerUi::new("/docs").external_url_unchecked("/openapi.json", document(app)))
}

/// The document this server serves: [`ApiDoc`] with the names the loaded
/// policy declares (purposes, recipients, relationship kinds, cookie
/// categories) as enums, so that a request the schema allows names only
/// what exists.
pub fn document(app: &App) -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    let policy = &app.policy.compiled;
    let purposes: Vec<&str> = policy.purposes.iter().map(|p| p.id.as_str()).collect();
    let recipients: Vec<&str> = policy.recipients.iter().map(|r| r.id.as_str()).collect();
    let kinds: Vec<&str> = policy.relationships.iter().map(String::as_str).collect();
    let categories = custodian_engine::cookies::choice_categories(app);
    let schemas = "/components/schemas";
    for (at, values) in [
        ("CollectRequest/properties/purpose", &purposes),
        ("DisclosureRequest/properties/purpose", &purposes),
        ("DisclosureRequest/properties/recipient", &recipients),
        ("RelationshipRequest/properties/kind", &kinds),
        ("ConsentRequest/properties/purpose", &purposes),
        ("NewKeyRequest/properties/purposes/items", &purposes),
        ("NewKeyRequest/properties/recipient", &recipients),
    ] {
        if let Some(schema) = doc.pointer_mut(&format!("{schemas}/{at}")) {
            one_of(schema, values);
        }
    }
    // At least one field, each declared in the policy. (utoipa's
    // `min_properties` attribute writes maxProperties, so this is set here.)
    let fields: Vec<&str> = policy.fields.iter().map(|f| f.name.as_str()).collect();
    if let Some(data) = doc.pointer_mut(&format!("{schemas}/CollectRequest/properties/data")) {
        data["minProperties"] = serde_json::json!(1);
        data["propertyNames"] = serde_json::json!({"enum": fields});
    }
    if let Some(choices) = doc.pointer_mut(&format!("{schemas}/CookieChoice/properties/choices")) {
        choices["propertyNames"] = serde_json::json!({"enum": categories});
        choices["minProperties"] = serde_json::json!(1);
    }
    let ndjson = "/paths/~1v1~1marketing~1check/post/requestBody/content/application~1x-ndjson";
    if let Some(body) = doc.pointer_mut(ndjson) {
        let channels: Vec<&str> = custodian_policy::terms::Channel::ALL
            .iter()
            .map(|c| c.as_str())
            .collect();
        let mut purpose_or_null: Vec<serde_json::Value> =
            purposes.iter().map(|p| (*p).into()).collect();
        purpose_or_null.push(serde_json::Value::Null);
        body["schema"] = serde_json::json!({
            "type": "array",
            "description": "One JSON value per line: first the header, then one address or subject id per line (bare or as a JSON string; lines over 1,024 bytes are skipped)",
            "minItems": 1,
            "prefixItems": [{
                "type": "object",
                "required": ["channel"],
                "additionalProperties": false,
                "properties": {
                    "channel": {"type": "string", "enum": channels},
                    "purpose": {"type": ["string", "null"], "enum": purpose_or_null},
                },
            }],
            // Any line is accepted: one that is not an address or a
            // subject id is skipped, like a refused one.
            "items": {},
        });
    }
    if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
        for item in paths.values_mut().filter_map(|i| i.as_object_mut()) {
            for op in item.values_mut() {
                let params = op.get_mut("parameters").and_then(|p| p.as_array_mut());
                for param in params.into_iter().flatten() {
                    if param["name"] == "purpose" && param["in"] == "query" {
                        if let Some(schema) = param.get_mut("schema") {
                            one_of(schema, &purposes);
                        }
                    }
                }
            }
        }
    }
    doc
}

/// Restricts a string schema to `values` (and null, if it allows null).
fn one_of(schema: &mut serde_json::Value, values: &[&str]) {
    let nullable = schema["type"]
        .as_array()
        .is_some_and(|t| t.iter().any(|v| v == "null"));
    let mut allowed: Vec<serde_json::Value> = values.iter().map(|v| (*v).into()).collect();
    if nullable {
        allowed.push(serde_json::Value::Null);
    }
    schema["enum"] = serde_json::Value::Array(allowed);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document lists every route the server answers, and no other.
    #[test]
    fn the_document_covers_every_route() {
        let doc = ApiDoc::openapi();
        let mut documented = Vec::new();
        for (path, item) in &doc.paths.paths {
            for (method, op) in [
                ("GET", &item.get),
                ("POST", &item.post),
                ("DELETE", &item.delete),
                ("PUT", &item.put),
                ("PATCH", &item.patch),
            ] {
                if op.is_some() {
                    documented.push((method.to_string(), path.clone()));
                }
            }
        }
        documented.sort();
        let mut served: Vec<(String, String)> = crate::ROUTES
            .iter()
            .map(|(m, p, _)| (m.to_string(), p.to_string()))
            .collect();
        served.sort();
        assert_eq!(documented, served);
    }

    fn operations(doc: &utoipa::openapi::OpenApi) -> Vec<(String, String, Operation)> {
        let mut all = Vec::new();
        for (path, item) in &doc.paths.paths {
            for (method, op) in [
                ("GET", &item.get),
                ("POST", &item.post),
                ("DELETE", &item.delete),
                ("PUT", &item.put),
                ("PATCH", &item.patch),
            ] {
                if let Some(op) = op {
                    all.push((method.to_string(), path.clone(), op.clone()));
                }
            }
        }
        all
    }

    fn statuses(op: &Operation) -> Vec<u16> {
        op.responses
            .responses
            .keys()
            .filter_map(|k| k.parse().ok())
            .collect()
    }

    /// Every error answer is a problem, typed application/problem+json,
    /// never application/json.
    /// The Data Rights Protocol fixes its own error shape (its section
    /// 3.06), so its endpoints answer refusals as `DrpProblem`; the rate
    /// limiter's 429 is still a problem.
    fn protocol_route(path: &str) -> bool {
        path.starts_with("/v1/agent/") || path.starts_with("/v1/data-rights-request")
    }

    #[test]
    fn problems_are_problem_json() {
        for (method, path, op) in operations(&ApiDoc::openapi()) {
            if protocol_route(&path) {
                continue;
            }
            for (status, response) in &op.responses.responses {
                let RefOr::T(response) = response else {
                    panic!("{method} {path} {status}: a reference");
                };
                if status.starts_with('4') || status.starts_with('5') {
                    let content = response.content.get(PROBLEM_JSON);
                    assert!(
                        content.is_some_and(refers_to_problem),
                        "{method} {path} {status} is not documented as a problem"
                    );
                    assert_eq!(response.content.len(), 1, "{method} {path} {status}");
                }
                assert!(
                    !response
                        .content
                        .get("application/json")
                        .is_some_and(refers_to_problem),
                    "{method} {path} {status}"
                );
                assert!(!response.description.is_empty(), "{method} {path} {status}");
            }
        }
    }

    /// The answers a route can give whatever its handler does are documented.
    #[test]
    fn standard_answers_are_documented() {
        for (method, path, op) in operations(&ApiDoc::openapi()) {
            let have = statuses(&op);
            let mut need = vec![429];
            let access = crate::ROUTES
                .iter()
                .find(|(m, p, _)| *m == method && *p == path)
                .map(|r| r.2);
            if matches!(access, Some(crate::Access::Key(_))) {
                need.extend([401, 403, 503]);
            }
            if op
                .request_body
                .as_ref()
                .is_some_and(|b| b.content.contains_key("application/json"))
            {
                need.extend([400, 413, 415, 422]);
            }
            for status in need {
                assert!(have.contains(&status), "{method} {path} lacks {status}");
            }
        }
    }

    /// The streamed campaign check reads and writes NDJSON.
    #[test]
    fn the_campaign_check_is_ndjson() {
        let doc = ApiDoc::openapi();
        let op = doc
            .paths
            .paths
            .get("/v1/marketing/check")
            .and_then(|item| item.post.clone())
            .expect("documented");
        let body = op.request_body.expect("a body");
        assert_eq!(
            body.content.keys().collect::<Vec<_>>(),
            ["application/x-ndjson"]
        );
        let RefOr::T(ok) = &op.responses.responses["200"] else {
            panic!("a reference")
        };
        assert_eq!(
            ok.content.keys().collect::<Vec<_>>(),
            ["application/x-ndjson"]
        );
    }
}
