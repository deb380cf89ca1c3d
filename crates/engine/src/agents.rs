//! Authorized agents of the Data Rights Protocol, as the organisation
//! manages them: add one with its Ed25519 verify key and whether the
//! identity it attests is accepted, list, suspend, reactivate, remove.
//! Admins only (or the command line); every change is audited.

use super::collect::micros;
use super::error::written;
use super::read::rfc3339;
use super::{App, AppError, Operation, Principal};
use crate::audit_action::AuditAction;
use custodian_vault::audit::AuditDraft;
use custodian_vault::signed::parse_verify_key;
use custodian_vault::store::agents::{AgentOp, AgentRecord};
use custodian_vault::store::{Batch, WriteOp};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The longest agent id and name accepted.
const MAX_ID: usize = 64;
const MAX_NAME: usize = 200;

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewAgent {
    /// The protocol's agent-id, as the directory gives it (`[A-Z_]+`;
    /// digits and `-` are accepted too).
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^[A-Za-z0-9_-]{1,64}$", min_length = 1, max_length = 64)
    )]
    pub id: String,
    /// The agent's Ed25519 verify key: base64 of its 32 bytes.
    pub verify_key: String,
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200))]
    pub name: String,
    /// Whether the identity the agent attests (an email address it
    /// verified) is accepted; otherwise the person is sent this business's
    /// own one-time code.
    #[serde(default)]
    pub trust_identity: bool,
}

/// An agent as listed. Never its token (only a hash is kept).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentInfo {
    pub id: String,
    pub name: String,
    /// base64
    pub verify_key: String,
    pub trust_identity: bool,
    /// active or suspended
    pub status: String,
    /// Whether the agent has registered (holds a token).
    pub registered: bool,
    pub registered_at: Option<String>,
    pub created_at: String,
}

impl From<&AgentRecord> for AgentInfo {
    fn from(a: &AgentRecord) -> AgentInfo {
        use base64::Engine;
        AgentInfo {
            id: a.id.clone(),
            name: a.name.clone(),
            verify_key: base64::engine::general_purpose::STANDARD.encode(a.verify_key),
            trust_identity: a.trust_identity,
            status: a.status.clone(),
            registered: a.token_hash.is_some(),
            registered_at: a.registered_at.map(rfc3339),
            created_at: rfc3339(a.created_at),
        }
    }
}

/// A change of an agent's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum AgentStatusChange {
    /// Its token and signatures are refused until it is reactivated.
    Suspend,
    Activate,
}

impl AgentStatusChange {
    fn status(self) -> &'static str {
        match self {
            AgentStatusChange::Suspend => "suspended",
            AgentStatusChange::Activate => "active",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AgentChange {
    pub action: AgentStatusChange,
}

fn entry(actor: &str, action: AuditAction, agent: &str, at: i64) -> AuditDraft {
    AuditDraft {
        at,
        actor: actor.to_string(),
        action: action.into(),
        purpose: None,
        subject: None,
        decision: "allowed".into(),
        reason: Some(format!("agent={agent}")),
    }
}

/// An agent id: letters, digits, `_` and `-`, at most 64.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn check(req: &NewAgent) -> Result<[u8; 32], AppError> {
    if !valid_id(&req.id) {
        return Err(AppError::Invalid(
            "an agent id is 1 to 64 letters, digits, `_` or `-`".into(),
        ));
    }
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(AppError::Invalid(
            "an agent's name is 1 to 200 characters".into(),
        ));
    }
    parse_verify_key(&req.verify_key).map_err(|_| {
        AppError::Invalid("`verify_key` is not an Ed25519 public key (base64 of 32 bytes)".into())
    })
}

pub async fn add(
    app: &App,
    principal: &Principal,
    req: NewAgent,
    now: OffsetDateTime,
) -> Result<AgentInfo, AppError> {
    app.authorize(principal, Operation::AddAgent, now).await?;
    add_as(app, &principal.actor(), req, now).await
}

/// Adds an agent; `actor` is the audit actor (`cli` for the command line).
pub async fn add_as(
    app: &App,
    actor: &str,
    req: NewAgent,
    now: OffsetDateTime,
) -> Result<AgentInfo, AppError> {
    let verify_key = check(&req)?;
    let at = micros(now);
    let record = AgentRecord {
        id: req.id.clone(),
        name: req.name.trim().to_string(),
        verify_key,
        trust_identity: req.trust_identity,
        status: "active".into(),
        token_hash: None,
        registered_at: None,
        created_at: at,
        updated_at: at,
    };
    let mut audit = entry(actor, AuditAction::AgentAdd, &req.id, at);
    audit.reason = Some(format!(
        "agent={} trust_identity={}",
        req.id, req.trust_identity
    ));
    let batch = Batch {
        ops: vec![WriteOp::Agent(AgentOp::Create(record.clone()))],
        audit: vec![audit],
        outbox: vec![],
    };
    written(app.store.write(batch).await)?;
    app.agent_cache.forget();
    Ok(AgentInfo::from(&record))
}

pub async fn list(
    app: &App,
    principal: &Principal,
    now: OffsetDateTime,
) -> Result<Vec<AgentInfo>, AppError> {
    app.authorize(principal, Operation::ListAgents, now).await?;
    list_all(app).await
}

pub async fn list_all(app: &App) -> Result<Vec<AgentInfo>, AppError> {
    Ok(app
        .store
        .agents()
        .await?
        .iter()
        .map(AgentInfo::from)
        .collect())
}

pub async fn change(
    app: &App,
    principal: &Principal,
    id: &str,
    change: AgentStatusChange,
    now: OffsetDateTime,
) -> Result<AgentInfo, AppError> {
    app.authorize(principal, Operation::ChangeAgent, now)
        .await?;
    change_as(app, &principal.actor(), id, change, now).await
}

/// Suspends or reactivates an agent; `actor` as for [`add_as`].
pub async fn change_as(
    app: &App,
    actor: &str,
    id: &str,
    change: AgentStatusChange,
    now: OffsetDateTime,
) -> Result<AgentInfo, AppError> {
    let at = micros(now);
    let action = match change {
        AgentStatusChange::Suspend => AuditAction::AgentSuspend,
        AgentStatusChange::Activate => AuditAction::AgentActivate,
    };
    let batch = Batch {
        ops: vec![WriteOp::Agent(AgentOp::SetStatus {
            id: id.to_string(),
            status: change.status().into(),
            at,
        })],
        audit: vec![entry(actor, action, id, at)],
        outbox: vec![],
    };
    written(app.store.write(batch).await)?;
    app.agent_cache.forget();
    let record = app
        .store
        .agent(id)
        .await?
        .ok_or_else(|| AppError::NotFound("no agent with this id".into()))?;
    Ok(AgentInfo::from(&record))
}

pub async fn remove(
    app: &App,
    principal: &Principal,
    id: &str,
    now: OffsetDateTime,
) -> Result<(), AppError> {
    app.authorize(principal, Operation::RemoveAgent, now)
        .await?;
    remove_as(app, &principal.actor(), id, now).await
}

/// Removes an agent and its token; its requests stay in the register.
pub async fn remove_as(
    app: &App,
    actor: &str,
    id: &str,
    now: OffsetDateTime,
) -> Result<(), AppError> {
    let at = micros(now);
    let batch = Batch {
        ops: vec![WriteOp::Agent(AgentOp::Remove { id: id.to_string() })],
        audit: vec![entry(actor, AuditAction::AgentRemove, id, at)],
        outbox: vec![],
    };
    written(app.store.write(batch).await)?;
    app.agent_cache.forget();
    Ok(())
}
