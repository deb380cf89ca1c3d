//! A visitor becomes a subject: the cookie choices it made move to the
//! subject, but only those the linking key could have recorded itself.

use super::*;

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    pub subject: Uuid,
}

/// A visitor signs up: its recorded choices are recorded again for the
/// subject (same method, purpose, channel and evidence), unless
/// the subject already made a later choice for that purpose and channel.
pub async fn link_visitor(
    app: &App,
    principal: &Principal,
    visitor: &str,
    req: LinkRequest,
    now: OffsetDateTime,
) -> Result<ConsentHistory, AppError> {
    app.authorize(principal, Operation::LinkVisitor, now)
        .await?;
    if !valid_visitor_id(visitor) {
        return Err(AppError::NotFound("no visitor with this id".into()));
    }
    let record = app
        .store
        .subject(req.subject)
        .await?
        .ok_or(AppError::SubjectNotFound)?;
    let found = app
        .store
        .visitor(visitor)
        .await?
        .ok_or_else(|| AppError::NotFound("no visitor with this id".into()))?;
    if found.subject.is_some_and(|s| s != req.subject) {
        return Err(AppError::Conflict("visitor".into()));
    }
    let at = micros(now);
    let mine = &record.state.preferences;
    let theirs = app
        .store
        .consent_events(&Holder::Visitor(visitor.to_string()))
        .await?;
    // Linking records the visitor's choices again, for the subject: a key
    // may carry over only the grants it could have recorded itself.
    // Withdrawals, refusals and objections only narrow, so they always move.
    if let Some(purpose) = theirs
        .iter()
        .filter(|e| e.action == ConsentAction::Grant)
        .filter_map(|e| e.purpose.as_deref())
        .find(|p| !principal.covers_purpose(p))
    {
        let refusal = not_bound(purpose);
        return Err(app
            .refuse(
                principal,
                Operation::LinkVisitor,
                Some(purpose),
                Some(req.subject),
                refusal,
                now,
            )
            .await);
    }
    let mut events = Vec::new();
    for e in theirs {
        let later_own = mine.consents.iter().any(|c| {
            Some(&c.purpose) == e.purpose.as_ref() && c.channel == e.channel && c.at > e.at
        });
        if later_own {
            continue;
        }
        events.push(ConsentEvent {
            id: new_id(),
            subject: Some(req.subject),
            visitor: None,
            // The visitor's own method (`gpc`, `web-form`) stays: linking
            // records who the visitor is, not a new choice.
            recorded_by: principal.actor(),
            ..e
        });
    }
    let batch = Batch {
        ops: vec![WriteOp::LinkVisitor {
            visitor: visitor.to_string(),
            subject: req.subject,
            events,
        }],
        audit: vec![AuditDraft {
            at,
            actor: principal.actor(),
            action: AuditAction::ConsentLinkVisitor.into(),
            purpose: None,
            subject: Some(req.subject),
            decision: "recorded".into(),
            reason: None,
        }],
        outbox: vec![
            crate::events::Event::VisitorLinked {
                subject: req.subject,
                visitor: visitor.to_string(),
            }
            .outbox(at),
        ],
    };
    written(app.store.write(batch).await)?;
    history(app, principal, Holder::Subject(req.subject), now).await
}
