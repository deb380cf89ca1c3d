//! Bank-holiday calendars for the three UK divisions, shipped as data files
//! with their source, the day they were retrieved, and the years they cover.

use crate::day::Day;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;
use time::{Date, Weekday};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Division {
    EnglandAndWales,
    Scotland,
    NorthernIreland,
}

impl Division {
    pub const ALL: [Division; 3] = [
        Division::EnglandAndWales,
        Division::Scotland,
        Division::NorthernIreland,
    ];

    pub fn parse(text: &str) -> Option<Division> {
        match text {
            "england-and-wales" => Some(Division::EnglandAndWales),
            "scotland" => Some(Division::Scotland),
            "northern-ireland" => Some(Division::NorthernIreland),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calendar {
    pub division: Division,
    pub source: String,
    pub retrieved: Day,
    pub first_year: i32,
    pub last_year: i32,
    #[serde(rename = "holiday")]
    pub holidays: Vec<Holiday>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holiday {
    pub date: Day,
    pub name: String,
}

impl Calendar {
    /// The calendar shipped for `division`; `None` only if a data file were
    /// broken, which the tests rule out.
    pub fn shipped(division: Division) -> Option<&'static Calendar> {
        static CELLS: [OnceLock<Option<Calendar>>; 3] =
            [OnceLock::new(), OnceLock::new(), OnceLock::new()];
        let (index, text) = match division {
            Division::EnglandAndWales => (
                0,
                include_str!("../../data/calendars/england-and-wales.toml"),
            ),
            Division::Scotland => (1, include_str!("../../data/calendars/scotland.toml")),
            Division::NorthernIreland => (
                2,
                include_str!("../../data/calendars/northern-ireland.toml"),
            ),
        };
        CELLS[index]
            .get_or_init(|| toml::from_str(text).ok())
            .as_ref()
    }

    pub fn covers(&self, date: Date) -> bool {
        (self.first_year..=self.last_year).contains(&date.year())
    }

    pub fn is_bank_holiday(&self, date: Date) -> bool {
        self.holidays
            .binary_search_by(|h| h.date.date().cmp(&date))
            .is_ok()
    }

    pub fn is_working_day(&self, date: Date) -> bool {
        !matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday)
            && !self.is_bank_holiday(date)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn shipped_calendars_are_sorted_weekdays_of_their_division() {
        for division in Division::ALL {
            let calendar = Calendar::shipped(division).unwrap();
            assert_eq!(calendar.division, division);
            assert!(calendar.source.starts_with("https://"));
            assert!(calendar.holidays.windows(2).all(|w| w[0].date < w[1].date));
            for h in &calendar.holidays {
                assert!(calendar.covers(h.date.date()));
                assert!(!matches!(
                    h.date.date().weekday(),
                    Weekday::Saturday | Weekday::Sunday
                ));
            }
        }
    }

    #[test]
    fn divisions_differ_where_the_law_does() {
        let ew = Calendar::shipped(Division::EnglandAndWales).unwrap();
        let sc = Calendar::shipped(Division::Scotland).unwrap();
        let ni = Calendar::shipped(Division::NorthernIreland).unwrap();
        assert!(ew.is_bank_holiday(date!(2026 - 04 - 06)));
        assert!(!sc.is_bank_holiday(date!(2026 - 04 - 06)));
        assert!(sc.is_bank_holiday(date!(2026 - 01 - 02)));
        assert!(ni.is_bank_holiday(date!(2026 - 03 - 17)));
        assert!(ni.is_bank_holiday(date!(2026 - 07 - 13)));
        assert!(ew.is_bank_holiday(date!(2022 - 09 - 19)));
        assert!(ew.is_bank_holiday(date!(2023 - 05 - 08)));
    }
}
