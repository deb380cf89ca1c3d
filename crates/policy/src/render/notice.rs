//! The privacy notice (Arts. 13 and 14), generated entirely from the policy.

use super::words::*;
use super::{Document, cookies};
use crate::model::*;
use crate::terms::*;

pub fn notice(policy: &Policy) -> Document {
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
    recipients(policy, &mut doc);
    transfers(policy, &mut doc);
    retention(policy, &mut doc);
    marketing(policy, &mut doc);
    rights(policy, &mut doc);
    complaints(policy, &mut doc);
    cookie_summary(policy, &mut doc);
    security(policy, &mut doc);
    changes(policy, &mut doc);
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
    doc.para(format!(
        "Our Data Protection Officer is {}, who you can contact at {dpo_contact}.",
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
            vec![name, join_and(&fields), source]
        })
        .collect();
    doc.table(
        &["Information", "What it includes", "Where it comes from"],
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

fn recipients(policy: &Policy, doc: &mut Document) {
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
        .collect();
    doc.table(
        &[
            "Recipient",
            "Information they may receive",
            "Why",
            "On what terms",
        ],
        rows,
    );
    doc.para("Service providers receive only the information needed for the service they provide for us, and analytics and search engine providers only information that does not directly identify you. Every disclosure is checked against this notice when it happens and recorded.");
}

fn transfers(policy: &Policy, doc: &mut Document) {
    let territory = regime_territory(*policy.policy.regime);
    doc.heading(format!("Transfers outside {territory}"));
    let mut rows = Vec::new();
    for r in &policy.recipients {
        let safeguard = r.safeguard.as_ref().map(|s| **s);
        if let Some(text) = transfer_text(policy, &r.country, safeguard, r.dpf_certified) {
            rows.push(vec![r.name.clone(), text]);
        }
    }
    for s in &policy.storage {
        let safeguard = s.safeguard.as_ref().map(|x| **x);
        if let Some(text) = transfer_text(policy, &s.country, safeguard, s.dpf_certified) {
            rows.push(vec![s.description.clone(), text]);
        }
    }
    if rows.is_empty() {
        doc.para(format!(
            "We do not transfer your personal information outside {territory}."
        ));
        return;
    }
    doc.para(format!(
        "We transfer personal information outside {territory} only where the destination has an adequacy decision or the transfer is protected by an approved safeguard. Custodian refuses any other transfer when it is attempted."
    ));
    doc.table(&["Who or what", "Where, and the safeguard"], rows);
    doc.para("You can ask us for a copy of the safeguards that apply.");
}

fn retention(policy: &Policy, doc: &mut Document) {
    doc.heading("How long we keep your information");
    doc.para("We keep personal information only as long as necessary for the purpose it was collected for, or as long as a contract you hold with us or the law requires. Expiry is computed when data is collected and when relationships end, and data past its time is erased automatically. We review these periods regularly.");
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

fn rights(policy: &Policy, doc: &mut Document) {
    doc.heading("Your rights");
    doc.para("You have the right to:");
    doc.list([
        "access your personal information and receive a copy of it (right of access);".to_string(),
        "have inaccurate information corrected and incomplete information completed (right to rectification);".to_string(),
        "have your information erased (right to erasure);".to_string(),
        "restrict our use of your information, so that we only store it (right to restriction);".to_string(),
        "object to our use of your information for direct marketing at any time, and to uses based on our legitimate interests or on a task in the public interest (right to object);".to_string(),
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
    let r = &policy.controller.regulator;
    doc.heading("Your right to complain");
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
    doc.para(format!(
        "You have the right to make a complaint at any time to the {}{short}, the supervisory authority for data protection: {}{address}. We would, however, appreciate the chance to deal with your concerns first.",
        r.name, r.url
    ));
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

fn security(policy: &Policy, doc: &mut Document) {
    doc.heading("How we keep your information secure");
    doc.list(
        policy
            .security
            .measures
            .iter()
            .map(|m| format!("{}.", capitalise(m))),
    );
    doc.para("Where you have a password for parts of our websites, please keep it confidential and do not share it with anyone.");
}

fn changes(policy: &Policy, doc: &mut Document) {
    doc.heading("Changes to this notice");
    doc.para(format!(
        "We may change this notice. We publish every change at {}, with its version and date, and we tell you directly about changes that affect how we use your information, asking for your consent again where we rely on it.",
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
