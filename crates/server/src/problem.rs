//! RFC 9457 problem details: a stable machine code, a human sentence, and the
//! fields at fault. Never an internal detail, never a submitted value.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use custodian_engine::AppError;
use custodian_engine::error::FieldProblem;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// The stable machine code.
    pub code: String,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldProblem>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!(
                "https://custodian.invalid/problems/{}",
                code.replace('_', "-")
            ),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            code: code.to_string(),
            detail: detail.into(),
            errors: Vec::new(),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_string(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match status {
            StatusCode::UNAUTHORIZED => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            // The store is away (restarting, failing over) or a key file is
            // behind: worth retrying shortly, never a 500.
            StatusCode::SERVICE_UNAVAILABLE if !headers.contains_key(header::RETRY_AFTER) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
            }
            // Asked again too soon (a code within a minute of the last).
            StatusCode::TOO_MANY_REQUESTS if !headers.contains_key(header::RETRY_AFTER) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            }
            _ => {}
        }
        response
    }
}

impl From<AppError> for Problem {
    fn from(e: AppError) -> Problem {
        let status = match &e {
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::ForbiddenCode { .. } => StatusCode::FORBIDDEN,
            AppError::SubjectNotFound | AppError::NoSubjectMatches | AppError::NotFound(_) => {
                StatusCode::NOT_FOUND
            }
            AppError::UnknownPurpose(_)
            | AppError::UnknownRecipient(_)
            | AppError::Invalid(_)
            | AppError::Fields { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Conflict(_)
            | AppError::LastAdminKey
            | AppError::RequestChanged
            | AppError::AgentExists
            | AppError::LeaseLost
            | AppError::SweepBusy => StatusCode::CONFLICT,
            AppError::Erased => StatusCode::GONE,
            AppError::TooSoon(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable
            | AppError::KeyUnavailable(_)
            | AppError::MailUnavailable(_)
            | AppError::Connector { .. } => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Corrupt(_) | AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut problem = Problem::new(status, e.code(), e.to_string());
        if let AppError::Fields { problems, .. } = e {
            let names: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
            problem.detail = format!("refused: {}", names.join(", "));
            problem.errors = problems;
        }
        problem
    }
}
