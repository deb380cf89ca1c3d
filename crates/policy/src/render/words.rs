//! Shared phrasing for the generated documents.

use crate::model::*;
use crate::period::Period;
use crate::rules::adequacy::{AdequacyList, TransferStatus};
use crate::terms::*;

/// "a", "a and b", "a, b and c".
pub fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The name a notice uses for a `category` or `category.field` reference.
pub fn data_name(policy: &Policy, reference: &str) -> String {
    let (category, field) = match reference.split_once('.') {
        Some((c, f)) => (c, Some(f)),
        None => (reference, None),
    };
    let Some(c) = policy.categories.iter().find(|c| c.id.as_str() == category) else {
        return reference.to_string();
    };
    match field.and_then(|f| c.fields.iter().find(|x| x.name.as_str() == f)) {
        Some(f) => {
            let what = f
                .description
                .clone()
                .unwrap_or_else(|| f.name.replace('_', " "));
            format!("{what} ({})", lower_first(&c.name))
        }
        None => c.name.clone(),
    }
}

pub fn data_names(policy: &Policy, references: &[crate::located::At<String>]) -> String {
    let names: Vec<String> = references
        .iter()
        .map(|r| lower_first(&data_name(policy, r)))
        .collect();
    join_and(&names)
}

pub fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        // Keep acronyms such as "IP address" as they are.
        Some(first) if !chars.clone().next().is_some_and(char::is_uppercase) => {
            first.to_lowercase().chain(chars).collect()
        }
        _ => text.to_string(),
    }
}

pub fn recipient_name(policy: &Policy, id: &str) -> String {
    policy
        .recipients
        .iter()
        .find(|r| r.id.as_str() == id)
        .map_or_else(|| id.to_string(), |r| r.name.clone())
}

pub fn purpose_name(policy: &Policy, id: &str) -> String {
    policy
        .purposes
        .iter()
        .find(|p| p.id.as_str() == id)
        .map_or_else(|| id.to_string(), |p| p.name.clone())
}

pub fn retention_text(policy: &Policy, id: &str) -> String {
    let Some(rule) = policy.retention.iter().find(|r| r.id.as_str() == id) else {
        return id.to_string();
    };
    let period =
        Period::parse(&rule.duration).map_or_else(|| rule.duration.to_string(), |p| p.to_string());
    let from = match (&*rule.from, &rule.relationship) {
        (RetentionEvent::RelationshipEnd, Some(r)) => {
            let name = policy
                .relationships
                .iter()
                .find(|x| x.id.as_str() == r.as_str())
                .map_or_else(|| r.to_string(), |x| lower_first(&x.name));
            format!("from the end of {name}")
        }
        (event, _) => event.label().to_string(),
    };
    let mut text = format!("{}: {period} {from}", rule.description);
    if let Some(law) = &rule.legal_obligation {
        text.push_str(&format!(" (required by {law})"));
    }
    text
}

const COUNTRY_NAMES: &[(&str, &str)] = &[
    ("GB", "the United Kingdom"),
    ("US", "the United States"),
    ("IN", "India"),
    ("CN", "China"),
    ("AU", "Australia"),
    ("SG", "Singapore"),
    ("ZA", "South Africa"),
    ("PH", "the Philippines"),
    ("AE", "the United Arab Emirates"),
];

pub fn country_name(code: &str) -> String {
    if let Some((_, name)) = COUNTRY_NAMES.iter().find(|(c, _)| *c == code) {
        return (*name).to_string();
    }
    [Regime::UkGdpr, Regime::EuGdpr]
        .into_iter()
        .filter_map(AdequacyList::for_regime)
        .find_map(|list| list.country(code).map(|c| c.name.clone()))
        .unwrap_or_else(|| code.to_string())
}

/// The facts about one recipient or storage location that decide how its
/// transfer is described.
pub struct TransferParty<'a> {
    pub country: &'a str,
    pub safeguard: Option<Safeguard>,
    pub dpf_certified: bool,
    pub dpf_checked: Option<crate::day::Day>,
    pub sector: Option<&'a str>,
}

impl<'a> TransferParty<'a> {
    pub fn recipient(r: &'a Recipient) -> Self {
        TransferParty {
            country: &r.country,
            safeguard: r.safeguard.as_ref().map(|s| **s),
            dpf_certified: r.dpf_certified,
            dpf_checked: r.dpf_checked.as_ref().map(|d| **d),
            sector: r.sector.as_ref().map(|s| s.as_str()),
        }
    }

    pub fn storage(s: &'a StorageLocation) -> Self {
        TransferParty {
            country: &s.country,
            safeguard: s.safeguard.as_ref().map(|x| **x),
            dpf_certified: s.dpf_certified,
            dpf_checked: s.dpf_checked.as_ref().map(|d| **d),
            sector: s.sector.as_ref().map(|x| x.as_str()),
        }
    }
}

/// Where a recipient or location stands for transfers: `None` when domestic.
pub fn transfer_text(policy: &Policy, party: &TransferParty<'_>) -> Option<String> {
    let regime = *policy.policy.regime;
    let list = AdequacyList::for_regime(regime)?;
    let on = policy.policy.effective;
    let status = list.status_for(party.country, on, party.dpf_certified, party.sector);
    let name = country_name(party.country);
    match (status, party.safeguard) {
        (TransferStatus::Domestic, _) => None,
        (_, Some(s)) if s != Safeguard::Adequacy => {
            Some(format!("{name}, protected by {}", s.label()))
        }
        (TransferStatus::Adequate, _) => {
            let decision = list.country(party.country);
            let mut text = format!("{name}, which has an adequacy decision");
            if decision.is_some_and(|c| c.requires.as_deref() == Some("dpf")) {
                let framework = match regime {
                    Regime::UkGdpr => "the UK Extension to the EU-US Data Privacy Framework",
                    Regime::EuGdpr => "the EU-US Data Privacy Framework",
                };
                text.push_str(&format!(
                    " that covers only organisations certified under {framework}; the recipient is certified"
                ));
                if let Some(checked) = party.dpf_checked {
                    text.push_str(&format!(" (checked on {checked})"));
                }
            }
            if let Some(sector) = decision.and_then(|c| c.sector_name.as_deref()) {
                text.push_str(&format!(" covering only {sector}, which the recipient is"));
            }
            Some(text)
        }
        (_, _) => Some(format!("{name}, without a recognised safeguard")),
    }
}

pub fn regime_territory(regime: Regime) -> &'static str {
    match regime {
        Regime::UkGdpr => "the UK",
        Regime::EuGdpr => "the European Economic Area",
    }
}
