//! Every way a request can fail, each with a stable machine code. Messages
//! name fields, purposes and ids, never a submitted value.

use custodian_vault::store::{BatchError, StoreError};

/// One field's problem, for 422 answers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldProblem {
    pub field: String,
    pub code: &'static str,
    pub detail: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("a valid API key is required")]
    Unauthorized,
    #[error("{detail}")]
    ForbiddenCode { code: &'static str, detail: String },
    #[error("no subject with this id")]
    SubjectNotFound,
    #[error("{0}")]
    NotFound(String),
    #[error("purpose `{0}` is not declared in the policy")]
    UnknownPurpose(String),
    #[error("recipient `{0}` is not declared in the policy")]
    UnknownRecipient(String),
    #[error("{0}")]
    Invalid(String),
    #[error("some fields were refused")]
    Fields {
        code: &'static str,
        problems: Vec<FieldProblem>,
    },
    #[error("the {0} given already belongs to another subject")]
    Conflict(String),
    #[error("the subject was erased")]
    Erased,
    #[error("the store is unavailable")]
    Unavailable,
    #[error(
        "a data key is wrapped by key-encryption key {0}, which this node's key file does not hold; restart the node with the current key file"
    )]
    KeyUnavailable(u32),
    #[error("an internal error occurred")]
    Internal,
}

impl AppError {
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Unauthorized => "unauthorized",
            AppError::ForbiddenCode { code, .. } => code,
            AppError::SubjectNotFound => "subject_not_found",
            AppError::NotFound(_) => "not_found",
            AppError::UnknownPurpose(_) => "unknown_purpose",
            AppError::UnknownRecipient(_) => "unknown_recipient",
            AppError::Invalid(_) => "invalid_request",
            AppError::Fields { code, .. } => code,
            AppError::Conflict(_) => "lookup_conflict",
            AppError::Erased => "subject_erased",
            AppError::Unavailable => "store_unavailable",
            AppError::KeyUnavailable(_) => "key_unavailable",
            AppError::Internal => "internal",
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> AppError {
        match e {
            StoreError::Unavailable(_) | StoreError::WriterGone => {
                tracing::error!(error = %e, "store unavailable");
                AppError::Unavailable
            }
            other => {
                tracing::error!(error = %other, "store error");
                AppError::Internal
            }
        }
    }
}

impl From<BatchError> for AppError {
    fn from(e: BatchError) -> AppError {
        match e {
            BatchError::SubjectNotFound => AppError::SubjectNotFound,
            BatchError::SubjectErased => AppError::Erased,
            BatchError::LookupTaken(kind) => AppError::Conflict(kind),
            BatchError::KeyNotFound => AppError::NotFound("no API key with this id".into()),
            BatchError::VisitorNotFound => AppError::NotFound("no visitor with this id".into()),
            BatchError::PolicyVersionChanged(v) => AppError::Invalid(format!(
                "policy version {v} was recorded before with different content; give the changed policy a new version"
            )),
            BatchError::Store(detail) => {
                tracing::error!(error = %detail, "a write failed");
                AppError::Internal
            }
        }
    }
}

/// Flattens the store's two layers of failure.
pub fn written<T>(r: Result<Result<T, BatchError>, StoreError>) -> Result<T, AppError> {
    Ok(r??)
}
