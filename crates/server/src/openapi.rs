//! The OpenAPI 3.1 document, generated from the handlers and types, and
//! Swagger UI served from the binary itself (no CDN).

use super::State;
use super::problem::Problem;
use super::{banner, consent_routes, pages, routes};
use axum::Router;
use custodian_engine::Role;
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
use custodian_vault::audit::Verification;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
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
        consent_routes::record_consent, consent_routes::subject_consents, consent_routes::visitor_consents,
        consent_routes::link_visitor, consent_routes::consent_receipt, consent_routes::receipt_key,
        consent_routes::check, consent_routes::check_many, consent_routes::suppress, consent_routes::cookie_choice, consent_routes::cookie_renewal,
        pages::index, pages::notice_html, pages::notice_md, pages::cookies_html, pages::cookies_md,
        pages::policy_json, pages::ropa_json, banner::consent_js, banner::consent_preview, banner::gpc_json,
        openapi_json,
    ),
    components(schemas(
        Problem, FieldProblem, CollectRequest, CollectResponse, Source, Channel, RelationshipRequest,
        RelationshipResponse, RelationshipStatus, ReadResponse, Refusal, DisclosureRequest,
        DisclosureResponse, Disclosed, NewKeyRequest, NewKeyResponse, KeyInfo, Role, Verification,
        ConsentRequest, ConsentResponse, ConsentHistory, PreferenceView, EventView, Evidence, Action, Method,
        LinkRequest, CheckAnswer, CookieChoice, CookieChoiceResponse, SuppressRequest, SuppressResponse,
    )),
    modifiers(&BearerKeys),
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
    }
}

/// This document (OpenAPI 3.1); Swagger UI at `/docs/` reads it.
#[utoipa::path(get, path = "/openapi.json", tag = "documents",
    responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json", body = Object)))]
#[allow(dead_code)] // Served by SwaggerUi; declared here for the document only.
fn openapi_json() {}

pub fn routes() -> Router<State> {
    Router::new().merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
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
}
