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
    /// A lookup by email address or phone number found no one. The
    /// message never echoes the value looked up.
    #[error("no subject has this email address or phone number")]
    NoSubjectMatches,
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
    #[error("this is the last active admin key; create another admin key before revoking it")]
    LastAdminKey,
    #[error("the request was changed meanwhile; read it again and retry")]
    RequestChanged,
    #[error("an agent with this id exists already")]
    AgentExists,
    /// Mail to the person could not be sent (the code says why).
    #[error(
        "mail to the person could not be sent ({0}); the request is kept, awaiting verification"
    )]
    MailUnavailable(&'static str),
    /// The same thing was asked for moments ago (a code sent again within a
    /// minute): answered 429, to retry later.
    #[error("{0}")]
    TooSoon(String),
    /// A task's lease passed to another worker: its work here is undone.
    #[error("the task was taken over by another worker")]
    LeaseLost,
    /// A connector's system failed: which dataset, and what happened
    /// (never a credential nor a value of the person).
    #[error("dataset `{dataset}`: {detail}")]
    Connector {
        dataset: String,
        transient: bool,
        detail: String,
    },
    /// Another retention sweep holds the lease (on this node or another).
    #[error("a retention sweep is already running; try again when it has finished")]
    SweepBusy,
    /// A stored value could not be decoded. Never read as a default: a
    /// default can widen a permission. Names the table and row, never the
    /// value.
    #[error("a stored value is corrupt: {0}")]
    Corrupt(String),
    /// Something that cannot fail did; the code says which, for the log
    /// and the operator, and no detail leaves the server.
    #[error("an internal error occurred ({0})")]
    Internal(Internal),
}

/// The distinct internal failures, each greppable by its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Internal {
    /// A sealed field did not open with its subject's data key.
    DecryptFailed,
    /// A data key could not be made or wrapped.
    KeyGenerationFailed,
    /// The node has no receipt signing key.
    ReceiptKeyMissing,
    /// A write failed inside the store.
    WriteFailed,
    /// The store failed in a way it did not classify.
    StoreFailed,
    /// The compiled policy lacks an entry its own index names.
    PolicyTable,
    /// A consent write did not hand back the preferences it folded.
    FoldMissing,
}

impl Internal {
    pub fn code(self) -> &'static str {
        match self {
            Internal::DecryptFailed => "decrypt_failed",
            Internal::KeyGenerationFailed => "key_generation_failed",
            Internal::ReceiptKeyMissing => "receipt_key_missing",
            Internal::WriteFailed => "write_failed",
            Internal::StoreFailed => "store_failed",
            Internal::PolicyTable => "policy_table_mismatch",
            Internal::FoldMissing => "fold_missing",
        }
    }
}

impl std::fmt::Display for Internal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl AppError {
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Unauthorized => "unauthorized",
            AppError::ForbiddenCode { code, .. } => code,
            AppError::SubjectNotFound | AppError::NoSubjectMatches => "subject_not_found",
            AppError::NotFound(_) => "not_found",
            AppError::UnknownPurpose(_) => "unknown_purpose",
            AppError::UnknownRecipient(_) => "unknown_recipient",
            AppError::Invalid(_) => "invalid_request",
            AppError::Fields { code, .. } => code,
            AppError::Conflict(_) => "lookup_conflict",
            AppError::Erased => "subject_erased",
            AppError::Unavailable => "store_unavailable",
            AppError::KeyUnavailable(_) => "key_unavailable",
            AppError::LastAdminKey => "last_admin_key",
            AppError::RequestChanged => "request_changed",
            AppError::AgentExists => "agent_exists",
            AppError::MailUnavailable(code) => code,
            AppError::LeaseLost => "lease_lost",
            AppError::TooSoon(_) => "too_soon",
            AppError::Connector {
                transient: true, ..
            } => "connector_unavailable",
            AppError::Connector { .. } => "connector_failed",
            AppError::SweepBusy => "sweep_running",
            AppError::Corrupt(_) => "corrupt_value",
            AppError::Internal(which) => which.code(),
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> AppError {
        match e {
            // The store logs once that it went away and once that it came
            // back; a line per request would bury both.
            StoreError::Unavailable(_) => {
                tracing::debug!(error = %e, "store unavailable");
                AppError::Unavailable
            }
            StoreError::WriterGone => {
                tracing::error!(error = %e, "store unavailable");
                AppError::Unavailable
            }
            StoreError::Corrupt(place) => {
                tracing::error!(code = "corrupt_value", place = %place, "a stored value is corrupt");
                AppError::Corrupt(place)
            }
            other => {
                tracing::error!(code = "store_failed", error = %other, "store error");
                AppError::Internal(Internal::StoreFailed)
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
            BatchError::LastAdminKey => AppError::LastAdminKey,
            BatchError::RequestChanged => AppError::RequestChanged,
            BatchError::LeaseLost => AppError::LeaseLost,
            BatchError::AgentExists => AppError::AgentExists,
            BatchError::AgentNotFound => AppError::NotFound("no agent with this id".into()),
            BatchError::SweepBusy => AppError::SweepBusy,
            BatchError::HoldNotFound => {
                AppError::NotFound("no legal hold in force with this id".into())
            }
            BatchError::Store(detail) => {
                tracing::error!(code = "write_failed", error = %detail, "a write failed");
                AppError::Internal(Internal::WriteFailed)
            }
        }
    }
}

/// Flattens the store's two layers of failure.
pub fn written<T>(r: Result<Result<T, BatchError>, StoreError>) -> Result<T, AppError> {
    Ok(r??)
}
