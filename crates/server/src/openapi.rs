//! The OpenAPI 3.1 document, generated from the handlers and types, and
//! Swagger UI served from the binary itself (no CDN).

use super::State;
use super::problem::Problem;
use super::{consent_routes, routes};
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

pub fn routes() -> Router<State> {
    Router::new().merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
}
