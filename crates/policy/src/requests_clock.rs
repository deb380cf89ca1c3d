//! The statutory clock of a data-subject request (UK GDPR Art. 12(3), and
//! Art. 12A as the Data (Use and Access) Act 2025 inserts it).
//!
//! The clock starts at the latest of receipt, the identity evidence and any
//! fee. It runs one month (the ICO's method, [`crate::rules::deadline`]),
//! stands still while clarification the controller asked for is awaited, and
//! may be extended by two further months for complex or numerous requests if
//! the person is told, with the reason, within the first month.
//!
//! Pure: today's date is always a parameter.

use crate::rules::calendar::Division;
use crate::rules::deadline::{DeadlineError, next_working_day, period_end};
use time::Date;

/// What the engine records about a request's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clock {
    pub received: Date,
    /// When the identity evidence arrived (Art. 12A), if it was asked for.
    pub identity: Option<Date>,
    /// When a fee arrived (Art. 12A), if one was due.
    pub fee: Option<Date>,
    /// Waits for clarification, in any order.
    pub pauses: Vec<Pause>,
    pub extension: Option<Extension>,
}

impl Clock {
    /// A request received on `received`, with nothing else yet.
    pub fn received(received: Date) -> Clock {
        Clock {
            received,
            identity: None,
            fee: None,
            pauses: Vec::new(),
            extension: None,
        }
    }
}

/// A wait for clarification: from the day the question was sent to the day
/// the answer arrived (`None` while it is awaited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pause {
    pub asked: Date,
    pub answered: Option<Date>,
}

/// An extension by two further months (Art. 12(3)) for a complex request or
/// many requests: why, and the day the person was told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    pub reason: String,
    pub told: Date,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    #[error(
        "the clock may pause for clarification only where the controller holds a large amount of information about the person"
    )]
    PauseNotAllowed,
    #[error("a clarification cannot be answered ({answered}) before it was asked ({asked})")]
    AnsweredBeforeAsked { asked: Date, answered: Date },
    #[error("an extension needs its reason: a complex request, or many requests")]
    ExtensionWithoutReason,
    #[error(
        "the person was told of the extension on {told}, after the first month ended on {first_month_due}"
    )]
    ExtensionToldTooLate { told: Date, first_month_due: Date },
    #[error(
        "the person cannot be told of an extension ({told}) before the request was received ({received})"
    )]
    ExtensionToldBeforeReceipt { told: Date, received: Date },
    #[error(transparent)]
    Deadline(#[from] DeadlineError),
}

/// Whether the clock may pause for clarification: only where the controller
/// holds a large amount of information about the person (Art. 12A).
pub fn may_pause(large_amount: bool) -> Result<(), ClockError> {
    if large_amount {
        Ok(())
    } else {
        Err(ClockError::PauseNotAllowed)
    }
}

/// Art. 12A: the latest of receipt, the identity evidence and the fee.
pub fn starts(clock: &Clock) -> Date {
    [clock.identity, clock.fee]
        .into_iter()
        .flatten()
        .fold(clock.received, Date::max)
}

/// Whether `ext` may extend `clock`: it has a reason, and the person was
/// told on or after receipt and no later than the first month's due date
/// (with the clock's pauses). While the first month is paused it has not
/// ended, so any telling after receipt is in time.
pub fn check_extension(
    clock: &Clock,
    ext: &Extension,
    division: Division,
) -> Result<(), ClockError> {
    if ext.reason.trim().is_empty() {
        return Err(ClockError::ExtensionWithoutReason);
    }
    if ext.told < clock.received {
        return Err(ClockError::ExtensionToldBeforeReceipt {
            told: ext.told,
            received: clock.received,
        });
    }
    check_pauses(&clock.pauses)?;
    let first_month = running_due(starts(clock), false, &clock.pauses, division)?;
    match first_month {
        Some(first_month_due) if ext.told > first_month_due => {
            Err(ClockError::ExtensionToldTooLate {
                told: ext.told,
                first_month_due,
            })
        }
        _ => Ok(()),
    }
}

/// The day the response is due, or `None` while the clock stands still for
/// a clarification not yet answered.
///
/// One month from [`starts`] (same date next month, or that month's last
/// day); when extended, the EARLIER of three months from the start and two
/// months from the one-month date, both taken before the working-day shift
/// (law-notes.md: "Use the earlier date"). Received 2025-10-31: three months
/// reads Sat 2026-01-31 (shifted, Mon 2026-02-02); two months from 2025-11-30
/// reads Fri 2026-01-30, which is the one used.
///
/// Then the days paused are added: each pause counts from `asked` to
/// `answered`, only while the clock runs, so days before the start, days
/// already counted by an overlapping pause, and a pause asked after the
/// deadline it would move add nothing. Last, a weekend or bank holiday of
/// `division` moves the date to the next working day.
///
/// An extension is checked first ([`check_extension`]); one told too late
/// is an error, not ignored.
pub fn due(clock: &Clock, division: Division) -> Result<Option<Date>, ClockError> {
    check_pauses(&clock.pauses)?;
    if let Some(ext) = &clock.extension {
        check_extension(clock, ext, division)?;
    }
    running_due(
        starts(clock),
        clock.extension.is_some(),
        &clock.pauses,
        division,
    )
}

/// Not overdue, and due within `within_days` days of `today` (due today
/// counts).
pub fn due_soon(due: Date, today: Date, within_days: i64) -> bool {
    !overdue(due, today) && (due - today).whole_days() <= within_days
}

/// The due date has passed: answered on the due date is in time.
pub fn overdue(due: Date, today: Date) -> bool {
    today > due
}

fn check_pauses(pauses: &[Pause]) -> Result<(), ClockError> {
    match pauses
        .iter()
        .find_map(|p| p.answered.filter(|a| *a < p.asked).map(|a| (p.asked, a)))
    {
        Some((asked, answered)) => Err(ClockError::AnsweredBeforeAsked { asked, answered }),
        None => Ok(()),
    }
}

fn running_due(
    start: Date,
    extended: bool,
    pauses: &[Pause],
    division: Division,
) -> Result<Option<Date>, ClockError> {
    let mut end = period_end(start, extended)?;
    let mut pauses = pauses.to_vec();
    pauses.sort_by_key(|p| (p.asked, p.answered));
    // Days up to here are counted (or before the start): a pause counts only after.
    let mut counted_until = start;
    for pause in pauses {
        let from = pause.asked.max(counted_until);
        if from > next_working_day(end, division)? {
            // The deadline had passed before this wait began.
            break;
        }
        let Some(answered) = pause.answered else {
            return Ok(None);
        };
        if answered > from {
            end = end
                .checked_add(answered - from)
                .ok_or(DeadlineError::OutOfRange)?;
            counted_until = answered;
        }
    }
    Ok(Some(next_working_day(end, division)?))
}

#[cfg(test)]
#[path = "requests_clock_tests.rs"]
mod tests;
