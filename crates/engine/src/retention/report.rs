//! The retention report: what will expire when and why, what is held and
//! by which hold, and the rules due for their periodic review; and the
//! recording of a review.

use super::super::error::written;
use super::holds::{HoldView, active_holds};
use super::{Keeper, assess};
use crate::audit_action::AuditAction;
use crate::collect::micros;
use crate::read::rfc3339;
use crate::{App, AppError, Operation, Principal};
use custodian_policy::day::Day;
use custodian_policy::period::{Period, Unit};
use custodian_vault::audit::AuditDraft;
use custodian_vault::store::retention::{RetentionOp, RuleReview};
use custodian_vault::store::{Batch, WriteOp};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// The most data one report lists; it says when there were more.
pub const REPORT_LIMIT: usize = 10_000;

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// How far ahead to look: `30d`, `12w`, `6m`, `1y` or `30 days`
    /// (default 30 days).
    #[serde(default)]
    pub within: Option<String>,
}

/// `30d`, `12w`, `6m`, `1y`, or a period in words (`30 days`).
pub fn parse_within(text: &str) -> Option<Period> {
    let text = text.trim();
    if let Some(p) = Period::parse(text) {
        return Some(p);
    }
    // The last character is the unit; it may be any character at all, so
    // the text is cut at a character boundary, never at a byte count.
    let last = text.chars().next_back()?;
    let number = text.strip_suffix(last)?;
    let amount: u32 = number.parse().ok()?;
    let unit = match last {
        'd' => Unit::Days,
        'w' => Unit::Weeks,
        'm' => Unit::Months,
        'y' => Unit::Years,
        _ => return None,
    };
    (amount > 0 && amount <= 1200).then_some(Period { amount, unit })
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExpiringDatum {
    pub subject: Uuid,
    pub field: String,
    pub category: Option<String>,
    pub expires_at: String,
    /// The rule that keeps it longest, and so decides when it goes.
    pub rule: String,
    /// The purpose whose rule it is; none for a category's own rule.
    pub purpose: Option<String>,
    /// The rule in the notice's words.
    pub why: String,
    /// What keeps it past its expiry, if anything does.
    pub kept_by: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RuleReviewDue {
    pub rule: String,
    pub last_reviewed: Option<String>,
    /// When the next review is due; none when the rule was never reviewed.
    pub due: Option<String>,
    pub overdue: bool,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetentionReport {
    pub generated_at: String,
    pub until: String,
    /// Data whose expiry falls before `until`, earliest first.
    pub expiring: Vec<ExpiringDatum>,
    /// More data expire before `until` than the report lists.
    pub truncated: bool,
    /// Legal holds in force.
    pub holds: Vec<HoldView>,
    /// Subjects some of whose due data a hold keeps, with the hold.
    pub held: Vec<HeldSubject>,
    /// Rules whose periodic review falls before `until` (or never happened).
    pub reviews_due: Vec<RuleReviewDue>,
    /// The organisation's own datasets with a retention: the rule, the
    /// cut-off now, and the hold that keeps a dataset from the sweep.
    pub datasets: Vec<super::datasets::DatasetRetention>,
    /// Whether this node runs the sweep on a schedule.
    pub sweep_scheduled: bool,
    pub last_sweep: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HeldSubject {
    pub subject: Uuid,
    pub hold: Uuid,
}

pub async fn report(
    app: &App,
    principal: &Principal,
    query: ReportQuery,
    now: OffsetDateTime,
) -> Result<RetentionReport, AppError> {
    app.authorize(principal, Operation::RetentionReport, now)
        .await?;
    report_as(app, query.within.as_deref(), now).await
}

pub async fn report_as(
    app: &App,
    within: Option<&str>,
    now: OffsetDateTime,
) -> Result<RetentionReport, AppError> {
    let period = match within {
        Some(text) => parse_within(text).ok_or_else(|| {
            AppError::Invalid(format!(
                "`within` must be a period such as 30d, 12w, 6m or 1y, not `{text}`"
            ))
        })?,
        None => Period {
            amount: 30,
            unit: Unit::Days,
        },
    };
    let at = micros(now);
    let until = custodian_policy::retention::add_period(at, period)
        .ok_or_else(|| AppError::Invalid("`within` reaches beyond the calendar".into()))?;
    let holds = active_holds(app, at).await?;
    let retention = app.retention();
    let doc = &app.policy.document;
    let mut expiring = Vec::new();
    let mut truncated = false;
    let mut after = None;
    'pages: loop {
        let page = app.store.due_page(until, after, 500).await?;
        let Some(last) = page.last() else { break };
        after = Some((last.due_at.unwrap_or(until), last.subject));
        for row in &page {
            // Rows marked for recomputation are worked out afresh here.
            let Some(record) = app.store.subject(row.subject).await? else {
                continue;
            };
            let assessed = assess(retention, &record, &holds, at);
            for d in assessed.data {
                let Some(expires_at) = d.expiry.expires_at.filter(|e| *e <= until) else {
                    continue;
                };
                if expiring.len() >= REPORT_LIMIT {
                    truncated = true;
                    break 'pages;
                }
                expiring.push(ExpiringDatum {
                    subject: record.id,
                    field: d.expiry.field.clone(),
                    category: d.category.clone(),
                    expires_at: rfc3339(expires_at),
                    why: custodian_policy::render::retention_text(doc, &d.expiry.rule),
                    rule: d.expiry.rule,
                    purpose: d.expiry.purpose,
                    kept_by: d.held_by.as_ref().map(kept_by),
                });
            }
        }
    }
    expiring.sort_by(|a, b| a.expires_at.cmp(&b.expires_at));
    let held = app
        .store
        .held_page(None, REPORT_LIMIT as i64)
        .await?
        .into_iter()
        .filter_map(|(subject, hold)| {
            Some(HeldSubject {
                subject,
                hold: hold?,
            })
        })
        .collect();
    let recorded: Vec<(String, Day)> = app
        .store
        .reviews()
        .await?
        .into_iter()
        .map(|r| (r.rule, Day(crate::read::time_of(r.reviewed_at).date())))
        .collect();
    let horizon = crate::read::time_of(until).date();
    let today = now.date();
    let reviews_due = custodian_policy::retention::reviews(doc, &recorded)
        .into_iter()
        .filter(|r| r.due.is_none_or(|d| d.date() <= horizon))
        .map(|r| RuleReviewDue {
            overdue: r.due.is_none_or(|d| d.date() <= today),
            rule: r.rule,
            last_reviewed: r.last_reviewed.map(|d| d.to_string()),
            due: r.due.map(|d| d.to_string()),
        })
        .collect();
    let sweep = app.store.sweep_state().await?;
    Ok(RetentionReport {
        generated_at: rfc3339(at),
        until: rfc3339(until),
        expiring,
        truncated,
        holds: holds.iter().map(|h| HoldView::of(h, at)).collect(),
        held,
        datasets: super::datasets::report(app, &holds, at),
        reviews_due,
        sweep_scheduled: app.retention_sweep,
        last_sweep: sweep.last_run_at.map(rfc3339),
    })
}

fn kept_by(keeper: &Keeper) -> String {
    super::sweep::kept_because(keeper)
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    /// What the review found (kept in the vault, not in the audit).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 2000))]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReviewRecorded {
    pub rule: String,
    pub reviewed_at: String,
    pub reviewed_by: String,
    /// When the next review is due.
    pub next_due: Option<String>,
}

pub async fn review(
    app: &App,
    principal: &Principal,
    rule: &str,
    req: ReviewRequest,
    now: OffsetDateTime,
) -> Result<ReviewRecorded, AppError> {
    app.authorize(principal, Operation::ReviewRule, now).await?;
    review_as(app, &principal.actor(), rule, req.note, now).await
}

/// Records that `rule` was reviewed, as `actor`; audited.
pub async fn review_as(
    app: &App,
    actor: &str,
    rule: &str,
    note: Option<String>,
    now: OffsetDateTime,
) -> Result<ReviewRecorded, AppError> {
    let doc = &app.policy.document;
    if !doc.retention.iter().any(|r| r.id.as_str() == rule) {
        return Err(AppError::NotFound(format!(
            "the policy has no retention rule `{rule}`"
        )));
    }
    if note.as_ref().is_some_and(|n| n.chars().count() > 2000) {
        return Err(AppError::Invalid(
            "`note` is at most 2000 characters".into(),
        ));
    }
    let at = micros(now);
    let batch = Batch {
        ops: vec![WriteOp::Retention(RetentionOp::Reviewed(RuleReview {
            rule: rule.to_string(),
            reviewed_at: at,
            reviewed_by: actor.to_string(),
            note,
        }))],
        audit: vec![AuditDraft {
            at,
            actor: actor.to_string(),
            action: AuditAction::RetentionReview.into(),
            purpose: None,
            subject: None,
            decision: "allowed".into(),
            reason: Some(format!("rule={rule}")),
        }],
        outbox: Vec::new(),
    };
    written(app.store.write(batch).await)?;
    let next_due =
        custodian_policy::retention::reviews(doc, &[(rule.to_string(), Day(now.date()))])
            .into_iter()
            .find(|r| r.rule == rule)
            .and_then(|r| r.due)
            .map(|d| d.to_string());
    Ok(ReviewRecorded {
        rule: rule.to_string(),
        reviewed_at: rfc3339(at),
        reviewed_by: actor.to_string(),
        next_due,
    })
}

#[cfg(test)]
mod within_tests {
    use super::parse_within;
    use custodian_policy::period::Unit;

    #[test]
    fn within_is_a_number_and_a_unit_or_words() {
        let p = parse_within("30d").map(|p| (p.amount, p.unit));
        assert_eq!(p, Some((30, Unit::Days)));
        let p = parse_within(" 6 months ").map(|p| (p.amount, p.unit));
        assert_eq!(p, Some((6, Unit::Months)));
        for bad in ["", "d", "0d", "1201d", "30x", "-1d", "3.5w"] {
            assert!(parse_within(bad).is_none(), "{bad}");
        }
    }

    /// Found by Schemathesis: a unit of more than one byte cut the text
    /// inside a character, and the handler panicked.
    #[test]
    fn any_text_is_refused_without_a_panic() {
        for odd in ["\u{80}", "3\u{80}", "é", "1é", "日本", "\u{10FFFF}"] {
            assert!(parse_within(odd).is_none(), "{odd}");
        }
    }
}
