//! Purposes: each one's legal basis and what that basis requires
//! (soft opt-in, pre-contract steps, channels), channels, and automated
//! decisions.

use super::*;

impl Checker<'_> {
    pub(super) fn channels(&mut self) {
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

    pub(super) fn purposes(&mut self) {
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

    pub(super) fn basis(&mut self, purpose: &Purpose) {
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

    pub(super) fn automated_decisions(&mut self) {
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
    pub(super) fn soft_opt_in(&mut self, purpose: &Purpose) {
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

    pub(super) fn pre_contract(&mut self, purpose: &Purpose) {
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

    pub(super) fn channel_use(&mut self, purpose: &Purpose, channel: &At<String>) {
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
}

/// Whether a stated obligation cites DPA 2018 Sch. 2, which grants
/// exemptions rather than imposing duties.
fn cites_schedule_2(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    let dpa = t.contains("data protection act 2018") || t.contains("dpa 2018");
    let schedule = t.contains("sch. 2") || t.contains("schedule 2") || t.contains("sch 2");
    dpa && schedule
}
