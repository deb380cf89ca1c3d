//! What the store keeps and what a write asks of it.

use crate::audit::AuditDraft;
use crate::crypto::WrappedKey;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Unix time in microseconds.
pub type Micros = i64;

pub fn now_micros() -> Micros {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000)
        .unwrap_or(i64::MAX)
}

/// Where a datum came from (Art. 14, and promise P5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// `web`, `app`, `call-centre` or `import`.
    pub channel: String,
    /// The call-centre agent (an API key id) who entered it.
    pub agent: Option<String>,
    pub collected_at: Micros,
    pub purpose: String,
    pub policy_version: String,
}

/// One field of one subject, sealed under the subject's data key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredField {
    pub name: String,
    pub sealed: Vec<u8>,
    pub provenance: Provenance,
}

/// A value replaced by rectification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoricField {
    pub field: StoredField,
    pub replaced_at: Micros,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRelationship {
    pub id: Uuid,
    pub kind: String,
    pub status: RelationshipStatus,
    pub started_at: Micros,
    pub ended_at: Option<Micros>,
    pub reference: Option<String>,
}

/// Where a relationship stands. Stored as its name (`active`, `ended`), as
/// it always was, so rows written before this type read unchanged; any
/// other stored name is refused as corrupt, never read as either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case", try_from = "String", into = "&'static str")]
pub enum RelationshipStatus {
    Active,
    Ended,
}

impl RelationshipStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RelationshipStatus::Active => "active",
            RelationshipStatus::Ended => "ended",
        }
    }
}

impl From<RelationshipStatus> for &'static str {
    fn from(status: RelationshipStatus) -> Self {
        status.as_str()
    }
}

impl TryFrom<String> for RelationshipStatus {
    type Error = &'static str;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        match name.as_str() {
            "active" => Ok(RelationshipStatus::Active),
            "ended" => Ok(RelationshipStatus::Ended),
            _ => Err("a relationship status is `active` or `ended`"),
        }
    }
}

/// A subject's state, as the decision needs it: relationships, restriction,
/// and the consent preferences derived from the ledger. Stored as postcard
/// (format 4: format 3 with what was lifted of each objection), about a
/// quarter of the size of the JSON of format 2: it is read by every marketing
/// check and copied into every lookup row. Formats 3, 2 and 1 (the first
/// schema's postcard) are still read, and a row moves to format 4 when it is
/// next written. Postcard has no field names, so a field added later needs
/// format 5, with format 4 still read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectStateRecord {
    #[serde(default)]
    pub relationships: Vec<StoredRelationship>,
    #[serde(default)]
    pub restricted: bool,
    #[serde(default)]
    pub preferences: super::consent::Preferences,
}

/// The shape of format 3 (objections without what was lifted of them),
/// kept only to read it.
#[derive(Deserialize)]
struct StateV3 {
    relationships: Vec<StoredRelationship>,
    restricted: bool,
    preferences: PreferencesV3,
}

#[derive(Deserialize)]
struct PreferencesV3 {
    consents: Vec<super::consent::StoredConsent>,
    objections: Vec<ObjectionV3>,
}

#[derive(Deserialize)]
struct ObjectionV3 {
    purpose: Option<String>,
    channel: Option<String>,
    at: Micros,
    event: Uuid,
    method: String,
}

impl From<StateV3> for SubjectStateRecord {
    fn from(v3: StateV3) -> SubjectStateRecord {
        SubjectStateRecord {
            relationships: v3.relationships,
            restricted: v3.restricted,
            preferences: super::consent::Preferences {
                consents: v3.preferences.consents,
                objections: v3
                    .preferences
                    .objections
                    .into_iter()
                    .map(|o| super::consent::StoredObjection {
                        purpose: o.purpose,
                        channel: o.channel,
                        at: o.at,
                        event: o.event,
                        method: o.method,
                        lifted: Vec::new(),
                    })
                    .collect(),
            },
        }
    }
}

/// The shape of format 1, kept only to read it.
#[derive(Deserialize, Default)]
struct StateV1 {
    relationships: Vec<StoredRelationship>,
    restricted: bool,
}

pub(crate) fn encode_state(state: &SubjectStateRecord) -> Vec<u8> {
    // Postcard into a Vec fails only for types it cannot express, which these
    // are not; should it ever, format 2 still says everything.
    postcard::to_extend(state, vec![4u8]).unwrap_or_else(|_| {
        let mut out = vec![2u8];
        out.extend(serde_json::to_vec(state).unwrap_or_default());
        out
    })
}

pub(crate) fn decode_state(bytes: &[u8]) -> Result<SubjectStateRecord, String> {
    match bytes.split_first() {
        // Every format starts with its number: nothing at all was never
        // written, and read as "no preferences" it would allow an opt-out
        // channel.
        None => Err("is empty".into()),
        Some((4, rest)) => postcard::from_bytes(rest).map_err(|e| e.to_string()),
        Some((3, rest)) => postcard::from_bytes::<StateV3>(rest)
            .map(SubjectStateRecord::from)
            .map_err(|e| e.to_string()),
        Some((2, rest)) => serde_json::from_slice(rest).map_err(|e| e.to_string()),
        Some((1, _)) => {
            let v1: StateV1 = decode(bytes)?;
            Ok(SubjectStateRecord {
                relationships: v1.relationships,
                restricted: v1.restricted,
                preferences: Default::default(),
            })
        }
        Some((v, _)) => Err(format!("unknown state format {v}")),
    }
}

/// The state copy a lookup row carries. A row without one (NULL or empty) is
/// refused, never read as a subject without preferences: for an opt-out
/// channel that would mean "allowed".
pub(crate) fn lookup_state(
    bytes: Option<&[u8]>,
    at: &Place,
) -> Result<SubjectStateRecord, super::StoreError> {
    match bytes {
        Some(bytes) => decode_state(bytes).map_err(|why| at.corrupt("state", why)),
        None => Err(at.corrupt("state", "is missing")),
    }
}

/// Where a stored value was read, for a `Corrupt` error: the table and, when
/// it is known, the row's id (with the column, given to `corrupt`). It never
/// holds a stored value, so an error built from it names no personal data.
#[derive(Debug, Clone)]
pub(crate) struct Place {
    table: &'static str,
    row: Option<String>,
}

impl Place {
    /// A row of `table` whose id is not known (or not to be named).
    pub(crate) fn table(table: &'static str) -> Place {
        Place { table, row: None }
    }

    /// Row `id` of `table`; `id` must be an identifier, never personal data.
    pub(crate) fn row(table: &'static str, id: impl std::fmt::Display) -> Place {
        Place {
            table,
            row: Some(id.to_string()),
        }
    }

    /// The same table, now that the row's id has been read.
    pub(crate) fn with_row(&self, id: impl std::fmt::Display) -> Place {
        Place::row(self.table, id)
    }

    /// A stored value of `column` here that cannot be decoded: `why` says
    /// how, and must not quote the value.
    pub(crate) fn corrupt(&self, column: &str, why: impl std::fmt::Display) -> super::StoreError {
        super::StoreError::Corrupt(match &self.row {
            Some(id) => format!("{} row {id}, column {column}: {why}", self.table),
            None => format!("{}, column {column}: {why}", self.table),
        })
    }
}

/// Why JSON did not parse, without the text: serde's messages may quote it.
pub(crate) fn json_why(e: &serde_json::Error) -> String {
    format!(
        "is not the expected JSON ({:?} error at line {}, column {})",
        e.classify(),
        e.line(),
        e.column()
    )
}

/// One subject as loaded by a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectRecord {
    pub id: Uuid,
    /// `None` once the subject is erased and the key destroyed.
    pub wrapped_key: Option<WrappedKey>,
    pub created_at: Micros,
    pub erased_at: Option<Micros>,
    pub fields: Vec<StoredField>,
    pub state: SubjectStateRecord,
}

/// A blind-index entry: `kind` (email, phone) and the keyed hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    pub kind: String,
    pub hash: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKeyRecord {
    /// The public part of the key, shown in lists and audit entries.
    pub id: String,
    #[serde(skip)]
    pub hash: [u8; 32],
    pub role: String,
    pub purposes: Vec<String>,
    pub recipient: Option<String>,
    pub label: Option<String>,
    pub created_at: Micros,
    pub revoked_at: Option<Micros>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    pub at: Micros,
    pub topic: String,
    pub subject: Option<Uuid>,
    /// JSON; ids and names only, never personal data.
    pub payload: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxRow {
    pub id: i64,
    pub at: Micros,
    pub topic: String,
    pub subject: Option<Uuid>,
    pub payload: String,
}

/// One change a request makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    CreateSubject {
        id: Uuid,
        wrapped_key: WrappedKey,
        created_at: Micros,
        fields: Vec<StoredField>,
        lookups: Vec<Lookup>,
    },
    /// Adds or replaces fields; a replaced value moves to the history table,
    /// still sealed. Lookups replace the subject's entry of the same kind.
    PutFields {
        subject: Uuid,
        fields: Vec<StoredField>,
        lookups: Vec<Lookup>,
        at: Micros,
    },
    /// Adds a relationship, or replaces the one with the same id.
    PutRelationship {
        subject: Uuid,
        relationship: StoredRelationship,
    },
    CreateApiKey(ApiKeyRecord),
    RevokeApiKey {
        id: String,
        at: Micros,
    },
    /// Appends a consent event and folds it into its holder's preferences.
    RecordConsent(super::consent::ConsentEvent),
    /// Adds a keyed hash of an address to the suppression list.
    Suppress {
        kind: String,
        hash: [u8; 32],
        at: Micros,
        reason: String,
    },
    Unsuppress {
        kind: String,
        hash: [u8; 32],
    },
    /// A visitor becomes a subject: its choices are recorded again for the
    /// subject (`events`, method `visitor-link`) and the visitor points to it.
    LinkVisitor {
        visitor: String,
        subject: Uuid,
        events: Vec<super::consent::ConsentEvent>,
    },
    /// Moves a subject's data key to another key-encryption key. Applied only
    /// if the stored key is still `from`: a subject erased or rewrapped in
    /// the meantime is left as it is.
    Rewrap {
        subject: Uuid,
        from: WrappedKey,
        to: WrappedKey,
    },
    /// Records the policy a server runs with; the same version with other
    /// content is refused.
    PutPolicyVersion {
        version: String,
        effective: String,
        sha256: [u8; 32],
        source: String,
        at: Micros,
    },
    /// The register of data-subject requests and its tasks.
    Request(super::requests::RequestOp),
    /// Authorized agents of the Data Rights Protocol.
    Agent(super::agents::AgentOp),
    /// Expiries, legal holds, rule reviews and the sweep's lease.
    Retention(super::retention::RetentionOp),
}

/// Everything one request writes: applied together or not at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub ops: Vec<WriteOp>,
    pub audit: Vec<AuditDraft>,
    pub outbox: Vec<OutboxEvent>,
}

impl Batch {
    /// A batch that only records an audit entry (a read, a refusal).
    pub fn audit_only(entry: AuditDraft) -> Batch {
        Batch {
            ops: Vec::new(),
            audit: vec![entry],
            outbox: Vec::new(),
        }
    }
}

/// What a committed batch was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The sequence numbers of its audit entries.
    pub audit_seqs: Vec<i64>,
    /// For a batch with a `RecordConsent` op, the preferences the last one
    /// left its holder with, as folded inside the transaction (so a caller
    /// need not read them back). None otherwise, also for `LinkVisitor`.
    pub preferences: Option<super::consent::Preferences>,
    /// Tasks leased by a `RequestOp::ClaimTasks` of the batch.
    pub claimed: Vec<super::requests::TaskRecord>,
}

/// The stored encoding of fields and state: a format byte, then postcard.
pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let out = vec![1u8];
    match postcard::to_extend(value, out) {
        Ok(v) => v,
        Err(_) => vec![1u8],
    }
}

pub(crate) fn decode<T: for<'de> Deserialize<'de> + Default>(bytes: &[u8]) -> Result<T, String> {
    match bytes.split_first() {
        None => Err("is empty".into()),
        Some((1, [])) => Ok(T::default()),
        Some((1, rest)) => postcard::from_bytes(rest).map_err(|e| e.to_string()),
        Some((v, _)) => Err(format!("unknown record format {v}")),
    }
}

/// A subject reached through a blind index, with just what a marketing
/// decision needs (no sealed fields): the copy of its state the lookup row
/// carries. Lookup rows exist only for live subjects (erasure must remove
/// them and put the addresses on the suppression list), so a subject found
/// this way is never an erased one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupState {
    pub hash: [u8; 32],
    pub subject: Uuid,
    pub state: SubjectStateRecord,
}

/// A key's purposes as stored. Never a fallback such as `[]`: a processor
/// key stored as bound to no purpose would receive every purpose's data.
pub(crate) fn purposes_json(purposes: &[String]) -> Result<String, super::BatchError> {
    serde_json::to_string(purposes)
        .map_err(|_| super::BatchError::Store("a key's purposes could not be encoded".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::consent::{Preferences, StoredConsent, StoredConsentStatus, StoredObjection};

    #[test]
    fn a_relationship_status_is_stored_as_the_name_it_always_was() {
        for (status, name) in [
            (RelationshipStatus::Active, "active"),
            (RelationshipStatus::Ended, "ended"),
        ] {
            assert_eq!(
                postcard::to_allocvec(&status).ok(),
                postcard::to_allocvec(name).ok()
            );
            assert_eq!(
                postcard::from_bytes::<RelationshipStatus>(&postcard::to_allocvec(name).unwrap())
                    .ok(),
                Some(status)
            );
        }
        let stored = postcard::to_allocvec("paused").unwrap();
        assert!(postcard::from_bytes::<RelationshipStatus>(&stored).is_err());
    }

    fn state() -> SubjectStateRecord {
        SubjectStateRecord {
            relationships: vec![StoredRelationship {
                id: Uuid::from_u128(7),
                kind: "account".into(),
                status: RelationshipStatus::Active,
                started_at: 1,
                ended_at: None,
                reference: Some("ACC-1".into()),
            }],
            restricted: true,
            preferences: Preferences {
                consents: vec![StoredConsent {
                    purpose: "requested-communications".into(),
                    channel: Some("email".into()),
                    status: StoredConsentStatus::Given,
                    at: 1_796_063_600_809_384,
                    policy_version: "2.0".into(),
                    event: Uuid::from_u128(9),
                    expires_at: Some(1_900_000_000_000_000),
                }],
                objections: vec![StoredObjection {
                    purpose: None,
                    channel: Some("post".into()),
                    at: 5,
                    event: Uuid::from_u128(10),
                    method: "web-form".into(),
                    lifted: Vec::new(),
                }],
            },
        }
    }

    /// Format 3 has no field names: a struct that changes shape would read
    /// old rows wrongly. These bytes pin the shape; a change that breaks them
    /// needs a format 4 (with 3 still read), not a new expectation here.
    #[test]
    fn format_3_rows_read_and_format_4_bytes_do_not_change() {
        let pinned: &[u8] = &[
            3, 1, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 7, 97, 99, 99, 111, 117, 110,
            116, 6, 97, 99, 116, 105, 118, 101, 2, 0, 1, 5, 65, 67, 67, 45, 49, 1, 1, 24, 114, 101,
            113, 117, 101, 115, 116, 101, 100, 45, 99, 111, 109, 109, 117, 110, 105, 99, 97, 116,
            105, 111, 110, 115, 1, 5, 101, 109, 97, 105, 108, 5, 103, 105, 118, 101, 110, 208, 214,
            220, 206, 212, 224, 176, 6, 3, 50, 46, 48, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 9, 1, 128, 128, 150, 145, 199, 130, 224, 6, 1, 0, 1, 4, 112, 111, 115, 116, 10,
            16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 8, 119, 101, 98, 45, 102, 111,
            114, 109,
        ];
        // Format 3 rows, written before objections could be lifted, still read.
        assert_eq!(decode_state(pinned), Ok(state()));
        // Format 4 is format 3 with the list of what was lifted (empty: one 0).
        let mut v4 = pinned.to_vec();
        v4[0] = 4;
        v4.push(0);
        assert_eq!(encode_state(&state()), v4);
        assert_eq!(decode_state(&v4), Ok(state()));
        assert_eq!(
            encode_state(&SubjectStateRecord::default()),
            [4, 0, 0, 0, 0]
        );
    }

    #[test]
    fn state_is_written_as_format_4_and_every_format_reads() {
        let state = state();
        let written = encode_state(&state);
        assert_eq!(written.first(), Some(&4));
        assert_eq!(decode_state(&written), Ok(state.clone()));
        let mut json = vec![2u8];
        json.extend(serde_json::to_vec(&state).unwrap());
        assert_eq!(decode_state(&json), Ok(state.clone()));
        assert!(
            written.len() * 2 < json.len(),
            "{} vs {}",
            written.len(),
            json.len()
        );
        let v1 = encode(&(state.relationships.clone(), true));
        let read = decode_state(&v1).unwrap();
        assert_eq!(
            (read.relationships, read.restricted),
            (state.relationships, true)
        );
        assert!(decode_state(&[5, 0]).is_err());
        assert!(decode_state(&[3, 0xff]).is_err());
        assert!(decode_state(&[4, 0xff]).is_err());
    }
}
