//! Rectification, restriction (and its lifting) and portability in the
//! organisation's own systems, one task per dataset like access and
//! erasure. What a dataset cannot do by itself (no restriction mark
//! declared, a key it cannot rename) is listed in the request's answer for
//! staff to act on by hand, never skipped in silence.

use super::stored::{self, ByHand, Changed, Outcome, Request, SystemOutcome};
use super::systems::{audit, connector_error};
use super::work::Effects;
use crate::audit_action::AuditAction;
use crate::datasets::{Corrections, Dataset, ExportItem, Identities};
use crate::{App, AppError};
use custodian_policy::datasets_rights::{is_portable, portable_categories};
use custodian_policy::requests::RequestKind;
use tokio::sync::mpsc;

/// The corrected values of a rectification, as the vault stores them
/// (checked and normalised the same way).
fn corrections(app: &App, r: &Request) -> Result<Corrections, AppError> {
    let sealed = stored::open(app, &r.record)?;
    Ok(crate::collect::check_any(app, &sealed.fields)?
        .into_iter()
        .map(|c| (c.field, c.value))
        .collect())
}

/// Carries out a rectification, a restriction or its lifting in dataset
/// `id`. `who` holds the identities known before the request.
pub(super) async fn carry_out(
    app: &App,
    r: &Request,
    id: &str,
    system: &str,
    connector: &dyn Dataset,
    mut who: Identities,
    at: i64,
) -> Result<Effects, AppError> {
    let (applied, action, note) = match r.kind {
        RequestKind::Rectification => {
            let corrections = corrections(app, r)?;
            // The new values find the person too: a rerun after the change
            // (or after the vault's own task) meets rows already corrected.
            for (field, value) in &corrections {
                who.entry(field.clone()).or_default().insert(value.clone());
            }
            let applied = connector
                .rectify(&who, &corrections)
                .await
                .map_err(|e| connector_error(id, e))?;
            (
                applied,
                AuditAction::DatasetRectify,
                format!("fields={}", corrections.len()),
            )
        }
        RequestKind::Restriction | RequestKind::LiftRestriction => {
            let restricted = r.kind == RequestKind::Restriction;
            let applied = connector
                .restrict(&who, restricted)
                .await
                .map_err(|e| connector_error(id, e))?;
            let action = if restricted {
                AuditAction::DatasetRestrict
            } else {
                AuditAction::DatasetRestrictionLifted
            };
            (applied, action, String::new())
        }
        _ => return Ok(Effects::default()),
    };
    let rows: u64 = applied.changed.iter().map(|(_, n)| n).sum();
    let by_hand: Vec<ByHand> = applied
        .by_hand
        .into_iter()
        .map(|b| ByHand {
            dataset: id.to_string(),
            what: b.what,
            why: b.why,
        })
        .collect();
    // Counts and names only: the audit holds no value of the person.
    let reason = format!("rows={rows} by_hand={} {note}", by_hand.len());
    Ok(Effects {
        audit: vec![audit(id, action, r, reason.trim_end().to_string(), at)],
        outcome: Outcome {
            found: rows > 0,
            systems: vec![SystemOutcome {
                dataset: id.to_string(),
                system: system.to_string(),
                rows,
                parts: 0,
                changed: applied
                    .changed
                    .into_iter()
                    .map(|(table, rows)| Changed { table, rows })
                    .collect(),
            }],
            by_hand,
            ..Outcome::default()
        },
        ..Effects::default()
    })
}

/// What a portability filter does with one table's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    /// The columns carried, by index.
    keep: Vec<usize>,
    /// A column naming each row's own category (Redis rows), by index.
    row_category: Option<usize>,
}

/// Which of a table's columns Art. 20 carries: those of a covered
/// category, and the uncategorised ones that frame a row (a key, a field
/// name) when the rows name their own category. None: nothing is carried.
fn plan(
    columns: &[(String, String)],
    portable: &std::collections::BTreeSet<String>,
) -> Option<Plan> {
    let row_category = columns
        .iter()
        .position(|(name, category)| name == "category" && category.is_empty());
    let keep: Vec<usize> = columns
        .iter()
        .enumerate()
        .filter(|(_, (_, category))| {
            if category.is_empty() {
                row_category.is_some()
            } else {
                is_portable(portable, category)
            }
        })
        .map(|(i, _)| i)
        .collect();
    (!keep.is_empty()).then_some(Plan { keep, row_category })
}

/// Forwards the export's portable part from `rx` to `out`, as it comes;
/// returns the rows forwarded. A table with nothing portable is left out,
/// and so is its header.
pub(super) async fn portable(
    app: &App,
    mut rx: mpsc::Receiver<ExportItem>,
    out: mpsc::Sender<ExportItem>,
) -> u64 {
    let portable = portable_categories(&app.policy.document);
    let mut current: Option<(Plan, Option<ExportItem>)> = None;
    let mut sent = 0u64;
    let mut open = true;
    while let Some(item) = rx.recv().await {
        if !open {
            // The writer stopped (it reports why); drain so the connector ends.
            continue;
        }
        match item {
            ExportItem::Table { table, columns } => {
                current = plan(&columns, &portable).map(|p| {
                    let header = ExportItem::Table {
                        table,
                        columns: p
                            .keep
                            .iter()
                            .filter_map(|i| columns.get(*i).cloned())
                            .collect(),
                    };
                    (p, Some(header))
                });
            }
            ExportItem::Row(values) => {
                let Some((p, header)) = current.as_mut() else {
                    continue;
                };
                if let Some(i) = p.row_category {
                    let category = values.get(i).cloned().flatten().unwrap_or_default();
                    if !is_portable(&portable, &category) {
                        continue;
                    }
                }
                let row: Vec<Option<String>> = p
                    .keep
                    .iter()
                    .map(|i| values.get(*i).cloned().flatten())
                    .collect();
                if let Some(h) = header.take() {
                    open = out.send(h).await.is_ok();
                }
                open = open && out.send(ExportItem::Row(row)).await.is_ok();
                sent += u64::from(open);
            }
        }
    }
    sent
}

#[cfg(test)]
mod tests {
    use super::plan;
    use std::collections::BTreeSet;

    fn cols(c: &[(&str, &str)]) -> Vec<(String, String)> {
        c.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn only_covered_categories_are_carried() {
        let portable: BTreeSet<String> = ["email".to_string(), "orders".to_string()].into();
        let p = plan(
            &cols(&[
                ("id", "account"),
                ("email", "email"),
                ("total", "orders.order_total"),
            ]),
            &portable,
        )
        .unwrap();
        assert_eq!(p.keep, vec![1, 2]);
        assert_eq!(p.row_category, None);
        assert!(plan(&cols(&[("score", "profiling")]), &portable).is_none());
    }

    #[test]
    fn rows_that_name_their_category_keep_their_frame() {
        let portable: BTreeSet<String> = ["usage".to_string()].into();
        let p = plan(
            &cols(&[("key", ""), ("field", ""), ("value", ""), ("category", "")]),
            &portable,
        )
        .unwrap();
        assert_eq!(p.keep, vec![0, 1, 2, 3]);
        assert_eq!(p.row_category, Some(3));
    }
}
