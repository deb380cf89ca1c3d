//! API key management: create (the token is shown once), list, revoke.
//! Every key operation is audited.

use super::auth::new_token;
use super::collect::micros;
use super::error::written;
use super::{App, AppError, Operation, Principal, Role};
use crate::audit_action::AuditAction;
use custodian_vault::audit::AuditDraft;
use custodian_vault::store::{ApiKeyRecord, Batch, WriteOp};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewKeyRequest {
    pub role: Role,
    /// For a service key: the purposes it may use (at least one). For a
    /// processor key, optionally: the only purposes it may receive
    /// disclosures for (each must disclose to its recipient).
    #[serde(default)]
    pub purposes: Vec<String>,
    /// For a processor key: its recipient.
    #[serde(default)]
    pub recipient: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
}

#[derive(Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewKeyResponse {
    pub id: String,
    /// The key itself. It is shown this once and stored only as a hash.
    pub key: String,
    pub role: Role,
}

/// The key is a secret: it never prints.
impl std::fmt::Debug for NewKeyResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKeyResponse")
            .field("id", &self.id)
            .field("key", &"<redacted>")
            .field("role", &self.role)
            .finish()
    }
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyInfo {
    pub id: String,
    #[cfg_attr(feature = "openapi", schema(value_type = crate::Role))]
    pub role: String,
    pub purposes: Vec<String>,
    pub recipient: Option<String>,
    pub label: Option<String>,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

use super::read::rfc3339;

impl From<&ApiKeyRecord> for KeyInfo {
    fn from(k: &ApiKeyRecord) -> KeyInfo {
        KeyInfo {
            id: k.id.clone(),
            role: k.role.clone(),
            purposes: k.purposes.clone(),
            recipient: k.recipient.clone(),
            label: k.label.clone(),
            created_at: rfc3339(k.created_at),
            revoked_at: k.revoked_at.map(rfc3339),
        }
    }
}

fn entry(actor: &str, action: AuditAction, key: &str, at: i64) -> AuditDraft {
    AuditDraft {
        at,
        actor: actor.to_string(),
        action: action.into(),
        purpose: None,
        subject: None,
        decision: "allowed".into(),
        reason: Some(format!("key={key}")),
    }
}

/// Checks a key's bindings against the policy.
fn check(app: &App, req: &NewKeyRequest) -> Result<(), AppError> {
    let policy = &app.policy.compiled;
    match req.role {
        Role::Service if req.purposes.is_empty() => {
            return Err(AppError::Invalid(
                "a service key needs at least one purpose".into(),
            ));
        }
        Role::Processor => match &req.recipient {
            None => {
                return Err(AppError::Invalid(
                    "a processor key needs its recipient".into(),
                ));
            }
            Some(r) if policy.recipient(r).is_none() => {
                return Err(AppError::UnknownRecipient(r.clone()));
            }
            Some(_) => {}
        },
        _ => {}
    }
    if !matches!(req.role, Role::Service | Role::Processor) && !req.purposes.is_empty() {
        return Err(AppError::Invalid(
            "only service and processor keys are bound to purposes".into(),
        ));
    }
    if req.role != Role::Processor && req.recipient.is_some() {
        return Err(AppError::Invalid(
            "only processor keys are bound to a recipient".into(),
        ));
    }
    if let Some(unknown) = req.purposes.iter().find(|p| policy.purpose(p).is_none()) {
        return Err(AppError::UnknownPurpose(unknown.clone()));
    }
    // A processor bound to purposes gets only what those purposes disclose to
    // its recipient: a purpose that discloses nothing to it is a mistake.
    if let (Role::Processor, Some(recipient)) = (req.role, &req.recipient) {
        let rix = policy
            .recipient(recipient)
            .ok_or_else(|| AppError::UnknownRecipient(recipient.clone()))?;
        for name in &req.purposes {
            let discloses = policy
                .purpose(name)
                .and_then(|pix| policy.purposes.get(pix.get()))
                .is_some_and(|p| p.discloses_to(rix));
            if !discloses {
                return Err(AppError::Invalid(format!(
                    "purpose `{name}` discloses nothing to `{recipient}`"
                )));
            }
        }
    }
    Ok(())
}

/// Creates a key for an API caller (admins only).
pub async fn create(
    app: &App,
    principal: &Principal,
    req: NewKeyRequest,
    now: OffsetDateTime,
) -> Result<NewKeyResponse, AppError> {
    app.authorize(principal, Operation::CreateKey, now).await?;
    create_as(app, &principal.actor(), req, now).await
}

/// Creates a key. `actor` is the audit actor (`key:<id>`, or `cli` for the
/// command line and `bootstrap` for the first admin key): the command line
/// holds the key file and the database, so it is not asked for a key.
pub async fn create_as(
    app: &App,
    actor: &str,
    req: NewKeyRequest,
    now: OffsetDateTime,
) -> Result<NewKeyResponse, AppError> {
    check(app, &req)?;
    let token = new_token();
    let at = micros(now);
    let record = ApiKeyRecord {
        id: token.id.clone(),
        hash: token.hash,
        role: req.role.as_str().into(),
        purposes: req.purposes,
        recipient: req.recipient,
        label: req.label,
        created_at: at,
        revoked_at: None,
    };
    let batch = Batch {
        ops: vec![WriteOp::CreateApiKey(record)],
        audit: vec![entry(actor, AuditAction::KeyCreate, &token.id, at)],
        outbox: vec![],
    };
    written(app.store.write(batch).await)?;
    Ok(NewKeyResponse {
        id: token.id,
        key: token.token,
        role: req.role,
    })
}

/// Lists keys for an API caller (admins only).
pub async fn list(
    app: &App,
    principal: &Principal,
    now: OffsetDateTime,
) -> Result<Vec<KeyInfo>, AppError> {
    app.authorize(principal, Operation::ListKeys, now).await?;
    list_all(app).await
}

/// Lists every key (the command line).
pub async fn list_all(app: &App) -> Result<Vec<KeyInfo>, AppError> {
    Ok(app
        .store
        .api_keys()
        .await?
        .iter()
        .map(KeyInfo::from)
        .collect())
}

/// Revokes a key for an API caller (admins only). The last active admin
/// key cannot be revoked.
pub async fn revoke(
    app: &App,
    principal: &Principal,
    id: &crate::ids::KeyId,
    now: OffsetDateTime,
) -> Result<(), AppError> {
    let id = id.as_str();
    app.authorize(principal, Operation::RevokeKey, now).await?;
    revoke_as(app, &principal.actor(), id, now).await
}

/// Revokes a key; `actor` as for [`create_as`].
pub async fn revoke_as(
    app: &App,
    actor: &str,
    id: &str,
    now: OffsetDateTime,
) -> Result<(), AppError> {
    let at = micros(now);
    let batch = Batch {
        ops: vec![WriteOp::RevokeApiKey {
            id: id.to_string(),
            at,
        }],
        audit: vec![entry(actor, AuditAction::KeyRevoke, id, at)],
        outbox: vec![],
    };
    written(app.store.write(batch).await).map(|_| ())
}

/// The caller, if the token names a live key.
pub async fn authenticate(app: &App, token: &str) -> Result<Principal, AppError> {
    let hash = super::auth::token_hash(token);
    let record = app
        .store
        .api_key_by_hash(&hash)
        .await?
        .ok_or(AppError::Unauthorized)?;
    Principal::from_record(&record)?.ok_or(AppError::Unauthorized)
}

/// Verifies the audit chain (admins and the DPO).
pub async fn verify_audit(
    app: &App,
    principal: &Principal,
    now: OffsetDateTime,
) -> Result<custodian_vault::audit::Verification, AppError> {
    app.authorize(principal, Operation::VerifyAudit, now)
        .await?;
    Ok(app.store.verify_audit().await?)
}
