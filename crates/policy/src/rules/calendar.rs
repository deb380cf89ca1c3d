//! Bank-holiday calendars for the three UK divisions, generated from the
//! statutory rules (Banking and Financial Dealings Act 1971 Sch. 1, with Good
//! Friday and Christmas Day kept by custom, and substitute days for fixed-date
//! holidays that fall at a weekend) for every year up to [`LAST_YEAR`], plus
//! the one-off changes proclaimed under s.1 of that Act, shipped as data with
//! their source (`data/calendars/one-off-changes.toml`). The published lists
//! for 2018-2027 stay in `data/calendars/` as the oracle the tests compare
//! the rules with.

use crate::day::Day;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;
use time::{Date, Duration, Month, Weekday};

/// The first and last years the shipped calendars cover.
pub const FIRST_YEAR: i32 = 2018;
pub const LAST_YEAR: i32 = 2040;

const ONE_OFF_CHANGES: &str = include_str!("../../data/calendars/one-off-changes.toml");

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

    /// The holidays the rules give this division, in the order they are
    /// assigned days: movable feasts first, then the fixed dates in the order
    /// in which a substitute day is claimed.
    fn rules(self) -> &'static [Rule] {
        use Rule::*;
        match self {
            Division::EnglandAndWales => &[
                GoodFriday,
                EasterMonday,
                EarlyMay,
                Spring,
                LastMondayOfAugust,
                Fixed(Month::January, 1, NEW_YEAR),
                Fixed(Month::December, 25, CHRISTMAS),
                Fixed(Month::December, 26, BOXING_DAY),
            ],
            Division::Scotland => &[
                GoodFriday,
                EarlyMay,
                Spring,
                FirstMondayOfAugust,
                Fixed(Month::January, 1, NEW_YEAR),
                Fixed(Month::January, 2, "2nd January"),
                Fixed(Month::November, 30, "St Andrew\u{2019}s Day"),
                Fixed(Month::December, 25, CHRISTMAS),
                Fixed(Month::December, 26, BOXING_DAY),
            ],
            Division::NorthernIreland => &[
                GoodFriday,
                EasterMonday,
                EarlyMay,
                Spring,
                LastMondayOfAugust,
                Fixed(Month::January, 1, NEW_YEAR),
                Fixed(Month::March, 17, "St Patrick\u{2019}s Day"),
                Fixed(
                    Month::July,
                    12,
                    "Battle of the Boyne (Orangemen\u{2019}s Day)",
                ),
                Fixed(Month::December, 25, CHRISTMAS),
                Fixed(Month::December, 26, BOXING_DAY),
            ],
        }
    }
}

const NEW_YEAR: &str = "New Year\u{2019}s Day";
const CHRISTMAS: &str = "Christmas Day";
const BOXING_DAY: &str = "Boxing Day";

#[derive(Debug, Clone, Copy)]
enum Rule {
    GoodFriday,
    EasterMonday,
    /// The first Monday in May.
    EarlyMay,
    /// The last Monday in May.
    Spring,
    /// The summer holiday in England, Wales and Northern Ireland.
    LastMondayOfAugust,
    /// The summer holiday in Scotland.
    FirstMondayOfAugust,
    /// A date that moves to the next free weekday when it falls at a weekend.
    Fixed(Month, u8, &'static str),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calendar {
    pub division: Division,
    /// Where the days come from.
    pub source: String,
    /// When the data behind the calendar (published list or one-off changes)
    /// was last checked.
    pub retrieved: Day,
    pub first_year: i32,
    pub last_year: i32,
    #[serde(rename = "holiday")]
    pub holidays: Vec<Holiday>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holiday {
    pub date: Day,
    pub name: String,
}

/// A one-off change, proclaimed for particular years: a day removed, a day
/// added, or a day moved (both).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneOffChange {
    pub divisions: Vec<Division>,
    #[serde(default)]
    pub removes: Option<Day>,
    #[serde(default)]
    pub adds: Option<Day>,
    pub name: String,
    pub source: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneOffChanges {
    pub as_of: Day,
    #[serde(rename = "change")]
    pub changes: Vec<OneOffChange>,
}

impl OneOffChanges {
    /// The shipped list; `None` only if the data file were broken, which the
    /// tests rule out.
    pub fn shipped() -> Option<&'static OneOffChanges> {
        static CELL: OnceLock<Option<OneOffChanges>> = OnceLock::new();
        CELL.get_or_init(|| toml::from_str(ONE_OFF_CHANGES).ok())
            .as_ref()
    }
}

impl Calendar {
    /// The calendar shipped for `division`, generated from the rules and the
    /// one-off changes for [`FIRST_YEAR`] to [`LAST_YEAR`].
    pub fn shipped(division: Division) -> Option<&'static Calendar> {
        static CELLS: [OnceLock<Option<Calendar>>; 3] =
            [OnceLock::new(), OnceLock::new(), OnceLock::new()];
        let index = match division {
            Division::EnglandAndWales => 0,
            Division::Scotland => 1,
            Division::NorthernIreland => 2,
        };
        CELLS
            .get(index)?
            .get_or_init(|| {
                let changes = OneOffChanges::shipped()?;
                Calendar::generate(division, FIRST_YEAR, LAST_YEAR, changes)
            })
            .as_ref()
    }

    /// The calendar the rules give for the years `first..=last`, with the
    /// one-off changes applied. `None` for years `time` cannot represent.
    pub fn generate(
        division: Division,
        first_year: i32,
        last_year: i32,
        changes: &OneOffChanges,
    ) -> Option<Calendar> {
        let mut holidays = Vec::new();
        for year in first_year..=last_year {
            holidays.extend(by_rule(division, year)?);
        }
        for change in changes
            .changes
            .iter()
            .filter(|c| c.divisions.contains(&division))
        {
            if let Some(removed) = change.removes {
                holidays.retain(|h| h.date != removed);
            }
            if let Some(added) = change.adds {
                let in_range = (first_year..=last_year).contains(&added.date().year());
                if in_range && !holidays.iter().any(|h| h.date == added) {
                    holidays.push(Holiday {
                        date: added,
                        name: change.name.clone(),
                    });
                }
            }
        }
        holidays.sort_by_key(|h| h.date);
        Some(Calendar {
            division,
            source: "the statutory rules (Banking and Financial Dealings Act 1971 Sch. 1; Good Friday and Christmas Day by custom; substitute days), with the one-off changes proclaimed under s.1 of that Act".to_string(),
            retrieved: changes.as_of,
            first_year,
            last_year,
            holidays,
        })
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
        !is_weekend(date) && !self.is_bank_holiday(date)
    }
}

fn is_weekend(date: Date) -> bool {
    matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday)
}

/// Easter Sunday in the Gregorian calendar (the anonymous algorithm, as
/// published by Butcher in 1876).
pub fn easter_sunday(year: i32) -> Option<Date> {
    let a = year.rem_euclid(19);
    let b = year.div_euclid(100);
    let c = year.rem_euclid(100);
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15).rem_euclid(30);
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k).rem_euclid(7);
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    let month = Month::try_from(u8::try_from(month).ok()?).ok()?;
    Date::from_calendar_date(year, month, u8::try_from(day).ok()?).ok()
}

/// The `n`th (1-based) Monday of a month.
fn nth_monday(year: i32, month: Month, n: u8) -> Option<Date> {
    let first = Date::from_calendar_date(year, month, 1).ok()?;
    let offset = (7 + 1 - i64::from(first.weekday().number_from_monday())) % 7;
    first.checked_add(Duration::days(offset + 7 * (i64::from(n) - 1)))
}

fn last_monday(year: i32, month: Month) -> Option<Date> {
    let last = Date::from_calendar_date(year, month, month.length(year)).ok()?;
    let back = i64::from(last.weekday().number_days_from_monday());
    last.checked_sub(Duration::days(back))
}

/// One year's holidays by the rules alone.
fn by_rule(division: Division, year: i32) -> Option<Vec<Holiday>> {
    let easter = easter_sunday(year)?;
    let mut days: Vec<Holiday> = Vec::new();
    let mut weekend_fixed: Vec<(Date, &'static str)> = Vec::new();
    let holiday = |date: Date, name: &str| Holiday {
        date: Day(date),
        name: name.to_string(),
    };
    for rule in division.rules() {
        let (date, name) = match *rule {
            Rule::GoodFriday => (easter.checked_sub(Duration::days(2))?, "Good Friday"),
            Rule::EasterMonday => (easter.checked_add(Duration::days(1))?, "Easter Monday"),
            Rule::EarlyMay => (nth_monday(year, Month::May, 1)?, "Early May bank holiday"),
            Rule::Spring => (last_monday(year, Month::May)?, "Spring bank holiday"),
            Rule::LastMondayOfAugust => (last_monday(year, Month::August)?, "Summer bank holiday"),
            Rule::FirstMondayOfAugust => {
                (nth_monday(year, Month::August, 1)?, "Summer bank holiday")
            }
            Rule::Fixed(month, day, name) => {
                let date = Date::from_calendar_date(year, month, day).ok()?;
                if is_weekend(date) {
                    weekend_fixed.push((date, name));
                    continue;
                }
                (date, name)
            }
        };
        days.push(holiday(date, name));
    }
    // A fixed holiday at a weekend gets the next weekday that is not already
    // a holiday, claimed in the order of the rules (Christmas before Boxing
    // Day, New Year before 2 January).
    for (date, name) in weekend_fixed {
        let mut substitute = date;
        for _ in 0..14 {
            substitute = substitute.next_day()?;
            if !is_weekend(substitute) && !days.iter().any(|h| h.date.date() == substitute) {
                break;
            }
        }
        days.push(holiday(substitute, &format!("{name} (substitute day)")));
    }
    days.sort_by_key(|h| h.date);
    Some(days)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn published(division: Division) -> Calendar {
        let text = match division {
            Division::EnglandAndWales => {
                include_str!("../../data/calendars/england-and-wales.toml")
            }
            Division::Scotland => include_str!("../../data/calendars/scotland.toml"),
            Division::NorthernIreland => include_str!("../../data/calendars/northern-ireland.toml"),
        };
        toml::from_str(text).unwrap()
    }

    #[test]
    fn the_rules_give_exactly_the_published_years() {
        for division in Division::ALL {
            let oracle = published(division);
            assert_eq!(oracle.division, division);
            assert_eq!((oracle.first_year, oracle.last_year), (2018, 2027));
            let generated = Calendar::shipped(division).unwrap();
            let ours: Vec<&Holiday> = generated
                .holidays
                .iter()
                .filter(|h| oracle.covers(h.date.date()))
                .collect();
            let theirs: Vec<&Holiday> = oracle.holidays.iter().collect();
            assert_eq!(ours, theirs, "{division:?}");
        }
    }

    #[test]
    fn calendars_run_to_2040_and_every_holiday_is_a_weekday() {
        for division in Division::ALL {
            let calendar = Calendar::shipped(division).unwrap();
            assert_eq!(calendar.division, division);
            assert!(calendar.covers(date!(2040 - 12 - 31)));
            assert!(!calendar.covers(date!(2041 - 01 - 01)));
            assert!(calendar.holidays.windows(2).all(|w| w[0].date < w[1].date));
            for h in &calendar.holidays {
                assert!(calendar.covers(h.date.date()));
                assert!(!is_weekend(h.date.date()), "{h:?}");
            }
            for year in 2028..=2040 {
                let count = calendar
                    .holidays
                    .iter()
                    .filter(|h| h.date.date().year() == year)
                    .count();
                let expected = match division {
                    Division::EnglandAndWales => 8,
                    Division::Scotland => 9,
                    Division::NorthernIreland => 10,
                };
                assert_eq!(count, expected, "{division:?} {year}");
            }
        }
    }

    #[test]
    fn easter_follows_the_gregorian_computus() {
        assert_eq!(easter_sunday(2028), Some(date!(2028 - 04 - 16)));
        assert_eq!(easter_sunday(2038), Some(date!(2038 - 04 - 25)));
        assert_eq!(easter_sunday(2035), Some(date!(2035 - 03 - 25)));
    }

    #[test]
    fn later_years_follow_the_rules() {
        let ew = Calendar::shipped(Division::EnglandAndWales).unwrap();
        // 2028: Christmas on a Monday, Boxing Day Tuesday; Easter Monday 17 April.
        assert!(ew.is_bank_holiday(date!(2028 - 12 - 25)));
        assert!(ew.is_bank_holiday(date!(2028 - 12 - 26)));
        assert!(ew.is_bank_holiday(date!(2028 - 04 - 17)));
        // 2032: Christmas on a Saturday, Boxing Day Sunday: Mon 27 and Tue 28.
        assert!(ew.is_bank_holiday(date!(2032 - 12 - 27)));
        assert!(ew.is_bank_holiday(date!(2032 - 12 - 28)));
        let sc = Calendar::shipped(Division::Scotland).unwrap();
        // 2033: 1 Jan a Saturday, 2 Jan a Sunday: Mon 3 and Tue 4.
        assert!(sc.is_bank_holiday(date!(2033 - 01 - 03)));
        assert!(sc.is_bank_holiday(date!(2033 - 01 - 04)));
        // St Andrew's Day 2030 is a Saturday: Monday 2 December.
        assert!(sc.is_bank_holiday(date!(2030 - 12 - 02)));
        let ni = Calendar::shipped(Division::NorthernIreland).unwrap();
        // St Patrick's Day 2029 is a Saturday; the Boyne 2031 a Saturday.
        assert!(ni.is_bank_holiday(date!(2029 - 03 - 19)));
        assert!(ni.is_bank_holiday(date!(2031 - 07 - 14)));
    }

    #[test]
    fn one_off_changes_carry_their_source() {
        let changes = OneOffChanges::shipped().unwrap();
        assert!(!changes.changes.is_empty());
        for c in &changes.changes {
            assert!(c.source.contains("https://"), "{c:?}");
            assert!(c.adds.is_some() || c.removes.is_some());
            assert!(!c.divisions.is_empty());
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
