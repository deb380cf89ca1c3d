//! Storage limitation (Art. 5(1)(e)): when each datum expires.
//!
//! A datum (one field of one subject) is kept while at least one ground
//! keeps it: the retention rule of a purpose that uses its category and
//! applies to the person, or its category's own rule. Each rule's clock runs
//! from an event (collection, last activity, the end of a relationship, the
//! end of the accounting period of a transaction, a consent withdrawal, a
//! request closed, an application decided). The longest live ground wins;
//! when the last one ends, the datum expires. Pure: facts and time come in
//! as parameters.

use crate::consent::Micros;
use crate::day::Day;
use crate::model::Policy;
use crate::period::Period;
use crate::terms::{LegalBasis, RetentionEvent};
use std::collections::HashMap;
use time::{Date, Month, OffsetDateTime, Time};

/// A relationship of the person, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationshipFact {
    pub kind: String,
    pub started_at: Micros,
    pub ended_at: Option<Micros>,
}

/// The person's current consent for a purpose, and when it last changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentFact {
    pub purpose: String,
    pub live: bool,
    pub at: Micros,
}

/// What the clocks of one person's data run from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectFacts {
    pub relationships: Vec<RelationshipFact>,
    pub consents: Vec<ConsentFact>,
    /// The latest thing the person did or that was recorded about them.
    pub last_activity: Micros,
    /// Set once an erasure request was carried out: from then on only a
    /// rule that states a legal obligation keeps data (Art. 17(3)(b)).
    pub erased_at: Option<Micros>,
}

/// One datum: its field and what its provenance says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatumFacts<'a> {
    pub field: &'a str,
    pub purpose: &'a str,
    pub collected_at: Micros,
}

/// When a ground stops keeping a datum. `At` sorts before `Open`, so the
/// maximum of several is the longest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Expiry {
    At(Micros),
    /// The clock has not started (a relationship still active, a consent
    /// still live): kept until the event happens.
    Open,
}

impl Expiry {
    pub fn is_due(self, now: Micros) -> bool {
        matches!(self, Expiry::At(at) if at <= now)
    }
}

/// The ground that keeps a datum longest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ground {
    pub rule: String,
    /// The purpose whose rule this is; `None` for a category's own rule.
    pub purpose: Option<String>,
    pub expiry: Expiry,
}

#[derive(Debug, Clone)]
struct Rule {
    id: String,
    period: Period,
    from: RetentionEvent,
    relationship: Option<String>,
    year_end: Option<(Month, u8)>,
    statutory: bool,
}

#[derive(Debug, Clone)]
struct PurposeGround {
    purpose: String,
    rule: usize,
    basis: LegalBasis,
    relationships: Vec<String>,
}

#[derive(Debug, Clone, Default)]
struct FieldGrounds {
    category: String,
    category_rule: Option<usize>,
    purposes: Vec<PurposeGround>,
}

/// The policy's retention, compiled per field.
#[derive(Debug, Clone, Default)]
pub struct Retention {
    rules: Vec<Rule>,
    fields: HashMap<String, FieldGrounds>,
}

/// `MM-DD` as a month and day; 29 February is allowed (it clamps).
pub fn parse_year_end(text: &str) -> Option<(Month, u8)> {
    let (m, d) = text.split_once('-')?;
    if m.len() != 2 || d.len() != 2 {
        return None;
    }
    let month = Month::try_from(m.parse::<u8>().ok()?).ok()?;
    let day: u8 = d.parse().ok()?;
    (day >= 1 && day <= month.length(2024)).then_some((month, day))
}

impl Retention {
    pub fn new(policy: &Policy) -> Retention {
        let mut rules = Vec::new();
        let mut index = HashMap::new();
        for r in &policy.retention {
            let Some(period) = Period::parse(&r.duration) else {
                continue;
            };
            index.insert(r.id.to_string(), rules.len());
            rules.push(Rule {
                id: r.id.to_string(),
                period,
                from: *r.from,
                relationship: r.relationship.as_ref().map(|x| x.to_string()),
                year_end: r.year_end.as_ref().and_then(|y| parse_year_end(y)),
                statutory: r.legal_obligation.is_some(),
            });
        }
        let rule_of = |name: Option<&crate::located::At<String>>| {
            name.and_then(|n| index.get(n.as_str()).copied())
        };
        let mut fields: HashMap<String, FieldGrounds> = HashMap::new();
        for c in &policy.categories {
            for f in &c.fields {
                fields.insert(
                    f.name.to_string(),
                    FieldGrounds {
                        category: c.id.to_string(),
                        category_rule: rule_of(c.retention.as_ref()),
                        purposes: Vec::new(),
                    },
                );
            }
        }
        for p in &policy.purposes {
            let Some(rule) = rule_of(p.retention.as_ref()) else {
                continue;
            };
            for (name, grounds) in fields.iter_mut() {
                let uses = p.categories.iter().any(|c| {
                    let c = c.as_str();
                    c == grounds.category
                        || c.split_once('.') == Some((grounds.category.as_str(), name.as_str()))
                });
                if uses {
                    grounds.purposes.push(PurposeGround {
                        purpose: p.id.to_string(),
                        rule,
                        basis: *p.basis,
                        relationships: p.relationships.iter().map(|r| r.to_string()).collect(),
                    });
                }
            }
        }
        Retention { rules, fields }
    }

    /// The category a field belongs to.
    pub fn category_of(&self, field: &str) -> Option<&str> {
        self.fields.get(field).map(|g| g.category.as_str())
    }

    /// The ground that keeps `datum` longest, or `None` when no rule of the
    /// policy covers it (reported for review, never erased on a guess).
    pub fn expiry(&self, subject: &SubjectFacts, datum: &DatumFacts<'_>) -> Option<Ground> {
        let grounds = self.fields.get(datum.field)?;
        let mut best: Option<Ground> = None;
        let mut consider = |rule: &Rule, purpose: Option<&str>, relationships: &[String]| {
            let expiry = if subject.erased_at.is_some() && !rule.statutory {
                // An erasure was asked for: only a legal obligation keeps it.
                Expiry::At(subject.erased_at.unwrap_or(datum.collected_at))
            } else {
                let context = purpose.unwrap_or(datum.purpose);
                clock(rule, context, relationships, subject, datum)
            };
            let longer = best.as_ref().is_none_or(|b| expiry > b.expiry);
            if longer {
                best = Some(Ground {
                    rule: rule.id.clone(),
                    purpose: purpose.map(str::to_string),
                    expiry,
                });
            }
        };
        if let Some(rule) = grounds.category_rule.and_then(|i| self.rules.get(i)) {
            consider(rule, None, &[]);
        }
        for p in &grounds.purposes {
            if !applies(p, subject, datum) {
                continue;
            }
            if let Some(rule) = self.rules.get(p.rule) {
                consider(rule, Some(&p.purpose), &p.relationships);
            }
        }
        best
    }

    /// The rule ids this policy declares, in order.
    pub fn rule_ids(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.id.as_str())
    }
}

/// Whether a purpose's ground reaches this person's datum: it was
/// collected for it, or the person has what the basis rests on (a
/// relationship the purpose names, a consent decision for it).
fn applies(p: &PurposeGround, subject: &SubjectFacts, datum: &DatumFacts<'_>) -> bool {
    if p.purpose == datum.purpose {
        return true;
    }
    match p.basis {
        LegalBasis::Contract | LegalBasis::LegalObligation => {
            !p.relationships.is_empty()
                && subject
                    .relationships
                    .iter()
                    .any(|r| p.relationships.contains(&r.kind))
        }
        LegalBasis::Consent => subject.consents.iter().any(|c| c.purpose == p.purpose),
        _ => false,
    }
}

/// When `rule`, applied for `purpose`, stops keeping the datum.
fn clock(
    rule: &Rule,
    purpose: &str,
    purpose_relationships: &[String],
    subject: &SubjectFacts,
    datum: &DatumFacts<'_>,
) -> Expiry {
    // The relationship the rule names; where the person has none of that
    // kind, the relationships that ground the purpose.
    let named = rule
        .relationship
        .as_deref()
        .filter(|k| subject.relationships.iter().any(|r| r.kind == *k));
    let kinds: Vec<&str> = match named {
        Some(k) => vec![k],
        None => purpose_relationships.iter().map(String::as_str).collect(),
    };
    let of_kind = || {
        subject
            .relationships
            .iter()
            .filter(|r| kinds.contains(&r.kind.as_str()))
    };
    let start = match rule.from {
        RetentionEvent::Collection => Some(datum.collected_at),
        RetentionEvent::LastActivity => Some(subject.last_activity.max(datum.collected_at)),
        RetentionEvent::RelationshipEnd
        | RetentionEvent::RequestClosed
        | RetentionEvent::ApplicationDecided => {
            // While one is still running the clock has not started; with none
            // recorded it runs from collection rather than never.
            if of_kind().any(|r| r.ended_at.is_none()) {
                None
            } else {
                Some(
                    of_kind()
                        .filter_map(|r| r.ended_at)
                        .max()
                        .unwrap_or(datum.collected_at),
                )
            }
        }
        RetentionEvent::ConsentWithdrawal => {
            match subject.consents.iter().find(|c| c.purpose == purpose) {
                Some(c) if c.live => None,
                Some(c) => Some(c.at),
                None => Some(datum.collected_at),
            }
        }
        RetentionEvent::AccountingPeriodEnd => {
            let transaction = of_kind()
                .map(|r| r.started_at)
                .max()
                .unwrap_or(datum.collected_at);
            match rule.year_end {
                Some(end) => period_end(transaction, end),
                // Validation requires a year end; without one, keep.
                None => None,
            }
        }
    };
    match start.and_then(|s| add_period(s, rule.period)) {
        Some(at) => Expiry::At(at),
        None => Expiry::Open,
    }
}

fn to_time(micros: Micros) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).ok()
}

fn to_micros(t: OffsetDateTime) -> Option<Micros> {
    i64::try_from(t.unix_timestamp_nanos() / 1_000).ok()
}

/// `start` plus a calendar period, at the same time of day (UTC).
pub fn add_period(start: Micros, period: Period) -> Option<Micros> {
    let t = to_time(start)?;
    let date = period.after(t.date())?;
    to_micros(date.with_time(t.time()).assume_utc())
}

/// `start` minus a calendar period: the cut-off before which a clock that
/// started has run out by `start`.
pub fn sub_period(start: Micros, period: Period) -> Option<Micros> {
    let t = to_time(start)?;
    let date = t.date();
    let back = match period.unit {
        crate::period::Unit::Days => {
            date.checked_sub(time::Duration::days(i64::from(period.amount)))?
        }
        crate::period::Unit::Weeks => {
            date.checked_sub(time::Duration::weeks(i64::from(period.amount)))?
        }
        crate::period::Unit::Months => months_back(date, period.amount)?,
        crate::period::Unit::Years => months_back(date, period.amount.checked_mul(12)?)?,
    };
    to_micros(back.with_time(t.time()).assume_utc())
}

fn months_back(date: Date, months: u32) -> Option<Date> {
    let zero_based =
        i64::from(date.year()) * 12 + i64::from(u8::from(date.month())) - 1 - i64::from(months);
    let year = i32::try_from(zero_based.div_euclid(12)).ok()?;
    let month = Month::try_from(u8::try_from(zero_based.rem_euclid(12) + 1).ok()?).ok()?;
    Date::from_calendar_date(year, month, date.day().min(month.length(year))).ok()
}

/// The first moment after the accounting year (ending on `end` each year)
/// in which `transaction` falls.
fn period_end(transaction: Micros, (month, day): (Month, u8)) -> Option<Micros> {
    let date = to_time(transaction)?.date();
    let in_year = |year: i32| Date::from_calendar_date(year, month, day.min(month.length(year)));
    let mut end = in_year(date.year()).ok()?;
    if end < date {
        end = in_year(date.year().checked_add(1)?).ok()?;
    }
    to_micros(end.next_day()?.with_time(Time::MIDNIGHT).assume_utc())
}

/// A rule's periodic review (promise P8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewDue {
    pub rule: String,
    /// The last review: the policy's `last_reviewed` or a later one recorded.
    pub last_reviewed: Option<Day>,
    /// When the next review is due; `None` when the rule was never reviewed.
    pub due: Option<Day>,
}

/// When each rule is next due for review, given reviews recorded since the
/// policy was written (rule id, day).
pub fn reviews(policy: &Policy, recorded: &[(String, Day)]) -> Vec<ReviewDue> {
    policy
        .retention
        .iter()
        .map(|r| {
            let written = r.last_reviewed.as_ref().map(|d| **d);
            let later = recorded
                .iter()
                .filter(|(id, _)| id == r.id.as_str())
                .map(|(_, d)| *d)
                .max();
            let last = written.max(later);
            let every = r
                .review_every
                .as_ref()
                .and_then(|e| Period::parse(e))
                .unwrap_or(Period {
                    amount: 12,
                    unit: crate::period::Unit::Months,
                });
            ReviewDue {
                rule: r.id.to_string(),
                last_reviewed: last,
                due: last.and_then(|d| every.after(d.date())).map(Day),
            }
        })
        .collect()
}

/// A fingerprint of everything that decides expiries, so that a node
/// notices a policy whose retention differs from the one the stored
/// expiries were computed with (FNV-1a over a canonical text).
pub fn fingerprint(policy: &Policy) -> String {
    let mut text = String::new();
    for r in &policy.retention {
        text.push_str(&format!(
            "r|{}|{}|{}|{:?}|{:?}|{}\n",
            r.id.as_str(),
            r.duration.as_str(),
            r.from.as_str(),
            r.relationship.as_ref().map(|x| x.as_str()),
            r.year_end.as_ref().map(|x| x.as_str()),
            r.legal_obligation.is_some()
        ));
    }
    for p in &policy.purposes {
        let cats: Vec<&str> = p.categories.iter().map(|c| c.as_str()).collect();
        let rels: Vec<&str> = p.relationships.iter().map(|c| c.as_str()).collect();
        text.push_str(&format!(
            "p|{}|{}|{:?}|{}|{}\n",
            p.id.as_str(),
            p.basis.as_str(),
            p.retention.as_ref().map(|x| x.as_str()),
            cats.join(","),
            rels.join(",")
        ));
    }
    for c in &policy.categories {
        let fields: Vec<&str> = c.fields.iter().map(|f| f.name.as_str()).collect();
        text.push_str(&format!(
            "c|{}|{:?}|{}\n",
            c.id.as_str(),
            c.retention.as_ref().map(|x| x.as_str()),
            fields.join(",")
        ));
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

#[cfg(test)]
#[path = "retention_tests.rs"]
mod tests;
