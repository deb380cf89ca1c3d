use super::*;
use proptest::prelude::*;

fn event(
    action: ConsentAction,
    purpose: Option<&str>,
    channel: Option<&str>,
    at: Micros,
) -> ConsentEvent {
    ConsentEvent {
        id: Uuid::from_u128(at as u128),
        at,
        subject: Some(Uuid::from_u128(1)),
        visitor: None,
        purpose: purpose.map(str::to_string),
        channel: channel.map(str::to_string),
        action,
        policy_version: "2.0".into(),
        method: "web-form".into(),
        agent: None,
        wording_hash: Some([7; 32]),
        ip_prefix: None,
        recorded_by: "key:test".into(),
        expires_at: None,
    }
}

fn with_method(mut e: ConsentEvent, method: &str) -> ConsentEvent {
    e.method = method.into();
    e
}

fn status<'a>(p: &'a Preferences, purpose: &str, channel: &str) -> Option<&'a str> {
    p.consents
        .iter()
        .find(|c| c.purpose == purpose && c.channel.as_deref() == Some(channel))
        .map(|c| c.status.as_str())
}

const NEWS: &str = "requested-communications";

#[test]
fn the_latest_event_per_purpose_and_channel_wins() {
    let mut p = Preferences::default();
    p.apply(&event(ConsentAction::Grant, Some("news"), Some("email"), 1));
    p.apply(&event(ConsentAction::Grant, Some("news"), Some("sms"), 2));
    p.apply(&event(
        ConsentAction::Withdraw,
        Some("news"),
        Some("email"),
        3,
    ));
    assert_eq!(status(&p, "news", "email"), Some("withdrawn"));
    assert_eq!(status(&p, "news", "sms"), Some("given"));
    assert_eq!(p.consents.len(), 2);
}

/// Issue 10: grant SMS, object to the purpose on every channel, grant email
/// only: SMS stays ended and objected, email is given.
#[test]
fn an_objection_ends_every_consent_in_its_scope_and_a_grant_lifts_one_channel() {
    let mut p = Preferences::default();
    p.apply(&event(ConsentAction::Grant, Some(NEWS), Some("sms"), 1));
    p.apply(&event(ConsentAction::Object, Some(NEWS), None, 2));
    assert_eq!(status(&p, NEWS, "sms"), Some("withdrawn"));
    p.apply(&event(ConsentAction::Grant, Some(NEWS), Some("email"), 3));
    assert_eq!(status(&p, NEWS, "sms"), Some("withdrawn"));
    assert_eq!(status(&p, NEWS, "email"), Some("given"));
    assert!(p.objected(NEWS, Some("sms"), true));
    assert!(p.objected(NEWS, Some("phone"), true));
    assert!(!p.objected(NEWS, Some("email"), true));
}

#[test]
fn an_objection_to_all_marketing_ends_marketing_consents_only() {
    let mut p = Preferences::default();
    p.apply(&event(ConsentAction::Grant, Some(NEWS), Some("email"), 1));
    p.apply(&event(
        ConsentAction::Grant,
        Some("cookie-analytics"),
        None,
        2,
    ));
    p.apply(&event(ConsentAction::Object, None, None, 3));
    assert_eq!(status(&p, NEWS, "email"), Some("withdrawn"));
    assert_eq!(p.consents[1].status.as_str(), "given");
    // The person's own later grant lifts it for that purpose and channel only.
    p.apply(&event(ConsentAction::Grant, Some(NEWS), Some("email"), 4));
    assert_eq!(status(&p, NEWS, "email"), Some("given"));
    assert!(!p.objected(NEWS, Some("email"), true));
    assert!(p.objected(NEWS, Some("sms"), true));
    assert!(p.objected("postal-marketing", Some("post"), true));
    assert!(p.objected("other-marketing", Some("email"), true));
}

#[test]
fn a_grant_prompted_by_our_marketing_or_not_the_persons_own_lifts_nothing() {
    let mut p = Preferences::default();
    p.apply(&event(ConsentAction::Object, None, None, 1));
    let repermission = with_method(
        event(ConsentAction::Grant, Some(NEWS), Some("email"), 2),
        REPERMISSION_METHOD,
    );
    assert_eq!(
        p.grant_blocked(&repermission),
        Some(GrantBlocked::Repermission)
    );
    p.apply(&repermission);
    let imported = with_method(
        event(ConsentAction::Grant, Some(NEWS), Some("email"), 3),
        "import",
    );
    assert_eq!(p.grant_blocked(&imported), Some(GrantBlocked::Objected));
    p.apply(&imported);
    let mut unevidenced = event(ConsentAction::Grant, Some(NEWS), Some("email"), 4);
    unevidenced.wording_hash = None;
    assert_eq!(p.grant_blocked(&unevidenced), Some(GrantBlocked::Objected));
    p.apply(&unevidenced);
    assert!(p.consents.is_empty());
    assert!(p.objected(NEWS, Some("email"), true));
    // Not dated after the objection.
    let earlier = event(ConsentAction::Grant, Some(NEWS), Some("email"), 1);
    assert_eq!(p.grant_blocked(&earlier), Some(GrantBlocked::Objected));
    // Without an objection, re-permission is only a method.
    assert_eq!(Preferences::default().grant_blocked(&repermission), None);
}

#[test]
fn an_objection_to_one_purpose_is_lifted_and_a_general_one_narrowed() {
    let mut p = Preferences::default();
    p.apply(&event(
        ConsentAction::Object,
        Some("postal-marketing"),
        None,
        1,
    ));
    assert!(p.objected("postal-marketing", Some("post"), true));
    p.apply(&event(
        ConsentAction::Lift,
        Some("postal-marketing"),
        None,
        2,
    ));
    assert!(!p.objected("postal-marketing", Some("post"), true));

    p.apply(&event(ConsentAction::Object, None, None, 3));
    p.apply(&event(ConsentAction::Lift, None, Some("post"), 4));
    assert!(!p.objected("postal-marketing", Some("post"), true));
    assert!(p.objected(NEWS, Some("email"), true));
    // Objecting again restores the whole scope.
    p.apply(&event(ConsentAction::Object, None, None, 5));
    assert!(p.objected("postal-marketing", Some("post"), true));
    p.apply(&event(ConsentAction::Withdraw, None, None, 6));
    assert!(p.objections.is_empty());
}

#[test]
fn gpc_is_no_objection_to_first_party_marketing() {
    let mut p = Preferences::default();
    p.apply(&event(ConsentAction::Grant, Some(NEWS), Some("email"), 1));
    p.apply(&with_method(
        event(ConsentAction::Object, None, None, 2),
        GPC_METHOD,
    ));
    assert_eq!(status(&p, NEWS, "email"), Some("given"));
    assert!(!p.objected(NEWS, Some("email"), true));
    // A grant after the signal is recorded, and lifts it for its scope.
    let grant = event(ConsentAction::Grant, Some(NEWS), Some("sms"), 3);
    assert_eq!(p.grant_blocked(&grant), None);
    p.apply(&grant);
    assert_eq!(status(&p, NEWS, "sms"), Some("given"));
    assert_eq!(p.objections.len(), 1);
}

/// An authorized agent's opt-out of sale or sharing has a GPC signal's
/// scope: first-party consents stand, and the decision applies it to the
/// purposes the policy puts in that scope; a second one replaces the first.
#[test]
fn an_agents_sale_opt_out_is_read_as_a_gpc_signal() {
    let mut p = Preferences::default();
    p.apply(&event(ConsentAction::Grant, Some(NEWS), Some("email"), 1));
    for at in [2, 3] {
        p.apply(&with_method(
            event(ConsentAction::Object, None, None, at),
            SALE_OPT_OUT_METHOD,
        ));
    }
    assert_eq!(status(&p, NEWS, "email"), Some("given"));
    assert!(!p.objected(NEWS, Some("email"), true));
    assert_eq!(p.objections.len(), 1);
    assert!(p.objections.iter().all(StoredObjection::is_gpc));
    assert!(has_gpc_scope(GPC_METHOD) && !has_gpc_scope("web-form"));
}

const PURPOSES: [&str; 3] = ["news", "offers", "cookies"];
const CHANNELS: [&str; 3] = ["email", "sms", "post"];

fn arb_event() -> impl Strategy<Value = ConsentEvent> {
    (
        0..ConsentAction::ALL.len(),
        proptest::option::of(proptest::sample::select(PURPOSES.to_vec())),
        proptest::option::of(proptest::sample::select(CHANNELS.to_vec())),
        proptest::sample::select(vec!["web-form", "app", "import", "gpc", "re-permission"]),
        any::<bool>(),
    )
        .prop_map(|(action, purpose, channel, method, evidence)| {
            let action = ConsentAction::ALL[action];
            let mut e = with_method(event(action, purpose, channel, 0), method);
            if !evidence {
                e.wording_hash = None;
            }
            e
        })
}

fn ledger(events: Vec<ConsentEvent>) -> Vec<ConsentEvent> {
    events
        .into_iter()
        .enumerate()
        .map(|(i, mut e)| {
            e.at = i as i64 + 1;
            e.id = Uuid::from_u128(i as u128 + 1);
            e
        })
        .collect()
}

fn every_scope() -> Vec<(&'static str, Option<&'static str>)> {
    let mut out = Vec::new();
    for p in PURPOSES {
        out.push((p, None));
        for c in CHANNELS {
            out.push((p, Some(c)));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    /// The stored preferences, updated event by event and stored (JSON)
    /// between events, equal a replay of the whole ledger; objections,
    /// lifting and narrowing included.
    #[test]
    fn derived_state_equals_a_replay_of_the_events(events in proptest::collection::vec(arb_event(), 0..40)) {
        let ledger = ledger(events);
        let mut stored = serde_json::to_vec(&Preferences::default()).unwrap();
        for e in &ledger {
            let mut current: Preferences = serde_json::from_slice(&stored).unwrap();
            current.apply(e);
            stored = serde_json::to_vec(&current).unwrap();
        }
        let mut replayed = Preferences::default();
        ledger.iter().for_each(|e| replayed.apply(e));
        let stored: Preferences = serde_json::from_slice(&stored).unwrap();
        prop_assert_eq!(&stored, &replayed);
        // At most one consent per purpose and channel.
        for (i, c) in replayed.consents.iter().enumerate() {
            prop_assert!(!replayed.consents[i + 1..].iter().any(|d| d.purpose == c.purpose && d.channel == c.channel));
        }
        // No consent is given where an objection in force reaches it.
        for c in replayed.consents.iter().filter(|c| matches!(c.status, StoredConsentStatus::Given | StoredConsentStatus::SoftOptIn)) {
            prop_assert!(!replayed.objected(&c.purpose, c.channel.as_deref(), c.channel.is_some()), "{:?} under {:?}", c, replayed.objections);
        }
    }

    /// A grant changes the objections in force for its own purpose and
    /// channel only; a lift only ever narrows; an objection only widens.
    #[test]
    fn each_event_changes_objections_only_within_its_scope(
        events in proptest::collection::vec(arb_event(), 0..30),
        last in arb_event(),
    ) {
        let mut all = events;
        all.push(last);
        let ledger = ledger(all);
        let (last, before_events) = ledger.split_last().unwrap();
        let mut before = Preferences::default();
        before_events.iter().for_each(|e| before.apply(e));
        let mut after = before.clone();
        after.apply(last);
        for (purpose, channel) in every_scope() {
            for marketing in [true, false] {
                let was = before.objected(purpose, channel, marketing);
                let is = after.objected(purpose, channel, marketing);
                match last.action {
                    ConsentAction::Grant => {
                        let own = last.purpose.as_deref() == Some(purpose)
                            && (channel.is_none()
                                || last.channel.is_none()
                                || last.channel.as_deref() == channel);
                        prop_assert!(own || was == is, "{purpose} {channel:?}");
                        prop_assert!(was || !is);
                    }
                    ConsentAction::Lift | ConsentAction::Withdraw => prop_assert!(was || !is),
                    ConsentAction::Object => prop_assert!(!was || is),
                    ConsentAction::Refuse | ConsentAction::SoftOptIn => prop_assert_eq!(was, is),
                }
            }
        }
    }
}

#[test]
fn a_soft_opt_in_record_ends_with_a_refusal_or_an_objection() {
    let mut p = Preferences::default();
    p.apply(&event(
        ConsentAction::SoftOptIn,
        Some("offers"),
        Some("email"),
        1,
    ));
    assert_eq!(status(&p, "offers", "email"), Some("soft-opt-in"));
    p.apply(&event(ConsentAction::Object, None, None, 2));
    assert_eq!(status(&p, "offers", "email"), Some("withdrawn"));
    // While objected, no new soft opt-in is recorded.
    p.apply(&event(
        ConsentAction::SoftOptIn,
        Some("offers"),
        Some("email"),
        3,
    ));
    assert_eq!(status(&p, "offers", "email"), Some("withdrawn"));
    let mut q = Preferences::default();
    q.apply(&event(
        ConsentAction::SoftOptIn,
        Some("offers"),
        Some("email"),
        1,
    ));
    q.apply(&event(
        ConsentAction::Refuse,
        Some("offers"),
        Some("email"),
        2,
    ));
    assert_eq!(status(&q, "offers", "email"), Some("refused"));
}

#[test]
fn compelling_grounds_override_only_objections_to_interests_or_a_public_task() {
    use crate::terms::LegalBasis;
    assert_eq!(
        grounds_may_override(LegalBasis::LegitimateInterest, false),
        Ok(())
    );
    assert_eq!(grounds_may_override(LegalBasis::PublicTask, false), Ok(()));
    // Art. 21(3): no grounds outweigh an objection to direct marketing.
    assert_eq!(
        grounds_may_override(LegalBasis::LegitimateInterest, true),
        Err(GroundsRefused::DirectMarketing)
    );
    for basis in [
        LegalBasis::Consent,
        LegalBasis::Contract,
        LegalBasis::LegalObligation,
    ] {
        assert_eq!(
            grounds_may_override(basis, false),
            Err(GroundsRefused::NotObjectable)
        );
    }
}

#[test]
fn compelling_grounds_end_the_objection_to_that_purpose_only() {
    let mut p = Preferences::default();
    p.apply(&event(ConsentAction::Object, Some("fraud"), None, 1));
    p.apply(&event(ConsentAction::Object, Some("analytics"), None, 2));
    let mut grounds = event(ConsentAction::Lift, Some("fraud"), None, 3);
    grounds.method = COMPELLING_GROUNDS_METHOD.into();
    p.apply(&grounds);
    assert!(!p.objected("fraud", None, false));
    assert!(p.objected("analytics", None, false));
}
