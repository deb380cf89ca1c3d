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

    /// The caller a stored key names, or none when it is revoked. A role
    /// that does not parse is corrupt, never a lesser role.
    pub fn from_record(record: &ApiKeyRecord) -> Result<Option<Principal>, AppError> {
        if record.revoked_at.is_some() {
            return Ok(None);
        }
        let role = Role::parse(&record.role)
            .ok_or_else(|| AppError::Corrupt(format!("api_keys row {}: role", record.id)))?;
        Ok(Some(Principal {
            key_id: record.id.clone(),
            role,
            purposes: record.purposes.clone(),
            recipient: record.recipient.clone(),
        }))
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
