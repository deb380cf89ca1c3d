//! The statement that answers a request of access (UK GDPR Art. 15(1)(a)-(h)
//! and 15(2)), built from the policy for what the vault holds about one
//! person. The data itself follows it in the engine's report; this says what
//! the data is, why it is held, who receives it, for how long, where it came
//! from, and what the person can do.

use super::Document;
use super::notice::{
    automated_decisions_section, capitalise, complaint_contact, regulator_reference,
};
use super::words::*;
use crate::model::*;
use crate::terms::*;

/// What the vault holds about one person, by the policy's ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held {
    /// Category ids the vault holds for the person.
    pub categories: Vec<String>,
    /// Purpose ids their data was collected or used for.
    pub purposes: Vec<String>,
    /// Source channels their data came through.
    pub sources: Vec<String>,
}

impl Held {
    fn holds_category(&self, reference: &str) -> bool {
        let category = reference.split('.').next().unwrap_or(reference);
        self.categories.iter().any(|c| c == category)
    }

    fn holds_purpose(&self, id: &str) -> bool {
        self.purposes.iter().any(|p| p == id)
    }
}

/// The Art. 15 statement for a person of whom `held` is held. Only what is
/// held is listed; an id the policy does not declare is listed by its id,
/// so that nothing held goes unmentioned.
pub fn access_statement(policy: &Policy, held: &Held) -> Document {
    let c = &policy.controller;
    let mut doc = Document::new(format!(
        "Your personal information held by {}",
        *c.legal_name
    ));
    doc.para(format!(
        "This statement answers your request for access to your personal information under {}. It says why we hold it, what it is, who receives it, how long we keep it, where it came from and what you can do. A copy of the information itself comes with it.",
        policy.policy.regime.label()
    ));
    purposes(policy, held, &mut doc);
    categories(policy, held, &mut doc);
    recipients(policy, held, &mut doc);
    retention(policy, held, &mut doc);
    rights(policy, held, &mut doc);
    complaints(policy, &mut doc);
    sources(policy, held, &mut doc);
    automated_decisions(policy, held, &mut doc);
    doc
}

/// Ids in `held` the policy does not declare, in the order given, once each.
fn undeclared(held: &[String], declared: impl Fn(&str) -> bool) -> Vec<&String> {
    let mut out: Vec<&String> = Vec::new();
    for id in held {
        if !declared(id) && !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

fn held_purposes<'p>(policy: &'p Policy, held: &Held) -> Vec<&'p Purpose> {
    policy
        .purposes
        .iter()
        .filter(|p| held.holds_purpose(&p.id))
        .collect()
}

fn held_categories<'p>(policy: &'p Policy, held: &Held) -> Vec<&'p Category> {
    policy
        .categories
        .iter()
        .filter(|c| held.holds_category(&c.id))
        .collect()
}

/// The references of `references` to data that is held, by name.
fn held_data_names(
    policy: &Policy,
    held: &Held,
    references: &[crate::located::At<String>],
) -> String {
    let names: Vec<String> = references
        .iter()
        .filter(|r| held.holds_category(r))
        .map(|r| lower_first(&data_name(policy, r)))
        .collect();
    join_and(&names)
}

/// Art. 15(1)(a).
fn purposes(policy: &Policy, held: &Held, doc: &mut Document) {
    doc.heading("Why we hold your information, and our legal basis");
    let mut rows: Vec<Vec<String>> = held_purposes(policy, held)
        .into_iter()
        .map(|p| {
            vec![
                p.description.clone(),
                held_data_names(policy, held, &p.categories),
                basis_text(p),
            ]
        })
        .collect();
    rows.extend(
        undeclared(&held.purposes, |id| {
            policy.purposes.iter().any(|p| p.id.as_str() == id)
        })
        .into_iter()
        .map(|id| {
            vec![
                id.clone(),
                String::new(),
                "Not described in our current privacy notice: ask us about it".to_string(),
            ]
        }),
    );
    if rows.is_empty() {
        doc.para("We do not use any of your information for any purpose.");
        return;
    }
    doc.para("We hold and use your information for these purposes only:");
    doc.table(
        &["Purpose", "Your information it uses", "Legal basis"],
        rows,
    );
}

fn basis_text(p: &Purpose) -> String {
    let mut basis = capitalise(p.basis.label());
    if let Some(interest) = &p.interest {
        basis = format!("{basis}: {}", **interest);
    }
    if let Some(law) = &p.obligation {
        basis = format!("{basis}: {}", **law);
    }
    if *p.basis == LegalBasis::Consent {
        basis.push_str(". You can withdraw your consent at any time");
    }
    basis
}

/// Art. 15(1)(b).
fn categories(policy: &Policy, held: &Held, doc: &mut Document) {
    doc.heading("The information we hold about you");
    let mut rows: Vec<Vec<String>> = held_categories(policy, held)
        .into_iter()
        .map(|c| {
            let fields: Vec<String> = c
                .fields
                .iter()
                .map(|f| {
                    f.description
                        .clone()
                        .unwrap_or_else(|| f.name.replace('_', " "))
                })
                .collect();
            let mut name = c.name.clone();
            if *c.sensitivity == Sensitivity::Special {
                name.push_str(" (special category)");
            }
            vec![name, join_and(&fields)]
        })
        .collect();
    rows.extend(
        undeclared(&held.categories, |id| {
            policy.categories.iter().any(|c| c.id.as_str() == id)
        })
        .into_iter()
        .map(|id| vec![id.clone(), String::new()]),
    );
    if rows.is_empty() {
        doc.para("We hold no personal information about you.");
        return;
    }
    doc.table(&["Information", "What it includes"], rows);
}

/// Art. 15(1)(c) and 15(2): recipients of held data for held purposes, and
/// where they are outside the territory, the safeguard.
fn recipients(policy: &Policy, held: &Held, doc: &mut Document) {
    doc.heading("Who receives your information");
    let purposes = held_purposes(policy, held);
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut abroad = false;
    for r in &policy.recipients {
        let uses: Vec<String> = purposes
            .iter()
            .filter(|p| p.recipients.iter().any(|x| x.as_str() == r.id.as_str()))
            .map(|p| lower_first(&p.name))
            .collect();
        let data = held_data_names(policy, held, &r.categories);
        if uses.is_empty() || data.is_empty() {
            continue;
        }
        let transfer = transfer_text(policy, &TransferParty::recipient(r));
        abroad |= transfer.is_some();
        let mut who = format!("{} ({})", r.name, r.kind.label());
        if let Some(d) = &r.description {
            who = format!("{who}: {d}");
        }
        rows.push(vec![
            who,
            data,
            join_and(&uses),
            where_text(r.country.as_str(), transfer),
        ]);
    }
    // Hosting and backup providers store everything held, for every purpose.
    let stored = policy
        .storage
        .iter()
        .filter(|_| !held.categories.is_empty());
    for s in stored {
        let transfer = transfer_text(policy, &TransferParty::storage(s));
        // Our own systems at home receive nothing; abroad they are a transfer.
        let who = match (&s.provider, &transfer) {
            (Some(provider), _) => {
                format!("{provider} (hosting or backup provider): {}", s.description)
            }
            (None, Some(_)) => s.description.clone(),
            (None, None) => continue,
        };
        abroad |= transfer.is_some();
        rows.push(vec![
            who,
            "All the information above, as stored".to_string(),
            "Storing our data on our behalf".to_string(),
            where_text(s.country.as_str(), transfer),
        ]);
    }
    if rows.is_empty() {
        doc.para("We do not disclose your information to anyone.");
        return;
    }
    doc.para("Your information is disclosed only to the recipients below, and each receives only what it needs:");
    doc.table(
        &[
            "Recipient",
            "Your information they may receive",
            "Why",
            "Where, and the safeguard",
        ],
        rows,
    );
    if abroad {
        doc.para(format!(
            "Where a recipient is outside {}, the transfer is protected as shown. You can ask us for a copy of the safeguards that apply.",
            regime_territory(*policy.policy.regime)
        ));
    }
}

fn where_text(country: &str, transfer: Option<String>) -> String {
    capitalise(&transfer.unwrap_or_else(|| country_name(country)))
}

/// Art. 15(1)(d): for each held purpose, and each held category with its own rule.
fn retention(policy: &Policy, held: &Held, doc: &mut Document) {
    doc.heading("How long we keep your information");
    let by_purpose = held_purposes(policy, held).into_iter().filter_map(|p| {
        p.retention
            .as_ref()
            .map(|r| vec![p.name.clone(), retention_text(policy, r)])
    });
    let by_category = held_categories(policy, held).into_iter().filter_map(|c| {
        c.retention
            .as_ref()
            .map(|r| vec![c.name.clone(), retention_text(policy, r)])
    });
    let rows: Vec<Vec<String>> = by_purpose.chain(by_category).collect();
    if rows.is_empty() {
        doc.para("We keep your information only as long as necessary for the purpose it was collected for.");
        return;
    }
    doc.para("We keep your information for each purpose for the period below, or by the criteria it states:");
    doc.table(&["For", "How long"], rows);
}

/// Art. 15(1)(e).
fn rights(policy: &Policy, held: &Held, doc: &mut Document) {
    doc.heading("Your rights");
    doc.para("You have the right to ask us to:");
    let mut items = vec![
        "correct information that is inaccurate and complete information that is incomplete (right to rectification);".to_string(),
        "erase your information (right to erasure);".to_string(),
        "restrict our use of your information, so that we only store it (right to restriction);".to_string(),
    ];
    let purposes = held_purposes(policy, held);
    let objectable: Vec<String> = purposes
        .iter()
        .filter(|p| {
            !p.marketing
                && matches!(
                    *p.basis,
                    LegalBasis::LegitimateInterest | LegalBasis::PublicTask
                )
        })
        .map(|p| lower_first(&p.name))
        .collect();
    let mut objection = "stop using your information, on grounds relating to your particular situation, where we rely on our legitimate interests or a public task".to_string();
    if !objectable.is_empty() {
        objection.push_str(&format!(" (here: {})", join_and(&objectable)));
    }
    objection.push_str(", unless we have compelling legitimate grounds or need it for legal claims (right to object);");
    items.push(objection);
    items.push("stop using your information for direct marketing, at any time and without giving a reason (right to object to direct marketing);".to_string());
    items.push("give you the information you provided in a structured, machine-readable format, or send it to another organisation (right to data portability).".to_string());
    doc.list(items);
    if purposes.iter().any(|p| *p.basis == LegalBasis::Consent) {
        doc.para("You can also withdraw your consent at any time, where we rely on it, without affecting what was done before.");
    }
    let mut how = format!("To use any of these rights, {}.", policy.rights.contact);
    if let Some(url) = &policy.rights.portal_url {
        how.push_str(&format!(" You can also use our privacy centre at {url}."));
    }
    doc.para(how);
}

/// Art. 15(1)(f): to the controller first, then the regulator.
fn complaints(policy: &Policy, doc: &mut Document) {
    doc.heading("Your right to complain");
    doc.para(format!(
        "If you are unhappy with how we use your personal information or with this answer, please complain to us first: {}.",
        complaint_contact(policy)
    ));
    doc.para(format!(
        "You also have the right to complain at any time to {}.",
        regulator_reference(policy)
    ));
}

/// Art. 15(1)(g): where data did not come from the person, its source.
fn sources(policy: &Policy, held: &Held, doc: &mut Document) {
    doc.heading("Where your information came from");
    let not_from_you: Vec<String> = held_categories(policy, held)
        .into_iter()
        .filter(|c| *c.source != DataSource::Provided)
        .map(|c| {
            let how = match *c.source {
                DataSource::Inferred => "inferred by us from other information",
                _ => "observed by us",
            };
            match &c.collected_from {
                Some(from) => format!("{}: {from} ({how})", c.name),
                None => format!("{} ({how})", c.name),
            }
        })
        .collect();
    if not_from_you.is_empty() {
        doc.para("You gave us the information we hold about you.");
    } else {
        doc.para("You gave us the information we hold about you, except:");
        doc.list(not_from_you);
    }
    let mut channels: Vec<String> = Vec::new();
    for s in &held.sources {
        if !channels.contains(s) {
            channels.push(s.clone());
        }
    }
    if !channels.is_empty() {
        doc.para(format!(
            "Our records show that it reached us through: {}.",
            join_and(&channels)
        ));
    }
}

/// Art. 15(1)(h): the automated decisions made for held purposes, or that
/// there are none.
fn automated_decisions(policy: &Policy, held: &Held, doc: &mut Document) {
    let decisions = policy
        .automated_decisions
        .as_ref()
        .map(|d| d.decisions.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|d| held.holds_purpose(&d.purpose))
        .collect();
    automated_decisions_section(
        policy,
        decisions,
        "We make the decisions below about you by automated means.",
        doc,
    );
}

#[cfg(test)]
#[path = "access_tests.rs"]
mod tests;
