//! The cookie policy, generated from the policy's cookie declarations.

use super::Document;
use super::notice::capitalise;
use super::words::*;
use crate::model::*;
use crate::period::Period;
use crate::terms::*;

/// One row per cookie: name, who sets it, type, why, lifetime.
pub fn rows(policy: &Policy) -> Vec<Vec<String>> {
    policy
        .cookies
        .iter()
        .map(|c| {
            let provider = if c.provider.as_str() == "first-party" {
                policy
                    .controller
                    .trading_name
                    .clone()
                    .unwrap_or_else(|| c.provider.to_string())
            } else {
                recipient_name(policy, &c.provider)
            };
            let lifetime = match Period::parse(&c.duration) {
                Some(p) => p.to_string(),
                None => "until you close your browser".to_string(),
            };
            let description = if *c.local_storage {
                format!(
                    "{} Kept as a cookie and in your browser's local storage, both named `{}`.",
                    c.description, *c.name
                )
            } else {
                c.description.clone()
            };
            vec![
                c.name.to_string(),
                provider,
                c.category.label().to_string(),
                description,
                lifetime,
            ]
        })
        .collect()
}

pub fn choice_text(policy: &Policy) -> String {
    let optional = policy
        .cookies
        .iter()
        .any(|c| *c.category != CookieCategory::StrictlyNecessary);
    if optional {
        {
            let kept = policy
                .choice_storage()
                .and_then(|c| Period::parse(&c.duration))
                .map(|p| format!(" We keep your choice for {p}, then ask again."))
                .unwrap_or_default();
            format!(
                "We set strictly necessary cookies because the website cannot work without them. We set every other cookie only if you accept it in our cookie banner, and you can change your choice at any time, on this page or in the banner; rejecting a category you accepted deletes the cookies of that category we set ourselves.{kept} We honour the Global Privacy Control signal your browser may send as an objection to the sale or sharing of your data, to targeted advertising and to third-party marketing cookies."
            )
        }
    } else {
        "We set only strictly necessary cookies, without which the website cannot work.".to_string()
    }
}

pub fn cookie_policy(policy: &Policy) -> Document {
    let name = policy
        .controller
        .trading_name
        .as_deref()
        .unwrap_or(&policy.controller.legal_name);
    let mut doc = Document::new(format!("Cookie policy of {name}"));
    doc.para(format!(
        "Version {}, effective {}.",
        *policy.policy.version, policy.policy.effective
    ));
    doc.heading("What cookies are");
    doc.para("Cookies are small pieces of information that a website stores in your browser so that it can recognise you when you visit again.");
    doc.heading("Your choices");
    doc.para(choice_text(policy));
    doc.para("You can also switch cookies off in your browser's settings. Turning cookies off may mean some parts of our websites do not work.");
    doc.heading("The cookies we use");
    for category in CookieCategory::ALL {
        let rows: Vec<Vec<String>> = rows(policy)
            .into_iter()
            .zip(&policy.cookies)
            .filter(|(_, c)| *c.category == *category)
            .map(|(row, _)| row)
            .collect();
        if rows.is_empty() {
            continue;
        }
        doc.subheading(format!("{} cookies", category.label()));
        doc.para(category_text(policy, *category));
        doc.table(
            &[
                "Cookie",
                "Set by",
                "Type",
                "What it does",
                "How long it lasts",
            ],
            rows,
        );
    }
    doc.heading("More information");
    doc.para(format!(
        "Our privacy notice at {} explains how we use personal information, your rights, and how to contact us.",
        policy.policy.notice_url
    ));
    doc
}

fn category_text(policy: &Policy, category: CookieCategory) -> String {
    let purposes: Vec<String> = policy
        .cookies
        .iter()
        .filter(|c| *c.category == category)
        .filter_map(|c| {
            c.purpose
                .as_ref()
                .map(|p| lower_first(&purpose_name(policy, p)))
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    match category {
        CookieCategory::StrictlyNecessary => {
            "These make the website work. They are always on.".to_string()
        }
        _ if purposes.is_empty() => "These are set only with your consent.".to_string(),
        _ => format!(
            "{}. These are set only with your consent.",
            capitalise(&join_and(&purposes))
        ),
    }
}
