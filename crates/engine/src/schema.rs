//! Schemas the OpenAPI derive cannot say by itself: strings drawn from a
//! fixed vocabulary. Built from the vocabularies themselves, so the
//! document and the checks cannot drift apart. Compiled only with the
//! `openapi` feature.

use custodian_policy::terms::Channel;
use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaType, Type};

fn strings(values: &[&str], nullable: bool) -> Object {
    let mut allowed: Vec<serde_json::Value> = values
        .iter()
        .map(|v| serde_json::Value::String((*v).to_string()))
        .collect();
    let kind = if nullable {
        allowed.push(serde_json::Value::Null);
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::Type(Type::String)
    };
    ObjectBuilder::new()
        .schema_type(kind)
        .enum_values(Some(allowed))
        .build()
}

fn channels() -> Vec<&'static str> {
    Channel::ALL.iter().map(|c| c.as_str()).collect()
}

/// A marketing channel: email, phone, sms or post.
pub fn channel() -> Object {
    strings(&channels(), false)
}

/// A marketing channel, or null.
pub fn channel_or_null() -> Object {
    strings(&channels(), true)
}

/// A channel whose addresses can be suppressed: not post, which is
/// suppressed through an objection by the subject.
pub fn address_channel() -> Object {
    let kinds: Vec<&str> = Channel::ALL
        .iter()
        .filter(|c| **c != Channel::Post)
        .map(|c| c.as_str())
        .collect();
    strings(&kinds, false)
}

/// The kind of a data-subject request.
pub fn request_kind() -> Object {
    let kinds: Vec<&str> = custodian_policy::requests::RequestKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect();
    strings(&kinds, false)
}

/// The state of a data-subject request.
pub fn request_state() -> Object {
    let states: Vec<&str> = custodian_policy::requests::RequestState::ALL
        .iter()
        .map(|s| s.as_str())
        .collect();
    strings(&states, false)
}
