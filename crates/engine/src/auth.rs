//! API keys and what each role may do.
//!
//! A key is `ck_<id>_<secret>`: the id is public (lists, audit), the secret is
//! 256 random bits. Only the SHA-256 of the whole token is stored, so the
//! token is shown once, at creation.

use super::AppError;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use custodian_vault::crypto::{random_bytes, sha256};
use custodian_vault::store::ApiKeyRecord;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Everything, including keys.
    Admin,
    /// The data protection officer: reads and disclosures for any purpose, the audit.
    Dpo,
    /// A call-centre agent: collects (as the call-centre, under its own id) and reads.
    Agent,
    /// A system of the organisation, bound to the purposes it may use.
    Service,
    /// A processor, bound to one recipient (and optionally to purposes):
    /// receives disclosures to that recipient only.
    Processor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Dpo => "dpo",
            Role::Agent => "agent",
            Role::Service => "service",
            Role::Processor => "processor",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        [
            Role::Admin,
            Role::Dpo,
            Role::Agent,
            Role::Service,
            Role::Processor,
        ]
        .into_iter()
        .find(|r| r.as_str() == text)
    }
}

/// Who is asking: an authenticated, unrevoked key.
#[derive(Debug, Clone)]
pub struct Principal {
    pub key_id: String,
    pub role: Role,
    pub purposes: Vec<String>,
    pub recipient: Option<String>,
}

impl Principal {
    /// The actor recorded in the audit.
    pub fn actor(&self) -> String {
        format!("key:{}", self.key_id)
    }

    pub fn from_record(record: &ApiKeyRecord) -> Option<Principal> {
        if record.revoked_at.is_some() {
            return None;
        }
        Some(Principal {
            key_id: record.id.clone(),
            role: Role::parse(&record.role)?,
            purposes: record.purposes.clone(),
            recipient: record.recipient.clone(),
        })
    }

    pub fn require(&self, allowed: &[Role]) -> Result<(), AppError> {
        if allowed.contains(&self.role) {
            Ok(())
        } else {
            Err(AppError::ForbiddenCode {
                code: "role_not_allowed",
                detail: format!("a key with role {} may not do this", self.role.as_str()),
            })
        }
    }

    /// Collecting and reading: staff roles for any purpose, services for their own.
    pub fn may_use_purpose(&self, purpose: &str) -> Result<(), AppError> {
        match self.role {
            Role::Admin | Role::Dpo | Role::Agent => Ok(()),
            Role::Service => self.bound_to(purpose),
            Role::Processor => Err(AppError::ForbiddenCode {
                code: "role_not_allowed",
                detail: "a processor key only receives disclosures".into(),
            }),
        }
    }

    /// Disclosing: services for their purposes, processors for theirs when
    /// bound to any (else for every purpose that discloses to their
    /// recipient), staff roles for any.
    pub fn may_disclose_for(&self, purpose: &str) -> Result<(), AppError> {
        match self.role {
            Role::Service => self.bound_to(purpose),
            Role::Processor if !self.purposes.is_empty() => self.bound_to(purpose),
            _ => Ok(()),
        }
    }

    fn bound_to(&self, purpose: &str) -> Result<(), AppError> {
        if self.purposes.iter().any(|p| p == purpose) {
            return Ok(());
        }
        Err(AppError::ForbiddenCode {
            code: "purpose_not_allowed_for_key",
            detail: format!("this key is not bound to purpose `{purpose}`"),
        })
    }
}

/// A freshly generated token and its stored form.
pub struct NewToken {
    pub id: String,
    pub token: String,
    pub hash: [u8; 32],
}

pub fn new_token() -> NewToken {
    let id: [u8; 6] = random_bytes();
    let id = format!(
        "ck_{}",
        id.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let secret: [u8; 32] = random_bytes();
    let token = format!("{id}_{}", URL_SAFE_NO_PAD.encode(secret));
    let hash = sha256(token.as_bytes());
    NewToken { id, token, hash }
}

pub fn token_hash(token: &str) -> [u8; 32] {
    sha256(token.as_bytes())
}
