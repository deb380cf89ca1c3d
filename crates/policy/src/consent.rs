//! The consent ledger's fold: the current preferences of a subject or visitor
//! as a pure function of its events, oldest first.
//!
//! Events are appended and never changed; the store keeps the folded
//! preferences beside the holder's other state and refolds them in the
//! transaction that appends an event. The rules (UK GDPR Art. 7 and 21, PECR
//! reg. 22) are:
//!
//! - A grant, withdrawal or refusal replaces the consent for its purpose and
//!   channel.
//! - An objection ends every consent within its scope: an objection to one
//!   purpose, that purpose's consents (on its channel, or on every channel);
//!   an objection to all direct marketing, every marketing consent (those
//!   given per channel: the validator makes a purpose with channels a
//!   marketing purpose, and a marketing consent purpose name channels).
//! - A later grant that is the person's own act ([`OWN_ACT_METHODS`]), with
//!   evidence of what was shown and dated after the objection, lifts the
//!   objection for exactly that purpose and channel; elsewhere it stays in
//!   force. A grant prompted by our own marketing ([`REPERMISSION_METHOD`])
//!   or one that is not the person's own act lifts nothing, and the consent
//!   it would record is not recorded while an objection covers it.
//! - `lift` (or, for an objection to all direct marketing, `withdraw` with no
//!   purpose) narrows an objection: with a channel, to the other channels;
//!   without, it ends it.
//! - A Global Privacy Control signal (method `gpc`) is an objection to sale
//!   or sharing, targeted advertising and third-party marketing cookies only:
//!   it ends no first-party consent here, and the decision applies it only to
//!   the purposes the compiled policy puts in its scope.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Unix time in microseconds.
pub type Micros = i64;

/// The methods by which a choice is the person's own act (Art. 4(11)).
pub const OWN_ACT_METHODS: [&str; 3] = ["web-form", "app", "call-centre"];
/// A choice prompted by our own marketing message to the person: asking an
/// objector to opt back in is itself direct marketing.
pub const REPERMISSION_METHOD: &str = "re-permission";
/// A Global Privacy Control signal.
pub const GPC_METHOD: &str = "gpc";
/// The controller's record, made by its data protection officer, of
/// compelling legitimate grounds that override a person's objection to one
/// purpose (Art. 21(1)). Folded as a lift of that objection.
pub const COMPELLING_GROUNDS_METHOD: &str = "compelling-grounds";

/// Why compelling grounds cannot override an objection to a purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroundsRefused {
    /// Art. 21(3): an objection to direct marketing is absolute.
    DirectMarketing,
    /// Art. 21(1) reaches only processing on legitimate interests or a
    /// public task; there is no objection of that kind to override.
    NotObjectable,
}

/// Art. 21(1): the controller may go on processing despite an objection
/// only where it demonstrates compelling legitimate grounds, and only for
/// processing on legitimate interests or a public task that is not direct
/// marketing.
pub fn grounds_may_override(
    basis: crate::terms::LegalBasis,
    marketing: bool,
) -> Result<(), GroundsRefused> {
    use crate::terms::LegalBasis;
    if marketing {
        return Err(GroundsRefused::DirectMarketing);
    }
    match basis {
        LegalBasis::LegitimateInterest | LegalBasis::PublicTask => Ok(()),
        _ => Err(GroundsRefused::NotObjectable),
    }
}

/// An authorized agent's request to opt out of sale or sharing (Data Rights
/// Protocol `sale:opt_out`): an objection with the scope of a GPC signal.
pub const SALE_OPT_OUT_METHOD: &str = "agent-sale-opt-out";

/// Whether an objection made by `method` has a GPC signal's scope.
pub fn has_gpc_scope(method: &str) -> bool {
    method == GPC_METHOD || method == SALE_OPT_OUT_METHOD
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsentAction {
    Grant,
    Withdraw,
    Refuse,
    Object,
    /// Lifts (narrows, with a channel) an objection the person made.
    Lift,
    /// PECR reg. 22(3)(c): when the details were collected in a sale or its
    /// negotiation, a simple means of refusing marketing of similar
    /// products was offered (the wording is the evidence) and not taken.
    /// Not consent; a later refusal, withdrawal or objection ends it.
    SoftOptIn,
}

impl ConsentAction {
    pub const ALL: [ConsentAction; 6] = [
        ConsentAction::Grant,
        ConsentAction::Withdraw,
        ConsentAction::Refuse,
        ConsentAction::Object,
        ConsentAction::Lift,
        ConsentAction::SoftOptIn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConsentAction::Grant => "grant",
            ConsentAction::Withdraw => "withdraw",
            ConsentAction::Refuse => "refuse",
            ConsentAction::Object => "object",
            ConsentAction::Lift => "lift",
            ConsentAction::SoftOptIn => "soft-opt-in",
        }
    }

    pub fn parse(text: &str) -> Option<ConsentAction> {
        ConsentAction::ALL.into_iter().find(|a| a.as_str() == text)
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
    /// `None` only for an objection to all direct marketing (or its lifting).
    pub purpose: Option<String>,
    pub channel: Option<String>,
    pub action: ConsentAction,
    pub policy_version: String,
    /// web-form, app, call-centre, import, gpc, re-permission
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

    /// The person's own, evidenced act.
    fn own_act(&self) -> bool {
        OWN_ACT_METHODS.contains(&self.method.as_str()) && self.wording_hash.is_some()
    }
}

/// Where the consent for one purpose and channel stands. Stored as its
/// name, as it always was, so ledgers folded before this type read
/// unchanged; any other stored name is refused as corrupt, never read as a
/// status (a default could turn a refusal into consent or back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum StoredConsentStatus {
    Given,
    Withdrawn,
    Refused,
    /// A refusal offered at collection and not taken (the soft opt-in of
    /// PECR reg. 22(3)): not consent.
    SoftOptIn,
}

impl StoredConsentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StoredConsentStatus::Given => "given",
            StoredConsentStatus::Withdrawn => "withdrawn",
            StoredConsentStatus::Refused => "refused",
            StoredConsentStatus::SoftOptIn => "soft-opt-in",
        }
    }
}

impl From<StoredConsentStatus> for &'static str {
    fn from(status: StoredConsentStatus) -> Self {
        status.as_str()
    }
}

impl TryFrom<String> for StoredConsentStatus {
    type Error = &'static str;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        match name.as_str() {
            "given" => Ok(StoredConsentStatus::Given),
            "withdrawn" => Ok(StoredConsentStatus::Withdrawn),
            "refused" => Ok(StoredConsentStatus::Refused),
            "soft-opt-in" => Ok(StoredConsentStatus::SoftOptIn),
            _ => Err("a consent status is given, withdrawn, refused or soft-opt-in"),
        }
    }
}

/// The current consent for one purpose and channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredConsent {
    pub purpose: String,
    pub channel: Option<String>,
    pub status: StoredConsentStatus,
    pub at: Micros,
    pub policy_version: String,
    pub event: Uuid,
    pub expires_at: Option<Micros>,
}

/// Where an objection no longer applies: a purpose (or every purpose in its
/// scope) on a channel (or every channel).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifted {
    pub purpose: Option<String>,
    pub channel: Option<String>,
    pub at: Micros,
    pub event: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredObjection {
    /// `None`: all direct marketing (or, for `gpc`, the signal's scope).
    pub purpose: Option<String>,
    pub channel: Option<String>,
    pub at: Micros,
    pub event: Uuid,
    pub method: String,
    /// Where the person lifted it since.
    #[serde(default)]
    pub lifted: Vec<Lifted>,
}

impl StoredObjection {
    /// Whether it has a Global Privacy Control signal's scope: the signal
    /// itself, or an agent's opt-out of sale or sharing, which asks for the
    /// same thing.
    pub fn is_gpc(&self) -> bool {
        has_gpc_scope(&self.method)
    }

    /// Whether it reaches `purpose` on `channel` (`None`: any channel).
    /// `marketing` says whether the purpose is direct marketing; the fold,
    /// which knows no policy, takes a consent given per channel to be one.
    pub fn covers(&self, purpose: &str, channel: Option<&str>, marketing: bool) -> bool {
        // A GPC signal's scope is the policy's (see the decision): the fold
        // ends nothing with it.
        if self.is_gpc() {
            return false;
        }
        let purpose_matches = match &self.purpose {
            Some(p) => p == purpose,
            None => marketing,
        };
        purpose_matches && self.covers_channel(purpose, channel)
    }

    /// What a grant would have to lift: `covers`, and a GPC signal wherever
    /// its scope might reach (an explicit later opt-in wins within it).
    fn reaches(&self, purpose: &str, channel: Option<&str>, marketing: bool) -> bool {
        self.covers(purpose, channel, marketing)
            || (self.is_gpc()
                && self.purpose.as_deref().is_none_or(|p| p == purpose)
                && self.covers_channel(purpose, channel))
    }

    /// The channel and lifting part of `covers`, for a purpose already in scope.
    pub fn covers_channel(&self, purpose: &str, channel: Option<&str>) -> bool {
        let channel_matches =
            self.channel.is_none() || channel.is_none() || self.channel.as_deref() == channel;
        let lifted = self.lifted.iter().any(|l| {
            l.purpose.as_deref().is_none_or(|p| p == purpose)
                && (l.channel.is_none() || (channel.is_some() && l.channel.as_deref() == channel))
        });
        channel_matches && !lifted
    }
}

/// Why a grant cannot be recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantBlocked {
    /// Prompted by our own marketing to a person who objected.
    Repermission,
    /// Not the person's own evidenced act, or not dated after the objection.
    Objected,
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
    /// The objections in force over `purpose` on `channel` that a grant
    /// would have to lift (GPC objections included: an explicit later
    /// opt-in wins within its scope).
    fn covering<'a>(
        &'a self,
        purpose: &'a str,
        channel: Option<&'a str>,
    ) -> impl Iterator<Item = &'a StoredObjection> + 'a {
        let marketing = channel.is_some();
        self.objections
            .iter()
            .filter(move |o| o.reaches(purpose, channel, marketing))
    }

    /// Whether a grant may be recorded over the objections in force: only
    /// the person's own evidenced act, after the objection, never one
    /// prompted by our own marketing.
    pub fn grant_blocked(&self, e: &ConsentEvent) -> Option<GrantBlocked> {
        let purpose = e.purpose.as_deref()?;
        if e.action != ConsentAction::Grant {
            return None;
        }
        let mut covering = self
            .covering(purpose, e.channel.as_deref())
            .filter(|o| !o.is_gpc())
            .peekable();
        covering.peek()?;
        if e.method == REPERMISSION_METHOD {
            return Some(GrantBlocked::Repermission);
        }
        if !e.own_act() || covering.any(|o| e.at <= o.at) {
            return Some(GrantBlocked::Objected);
        }
        None
    }

    /// Folds one event in (see the module's rules).
    pub fn apply(&mut self, e: &ConsentEvent) {
        match (e.action, e.purpose.as_deref()) {
            (ConsentAction::Object, purpose) => self.object(e, purpose),
            (ConsentAction::Lift, purpose) | (ConsentAction::Withdraw, purpose @ None) => {
                self.lift(e, purpose)
            }
            (ConsentAction::Grant, Some(purpose)) => {
                if self.grant_blocked(e).is_some() {
                    return;
                }
                let lift = Lifted {
                    purpose: Some(purpose.to_string()),
                    channel: e.channel.clone(),
                    at: e.at,
                    event: e.id,
                };
                let channel = e.channel.as_deref();
                let marketing = channel.is_some();
                let mut ended = Vec::new();
                for (i, o) in self.objections.iter_mut().enumerate() {
                    if !o.reaches(purpose, channel, marketing) {
                        continue;
                    }
                    if o.purpose.as_deref() == Some(purpose) && o.channel == e.channel {
                        ended.push(i);
                    } else {
                        o.lifted.push(lift.clone());
                    }
                }
                for i in ended.into_iter().rev() {
                    self.objections.remove(i);
                }
                self.set(e, purpose, StoredConsentStatus::Given);
            }
            (ConsentAction::SoftOptIn, Some(purpose)) => {
                let objected = self
                    .covering(purpose, e.channel.as_deref())
                    .any(|o| !o.is_gpc());
                if !objected {
                    self.set(e, purpose, StoredConsentStatus::SoftOptIn);
                }
            }
            (ConsentAction::Withdraw, Some(purpose)) => {
                self.set(e, purpose, StoredConsentStatus::Withdrawn)
            }
            (ConsentAction::Refuse, Some(purpose)) => {
                self.set(e, purpose, StoredConsentStatus::Refused)
            }
            (ConsentAction::Grant | ConsentAction::Refuse | ConsentAction::SoftOptIn, None) => {}
        }
    }

    fn set(&mut self, e: &ConsentEvent, purpose: &str, status: StoredConsentStatus) {
        self.consents
            .retain(|c| !(c.purpose == purpose && c.channel == e.channel));
        self.consents.push(StoredConsent {
            purpose: purpose.to_string(),
            channel: e.channel.clone(),
            status,
            at: e.at,
            policy_version: e.policy_version.clone(),
            event: e.id,
            expires_at: e.expires_at,
        });
    }

    fn object(&mut self, e: &ConsentEvent, purpose: Option<&str>) {
        // A repeated objection of the same scope replaces the earlier one,
        // and what was lifted of it is objected to again.
        self.objections.retain(|o| {
            !(o.purpose.as_deref() == purpose
                && o.channel == e.channel
                && o.is_gpc() == has_gpc_scope(&e.method))
        });
        let objection = StoredObjection {
            purpose: purpose.map(str::to_string),
            channel: e.channel.clone(),
            at: e.at,
            event: e.id,
            method: e.method.clone(),
            lifted: Vec::new(),
        };
        // The objection ends the consents within its scope.
        for c in &mut self.consents {
            if matches!(
                c.status,
                StoredConsentStatus::Given | StoredConsentStatus::SoftOptIn
            ) && objection.covers(&c.purpose, c.channel.as_deref(), c.channel.is_some())
            {
                c.status = StoredConsentStatus::Withdrawn;
                c.at = e.at;
                c.event = e.id;
                c.policy_version = e.policy_version.clone();
                c.expires_at = None;
            }
        }
        self.objections.push(objection);
    }

    /// Narrows (with a channel) or ends (without) the objections confined
    /// to `purpose` (`None`: the objections to all direct marketing).
    fn lift(&mut self, e: &ConsentEvent, purpose: Option<&str>) {
        let channel = e.channel.as_deref();
        let mut kept = Vec::with_capacity(self.objections.len());
        for mut o in std::mem::take(&mut self.objections) {
            if o.purpose.as_deref() != purpose {
                kept.push(o);
                continue;
            }
            match (o.channel.as_deref(), channel) {
                // The whole objection, or exactly its channel: it ends.
                (_, None) => {}
                (Some(mine), Some(asked)) if mine == asked => {}
                (Some(_), Some(_)) => kept.push(o),
                // A channel of an objection to every channel: narrowed.
                (None, Some(asked)) => {
                    o.lifted.push(Lifted {
                        purpose: None,
                        channel: Some(asked.to_string()),
                        at: e.at,
                        event: e.id,
                    });
                    kept.push(o);
                }
            }
        }
        self.objections = kept;
    }

    /// Whether an objection in force reaches `purpose` on `channel`.
    pub fn objected(&self, purpose: &str, channel: Option<&str>, marketing: bool) -> bool {
        self.objections
            .iter()
            .any(|o| o.covers(purpose, channel, marketing))
    }
}

#[cfg(test)]
#[path = "consent_tests.rs"]
mod tests;
