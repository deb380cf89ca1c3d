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
    check.automated_decisions();
    check.limits();
    crate::datasets::validate(policy, &mut check.out);
    check.out.sort_by_key(|d| d.span.start);
    check.out
}

/// One transfer to check: a recipient's or a storage location's.
struct Transfer<'a> {
    what: String,
    country: &'a At<String>,
    safeguard: Option<&'a At<Safeguard>>,
    dpf_certified: bool,
    dpf_checked: Option<&'a At<Day>>,
    sector: Option<&'a At<String>>,
    /// What makes the transfer standing (a processor, storage), if it is.
    standing: Option<&'static str>,
    /// The purposes the transfer serves.
    purposes: Vec<&'a Purpose>,
}

/// Whether a stated obligation cites DPA 2018 Sch. 2, which grants
/// exemptions rather than imposing duties.
fn cites_schedule_2(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    let dpa = t.contains("data protection act 2018") || t.contains("dpa 2018");
    let schedule = t.contains("sch. 2") || t.contains("schedule 2") || t.contains("sch 2");
    dpa && schedule
}

fn dpf_name(regime: Regime) -> &'static str {
    match regime {
        Regime::UkGdpr => "the UK Extension to the EU-US Data Privacy Framework",
        Regime::EuGdpr => "the EU-US Data Privacy Framework",
    }
}

fn no_safeguard_hint(regime: Regime) -> String {
    match regime {
        Regime::UkGdpr => "add `safeguard = \"uk-idta\"`, \"uk-addendum\" or \"bcr\" (or, for a US organisation certified under the UK Extension to the Data Privacy Framework, `dpf_certified = true` with `dpf_checked`)".to_string(),
        Regime::EuGdpr => "add `safeguard = \"eu-scc\"` or \"bcr\" (or, for a US organisation certified under the EU-US Data Privacy Framework, `dpf_certified = true` with `dpf_checked`)".to_string(),
    }
}

fn safeguard_hint_for_standing(regime: Regime) -> String {
    format!(
        "Art. 49 covers only occasional transfers; {}",
        no_safeguard_hint(regime)
    )
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

    fn categories(&mut self) {
        for category in &self.policy.categories {
            let referrer = format!("category `{}`", category.id);
            if *category.sensitivity == Sensitivity::Special && category.art9_condition.is_none() {
                self.error(
                    category.id.span(),
                    format!(
                        "special-category data `{}` has no Art. 9 condition",
                        category.id
                    ),
                    format!(
                        "add art9_condition, one of: {}",
                        Art9Condition::ALL
                            .iter()
                            .map(|c| c.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
            if let (Some(condition), Sensitivity::Ordinary) =
                (&category.art9_condition, *category.sensitivity)
            {
                self.error(
                    condition.span(),
                    format!(
                        "category `{}` has an Art. 9 condition but is not special-category data",
                        category.id
                    ),
                    "remove art9_condition, or mark the category `sensitivity = \"special\"`",
                );
            }
            self.requirement(category);
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

    /// Art. 13(2)(e), for data the person gives.
    fn requirement(&mut self, category: &Category) {
        if *category.source != DataSource::Provided {
            return;
        }
        match &category.requirement {
            None => self.error(
                category.id.span(),
                format!("category `{}` does not say whether the person must provide it", category.id),
                "add `requirement = \"statutory\"`, \"contractual\", \"contract-entry\" or \"voluntary\", with `if_not_provided = \"...\"` (Art. 13(2)(e))",
            ),
            Some(r)
                if **r != Requirement::Voluntary
                    && category.if_not_provided.as_ref().is_none_or(|t| t.trim().is_empty()) =>
            {
                self.error(
                    r.span(),
                    format!("category `{}` is {} but does not say what happens if it is not provided", category.id, r.label()),
                    "add `if_not_provided = \"...\"`, e.g. \"we cannot take your order\" (Art. 13(2)(e))",
                )
            }
            Some(_) => {}
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
            if let Some(every) = &rule.review_every {
                if Period::parse(every).is_none() {
                    self.error(
                        every.span(),
                        format!(
                            "retention rule `{}` has an unreadable review interval `{}`",
                            rule.id, **every
                        ),
                        "write a number and a unit, e.g. \"1 year\" or \"6 months\"",
                    );
                }
            }
            match (&*rule.from, &rule.year_end) {
                (RetentionEvent::AccountingPeriodEnd, None) => self.error(
                    rule.from.span(),
                    format!(
                        "retention rule `{}` runs from the end of an accounting period but does not say when the accounting year ends",
                        rule.id
                    ),
                    "add `year_end = \"MM-DD\"`, the last day of the accounting year (e.g. \"03-31\")",
                ),
                (RetentionEvent::AccountingPeriodEnd, Some(end))
                    if crate::retention::parse_year_end(end).is_none() =>
                {
                    self.error(
                        end.span(),
                        format!("retention rule `{}` has an unreadable year end `{}`", rule.id, **end),
                        "write the month and day as \"MM-DD\", e.g. \"03-31\"",
                    )
                }
                (RetentionEvent::AccountingPeriodEnd, Some(_)) | (_, None) => {}
                (_, Some(end)) => self.error(
                    end.span(),
                    format!(
                        "retention rule `{}` gives a year end but does not run from the end of an accounting period",
                        rule.id
                    ),
                    "remove `year_end`, or use `from = \"accounting-period-end\"`",
                ),
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
            self.pre_contract(purpose);
            for channel in &purpose.channels {
                self.reference(channel, "marketing channel", &channels, &referrer);
                self.channel_use(purpose, channel);
            }
            self.soft_opt_in(purpose);
            if let Some(first) = purpose.channels.first() {
                if !purpose.marketing {
                    self.error(
                        first.span(),
                        format!("purpose `{}` names marketing channels but is not marked marketing", purpose.id),
                        "add `marketing = true` (an objection to direct marketing must reach it), or remove `channels`",
                    );
                }
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
            LegalBasis::LegitimateInterest if !stated(&purpose.lia) => self.error(
                purpose.basis.span(),
                format!(
                    "purpose `{}` relies on legitimate interests without a reference to its assessment",
                    purpose.id
                ),
                "add `lia = \"...\"` referencing the legitimate-interest assessment (the record of processing exports it)",
            ),
            LegalBasis::LegalObligation
                if purpose.obligation.as_ref().is_some_and(|o| cites_schedule_2(o)) =>
            {
                let span = purpose.obligation.as_ref().map_or_else(|| purpose.basis.span(), |o| o.span());
                self.error(
                    span,
                    format!(
                        "purpose `{}` names a DPA 2018 Sch. 2 exemption as a legal obligation",
                        purpose.id
                    ),
                    "Sch. 2 paras. 2 and 5 permit a disclosure, they impose no duty: list them in `exemptions = [\"dpa-sch2-para2\", \"dpa-sch2-para5\"]` and name the law that obliges you in `obligation`",
                )
            }
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
                "add `channels = [...]` from email, phone, sms, post, automated-call: consent is given per channel",
            ),
            _ => {}
        }
    }

    fn automated_decisions(&mut self) {
        let p = self.policy;
        let Some(declared) = &p.automated_decisions else {
            self.error(
                p.policy.version.span(),
                "the policy does not declare its automated decision-making".into(),
                "add an `[automated_decisions]` table: empty when there is none, otherwise one `[[automated_decisions.decision]]` each (Art. 13(2)(f))",
            );
            return;
        };
        let purposes: Vec<&str> = p.purposes.iter().map(|x| x.id.as_str()).collect();
        for d in &declared.decisions {
            self.reference(
                &d.purpose,
                "purpose",
                &purposes,
                &format!("automated decision `{}`", d.name),
            );
        }
    }

    /// PECR reg. 22(3): the soft opt-in covers only the controller's own
    /// similar products, marketed on legitimate interests, to people whose
    /// details were obtained in a sale or its negotiation.
    fn soft_opt_in(&mut self, purpose: &Purpose) {
        if !*purpose.similar_products {
            return;
        }
        let span = purpose.similar_products.span();
        let id = &purpose.id;
        if !purpose.marketing {
            self.error(
                span,
                format!("purpose `{id}` is marked similar_products but is not marketing"),
                "add `marketing = true`, or remove `similar_products`",
            );
        } else if !self.policy.marketing.soft_opt_in {
            self.error(
                span,
                format!("purpose `{id}` is marked similar_products, but the soft opt-in is off"),
                "set `soft_opt_in = true` in [marketing] if you rely on it, or remove `similar_products`",
            );
        } else if *purpose.basis == LegalBasis::Consent {
            self.error(
                span,
                format!("purpose `{id}` is marked similar_products but rests on consent"),
                "the soft opt-in is an exception to consent: rest the purpose on `legitimate-interest`, or remove `similar_products`",
            );
        } else if !self.policy.relationships.iter().any(|r| *r.sale) {
            self.error(
                span,
                format!("purpose `{id}` is marked similar_products, but no relationship kind is marked `sale = true`"),
                "mark the relationships in which details are obtained in a sale or its negotiation with `sale = true` (PECR reg. 22(3)(a))",
            );
        }
    }

    fn pre_contract(&mut self, purpose: &Purpose) {
        for r in &purpose.relationships {
            let pre = self
                .policy
                .relationships
                .iter()
                .any(|k| k.id.as_str() == r.as_str() && k.pre_contract);
            if pre && *purpose.basis != LegalBasis::Contract {
                self.error(
                    r.span(),
                    format!("purpose `{}` names pre-contract relationship `{}` but does not rest on a contract", purpose.id, **r),
                    "steps taken at a person's request before a contract ground only `basis = \"contract\"` (Art. 6(1)(b))",
                );
            }
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

    fn transfer(&mut self, t: Transfer<'_>) {
        let country = t.country;
        let what = &t.what;
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
        if let Some(s) = t.safeguard {
            if !s.valid_under(regime) {
                self.error(
                    s.span(),
                    format!(
                        "{what} relies on {} (`{}`), which is not a transfer safeguard under {regime}",
                        s.label(),
                        **s
                    ),
                    s.instead_under(regime),
                );
                return;
            }
            if **s == Safeguard::Art49 {
                return self.derogation(&t, s);
            }
            if **s != Safeguard::Adequacy {
                return;
            }
        }
        let Some(list) = AdequacyList::for_regime(regime) else {
            return;
        };
        let on: Day = self.policy.policy.effective;
        let sector = t.sector.map(|s| s.as_str());
        let status = list.status_for(country, on, t.dpf_certified, sector);
        let needs_dpf = list
            .country(country)
            .is_some_and(|c| c.requires.as_deref() == Some("dpf"));
        let span = t.safeguard.map_or_else(|| country.span(), |s| s.span());
        let (problem, hint) = match status {
            TransferStatus::Domestic => return,
            TransferStatus::Adequate => {
                if needs_dpf && t.dpf_checked.is_none() {
                    self.error(
                        span,
                        format!("{what} relies on its certification under {} without the date it was checked", dpf_name(regime)),
                        "add `dpf_checked = YYYY-MM-DD`, the day the organisation was found on the Data Privacy Framework List (https://www.dataprivacyframework.gov/list)",
                    );
                }
                return;
            }
            TransferStatus::NeedsCertification => (
                format!(
                    "{what} is in {}, adequate under {regime} only for certified organisations, and is not marked dpf_certified",
                    **country
                ),
                no_safeguard_hint(regime),
            ),
            TransferStatus::OutsideSector => {
                let (id, name) = list
                    .country(country)
                    .map(|c| {
                        (
                            c.sector.clone().unwrap_or_default(),
                            c.sector_name.clone().unwrap_or_default(),
                        )
                    })
                    .unwrap_or_default();
                let declared = sector.map_or_else(
                    || "declares no sector".to_string(),
                    |s| format!("declares sector `{s}`"),
                );
                (
                    format!(
                        "{what} is in {}, adequate under {regime} only for {name}, and {declared}",
                        **country
                    ),
                    format!(
                        "if the recipient is one of them, declare `sector = \"{id}\"`; otherwise {}",
                        no_safeguard_hint(regime)
                    ),
                )
            }
            TransferStatus::NotAdequate => (
                format!(
                    "{what} transfers data to {}, which has no adequacy under {regime} on {on}, and no safeguard",
                    **country
                ),
                no_safeguard_hint(regime),
            ),
        };
        let span = match (status, t.sector) {
            (TransferStatus::OutsideSector, Some(s)) => s.span(),
            _ => span,
        };
        self.error(span, problem, hint);
    }

    /// Art. 49: occasional transfers only, never a standing arrangement.
    fn derogation(&mut self, t: &Transfer<'_>, safeguard: &At<Safeguard>) {
        let regime = *self.policy.policy.regime;
        let what = &t.what;
        if let Some(standing) = t.standing {
            self.error(
                safeguard.span(),
                format!("{what} relies on an Art. 49 derogation, but {standing} is a standing arrangement, not an occasional transfer"),
                safeguard_hint_for_standing(regime),
            );
            return;
        }
        let not_occasional: Vec<&str> = t
            .purposes
            .iter()
            .filter(|p| !p.occasional)
            .map(|p| p.id.as_str())
            .collect();
        if t.purposes.is_empty() || !not_occasional.is_empty() {
            let which = if not_occasional.is_empty() {
                "no purpose marked occasional".to_string()
            } else {
                format!(
                    "purposes that are not marked occasional ({})",
                    not_occasional.join(", ")
                )
            };
            self.error(
                safeguard.span(),
                format!("{what} relies on an Art. 49 derogation for {which}"),
                "an Art. 49 derogation covers only occasional transfers: mark each purpose that discloses to it `occasional = true` where that is so, or use a safeguard",
            );
        }
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
            let standing = matches!(kind, RecipientKind::Processor | RecipientKind::Analytics)
                .then_some("a processor");
            let purposes = p
                .purposes
                .iter()
                .filter(|x| {
                    x.recipients
                        .iter()
                        .any(|r| r.as_str() == recipient.id.as_str())
                })
                .collect();
            self.transfer(Transfer {
                what,
                country: &recipient.country,
                safeguard: recipient.safeguard.as_ref(),
                dpf_certified: recipient.dpf_certified,
                dpf_checked: recipient.dpf_checked.as_ref(),
                sector: recipient.sector.as_ref(),
                standing,
                purposes,
            });
        }
    }

    fn storage(&mut self) {
        for location in &self.policy.storage {
            let what = format!("storage location `{}`", location.id);
            if location
                .provider
                .as_ref()
                .is_none_or(|p| p.trim().is_empty())
            {
                self.error(
                    location.id.span(),
                    format!("{what} names no provider"),
                    "add `provider = \"...\"`: the notice names hosting and backup providers as recipients (write our own name where we host it ourselves)",
                );
            }
            self.transfer(Transfer {
                what,
                country: &location.country,
                safeguard: location.safeguard.as_ref(),
                dpf_certified: location.dpf_certified,
                dpf_checked: location.dpf_checked.as_ref(),
                sector: location.sector.as_ref(),
                standing: Some("storage"),
                purposes: Vec::new(),
            });
        }
    }

    fn cookies(&mut self) {
        let p = self.policy;
        for cookie in p.cookies.iter().filter(|c| *c.local_storage) {
            if *cookie.category != CookieCategory::StrictlyNecessary
                || cookie.provider.as_str() != "first-party"
            {
                self.error(
                    cookie.local_storage.span(),
                    format!("cookie `{}` is kept in local storage but is not a strictly necessary first-party entry", cookie.name),
                    "only the banner's own record of the visitor's choice is kept in local storage: mark that entry, strictly necessary and first-party",
                );
            }
        }
        let optional = p
            .cookies
            .iter()
            .find(|c| *c.category != CookieCategory::StrictlyNecessary);
        match (optional, p.choice_storage()) {
            (Some(first), None) => self.error(
                first.name.span(),
                "the policy sets cookies that need consent but declares no place for the visitor's choice".into(),
                "declare the banner's record as a strictly necessary first-party cookie with `local_storage = true` and a duration (how long the choice is kept before asking again)",
            ),
            (Some(_), Some(storage)) if storage.duration.as_str() == "session" => self.error(
                storage.duration.span(),
                format!("cookie `{}` keeps the visitor's choice for the session only", storage.name),
                "give a duration such as \"6 months\": the banner asks again when it ends",
            ),
            _ => {}
        }
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
            for fed in &cookie.feeds {
                self.data_reference(fed, &what);
            }
            if *cookie.category == CookieCategory::StrictlyNecessary {
                continue;
            }
            if let Some(own) = cookie
                .purpose
                .as_ref()
                .and_then(|id| p.purposes.iter().find(|x| x.id.as_str() == id.as_str()))
            {
                if own.independent_of_cookies {
                    self.error(
                        own.id.span(),
                        format!("purpose `{}` covers {what} but is marked independent_of_cookies", own.id),
                        "remove `independent_of_cookies`: the purpose that sets a cookie uses what it produces",
                    );
                }
                for fed in &cookie.feeds {
                    let category = fed.split_once('.').map_or(fed.as_str(), |(c, _)| c);
                    let read = own
                        .categories
                        .iter()
                        .any(|c| c.as_str() == fed.as_str() || c.as_str() == category);
                    let known = p.categories.iter().any(|c| c.id.as_str() == category);
                    if known && !read {
                        self.error(
                            fed.span(),
                            format!("{what} feeds `{}`, which its purpose `{}` does not read", **fed, own.id),
                            format!("add `{}` to the categories of purpose `{}`, or remove it from `feeds`", **fed, own.id),
                        );
                    }
                }
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
        if p.subjects.len() > MAX_RELATIONSHIPS {
            self.error(
                span.clone(),
                "too many subject categories".into(),
                format!("at most {MAX_RELATIONSHIPS}"),
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
