//! Statutory deadlines, computed the ICO's way.
//!
//! A month runs from the day the clock starts to the same date next month;
//! where that date does not exist, to the last day of that month; where the
//! result is a weekend or bank holiday, to the next working day.
//!
//! An extended deadline (Art. 12(3): "two further months") has two readings
//! that differ when the start falls late in a month: three months from the
//! start, or two months from the one-month date (itself clamped to a month's
//! end). We use the earlier of the two, both taken before the working-day
//! shift, then shift (law-notes.md: "Use the earlier date"). Received
//! 2025-10-31: three months gives Sat 2026-01-31 (shifted to Mon 2026-02-02);
//! two months from 2025-11-30 gives Fri 2026-01-30, which is due.
//!
//! Under the UK Data (Use and Access) Act 2025 (Art. 12A) the clock starts at
//! the latest of receipt, receipt of identity information and receipt of a
//! fee, and stops while the controller waits for clarification it asked for.

use super::calendar::{Calendar, Division};
use crate::period::add_months;
use time::{Date, Duration, OffsetDateTime};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeadlineError {
    #[error("no bank-holiday calendar ships for {0:?}")]
    NoCalendar(Division),
    #[error("the shipped bank-holiday calendar does not cover {0}; update the calendar data")]
    NotCovered(i32),
    #[error("the date is out of range")]
    OutOfRange,
}

/// When a request's clock started and how long it was paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestClock {
    pub received: Date,
    pub identity_received: Option<Date>,
    pub fee_received: Option<Date>,
    /// Days spent waiting for clarification the controller asked for.
    pub paused_days: u32,
}

impl RequestClock {
    pub fn received(received: Date) -> Self {
        RequestClock {
            received,
            identity_received: None,
            fee_received: None,
            paused_days: 0,
        }
    }

    /// Art. 12A: the latest of receipt, identity and fee.
    pub fn starts(&self) -> Date {
        [
            Some(self.received),
            self.identity_received,
            self.fee_received,
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(self.received)
    }
}

/// The day a response is due: one month, or when extended the earlier
/// reading of two further months (see the module's documentation), plus the
/// days paused, moved to a working day.
pub fn response_due(
    clock: &RequestClock,
    division: Division,
    extended: bool,
) -> Result<Date, DeadlineError> {
    let due = period_end(clock.starts(), extended)?;
    let due = due
        .checked_add(Duration::days(i64::from(clock.paused_days)))
        .ok_or(DeadlineError::OutOfRange)?;
    next_working_day(due, division)
}

/// The end of the response period before pauses and the working-day shift:
/// one month from `start`, or when extended the earlier of three months from
/// `start` and two months from the one-month date.
pub fn period_end(start: Date, extended: bool) -> Result<Date, DeadlineError> {
    let one_month = add_months(start, 1).ok_or(DeadlineError::OutOfRange)?;
    if !extended {
        return Ok(one_month);
    }
    let three_from_start = add_months(start, 3).ok_or(DeadlineError::OutOfRange)?;
    let two_from_one_month = add_months(one_month, 2).ok_or(DeadlineError::OutOfRange)?;
    Ok(three_from_start.min(two_from_one_month))
}

/// `date` itself if it is a working day, otherwise the next one.
pub fn next_working_day(date: Date, division: Division) -> Result<Date, DeadlineError> {
    let calendar = Calendar::shipped(division).ok_or(DeadlineError::NoCalendar(division))?;
    let mut day = date;
    // Never more than a handful of steps (Christmas plus a weekend).
    for _ in 0..14 {
        if !calendar.covers(day) {
            return Err(DeadlineError::NotCovered(day.year()));
        }
        if calendar.is_working_day(day) {
            return Ok(day);
        }
        day = day.next_day().ok_or(DeadlineError::OutOfRange)?;
    }
    Err(DeadlineError::OutOfRange)
}

/// Art. 33: a personal-data breach is notified within 72 clock hours of awareness.
pub fn breach_notification_due(aware: OffsetDateTime) -> Option<OffsetDateTime> {
    aware.checked_add(Duration::hours(72))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    fn due(received: Date) -> Date {
        response_due(
            &RequestClock::received(received),
            Division::EnglandAndWales,
            false,
        )
        .unwrap()
    }

    #[test]
    fn every_vector_in_the_standards() {
        let vectors = [
            (date!(2025 - 09 - 03), date!(2025 - 10 - 03)),
            (date!(2025 - 01 - 31), date!(2025 - 02 - 28)),
            (date!(2024 - 01 - 31), date!(2024 - 02 - 29)),
            (date!(2023 - 04 - 01), date!(2023 - 05 - 02)),
            (date!(2023 - 11 - 25), date!(2023 - 12 - 27)),
            (date!(2025 - 09 - 04), date!(2025 - 10 - 06)),
            (date!(2026 - 03 - 03), date!(2026 - 04 - 07)),
            (date!(2026 - 11 - 26), date!(2026 - 12 - 29)),
        ];
        for (received, expected) in vectors {
            assert_eq!(due(received), expected, "received {received}");
        }
    }

    #[test]
    fn extended_deadline_takes_the_earlier_reading() {
        let received = date!(2025 - 10 - 31);
        // Three months from the start: Sat 31 Jan, shifted to Mon 2 Feb
        // (the reading standards.md gives, which law-notes.md overrides).
        assert_eq!(add_months(received, 3), Some(date!(2026 - 01 - 31)));
        assert_eq!(
            next_working_day(date!(2026 - 01 - 31), Division::EnglandAndWales).unwrap(),
            date!(2026 - 02 - 02)
        );
        // Two months from the one-month date (30 Nov): Fri 30 Jan.
        assert_eq!(
            add_months(date!(2025 - 11 - 30), 2),
            Some(date!(2026 - 01 - 30))
        );
        assert_eq!(period_end(received, true).unwrap(), date!(2026 - 01 - 30));
        let clock = RequestClock::received(received);
        assert_eq!(
            response_due(&clock, Division::EnglandAndWales, true).unwrap(),
            date!(2026 - 01 - 30)
        );
        // Where the readings agree, nothing changes: 3 Sep + 3 months.
        let clock = RequestClock::received(date!(2025 - 09 - 03));
        assert_eq!(
            response_due(&clock, Division::EnglandAndWales, true).unwrap(),
            date!(2025 - 12 - 03)
        );
    }

    #[test]
    fn breach_is_due_seventy_two_hours_later() {
        assert_eq!(
            breach_notification_due(datetime!(2025-12-24 16:00 UTC)),
            Some(datetime!(2025-12-27 16:00 UTC))
        );
    }

    #[test]
    fn clock_starts_at_the_latest_of_receipt_identity_and_fee() {
        let clock = RequestClock {
            received: date!(2025 - 09 - 01),
            identity_received: Some(date!(2025 - 09 - 03)),
            fee_received: Some(date!(2025 - 09 - 02)),
            paused_days: 0,
        };
        assert_eq!(clock.starts(), date!(2025 - 09 - 03));
        assert_eq!(
            response_due(&clock, Division::EnglandAndWales, false).unwrap(),
            date!(2025 - 10 - 03)
        );
        let paused = RequestClock {
            paused_days: 3,
            ..clock
        };
        // 3 Oct + 3 days = Mon 6 Oct.
        assert_eq!(
            response_due(&paused, Division::EnglandAndWales, false).unwrap(),
            date!(2025 - 10 - 06)
        );
    }

    #[test]
    fn divisions_have_their_own_holidays() {
        // 2 Jan 2026 is a bank holiday in Scotland only: received 2 Dec 2025.
        let clock = RequestClock::received(date!(2025 - 12 - 02));
        assert_eq!(
            response_due(&clock, Division::EnglandAndWales, false).unwrap(),
            date!(2026 - 01 - 02)
        );
        assert_eq!(
            response_due(&clock, Division::Scotland, false).unwrap(),
            date!(2026 - 01 - 05)
        );
        // St Patrick's Day 2026 (Tue) in Northern Ireland: received 17 Feb.
        let clock = RequestClock::received(date!(2026 - 02 - 17));
        assert_eq!(
            response_due(&clock, Division::NorthernIreland, false).unwrap(),
            date!(2026 - 03 - 18)
        );
    }

    #[test]
    fn beyond_the_calendar_is_an_error_not_a_guess() {
        let clock = RequestClock::received(date!(2040 - 12 - 10));
        assert_eq!(
            response_due(&clock, Division::EnglandAndWales, false),
            Err(DeadlineError::NotCovered(2041))
        );
    }

    #[test]
    fn deadlines_after_the_published_years_work() {
        // Easter Monday 2028 is 17 April: due the next day.
        assert_eq!(due(date!(2028 - 03 - 17)), date!(2028 - 04 - 18));
        // Christmas 2032 is a Saturday: substitute days Mon 27 and Tue 28.
        assert_eq!(due(date!(2032 - 11 - 27)), date!(2032 - 12 - 29));
        // 1 Jan 2040 is a Sunday: in Scotland 2 January keeps Monday and New
        // Year's Day moves to Tuesday.
        let clock = RequestClock::received(date!(2039 - 12 - 01));
        assert_eq!(
            response_due(&clock, Division::Scotland, false).unwrap(),
            date!(2040 - 01 - 04)
        );
        assert_eq!(
            response_due(&clock, Division::EnglandAndWales, false).unwrap(),
            date!(2040 - 01 - 03)
        );
    }
}
