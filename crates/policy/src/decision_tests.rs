//! The decision against the reference policy (`policies/i-image-it.toml`):
//! first one behaviour a test, then properties over generated subjects,
//! requests and moments.

use super::*;
use crate::compiled::{CompiledPolicy, FieldIx, FieldSet, PurposeIx, RecipientIx, TransferRule};
use crate::day::Day;
use crate::terms::{Channel, DisclosureForm, LegalBasis};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::sync::LazyLock;
use time::OffsetDateTime;
use time::macros::datetime;

static POLICY: LazyLock<CompiledPolicy> = LazyLock::new(|| {
    crate::reference()
        .unwrap_or_else(|e| panic!("{e}"))
        .compiled
});

const NOW: OffsetDateTime = datetime!(2027-03-01 12:00 UTC);
const LAST_YEAR: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);
const LAST_WEEK: OffsetDateTime = datetime!(2027-02-22 12:00 UTC);
const NEXT_YEAR: OffsetDateTime = datetime!(2028-03-01 12:00 UTC);

// ------------------------------------------------------------------ helpers

fn purpose(id: &str) -> PurposeIx {
    POLICY
        .purpose(id)
        .unwrap_or_else(|| panic!("no purpose `{id}`"))
}

fn recipient(id: &str) -> RecipientIx {
    POLICY
        .recipient(id)
        .unwrap_or_else(|| panic!("no recipient `{id}`"))
}

fn fields(names: &[&str]) -> FieldSet {
    POLICY
        .field_set(names.iter().copied())
        .unwrap_or_else(|name| panic!("no field `{name}`"))
}

/// The names of a set's fields, in policy order.
fn names(set: FieldSet) -> Vec<&'static str> {
    let policy: &'static CompiledPolicy = &POLICY;
    set.iter().map(|f| policy.field_name(f)).collect()
}

/// Staff asking for `wanted` for `purpose`, no recipient, no channel.
fn ask(purpose_id: &str, wanted: &[&str]) -> Request {
    Request {
        actor: Actor::Staff,
        purpose: purpose(purpose_id),
        wanted: fields(wanted),
        recipient: None,
        channel: None,
    }
}

/// Every field of a purpose.
fn ask_all(purpose_id: &str) -> Request {
    let pix = purpose(purpose_id);
    Request {
        wanted: POLICY.purposes[pix.get()].fields,
        ..ask(purpose_id, &[])
    }
}

fn consent(purpose_id: &str, channel: Option<Channel>, status: ConsentStatus) -> ConsentState {
    ConsentState {
        purpose: purpose(purpose_id),
        channel,
        status,
        expires_at: None,
    }
}

fn relationship(
    kind: &str,
    started_at: OffsetDateTime,
    ended_at: Option<OffsetDateTime>,
) -> RelationshipState {
    RelationshipState {
        kind: POLICY
            .relationship(kind)
            .unwrap_or_else(|| panic!("no relationship `{kind}`")),
        started_at,
        ended_at,
    }
}

fn with_consents(consents: Vec<ConsentState>) -> SubjectState {
    SubjectState {
        consents,
        ..SubjectState::default()
    }
}

fn with_relationships(relationships: Vec<RelationshipState>) -> SubjectState {
    SubjectState {
        relationships,
        ..SubjectState::default()
    }
}

fn with_objections(objections: Vec<Objection>) -> SubjectState {
    SubjectState {
        objections,
        ..SubjectState::default()
    }
}

fn decide_now(state: &SubjectState, request: &Request) -> Decision {
    decide(&POLICY, state, request, NOW)
}

/// The only reason fields were refused for, with the fields.
fn only_refusal(decision: &Decision) -> (Reason, Vec<&'static str>) {
    let reasons: Vec<Reason> = Reason::ALL
        .into_iter()
        .filter(|r| !decision.refused_for(*r).is_empty())
        .collect();
    assert_eq!(reasons.len(), 1, "refusals: {reasons:?}");
    (reasons[0], names(decision.refused_for(reasons[0])))
}

/// Allowed and each reason's refusals are disjoint and together are exactly
/// the known fields asked for; pseudonymised fields are allowed ones.
fn check_partition(
    policy: &CompiledPolicy,
    request: &Request,
    decision: &Decision,
) -> Result<(), TestCaseError> {
    let wanted = request.wanted.intersect(policy.all_fields);
    let mut seen = decision.allowed;
    for reason in Reason::ALL {
        let refused = decision.refused_for(reason);
        prop_assert!(
            refused.intersect(seen).is_empty(),
            "{reason:?} overlaps another answer for {:?}",
            names(refused.intersect(seen))
        );
        seen = seen.union(refused);
    }
    prop_assert_eq!(
        seen,
        wanted,
        "allowed ∪ refused is not wanted ∩ known fields"
    );
    prop_assert_eq!(decision.refused(), wanted.minus(decision.allowed));
    prop_assert!(decision.pseudonymise.is_subset_of(decision.allowed));
    for field in wanted.iter() {
        let reasons = Reason::ALL
            .into_iter()
            .filter(|r| decision.refused_for(*r).contains(field))
            .count();
        let allowed = decision.allowed.contains(field);
        prop_assert_eq!(reasons + usize::from(allowed), 1);
        prop_assert_eq!(decision.reason(field).is_some(), !allowed);
    }
    Ok(())
}

// ------------------------------------------------------- contract purposes

#[test]
fn contract_purpose_is_allowed_with_an_active_relationship_of_a_listed_kind() {
    let state = with_relationships(vec![relationship("order", LAST_WEEK, None)]);
    let decision = decide_now(
        &state,
        &ask("provide-requested-services", &["full_name", "email"]),
    );
    assert_eq!(names(decision.allowed), ["full_name", "email"]);
    assert!(decision.refused().is_empty());
    assert!(decision.pseudonymise.is_empty());
}

#[test]
fn contract_purpose_is_refused_without_a_relationship() {
    let decision = decide_now(
        &SubjectState::default(),
        &ask("provide-requested-services", &["full_name", "email"]),
    );
    assert!(decision.allowed.is_empty());
    assert_eq!(
        only_refusal(&decision),
        (Reason::NoContract, vec!["full_name", "email"])
    );
}

#[test]
fn contract_purpose_is_refused_after_the_relationship_ended() {
    let state = with_relationships(vec![relationship("order", LAST_YEAR, Some(LAST_WEEK))]);
    let request = ask("provide-requested-services", &["full_name"]);
    assert_eq!(
        names(decide(&POLICY, &state, &request, LAST_YEAR).allowed),
        ["full_name"],
        "while the order ran"
    );
    let decision = decide_now(&state, &request);
    assert_eq!(
        only_refusal(&decision),
        (Reason::NoContract, vec!["full_name"])
    );
}

#[test]
fn contract_purpose_is_refused_before_the_relationship_starts() {
    let state = with_relationships(vec![relationship("order", NEXT_YEAR, None)]);
    let decision = decide_now(&state, &ask("provide-requested-services", &["full_name"]));
    assert_eq!(
        only_refusal(&decision),
        (Reason::NoContract, vec!["full_name"])
    );
}

#[test]
fn contract_purpose_is_refused_with_a_relationship_of_an_unlisted_kind() {
    // A newsletter subscription grounds no request for services.
    let state = with_relationships(vec![relationship("newsletter", LAST_YEAR, None)]);
    let decision = decide_now(&state, &ask("provide-requested-services", &["full_name"]));
    assert_eq!(
        only_refusal(&decision),
        (Reason::NoContract, vec!["full_name"])
    );
}

// -------------------------------------------------------- consent purposes

#[test]
fn consent_given_allows_the_purpose() {
    let state = with_consents(vec![consent(
        "interactive-features",
        None,
        ConsentStatus::Given,
    )]);
    let decision = decide_now(
        &state,
        &ask("interactive-features", &["full_name", "comments"]),
    );
    assert_eq!(names(decision.allowed), ["full_name", "comments"]);
    assert!(decision.refused().is_empty());
}

#[test]
fn consent_renewed_allows_the_purpose() {
    let state = with_consents(vec![consent(
        "interactive-features",
        None,
        ConsentStatus::Renewed,
    )]);
    let decision = decide_now(&state, &ask("interactive-features", &["username"]));
    assert_eq!(names(decision.allowed), ["username"]);
}

#[test]
fn consent_withdrawn_is_refused_consent_withdrawn() {
    let state = with_consents(vec![consent(
        "interactive-features",
        None,
        ConsentStatus::Withdrawn,
    )]);
    let decision = decide_now(
        &state,
        &ask("interactive-features", &["full_name", "comments"]),
    );
    assert_eq!(
        only_refusal(&decision),
        (Reason::ConsentWithdrawn, vec!["full_name", "comments"])
    );
}

#[test]
fn no_consent_is_refused_no_consent() {
    let decision = decide_now(
        &SubjectState::default(),
        &ask("interactive-features", &["comments"]),
    );
    assert_eq!(
        only_refusal(&decision),
        (Reason::NoConsent, vec!["comments"])
    );
}

#[test]
fn consent_to_another_purpose_does_not_count() {
    let state = with_consents(vec![consent(
        "cookie-analytics",
        None,
        ConsentStatus::Given,
    )]);
    let decision = decide_now(&state, &ask("interactive-features", &["comments"]));
    assert_eq!(
        only_refusal(&decision),
        (Reason::NoConsent, vec!["comments"])
    );
}

#[test]
fn consent_is_live_until_it_expires_and_refused_from_then() {
    let state = with_consents(vec![ConsentState {
        expires_at: Some(NOW),
        ..consent("interactive-features", None, ConsentStatus::Given)
    }]);
    let request = ask("interactive-features", &["comments"]);
    let before = decide(&POLICY, &state, &request, LAST_WEEK);
    assert_eq!(names(before.allowed), ["comments"]);
    let at_expiry = decide_now(&state, &request);
    assert_eq!(
        only_refusal(&at_expiry),
        (Reason::NoConsent, vec!["comments"])
    );
}

#[test]
fn consent_marked_expired_is_refused() {
    let state = with_consents(vec![consent(
        "interactive-features",
        None,
        ConsentStatus::Expired,
    )]);
    let decision = decide_now(&state, &ask("interactive-features", &["comments"]));
    assert_eq!(
        only_refusal(&decision),
        (Reason::NoConsent, vec!["comments"])
    );
}

// ----------------------------------------------------- marketing channels

#[test]
fn email_consent_alone_allows_name_and_email_but_not_phone() {
    let state = with_consents(vec![consent(
        "requested-communications",
        Some(Channel::Email),
        ConsentStatus::Given,
    )]);
    let decision = decide_now(
        &state,
        &ask("requested-communications", &["full_name", "email", "phone"]),
    );
    assert_eq!(names(decision.allowed), ["full_name", "email"]);
    assert_eq!(only_refusal(&decision), (Reason::NoConsent, vec!["phone"]));
}

#[test]
fn asking_for_sms_with_only_email_consent_allows_nothing() {
    let state = with_consents(vec![consent(
        "requested-communications",
        Some(Channel::Email),
        ConsentStatus::Given,
    )]);
    let request = Request {
        channel: Some(Channel::Sms),
        ..ask("requested-communications", &["full_name", "email", "phone"])
    };
    let decision = decide_now(&state, &request);
    assert!(decision.allowed.is_empty());
    assert_eq!(
        only_refusal(&decision),
        (Reason::NoConsent, vec!["full_name", "email", "phone"])
    );
}

#[test]
fn asking_for_email_leaves_out_the_fields_of_other_channels() {
    let state = with_consents(vec![
        consent(
            "requested-communications",
            Some(Channel::Email),
            ConsentStatus::Given,
        ),
        consent(
            "requested-communications",
            Some(Channel::Sms),
            ConsentStatus::Given,
        ),
    ]);
    let request = Request {
        channel: Some(Channel::Email),
        ..ask("requested-communications", &["full_name", "email", "phone"])
    };
    let decision = decide_now(&state, &request);
    assert_eq!(names(decision.allowed), ["full_name", "email"]);
    assert_eq!(
        only_refusal(&decision),
        (Reason::CategoryNotNeeded, vec!["phone"])
    );
}

#[test]
fn a_purpose_wide_consent_does_not_stand_for_a_channel() {
    // Marketing consent is recorded per channel; a record with no channel
    // grounds no channel.
    let state = with_consents(vec![consent(
        "requested-communications",
        None,
        ConsentStatus::Given,
    )]);
    let decision = decide_now(&state, &ask("requested-communications", &["full_name"]));
    assert_eq!(
        only_refusal(&decision),
        (Reason::NoConsent, vec!["full_name"])
    );
}

#[test]
fn postal_marketing_is_allowed_without_an_objection() {
    let decision = decide_now(&SubjectState::default(), &ask_all("postal-marketing"));
    assert_eq!(names(decision.allowed), ["full_name", "postal_address"]);
    assert!(decision.refused().is_empty());
}

#[test]
fn objection_to_all_direct_marketing_stops_postal_marketing() {
    let state = with_objections(vec![Objection {
        purpose: None,
        channel: None,
        ..Default::default()
    }]);
    let decision = decide_now(&state, &ask_all("postal-marketing"));
    assert!(decision.allowed.is_empty());
    assert_eq!(
        only_refusal(&decision),
        (Reason::Objected, vec!["full_name", "postal_address"])
    );
}

#[test]
fn objection_to_all_direct_marketing_overrides_consent() {
    let state = SubjectState {
        consents: vec![consent(
            "requested-communications",
            Some(Channel::Email),
            ConsentStatus::Given,
        )],
        objections: vec![Objection {
            purpose: None,
            channel: None,
            ..Default::default()
        }],
        ..SubjectState::default()
    };
    let decision = decide_now(
        &state,
        &ask("requested-communications", &["full_name", "email"]),
    );
    assert_eq!(
        only_refusal(&decision),
        (Reason::Objected, vec!["full_name", "email"])
    );
}

#[test]
fn objection_to_marketing_by_one_channel_leaves_the_others() {
    let state = SubjectState {
        consents: vec![
            consent(
                "requested-communications",
                Some(Channel::Email),
                ConsentStatus::Given,
            ),
            consent(
                "requested-communications",
                Some(Channel::Phone),
                ConsentStatus::Given,
            ),
        ],
        objections: vec![Objection {
            purpose: None,
            channel: Some(Channel::Email),
            ..Default::default()
        }],
        ..SubjectState::default()
    };
    let decision = decide_now(&state, &ask_all("requested-communications"));
    assert_eq!(names(decision.allowed), ["full_name", "phone"]);
    assert_eq!(only_refusal(&decision), (Reason::Objected, vec!["email"]));
}

#[test]
fn objection_to_direct_marketing_does_not_reach_other_purposes() {
    let state = with_objections(vec![Objection {
        purpose: None,
        channel: None,
        ..Default::default()
    }]);
    let decision = decide_now(&state, &ask_all("analytics-research"));
    assert_eq!(
        decision.allowed,
        POLICY.purposes[purpose("analytics-research").get()].fields
    );
}

// ------------------------------------------------ legitimate interests

#[test]
fn legitimate_interest_is_allowed_without_an_objection() {
    let decision = decide_now(
        &SubjectState::default(),
        &ask("analytics-research", &["ip_address"]),
    );
    assert_eq!(names(decision.allowed), ["ip_address"]);
}

#[test]
fn objection_to_analytics_research_refuses_it() {
    let state = with_objections(vec![Objection {
        purpose: Some(purpose("analytics-research")),
        channel: None,
        ..Default::default()
    }]);
    let decision = decide_now(
        &state,
        &ask("analytics-research", &["ip_address", "referrer"]),
    );
    assert_eq!(
        only_refusal(&decision),
        (Reason::Objected, vec!["ip_address", "referrer"])
    );
}

#[test]
fn objection_to_one_purpose_leaves_the_others() {
    let state = with_objections(vec![Objection {
        purpose: Some(purpose("analytics-research")),
        channel: None,
        ..Default::default()
    }]);
    let decision = decide_now(&state, &ask("security", &["ip_address"]));
    assert_eq!(names(decision.allowed), ["ip_address"]);
}

// ------------------------------------------------ restriction and erasure

#[test]
fn restriction_refuses_ordinary_purposes() {
    let state = SubjectState {
        restricted: true,
        consents: vec![consent("interactive-features", None, ConsentStatus::Given)],
        relationships: vec![relationship("order", LAST_YEAR, None)],
        ..SubjectState::default()
    };
    for id in [
        "provide-requested-services",
        "interactive-features",
        "analytics-research",
        "postal-marketing",
        "statutory-accounting",
    ] {
        let decision = decide_now(&state, &ask_all(id));
        assert!(decision.allowed.is_empty(), "{id}");
        assert_eq!(only_refusal(&decision).0, Reason::Restricted, "{id}");
    }
}

#[test]
fn restriction_leaves_purposes_readable_only_with_their_stated_exception() {
    for id in ["security", "legal-disclosure"] {
        let request = ask_all(id);
        let ground = POLICY
            .purposes
            .get(request.purpose.get())
            .and_then(|p| p.restriction_ground);
        assert!(ground.is_some(), "{id}");
        // No exception stated: storage only.
        let state = SubjectState {
            restricted: true,
            ..SubjectState::default()
        };
        let decision = decide_now(&state, &request);
        assert!(decision.allowed.is_empty(), "{id}");
        assert_eq!(only_refusal(&decision).0, Reason::Restricted, "{id}");
        // The purpose's own exception stated: readable.
        let state = SubjectState {
            restricted: true,
            restriction_exception: ground,
            ..SubjectState::default()
        };
        let decision = decide_now(&state, &request);
        assert_eq!(decision.allowed, request.wanted, "{id}");
        // Another exception does not open it.
        let other = [
            crate::terms::RestrictionGround::LegalClaims,
            crate::terms::RestrictionGround::OtherPersonsRights,
            crate::terms::RestrictionGround::PublicInterest,
        ]
        .into_iter()
        .find(|g| Some(*g) != ground);
        let state = SubjectState {
            restricted: true,
            restriction_exception: other,
            ..SubjectState::default()
        };
        assert!(decide_now(&state, &request).allowed.is_empty(), "{id}");
    }
}

#[test]
fn only_security_protecting_rights_and_legal_disclosure_are_readable_under_restriction() {
    let readable: Vec<&str> = POLICY
        .purposes
        .iter()
        .filter(|p| p.readable_under_restriction)
        .map(|p| p.id.as_str())
        .collect();
    assert_eq!(readable, ["security", "protect-rights", "legal-disclosure"]);
}

#[test]
fn erased_subject_is_refused_everything() {
    let state = SubjectState {
        erased: true,
        restricted: true,
        consents: vec![consent("interactive-features", None, ConsentStatus::Given)],
        relationships: vec![relationship("order", LAST_YEAR, None)],
        ..SubjectState::default()
    };
    for p in &POLICY.purposes {
        let decision = decide_now(&state, &ask_all(&p.id));
        assert!(decision.allowed.is_empty(), "{}", p.id);
        assert_eq!(only_refusal(&decision).0, Reason::Erased, "{}", p.id);
    }
}

// ------------------------------------------------------ fields and purposes

#[test]
fn field_outside_the_purpose_is_category_not_needed() {
    let state = with_relationships(vec![relationship("order", LAST_YEAR, None)]);
    let decision = decide_now(
        &state,
        &ask(
            "provide-requested-services",
            &["full_name", "cv", "ip_address"],
        ),
    );
    assert_eq!(names(decision.allowed), ["full_name"]);
    assert_eq!(
        only_refusal(&decision),
        (Reason::CategoryNotNeeded, vec!["ip_address", "cv"])
    );
}

#[test]
fn fields_the_policy_does_not_know_are_left_out_of_the_answer() {
    let state = with_relationships(vec![relationship("order", LAST_YEAR, None)]);
    let request = Request {
        wanted: fields(&["full_name"]).with(FieldIx(200)),
        ..ask("provide-requested-services", &[])
    };
    let decision = decide_now(&state, &request);
    assert_eq!(names(decision.allowed), ["full_name"]);
    assert!(decision.refused().is_empty());
}

#[test]
fn unknown_purpose_refuses_everything_as_not_needed() {
    let request = Request {
        purpose: PurposeIx(999),
        ..ask("security", &["ip_address"])
    };
    let decision = decide_now(&SubjectState::default(), &request);
    assert_eq!(
        only_refusal(&decision),
        (Reason::CategoryNotNeeded, vec!["ip_address"])
    );
}

// ---------------------------------------------------------------- recipients

#[test]
fn recipient_not_listed_for_the_purpose_is_refused() {
    let state = with_relationships(vec![relationship("order", LAST_YEAR, None)]);
    let request = Request {
        recipient: Some(recipient("business-acquirer")),
        ..ask("provide-requested-services", &["full_name", "email"])
    };
    let decision = decide_now(&state, &request);
    assert_eq!(
        only_refusal(&decision),
        (Reason::RecipientNotAllowed, vec!["full_name", "email"])
    );
}

#[test]
fn listed_recipient_gets_only_its_own_fields() {
    let state = with_relationships(vec![relationship("order", LAST_YEAR, None)]);
    let request = Request {
        recipient: Some(recipient("mailing-house")),
        ..ask(
            "provide-requested-services",
            &["full_name", "postal_address", "phone"],
        )
    };
    let decision = decide_now(&state, &request);
    assert_eq!(names(decision.allowed), ["full_name", "postal_address"]);
    assert_eq!(
        only_refusal(&decision),
        (Reason::RecipientNotAllowed, vec!["phone"])
    );
    assert!(
        decision.pseudonymise.is_empty(),
        "the mailing house is identified"
    );
}

#[test]
fn web_analytics_gets_analytics_fields_pseudonymised() {
    let request = Request {
        recipient: Some(recipient("web-analytics")),
        ..ask(
            "analytics-research",
            &["full_name", "ip_address", "referrer", "features_used"],
        )
    };
    let decision = decide_now(&SubjectState::default(), &request);
    assert_eq!(
        names(decision.allowed),
        ["ip_address", "referrer", "features_used"]
    );
    assert_eq!(decision.pseudonymise, decision.allowed);
    assert_eq!(
        only_refusal(&decision),
        (Reason::CategoryNotNeeded, vec!["full_name"])
    );
}

#[test]
fn recipient_outside_a_safe_transfer_window_is_refused_unsafe_transfer() {
    let mut policy = POLICY.clone();
    let web = recipient("web-analytics");
    policy.recipients[web.get()].transfer = TransferRule::Between(
        Day::from_ymd(2027, 1, 1).unwrap(),
        Some(Day::from_ymd(2028, 1, 1).unwrap()),
    );
    let request = Request {
        recipient: Some(web),
        ..ask("analytics-research", &["ip_address"])
    };
    let state = SubjectState::default();
    let inside = decide(&policy, &state, &request, NOW);
    assert_eq!(names(inside.allowed), ["ip_address"]);
    for outside in [LAST_YEAR, NEXT_YEAR] {
        let decision = decide(&policy, &state, &request, outside);
        assert_eq!(
            only_refusal(&decision),
            (Reason::UnsafeTransfer, vec!["ip_address"]),
            "at {outside}"
        );
    }
}

#[test]
fn a_prospects_enquiry_rests_on_steps_before_a_contract() {
    let request = ask(
        "provide-requested-services",
        &["full_name", "email", "enquiry"],
    );
    // Before: a prospect with no account, order or contract was refused.
    assert_eq!(
        only_refusal(&decide_now(&SubjectState::default(), &request)).0,
        Reason::NoContract
    );
    let enquiry = SubjectState {
        relationships: vec![relationship("enquiry", LAST_WEEK, None)],
        ..SubjectState::default()
    };
    let decision = decide_now(&enquiry, &request);
    assert_eq!(decision.allowed, request.wanted);
    // An enquiry grounds only the purposes that name it, not the contract itself.
    let contract = ask_all("contract-obligations");
    assert_eq!(
        only_refusal(&decide_now(&enquiry, &contract)).0,
        Reason::NoContract
    );
    // Nor a contract purpose that accepts any relationship.
    let mut any = POLICY.clone();
    let pix = purpose("contract-obligations");
    any.purposes[pix.get()].relationships = 0;
    assert_eq!(
        only_refusal(&decide(&any, &enquiry, &contract, NOW)).0,
        Reason::NoContract
    );
    let customer = SubjectState {
        relationships: vec![relationship("contract", LAST_WEEK, None)],
        ..SubjectState::default()
    };
    assert_eq!(
        decide(&any, &customer, &contract, NOW).allowed,
        contract.wanted
    );
}

#[test]
fn adequacy_holds_on_its_last_day_and_not_the_day_after() {
    let mut policy = POLICY.clone();
    let web = recipient("web-analytics");
    let last = Day::from_ymd(2027, 6, 30).unwrap();
    policy.recipients[web.get()].transfer =
        TransferRule::Between(Day::from_ymd(2020, 1, 1).unwrap(), Some(last));
    let request = Request {
        recipient: Some(web),
        ..ask("analytics-research", &["ip_address"])
    };
    let state = SubjectState::default();
    let on_last_day = time::macros::datetime!(2027-06-30 23:59 UTC);
    let day_after = time::macros::datetime!(2027-07-01 00:00 UTC);
    assert_eq!(
        names(decide(&policy, &state, &request, on_last_day).allowed),
        ["ip_address"]
    );
    assert_eq!(
        only_refusal(&decide(&policy, &state, &request, day_after)),
        (Reason::UnsafeTransfer, vec!["ip_address"])
    );
}

// ---------------------------------------------------------------- processors

#[test]
fn processor_asking_for_another_recipient_is_refused_everything() {
    let request = Request {
        actor: Actor::Processor(recipient("search-engine")),
        recipient: Some(recipient("web-analytics")),
        ..ask("analytics-research", &["ip_address", "referrer"])
    };
    let decision = decide_now(&SubjectState::default(), &request);
    assert!(decision.allowed.is_empty());
    assert_eq!(
        only_refusal(&decision),
        (Reason::RecipientNotAllowed, vec!["ip_address", "referrer"])
    );
}

#[test]
fn processor_without_a_recipient_is_its_own_recipient() {
    let request = Request {
        actor: Actor::Processor(recipient("search-engine")),
        ..ask(
            "analytics-research",
            &["ip_address", "referrer", "landing_page"],
        )
    };
    let decision = decide_now(&SubjectState::default(), &request);
    assert_eq!(names(decision.allowed), ["referrer", "landing_page"]);
    assert_eq!(decision.pseudonymise, decision.allowed);
    assert_eq!(
        only_refusal(&decision),
        (Reason::RecipientNotAllowed, vec!["ip_address"])
    );
}

#[test]
fn processor_naming_itself_is_treated_as_its_own_recipient() {
    let search = recipient("search-engine");
    let request = Request {
        actor: Actor::Processor(search),
        recipient: Some(search),
        ..ask("analytics-research", &["ip_address", "referrer"])
    };
    let decision = decide_now(&SubjectState::default(), &request);
    assert_eq!(names(decision.allowed), ["referrer"]);
}

// ---------------------------------------------------------- the whole answer

#[test]
fn every_refused_field_has_one_reason_and_the_answer_covers_the_request() {
    let everything = POLICY.all_fields.with(FieldIx(250));
    let states = [
        SubjectState::default(),
        SubjectState {
            consents: vec![
                consent("interactive-features", None, ConsentStatus::Given),
                consent(
                    "requested-communications",
                    Some(Channel::Email),
                    ConsentStatus::Given,
                ),
                consent(
                    "requested-communications",
                    Some(Channel::Sms),
                    ConsentStatus::Withdrawn,
                ),
            ],
            relationships: vec![relationship("account", LAST_YEAR, None)],
            objections: vec![Objection {
                purpose: None,
                channel: Some(Channel::Post),
                ..Default::default()
            }],
            ..SubjectState::default()
        },
        SubjectState {
            restricted: true,
            ..SubjectState::default()
        },
        SubjectState {
            erased: true,
            ..SubjectState::default()
        },
    ];
    let recipients = std::iter::once(None)
        .chain((0..=POLICY.recipients.len()).map(|r| Some(RecipientIx(r as u16))));
    let channels = std::iter::once(None).chain(Channel::EACH.map(Some));
    for state in &states {
        for p in 0..=POLICY.purposes.len() {
            for r in recipients.clone() {
                for channel in channels.clone() {
                    let request = Request {
                        actor: Actor::Service,
                        purpose: PurposeIx(p as u16),
                        wanted: everything,
                        recipient: r,
                        channel,
                    };
                    let decision = decide_now(state, &request);
                    check_partition(&POLICY, &request, &decision)
                        .unwrap_or_else(|e| panic!("{request:?}: {e}"));
                }
            }
        }
    }
}

// ---------------------------------------------------------- suspected bugs

/// Art. 21(1) gives a right to object to processing based on Art. 6(1)(e)
/// (public task) as well as (f) (legitimate interests); `legal_basis` only
/// consults objections for marketing and legitimate-interest purposes. The
/// reference policy has no public-task purpose, so one is made here by
/// changing the basis of `analytics-research`.
#[test]
fn objection_to_a_public_task_purpose_refuses_it() {
    let mut policy = POLICY.clone();
    let pix = purpose("analytics-research");
    policy.purposes[pix.get()].basis = LegalBasis::PublicTask;
    let state = with_objections(vec![Objection {
        purpose: Some(pix),
        channel: None,
        ..Default::default()
    }]);
    let decision = decide(
        &policy,
        &state,
        &ask("analytics-research", &["ip_address"]),
        NOW,
    );
    assert_eq!(
        only_refusal(&decision),
        (Reason::Objected, vec!["ip_address"])
    );
}

// ---------------------------------------------------------------- properties

const WINDOW_START: i64 = datetime!(2025-01-01 0:00 UTC).unix_timestamp();
const WINDOW_END: i64 = datetime!(2029-01-01 0:00 UTC).unix_timestamp();

fn n_purposes() -> u16 {
    POLICY.purposes.len() as u16
}

fn n_recipients() -> u16 {
    POLICY.recipients.len() as u16
}

fn arb_time() -> impl Strategy<Value = OffsetDateTime> {
    (WINDOW_START..WINDOW_END).prop_map(|s| OffsetDateTime::from_unix_timestamp(s).unwrap())
}

fn arb_channel() -> impl Strategy<Value = Channel> {
    prop::sample::select(Channel::EACH.to_vec())
}

fn arb_status() -> impl Strategy<Value = ConsentStatus> {
    prop::sample::select(vec![
        ConsentStatus::Given,
        ConsentStatus::Renewed,
        ConsentStatus::Refused,
        ConsentStatus::Withdrawn,
        ConsentStatus::Expired,
        ConsentStatus::Invalidated,
    ])
}

/// Mostly the policy's consent purposes, so that consents matter.
fn arb_consent_purpose() -> impl Strategy<Value = PurposeIx> {
    let consent_purposes: Vec<PurposeIx> = consent_purposes();
    prop_oneof![
        3 => prop::sample::select(consent_purposes),
        1 => (0..n_purposes()).prop_map(PurposeIx),
    ]
}

fn consent_purposes() -> Vec<PurposeIx> {
    (0..n_purposes())
        .map(PurposeIx)
        .filter(|p| POLICY.purposes[p.get()].basis == LegalBasis::Consent)
        .collect()
}

fn arb_consent() -> impl Strategy<Value = ConsentState> {
    (
        arb_consent_purpose(),
        prop::option::of(arb_channel()),
        arb_status(),
        prop::option::of(arb_time()),
    )
        .prop_map(|(purpose, channel, status, expires_at)| ConsentState {
            purpose,
            channel,
            status,
            expires_at,
        })
}

fn arb_relationship() -> impl Strategy<Value = RelationshipState> {
    let kinds = POLICY.relationships.len() as u16;
    (
        // One past the end: a kind the policy does not know.
        0..=kinds,
        arb_time(),
        prop::option::of(0i64..3 * 365 * 86_400),
    )
        .prop_map(|(kind, started_at, lasts)| RelationshipState {
            kind: RelationshipIx(kind),
            started_at,
            ended_at: lasts.map(|s| started_at + time::Duration::seconds(s)),
        })
}

fn arb_objection() -> impl Strategy<Value = Objection> {
    (
        prop::option::of((0..n_purposes()).prop_map(PurposeIx)),
        prop::option::of(arb_channel()),
    )
        .prop_map(|(purpose, channel)| Objection {
            purpose,
            channel,
            ..Default::default()
        })
}

fn arb_state() -> impl Strategy<Value = SubjectState> {
    (
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.15),
        prop::collection::vec(arb_consent(), 0..6),
        prop::collection::vec(arb_relationship(), 0..4),
        prop::collection::vec(arb_objection(), 0..3),
        0u32..3,
    )
        .prop_map(
            |(erased, restricted, consents, relationships, objections, legal_holds)| SubjectState {
                erased,
                restricted,
                consents,
                relationships,
                objections,
                legal_holds,
                restriction_exception: None,
            },
        )
}

/// Any set of the policy's fields, sometimes with a field it does not know.
fn arb_fields() -> impl Strategy<Value = FieldSet> {
    let known = POLICY.all_fields.len() as u16;
    (any::<u32>(), prop::bool::weighted(0.2)).prop_map(move |(mask, stranger)| {
        let mut set: FieldSet = (0..known.min(32))
            .filter(|i| mask & (1 << i) != 0)
            .map(FieldIx)
            .collect();
        if stranger {
            set.insert(FieldIx(known + 7));
        }
        set
    })
}

fn arb_recipient() -> impl Strategy<Value = RecipientIx> {
    // One past the end: a recipient the policy does not know.
    (0..=n_recipients()).prop_map(RecipientIx)
}

fn arb_actor() -> impl Strategy<Value = Actor> {
    prop_oneof![
        2 => Just(Actor::Staff),
        2 => Just(Actor::Service),
        1 => Just(Actor::Subject),
        1 => arb_recipient().prop_map(Actor::Processor),
    ]
}

fn arb_request() -> impl Strategy<Value = Request> {
    (
        arb_actor(),
        // One past the end: a purpose the policy does not know.
        (0..=n_purposes()).prop_map(PurposeIx),
        arb_fields(),
        // Mostly no recipient: most purposes list none, and refuse them all.
        prop_oneof![2 => Just(None), 1 => arb_recipient().prop_map(Some)],
        prop::option::of(arb_channel()),
    )
        .prop_map(|(actor, purpose, wanted, recipient, channel)| Request {
            actor,
            purpose,
            wanted,
            recipient,
            channel,
        })
}

/// The recipient the decision answers for: the processor's own, or the one named.
fn effective_recipient(request: &Request) -> Option<RecipientIx> {
    match request.actor {
        Actor::Processor(own) => Some(own),
        _ => request.recipient,
    }
}

fn purpose_fields(pix: PurposeIx) -> FieldSet {
    POLICY
        .purposes
        .get(pix.get())
        .map_or(FieldSet::EMPTY, |p| p.fields)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        // The regressions file would be written into the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn never_allows_a_field_outside_the_purpose(
        state in arb_state(), request in arb_request(), now in arb_time(),
    ) {
        let decision = decide(&POLICY, &state, &request, now);
        prop_assert!(decision.allowed.is_subset_of(purpose_fields(request.purpose)));
    }

    #[test]
    fn allowed_and_refusals_partition_the_known_fields_asked_for(
        state in arb_state(), request in arb_request(), now in arb_time(),
    ) {
        let decision = decide(&POLICY, &state, &request, now);
        check_partition(&POLICY, &request, &decision)?;
    }

    #[test]
    fn the_answer_for_a_field_does_not_depend_on_the_others_asked_for(
        state in arb_state(), request in arb_request(), now in arb_time(),
    ) {
        let all = Request { wanted: POLICY.all_fields, ..request };
        let whole = decide(&POLICY, &state, &all, now);
        let part = decide(&POLICY, &state, &request, now);
        prop_assert_eq!(part.allowed, whole.allowed.intersect(request.wanted));
        prop_assert_eq!(part.pseudonymise, whole.pseudonymise.intersect(request.wanted));
        for reason in Reason::ALL {
            prop_assert_eq!(
                part.refused_for(reason),
                whole.refused_for(reason).intersect(request.wanted),
                "{:?}", reason
            );
        }
    }

    #[test]
    fn nothing_is_allowed_when_every_consent_to_the_purpose_is_withdrawn(
        pix in prop::sample::select(consent_purposes()),
        withdrawn in prop::collection::vec(
            (prop::option::of(arb_channel()), prop::option::of(arb_time())), 0..5),
        others in arb_state(),
        request in arb_request(),
        now in arb_time(),
    ) {
        let mut state = others;
        state.consents.retain(|c| c.purpose != pix);
        state.consents.extend(withdrawn.into_iter().map(|(channel, expires_at)| ConsentState {
            purpose: pix,
            channel,
            status: ConsentStatus::Withdrawn,
            expires_at,
        }));
        let request = Request { purpose: pix, ..request };
        let decision = decide(&POLICY, &state, &request, now);
        prop_assert!(decision.allowed.is_empty(), "allowed {:?}", names(decision.allowed));
    }

    #[test]
    fn under_restriction_only_a_stated_exception_of_the_purpose_allows_anything(
        state in arb_state(), request in arb_request(), now in arb_time(),
    ) {
        let state = SubjectState { restricted: true, ..state };
        let decision = decide(&POLICY, &state, &request, now);
        // Without a stated exception: storage only.
        prop_assert!(decision.allowed.is_empty());
        let ground = POLICY.purposes.get(request.purpose.get()).and_then(|p| p.restriction_ground);
        let state = SubjectState { restriction_exception: ground, ..state };
        let decision = decide(&POLICY, &state, &request, now);
        prop_assert!(ground.is_some() || decision.allowed.is_empty());
    }

    #[test]
    fn nothing_is_allowed_once_erased(
        state in arb_state(), request in arb_request(), now in arb_time(),
    ) {
        let state = SubjectState { erased: true, ..state };
        let decision = decide(&POLICY, &state, &request, now);
        prop_assert!(decision.allowed.is_empty());
        prop_assert!(decision.pseudonymise.is_empty());
    }

    #[test]
    fn a_pseudonymised_recipient_never_receives_identified_data(
        state in arb_state(), request in arb_request(), now in arb_time(),
        pseudonymous in prop::sample::select(
            POLICY
                .recipients
                .iter()
                .enumerate()
                .filter(|(_, r)| r.form != DisclosureForm::Identified)
                .map(|(i, _)| RecipientIx(i as u16))
                .collect::<Vec<_>>(),
        ),
        as_processor in any::<bool>(),
    ) {
        let request = if as_processor {
            Request { actor: Actor::Processor(pseudonymous), recipient: None, ..request }
        } else {
            let actor = match request.actor {
                Actor::Processor(_) => Actor::Service,
                other => other,
            };
            Request { actor, recipient: Some(pseudonymous), ..request }
        };
        let decision = decide(&POLICY, &state, &request, now);
        prop_assert_eq!(decision.pseudonymise, decision.allowed);
        prop_assert!(decision.allowed.is_subset_of(POLICY.recipients[pseudonymous.get()].fields));
    }

    #[test]
    fn pseudonymisation_follows_the_recipients_form(
        state in arb_state(), request in arb_request(), now in arb_time(),
    ) {
        let decision = decide(&POLICY, &state, &request, now);
        let form = effective_recipient(&request)
            .and_then(|r| POLICY.recipients.get(r.get()))
            .map_or(DisclosureForm::Identified, |r| r.form);
        if form == DisclosureForm::Identified {
            prop_assert!(decision.pseudonymise.is_empty());
        } else {
            prop_assert_eq!(decision.pseudonymise, decision.allowed);
        }
    }

    #[test]
    fn a_processor_never_receives_more_than_its_own_recipients_fields(
        state in arb_state(), request in arb_request(), now in arb_time(),
        own in arb_recipient(),
    ) {
        let request = Request { actor: Actor::Processor(own), ..request };
        let decision = decide(&POLICY, &state, &request, now);
        let own_fields = POLICY.recipients.get(own.get()).map_or(FieldSet::EMPTY, |r| r.fields);
        prop_assert!(decision.allowed.is_subset_of(own_fields));
        if request.recipient.is_some_and(|asked| asked != own) {
            prop_assert!(decision.allowed.is_empty());
        }
    }

    #[test]
    fn a_recipient_never_receives_more_than_its_fields_nor_for_a_purpose_not_listing_it(
        state in arb_state(), request in arb_request(), now in arb_time(),
    ) {
        let decision = decide(&POLICY, &state, &request, now);
        if let Some(r) = effective_recipient(&request) {
            let listed = POLICY.purposes.get(request.purpose.get()).is_some_and(|p| {
                1u64.checked_shl(u32::from(r.0)).is_some_and(|bit| p.recipients & bit != 0)
            });
            let fields = POLICY.recipients.get(r.get()).map_or(FieldSet::EMPTY, |t| t.fields);
            prop_assert!(decision.allowed.is_subset_of(fields));
            prop_assert!(listed || decision.allowed.is_empty());
        }
    }

    #[test]
    fn objections_restriction_and_erasure_never_widen_what_is_allowed(
        state in arb_state(), request in arb_request(), now in arb_time(),
        objection in arb_objection(), restrict in any::<bool>(), erase in any::<bool>(),
    ) {
        let before = decide(&POLICY, &state, &request, now);
        let mut tighter = state.clone();
        tighter.objections.push(objection);
        tighter.restricted |= restrict;
        tighter.erased |= erase;
        let after = decide(&POLICY, &tighter, &request, now);
        prop_assert!(after.allowed.is_subset_of(before.allowed));
    }

    #[test]
    fn a_live_consent_or_an_active_relationship_never_narrows_what_is_allowed(
        state in arb_state(), request in arb_request(), now in arb_time(),
        channel in prop::option::of(arb_channel()),
        kind in 0..POLICY.relationships.len() as u16,
    ) {
        // A relationship of a type the purpose does not serve tells who the
        // subject is, which may narrow (`subject_not_covered`): only the
        // types the purpose serves are "wider" here.
        let served = POLICY.purposes.get(request.purpose.get()).map_or(0, |p| p.subjects);
        let types = POLICY.relationship_subjects[usize::from(kind)];
        prop_assume!(served == 0 || types & served != 0);
        let before = decide(&POLICY, &state, &request, now);
        let mut wider = state.clone();
        wider.consents.push(ConsentState {
            purpose: request.purpose,
            channel,
            status: ConsentStatus::Given,
            expires_at: None,
        });
        wider.relationships.push(RelationshipState {
            kind: RelationshipIx(kind),
            started_at: now,
            ended_at: None,
        });
        let after = decide(&POLICY, &wider, &request, now);
        prop_assert!(before.allowed.is_subset_of(after.allowed));
    }

    #[test]
    fn a_consent_purpose_allows_nothing_without_a_live_consent_to_it(
        state in arb_state(), request in arb_request(), now in arb_time(),
        pix in prop::sample::select(consent_purposes()),
    ) {
        let request = Request { purpose: pix, ..request };
        let decision = decide(&POLICY, &state, &request, now);
        let live = state.consents.iter().any(|c| {
            c.purpose == pix
                && matches!(c.status, ConsentStatus::Given | ConsentStatus::Renewed)
                && c.expires_at.is_none_or(|e| now < e)
        });
        prop_assert!(live || decision.allowed.is_empty());
    }

    #[test]
    fn a_contract_purpose_allows_nothing_without_an_active_listed_relationship(
        state in arb_state(), request in arb_request(), now in arb_time(),
    ) {
        let decision = decide(&POLICY, &state, &request, now);
        if let Some(p) = POLICY.purposes.get(request.purpose.get()) {
            if p.basis == LegalBasis::Contract {
                let grounded = state.relationships.iter().any(|r| {
                    let listed = POLICY.relationships.get(r.kind.get()).is_some_and(|_| {
                        p.relationships & (1 << r.kind.0) != 0
                    });
                    listed && r.started_at <= now && r.ended_at.is_none_or(|e| now < e)
                });
                prop_assert!(grounded || decision.allowed.is_empty());
            }
        }
    }
}

/// Issue 10: an objection the person lifted for one purpose and channel is
/// lifted there only; post and the other channels stay objected.
#[test]
fn a_lifted_objection_stays_in_force_elsewhere() {
    let state = SubjectState {
        consents: vec![consent(
            "requested-communications",
            Some(Channel::Email),
            ConsentStatus::Given,
        )],
        objections: vec![Objection {
            purpose: None,
            channel: None,
            gpc: false,
            lifted: vec![(
                Some(purpose("requested-communications")),
                Some(Channel::Email),
            )],
        }],
        ..SubjectState::default()
    };
    let mut email = ask_all("requested-communications");
    email.channel = Some(Channel::Email);
    let d = decide_now(&state, &email);
    assert_eq!(names(d.allowed), ["full_name", "email"]);
    assert!(d.refused_for(Reason::Objected).is_empty());
    let mut sms = ask_all("requested-communications");
    sms.channel = Some(Channel::Sms);
    assert!(decide_now(&state, &sms).allowed.is_empty());
    let post = decide_now(&state, &ask_all("postal-marketing"));
    assert_eq!(only_refusal(&post).0, Reason::Objected);
}

/// Issue 10: GPC objects to sale or sharing, targeted advertising and
/// third-party marketing cookies, not to first-party marketing.
#[test]
fn gpc_does_not_reach_first_party_marketing() {
    let state = SubjectState {
        consents: vec![consent(
            "requested-communications",
            Some(Channel::Email),
            ConsentStatus::Given,
        )],
        objections: vec![Objection {
            purpose: None,
            channel: None,
            gpc: true,
            lifted: Vec::new(),
        }],
        ..SubjectState::default()
    };
    let mut email = ask_all("requested-communications");
    email.channel = Some(Channel::Email);
    let d = decide_now(&state, &email);
    assert_eq!(names(d.allowed), ["full_name", "email"]);
    assert!(d.refused_for(Reason::Objected).is_empty());
    assert!(
        decide_now(&state, &ask_all("postal-marketing"))
            .refused()
            .is_empty()
    );
}

/// Issue 10, PECR reg. 6: analytics data about someone who refused
/// analytics cookies is refused, also under a legitimate-interest purpose;
/// a purpose independent of cookies still reads its own data.
#[test]
fn data_fed_by_refused_cookies_is_refused_whatever_the_basis() {
    let state = with_consents(vec![consent(
        "cookie-analytics",
        None,
        ConsentStatus::Refused,
    )]);
    let d = decide_now(&state, &ask_all("analytics-research"));
    let fed = fields(&["ip_address", "referrer"]);
    assert!(
        fed.minus(d.refused_for(Reason::CookieConsentRefused))
            .is_empty()
    );
    assert!(d.allowed.intersect(fed).is_empty());
    assert_eq!(
        Reason::CookieConsentRefused.code(),
        "cookie_consent_refused"
    );
    let security = decide_now(&state, &ask_all("security"));
    assert!(
        security
            .refused_for(Reason::CookieConsentRefused)
            .is_empty()
    );
    // Not refused, not asked: nothing is gated.
    let none = decide_now(&SubjectState::default(), &ask_all("analytics-research"));
    assert!(none.refused().is_empty());
}

/// Issue 10: a purpose's required relationships and data-subject types are
/// enforced at decision time, whatever its basis.
#[test]
fn subject_types_are_enforced_once_known() {
    // postal-marketing serves customers and prospects; a job applicant is neither.
    let applicant = with_relationships(vec![relationship(
        "job-application",
        datetime!(2026-01-01 0:00 UTC),
        None,
    )]);
    let d = decide_now(&applicant, &ask_all("postal-marketing"));
    assert_eq!(only_refusal(&d).0, Reason::SubjectNotCovered);
    assert_eq!(Reason::SubjectNotCovered.code(), "subject_not_covered");
    let customer = with_relationships(vec![relationship(
        "account",
        datetime!(2026-01-01 0:00 UTC),
        None,
    )]);
    assert!(
        decide_now(&customer, &ask_all("postal-marketing"))
            .refused()
            .is_empty()
    );
}

/// Issue 10, PECR reg. 22(3): with the soft opt-in on, a similar-products
/// purpose reaches by email only a subject with a sale relationship whose
/// refusal was offered at collection and not taken; never one without.
#[test]
fn the_soft_opt_in_needs_a_sale_and_the_refusal_offered() {
    let text = crate::REFERENCE_POLICY
        .replacen("soft_opt_in = false", "soft_opt_in = true", 1)
        .replacen(
            "[[relationships]]\nid = \"order\"",
            "[[relationships]]\nid = \"order\"\nsale = true",
            1,
        )
        .replacen(
            "[[purposes]]\nid = \"job-applications\"",
            "[[purposes]]\nid = \"customer-offers\"\nname = \"Offers\"\ndescription = \"Offers.\"\nbasis = \"legitimate-interest\"\ninterest = \"Offers.\"\nlia = \"LIA\"\nmarketing = true\nsimilar_products = true\nchannels = [\"email\", \"automated-call\"]\ncategories = [\"name\", \"email\", \"phone\"]\nsubjects = [\"customers\"]\nretention = \"marketing-inactive-2y\"\n\n[[purposes]]\nid = \"job-applications\"",
            1,
        );
    let policy = crate::load("p.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    let p = &policy.compiled;
    let pix = p.purpose("customer-offers").unwrap();
    let at = datetime!(2026-01-01 0:00 UTC);
    let rel = |kind: &str| RelationshipState {
        kind: p.relationship(kind).unwrap(),
        started_at: at,
        ended_at: None,
    };
    let offered = |channel| ConsentState {
        purpose: pix,
        channel: Some(channel),
        status: ConsentStatus::RefusalOffered,
        expires_at: None,
    };
    let ask = |channel| Request {
        actor: Actor::Staff,
        purpose: pix,
        wanted: p.purposes[pix.get()].fields,
        recipient: None,
        channel: Some(channel),
    };
    let now = datetime!(2026-06-01 0:00 UTC);
    let allowed =
        |state: &SubjectState, channel| !decide(p, state, &ask(channel), now).allowed.is_empty();
    let customer = SubjectState {
        relationships: vec![rel("order")],
        consents: vec![offered(Channel::Email), offered(Channel::AutomatedCall)],
        ..SubjectState::default()
    };
    assert!(allowed(&customer, Channel::Email));
    // Never for automated calls (reg. 19).
    assert!(!allowed(&customer, Channel::AutomatedCall));
    // No sale relationship (an enquiry): never.
    let enquirer = SubjectState {
        relationships: vec![rel("enquiry")],
        ..customer.clone()
    };
    assert!(!allowed(&enquirer, Channel::Email));
    // No refusal offered at collection: never.
    let unasked = SubjectState {
        consents: vec![],
        ..customer.clone()
    };
    assert!(!allowed(&unasked, Channel::Email));
    // Refused since: never.
    let refused = SubjectState {
        consents: vec![ConsentState {
            status: ConsentStatus::Refused,
            ..offered(Channel::Email)
        }],
        ..customer
    };
    assert!(!allowed(&refused, Channel::Email));
}
