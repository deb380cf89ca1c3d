//! How a request is kept: the sealed part (personal data, under the
//! request's own data key) and the open part (`meta`, JSON), and the
//! conversions between the store's record and the engine's view of it.

use crate::error::Internal;
use crate::{App, AppError};
use custodian_policy::requests::{Clock, Extension, Pause, RequestKind, RequestState};
use custodian_vault::crypto::DataKey;
use custodian_vault::store::requests::RequestRecord;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::Date;
use uuid::Uuid;

/// The personal data of a request, sealed.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Sealed {
    /// The address the person gave, to send codes and notices to.
    pub email: String,
    /// For rectification: field name to corrected value.
    #[serde(default)]
    pub fields: BTreeMap<String, serde_json::Value>,
    /// Free text the person or the agent added.
    #[serde(default)]
    pub note: Option<String>,
    /// The identities the datasets know the person by, left here by the
    /// vault's erasure (which shreds them in the vault) for the datasets'
    /// tasks that run after it.
    #[serde(default)]
    pub identities: crate::datasets::Identities,
}

/// How the person's identity was established.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Unix microseconds.
    pub at: i64,
    /// `email-code`, or the agent's own method (`call-centre-questions`, ...).
    pub method: String,
    /// Who checked it (`key:<id>`, or `code` for a code the person entered).
    pub by: String,
    /// What the agent saw or asked (never a document number).
    #[serde(default)]
    pub evidence: Option<String>,
}

/// The one-time code: its keyed hash, never the code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Code {
    pub hash: String,
    pub expires_at: i64,
    pub attempts: u32,
    #[serde(default)]
    pub locked_until: Option<i64>,
    /// Codes sent for this request so far (this one included; 0 in
    /// requests made before this was counted, read as 1).
    #[serde(default)]
    pub sent: u32,
    /// When this code was sent (unset before it was recorded).
    #[serde(default)]
    pub sent_at: Option<i64>,
}

/// Data an erasure kept, and the ground for keeping it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Kept {
    pub field: String,
    pub purpose: String,
    /// The Art. 17(3) ground, as the policy states it.
    pub ground: String,
}

/// Why a request was refused, and where the person may turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Refusal {
    pub reason: String,
    /// The regulator named in the policy, and the right to go to court.
    pub complain_to: String,
}

/// What carrying a request out did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Outcome {
    /// Whether the vault held anything about the person.
    pub found: bool,
    #[serde(default)]
    pub kept: Vec<Kept>,
    /// Recipients told of the erasure, rectification or restriction (Art. 19).
    #[serde(default)]
    pub recipients_told: Vec<String>,
    /// The report formats available (json, html, archive).
    #[serde(default)]
    pub reports: Vec<String>,
    #[serde(default)]
    pub refusal: Option<Refusal>,
    /// What each of the organisation's own systems (datasets) gave or had erased.
    #[serde(default)]
    pub systems: Vec<SystemOutcome>,
    /// What the datasets could not do automatically (a table with no
    /// restriction mark, a key that cannot be renamed): staff act by hand.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_hand: Vec<ByHand>,
}

/// A dataset's part of a request left for staff to carry out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ByHand {
    pub dataset: String,
    /// The table, key pattern or resource (empty: the whole dataset).
    pub what: String,
    /// Why, ending in what to do, such as "not restricted automatically: act by hand".
    pub why: String,
}

/// One dataset's part of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SystemOutcome {
    pub dataset: String,
    /// postgres, mysql, redis or http.
    pub system: String,
    /// Rows (or keys) found, for access; changed, for erasure.
    pub rows: u64,
    /// The parts of the export stored for the report.
    #[serde(default)]
    pub parts: u32,
    /// For erasure: rows changed per table, in the order done.
    #[serde(default)]
    pub changed: Vec<Changed>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Changed {
    pub table: String,
    pub rows: u64,
}

/// A pause for clarification, as kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseRecord {
    pub asked: Date,
    #[serde(default)]
    pub answered: Option<Date>,
}

/// An extension, as kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtensionRecord {
    pub reason: String,
    pub told: Date,
}

/// The authorized agent (Data Rights Protocol) a request came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentLink {
    /// The agent's id: only its token reaches the request.
    pub id: String,
    /// The protocol action asked for (`access`, `deletion`, ...).
    pub action: String,
    /// The agent's own id for the request, echoed in status answers.
    #[serde(default)]
    pub request_id: Option<String>,
    /// The regime the agent named, if any (the policy's regime applies).
    #[serde(default)]
    pub regime: Option<String>,
}

/// The open part of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// `api`, `call-centre`, or `drp` (an authorized agent's).
    pub channel: String,
    pub submitted_by: String,
    /// For an objection: the purpose objected to.
    #[serde(default)]
    pub purpose: Option<String>,
    #[serde(default)]
    pub identity: Option<Identity>,
    #[serde(default)]
    pub fee_at: Option<i64>,
    #[serde(default)]
    pub code: Option<Code>,
    #[serde(default)]
    pub pauses: Vec<PauseRecord>,
    #[serde(default)]
    pub extension: Option<ExtensionRecord>,
    #[serde(default)]
    pub outcome: Option<Outcome>,
    /// Set for a request an authorized agent submitted.
    #[serde(default)]
    pub agent: Option<AgentLink>,
}

/// A request as the engine works with it.
#[derive(Clone)]
pub struct Request {
    pub record: RequestRecord,
    pub kind: RequestKind,
    pub state: RequestState,
    pub meta: Meta,
}

fn corrupt(id: Uuid, what: &str) -> AppError {
    AppError::Corrupt(format!("requests row {id}, column {what}"))
}

impl Request {
    /// Decodes a stored request; anything undecodable is corrupt, never a default.
    pub fn from_record(record: RequestRecord) -> Result<Request, AppError> {
        let kind = RequestKind::parse(&record.kind).ok_or_else(|| corrupt(record.id, "kind"))?;
        let state =
            RequestState::parse(&record.state).ok_or_else(|| corrupt(record.id, "state"))?;
        let meta: Meta =
            serde_json::from_str(&record.meta).map_err(|_| corrupt(record.id, "meta"))?;
        Ok(Request {
            record,
            kind,
            state,
            meta,
        })
    }

    /// The record to write back: state and meta from here, version raised.
    pub fn to_record(&self, now: i64) -> Result<RequestRecord, AppError> {
        let meta = serde_json::to_string(&self.meta)
            .map_err(|_| AppError::Internal(Internal::WriteFailed))?;
        Ok(RequestRecord {
            state: self.state.as_str().to_string(),
            version: self.record.version + 1,
            updated_at: now,
            meta,
            ..self.record.clone()
        })
    }

    /// The statutory clock, from what is recorded.
    pub fn clock(&self) -> Clock {
        let date = |micros: i64| crate::read::time_of(micros).date();
        Clock {
            received: date(self.record.received_at),
            identity: self.meta.identity.as_ref().map(|i| date(i.at)),
            fee: self.meta.fee_at.map(date),
            pauses: self
                .meta
                .pauses
                .iter()
                .map(|p| Pause {
                    asked: p.asked,
                    answered: p.answered,
                })
                .collect(),
            extension: self.meta.extension.as_ref().map(|e| Extension {
                reason: e.reason.clone(),
                told: e.told,
            }),
        }
    }
}

/// The request's own data key, opened.
pub fn request_key(app: &App, record: &RequestRecord) -> Result<DataKey, AppError> {
    let wrapped = record
        .wrapped_key
        .as_ref()
        .ok_or_else(|| AppError::NotFound("this request's details were erased".into()))?;
    app.data_key(&record.id, wrapped)
}

pub fn seal(key: &DataKey, id: &Uuid, sealed: &Sealed) -> Result<Vec<u8>, AppError> {
    let bytes =
        serde_json::to_vec(sealed).map_err(|_| AppError::Internal(Internal::WriteFailed))?;
    Ok(key.seal(id, "request", &bytes))
}

pub fn open(app: &App, record: &RequestRecord) -> Result<Sealed, AppError> {
    let key = request_key(app, record)?;
    let bytes = key
        .open(&record.id, "request", &record.sealed)
        .map_err(|_| AppError::Internal(Internal::DecryptFailed))?;
    serde_json::from_slice(&bytes).map_err(|_| corrupt(record.id, "sealed"))
}

/// Seals a report under the request's key (the field name is the format).
pub fn seal_report(key: &DataKey, id: &Uuid, format: &str, bytes: &[u8]) -> Vec<u8> {
    key.seal(id, &format!("report:{format}"), bytes)
}

pub fn open_report(
    app: &App,
    record: &RequestRecord,
    format: &str,
    sealed: &[u8],
) -> Result<Vec<u8>, AppError> {
    let key = request_key(app, record)?;
    key.open(&record.id, &format!("report:{format}"), sealed)
        .map_err(|_| AppError::Internal(Internal::DecryptFailed))
}
