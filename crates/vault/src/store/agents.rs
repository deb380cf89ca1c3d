//! What the store keeps of authorized agents (Data Rights Protocol): their
//! verify keys, whether the business accepts the identity they attest, their
//! status, and the hash of the bearer token their registration got. Both
//! backends apply these in `sqlite/agents.rs` and `postgres/agents.rs`.

use super::types::Micros;

#[derive(Clone, PartialEq, Eq)]
pub struct AgentRecord {
    /// The protocol's `agent-id`.
    pub id: String,
    pub name: String,
    /// The Ed25519 public key the agent's messages are verified with.
    pub verify_key: [u8; 32],
    /// Whether the identity the agent attests (a verified email address) is
    /// accepted; otherwise the person gets the business's own one-time code.
    pub trust_identity: bool,
    /// `active` or `suspended`.
    pub status: String,
    /// SHA-256 of the token the last registration gave; never the token.
    pub token_hash: Option<[u8; 32]>,
    pub registered_at: Option<Micros>,
    pub created_at: Micros,
    pub updated_at: Micros,
}

/// The token's hash is a secret's digest: it never prints.
impl std::fmt::Debug for AgentRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentRecord")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("trust_identity", &self.trust_identity)
            .field("status", &self.status)
            .field("registered", &self.token_hash.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentOp {
    /// A new agent (`BatchError::AgentExists` if the id is taken).
    Create(AgentRecord),
    /// `active` or `suspended` (`BatchError::AgentNotFound`).
    SetStatus {
        id: String,
        status: String,
        at: Micros,
    },
    /// A registration: the new token's hash replaces any earlier one.
    SetToken {
        id: String,
        token_hash: [u8; 32],
        at: Micros,
    },
    /// The agent and its token go; its requests stay in the register.
    Remove { id: String },
}
