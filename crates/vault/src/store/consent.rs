//! Consent events and the preference derived from them.
//!
//! Events are appended and never changed. The current preference of a
//! subject or visitor is a fold over its events (the pure
//! [`custodian_policy::consent`] module), kept beside the subject's other
//! state so that a read stays one lookup; it is recomputed in the same
//! transaction that appends the event.

use super::Micros;
pub use custodian_policy::consent::{
    ConsentAction, ConsentEvent, GrantBlocked, Holder, Lifted, Preferences, StoredConsent,
    StoredConsentStatus, StoredObjection,
};
use uuid::Uuid;

/// A pseudonymous browser's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitorRecord {
    pub id: String,
    pub created_at: Micros,
    pub subject: Option<Uuid>,
    pub preferences: Preferences,
}
