//! The decision: may this actor, for this purpose (and recipient), read these
//! fields of this subject, given the subject's consents, relationships,
//! objections and restriction, at this moment?
//!
//! A pure function of the compiled policy, a snapshot of one subject's state,
//! the request and the time. No I/O, no clock, no allocation.

use crate::compiled::*;
use crate::terms::*;
use serde::Serialize;
use time::OffsetDateTime;

/// Why a field was refused. Stable, machine-readable codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Erased,
    Restricted,
    CategoryNotNeeded,
    RecipientNotAllowed,
    UnsafeTransfer,
    Objected,
    ConsentWithdrawn,
    NoConsent,
    NoContract,
    NoRelationship,
    SubjectNotCovered,
    CookieConsentRefused,
}

impl Reason {
    pub const ALL: [Reason; 12] = [
        Reason::Erased,
        Reason::Restricted,
        Reason::CategoryNotNeeded,
        Reason::RecipientNotAllowed,
        Reason::UnsafeTransfer,
        Reason::Objected,
        Reason::ConsentWithdrawn,
        Reason::NoConsent,
        Reason::NoContract,
        Reason::NoRelationship,
        Reason::SubjectNotCovered,
        Reason::CookieConsentRefused,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Reason::Erased => "erased",
            Reason::Restricted => "restricted",
            Reason::CategoryNotNeeded => "category_not_needed",
            Reason::RecipientNotAllowed => "recipient_not_allowed",
            Reason::UnsafeTransfer => "unsafe_transfer",
            Reason::Objected => "objected",
            Reason::ConsentWithdrawn => "consent_withdrawn",
            Reason::NoConsent => "no_consent",
            Reason::NoContract => "no_contract",
            Reason::NoRelationship => "no_relationship",
            Reason::SubjectNotCovered => "subject_not_covered",
            Reason::CookieConsentRefused => "cookie_consent_refused",
        }
    }
}

/// Who asks. A processor actor may only receive what its own recipient entry allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Staff,
    Service,
    Processor(RecipientIx),
    Subject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentStatus {
    Given,
    Renewed,
    Refused,
    Withdrawn,
    Expired,
    Invalidated,
    /// PECR reg. 22(3)(c): a simple means of refusing marketing was offered
    /// when the details were collected, and not taken. Never consent.
    RefusalOffered,
}

/// The current consent state for one purpose (and, for marketing, one channel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsentState {
    pub purpose: PurposeIx,
    pub channel: Option<Channel>,
    pub status: ConsentStatus,
    pub expires_at: Option<OffsetDateTime>,
}

impl ConsentState {
    fn is_live(&self, now: OffsetDateTime) -> bool {
        matches!(self.status, ConsentStatus::Given | ConsentStatus::Renewed)
            && self.expires_at.is_none_or(|e| now < e)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelationshipState {
    pub kind: RelationshipIx,
    pub started_at: OffsetDateTime,
    pub ended_at: Option<OffsetDateTime>,
}

impl RelationshipState {
    fn is_active(&self, now: OffsetDateTime) -> bool {
        self.started_at <= now && self.ended_at.is_none_or(|end| now < end)
    }
}

/// An Art. 21 objection: to one purpose, or (purpose `None`) to all direct
/// marketing; optionally to one channel only. A Global Privacy Control
/// signal (`gpc`) reaches only the purposes in its scope (sale or sharing,
/// targeted advertising, third-party marketing cookies). `lifted` lists
/// where the person lifted it since: a purpose (`None`: every one) on a
/// channel (`None`: every one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Objection {
    pub purpose: Option<PurposeIx>,
    pub channel: Option<Channel>,
    pub gpc: bool,
    pub lifted: Vec<(Option<PurposeIx>, Option<Channel>)>,
}

/// A snapshot of one subject's state, as loaded by the store.
#[derive(Debug, Clone, Default)]
pub struct SubjectState {
    pub erased: bool,
    pub restricted: bool,
    pub consents: Vec<ConsentState>,
    pub relationships: Vec<RelationshipState>,
    pub objections: Vec<Objection>,
    /// Legal holds keep data from deletion; they do not widen reads.
    pub legal_holds: u32,
    /// The Art. 18(2) exception this one read states (with a reason the
    /// caller recorded). Under restriction nothing but storage is allowed,
    /// unless the read states the exception its purpose may use.
    pub restriction_exception: Option<crate::terms::RestrictionGround>,
}

#[derive(Debug, Clone, Copy)]
pub struct Request {
    pub actor: Actor,
    pub purpose: PurposeIx,
    pub wanted: FieldSet,
    pub recipient: Option<RecipientIx>,
    /// For marketing: the channel about to be used.
    pub channel: Option<Channel>,
}

/// The answer: allowed fields, refused fields each with one reason, and the
/// allowed fields that must be pseudonymised before they leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: FieldSet,
    pub pseudonymise: FieldSet,
    refused: [FieldSet; Reason::ALL.len()],
}

impl Decision {
    pub fn refused_for(&self, reason: Reason) -> FieldSet {
        self.refused
            .get(reason as usize)
            .copied()
            .unwrap_or_default()
    }

    pub fn refused(&self) -> FieldSet {
        self.refused
            .iter()
            .fold(FieldSet::EMPTY, |a, b| a.union(*b))
    }

    /// The reason a field was refused, if it was.
    pub fn reason(&self, field: FieldIx) -> Option<Reason> {
        Reason::ALL
            .into_iter()
            .find(|r| self.refused_for(*r).contains(field))
    }

    pub fn refusals(&self) -> impl Iterator<Item = (FieldIx, Reason)> + '_ {
        Reason::ALL
            .into_iter()
            .flat_map(move |r| self.refused_for(r).iter().map(move |f| (f, r)))
    }
}

/// Refuses what is still pending with `reason`, leaving the rest pending.
struct Ledger {
    pending: FieldSet,
    decision: Decision,
}

impl Ledger {
    fn refuse(&mut self, fields: FieldSet, reason: Reason) {
        let fields = fields.intersect(self.pending);
        if let Some(slot) = self.decision.refused.get_mut(reason as usize) {
            *slot = slot.union(fields);
        }
        self.pending = self.pending.minus(fields);
    }

    fn refuse_all(&mut self, reason: Reason) {
        self.refuse(self.pending, reason);
    }
}

pub fn decide(
    policy: &CompiledPolicy,
    state: &SubjectState,
    request: &Request,
    now: OffsetDateTime,
) -> Decision {
    let wanted = request.wanted.intersect(policy.all_fields);
    let mut ledger = Ledger {
        pending: wanted,
        decision: Decision {
            allowed: FieldSet::EMPTY,
            pseudonymise: FieldSet::EMPTY,
            refused: [FieldSet::EMPTY; Reason::ALL.len()],
        },
    };
    let Some(purpose) = policy.purposes.get(request.purpose.get()) else {
        ledger.refuse_all(Reason::CategoryNotNeeded);
        return ledger.decision;
    };
    if state.erased {
        ledger.refuse_all(Reason::Erased);
        return ledger.decision;
    }
    let excepted = purpose.restriction_ground.is_some()
        && purpose.restriction_ground == state.restriction_exception;
    if state.restricted && !excepted {
        ledger.refuse_all(Reason::Restricted);
        return ledger.decision;
    }
    ledger.refuse(wanted.minus(purpose.fields), Reason::CategoryNotNeeded);

    let recipient = match (request.actor, request.recipient) {
        (Actor::Processor(own), Some(asked)) if own != asked => {
            ledger.refuse_all(Reason::RecipientNotAllowed);
            return ledger.decision;
        }
        (Actor::Processor(own), _) => Some(own),
        (_, asked) => asked,
    };
    let mut form = DisclosureForm::Identified;
    if let Some(rix) = recipient {
        let allowed_for_purpose = purpose.discloses_to(rix);
        match policy.recipients.get(rix.get()) {
            Some(table) if allowed_for_purpose => {
                ledger.refuse(
                    ledger.pending.minus(table.fields),
                    Reason::RecipientNotAllowed,
                );
                if !transfer_allowed(table.transfer, now) {
                    ledger.refuse_all(Reason::UnsafeTransfer);
                }
                form = table.form;
            }
            _ => ledger.refuse_all(Reason::RecipientNotAllowed),
        }
    }

    legal_basis(policy, purpose, request, state, now, &mut ledger);
    cookie_gates(policy, purpose, request.purpose, state, now, &mut ledger);

    ledger.decision.allowed = ledger.pending;
    if form != DisclosureForm::Identified {
        ledger.decision.pseudonymise = ledger.pending;
    }
    ledger.decision
}

/// Whether a recipient's transfer rule allows a disclosure at `now` (the
/// one rule, kept with the disclosure gate).
pub use crate::disclosure::transfer_allowed;

fn objected(
    state: &SubjectState,
    purpose: &PurposeTable,
    pix: PurposeIx,
    channel: Option<Channel>,
) -> bool {
    state.objections.iter().any(|o| {
        let purpose_matches = match o.purpose {
            Some(p) => p == pix,
            // GPC: sale or sharing, targeted advertising, third-party
            // marketing cookies; not first-party marketing.
            None if o.gpc => purpose.gpc_scope,
            // An objection to direct marketing reaches every marketing purpose.
            None => purpose.marketing,
        };
        let channel_matches = o.channel.is_none() || channel.is_none() || o.channel == channel;
        let lifted = o.lifted.iter().any(|(p, c)| {
            p.is_none_or(|p| p == pix) && (c.is_none() || (channel.is_some() && *c == channel))
        });
        purpose_matches && channel_matches && !lifted
    })
}

/// PECR reg. 6: data produced by cookies that need consent is used only
/// while that consent is not refused or withdrawn, whatever basis the using
/// purpose names (legitimate interests cannot take over the same data).
fn cookie_gates(
    policy: &CompiledPolicy,
    purpose: &PurposeTable,
    pix: PurposeIx,
    state: &SubjectState,
    now: OffsetDateTime,
    ledger: &mut Ledger,
) {
    if purpose.independent_of_cookies {
        return;
    }
    for gate in &policy.cookie_gates {
        if gate.purpose == pix || gate.fields.intersect(ledger.pending).is_empty() {
            continue;
        }
        let refused = state
            .consents
            .iter()
            .filter(|c| c.purpose == gate.purpose && c.channel.is_none())
            .any(|c| !c.is_live(now));
        if refused {
            ledger.refuse(gate.fields, Reason::CookieConsentRefused);
        }
    }
}

/// A marketing purpose that does not rest on consent, on one channel. Post,
/// and live calls on an opt-out channel, are allowed unless objected to.
/// Email and SMS (PECR reg. 22), and any channel the policy makes opt-in,
/// need consent, which such a purpose cannot have, or the soft opt-in (reg.
/// 22(3), email and SMS only): the policy turns it on, the purpose markets
/// the controller's own similar products, the subject's details were
/// obtained in a sale or its negotiation, and the chance to refuse was
/// offered at collection (recorded) and not taken since.
fn without_consent(
    policy: &CompiledPolicy,
    purpose: &PurposeTable,
    pix: PurposeIx,
    channel: Channel,
    state: &SubjectState,
    now: OffsetDateTime,
) -> Result<(), Reason> {
    let opt_in = channel.needs_opt_in_under_pecr()
        || policy.channel_modes.get(channel.index()).copied().flatten() == Some(ChannelMode::OptIn);
    if !opt_in {
        return Ok(());
    }
    let record = state
        .consents
        .iter()
        .find(|c| c.purpose == pix && c.channel == Some(channel));
    let sale = state.relationships.iter().any(|r| {
        1u64.checked_shl(u32::from(r.kind.0))
            .is_some_and(|bit| policy.sale & bit != 0)
            && r.started_at <= now
    });
    let soft_opt_in = policy.soft_opt_in
        && purpose.similar_products
        && channel.soft_opt_in_applies()
        && sale
        && record.is_some_and(|c| c.status == ConsentStatus::RefusalOffered);
    match record {
        _ if soft_opt_in => Ok(()),
        Some(c) if c.status == ConsentStatus::Withdrawn => Err(Reason::ConsentWithdrawn),
        _ => Err(Reason::NoConsent),
    }
}

/// Live, or why not.
fn consent(
    state: &SubjectState,
    pix: PurposeIx,
    channel: Option<Channel>,
    now: OffsetDateTime,
) -> Result<(), Reason> {
    let mut withdrawn = false;
    for c in state
        .consents
        .iter()
        .filter(|c| c.purpose == pix && c.channel == channel)
    {
        if c.is_live(now) {
            return Ok(());
        }
        withdrawn |= c.status == ConsentStatus::Withdrawn;
    }
    Err(if withdrawn {
        Reason::ConsentWithdrawn
    } else {
        Reason::NoConsent
    })
}

fn legal_basis(
    policy: &CompiledPolicy,
    purpose: &PurposeTable,
    request: &Request,
    state: &SubjectState,
    now: OffsetDateTime,
    ledger: &mut Ledger,
) {
    let pix = request.purpose;
    // The data-subject types the purpose serves: a subject held only in
    // relationships of other types is outside it. (A subject with no
    // relationship has no known type.)
    if purpose.subjects != 0 {
        let types = state.relationships.iter().fold(0u64, |bits, r| {
            bits | policy
                .relationship_subjects
                .get(usize::from(r.kind.0))
                .copied()
                .unwrap_or(0)
        });
        if types != 0 && types & purpose.subjects == 0 {
            return ledger.refuse_all(Reason::SubjectNotCovered);
        }
    }
    // The relationships a purpose requires ground a contract below; on
    // any other basis they are required all the same.
    if purpose.basis != LegalBasis::Contract
        && purpose.relationships != 0
        && !state.relationships.iter().any(|r| {
            1u64.checked_shl(u32::from(r.kind.0))
                .is_some_and(|bit| purpose.relationships & bit != 0)
                && r.is_active(now)
        })
    {
        return ledger.refuse_all(Reason::NoRelationship);
    }
    if purpose.channels != 0 {
        return per_channel(policy, purpose, request, state, now, ledger);
    }
    // Art. 21(1) and (2): objection reaches legitimate-interest and public-task
    // processing, and direct marketing whatever its basis.
    let objectable = purpose.marketing
        || matches!(
            purpose.basis,
            LegalBasis::LegitimateInterest | LegalBasis::PublicTask
        );
    if objectable && objected(state, purpose, pix, None) {
        return ledger.refuse_all(Reason::Objected);
    }
    match purpose.basis {
        LegalBasis::Consent => {
            if let Err(reason) = consent(state, pix, None, now) {
                ledger.refuse_all(reason);
            }
        }
        LegalBasis::Contract => {
            // Any relationship grounds a purpose that names none, except the
            // steps before a contract: those ground only the purposes that
            // name them (Art. 6(1)(b), second limb).
            let grounded = state.relationships.iter().any(|r| {
                let bit = 1u64.checked_shl(u32::from(r.kind.0)).unwrap_or(0);
                let kind_matches = if purpose.relationships == 0 {
                    bit != 0 && policy.pre_contract & bit == 0
                } else {
                    purpose.relationships & bit != 0
                };
                kind_matches && r.is_active(now)
            });
            if !grounded {
                ledger.refuse_all(Reason::NoContract);
            }
        }
        LegalBasis::LegitimateInterest
        | LegalBasis::LegalObligation
        | LegalBasis::VitalInterest
        | LegalBasis::PublicTask => {}
    }
}

/// A marketing purpose reaches people channel by channel: a field only some
/// channels need (an email address) is allowed only while one of them is live;
/// the fields every channel needs (a name) while any considered channel is.
fn per_channel(
    policy: &CompiledPolicy,
    purpose: &PurposeTable,
    request: &Request,
    state: &SubjectState,
    now: OffsetDateTime,
    ledger: &mut Ledger,
) {
    let pix = request.purpose;
    // Per channel: Ok when live, otherwise why not; None when not considered.
    let status = Channel::EACH.map(|channel| {
        let declared = purpose.channels & (1 << channel.index()) != 0;
        if !declared || request.channel.is_some_and(|asked| asked != channel) {
            None
        } else if objected(state, purpose, pix, Some(channel)) {
            Some(Err(Reason::Objected))
        } else if purpose.basis == LegalBasis::Consent {
            Some(consent(state, pix, Some(channel), now))
        } else {
            Some(without_consent(policy, purpose, pix, channel, state, now))
        }
    });
    let first_refusal = status
        .iter()
        .find_map(|s| s.and_then(Result::err))
        .unwrap_or(Reason::CategoryNotNeeded);
    let mut live_fields = FieldSet::EMPTY;
    let mut any_live = false;
    for (s, fields) in status.iter().zip(purpose.channel_fields) {
        if matches!(s, Some(Ok(()))) {
            any_live = true;
            live_fields = live_fields.union(fields);
        }
    }
    let channel_only = purpose
        .channel_fields
        .iter()
        .fold(FieldSet::EMPTY, |a, b| a.union(*b));
    if !any_live {
        return ledger.refuse_all(first_refusal);
    }
    for (s, fields) in status.iter().zip(purpose.channel_fields) {
        if let Some(Err(reason)) = s {
            ledger.refuse(fields.minus(live_fields), *reason);
        }
    }
    // Fields only of channels this request does not use.
    ledger.refuse(channel_only.minus(live_fields), Reason::CategoryNotNeeded);
}
#[cfg(test)]
#[path = "decision_tests.rs"]
mod tests;
