//! Storage limitation, enforced without anyone remembering (promise P8).
//!
//! The store keeps one row per subject with each datum's expiry, indexed by
//! when the next falls due; the database marks a row for recomputation
//! whenever the subject's data, relationships or consents change, and a
//! policy whose retention changed marks them all. This module works the
//! expiries out from the policy (`custodian_policy::retention`, pure) and
//! the subject's facts; `sweep` erases what is due, `holds` keeps what a
//! legal hold covers, `report` lists what expires when and the rules due for
//! review, and `datasets` is where the organisation's other databases will
//! be swept through their connectors.

pub mod datasets;
pub mod holds;
pub mod report;
pub mod sweep;

use crate::App;
use custodian_policy::retention::{
    ConsentFact, DatumFacts, Expiry, RelationshipFact, Retention, SubjectFacts,
};
use custodian_vault::store::retention::{DatumExpiry, ExpiryRow, LegalHold};
use custodian_vault::store::{RelationshipStatus, StoredConsentStatus, SubjectRecord};
use uuid::Uuid;

pub use holds::HoldScope;

/// What a subject's facts say for the clocks.
pub fn facts_of(record: &SubjectRecord) -> SubjectFacts {
    let state = &record.state;
    let relationships: Vec<RelationshipFact> = state
        .relationships
        .iter()
        .map(|r| RelationshipFact {
            kind: r.kind.clone(),
            started_at: r.started_at,
            ended_at: r
                .ended_at
                .or_else(|| (r.status == RelationshipStatus::Ended).then_some(r.started_at)),
        })
        .collect();
    let mut consents: Vec<ConsentFact> = Vec::new();
    for c in &state.preferences.consents {
        let live = c.status == StoredConsentStatus::Given;
        match consents.iter_mut().find(|f| f.purpose == c.purpose) {
            // One channel still live keeps the purpose's consent live.
            Some(f) => {
                f.live |= live;
                f.at = f.at.max(c.at);
            }
            None => consents.push(ConsentFact {
                purpose: c.purpose.clone(),
                live,
                at: c.at,
            }),
        }
    }
    let mut last_activity = record.created_at;
    for f in &record.fields {
        last_activity = last_activity.max(f.provenance.collected_at);
    }
    for r in &relationships {
        last_activity = last_activity.max(r.started_at.max(r.ended_at.unwrap_or(i64::MIN)));
    }
    for c in &state.preferences.consents {
        last_activity = last_activity.max(c.at);
    }
    for o in &state.preferences.objections {
        last_activity = last_activity.max(o.at);
    }
    SubjectFacts {
        relationships,
        consents,
        last_activity,
        erased_at: record.erased_at,
    }
}

/// One datum's verdict at a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatumVerdict {
    pub expiry: DatumExpiry,
    pub category: Option<String>,
    /// Its expiry has been reached.
    pub due: bool,
    /// The hold (or restriction) keeping it although due.
    pub held_by: Option<Keeper>,
}

/// What keeps due data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keeper {
    Hold(LegalHold),
    /// Art. 18: restricted data is only stored, so not erased either.
    Restriction,
}

/// A subject's data at `now`: each datum's expiry, and the index row to store.
#[derive(Debug, Clone)]
pub struct Assessment {
    pub subject: Uuid,
    pub data: Vec<DatumVerdict>,
    pub row: ExpiryRow,
}

impl Assessment {
    /// Data due and not held: what the sweep removes.
    pub fn removable(&self) -> impl Iterator<Item = &DatumVerdict> {
        self.data.iter().filter(|d| d.due && d.held_by.is_none())
    }

    /// Nothing is left once the removable data goes.
    pub fn leaves_nothing(&self) -> bool {
        self.data.iter().all(|d| d.due && d.held_by.is_none())
    }
}

/// Works out a subject's expiries at `now`, with the holds in force.
pub fn assess(
    retention: &Retention,
    record: &SubjectRecord,
    holds: &[LegalHold],
    now: i64,
) -> Assessment {
    let facts = facts_of(record);
    let subject_text = record.id.to_string();
    let subject_hold = holds
        .iter()
        .find(|h| h.scope == "subject" && h.target == subject_text && h.is_active(now));
    let mut data = Vec::with_capacity(record.fields.len());
    for f in &record.fields {
        let ground = retention.expiry(
            &facts,
            &DatumFacts {
                field: &f.name,
                purpose: &f.provenance.purpose,
                collected_at: f.provenance.collected_at,
            },
        );
        let category = retention.category_of(&f.name).map(str::to_string);
        let expiry = match &ground {
            Some(g) => DatumExpiry {
                field: f.name.clone(),
                expires_at: match g.expiry {
                    Expiry::At(at) => Some(at),
                    Expiry::Open => None,
                },
                rule: g.rule.clone(),
                purpose: g.purpose.clone(),
            },
            // No rule covers it (a policy that dropped its category): it is
            // reported for review and never erased on a guess.
            None => DatumExpiry {
                field: f.name.clone(),
                ..DatumExpiry::default()
            },
        };
        let due = expiry.expires_at.is_some_and(|at| at <= now);
        let held_by = if !due {
            None
        } else if let Some(h) = subject_hold {
            Some(Keeper::Hold(h.clone()))
        } else if let Some(h) = holds.iter().find(|h| {
            h.scope == "category" && Some(&h.target) == category.as_ref() && h.is_active(now)
        }) {
            Some(Keeper::Hold(h.clone()))
        } else if record.state.restricted {
            Some(Keeper::Restriction)
        } else {
            None
        };
        data.push(DatumVerdict {
            expiry,
            category,
            due,
            held_by,
        });
    }
    let row = next_row(record.id, &data);
    Assessment {
        subject: record.id,
        data,
        row,
    }
}

/// The index row after the removable data goes: due next at the earliest
/// expiry still ahead, or when the earliest hold keeping data ends.
fn next_row(subject: Uuid, data: &[DatumVerdict]) -> ExpiryRow {
    let mut due_at: Option<i64> = None;
    let mut held_by = None;
    let mut earliest = |at: i64| due_at = Some(due_at.map_or(at, |d: i64| d.min(at)));
    for d in data {
        match (&d.held_by, d.due, d.expiry.expires_at) {
            (Some(Keeper::Hold(h)), _, _) => {
                held_by = Some(h.id);
                if let Some(end) = h.ends_at {
                    earliest(end);
                }
            }
            (Some(Keeper::Restriction), _, _) => {}
            (None, false, Some(at)) => earliest(at),
            _ => {}
        }
    }
    ExpiryRow {
        subject,
        due_at,
        held_by,
        data: data
            .iter()
            .filter(|d| !(d.due && d.held_by.is_none()))
            .map(|d| d.expiry.clone())
            .collect(),
    }
}

impl App {
    /// The policy's retention, compiled once per process.
    pub fn retention(&self) -> &Retention {
        &self.retention
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
