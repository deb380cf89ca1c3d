//! Retention of the organisation's own data: a table (or a Redis hash key
//! pattern) names one of the policy's `[[retention]]` rules and the column
//! (hash field) its clock runs from, and the retention sweep erases, by the
//! declared field strategies, the rows whose clock is older than the rule's
//! period. This module checks the declaration and works out the cut-off;
//! the connectors run the set-based statements.
//!
//! ```toml
//! [[datasets.tables]]
//! name = "baskets"
//! expire = { rule = "visit-13m", from = "created_at" }
//! fields = [ ... { name = "created_at", category = "orders" } ... ]
//! ```

use crate::consent::Micros;
use crate::datasets::{Dataset, DatasetField, KeyKind};
use crate::diagnostic::Diagnostic;
use crate::located::At;
use crate::model::{Policy, RetentionRule};
use crate::period::Period;
use crate::retention::{parse_year_end, sub_period};
use crate::terms::RetentionEvent;
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime, Time};

/// A table's (or key pattern's) retention: the rule and its clock.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expire {
    /// A `[[retention]]` rule of the policy.
    pub rule: At<String>,
    /// The declared field (a date or timestamp column, or a hash field
    /// holding unix seconds) the rule's clock runs from.
    pub from: At<String>,
}

/// One part of a dataset swept under one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiring<'a> {
    /// The table's name or the key pattern.
    pub part: &'a str,
    pub expire: &'a Expire,
}

/// Every table and key pattern of `d` that carries a retention.
pub fn expiring(d: &Dataset) -> Vec<Expiring<'_>> {
    let tables = d.tables.iter().filter_map(|t| {
        t.expire.as_ref().map(|e| Expiring {
            part: t.name.as_str(),
            expire: e,
        })
    });
    let keys = d.keys.iter().filter_map(|k| {
        k.expire.as_ref().map(|e| Expiring {
            part: k.pattern.as_str(),
            expire: e,
        })
    });
    tables.chain(keys).collect()
}

/// The moment before which a clock under `rule` has run out at `now`: rows
/// whose clock column is earlier are due. For `accounting-period-end` the
/// column holds the transaction's date, and a transaction is due once the
/// period after the end of its accounting year has passed: the cut-off is
/// the start of the accounting year that holds `now` minus the period.
pub fn cutoff(rule: &RetentionRule, now: Micros) -> Option<Micros> {
    let period = Period::parse(&rule.duration)?;
    let back = sub_period(now, period)?;
    match *rule.from {
        RetentionEvent::AccountingPeriodEnd => {
            let (month, day) = parse_year_end(rule.year_end.as_deref()?)?;
            let date = OffsetDateTime::from_unix_timestamp_nanos(i128::from(back) * 1_000)
                .ok()?
                .date();
            // The accounting year starts the day after the year end.
            let start_in = |year: i32| -> Option<Date> {
                Date::from_calendar_date(year, month, day.min(month.length(year)))
                    .ok()?
                    .next_day()
            };
            let mut start = start_in(date.year())?;
            if start > date {
                start = start_in(date.year().checked_sub(1)?)?;
            }
            let t = start.with_time(Time::MIDNIGHT).assume_utc();
            i64::try_from(t.unix_timestamp_nanos() / 1_000).ok()
        }
        _ => Some(back),
    }
}

/// Whether a rule's clock can run from a column of the organisation's own
/// data. A consent withdrawal is recorded by Custodian, not by the table,
/// so a table cannot say when it happened.
fn applies_to_a_table(event: RetentionEvent) -> bool {
    !matches!(event, RetentionEvent::ConsentWithdrawal)
}

/// Checks each table's and key pattern's `expire`; faults go to `out`.
pub fn validate(policy: &Policy, d: &Dataset, out: &mut Vec<Diagnostic>) {
    for t in &d.tables {
        if let Some(e) = &t.expire {
            check(policy, e, &t.fields, &t.name, "table", out);
        }
    }
    for k in &d.keys {
        let Some(e) = &k.expire else { continue };
        if *k.kind != KeyKind::Hash {
            out.push(Diagnostic::new(
                e.from.span(),
                format!(
                    "key pattern `{}` is a string key, which holds no time to run a clock from",
                    *k.pattern
                ),
                "give the keys a TTL where they are written, or store them as hashes with a time field",
            ));
            continue;
        }
        // A hash's time field need not be declared among its fields: the
        // fields not listed share the pattern's category.
        check(policy, e, &[], &k.pattern, "key pattern", out);
    }
}

fn check(
    policy: &Policy,
    e: &Expire,
    fields: &[DatasetField],
    part: &At<String>,
    what: &str,
    out: &mut Vec<Diagnostic>,
) {
    match policy.retention.iter().find(|r| r.id.as_str() == e.rule.as_str()) {
        None => out.push(Diagnostic::new(
            e.rule.span(),
            format!("unknown retention rule `{}`", *e.rule),
            format!(
                "name a [[retention]] rule: {}",
                policy
                    .retention
                    .iter()
                    .map(|r| r.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
        Some(r) if !applies_to_a_table(*r.from) => out.push(Diagnostic::new(
            e.rule.span(),
            format!(
                "rule `{}` runs from {}, which the {what} `{}` does not record",
                *e.rule,
                r.from.as_str(),
                **part
            ),
            "name a rule whose clock runs from an event the data records (collection, last activity, the end of a relationship, ...)",
        )),
        Some(_) => {}
    }
    if what == "table" && !fields.iter().any(|f| f.name.as_str() == e.from.as_str()) {
        out.push(Diagnostic::new(
            e.from.span(),
            format!(
                "the clock column `{}` is not a declared field of table `{}`",
                *e.from, **part
            ),
            format!(
                "declare it among the fields (a date or timestamp column); fields: {}",
                fields
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
}

#[cfg(test)]
#[path = "datasets_retention_tests.rs"]
mod tests;
