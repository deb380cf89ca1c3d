//! The privacy notice (Arts. 13 and 14), generated entirely from the policy.

use super::words::*;
use super::{Capabilities, Document, cookies};
use crate::model::*;
use crate::terms::*;

/// The notice, claiming no capability of the running system (see
/// [`notice_with`]).
pub fn notice(policy: &Policy) -> Document {
    notice_with(policy, &Capabilities::default())
}

/// The notice, stating what the running configuration does (`capabilities`)
/// and nothing it does not.
pub fn notice_with(policy: &Policy, capabilities: &Capabilities) -> Document {
    let c = &policy.controller;
    let mut doc = Document::new(format!("Privacy notice of {}", c.legal_name));
    doc.para(format!(
        "Version {}, effective {}. This notice explains how we use the personal information you give us or that we collect when you use {}.",
        *policy.policy.version,
        policy.policy.effective,
        join_and(&policy.policy.applies_to),
    ));
    who_we_are(policy, &mut doc);
    what_we_collect(policy, &mut doc);
    purposes(policy, &mut doc);
    special_categories(policy, &mut doc);
    automated_decisions(policy, &mut doc);
    recipients(policy, capabilities, &mut doc);
    transfers(policy, &mut doc);
    retention(policy, capabilities, &mut doc);
    marketing(policy, &mut doc);
    objection(policy, &mut doc);
    rights(policy, &mut doc);
    complaints(policy, &mut doc);
    cookie_summary(policy, &mut doc);
    security(policy, capabilities, &mut doc);
    changes(policy, capabilities, &mut doc);
    doc
}

fn who_we_are(policy: &Policy, doc: &mut Document) {
    let c = &policy.controller;
    doc.heading("Who we are");
    let trading = c
        .trading_name
        .as_ref()
        .map(|t| format!(" (\u{201c}{t}\u{201d})"))
        .unwrap_or_default();
    doc.para(format!(
        "The controller of your personal information is {}{trading}, a company registered in {} with company number {}, whose registered office is at {}.",
        *c.legal_name, c.registered_in, *c.company_number, *c.registered_office
    ));
    if let Some(group) = &c.group {
        doc.para(format!(
            "This notice is given on behalf of {group}: \u{201c}we\u{201d}, \u{201c}us\u{201d} and \u{201c}our\u{201d} mean each of them."
        ));
    }
    let regulator = c
        .regulator
        .short_name
        .as_deref()
        .unwrap_or(&c.regulator.name);
    doc.para(format!(
        "We are registered with the {} ({regulator}) under registration number {}.",
        c.regulator.name, *c.regulator.registration
    ));
    let dpo_contact = c.dpo.contact.as_deref().unwrap_or(&c.contact_address);
    let dpo_email = c
        .dpo
        .email
        .as_ref()
        .map(|e| format!(", or by email at {}", **e))
        .unwrap_or_default();
    doc.para(format!(
        "Our Data Protection Officer is {}, who you can contact at {dpo_contact}{dpo_email}.",
        *c.dpo.name
    ));
    let mut contact = vec![
        format!("By post: {}", *c.contact_address),
        format!("By telephone: {}", c.phone),
    ];
    if let Some(email) = &c.email {
        contact.push(format!("By email: {email}"));
    }
    if let Some(rep) = &c.representative {
        contact.push(format!("Our representative: {rep}"));
    }
    doc.para("You can contact us:");
    doc.list(contact);
    doc.para(format!(
        "This notice applies to the personal information we process through {}, under {}.",
        join_and(&policy.policy.applies_to),
        policy.policy.regime.label()
    ));
    if !policy.policy.excludes.is_empty() {
        doc.para(format!(
            "It does not apply to {}.",
            join_and(&policy.policy.excludes)
        ));
    }
    doc.para(
        "Our websites and apps may link to other websites. This notice applies only to ours: please read the privacy notice of any other website before you give it personal information.",
    );
}

fn what_we_collect(policy: &Policy, doc: &mut Document) {
    doc.heading("What we collect and where it comes from");
    doc.para("We collect only the categories of personal information below; anything else is refused when it reaches us.");
    let rows = policy
        .categories
        .iter()
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
            let mut source = c.source.label().to_string();
            if let Some(from) = &c.collected_from {
                source = format!("{source}: {from}");
            }
            let mut name = c.name.clone();
            if *c.sensitivity == Sensitivity::Special {
                name.push_str(" (special category)");
            }
            vec![name, join_and(&fields), source, requirement_text(c)]
        })
        .collect();
    doc.table(
        &[
            "Information",
            "What it includes",
            "Where it comes from",
            "Must you give it?",
        ],
        rows,
    );
    let subjects: Vec<String> = policy
        .subjects
        .iter()
        .map(|s| lower_first(&s.name))
        .collect();
    if !subjects.is_empty() {
        doc.para(format!(
            "We hold this information about {}.",
            join_and(&subjects)
        ));
    }
}

/// Art. 13(2)(e) for one category.
fn requirement_text(c: &Category) -> String {
    let Some(requirement) = &c.requirement else {
        return "Not applicable: we do not ask you for it".to_string();
    };
    let mut text = match **requirement {
        Requirement::Voluntary => "No, it is up to you".to_string(),
        r => format!("Yes: it is {}", r.label()),
    };
    if let Some(consequence) = &c.if_not_provided {
        text.push_str(&format!(". If you do not give it, {consequence}"));
    }
    text.push('.');
    text
}

fn special_categories(policy: &Policy, doc: &mut Document) {
    let mut rows = Vec::new();
    for p in &policy.purposes {
        for c in &policy.categories {
            let used = p
                .categories
                .iter()
                .any(|r| r.split('.').next() == Some(c.id.as_str()));
            if let (true, Some(condition)) = (used, &c.art9_condition) {
                rows.push(vec![
                    p.name.clone(),
                    c.name.clone(),
                    capitalise(condition.label()),
                ]);
            }
        }
    }
    if rows.is_empty() {
        return;
    }
    doc.subheading("Special category information");
    doc.para("Where we use special category information, the law also requires one of the conditions below:");
    doc.table(&["Purpose", "Information", "Condition"], rows);
}

fn automated_decisions(policy: &Policy, doc: &mut Document) {
    let decisions = policy
        .automated_decisions
        .as_ref()
        .map(|d| d.decisions.iter().collect())
        .unwrap_or_default();
    automated_decisions_section(
        policy,
        decisions,
        "We make the decisions below by automated means.",
        doc,
    );
}

/// Art. 13(2)(f), 15(1)(h): the automated decisions given, or a statement
/// that there are none. `intro` opens the list (the notice speaks of
/// everyone, an access report of the person).
pub(super) fn automated_decisions_section(
    policy: &Policy,
    decisions: Vec<&AutomatedDecision>,
    intro: &str,
    doc: &mut Document,
) {
    doc.heading("Automated decisions and profiling");
    if decisions.is_empty() {
        doc.para("We do not make decisions about you based solely on automated processing, including profiling, that produce legal effects concerning you or similarly significantly affect you.");
        return;
    }
    doc.para(format!(
        "{intro} You can ask for a person to review any of them, give your point of view and contest the decision."
    ));
    let rows = decisions
        .into_iter()
        .map(|d| {
            vec![
                d.name.to_string(),
                purpose_name(policy, &d.purpose),
                d.logic.clone(),
                d.consequences.clone(),
            ]
        })
        .collect();
    doc.table(
        &[
            "Decision",
            "Purpose",
            "How it works",
            "What it means for you",
        ],
        rows,
    );
}

fn purposes(policy: &Policy, doc: &mut Document) {
    doc.heading("How we use your information and our legal basis");
    doc.para("We use your personal information only for the purposes below. Each use states its purpose and receives only the information that purpose needs.");
    let rows = policy
        .purposes
        .iter()
        .map(|p| {
            let mut basis = capitalise(p.basis.label());
            if let Some(interest) = &p.interest {
                basis = format!("{basis}: {}", **interest);
            }
            if let Some(law) = &p.obligation {
                basis = format!("{basis}: {}", **law);
            }
            if !p.exemptions.is_empty() {
                let permits: Vec<String> =
                    p.exemptions.iter().map(|e| e.label().to_string()).collect();
                basis = format!(
                    "{basis}. The law permits (but does not require) us to disclose information for {}",
                    join_and(&permits)
                );
            }
            vec![
                p.description.clone(),
                data_names(policy, &p.categories),
                basis,
            ]
        })
        .collect();
    doc.table(&["Purpose", "Information used", "Legal basis"], rows);
    let used: Vec<LegalBasis> = LegalBasis::ALL
        .iter()
        .copied()
        .filter(|b| policy.purposes.iter().any(|p| *p.basis == *b))
        .collect();
    doc.subheading("Our legal bases");
    doc.list(used.into_iter().map(|b| basis_explanation(b).to_string()));
}

fn basis_explanation(basis: LegalBasis) -> &'static str {
    match basis {
        LegalBasis::Contract => {
            "Contract: we need your information to perform a contract with you, or to take steps you asked for before entering into one."
        }
        LegalBasis::Consent => {
            "Consent: you have agreed to the use, for example to receive marketing emails. You can withdraw consent at any time, as easily as you gave it, by updating your preferences."
        }
        LegalBasis::LegitimateInterest => {
            "Legitimate interests: we use your information to operate, improve and promote our services and to protect our business, where our interests are not outweighed by yours. You can object at any time."
        }
        LegalBasis::LegalObligation => {
            "Legal obligation: we must use your information to comply with the law."
        }
        LegalBasis::VitalInterest => {
            "Vital interests: we must use your information to protect someone's life."
        }
        LegalBasis::PublicTask => {
            "Public task: we use your information to carry out a task in the public interest."
        }
    }
}

fn recipients(policy: &Policy, capabilities: &Capabilities, doc: &mut Document) {
    doc.heading("Who receives your information");
    let mut promises = Vec::new();
    if policy.sharing.never_sell {
        promises.push("We will not sell or rent your information to third parties.".to_string());
    }
    if policy.sharing.no_third_party_marketing {
        promises.push(
            "We will not share your information with third parties for their own marketing."
                .to_string(),
        );
    }
    doc.para(promises.join(" "));
    let rows = policy
        .recipients
        .iter()
        .map(|r| {
            let uses: Vec<String> = policy
                .purposes
                .iter()
                .filter(|p| p.recipients.iter().any(|x| x.as_str() == r.id.as_str()))
                .map(|p| lower_first(&p.name))
                .collect();
            let mut terms = capitalise(r.form.label());
            if let Some(agreement) = &r.agreement {
                terms.push_str(&format!(
                    "; under an agreement ({}) that requires them to keep it secure and not to use it for their own direct marketing",
                    **agreement
                ));
            }
            let mut who = format!("{} ({})", r.name, r.kind.label());
            if let Some(d) = &r.description {
                who = format!("{who}: {d}");
            }
            vec![who, data_names(policy, &r.categories), join_and(&uses), terms]
        })
        .chain(policy.storage.iter().filter_map(|s| {
            let provider = s.provider.as_ref()?;
            Some(vec![
                format!("{provider} (hosting or backup provider): {}", s.description),
                "All the information in this notice, as stored".to_string(),
                "Storing our data on our behalf".to_string(),
                "Under an agreement that requires them to keep it secure and to use it only on our instructions".to_string(),
            ])
        }))
        .collect::<Vec<_>>();
    doc.table(
        &[
            "Recipient",
            "Information they may receive",
            "Why",
            "On what terms",
        ],
        rows,
    );
    let recorded = if capabilities.tamper_evident_audit {
        " and recorded"
    } else {
        ""
    };
    doc.para(format!("Service providers receive only the information needed for the service they provide for us, and analytics and search engine providers only information that does not directly identify you. Every disclosure is checked against this notice when it happens{recorded}."));
}

fn transfers(policy: &Policy, doc: &mut Document) {
    let territory = regime_territory(*policy.policy.regime);
    doc.heading(format!("Transfers outside {territory}"));
    let mut rows = Vec::new();
    for r in &policy.recipients {
        if let Some(text) = transfer_text(policy, &TransferParty::recipient(r)) {
            rows.push(vec![r.name.clone(), text]);
        }
    }
    for s in &policy.storage {
        if let Some(text) = transfer_text(policy, &TransferParty::storage(s)) {
            let who = match &s.provider {
                Some(p) => format!("{} ({p})", s.description),
                None => s.description.clone(),
            };
            rows.push(vec![who, text]);
        }
    }
    if rows.is_empty() {
        doc.para(format!(
            "We do not transfer your personal information outside {territory}."
        ));
        return;
    }
    doc.para(format!(
        "We transfer personal information outside {territory} only where the destination has an adequacy decision or the transfer is protected by an approved safeguard, and we refuse any other transfer when it is attempted."
    ));
    doc.table(&["Who or what", "Where, and the safeguard"], rows);
    doc.para("You can ask us for a copy of the safeguards that apply.");
}

fn retention(policy: &Policy, capabilities: &Capabilities, doc: &mut Document) {
    doc.heading("How long we keep your information");
    let erased = if capabilities.retention_sweep {
        " When its time ends, it is erased automatically."
    } else {
        " When its time ends, we erase it."
    };
    doc.para(format!("We keep personal information only as long as necessary for the purpose it was collected for, or as long as a contract you hold with us or the law requires.{erased} We review these periods regularly."));
    let rows = policy
        .purposes
        .iter()
        .filter_map(|p| {
            p.retention
                .as_ref()
                .map(|r| vec![p.name.clone(), retention_text(policy, r)])
        })
        .collect();
    doc.table(&["Purpose", "How long"], rows);
}

fn marketing(policy: &Policy, doc: &mut Document) {
    let m = &policy.marketing;
    if m.channels.is_empty() {
        return;
    }
    doc.heading("Marketing and your choices");
    let opt_in: Vec<String> = m
        .channels
        .iter()
        .filter(|c| *c.mode == ChannelMode::OptIn)
        .filter_map(|c| Channel::parse(&c.channel).map(|x| x.label().to_string()))
        .collect();
    let opt_out: Vec<String> = m
        .channels
        .iter()
        .filter(|c| *c.mode == ChannelMode::OptOut)
        .filter_map(|c| Channel::parse(&c.channel).map(|x| x.label().to_string()))
        .collect();
    if !opt_in.is_empty() {
        doc.para(format!(
            "We will not contact you for marketing purposes by {} unless you have given your prior consent.",
            join_or(&opt_in)
        ));
    }
    if !opt_out.is_empty() {
        doc.para(format!(
            "We will not contact you for marketing purposes by {} if you have told us that you do not wish to be contacted.",
            join_or(&opt_out)
        ));
    }
    if !m.soft_opt_in {
        doc.para(
            "Being a customer does not by itself mean we will email you marketing: we ask first.",
        );
    }
    let how = m.how_to_change.as_deref().unwrap_or("contact us");
    doc.para(format!(
        "You can change your marketing preferences at any time: {how}. Withdrawing consent is as easy as giving it, and takes effect immediately."
    ));
}

fn join_or(items: &[String]) -> String {
    match items {
        [init @ .., last] if !init.is_empty() => format!("{} or {last}", init.join(", ")),
        _ => join_and(items),
    }
}

/// Art. 21(4): the right to object, explicitly and apart from other rights.
fn objection(policy: &Policy, doc: &mut Document) {
    doc.heading("Your right to object");
    let marketing = policy.purposes.iter().any(|p| p.marketing);
    if marketing {
        doc.para(format!(
            "You have the right to object at any time to our use of your information for direct marketing. If you object, we stop using it for direct marketing. To object, {}.",
            policy.marketing.how_to_change.as_deref().unwrap_or(&policy.rights.contact)
        ));
    }
    let objectable: Vec<String> = policy
        .purposes
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
    if !objectable.is_empty() {
        doc.para(format!(
            "You also have the right to object, on grounds relating to your particular situation, to our use of your information for {}. We then stop, unless we have compelling legitimate grounds that override your interests, rights and freedoms, or need the information for legal claims.",
            join_and(&objectable)
        ));
    }
}

fn rights(policy: &Policy, doc: &mut Document) {
    doc.heading("Your rights");
    doc.para("You have the right to:");
    doc.list([
        "access your personal information and receive a copy of it (right of access);".to_string(),
        "have inaccurate information corrected and incomplete information completed (right to rectification);".to_string(),
        "have your information erased (right to erasure);".to_string(),
        "restrict our use of your information, so that we only store it (right to restriction);".to_string(),
        "object to our use of your information, as set out under \u{201c}Your right to object\u{201d} above (right to object);".to_string(),
        "receive the information you gave us in a structured, machine-readable format, or have it sent to another organisation (right to data portability);".to_string(),
        "withdraw your consent at any time, where we rely on it, without affecting what was done before.".to_string(),
    ]);
    let mut how = format!("To use any of these rights, {}.", policy.rights.contact);
    if let Some(url) = &policy.rights.portal_url {
        how.push_str(&format!(" You can also use our privacy centre at {url}."));
    }
    doc.para(how);
    doc.para("We respond within one month of receiving your request, or of receiving what we need to confirm your identity. Where a request is complex or you make several, we may extend this by two further months, and we will tell you within the first month and why. Your first copy is free.");
    doc.para("There may be legal reasons why we cannot fulfil all of a request, for example where the law requires us to keep records. If so, we tell you which information we keep and the legal ground for keeping it.");
}

fn complaints(policy: &Policy, doc: &mut Document) {
    doc.heading("Your right to complain");
    doc.para(format!(
        "If you are unhappy with how we use your personal information, please complain to us first: {}. We will acknowledge your complaint, look into it and tell you the outcome.",
        complaint_contact(policy)
    ));
    doc.para(format!(
        "You also have the right to make a complaint at any time to {}.",
        regulator_reference(policy)
    ));
}

/// Where complaints to the controller go: the complaints contact, or the
/// rights contact when none is given.
pub(super) fn complaint_contact(policy: &Policy) -> &str {
    policy
        .rights
        .complaints
        .as_deref()
        .unwrap_or(&policy.rights.contact)
}

/// "the <regulator> (<short>), the supervisory authority for data
/// protection: <url>, <address>".
pub(super) fn regulator_reference(policy: &Policy) -> String {
    let r = &policy.controller.regulator;
    let short = r
        .short_name
        .as_deref()
        .map(|s| format!(" ({s})"))
        .unwrap_or_default();
    let address = r
        .address
        .as_deref()
        .map(|a| format!(", {a}"))
        .unwrap_or_default();
    format!(
        "the {}{short}, the supervisory authority for data protection: {}{address}",
        r.name, r.url
    )
}

fn cookie_summary(policy: &Policy, doc: &mut Document) {
    doc.heading("Cookies");
    doc.para("Cookies are small pieces of information that a website stores in your browser so that it can recognise you when you return, for example to remember your login details and to improve our services.");
    doc.para(cookies::choice_text(policy));
    let rows = cookies::rows(policy)
        .into_iter()
        .map(|r| r.into_iter().take(4).collect())
        .collect();
    doc.table(&["Cookie", "Set by", "Type", "Why"], rows);
    doc.para("Our cookie policy lists every cookie with its lifetime. You can also switch cookies off in your browser's settings; turning them off may mean some parts of our websites do not work.");
}

fn security(policy: &Policy, capabilities: &Capabilities, doc: &mut Document) {
    doc.heading("How we keep your information secure");
    let mut measures: Vec<String> = policy
        .security
        .measures
        .iter()
        .map(|m| format!("{}.", capitalise(m)))
        .collect();
    if capabilities.tamper_evident_audit {
        measures.push(
            "Every access to and disclosure of personal information is written to a tamper-evident log."
                .to_string(),
        );
    }
    doc.list(measures);
    doc.para("Where you have a password for parts of our websites, please keep it confidential and do not share it with anyone.");
}

fn changes(policy: &Policy, capabilities: &Capabilities, doc: &mut Document) {
    doc.heading("Changes to this notice");
    let directly = if capabilities.change_notices {
        ", and we tell you directly about changes that affect how we use your information, asking for your consent again where we rely on it"
    } else {
        ". Please check it from time to time"
    };
    doc.para(format!(
        "We may change this notice. We publish every change at {}, with its version and date{directly}.",
        policy.policy.notice_url
    ));
    let rows = policy
        .policy
        .changelog
        .iter()
        .map(|e| vec![e.version.clone(), e.date.to_string(), e.summary.clone()])
        .collect();
    doc.table(&["Version", "Date", "What changed"], rows);
}

pub fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
