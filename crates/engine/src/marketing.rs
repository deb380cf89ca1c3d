//! The checks mailers call before every send: may this address (or subject)
//! be contacted on this channel? The suppression list is always honoured,
//! also for addresses Custodian does not otherwise know. The answer comes
//! from the same decision as every read, asked for the channel's own fields.

use super::consent::suppression_kind;
use super::read::{actor_of, state_for, subject_state};
use super::{App, AppError, Operation, Principal, Role};
use crate::audit_action::AuditAction;
use custodian_policy::compiled::{FieldSet, PurposeIx};
use custodian_policy::decision::{self, Reason, Request};
use custodian_policy::terms::{Channel, ChannelMode, FieldType};
use custodian_policy::values;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct CheckQuery {
    /// email, phone (live calls), sms, post or automated-call
    #[cfg_attr(feature = "openapi", param(schema_with = crate::schema::channel))]
    pub channel: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub subject: Option<Uuid>,
    /// One marketing purpose (default: any that uses the channel).
    #[serde(default)]
    pub purpose: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckAnswer {
    pub allowed: bool,
    /// For an allowed answer `allowed`, `soft_opt_in` (see `condition`) or
    /// `not_objected` (an unknown address on an opt-out channel); otherwise
    /// why not: suppressed, tps (a live call to a number on the TPS or
    /// Corporate TPS list), unknown (an address Custodian does not hold on a
    /// channel that needs consent), no_consent, consent_withdrawn, objected,
    /// no_relationship, subject_not_covered, restricted, erased.
    pub reason: String,
    pub purpose: Option<String>,
    /// Present when the answer rests on the soft opt-in (PECR reg.
    /// 22(3)(d)): what every message must do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
}

/// The marketing purposes a check considers, after the key's bindings.
pub struct Scope {
    pub(super) channel: Channel,
    purposes: Vec<PurposeIx>,
    /// Whether an address the vault does not hold may be contacted (opt-out channels).
    pub(super) unknown_allowed: bool,
}

/// What a check by `principal` on `channel` covers: the marketing purposes
/// by that channel (one, when named) that the key is bound to.
pub async fn scope(
    app: &App,
    principal: &Principal,
    operation: Operation,
    channel: &str,
    purpose: Option<&str>,
    now: OffsetDateTime,
) -> Result<Scope, AppError> {
    app.authorize(principal, operation, now).await?;
    let channel = Channel::parse(channel).ok_or_else(|| {
        AppError::Invalid(format!(
            "unknown channel `{channel}`; expected email, phone, sms, post or automated-call"
        ))
    })?;
    let doc = &app.policy.document;
    let mut purposes = Vec::new();
    for p in doc
        .purposes
        .iter()
        .filter(|p| p.marketing && p.channels.iter().any(|c| c.as_str() == channel.as_str()))
    {
        if purpose.is_some_and(|wanted| wanted != p.id.as_str()) {
            continue;
        }
        if principal.role == Role::Service && !principal.purposes.iter().any(|x| x == p.id.as_str())
        {
            continue;
        }
        if let Some(ix) = app.policy.compiled.purpose(&p.id) {
            purposes.push(ix);
        }
    }
    if purposes.is_empty() {
        return Err(match purpose {
            Some(p) if app.policy.compiled.purpose(p).is_none() => {
                AppError::UnknownPurpose(p.to_string())
            }
            _ => AppError::ForbiddenCode {
                code: "no_marketing_purpose",
                detail: format!(
                    "no marketing purpose by {} is open to this key",
                    channel.as_str()
                ),
            },
        });
    }
    let mode = doc
        .marketing
        .channels
        .iter()
        .find(|d| d.channel.as_str() == channel.as_str())
        .map(|d| *d.mode);
    // An address the vault does not hold may be contacted only on an
    // opt-out channel that PECR does not make opt-in: the soft opt-in needs
    // a known person with a sale relationship, never a stranger.
    Ok(Scope {
        channel,
        purposes,
        unknown_allowed: mode == Some(ChannelMode::OptOut) && !channel.needs_opt_in_under_pecr(),
    })
}

fn answer(allowed: bool, reason: &str, purpose: Option<String>) -> CheckAnswer {
    CheckAnswer {
        allowed,
        reason: reason.into(),
        purpose,
        condition: None,
    }
}

/// PECR reg. 22(3)(d), stated with every answer that rests on the soft opt-in.
pub const SOFT_OPT_IN_CONDITION: &str = "soft opt-in: every message must offer a simple means of refusing further marketing, free of charge except for the cost of sending the refusal";

/// One address or subject, already parsed.
pub enum Target {
    Address(FieldType, String),
    Subject(Uuid),
}

/// The kind of address a channel reaches people at; none for post, whose
/// addresses are not looked up or suppressed by value.
pub(super) fn address_kind(channel: Channel) -> Option<FieldType> {
    match channel {
        Channel::Email => Some(FieldType::Email),
        Channel::Phone | Channel::Sms | Channel::AutomatedCall => Some(FieldType::Phone),
        Channel::Post => None,
    }
}

pub(super) fn address_label(kind: FieldType) -> &'static str {
    if kind == FieldType::Email {
        "email"
    } else {
        "phone"
    }
}

/// The decision for one subject's state: the first purpose in scope that
/// allows the channel, or the first reason none does.
pub(super) fn decide(
    app: &App,
    principal: &Principal,
    scope: &Scope,
    state: &decision::SubjectState,
    now: OffsetDateTime,
) -> CheckAnswer {
    let policy = &app.policy.compiled;
    let mut first_refusal: Option<Reason> = None;
    for pix in &scope.purposes {
        let Some(table) = policy.purposes.get(pix.get()) else {
            continue;
        };
        // The fields this channel needs (an email address), or every field
        // the purpose uses when the channel names none.
        let own = table
            .channel_fields
            .get(scope.channel.index())
            .copied()
            .unwrap_or_default();
        let wanted: FieldSet = if own.is_empty() { table.fields } else { own };
        let request = Request {
            actor: actor_of(principal),
            purpose: *pix,
            wanted,
            recipient: None,
            channel: Some(scope.channel),
        };
        let d = decision::decide(policy, state, &request, now);
        if !d.allowed.is_empty() && d.refused().is_empty() {
            let mut yes = answer(true, "allowed", Some(table.id.clone()));
            // Email or SMS allowed without resting on consent: the soft opt-in.
            if table.basis != custodian_policy::terms::LegalBasis::Consent
                && scope.channel.soft_opt_in_applies()
            {
                yes.reason = "soft_opt_in".into();
                yes.condition = Some(SOFT_OPT_IN_CONDITION.into());
            }
            return yes;
        }
        if first_refusal.is_none() {
            first_refusal = d.refusals().map(|(_, r)| r).next();
        }
    }
    answer(
        false,
        first_refusal.map_or("no_consent", Reason::code),
        None,
    )
}

pub(crate) fn suppression_hash(app: &App, kind: FieldType, key: &str) -> (String, [u8; 32]) {
    let kind_name = suppression_kind(address_label(kind));
    let hash = app.keys.blind_index(&kind_name, key);
    (kind_name, hash)
}

/// The Telephone Preference Service lists (PECR reg. 21): `tps` for
/// individuals, `ctps` for corporate subscribers. Both are kept in the
/// suppression table under one keyed hash of the number, so a number is
/// screened against both with one hash.
pub const TPS_LISTS: [&str; 2] = ["tps", "ctps"];

pub fn tps_hash(app: &App, number: &str) -> [u8; 32] {
    app.keys.blind_index("tps", number)
}

/// Whether a number (E.164) is on either TPS list.
async fn on_tps(app: &App, number: &str) -> Result<bool, AppError> {
    let hash = tps_hash(app, number);
    for list in TPS_LISTS {
        if app.store.suppressed(list, &hash).await? {
            return Ok(true);
        }
    }
    Ok(false)
}

pub async fn check(
    app: &App,
    principal: &Principal,
    scope: &Scope,
    target: &Target,
    now: OffsetDateTime,
) -> Result<CheckAnswer, AppError> {
    // Live calls are never made to a number on the TPS lists.
    if scope.channel == Channel::Phone {
        if let Target::Address(FieldType::Phone, number) = target {
            if on_tps(app, number).await? {
                return Ok(answer(false, "tps", None));
            }
        }
    }
    match target {
        Target::Subject(id) => {
            let Some(record) = app.store.subject(*id).await? else {
                return Ok(answer(false, "unknown", None));
            };
            if scope.channel == Channel::Phone {
                for (kind, number) in super::consent::addresses(app, &record)? {
                    if kind == "phone" && on_tps(app, &number).await? {
                        return Ok(answer(false, "tps", None));
                    }
                }
            }
            let state = subject_state(app, &record).await?;
            Ok(decide(app, principal, scope, &state, now))
        }
        Target::Address(kind, key) => {
            let (kind_name, suppress_hash) = suppression_hash(app, *kind, key);
            let fields: Vec<&str> = app
                .policy
                .compiled
                .fields
                .iter()
                .filter(|f| f.kind == *kind)
                .map(|f| f.name.as_str())
                .collect();
            // The first lookup field and the suppression list in one query; any others after.
            for (n, field) in fields.iter().enumerate() {
                let hash = app.keys.blind_index(field, key);
                let found = if n == 0 {
                    let (suppressed, found) = app
                        .store
                        .check_lookup(field, &hash, &kind_name, &suppress_hash)
                        .await?;
                    if suppressed {
                        return Ok(answer(false, "suppressed", None));
                    }
                    found
                } else {
                    app.store.state_by_lookup(field, &hash).await?
                };
                if let Some(found) = found {
                    // Not erased: lookup rows exist only for live subjects (see LookupState).
                    let state = state_for(app, false, &found.state).await?;
                    return Ok(decide(app, principal, scope, &state, now));
                }
            }
            if fields.is_empty() && app.store.suppressed(&kind_name, &suppress_hash).await? {
                return Ok(answer(false, "suppressed", None));
            }
            Ok(if scope.unknown_allowed {
                answer(true, "not_objected", None)
            } else {
                answer(false, "unknown", None)
            })
        }
    }
}

/// Marketing checks counted per key, channel and outcome, in memory. A
/// check is not audited on its own: a write behind each would halve the
/// throughput and add nothing a regulator asks for (a campaign check is
/// audited once, with its list's hash). The counts are for the metrics
/// endpoint.
#[derive(Debug, Default)]
pub struct Counts {
    by: std::sync::Mutex<std::collections::HashMap<(String, &'static str, String), u64>>,
}

impl Counts {
    pub fn count(&self, key: &str, channel: Channel, outcome: &str) {
        // A poisoned lock only means another check panicked mid-count.
        let mut by = self
            .by
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *by.entry((key.to_string(), channel.as_str(), outcome.to_string()))
            .or_insert(0) += 1;
    }

    /// (key id, channel, outcome, count), sorted.
    pub fn snapshot(&self) -> Vec<(String, &'static str, String, u64)> {
        let by = self
            .by
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out: Vec<_> = by
            .iter()
            .map(|((k, c, o), n)| (k.clone(), *c, o.clone(), *n))
            .collect();
        out.sort();
        out
    }
}

pub async fn check_one(
    app: &App,
    principal: &Principal,
    q: CheckQuery,
    now: OffsetDateTime,
) -> Result<CheckAnswer, AppError> {
    let channel = Channel::parse(&q.channel);
    let answer = check_one_uncounted(app, principal, q, now).await?;
    if let Some(channel) = channel {
        let outcome = if answer.allowed {
            "allowed"
        } else {
            answer.reason.as_str()
        };
        app.marketing_counts
            .count(&principal.key_id, channel, outcome);
    }
    Ok(answer)
}

async fn check_one_uncounted(
    app: &App,
    principal: &Principal,
    q: CheckQuery,
    now: OffsetDateTime,
) -> Result<CheckAnswer, AppError> {
    let scope = scope(
        app,
        principal,
        Operation::MarketingCheck,
        &q.channel,
        q.purpose.as_deref(),
        now,
    )
    .await?;
    let target = match (&q.email, &q.phone, &q.subject) {
        (Some(e), None, None) => values::lookup_key(FieldType::Email, e)
            .map(|k| Target::Address(FieldType::Email, k))
            .ok_or_else(|| AppError::Invalid("the email address given is not valid".into()))?,
        (None, Some(p), None) => values::lookup_key(FieldType::Phone, p)
            .map(|k| Target::Address(FieldType::Phone, k))
            .ok_or_else(|| AppError::Invalid("the telephone number given is not valid".into()))?,
        (None, None, Some(s)) => Target::Subject(*s),
        _ => {
            return Err(AppError::Invalid(
                "give exactly one of `email`, `phone` or `subject`".into(),
            ));
        }
    };
    check(app, principal, &scope, &target, now).await
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SuppressRequest {
    /// email, phone, sms or automated-call
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schema::address_channel))]
    pub channel: String,
    /// Addresses never to market to, known to Custodian or not (at most 10,000).
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 10_000))]
    pub addresses: Vec<String>,
    /// Why, for the record (for example "unsubscribed by reply").
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SuppressResponse {
    pub suppressed: usize,
    /// Entries that are not valid addresses for the channel, by position.
    pub invalid: Vec<usize>,
}

/// Adds addresses to the suppression list: only keyed hashes are kept, so
/// the list can hold addresses of people Custodian holds nothing else about.
pub async fn suppress(
    app: &App,
    principal: &Principal,
    req: SuppressRequest,
    now: OffsetDateTime,
) -> Result<SuppressResponse, AppError> {
    app.authorize(principal, Operation::Suppress, now).await?;
    if req.addresses.is_empty() || req.addresses.len() > 10_000 {
        return Err(AppError::Invalid(
            "`addresses` must hold 1 to 10,000 entries".into(),
        ));
    }
    let channel = Channel::parse(&req.channel)
        .ok_or_else(|| AppError::Invalid(format!("unknown channel `{}`", req.channel)))?;
    let kind = address_kind(channel).ok_or_else(|| {
        AppError::Invalid(
            "postal addresses are suppressed through an objection by the subject".into(),
        )
    })?;
    let at = super::collect::micros(now);
    let kind_name = suppression_kind(address_label(kind));
    let mut ops = Vec::new();
    let mut invalid = Vec::new();
    for (i, a) in req.addresses.iter().enumerate() {
        match values::lookup_key(kind, a) {
            Some(k) => ops.push(custodian_vault::store::WriteOp::Suppress {
                kind: kind_name.clone(),
                hash: app.keys.blind_index(&kind_name, &k),
                at,
                reason: req
                    .reason
                    .clone()
                    .unwrap_or_else(|| "added to the suppression list".into()),
            }),
            None => invalid.push(i),
        }
    }
    let suppressed = ops.len();
    let batch = custodian_vault::store::Batch {
        ops,
        audit: vec![custodian_vault::audit::AuditDraft {
            at,
            actor: principal.actor(),
            action: AuditAction::MarketingSuppress.into(),
            purpose: None,
            subject: None,
            decision: "recorded".into(),
            reason: Some(format!("channel={} count={suppressed}", channel.as_str())),
        }],
        outbox: vec![],
    };
    super::error::written(app.store.write(batch).await)?;
    Ok(SuppressResponse {
        suppressed,
        invalid,
    })
}

/// A line of a TPS or CTPS file as an E.164 number: the first
/// comma-separated column, in international form or in UK national form
/// (`01632 960123`, read as +44). None for a header or anything else.
pub fn tps_number(line: &str) -> Option<String> {
    let first = line
        .split(',')
        .next()
        .unwrap_or_default()
        .trim()
        .trim_matches('"');
    let compact: String = first
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let international = if compact.starts_with('+') {
        compact
    } else if let Some(rest) = compact.strip_prefix("00") {
        format!("+{rest}")
    } else if let Some(rest) = compact.strip_prefix('0') {
        format!("+44{rest}")
    } else if compact.starts_with("44") {
        format!("+{compact}")
    } else {
        return None;
    };
    values::lookup_key(FieldType::Phone, &international)
}

/// Adds one batch of numbers to a TPS list (`tps` or `ctps`): keyed
/// hashes only. Returns how many lines were numbers.
pub async fn import_tps_batch(
    app: &App,
    list: &str,
    lines: &[String],
    now: OffsetDateTime,
) -> Result<usize, AppError> {
    if !TPS_LISTS.contains(&list) {
        return Err(AppError::Invalid(format!(
            "unknown list `{list}`; expected tps or ctps"
        )));
    }
    let at = super::collect::micros(now);
    let ops: Vec<_> = lines
        .iter()
        .filter_map(|l| tps_number(l))
        .map(|n| custodian_vault::store::WriteOp::Suppress {
            kind: list.to_string(),
            hash: tps_hash(app, &n),
            at,
            reason: format!("{list} list"),
        })
        .collect();
    let added = ops.len();
    if added > 0 {
        let batch = custodian_vault::store::Batch {
            ops,
            audit: vec![],
            outbox: vec![],
        };
        super::error::written(app.store.write(batch).await)?;
    }
    Ok(added)
}

/// The one audit entry of a TPS import: the list, the numbers loaded, the
/// lines that were not numbers, and the SHA-256 of the file.
pub async fn record_tps_import(
    app: &App,
    list: &str,
    loaded: u64,
    skipped: u64,
    file_sha256: [u8; 32],
    now: OffsetDateTime,
) -> Result<(), AppError> {
    let entry = custodian_vault::audit::AuditDraft {
        at: super::collect::micros(now),
        actor: "cli".into(),
        action: AuditAction::MarketingTpsImport.into(),
        purpose: None,
        subject: None,
        decision: "recorded".into(),
        reason: Some(format!(
            "list={list} numbers={loaded} skipped={skipped} file_sha256={}",
            custodian_vault::audit::hex(&file_sha256)
        )),
    };
    super::error::written(
        app.store
            .write(custodian_vault::store::Batch::audit_only(entry))
            .await,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Counts, tps_number};
    use custodian_policy::terms::Channel;

    #[test]
    fn checks_are_counted_per_key_channel_and_outcome() {
        let counts = Counts::default();
        counts.count("ck_a", Channel::Email, "allowed");
        counts.count("ck_a", Channel::Email, "allowed");
        counts.count("ck_a", Channel::Email, "no_consent");
        counts.count("ck_b", Channel::Phone, "tps");
        assert_eq!(
            counts.snapshot(),
            [
                ("ck_a".to_string(), "email", "allowed".to_string(), 2),
                ("ck_a".to_string(), "email", "no_consent".to_string(), 1),
                ("ck_b".to_string(), "phone", "tps".to_string(), 1),
            ]
        );
    }

    #[test]
    fn tps_lines_read_as_e164_numbers() {
        assert_eq!(tps_number("01632960123").as_deref(), Some("+441632960123"));
        assert_eq!(
            tps_number("01632 960123,x").as_deref(),
            Some("+441632960123")
        );
        assert_eq!(
            tps_number("+44 1632 960123").as_deref(),
            Some("+441632960123")
        );
        assert_eq!(tps_number("441632960123").as_deref(), Some("+441632960123"));
        assert_eq!(tps_number("number"), None);
        assert_eq!(tps_number(""), None);
    }
}
