//! Semantic validation: every reference resolves, every id is unique, and the
//! policy keeps the rules of the regime it declares. Each check reports where
//! the fault is and what would be right; all faults are reported, not the first.

use crate::day::Day;
use crate::diagnostic::Diagnostic;
use crate::located::At;
use crate::model::*;
use crate::period::Period;
use crate::rules::adequacy::{AdequacyList, TransferStatus};
use crate::terms::*;
use std::collections::HashMap;
use std::ops::Range;

mod cookies;
mod data;
mod purposes;
mod transfers;

/// Limits that keep the compiled decision tables fixed-size.
pub const MAX_FIELDS: usize = crate::compiled::FieldSet::CAPACITY;
pub const MAX_RECIPIENTS: usize = 64;
pub const MAX_RELATIONSHIPS: usize = 64;

pub fn validate(policy: &Policy) -> Vec<Diagnostic> {
    let mut check = Checker {
        policy,
        out: Vec::new(),
    };
    check.controller();
    check.unique_ids();
    check.categories();
    check.relationships();
    check.retention_rules();
    check.channels();
    check.purposes();
    check.recipients();
    check.storage();
    check.cookies();
    check.automated_decisions();
    check.limits();
    crate::datasets::validate(policy, &mut check.out);
    check.out.sort_by_key(|d| d.span.start);
    check.out
}

pub(super) struct Checker<'p> {
    pub(super) policy: &'p Policy,
    pub(super) out: Vec<Diagnostic>,
}

impl<'p> Checker<'p> {
    fn error(&mut self, span: Range<usize>, message: String, hint: impl Into<String>) {
        self.out.push(Diagnostic::new(span, message, hint));
    }

    fn not_empty(&mut self, value: &At<String>, what: &str) {
        if value.trim().is_empty() {
            self.error(
                value.span(),
                format!("the controller's {what} is empty"),
                format!("state the {what} as published; a notice without it does not identify the controller"),
            );
        }
    }

    fn controller(&mut self) {
        let c = &self.policy.controller;
        self.not_empty(&c.legal_name, "legal name");
        self.not_empty(&c.company_number, "company number");
        self.not_empty(&c.registered_office, "registered office");
        self.not_empty(&c.contact_address, "contact address");
        self.not_empty(
            &c.regulator.registration,
            "registration number with the regulator",
        );
        self.not_empty(&c.dpo.name, "data protection officer");
        match &c.dpo.email {
            Some(email) if email.contains('@') && !email.trim().contains(' ') => {}
            Some(email) => self.error(
                email.span(),
                format!("the data protection officer's email `{}` is not an email address", **email),
                "write an address such as \"dpo@example.com\"",
            ),
            None => self.error(
                c.dpo.name.span(),
                "the data protection officer has no email address".into(),
                "add `email = \"...\"` under [controller.dpo]: the notice and the record of processing give it (Art. 13(1)(b), Art. 30(1)(a))",
            ),
        }
        self.company_number();
        if self.policy.policy.version.trim().is_empty() {
            self.error(
                self.policy.policy.version.span(),
                "the policy version is empty".into(),
                "give every published version an identifier such as \"2.0\"",
            );
        }
    }

    /// Companies House numbers are eight characters: eight digits, or a
    /// two-letter prefix (SC, NI, ...) and six digits.
    fn company_number(&mut self) {
        let c = &self.policy.controller;
        let uk_registered = [
            "England and Wales",
            "Scotland",
            "Northern Ireland",
            "Wales",
            "England",
        ]
        .iter()
        .any(|r| c.registered_in.eq_ignore_ascii_case(r));
        let number = c.company_number.trim();
        if !uk_registered || number.is_empty() {
            return;
        }
        let digits = number.chars().filter(char::is_ascii_digit).count();
        let prefix_ok = number
            .chars()
            .take(2)
            .all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit());
        let valid = number.len() == 8
            && number.is_ascii()
            && prefix_ok
            && digits >= 6
            && number.chars().skip(2).all(|ch| ch.is_ascii_digit());
        if !valid {
            let hint = if number.chars().all(|ch| ch.is_ascii_digit()) && number.len() < 8 {
                format!("Companies House numbers have eight characters: write \"{number:0>8}\"")
            } else {
                "write the eight characters Companies House gives, e.g. \"09028104\" or \"SC123456\"".to_string()
            };
            self.error(
                c.company_number.span(),
                format!("company number `{number}` is not a Companies House number"),
                hint,
            );
        }
    }

    fn unique<'a>(&mut self, what: &str, ids: impl IntoIterator<Item = &'a At<String>>) {
        let mut seen: HashMap<&str, Range<usize>> = HashMap::new();
        for id in ids {
            if id.trim().is_empty() {
                self.error(
                    id.span(),
                    format!("a {what} has an empty id"),
                    "give it a short kebab-case id",
                );
            } else if seen.contains_key(id.as_str()) {
                self.error(
                    id.span(),
                    format!("duplicate {what} id `{id}`"),
                    format!("each {what} needs its own id; rename one of them"),
                );
            } else {
                seen.insert(id.as_str(), id.span());
            }
        }
    }

    fn unique_ids(&mut self) {
        let p = self.policy;
        self.unique("subject category", p.subjects.iter().map(|s| &s.id));
        self.unique("data category", p.categories.iter().map(|c| &c.id));
        self.unique(
            "field",
            p.categories
                .iter()
                .flat_map(|c| c.fields.iter().map(|f| &f.name)),
        );
        self.unique("relationship", p.relationships.iter().map(|r| &r.id));
        self.unique("purpose", p.purposes.iter().map(|x| &x.id));
        self.unique("recipient", p.recipients.iter().map(|r| &r.id));
        self.unique("storage location", p.storage.iter().map(|s| &s.id));
        self.unique("retention rule", p.retention.iter().map(|r| &r.id));
        self.unique(
            "marketing channel",
            p.marketing.channels.iter().map(|c| &c.channel),
        );
        self.unique("cookie", p.cookies.iter().map(|c| &c.name));
    }

    fn reference(&mut self, reference: &At<String>, what: &str, known: &[&str], referrer: &str) {
        if !known.contains(&reference.as_str()) {
            let hint = if known.is_empty() {
                format!("declare the {what} first")
            } else {
                format!("expected one of: {}", known.join(", "))
            };
            self.error(
                reference.span(),
                format!("{referrer} refers to unknown {what} `{reference}`"),
                hint,
            );
        }
    }

    fn retention_reference(&mut self, retention: &At<String>, referrer: &str) {
        let known: Vec<&str> = self
            .policy
            .retention
            .iter()
            .map(|r| r.id.as_str())
            .collect();
        self.reference(retention, "retention rule", &known, referrer);
    }

    /// A `category` or `category.field` reference.
    fn data_reference(&mut self, reference: &At<String>, referrer: &str) {
        let (category, field) = match reference.split_once('.') {
            Some((c, f)) => (c, Some(f)),
            None => (reference.as_str(), None),
        };
        let Some(found) = self
            .policy
            .categories
            .iter()
            .find(|c| c.id.as_str() == category)
        else {
            let known: Vec<&str> = self
                .policy
                .categories
                .iter()
                .map(|c| c.id.as_str())
                .collect();
            self.error(
                reference.span(),
                format!("{referrer} refers to unknown data category `{category}`"),
                format!("expected one of: {}", known.join(", ")),
            );
            return;
        };
        if let Some(field) = field {
            if !found.fields.iter().any(|f| f.name.as_str() == field) {
                let known: Vec<&str> = found.fields.iter().map(|f| f.name.as_str()).collect();
                self.error(
                    reference.span(),
                    format!(
                        "{referrer} refers to unknown field `{field}` of category `{category}`"
                    ),
                    format!("fields of `{category}`: {}", known.join(", ")),
                );
            }
        }
    }

    fn subject_references(&mut self, subjects: &[At<String>], referrer: &str) {
        let known: Vec<&str> = self.policy.subjects.iter().map(|s| s.id.as_str()).collect();
        for s in subjects {
            self.reference(s, "subject category", &known, referrer);
        }
    }
}

#[cfg(test)]
#[path = "../validate_tests.rs"]
mod tests;
