//! Recipients and storage locations, and whether each transfer out of
//! the UK/EEA is safe under the regime the policy declares (adequacy,
//! certification, safeguards, derogations).

use super::*;

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

impl Checker<'_> {
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

    pub(super) fn recipients(&mut self) {
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

    pub(super) fn storage(&mut self) {
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
}
