//! Periods written in words (`6 years`, `13 months`, `30 days`), used for
//! retention rules and cookie lifetimes, and how to add one to a date.

use serde::Serialize;
use time::{Date, Duration, Month};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unit {
    Days,
    Weeks,
    Months,
    Years,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Period {
    pub amount: u32,
    pub unit: Unit,
}

impl Period {
    /// Parses `N unit` where unit is day(s), week(s), month(s) or year(s).
    pub fn parse(text: &str) -> Option<Period> {
        let mut words = text.split_whitespace();
        let amount: u32 = words.next()?.parse().ok()?;
        let unit = match words.next()? {
            "day" | "days" => Unit::Days,
            "week" | "weeks" => Unit::Weeks,
            "month" | "months" => Unit::Months,
            "year" | "years" => Unit::Years,
            _ => return None,
        };
        if words.next().is_some() || amount == 0 || amount > 1200 {
            return None;
        }
        Some(Period { amount, unit })
    }

    /// An approximate length in days, only for comparing two periods
    /// (a longer retention is a material change).
    pub fn approximate_days(self) -> u64 {
        let per = match self.unit {
            Unit::Days => 1.0,
            Unit::Weeks => 7.0,
            Unit::Months => 30.44,
            Unit::Years => 365.25,
        };
        (f64::from(self.amount) * per).round() as u64
    }

    /// The date this period after `start`; months and years land on the same
    /// day number, or the last day of a shorter month.
    pub fn after(self, start: Date) -> Option<Date> {
        match self.unit {
            Unit::Days => start.checked_add(Duration::days(i64::from(self.amount))),
            Unit::Weeks => start.checked_add(Duration::weeks(i64::from(self.amount))),
            Unit::Months => add_months(start, self.amount),
            Unit::Years => add_months(start, self.amount.checked_mul(12)?),
        }
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = match self.unit {
            Unit::Days => "day",
            Unit::Weeks => "week",
            Unit::Months => "month",
            Unit::Years => "year",
        };
        let plural = if self.amount == 1 { "" } else { "s" };
        write!(f, "{} {unit}{plural}", self.amount)
    }
}

/// Same day number `months` later, clamped to the last day of the month.
pub fn add_months(start: Date, months: u32) -> Option<Date> {
    let zero_based = i64::from(u8::from(start.month())) - 1 + i64::from(months);
    let year = i64::from(start.year()) + zero_based.div_euclid(12);
    let month = Month::try_from(u8::try_from(zero_based.rem_euclid(12) + 1).ok()?).ok()?;
    let year = i32::try_from(year).ok()?;
    let last = month.length(year);
    Date::from_calendar_date(year, month, start.day().min(last)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn parses_and_prints() {
        let p = Period::parse("6 years").unwrap();
        assert_eq!(
            p,
            Period {
                amount: 6,
                unit: Unit::Years
            }
        );
        assert_eq!(p.to_string(), "6 years");
        assert_eq!(Period::parse("1 month").unwrap().to_string(), "1 month");
        assert!(Period::parse("six years").is_none());
        assert!(Period::parse("0 days").is_none());
        assert!(Period::parse("3 fortnights").is_none());
        assert!(Period::parse("3 days extra").is_none());
    }

    #[test]
    fn months_clamp_to_month_end() {
        assert_eq!(
            add_months(date!(2025 - 01 - 31), 1),
            Some(date!(2025 - 02 - 28))
        );
        assert_eq!(
            add_months(date!(2024 - 01 - 31), 1),
            Some(date!(2024 - 02 - 29))
        );
        assert_eq!(
            add_months(date!(2025 - 11 - 30), 3),
            Some(date!(2026 - 02 - 28))
        );
        assert_eq!(
            add_months(date!(2025 - 12 - 15), 1),
            Some(date!(2026 - 01 - 15))
        );
    }
}
