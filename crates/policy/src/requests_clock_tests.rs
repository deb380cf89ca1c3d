use super::*;
use crate::period::add_months;
use crate::rules::calendar::Calendar;
use proptest::prelude::*;
use time::Duration;
use time::macros::date;

const EW: Division = Division::EnglandAndWales;

fn received(date: Date) -> Clock {
    Clock::received(date)
}

fn paused(clock: Clock, asked: Date, answered: Option<Date>) -> Clock {
    let mut clock = clock;
    clock.pauses.push(Pause { asked, answered });
    clock
}

fn extended(clock: Clock, told: Date) -> Clock {
    Clock {
        extension: Some(Extension {
            reason: "many requests from the same person".into(),
            told,
        }),
        ..clock
    }
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
    for (day, expected) in vectors {
        assert_eq!(
            due(&received(day), EW),
            Ok(Some(expected)),
            "received {day}"
        );
    }
}

#[test]
fn the_extension_takes_the_earlier_of_the_two_readings() {
    let day = date!(2025 - 10 - 31);
    // Reading one: three months from the start, Sat 31 Jan -> Mon 2 Feb.
    let three_months = add_months(day, 3).unwrap();
    assert_eq!(three_months, date!(2026 - 01 - 31));
    assert_eq!(
        next_working_day(three_months, EW),
        Ok(date!(2026 - 02 - 02))
    );
    // Reading two: two months from the one-month date (30 Nov), Fri 30 Jan.
    let one_month = add_months(day, 1).unwrap();
    assert_eq!(one_month, date!(2025 - 11 - 30));
    let two_after = add_months(one_month, 2).unwrap();
    assert_eq!(two_after, date!(2026 - 01 - 30));
    assert_eq!(next_working_day(two_after, EW), Ok(date!(2026 - 01 - 30)));
    // The earlier is chosen.
    let clock = extended(received(day), date!(2025 - 11 - 20));
    assert_eq!(due(&clock, EW), Ok(Some(date!(2026 - 01 - 30))));
    // The readings differ on the 29th to 31st: 31 Jan gives 28 Feb, then
    // Mon 28 Apr, where three months would give 30 Apr.
    let clock = extended(received(date!(2025 - 01 - 31)), date!(2025 - 02 - 10));
    assert_eq!(due(&clock, EW), Ok(Some(date!(2025 - 04 - 28))));
    // Where the readings agree: 3 Sep + 3 months.
    let clock = extended(received(date!(2025 - 09 - 03)), date!(2025 - 09 - 20));
    assert_eq!(due(&clock, EW), Ok(Some(date!(2025 - 12 - 03))));
}

#[test]
fn identity_and_fee_start_the_clock_late() {
    let mut clock = received(date!(2025 - 09 - 01));
    assert_eq!(due(&clock, EW), Ok(Some(date!(2025 - 10 - 01))));
    clock.identity = Some(date!(2025 - 09 - 03));
    assert_eq!(starts(&clock), date!(2025 - 09 - 03));
    assert_eq!(due(&clock, EW), Ok(Some(date!(2025 - 10 - 03))));
    // The fee arrives later still: 4 Oct is a Saturday.
    clock.fee = Some(date!(2025 - 09 - 04));
    assert_eq!(starts(&clock), date!(2025 - 09 - 04));
    assert_eq!(due(&clock, EW), Ok(Some(date!(2025 - 10 - 06))));
    // Evidence dated before receipt does not start the clock early.
    let early = Clock {
        identity: Some(date!(2025 - 08 - 20)),
        ..received(date!(2025 - 09 - 01))
    };
    assert_eq!(starts(&early), date!(2025 - 09 - 01));
}

#[test]
fn a_pause_stops_the_clock_until_the_answer() {
    let base = received(date!(2025 - 09 - 03));
    // Asked 10 Sep, answered 15 Sep: five days; 3 Oct + 5 = Wed 8 Oct.
    let answered = paused(
        base.clone(),
        date!(2025 - 09 - 10),
        Some(date!(2025 - 09 - 15)),
    );
    assert_eq!(due(&answered, EW), Ok(Some(date!(2025 - 10 - 08))));
    // Awaited: no due date while the clock stands still.
    let waiting = paused(base.clone(), date!(2025 - 09 - 10), None);
    assert_eq!(due(&waiting, EW), Ok(None));
    // Overlapping waits count each day once: 10 to 17 Sep, seven days.
    let overlapping = paused(
        answered.clone(),
        date!(2025 - 09 - 12),
        Some(date!(2025 - 09 - 17)),
    );
    assert_eq!(due(&overlapping, EW), Ok(Some(date!(2025 - 10 - 10))));
    // The order they are recorded in does not matter.
    let mut reversed = overlapping.clone();
    reversed.pauses.reverse();
    assert_eq!(due(&reversed, EW), due(&overlapping, EW));
}

#[test]
fn a_pause_counts_only_while_the_clock_runs() {
    // Asked before the identity evidence came: only 10 to 12 Sep count.
    let clock = Clock {
        identity: Some(date!(2025 - 09 - 10)),
        ..received(date!(2025 - 09 - 01))
    };
    let clock = paused(clock, date!(2025 - 09 - 05), Some(date!(2025 - 09 - 12)));
    // 10 Oct + 2 = Sun 12 Oct -> Mon 13 Oct.
    assert_eq!(due(&clock, EW), Ok(Some(date!(2025 - 10 - 13))));
    // Asked after the deadline: it moves nothing, answered or not.
    let base = received(date!(2025 - 09 - 03));
    for answer in [Some(date!(2025 - 10 - 20)), None] {
        let late = paused(base.clone(), date!(2025 - 10 - 10), answer);
        assert_eq!(due(&late, EW), Ok(Some(date!(2025 - 10 - 03))));
    }
}

#[test]
fn a_pause_may_disappear_into_the_working_day_shift() {
    // 4 Sep: one month is Sat 4 Oct, due Mon 6 Oct. A one-day pause makes
    // it Sun 5 Oct, still due Mon 6 Oct.
    let base = received(date!(2025 - 09 - 04));
    let clock = paused(base, date!(2025 - 09 - 10), Some(date!(2025 - 09 - 11)));
    assert_eq!(due(&clock, EW), Ok(Some(date!(2025 - 10 - 06))));
}

#[test]
fn an_answer_before_the_question_is_refused() {
    let clock = paused(
        received(date!(2025 - 09 - 03)),
        date!(2025 - 09 - 10),
        Some(date!(2025 - 09 - 09)),
    );
    assert_eq!(
        due(&clock, EW),
        Err(ClockError::AnsweredBeforeAsked {
            asked: date!(2025 - 09 - 10),
            answered: date!(2025 - 09 - 09)
        })
    );
}

#[test]
fn a_pause_needs_a_large_amount_of_information() {
    assert_eq!(may_pause(true), Ok(()));
    assert_eq!(may_pause(false), Err(ClockError::PauseNotAllowed));
}

#[test]
fn an_extension_is_told_within_the_first_month_with_a_reason() {
    let base = received(date!(2025 - 09 - 03));
    let ext = |told, reason: &str| Extension {
        reason: reason.into(),
        told,
    };
    // The first month ends on 3 Oct: telling on that day is in time.
    assert_eq!(
        check_extension(&base, &ext(date!(2025 - 10 - 03), "complex"), EW),
        Ok(())
    );
    assert_eq!(
        check_extension(&base, &ext(date!(2025 - 10 - 04), "complex"), EW),
        Err(ClockError::ExtensionToldTooLate {
            told: date!(2025 - 10 - 04),
            first_month_due: date!(2025 - 10 - 03)
        })
    );
    assert_eq!(
        check_extension(&base, &ext(date!(2025 - 09 - 10), "  "), EW),
        Err(ClockError::ExtensionWithoutReason)
    );
    assert_eq!(
        check_extension(&base, &ext(date!(2025 - 09 - 01), "complex"), EW),
        Err(ClockError::ExtensionToldBeforeReceipt {
            told: date!(2025 - 09 - 01),
            received: date!(2025 - 09 - 03)
        })
    );
    // A pause lengthens the first month: 3 Oct + 5 days = 8 Oct.
    let waited = paused(
        base.clone(),
        date!(2025 - 09 - 10),
        Some(date!(2025 - 09 - 15)),
    );
    assert_eq!(
        check_extension(&waited, &ext(date!(2025 - 10 - 08), "complex"), EW),
        Ok(())
    );
    // `due` refuses an extension told too late rather than ignoring it.
    let late = extended(base.clone(), date!(2025 - 10 - 04));
    assert!(matches!(
        due(&late, EW),
        Err(ClockError::ExtensionToldTooLate { .. })
    ));
    // In time: 3 Sep extended is due Wed 3 Dec.
    let ok = extended(base, date!(2025 - 09 - 30));
    assert_eq!(due(&ok, EW), Ok(Some(date!(2025 - 12 - 03))));
}

#[test]
fn beyond_the_shipped_calendar_is_an_error() {
    assert_eq!(
        due(&received(date!(2040 - 12 - 10)), EW),
        Err(ClockError::Deadline(DeadlineError::NotCovered(2041)))
    );
}

#[test]
fn due_soon_and_overdue() {
    let due_on = date!(2025 - 10 - 03);
    assert!(!overdue(due_on, due_on));
    assert!(overdue(due_on, date!(2025 - 10 - 04)));
    assert!(due_soon(due_on, due_on, 0));
    assert!(due_soon(due_on, date!(2025 - 09 - 26), 7));
    assert!(!due_soon(due_on, date!(2025 - 09 - 25), 7));
    // Overdue is not "due soon": it is listed as overdue.
    assert!(!due_soon(due_on, date!(2025 - 10 - 04), 7));
}

fn day_in_range() -> impl Strategy<Value = Date> {
    // Starts whose extended, paused deadline stays inside the shipped calendars.
    let first = date!(2019 - 01 - 01).to_julian_day();
    let last = date!(2039 - 12 - 31).to_julian_day();
    (first..=last).prop_map(|j| Date::from_julian_day(j).unwrap())
}

fn division() -> impl Strategy<Value = Division> {
    prop::sample::select(Division::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn due_is_a_working_day_at_least_28_days_on(start in day_in_range(), division in division()) {
        let due_on = due(&received(start), division).unwrap().unwrap();
        prop_assert!(due_on >= start + Duration::days(28));
        // One month is at most 31 days, and no run of holidays is longer than 4.
        prop_assert!(due_on <= start + Duration::days(31 + 4));
        prop_assert!(Calendar::shipped(division).unwrap().is_working_day(due_on));
    }

    #[test]
    fn extended_is_later_but_never_after_the_three_month_reading(
        start in day_in_range(),
        division in division(),
    ) {
        let plain = due(&received(start), division).unwrap().unwrap();
        let long = due(&extended(received(start), start), division).unwrap().unwrap();
        prop_assert!(long >= plain);
        let three = next_working_day(add_months(start, 3).unwrap(), division).unwrap();
        prop_assert!(long <= three);
        // Received 31 Jan (not a leap year): 28 Feb, then 28 Apr, 87 days.
        prop_assert!(long >= start + Duration::days(87));
    }

    #[test]
    fn a_pause_of_n_days_moves_the_date_the_shift_aside(
        start in day_in_range(),
        after in 0i64..28,
        n in 0i64..60,
        division in division(),
    ) {
        let asked = start + Duration::days(after);
        let base = received(start);
        let plain = due(&base, division).unwrap().unwrap();
        let clock = paused(base, asked, Some(asked + Duration::days(n)));
        let moved = due(&clock, division).unwrap().unwrap();
        prop_assert!(moved >= plain);
        // The month's end moves by exactly n; the shift can absorb a few days.
        let end = add_months(start, 1).unwrap() + Duration::days(n);
        prop_assert!(moved >= end);
        prop_assert!(moved <= end + Duration::days(4));
        prop_assert!(moved <= plain + Duration::days(n + 4));
    }

    #[test]
    fn a_later_start_is_never_due_earlier(
        start in day_in_range(),
        later in 0i64..40,
        division in division(),
    ) {
        let early = due(&received(start), division).unwrap().unwrap();
        let clock = Clock { identity: Some(start + Duration::days(later)), ..received(start) };
        prop_assert!(due(&clock, division).unwrap().unwrap() >= early);
    }
}
