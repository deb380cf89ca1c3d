//! Consent events and the preference derived from them.
//!
//! Events are appended and never changed. The current preference of a
//! subject or visitor is a fold over its events, kept beside the subject's
//! other state so that a read stays one lookup; it is recomputed in the same
//! transaction that appends the event.

use super::Micros;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsentAction {
    Grant,
    Withdraw,
    Refuse,
    Object,
}

impl ConsentAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentAction::Grant => "grant",
            ConsentAction::Withdraw => "withdraw",
            ConsentAction::Refuse => "refuse",
            ConsentAction::Object => "object",
        }
    }

    pub fn parse(text: &str) -> Option<ConsentAction> {
        [
            ConsentAction::Grant,
            ConsentAction::Withdraw,
            ConsentAction::Refuse,
            ConsentAction::Object,
        ]
        .into_iter()
        .find(|a| a.as_str() == text)
    }
}

/// Whose consent: a known subject, or a pseudonymous browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    Subject(Uuid),
    Visitor(String),
}

/// One consent event, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsentEvent {
    pub id: Uuid,
    pub at: Micros,
    pub subject: Option<Uuid>,
    pub visitor: Option<String>,
    /// `None` only for an objection to all direct marketing.
    pub purpose: Option<String>,
    pub channel: Option<String>,
    pub action: ConsentAction,
    pub policy_version: String,
    /// web-form, app, call-centre, import, gpc, visitor-link
    pub method: String,
    pub agent: Option<String>,
    /// SHA-256 of the wording shown when the choice was made.
    #[serde(skip)]
    pub wording_hash: Option<[u8; 32]>,
    /// The holder's IP address, truncated (IPv4 /24, IPv6 /48).
    pub ip_prefix: Option<String>,
    pub recorded_by: String,
    pub expires_at: Option<Micros>,
}

impl ConsentEvent {
    pub fn holder(&self) -> Option<Holder> {
        match (&self.subject, &self.visitor) {
            (Some(s), _) => Some(Holder::Subject(*s)),
            (None, Some(v)) => Some(Holder::Visitor(v.clone())),
            (None, None) => None,
        }
    }
}

/// The current consent for one purpose and channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredConsent {
    pub purpose: String,
    pub channel: Option<String>,
    /// given, withdrawn or refused
    pub status: String,
    pub at: Micros,
    pub policy_version: String,
    pub event: Uuid,
    pub expires_at: Option<Micros>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredObjection {
    /// `None`: all direct marketing.
    pub purpose: Option<String>,
    pub channel: Option<String>,
    pub at: Micros,
    pub event: Uuid,
    pub method: String,
}

/// Consents and objections as of the last event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preferences {
    #[serde(default)]
    pub consents: Vec<StoredConsent>,
    #[serde(default)]
    pub objections: Vec<StoredObjection>,
}

impl Preferences {
    /// Folds one event in. A grant replaces the consent for its purpose and
    /// channel and lifts the objections confined to that purpose (a narrower
    /// or equal scope); an objection to all direct marketing stays until it
    /// is itself withdrawn with a `withdraw` event that names no purpose.
    pub fn apply(&mut self, e: &ConsentEvent) {
        match (e.action, &e.purpose) {
            (ConsentAction::Object, _) => {
                self.objections
                    .retain(|o| !(o.purpose == e.purpose && o.channel == e.channel));
                self.objections.push(StoredObjection {
                    purpose: e.purpose.clone(),
                    channel: e.channel.clone(),
                    at: e.at,
                    event: e.id,
                    method: e.method.clone(),
                });
            }
            (ConsentAction::Withdraw, None) => {
                // Withdrawing an objection to all direct marketing.
                self.objections.retain(|o| {
                    !(o.purpose.is_none() && (e.channel.is_none() || o.channel == e.channel))
                });
            }
            (action, Some(purpose)) => {
                let status = match action {
                    ConsentAction::Grant => "given",
                    ConsentAction::Withdraw => "withdrawn",
                    _ => "refused",
                };
                if action == ConsentAction::Grant {
                    self.objections.retain(|o| {
                        let same_purpose = o.purpose.as_deref() == Some(purpose.as_str());
                        let covered = o.channel.is_none() || o.channel == e.channel;
                        !(same_purpose && covered)
                    });
                }
                self.consents
                    .retain(|c| !(&c.purpose == purpose && c.channel == e.channel));
                self.consents.push(StoredConsent {
                    purpose: purpose.clone(),
                    channel: e.channel.clone(),
                    status: status.into(),
                    at: e.at,
                    policy_version: e.policy_version.clone(),
                    event: e.id,
                    expires_at: e.expires_at,
                });
            }
            (_, None) => {}
        }
    }
}

/// A pseudonymous browser's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitorRecord {
    pub id: String,
    pub created_at: Micros,
    pub subject: Option<Uuid>,
    pub preferences: Preferences,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(
        action: ConsentAction,
        purpose: Option<&str>,
        channel: Option<&str>,
        at: Micros,
    ) -> ConsentEvent {
        ConsentEvent {
            id: Uuid::from_u128(at as u128),
            at,
            subject: Some(Uuid::from_u128(1)),
            visitor: None,
            purpose: purpose.map(str::to_string),
            channel: channel.map(str::to_string),
            action,
            policy_version: "2.0".into(),
            method: "web-form".into(),
            agent: None,
            wording_hash: None,
            ip_prefix: None,
            recorded_by: "key:test".into(),
            expires_at: None,
        }
    }

    #[test]
    fn the_latest_event_per_purpose_and_channel_wins() {
        let mut p = Preferences::default();
        p.apply(&event(ConsentAction::Grant, Some("news"), Some("email"), 1));
        p.apply(&event(ConsentAction::Grant, Some("news"), Some("sms"), 2));
        p.apply(&event(
            ConsentAction::Withdraw,
            Some("news"),
            Some("email"),
            3,
        ));
        let status = |ch: &str| {
            p.consents
                .iter()
                .find(|c| c.channel.as_deref() == Some(ch))
                .map(|c| c.status.as_str())
        };
        assert_eq!(status("email"), Some("withdrawn"));
        assert_eq!(status("sms"), Some("given"));
        assert_eq!(p.consents.len(), 2);
    }

    #[test]
    fn a_grant_lifts_only_objections_confined_to_its_purpose() {
        let mut p = Preferences::default();
        p.apply(&event(
            ConsentAction::Object,
            Some("news"),
            Some("email"),
            1,
        ));
        p.apply(&event(ConsentAction::Object, None, None, 2));
        p.apply(&event(ConsentAction::Grant, Some("news"), Some("email"), 3));
        assert_eq!(p.objections.len(), 1);
        assert!(p.objections[0].purpose.is_none());
        p.apply(&event(ConsentAction::Withdraw, None, None, 4));
        assert!(p.objections.is_empty());
    }

    mod replay {
        use super::*;
        use proptest::prelude::*;

        fn arb_event() -> impl Strategy<Value = ConsentEvent> {
            (
                0..4usize,
                proptest::option::of(prop_oneof![Just("news"), Just("offers"), Just("cookies")]),
                proptest::option::of(prop_oneof![Just("email"), Just("sms"), Just("post")]),
            )
                .prop_map(|(action, purpose, channel)| {
                    let action = [
                        ConsentAction::Grant,
                        ConsentAction::Withdraw,
                        ConsentAction::Refuse,
                        ConsentAction::Object,
                    ][action];
                    event(action, purpose, channel, 0)
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

            /// The stored preferences, updated event by event and stored
            /// (JSON) between events, equal a replay of the whole ledger.
            #[test]
            fn derived_state_equals_a_replay_of_the_events(events in proptest::collection::vec(arb_event(), 0..40)) {
                let mut stored = serde_json::to_vec(&Preferences::default()).unwrap();
                let mut ledger = Vec::new();
                for (i, mut e) in events.into_iter().enumerate() {
                    e.at = i as i64;
                    e.id = Uuid::from_u128(i as u128);
                    let mut current: Preferences = serde_json::from_slice(&stored).unwrap();
                    current.apply(&e);
                    stored = serde_json::to_vec(&current).unwrap();
                    ledger.push(e);
                }
                let mut replayed = Preferences::default();
                ledger.iter().for_each(|e| replayed.apply(e));
                let stored: Preferences = serde_json::from_slice(&stored).unwrap();
                prop_assert_eq!(stored, replayed.clone());
                // At most one consent per purpose and channel, and it is the latest event's.
                for c in &replayed.consents {
                    let latest = ledger.iter().rev().find(|e| e.purpose.as_deref() == Some(c.purpose.as_str()) && e.channel == c.channel && e.action != ConsentAction::Object);
                    prop_assert_eq!(latest.map(|e| e.id), Some(c.event));
                }
            }
        }
    }
}
