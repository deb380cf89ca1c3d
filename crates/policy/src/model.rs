//! The policy document as written in TOML: every declaration an organisation
//! makes about the personal data it processes. Parsing only checks shape;
//! `validate` checks meaning.

use crate::day::Day;
use crate::located::At;
use crate::terms::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub policy: PolicyMeta,
    pub controller: Controller,
    #[serde(default)]
    pub subjects: Vec<SubjectCategory>,
    #[serde(default)]
    pub categories: Vec<Category>,
    #[serde(default)]
    pub relationships: Vec<RelationshipKind>,
    #[serde(default)]
    pub purposes: Vec<Purpose>,
    #[serde(default)]
    pub recipients: Vec<Recipient>,
    #[serde(default)]
    pub storage: Vec<StorageLocation>,
    #[serde(default)]
    pub retention: Vec<RetentionRule>,
    #[serde(default)]
    pub marketing: Marketing,
    #[serde(default)]
    pub sharing: Sharing,
    #[serde(default)]
    pub cookies: Vec<Cookie>,
    #[serde(default)]
    pub security: Security,
    pub rights: Rights,
    /// Art. 13(2)(f): automated decisions and profiling. The table must be
    /// present; an empty one declares that there are none.
    #[serde(default)]
    pub automated_decisions: Option<At<AutomatedDecisions>>,
    /// The organisation's own systems that hold personal data, which
    /// rights requests reach through connectors.
    #[serde(default)]
    pub datasets: Vec<crate::datasets::Dataset>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AutomatedDecisions {
    #[serde(default, rename = "decision")]
    pub decisions: Vec<AutomatedDecision>,
}

/// One decision based solely on automated processing, or one profiling
/// activity (Art. 22, Art. 13(2)(f)).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AutomatedDecision {
    pub name: At<String>,
    /// The logic involved, in the notice's words.
    pub logic: String,
    /// Its significance and the envisaged consequences for the person.
    pub consequences: String,
    /// The purpose it serves.
    pub purpose: At<String>,
}

/// The `[policy]` table: which version this is and how changes are published.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyMeta {
    pub version: At<String>,
    pub effective: Day,
    pub regime: At<Regime>,
    /// Where the notice is published; changes are posted there.
    pub notice_url: String,
    /// Websites, apps and other services the notice covers.
    #[serde(default)]
    pub applies_to: Vec<String>,
    /// What the notice does not cover (for example data processed under a EULA).
    #[serde(default)]
    pub excludes: Vec<String>,
    #[serde(default)]
    pub changelog: Vec<ChangelogEntry>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChangelogEntry {
    pub version: String,
    pub date: Day,
    pub summary: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Controller {
    pub legal_name: At<String>,
    #[serde(default)]
    pub trading_name: Option<String>,
    pub company_number: At<String>,
    pub registered_in: String,
    pub registered_office: At<String>,
    pub contact_address: At<String>,
    pub phone: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub website: Option<String>,
    /// The group the notice speaks for, when the controller gives it on
    /// behalf of its subsidiaries too (for example "i-Image IT Ltd and its
    /// subsidiaries, together the i-Image Group").
    #[serde(default)]
    pub group: Option<String>,
    pub regulator: Regulator,
    pub dpo: Dpo,
    /// Art. 27 representative, where the controller needs one.
    #[serde(default)]
    pub representative: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Regulator {
    pub name: String,
    #[serde(default)]
    pub short_name: Option<String>,
    pub url: String,
    #[serde(default)]
    pub address: Option<String>,
    /// The controller's registration number with the regulator.
    pub registration: At<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Dpo {
    pub name: At<String>,
    #[serde(default)]
    pub contact: Option<String>,
    /// Art. 13(1)(b), Art. 30(1)(a): an email address, not only post.
    #[serde(default)]
    pub email: Option<At<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectCategory {
    pub id: At<String>,
    pub name: String,
    #[serde(default)]
    pub dpv: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Category {
    pub id: At<String>,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub dpv: Option<String>,
    #[serde(default)]
    pub sensitivity: At<Sensitivity>,
    /// The Art. 9(2) condition (with its DPA 2018 Sch. 1 condition where
    /// one is needed) that lifts the ban on special-category data.
    #[serde(default)]
    pub art9_condition: Option<At<Art9Condition>>,
    pub source: At<DataSource>,
    /// Where the data comes from, in the notice's words (for example "when you
    /// register for our newsletter").
    #[serde(default)]
    pub collected_from: Option<String>,
    pub fields: Vec<Field>,
    #[serde(default)]
    pub retention: Option<At<String>>,
    /// Art. 13(2)(e): whether providing the data is a statutory or
    /// contractual requirement, needed to enter a contract, or voluntary.
    #[serde(default)]
    pub requirement: Option<At<Requirement>>,
    /// Art. 13(2)(e): what happens if the person does not provide it.
    #[serde(default)]
    pub if_not_provided: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    pub name: At<String>,
    #[serde(rename = "type")]
    pub kind: At<FieldType>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RelationshipKind {
    pub id: At<String>,
    pub name: String,
    /// The events that end the relationship.
    pub ended_by: Vec<String>,
    #[serde(default)]
    pub subjects: Vec<At<String>>,
    /// Steps taken at the person's request before a contract (the second
    /// limb of Art. 6(1)(b)), such as an enquiry from a prospect. It grounds
    /// only the contract purposes that name it.
    #[serde(default)]
    pub pre_contract: bool,
    /// Details are obtained in the course of a sale or negotiations for a
    /// sale (PECR reg. 22(3)(a)): the only relationships a soft opt-in can
    /// rest on.
    #[serde(default)]
    pub sale: At<bool>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Purpose {
    pub id: At<String>,
    pub name: String,
    pub description: String,
    #[serde(default)]
    pub dpv: Option<String>,
    pub basis: At<LegalBasis>,
    /// The legitimate interest pursued (required for that basis).
    #[serde(default)]
    pub interest: Option<At<String>>,
    /// The reference of the legitimate-interest assessment (required for
    /// that basis; exported in the record of processing).
    #[serde(default)]
    pub lia: Option<At<String>>,
    /// The law that imposes a legal obligation (required for that basis).
    #[serde(default)]
    pub obligation: Option<At<String>>,
    /// DPA 2018 Sch. 2 exemptions that permit a disclosure for this purpose.
    #[serde(default)]
    pub exemptions: Vec<At<Exemption>>,
    /// Categories this purpose needs; `category.field` narrows to one field.
    pub categories: Vec<At<String>>,
    #[serde(default)]
    pub subjects: Vec<At<String>>,
    #[serde(default)]
    pub recipients: Vec<At<String>>,
    #[serde(default)]
    pub retention: Option<At<String>>,
    /// For a contract basis: the relationships that ground it.
    #[serde(default)]
    pub relationships: Vec<At<String>>,
    /// Direct marketing (Art. 21(2)): an objection stops it absolutely.
    #[serde(default)]
    pub marketing: bool,
    /// Marketing channels this purpose contacts people through.
    #[serde(default)]
    pub channels: Vec<At<String>>,
    /// The Art. 18(2) ground on which this purpose may still read restricted data.
    #[serde(default)]
    pub during_restriction: Option<RestrictionGround>,
    /// Transfers for this purpose are occasional (not repetitive), the only
    /// kind an Art. 49 derogation may cover.
    #[serde(default)]
    pub occasional: bool,
    /// The purpose reads data that never comes from cookies (server logs
    /// kept for security, for example): a refusal of the cookies that feed
    /// the same categories does not reach it (PECR reg. 6).
    #[serde(default)]
    pub independent_of_cookies: bool,
    /// Marketing of the controller's own similar products or services
    /// (PECR reg. 22(3)(b)): the only purposes a soft opt-in can cover.
    #[serde(default)]
    pub similar_products: At<bool>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Recipient {
    pub id: At<String>,
    pub name: String,
    pub kind: At<RecipientKind>,
    #[serde(default)]
    pub description: Option<String>,
    /// ISO 3166-1 alpha-2 code of where the recipient processes the data.
    pub country: At<String>,
    #[serde(default)]
    pub safeguard: Option<At<Safeguard>>,
    /// Reference of the Art. 28 agreement (processors) or sharing agreement.
    #[serde(default)]
    pub agreement: Option<At<String>>,
    /// Categories (or `category.field`) the recipient may receive.
    pub categories: Vec<At<String>>,
    pub form: At<DisclosureForm>,
    /// Whether the recipient may use the data for its own marketing.
    #[serde(default)]
    pub own_marketing: At<bool>,
    /// Certified under the (UK Extension to the) EU-US Data Privacy Framework.
    #[serde(default)]
    pub dpf_certified: bool,
    /// When the certification was last checked on the DPF list.
    #[serde(default)]
    pub dpf_checked: Option<At<Day>>,
    /// The sector the recipient belongs to where adequacy is limited to one
    /// (for example `pipeda-commercial` in Canada); see the adequacy lists.
    #[serde(default)]
    pub sector: Option<At<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageLocation {
    pub id: At<String>,
    pub description: String,
    pub country: At<String>,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub safeguard: Option<At<Safeguard>>,
    #[serde(default)]
    pub dpf_certified: bool,
    #[serde(default)]
    pub dpf_checked: Option<At<Day>>,
    #[serde(default)]
    pub sector: Option<At<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionRule {
    pub id: At<String>,
    pub description: String,
    /// `6 years`, `13 months`, `30 days`, ...
    pub duration: At<String>,
    pub from: At<RetentionEvent>,
    /// For `from = "relationship-end"`: which relationship.
    #[serde(default)]
    pub relationship: Option<At<String>>,
    /// A legal obligation that keeps the data, even through an erasure request.
    #[serde(default)]
    pub legal_obligation: Option<String>,
    /// For `from = "accounting-period-end"`: the last day of the
    /// controller's accounting year, `MM-DD` (for example `03-31`).
    #[serde(default)]
    pub year_end: Option<At<String>>,
    /// How often the rule is reviewed (promise P8), a period such as
    /// `1 year`; 12 months when not given.
    #[serde(default)]
    pub review_every: Option<At<String>>,
    /// When the rule was last reviewed, as written in the policy; a review
    /// recorded later in the vault (`custodian retention review`) counts too.
    #[serde(default)]
    pub last_reviewed: Option<At<Day>>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Marketing {
    /// PECR reg. 22(3): marketing similar products to existing customers by
    /// email without prior consent. Off unless the policy turns it on.
    #[serde(default)]
    pub soft_opt_in: bool,
    #[serde(default)]
    pub channels: Vec<ChannelDecl>,
    /// How a person changes their preferences, in the notice's words.
    #[serde(default)]
    pub how_to_change: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelDecl {
    pub channel: At<String>,
    pub mode: At<ChannelMode>,
    /// The categories only this channel needs (an email address for email).
    #[serde(default)]
    pub categories: Vec<At<String>>,
}

/// Promises about sharing that the validator enforces on every recipient.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Sharing {
    #[serde(default = "yes")]
    pub never_sell: bool,
    #[serde(default = "yes")]
    pub no_third_party_marketing: bool,
}

impl Default for Sharing {
    fn default() -> Self {
        Sharing {
            never_sell: true,
            no_third_party_marketing: true,
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Cookie {
    pub name: At<String>,
    /// `first-party` or the id of a declared recipient.
    pub provider: At<String>,
    pub category: At<CookieCategory>,
    pub description: String,
    /// The consent purpose that covers this cookie (all but strictly necessary).
    #[serde(default)]
    pub purpose: Option<At<String>>,
    /// `session` or a duration such as `2 years`.
    pub duration: At<String>,
    /// The data categories (or `category.field`) this cookie produces. Where
    /// the cookie needs consent, so does every use of that data (PECR reg. 6,
    /// as the ICO reads it), whatever basis the using purpose names.
    #[serde(default)]
    pub feeds: Vec<At<String>>,
    /// Also kept in the browser's local storage under the same name. The
    /// strictly necessary first-party entry marked so is where the cookie
    /// banner keeps the visitor's choice, for the entry's `duration`.
    #[serde(default)]
    pub local_storage: At<bool>,
}

impl Policy {
    /// Where the cookie banner keeps the visitor's choice: the strictly
    /// necessary first-party entry marked `local_storage`.
    pub fn choice_storage(&self) -> Option<&Cookie> {
        self.cookies.iter().find(|c| {
            *c.local_storage
                && *c.category == CookieCategory::StrictlyNecessary
                && c.provider.as_str() == "first-party"
        })
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Security {
    #[serde(default)]
    pub measures: Vec<String>,
}

/// How a person uses their rights.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rights {
    pub contact: String,
    /// How to complain to the controller (DPA 2018 s.164A, inserted by the
    /// Data (Use and Access) Act 2025); the rights contact when not given.
    #[serde(default)]
    pub complaints: Option<String>,
    #[serde(default)]
    pub portal_url: Option<String>,
}
