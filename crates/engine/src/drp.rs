//! The business side of the Data Rights Protocol (v1.0): the discovery
//! document, an agent's registration (a signed message that earns a bearer
//! token, kept as a hash), the token's check, and the opening of a signed
//! message in the protocol's order: decode, verify with the agent's key,
//! then the claims (agent, business, issued-at, expires-at, the window's
//! length). Every refusal is audited and changes nothing else. The requests
//! themselves join the register (`requests::drp`).

use crate::audit_action::AuditAction;
use crate::collect::micros;
use crate::error::written;
use crate::{App, AppError};
use custodian_policy::drp::{self as rules, Claims};
use custodian_vault::audit::AuditDraft;
use custodian_vault::crypto::{random_bytes, sha256};
use custodian_vault::signed::{Signed, SignedError, VerifyKey};
use custodian_vault::store::agents::{AgentOp, AgentRecord};
use custodian_vault::store::{Batch, WriteOp};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use time::OffsetDateTime;

pub use crate::requests::drp::{DrpStatus, revoke, status, submit};

/// How long an agent found by its token is trusted before the store is
/// asked again: a suspension made on another node takes effect within
/// this time (on this node, at once).
const AGENT_CACHE: std::time::Duration = std::time::Duration::from_secs(2);

/// An agent as its token names it, with its key decompressed once.
#[derive(Clone)]
pub(crate) struct KnownAgent {
    pub record: AgentRecord,
    pub key: VerifyKey,
}

/// Agents by the SHA-256 of their tokens, and when each was read.
#[derive(Default)]
pub struct AgentCache(std::sync::Mutex<HashMap<[u8; 32], (KnownAgent, std::time::Instant)>>);

impl AgentCache {
    fn get(&self, hash: &[u8; 32]) -> Option<KnownAgent> {
        let cache = self.0.lock().ok()?;
        let (agent, at) = cache.get(hash)?;
        (at.elapsed() < AGENT_CACHE).then(|| agent.clone())
    }

    fn put(&self, hash: [u8; 32], agent: KnownAgent) {
        if let Ok(mut cache) = self.0.lock() {
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(hash, (agent, std::time::Instant::now()));
        }
    }

    /// After any change to an agent through this node.
    pub fn forget(&self) {
        if let Ok(mut cache) = self.0.lock() {
            cache.clear();
        }
    }
}

/// What this business answers as.
#[derive(Debug, Clone)]
pub struct DrpSettings {
    /// The protocol's `business-id` of this business: a message for any
    /// other is refused.
    pub business_id: String,
    /// Where the protocol's endpoints are reached from outside (no trailing
    /// slash), for the discovery document and verification links.
    pub api_base: String,
}

impl DrpSettings {
    /// The business id derived from the controller's name, and the API
    /// base of a server listening on `listen` with no proxy in front.
    pub fn defaults(app_policy: &custodian_policy::LoadedPolicy, listen: &str) -> DrpSettings {
        DrpSettings {
            business_id: rules::business_id_from(&app_policy.document.controller.legal_name),
            api_base: format!("http://{listen}"),
        }
    }
}

/// A refusal or failure, as the protocol answers it: the HTTP status, a
/// stable reason code and a sentence (never a submitted value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrpError {
    pub status: u16,
    pub reason: &'static str,
    pub message: String,
}

impl DrpError {
    pub fn new(status: u16, reason: &'static str, message: impl Into<String>) -> DrpError {
        DrpError {
            status,
            reason,
            message: message.into(),
        }
    }
}

impl From<AppError> for DrpError {
    fn from(e: AppError) -> DrpError {
        let status = match &e {
            AppError::Unauthorized => 401,
            AppError::ForbiddenCode { .. } => 403,
            AppError::SubjectNotFound | AppError::NoSubjectMatches | AppError::NotFound(_) => 404,
            AppError::UnknownPurpose(_)
            | AppError::UnknownRecipient(_)
            | AppError::Invalid(_)
            | AppError::Fields { .. } => 400,
            AppError::Conflict(_)
            | AppError::LastAdminKey
            | AppError::RequestChanged
            | AppError::AgentExists
            | AppError::SweepBusy
            | AppError::LeaseLost => 409,
            AppError::Erased => 410,
            AppError::TooSoon(_) => 429,
            AppError::Unavailable
            | AppError::KeyUnavailable(_)
            | AppError::MailUnavailable(_)
            | AppError::Connector { .. } => 503,
            AppError::Corrupt(_) | AppError::Internal(_) => 500,
        };
        DrpError::new(status, e.code(), e.to_string())
    }
}

impl From<custodian_vault::store::StoreError> for DrpError {
    fn from(e: custodian_vault::store::StoreError) -> DrpError {
        DrpError::from(AppError::from(e))
    }
}

/// The discovery document (`/.well-known/data-rights.json`).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Discovery {
    /// The protocol version.
    pub version: String,
    /// Where the protocol's endpoints are.
    pub api_base: String,
    /// The actions offered: exactly the rights the policy declares.
    pub actions: Vec<String>,
    /// Relationship hints this business uses (none).
    pub user_relationships: Vec<String>,
}

pub fn discovery(app: &App) -> Discovery {
    Discovery {
        version: rules::VERSION.into(),
        api_base: app.drp.api_base.clone(),
        actions: rules::offered(&app.policy.compiled)
            .into_iter()
            .map(|a| a.as_str().to_string())
            .collect(),
        user_relationships: Vec::new(),
    }
}

/// What a registration gives the agent: its token, shown this once.
#[derive(Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Registered {
    #[serde(rename = "agent-id")]
    pub agent_id: String,
    /// `drp_...`: send as `Authorization: Bearer`; stored only as a hash.
    pub token: String,
}

/// The token is a secret: it never prints.
impl std::fmt::Debug for Registered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registered")
            .field("agent_id", &self.agent_id)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// The audit actor of an agent: its id when it is a well-formed one, never
/// arbitrary text from a request.
fn actor(agent: Option<&str>) -> String {
    match agent {
        Some(id) if crate::agents::valid_id(id) => format!("agent:{id}"),
        _ => "agent:unknown".into(),
    }
}

fn draft(
    agent: Option<&str>,
    action: &AuditAction,
    decision: &str,
    reason: String,
    at: i64,
) -> AuditDraft {
    AuditDraft {
        at,
        actor: actor(agent),
        action: action.name(),
        purpose: None,
        subject: None,
        decision: decision.into(),
        reason: Some(reason),
    }
}

/// Audits a refusal and hands it back; should the audit fail, that failure
/// is the answer: nothing is refused unrecorded.
pub(crate) async fn refuse(
    app: &App,
    agent: Option<&str>,
    action: &AuditAction,
    refusal: DrpError,
    now: OffsetDateTime,
) -> DrpError {
    let entry = draft(
        agent,
        action,
        "refused",
        refusal.reason.to_string(),
        micros(now),
    );
    match written(app.store.write(Batch::audit_only(entry)).await) {
        Ok(_) => refusal,
        Err(e) => DrpError::from(e),
    }
}

fn signed_refusal(e: SignedError) -> DrpError {
    match e {
        SignedError::NotBase64 | SignedError::TooShort => DrpError::new(
            400,
            "undecodable",
            "the body is not base64 of a signature followed by a message",
        ),
        SignedError::BadKey => DrpError::new(
            403,
            "bad_verify_key",
            "the agent's verify key on record is not usable",
        ),
        SignedError::BadSignature => DrpError::new(
            403,
            "bad_signature",
            "the signature does not verify with the agent's key",
        ),
    }
}

fn malformed(message: impl Into<String>) -> DrpError {
    DrpError::new(400, "malformed", message)
}

fn claim_refusal(e: rules::ClaimRefusal) -> DrpError {
    use rules::ClaimRefusal as R;
    let (status, message) = match e {
        R::AgentMismatch => (403, "`agent-id` is not the agent this token or path names"),
        R::WrongBusiness => (403, "`business-id` is not this business"),
        R::NotYetValid => (
            400,
            "the message is not valid yet: `issued-at` is in the future",
        ),
        R::Expired => (400, "the message has expired: `expires-at` has passed"),
        R::WindowTooLong => (
            400,
            "the message is valid for longer than 15 minutes (`expires-at` - `issued-at`)",
        ),
    };
    DrpError::new(status, e.code(), message)
}

fn text_claim<'a>(message: &'a Map<String, Value>, name: &str) -> Result<&'a str, DrpError> {
    message
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| malformed(format!("the message lacks `{name}` (a string)")))
}

fn claims(message: &Map<String, Value>) -> Result<Claims, DrpError> {
    let time = |name: &str| {
        rules::parse_time(text_claim(message, name)?)
            .ok_or_else(|| malformed(format!("`{name}` is not an ISO 8601 time with an offset")))
    };
    Ok(Claims {
        agent_id: text_claim(message, "agent-id")?.to_string(),
        business_id: text_claim(message, "business-id")?.to_string(),
        issued_at: time("issued-at")?,
        expires_at: time("expires-at")?,
    })
}

/// Opens a signed message from `agent` in the protocol's order: decode,
/// verify with the agent's key, then (when `with_claims`) the claims.
/// Nothing is audited here: the caller audits the refusal.
pub(crate) fn open(
    app: &App,
    agent: &KnownAgent,
    body: &str,
    with_claims: bool,
    now: OffsetDateTime,
) -> Result<Map<String, Value>, DrpError> {
    let signed = Signed::decode(body).map_err(signed_refusal)?;
    let bytes = signed.verify_with(&agent.key).map_err(signed_refusal)?;
    let message: Map<String, Value> = serde_json::from_slice(bytes)
        .map_err(|_| malformed("the signed message is not a JSON object"))?;
    if with_claims {
        let claims = claims(&message)?;
        rules::check_claims(&claims, &agent.record.id, &app.drp.business_id, now)
            .map_err(claim_refusal)?;
    }
    Ok(message)
}

fn suspended() -> DrpError {
    DrpError::new(403, "agent_suspended", "this agent is suspended")
}

/// An agent registers (`POST /v1/agent/{id}`): the signed message names it
/// and this business, within its window. A new token replaces any earlier
/// one; only its SHA-256 is kept.
pub async fn register(
    app: &App,
    agent_id: &str,
    body: &str,
    now: OffsetDateTime,
) -> Result<Registered, DrpError> {
    const ACTION: &AuditAction = &AuditAction::DrpRegister;
    let result = async {
        // Decoding comes first in the protocol's order; the key follows
        // from the agent the path names.
        Signed::decode(body).map_err(signed_refusal)?;
        let agent = app
            .store
            .agent(agent_id)
            .await?
            .ok_or_else(|| DrpError::new(404, "unknown_agent", "no agent with this id"))?;
        if agent.status != "active" {
            return Err(suspended());
        }
        let known = KnownAgent {
            key: VerifyKey::from_bytes(&agent.verify_key).map_err(signed_refusal)?,
            record: agent.clone(),
        };
        open(app, &known, body, true, now)?;
        Ok(agent)
    }
    .await;
    let agent = match result {
        Ok(agent) => agent,
        Err(e) if e.status >= 500 => return Err(e),
        Err(e) => return Err(refuse(app, Some(agent_id), ACTION, e, now).await),
    };
    let secret: [u8; 32] = random_bytes();
    let token = format!("drp_{}", custodian_vault::audit::hex(&secret));
    let at = micros(now);
    let batch = Batch {
        ops: vec![WriteOp::Agent(AgentOp::SetToken {
            id: agent.id.clone(),
            token_hash: sha256(token.as_bytes()),
            at,
        })],
        audit: vec![draft(
            Some(&agent.id),
            ACTION,
            "allowed",
            format!("agent={}", agent.id),
            at,
        )],
        outbox: vec![],
    };
    written(app.store.write(batch).await)?;
    app.agent_cache.forget();
    Ok(Registered {
        agent_id: agent.id,
        token,
    })
}

/// The agent a bearer token names, if it is active. A missing or unknown
/// token, or a suspended agent's, is refused and audited under `action`.
pub(crate) async fn authenticate(
    app: &App,
    token: Option<&str>,
    action: &AuditAction,
    now: OffsetDateTime,
) -> Result<KnownAgent, DrpError> {
    let unknown = || {
        DrpError::new(
            401,
            "unknown_token",
            "a token from this business's POST /v1/agent/{id} is required",
        )
    };
    let Some(token) = token.filter(|t| t.starts_with("drp_")) else {
        return Err(refuse(app, None, action, unknown(), now).await);
    };
    let hash = sha256(token.as_bytes());
    let known = match app.agent_cache.get(&hash) {
        Some(known) => Some(known),
        None => match app.store.agent_by_token(&hash).await? {
            Some(record) => {
                let key = VerifyKey::from_bytes(&record.verify_key).map_err(signed_refusal)?;
                let known = KnownAgent { record, key };
                app.agent_cache.put(hash, known.clone());
                Some(known)
            }
            None => None,
        },
    };
    match known {
        None => Err(refuse(app, None, action, unknown(), now).await),
        Some(a) if a.record.status != "active" => {
            Err(refuse(app, Some(&a.record.id), action, suspended(), now).await)
        }
        Some(a) => Ok(a),
    }
}

/// What `GET /v1/agent/{id}` answers: the token is good for this agent.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentStatus {
    #[serde(rename = "agent-id")]
    pub agent_id: String,
    /// active
    pub status: String,
}

pub async fn agent_status(
    app: &App,
    token: Option<&str>,
    agent_id: &str,
    now: OffsetDateTime,
) -> Result<AgentStatus, DrpError> {
    const ACTION: &AuditAction = &AuditAction::DrpAgent;
    let agent = authenticate(app, token, ACTION, now).await?.record;
    if agent.id != agent_id {
        let refusal = DrpError::new(
            403,
            "agent_mismatch",
            "this token is not the agent's the path names",
        );
        return Err(refuse(app, Some(&agent.id), ACTION, refusal, now).await);
    }
    Ok(AgentStatus {
        agent_id: agent.id,
        status: agent.status,
    })
}
