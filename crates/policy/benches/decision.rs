//! The decision on the reference policy, for a realistic subject.
//!
//! `cargo bench -p custodian-policy --bench decision`

// A benchmark whose setup fails has nothing to measure: stopping is right.
#![allow(clippy::expect_used)]

use custodian_policy::compiled::{CompiledPolicy, FieldSet};
use custodian_policy::decision::{
    Actor, ConsentState, ConsentStatus, Objection, RelationshipState, Request, SubjectState, decide,
};
use custodian_policy::terms::Channel;
use divan::{Bencher, black_box};
use std::sync::LazyLock;
use time::OffsetDateTime;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2027-03-01 12:00 UTC);

static POLICY: LazyLock<CompiledPolicy> = LazyLock::new(|| {
    custodian_policy::reference()
        .expect("the reference policy loads")
        .compiled
});

fn policy() -> &'static CompiledPolicy {
    &POLICY
}

/// 3 consents, 2 relationships (one ended), 1 objection.
static STATE: LazyLock<SubjectState> = LazyLock::new(|| {
    let p = policy();
    let purpose = |id| p.purpose(id).expect("purpose");
    let kind = |id| p.relationship(id).expect("relationship");
    SubjectState {
        erased: false,
        restricted: false,
        restriction_exception: None,
        consents: vec![
            ConsentState {
                purpose: purpose("requested-communications"),
                channel: Some(Channel::Email),
                status: ConsentStatus::Given,
                expires_at: Some(datetime!(2028-01-01 0:00 UTC)),
            },
            ConsentState {
                purpose: purpose("requested-communications"),
                channel: Some(Channel::Sms),
                status: ConsentStatus::Withdrawn,
                expires_at: None,
            },
            ConsentState {
                purpose: purpose("interactive-features"),
                channel: None,
                status: ConsentStatus::Given,
                expires_at: None,
            },
        ],
        relationships: vec![
            RelationshipState {
                kind: kind("order"),
                started_at: datetime!(2026-11-02 9:30 UTC),
                ended_at: Some(datetime!(2026-12-16 0:00 UTC)),
            },
            RelationshipState {
                kind: kind("account"),
                started_at: datetime!(2025-06-14 18:05 UTC),
                ended_at: None,
            },
        ],
        objections: vec![Objection {
            purpose: None,
            channel: Some(Channel::Post),
            ..Default::default()
        }],
        legal_holds: 0,
    }
});

fn fields(names: &[&str]) -> FieldSet {
    policy()
        .field_set(names.iter().copied())
        .expect("fields of the reference policy")
}

fn run(bencher: Bencher, request: Request) {
    let policy = policy();
    let state: &SubjectState = &STATE;
    bencher.bench(|| {
        decide(
            black_box(policy),
            black_box(state),
            black_box(&request),
            black_box(NOW),
        )
    });
}

/// A contract purpose grounded by the account relationship.
#[divan::bench]
fn contract_purpose(bencher: Bencher) {
    let request = Request {
        actor: Actor::Staff,
        purpose: policy()
            .purpose("provide-requested-services")
            .expect("purpose"),
        wanted: fields(&["full_name", "email", "postal_address", "phone", "enquiry"]),
        recipient: None,
        channel: None,
    };
    run(bencher, request);
}

/// Marketing by email through the mailing house.
#[divan::bench]
fn marketing_channel(bencher: Bencher) {
    let request = Request {
        actor: Actor::Service,
        purpose: policy()
            .purpose("requested-communications")
            .expect("purpose"),
        wanted: fields(&["full_name", "email", "phone"]),
        recipient: policy().recipient("mailing-house"),
        channel: Some(Channel::Email),
    };
    run(bencher, request);
}

/// Analytics disclosed to a pseudonymised-only recipient.
#[divan::bench]
fn pseudonymised_recipient(bencher: Bencher) {
    let request = Request {
        actor: Actor::Service,
        purpose: policy().purpose("analytics-research").expect("purpose"),
        wanted: fields(&[
            "ip_address",
            "referrer",
            "landing_page",
            "user_agent",
            "features_used",
            "full_name",
        ]),
        recipient: policy().recipient("web-analytics"),
        channel: None,
    };
    run(bencher, request);
}

fn main() {
    // Load the policy before any timing starts.
    LazyLock::force(&STATE);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("decision on the reference policy; {cores} cores; one thread");
    divan::main();
}
