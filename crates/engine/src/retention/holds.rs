//! Legal holds: per subject, per category or per declared dataset, with a
//! reason, who set it and an optional end. While a hold lasts, what it
//! covers is neither expired by the sweep nor erased by an erasure request
//! (which then answers what was kept and why); releasing it recomputes the
//! expiries it kept.

use super::super::error::written;
use crate::audit_action::AuditAction;
use crate::collect::micros;
use crate::read::rfc3339;
use crate::{App, AppError, Operation, Principal};
use custodian_vault::audit::AuditDraft;
use custodian_vault::crypto::new_id;
use custodian_vault::store::retention::{LegalHold, RetentionOp};
use custodian_vault::store::{Batch, WriteOp};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// What a hold covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum HoldScope {
    /// Everything held about one subject (target: the subject's id).
    Subject,
    /// One data category, for every subject (target: the category's id).
    Category,
    /// One of the organisation's declared datasets (target: its name),
    /// swept through its connector.
    Dataset,
}

impl HoldScope {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldScope::Subject => "subject",
            HoldScope::Category => "category",
            HoldScope::Dataset => "dataset",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    pub scope: HoldScope,
    /// The subject's id, the category's id or the dataset's name.
    pub target: String,
    /// Why the data must be kept (a claim, an investigation); shown in
    /// the retention report and in the answer to an erasure request.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 500))]
    pub reason: String,
    /// RFC 3339; without it the hold lasts until released.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub ends_at: Option<String>,
}

/// A hold as the API and the report show it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HoldView {
    pub id: Uuid,
    pub scope: String,
    pub target: String,
    pub reason: String,
    pub set_by: String,
    pub set_at: String,
    pub ends_at: Option<String>,
    pub released_at: Option<String>,
    pub released_by: Option<String>,
    /// In force now: not released and not past its end.
    pub active: bool,
}

impl HoldView {
    pub fn of(h: &LegalHold, now: i64) -> HoldView {
        HoldView {
            id: h.id,
            scope: h.scope.clone(),
            target: h.target.clone(),
            reason: h.reason.clone(),
            set_by: h.set_by.clone(),
            set_at: rfc3339(h.set_at),
            ends_at: h.ends_at.map(rfc3339),
            released_at: h.released_at.map(rfc3339),
            released_by: h.released_by.clone(),
            active: h.is_active(now),
        }
    }
}

const MAX_REASON: usize = 500;

fn checked(app: &App, req: &HoldRequest, at: i64) -> Result<Option<i64>, AppError> {
    match req.scope {
        HoldScope::Subject => {
            Uuid::parse_str(&req.target).map_err(|_| {
                AppError::Invalid("a subject hold's `target` is the subject's id".into())
            })?;
        }
        HoldScope::Category => {
            let known = app
                .policy
                .document
                .categories
                .iter()
                .any(|c| c.id.as_str() == req.target);
            if !known {
                return Err(AppError::Invalid(format!(
                    "`{}` is not a category the policy declares",
                    req.target
                )));
            }
        }
        HoldScope::Dataset => {
            if req.target.trim().is_empty() || req.target.len() > 200 {
                return Err(AppError::Invalid(
                    "a dataset hold's `target` is the dataset's name".into(),
                ));
            }
        }
    }
    if req.reason.trim().is_empty() || req.reason.chars().count() > MAX_REASON {
        return Err(AppError::Invalid(format!(
            "`reason` says why the data is kept, in 1 to {MAX_REASON} characters"
        )));
    }
    let ends_at = req
        .ends_at
        .as_deref()
        .map(|t| {
            OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map(micros)
                .map_err(|_| {
                    AppError::Invalid("`ends_at` must be an RFC 3339 date and time".into())
                })
        })
        .transpose()?;
    if ends_at.is_some_and(|e| e <= at) {
        return Err(AppError::Invalid("`ends_at` is already past".into()));
    }
    Ok(ends_at)
}

fn entry(actor: &str, action: AuditAction, hold: &LegalHold, at: i64) -> AuditDraft {
    AuditDraft {
        at,
        actor: actor.to_string(),
        action: action.into(),
        purpose: None,
        subject: (hold.scope == "subject")
            .then(|| Uuid::parse_str(&hold.target).ok())
            .flatten(),
        decision: "allowed".into(),
        // The hold's id, scope and target; its reason stays in its row.
        reason: Some(format!(
            "hold={} scope={} target={}",
            hold.id, hold.scope, hold.target
        )),
    }
}

pub async fn set_hold(
    app: &App,
    principal: &Principal,
    req: HoldRequest,
    now: OffsetDateTime,
) -> Result<HoldView, AppError> {
    app.authorize(principal, Operation::SetHold, now).await?;
    set_hold_as(app, &principal.actor(), req, now).await
}

/// Sets a hold as `actor` (`cli` for the command line).
pub async fn set_hold_as(
    app: &App,
    actor: &str,
    req: HoldRequest,
    now: OffsetDateTime,
) -> Result<HoldView, AppError> {
    let at = micros(now);
    let ends_at = checked(app, &req, at)?;
    let hold = LegalHold {
        id: new_id(),
        scope: req.scope.as_str().into(),
        target: req.target.trim().to_string(),
        reason: req.reason.trim().to_string(),
        set_by: actor.to_string(),
        set_at: at,
        ends_at,
        released_at: None,
        released_by: None,
    };
    let batch = Batch {
        ops: vec![WriteOp::Retention(RetentionOp::PutHold(hold.clone()))],
        audit: vec![entry(actor, AuditAction::RetentionHold, &hold, at)],
        outbox: Vec::new(),
    };
    written(app.store.write(batch).await)?;
    Ok(HoldView::of(&hold, at))
}

pub async fn release_hold(
    app: &App,
    principal: &Principal,
    id: crate::ids::HoldId,
    now: OffsetDateTime,
) -> Result<HoldView, AppError> {
    let id = id.uuid();
    app.authorize(principal, Operation::ReleaseHold, now)
        .await?;
    release_hold_as(app, &principal.actor(), id, now).await
}

/// Releases a hold as `actor`; what it kept is computed again by the next sweep.
pub async fn release_hold_as(
    app: &App,
    actor: &str,
    id: Uuid,
    now: OffsetDateTime,
) -> Result<HoldView, AppError> {
    let at = micros(now);
    let hold = app
        .store
        .holds()
        .await?
        .into_iter()
        .find(|h| h.id == id && h.released_at.is_none())
        .ok_or_else(|| AppError::NotFound("no legal hold in force with this id".into()))?;
    let batch = Batch {
        ops: vec![WriteOp::Retention(RetentionOp::ReleaseHold {
            id,
            at,
            by: actor.to_string(),
        })],
        audit: vec![entry(actor, AuditAction::RetentionRelease, &hold, at)],
        outbox: Vec::new(),
    };
    written(app.store.write(batch).await)?;
    let released = LegalHold {
        released_at: Some(at),
        released_by: Some(actor.to_string()),
        ..hold
    };
    Ok(HoldView::of(&released, at))
}

pub async fn list_holds(
    app: &App,
    principal: &Principal,
    now: OffsetDateTime,
) -> Result<Vec<HoldView>, AppError> {
    app.authorize(principal, Operation::RetentionReport, now)
        .await?;
    list_holds_as(app, now).await
}

pub async fn list_holds_as(app: &App, now: OffsetDateTime) -> Result<Vec<HoldView>, AppError> {
    let at = micros(now);
    Ok(app
        .store
        .holds()
        .await?
        .iter()
        .map(|h| HoldView::of(h, at))
        .collect())
}

/// The holds in force at `at`.
pub async fn active_holds(app: &App, at: i64) -> Result<Vec<LegalHold>, AppError> {
    Ok(app
        .store
        .holds()
        .await?
        .into_iter()
        .filter(|h| h.is_active(at))
        .collect())
}

/// The hold that keeps a subject's datum of `category` from erasure, if any:
/// a hold on the subject first, then one on the category.
pub fn keeping<'h>(
    holds: &'h [LegalHold],
    subject: Uuid,
    category: Option<&str>,
    at: i64,
) -> Option<&'h LegalHold> {
    let subject = subject.to_string();
    holds
        .iter()
        .find(|h| h.scope == "subject" && h.target == subject && h.is_active(at))
        .or_else(|| {
            holds.iter().find(|h| {
                h.scope == "category" && Some(h.target.as_str()) == category && h.is_active(at)
            })
        })
}
