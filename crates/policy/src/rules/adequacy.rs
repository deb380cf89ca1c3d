//! Adequacy lists per regime: which countries a transfer may go to without a
//! further safeguard, from when, and on what condition.

use crate::day::Day;
use crate::terms::Regime;
use serde::Deserialize;
use std::sync::OnceLock;

const UK: &str = include_str!("../../data/adequacy/uk-gdpr.toml");
const EU: &str = include_str!("../../data/adequacy/eu-gdpr.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdequacyList {
    pub regime: Regime,
    pub source: String,
    pub as_of: Day,
    /// Countries inside the regime: sending data there is no transfer.
    pub domestic: Vec<String>,
    #[serde(rename = "country")]
    pub countries: Vec<AdequateCountry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdequateCountry {
    pub code: String,
    pub name: String,
    pub from: Day,
    #[serde(default)]
    pub until: Option<Day>,
    /// A condition on the recipient: `dpf` means certified under the Data
    /// Privacy Framework (or its UK Extension).
    #[serde(default)]
    pub requires: Option<String>,
    /// Adequacy limited to one sector: only recipients that declare this
    /// sector are covered (for example `pipeda-commercial` for Canada).
    #[serde(default)]
    pub sector: Option<String>,
    /// The sector in words, for the notice and for hints.
    #[serde(default)]
    pub sector_name: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
}

impl AdequateCountry {
    /// Whether the decision is in force on `on`; its end date is included.
    pub fn in_force(&self, on: Day) -> bool {
        self.from <= on && self.until.is_none_or(|u| on <= u)
    }

    /// Whether the decision covers a recipient with these conditions.
    pub fn covers(&self, dpf_certified: bool, sector: Option<&str>) -> bool {
        let certified = self.requires.as_deref() != Some("dpf") || dpf_certified;
        let in_sector = self.sector.as_deref().is_none_or(|s| sector == Some(s));
        certified && in_sector
    }
}

/// Where a transfer to a country stands under a regime on a given day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferStatus {
    /// Inside the regime's own territory.
    Domestic,
    /// Covered by an adequacy decision in force that day.
    Adequate,
    /// Adequate only for certified recipients, and this one is not certified.
    NeedsCertification,
    /// Adequate only for one sector, and this recipient is not declared in it.
    OutsideSector,
    /// No adequacy that day: a safeguard is needed.
    NotAdequate,
}

impl AdequacyList {
    /// The list shipped for `regime`. The shipped files are checked by tests;
    /// `None` would mean a build with a broken data file.
    pub fn for_regime(regime: Regime) -> Option<&'static AdequacyList> {
        static UK_LIST: OnceLock<Option<AdequacyList>> = OnceLock::new();
        static EU_LIST: OnceLock<Option<AdequacyList>> = OnceLock::new();
        let (cell, text) = match regime {
            Regime::UkGdpr => (&UK_LIST, UK),
            Regime::EuGdpr => (&EU_LIST, EU),
        };
        cell.get_or_init(|| toml::from_str(text).ok()).as_ref()
    }

    pub fn country(&self, code: &str) -> Option<&AdequateCountry> {
        self.countries.iter().find(|c| c.code == code)
    }

    /// Where a transfer stands for a recipient that declares no sector.
    pub fn status(&self, code: &str, on: Day, dpf_certified: bool) -> TransferStatus {
        self.status_for(code, on, dpf_certified, None)
    }

    /// Where a transfer to `code` stands on `on` for a recipient with these
    /// conditions (DPF certification, declared sector).
    pub fn status_for(
        &self,
        code: &str,
        on: Day,
        dpf_certified: bool,
        sector: Option<&str>,
    ) -> TransferStatus {
        if self.domestic.iter().any(|d| d == code) {
            return TransferStatus::Domestic;
        }
        match self.country(code) {
            Some(c) if c.in_force(on) => {
                if c.requires.as_deref() == Some("dpf") && !dpf_certified {
                    TransferStatus::NeedsCertification
                } else if !c.covers(dpf_certified, sector) {
                    TransferStatus::OutsideSector
                } else {
                    TransferStatus::Adequate
                }
            }
            _ => TransferStatus::NotAdequate,
        }
    }

    /// The window in which a country is adequate for this recipient, if any:
    /// (from, until), both included.
    pub fn window(&self, code: &str, dpf_certified: bool) -> Option<(Day, Option<Day>)> {
        self.window_for(code, dpf_certified, None)
    }

    pub fn window_for(
        &self,
        code: &str,
        dpf_certified: bool,
        sector: Option<&str>,
    ) -> Option<(Day, Option<Day>)> {
        let c = self.country(code)?;
        c.covers(dpf_certified, sector).then_some((c.from, c.until))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> Day {
        Day::parse(s).unwrap()
    }

    #[test]
    fn shipped_lists_parse_with_their_regime() {
        let uk = AdequacyList::for_regime(Regime::UkGdpr).unwrap();
        assert_eq!(uk.regime, Regime::UkGdpr);
        assert!(uk.source.contains("ico.org.uk"));
        let eu = AdequacyList::for_regime(Regime::EuGdpr).unwrap();
        assert_eq!(eu.regime, Regime::EuGdpr);
        assert_eq!(eu.domestic.len(), 30);
    }

    #[test]
    fn uk_list_follows_the_dates() {
        let uk = AdequacyList::for_regime(Regime::UkGdpr).unwrap();
        assert_eq!(
            uk.status("GB", day("2020-01-01"), false),
            TransferStatus::Domestic
        );
        assert_eq!(
            uk.status("FR", day("2024-01-01"), false),
            TransferStatus::Adequate
        );
        assert_eq!(
            uk.status("KR", day("2022-12-18"), false),
            TransferStatus::NotAdequate
        );
        assert_eq!(
            uk.status_for("KR", day("2022-12-19"), false, Some("pipa")),
            TransferStatus::Adequate
        );
        assert_eq!(
            uk.status("US", day("2024-01-01"), false),
            TransferStatus::NeedsCertification
        );
        assert_eq!(
            uk.status("US", day("2024-01-01"), true),
            TransferStatus::Adequate
        );
        assert_eq!(
            uk.status("US", day("2023-10-11"), true),
            TransferStatus::NotAdequate
        );
        assert_eq!(
            uk.status("IN", day("2024-01-01"), false),
            TransferStatus::NotAdequate
        );
    }

    #[test]
    fn an_adequacy_decision_covers_its_last_day() {
        let eu = AdequacyList::for_regime(Regime::EuGdpr).unwrap();
        assert_eq!(
            eu.status("GB", day("2031-12-27"), false),
            TransferStatus::Adequate
        );
        assert_eq!(
            eu.status("GB", day("2031-12-28"), false),
            TransferStatus::NotAdequate
        );
        assert_eq!(
            eu.window("GB", false),
            Some((day("2021-06-28"), Some(day("2031-12-27"))))
        );
    }

    #[test]
    fn sector_limited_adequacy_needs_the_declared_sector() {
        for regime in [Regime::UkGdpr, Regime::EuGdpr] {
            let list = AdequacyList::for_regime(regime).unwrap();
            for (code, sector) in [
                ("CA", "pipeda-commercial"),
                ("JP", "appi"),
                ("KR", "pipa"),
                ("IL", "automated-processing"),
            ] {
                let on = day("2025-01-01");
                assert_eq!(
                    list.status_for(code, on, false, Some(sector)),
                    TransferStatus::Adequate,
                    "{regime} {code}"
                );
                assert_eq!(
                    list.status_for(code, on, false, None),
                    TransferStatus::OutsideSector,
                    "{regime} {code}"
                );
                assert_eq!(
                    list.status_for(code, on, false, Some("public-sector")),
                    TransferStatus::OutsideSector
                );
                assert!(list.country(code).unwrap().sector_name.is_some());
            }
            // Not sector-limited: any recipient.
            assert_eq!(
                list.status_for("NZ", day("2025-01-01"), false, None),
                TransferStatus::Adequate
            );
        }
    }

    #[test]
    fn eu_list_covers_the_uk_and_brazil() {
        let eu = AdequacyList::for_regime(Regime::EuGdpr).unwrap();
        assert_eq!(
            eu.status("DE", day("2024-01-01"), false),
            TransferStatus::Domestic
        );
        assert_eq!(
            eu.status("GB", day("2024-01-01"), false),
            TransferStatus::Adequate
        );
        assert_eq!(
            eu.status("BR", day("2025-12-01"), false),
            TransferStatus::NotAdequate
        );
        assert_eq!(
            eu.status("BR", day("2026-02-01"), false),
            TransferStatus::Adequate
        );
        assert_eq!(
            eu.status("GI", day("2024-01-01"), false),
            TransferStatus::NotAdequate
        );
    }
}
