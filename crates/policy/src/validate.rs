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
    check.limits();
    check.out.sort_by_key(|d| d.span.start);
    check.out
}

struct Checker<'p> {
    policy: &'p Policy,
    out: Vec<Diagnostic>,
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
        if self.policy.policy.version.trim().is_empty() {
            self.error(
                self.policy.policy.version.span(),
                "the policy version is empty".into(),
                "give every published version an identifier such as \"2.0\"",
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

    fn categories(&mut self) {
        for category in &self.policy.categories {
            let referrer = format!("category `{}`", category.id);
            if *category.sensitivity == Sensitivity::Special
                && category
                    .art9_condition
                    .as_ref()
                    .is_none_or(|c| c.trim().is_empty())
            {
                self.error(
                    category.id.span(),
                    format!("special-category data `{}` has no Art. 9 condition", category.id),
                    "add art9_condition, e.g. \"explicit-consent\" (Art. 9(2)(a)) or \"employment-law\" (Art. 9(2)(b))",
                );
            }
            if category.fields.is_empty() {
                self.error(
                    category.id.span(),
                    format!("category `{}` declares no fields", category.id),
                    "list its fields, each with a name and a type",
                );
            }
            if let Some(retention) = &category.retention {
                self.retention_reference(retention, &referrer);
            } else {
                // A purpose without retention is reported on its own.
                let used_by_a_purpose = self.policy.purposes.iter().any(|p| {
                    p.categories
                        .iter()
                        .any(|c| c.split('.').next() == Some(category.id.as_str()))
                });
                if !used_by_a_purpose {
                    self.error(
                        category.id.span(),
                        format!("category `{}` has no retention rule", category.id),
                        "give it `retention = \"<rule id>\"`, or use it in a purpose that has one",
                    );
                }
            }
        }
    }

    fn relationships(&mut self) {
        for relationship in &self.policy.relationships {
            let referrer = format!("relationship `{}`", relationship.id);
            self.subject_references(&relationship.subjects, &referrer);
            if relationship.ended_by.is_empty() {
                self.error(
                    relationship.id.span(),
                    format!(
                        "relationship `{}` does not say what ends it",
                        relationship.id
                    ),
                    "list the events in `ended_by`, e.g. [\"account closed\"]",
                );
            }
        }
    }

    fn retention_rules(&mut self) {
        let relationships: Vec<&str> = self
            .policy
            .relationships
            .iter()
            .map(|r| r.id.as_str())
            .collect();
        for rule in &self.policy.retention {
            if Period::parse(&rule.duration).is_none() {
                self.error(
                    rule.duration.span(),
                    format!(
                        "retention rule `{}` has an unreadable duration `{}`",
                        rule.id, *rule.duration
                    ),
                    "write a number and a unit, e.g. \"6 years\", \"13 months\" or \"30 days\"",
                );
            }
            match (&*rule.from, &rule.relationship) {
                (RetentionEvent::RelationshipEnd, None) => self.error(
                    rule.from.span(),
                    format!("retention rule `{}` runs from a relationship's end but names no relationship", rule.id),
                    "add `relationship = \"<relationship id>\"`",
                ),
                (_, Some(r)) => {
                    let referrer = format!("retention rule `{}`", rule.id);
                    self.reference(r, "relationship", &relationships, &referrer);
                }
                _ => {}
            }
        }
    }

    fn channels(&mut self) {
        let soft_opt_in = self.policy.marketing.soft_opt_in;
        for decl in &self.policy.marketing.channels {
            let Some(channel) = Channel::parse(&decl.channel) else {
                let known: Vec<&str> = Channel::ALL.iter().map(|c| c.as_str()).collect();
                self.error(
                    decl.channel.span(),
                    format!("unknown marketing channel `{}`", *decl.channel),
                    format!("expected one of: {}", known.join(", ")),
                );
                continue;
            };
            if channel.needs_opt_in_under_pecr()
                && *decl.mode == ChannelMode::OptOut
                && !soft_opt_in
            {
                self.error(
                    decl.mode.span(),
                    format!("marketing by {} is marked opt-out, but PECR requires prior consent for it", channel.label()),
                    "mark it `mode = \"opt-in\"` (or set marketing.soft_opt_in = true if you rely on the soft opt-in)",
                );
            }
            for c in &decl.categories {
                self.data_reference(c, &format!("marketing channel `{}`", *decl.channel));
            }
        }
    }

    fn purposes(&mut self) {
        let p = self.policy;
        let recipients: Vec<&str> = p.recipients.iter().map(|r| r.id.as_str()).collect();
        let relationships: Vec<&str> = p.relationships.iter().map(|r| r.id.as_str()).collect();
        let channels: Vec<&str> = p
            .marketing
            .channels
            .iter()
            .map(|c| c.channel.as_str())
            .collect();
        for purpose in &p.purposes {
            let referrer = format!("purpose `{}`", purpose.id);
            for c in &purpose.categories {
                self.data_reference(c, &referrer);
            }
            if purpose.categories.is_empty() {
                self.error(
                    purpose.id.span(),
                    format!("purpose `{}` needs no data", purpose.id),
                    "list the categories it needs in `categories`",
                );
            }
            for r in &purpose.recipients {
                self.reference(r, "recipient", &recipients, &referrer);
            }
            for r in &purpose.relationships {
                self.reference(r, "relationship", &relationships, &referrer);
            }
            self.subject_references(&purpose.subjects, &referrer);
            match &purpose.retention {
                Some(r) => self.retention_reference(r, &referrer),
                None => self.error(
                    purpose.id.span(),
                    format!("purpose `{}` has no retention rule", purpose.id),
                    "add `retention = \"<rule id>\"`: data may be kept no longer than necessary",
                ),
            }
            self.basis(purpose);
            for channel in &purpose.channels {
                self.reference(channel, "marketing channel", &channels, &referrer);
                self.channel_use(purpose, channel);
            }
        }
    }

    fn basis(&mut self, purpose: &Purpose) {
        let stated = |s: &Option<At<String>>| s.as_ref().is_some_and(|s| !s.trim().is_empty());
        match *purpose.basis {
            LegalBasis::LegitimateInterest if !stated(&purpose.interest) => self.error(
                purpose.basis.span(),
                format!(
                    "purpose `{}` relies on legitimate interests without stating the interest",
                    purpose.id
                ),
                "add `interest = \"...\"` saying what the interest is (Art. 13(1)(d))",
            ),
            LegalBasis::LegalObligation if !stated(&purpose.obligation) => self.error(
                purpose.basis.span(),
                format!(
                    "purpose `{}` relies on a legal obligation without naming it",
                    purpose.id
                ),
                "add `obligation = \"...\"` naming the law",
            ),
            LegalBasis::Consent if purpose.marketing && purpose.channels.is_empty() => self.error(
                purpose.id.span(),
                format!(
                    "consent purpose `{}` is for marketing but names no channel",
                    purpose.id
                ),
                "add `channels = [...]` from email, phone, sms, post: consent is given per channel",
            ),
            _ => {}
        }
    }

    fn channel_use(&mut self, purpose: &Purpose, channel: &At<String>) {
        let Some(decl) = self
            .policy
            .marketing
            .channels
            .iter()
            .find(|d| d.channel.as_str() == channel.as_str())
        else {
            return;
        };
        if *purpose.basis == LegalBasis::Consent && *decl.mode == ChannelMode::OptOut {
            self.error(
                channel.span(),
                format!(
                    "consent purpose `{}` uses channel `{}`, which the policy marks opt-out",
                    purpose.id, **channel
                ),
                "consent means opt-in: mark the channel `mode = \"opt-in\"`, or use a legitimate-interest purpose for an opt-out channel",
            );
        }
        for needed in &decl.categories {
            if !purpose
                .categories
                .iter()
                .any(|c| c.as_str() == needed.as_str())
            {
                self.error(
                    channel.span(),
                    format!(
                        "purpose `{}` uses channel `{}` but does not list category `{}` that the channel needs",
                        purpose.id, **channel, **needed
                    ),
                    format!("add \"{}\" to the purpose's categories", **needed),
                );
            }
        }
    }

    fn transfer(
        &mut self,
        country: &At<String>,
        safeguard: Option<&At<Safeguard>>,
        dpf_certified: bool,
        what: &str,
    ) {
        if country.len() != 2 || !country.chars().all(|c| c.is_ascii_uppercase()) {
            self.error(
                country.span(),
                format!(
                    "{what} has country `{}`, which is not an ISO 3166-1 alpha-2 code",
                    **country
                ),
                "write two capital letters, e.g. \"GB\", \"IE\", \"US\"",
            );
            return;
        }
        let regime = *self.policy.policy.regime;
        let Some(list) = AdequacyList::for_regime(regime) else {
            return;
        };
        let on: Day = self.policy.policy.effective;
        let status = list.status(country, on, dpf_certified);
        let relies_on_adequacy = safeguard.is_none_or(|s| **s == Safeguard::Adequacy);
        if !relies_on_adequacy {
            return;
        }
        let problem = match status {
            TransferStatus::Domestic | TransferStatus::Adequate => return,
            TransferStatus::NeedsCertification => format!(
                "{what} is in {}, adequate under {regime} only for certified organisations, and is not marked dpf_certified",
                **country
            ),
            TransferStatus::NotAdequate => format!(
                "{what} transfers data to {}, which has no adequacy under {regime} on {on}, and no safeguard",
                **country
            ),
        };
        let span = safeguard.map_or_else(|| country.span(), |s| s.span());
        self.error(
            span,
            problem,
            "add `safeguard = \"uk-idta\"`, \"uk-addendum\", \"eu-scc\" or \"bcr\" (or dpf_certified = true where it holds)",
        );
    }

    fn recipients(&mut self) {
        let p = self.policy;
        for recipient in &p.recipients {
            let what = format!("recipient `{}`", recipient.id);
            for c in &recipient.categories {
                self.data_reference(c, &what);
            }
            let kind = *recipient.kind;
            if matches!(kind, RecipientKind::Processor | RecipientKind::Analytics)
                && recipient
                    .agreement
                    .as_ref()
                    .is_none_or(|a| a.trim().is_empty())
            {
                self.error(
                    recipient.kind.span(),
                    format!("{what} processes data for us but has no agreement reference"),
                    "add `agreement = \"...\"` referencing the Art. 28 contract",
                );
            }
            if kind == RecipientKind::Analytics && *recipient.form == DisclosureForm::Identified {
                self.error(
                    recipient.form.span(),
                    format!("analytics provider `{}` would receive identified data", recipient.id),
                    "set `form = \"pseudonymised\"` or \"aggregated\": analytics providers never see who a person is",
                );
            }
            if *recipient.own_marketing && p.sharing.no_third_party_marketing {
                self.error(
                    recipient.own_marketing.span(),
                    format!("{what} may use data for its own marketing, which the policy forbids"),
                    "set `own_marketing = false`, or change the promise in [sharing]",
                );
            }
            self.transfer(
                &recipient.country,
                recipient.safeguard.as_ref(),
                recipient.dpf_certified,
                &what,
            );
        }
    }

    fn storage(&mut self) {
        for location in &self.policy.storage {
            let what = format!("storage location `{}`", location.id);
            self.transfer(
                &location.country,
                location.safeguard.as_ref(),
                location.dpf_certified,
                &what,
            );
        }
    }

    fn cookies(&mut self) {
        let p = self.policy;
        let mut providers: Vec<&str> = vec!["first-party"];
        providers.extend(p.recipients.iter().map(|r| r.id.as_str()));
        let purposes: Vec<&str> = p.purposes.iter().map(|x| x.id.as_str()).collect();
        for cookie in &p.cookies {
            let what = format!("cookie `{}`", cookie.name);
            self.reference(&cookie.provider, "provider", &providers, &what);
            if cookie.duration.as_str() != "session" && Period::parse(&cookie.duration).is_none() {
                self.error(
                    cookie.duration.span(),
                    format!("{what} has an unreadable duration `{}`", *cookie.duration),
                    "write \"session\" or a number and a unit, e.g. \"2 years\"",
                );
            }
            if let Some(purpose) = &cookie.purpose {
                if !purposes.contains(&purpose.as_str()) {
                    // Reported once, as an unknown reference.
                    self.reference(purpose, "purpose", &purposes, &what);
                    continue;
                }
            }
            if *cookie.category == CookieCategory::StrictlyNecessary {
                continue;
            }
            let consent_purpose = cookie.purpose.as_ref().and_then(|id| {
                p.purposes
                    .iter()
                    .find(|x| x.id.as_str() == id.as_str())
                    .map(|x| *x.basis == LegalBasis::Consent)
            });
            if consent_purpose != Some(true) {
                self.error(
                    cookie.category.span(),
                    format!(
                        "{what} is {} (not strictly necessary) but has no consent purpose",
                        cookie.category.label().to_lowercase()
                    ),
                    "set `purpose = \"<id>\"` to a purpose whose basis is consent (PECR reg. 6)",
                );
            }
        }
    }

    fn limits(&mut self) {
        let p = self.policy;
        let fields = p.categories.iter().map(|c| c.fields.len()).sum::<usize>();
        let span = p.policy.version.span();
        if fields > MAX_FIELDS {
            self.error(
                span.clone(),
                format!("the policy declares {fields} fields"),
                format!("at most {MAX_FIELDS} are supported"),
            );
        }
        if p.recipients.len() > MAX_RECIPIENTS {
            self.error(
                span.clone(),
                "too many recipients".into(),
                format!("at most {MAX_RECIPIENTS}"),
            );
        }
        if p.relationships.len() > MAX_RELATIONSHIPS {
            self.error(
                span,
                "too many relationship kinds".into(),
                format!("at most {MAX_RELATIONSHIPS}"),
            );
        }
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
