//! What a holder has chosen: the preferences (with the policy's defaults
//! where nothing was recorded) and the whole ledger, as the API shows them.

use super::*;

/// Every consent purpose and marketing channel, with the policy's defaults
/// where nothing was recorded.
pub async fn preferences(
    app: &App,
    prefs: &Preferences,
    now: OffsetDateTime,
) -> Result<Vec<PreferenceView>, AppError> {
    let stale = crate::read::stale_versions(app, &prefs.consents).await?;
    let doc = &app.policy.document;
    let mut out = Vec::new();
    for p in doc
        .purposes
        .iter()
        .filter(|p| *p.basis == LegalBasis::Consent || p.marketing)
    {
        let channels: Vec<Option<String>> = if p.channels.is_empty() {
            vec![None]
        } else {
            p.channels.iter().map(|c| Some(c.to_string())).collect()
        };
        for channel in channels {
            let gpc_scope = app
                .policy
                .compiled
                .purpose(&p.id)
                .and_then(|ix| app.policy.compiled.purposes.get(ix.get()))
                .is_some_and(|t| t.gpc_scope);
            let objected = prefs.objected(&p.id, channel.as_deref(), p.marketing)
                || (gpc_scope
                    && prefs.objections.iter().any(|o| {
                        o.is_gpc()
                            && o.purpose.is_none()
                            && o.covers_channel(&p.id, channel.as_deref())
                    }));
            let recorded = prefs
                .consents
                .iter()
                .find(|c| c.purpose == p.id.as_str() && c.channel == channel);
            let mode = channel
                .as_ref()
                .and_then(|c| {
                    doc.marketing
                        .channels
                        .iter()
                        .find(|d| d.channel.as_str() == c)
                })
                .map(|d| *d.mode);
            let needs_renewal = recorded.is_some_and(|c| {
                stale
                    .get(&c.policy_version)
                    .is_some_and(|s| s.contains(p.id.as_str()))
            });
            let expired = recorded.is_some_and(|c| c.expires_at.is_some_and(|e| e <= micros(now)));
            let (status, effective) = match (objected, recorded, *p.basis) {
                (true, _, _) => ("objected".to_string(), false),
                (false, Some(c), LegalBasis::Consent) => (
                    c.status.as_str().to_string(),
                    c.status == StoredConsentStatus::Given && !needs_renewal && !expired,
                ),
                (false, None, LegalBasis::Consent) => ("not-given".to_string(), false),
                // Email and SMS without consent: only a soft opt-in (whose
                // sale relationship the check also requires).
                (false, recorded, _)
                    if channel
                        .as_deref()
                        .and_then(custodian_policy::terms::Channel::parse)
                        .is_some_and(|c| c.needs_opt_in_under_pecr()) =>
                {
                    match recorded {
                        Some(c) => (
                            c.status.as_str().to_string(),
                            c.status == StoredConsentStatus::SoftOptIn,
                        ),
                        None => ("not-given".to_string(), false),
                    }
                }
                (false, _, _) if mode == Some(ChannelMode::OptOut) || mode.is_none() => {
                    ("on".to_string(), true)
                }
                (false, _, _) => ("not-given".to_string(), false),
            };
            out.push(PreferenceView {
                purpose: p.id.to_string(),
                channel,
                status,
                effective,
                needs_renewal,
                since: recorded.map(|c| rfc3339(c.at)),
                policy_version: recorded.map(|c| c.policy_version.clone()),
            });
        }
    }
    Ok(out)
}

fn event_view(e: &ConsentEvent) -> EventView {
    EventView {
        id: e.id,
        at: rfc3339(e.at),
        purpose: e.purpose.clone(),
        channel: e.channel.clone(),
        action: e.action.as_str().into(),
        method: e.method.clone(),
        policy_version: e.policy_version.clone(),
        agent: e.agent.clone(),
        ip_prefix: e.ip_prefix.clone(),
        wording_sha256: e.wording_hash.map(|h| custodian_vault::audit::hex(&h)),
        recorded_by: e.recorded_by.clone(),
    }
}

pub async fn history(
    app: &App,
    principal: &Principal,
    holder: Holder,
    now: OffsetDateTime,
) -> Result<ConsentHistory, AppError> {
    let operation = match holder {
        Holder::Subject(_) => Operation::SubjectConsents,
        Holder::Visitor(_) => Operation::VisitorConsents,
    };
    app.authorize(principal, operation, now).await?;
    let subject = match &holder {
        Holder::Subject(id) => Some(*id),
        Holder::Visitor(_) => None,
    };
    let found = match &holder {
        Holder::Subject(id) => app.store.subject(*id).await?.map(|r| r.state.preferences),
        Holder::Visitor(v) if valid_visitor_id(v) => {
            app.store.visitor(v).await?.map(|r| r.preferences)
        }
        Holder::Visitor(_) => None,
    };
    // Every read of a consent history is audited, found or not, so that a
    // probe for whether an id exists leaves a trace.
    let entry = AuditDraft {
        at: micros(now),
        actor: principal.actor(),
        action: operation.action().into(),
        purpose: None,
        subject,
        decision: if found.is_some() {
            "allowed"
        } else {
            "not_found"
        }
        .into(),
        reason: None,
    };
    written(app.store.write(Batch::audit_only(entry)).await)?;
    let Some(prefs) = found else {
        return Err(match holder {
            Holder::Subject(_) => AppError::SubjectNotFound,
            Holder::Visitor(_) => AppError::NotFound("no visitor with this id".into()),
        });
    };
    let events = app.store.consent_events(&holder).await?;
    // A service key sees its own purposes' choices, and the general
    // objections (no purpose) that bind them; nothing of other purposes.
    let visible = |purpose: Option<&str>| purpose.is_none_or(|p| principal.covers_purpose(p));
    Ok(ConsentHistory {
        preferences: preferences(app, &prefs, now)
            .await?
            .into_iter()
            .filter(|p| visible(Some(&p.purpose)))
            .collect(),
        events: events
            .iter()
            .filter(|e| visible(e.purpose.as_deref()))
            .map(event_view)
            .collect(),
    })
}
