//! The events the engine announces through the outbox. Event delivery
//! (webhooks, NATS) publishes them as they are, so their shape is a
//! contract: every payload carries `v` (the schema version) and `type` (the
//! topic), and a change of shape raises the version. No event carries a
//! personal value: ids, purposes, field names, kinds and states only.

use custodian_vault::store::OutboxEvent;
use serde::Serialize;
use uuid::Uuid;

/// The version of every payload's shape.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type")]
pub enum Event {
    #[serde(rename = "subject.created")]
    SubjectCreated {
        subject: Uuid,
        purpose: String,
        fields: Vec<String>,
        channel: String,
        policy_version: String,
    },
    /// Data added for a purpose (`rectified` empty) or corrected.
    #[serde(rename = "subject.updated")]
    SubjectUpdated {
        subject: Uuid,
        purpose: String,
        fields: Vec<String>,
        rectified: Vec<String>,
    },
    #[serde(rename = "subject.relationship")]
    RelationshipRecorded {
        subject: Uuid,
        relationship: Uuid,
        kind: String,
        status: String,
    },
    #[serde(rename = "subject.erased")]
    SubjectErased { subject: Uuid, kept: usize },
    /// A recipient that received the subject's data must be told (Art. 19):
    /// `what` is erasure, rectification, restriction or restriction-lifted.
    #[serde(rename = "recipient.notify")]
    RecipientNotify {
        recipient: String,
        subject: Uuid,
        what: String,
    },
    /// A consent event was recorded for a subject or a visitor.
    #[serde(rename = "consent.changed")]
    ConsentChanged {
        event: Uuid,
        subject: Option<Uuid>,
        visitor: Option<String>,
        purpose: Option<String>,
        channel: Option<String>,
        action: String,
        method: String,
        policy_version: String,
    },
    /// A visitor became a subject; its choices moved.
    #[serde(rename = "consent.visitor-linked")]
    VisitorLinked { subject: Uuid, visitor: String },
    /// A visitor's cookie choices, by category.
    #[serde(rename = "consent.cookies")]
    CookieChoices {
        visitor: String,
        choices: std::collections::BTreeMap<String, bool>,
        gpc: bool,
        policy_version: String,
    },
    /// A request's state changed.
    #[serde(rename = "request.changed")]
    RequestChanged {
        request: Uuid,
        kind: String,
        state: String,
        subject: Option<Uuid>,
        due: Option<String>,
    },
}

impl Event {
    pub fn topic(&self) -> &'static str {
        match self {
            Event::SubjectCreated { .. } => "subject.created",
            Event::SubjectUpdated { .. } => "subject.updated",
            Event::RelationshipRecorded { .. } => "subject.relationship",
            Event::SubjectErased { .. } => "subject.erased",
            Event::RecipientNotify { .. } => "recipient.notify",
            Event::RequestChanged { .. } => "request.changed",
            Event::ConsentChanged { .. } => "consent.changed",
            Event::VisitorLinked { .. } => "consent.visitor-linked",
            Event::CookieChoices { .. } => "consent.cookies",
        }
    }

    fn subject(&self) -> Option<Uuid> {
        match self {
            Event::SubjectCreated { subject, .. }
            | Event::SubjectUpdated { subject, .. }
            | Event::RelationshipRecorded { subject, .. }
            | Event::SubjectErased { subject, .. }
            | Event::RecipientNotify { subject, .. }
            | Event::VisitorLinked { subject, .. } => Some(*subject),
            Event::RequestChanged { subject, .. } | Event::ConsentChanged { subject, .. } => {
                *subject
            }
            Event::CookieChoices { .. } => None,
        }
    }

    /// The outbox row: the payload is the event with `v` added.
    pub fn outbox(&self, at: i64) -> OutboxEvent {
        let mut payload = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(fields) = payload.as_object_mut() {
            fields.insert("v".into(), SCHEMA_VERSION.into());
        }
        OutboxEvent {
            at,
            topic: self.topic().into(),
            subject: self.subject(),
            payload: payload.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of the payload is a contract: this pins it.
    #[test]
    fn payloads_carry_their_version_and_type() {
        let e = Event::SubjectErased {
            subject: Uuid::nil(),
            kept: 2,
        };
        let row = e.outbox(7);
        assert_eq!(row.topic, "subject.erased");
        assert_eq!(row.subject, Some(Uuid::nil()));
        let v: serde_json::Value = serde_json::from_str(&row.payload).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "subject.erased", "v": 1, "subject": Uuid::nil(), "kept": 2})
        );
    }
}
