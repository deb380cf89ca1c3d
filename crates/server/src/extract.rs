//! Request extractors that refuse bad input with a problem: JSON bodies
//! (malformed 400, wrong shape or unknown field 422, too large 413, not JSON
//! 415), query strings (422), and the caller's API key (401).

use super::State as AppState;
use super::problem::Problem;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use custodian_engine::{AppError, Principal};
use serde::de::DeserializeOwned;

/// What a message is about: the body or the query string.
#[derive(Clone, Copy)]
pub enum Input {
    Body,
    Query,
}

impl Input {
    fn name(self) -> &'static str {
        match self {
            Input::Body => "the body",
            Input::Query => "the query string",
        }
    }
}

/// Serde's messages quote offending input (`invalid type: string "..."`,
/// ``invalid value: integer `...` ``), which may be personal data. Only
/// messages about the shape (unknown or missing fields, which name keys
/// only) are passed on; every other one becomes "`path` has the wrong type
/// or value", or, without a path, "the body (or the query string) has a
/// value of the wrong type or form".
pub fn without_values(message: &str, input: Input) -> String {
    let text = ["target type: ", "query string: "]
        .iter()
        .find_map(|marker| message.split_once(marker).map(|(_, rest)| rest))
        .unwrap_or(message);
    let (path, detail) = match text.split_once(": ") {
        Some((p, d)) if !p.contains(' ') => (p, d),
        _ => ("", text),
    };
    let detail = detail.split(" at line ").next().unwrap_or(detail);
    if detail.starts_with("unknown field") || detail.starts_with("missing field") {
        if path.is_empty() {
            detail.to_string()
        } else {
            format!("{path}: {detail}")
        }
    } else if path.is_empty() {
        format!("{} has a value of the wrong type or form", input.name())
    } else {
        format!("`{path}` has the wrong type or value")
    }
}

/// Where a JSON syntax error is ("line 1, column 9"), without the text
/// around it.
fn syntax_place(message: &str) -> String {
    message
        .rsplit_once(" at line ")
        .and_then(|(_, place)| place.split_once(" column "))
        .map_or_else(String::new, |(line, column)| {
            format!(" (line {line}, column {column})")
        })
}

pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(match rejection {
                JsonRejection::JsonSyntaxError(e) => Problem::new(
                    StatusCode::BAD_REQUEST,
                    "malformed_json",
                    format!("the body is not valid JSON{}", syntax_place(&e.body_text())),
                ),
                JsonRejection::JsonDataError(e) => Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_body",
                    without_values(&e.body_text(), Input::Body),
                ),
                JsonRejection::MissingJsonContentType(_) => Problem::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send the body as application/json",
                ),
                JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    Problem::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body_too_large",
                        "the body is larger than this server accepts",
                    )
                }
                other => Problem::new(other.status(), "invalid_body", "the body could not be read"),
            }),
        }
    }
}

pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_query",
                without_values(&e.body_text(), Input::Query),
            )),
            Err(_) => Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_query",
                "the query string could not be read",
            )),
        }
    }
}

/// Why a request's key was not accepted (malformed, unknown, revoked, or
/// the store could not be asked), for the routes that need a caller.
#[derive(Clone)]
pub struct AuthFailure(pub Problem);

/// The authenticated caller (`Authorization: Bearer <key>`).
pub struct Caller(pub std::sync::Arc<Principal>);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(principal) = parts.extensions.get::<std::sync::Arc<Principal>>() {
            return Ok(Caller(principal.clone()));
        }
        if let Some(AuthFailure(problem)) = parts.extensions.get::<AuthFailure>() {
            return Err(problem.clone());
        }
        Err(Problem::from(AppError::Unauthorized))
    }
}

/// The bearer token of a request, if any.
pub fn bearer(parts: &axum::http::HeaderMap) -> Option<&str> {
    let value = parts
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A path's one id, parsed into its type (`SubjectId`, `RequestId`, ...):
/// a segment that does not parse answers the type's own "not found".
pub struct Id<T>(pub T);

impl<T, S> FromRequestParts<S> for Id<T>
where
    T: std::str::FromStr<Err = AppError> + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(text) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| {
                    Problem::new(
                        StatusCode::NOT_FOUND,
                        "not_found",
                        "the path does not name anything here",
                    )
                })?;
        text.parse::<T>().map(Id).map_err(Problem::from)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_never_reach_messages() {
        let cases = [
            "Failed to deserialize the JSON body into the target type: data: invalid type: string \"ada@example.org\", expected a map at line 1 column 9",
            "Failed to deserialize the JSON body into the target type: subjects: invalid type: string \"x\\\" ada@example.org\", expected a sequence",
            "Failed to deserialize the JSON body into the target type: n: invalid value: integer `4915112345678`, expected u8",
        ];
        for c in cases {
            let out = super::without_values(c, super::Input::Body);
            assert!(
                !out.contains("ada@") && !out.contains("4915112345678"),
                "{out}"
            );
        }
        assert_eq!(
            super::without_values(
                "Failed to deserialize the JSON body into the target type: extra: unknown field `extra`, expected one of `purpose`, `data` at line 1 column 64",
                super::Input::Body
            ),
            "extra: unknown field `extra`, expected one of `purpose`, `data`"
        );
    }

    /// A query-string error talks about the query string, never "the body".
    #[test]
    fn query_messages_name_the_query_string() {
        use super::{Input, without_values};
        assert_eq!(
            without_values(
                "Failed to deserialize query string: missing field `purpose`",
                Input::Query
            ),
            "missing field `purpose`"
        );
        assert_eq!(
            without_values(
                "Failed to deserialize query string: n: invalid digit found in string",
                Input::Query
            ),
            "`n` has the wrong type or value"
        );
        let out = without_values(
            "Failed to deserialize query string: invalid type: string \"ada@example.org\", expected a map",
            Input::Query,
        );
        assert_eq!(
            out,
            "the query string has a value of the wrong type or form"
        );
    }

    #[test]
    fn syntax_errors_give_the_place_only() {
        assert_eq!(
            super::syntax_place(
                "Failed to parse the request body as JSON: key must be a string at line 1 column 2"
            ),
            " (line 1, column 2)"
        );
        assert_eq!(super::syntax_place("no place"), "");
    }
}
