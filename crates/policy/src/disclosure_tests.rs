use super::*;
use crate::compiled::CompiledPolicy;
use crate::decision::{Actor, Reason, Request, SubjectState, decide};
use proptest::prelude::*;
use std::sync::LazyLock;
use time::macros::datetime;

static POLICY: LazyLock<CompiledPolicy> = LazyLock::new(|| {
    crate::reference()
        .unwrap_or_else(|e| panic!("{e}"))
        .compiled
});

const NOW: OffsetDateTime = datetime!(2027-03-01 12:00 UTC);

fn ix(purpose: &str, recipient: &str) -> (PurposeIx, RecipientIx) {
    (
        POLICY
            .purpose(purpose)
            .unwrap_or_else(|| panic!("{purpose}")),
        POLICY
            .recipient(recipient)
            .unwrap_or_else(|| panic!("{recipient}")),
    )
}

#[test]
fn a_purpose_discloses_only_to_the_recipients_it_names() {
    let (p, r) = ix("postal-marketing", "mailing-house");
    assert_eq!(
        records_gate(&POLICY, p, r, NOW).map(|t| t.id.as_str()),
        Ok("mailing-house")
    );
    let (p, r) = ix("postal-marketing", "web-analytics");
    assert_eq!(
        records_gate(&POLICY, p, r, NOW).err(),
        Some(GateRefusal::RecipientNotAllowed)
    );
}

#[test]
fn a_transfer_without_adequacy_or_safeguard_is_refused() {
    let day =
        |y, m, d| Day(time::Date::from_calendar_date(y, m, d).unwrap_or_else(|e| panic!("{e}")));
    let window = TransferRule::Between(
        day(2021, time::Month::June, 28),
        Some(day(2025, time::Month::December, 27)),
    );
    assert!(transfer_allowed(window, datetime!(2025-12-27 23:59 UTC)));
    assert!(!transfer_allowed(window, datetime!(2025-12-28 00:00 UTC)));
    assert!(!transfer_allowed(window, datetime!(2021-06-27 12:00 UTC)));
    assert!(transfer_allowed(TransferRule::Always, NOW));
    assert!(!transfer_allowed(TransferRule::Never, NOW));
}

#[test]
fn aggregated_recipients_never_receive_records() {
    let mut policy = POLICY.clone();
    let (p, r) = ix("postal-marketing", "mailing-house");
    if let Some(t) = policy.recipients.get_mut(r.get()) {
        t.form = DisclosureForm::Aggregated;
    }
    assert_eq!(
        records_gate(&policy, p, r, NOW).err(),
        Some(GateRefusal::AggregatedOnly)
    );
    // The per-field gate still answers: the decision pseudonymises.
    assert!(recipient_gate(&policy, p, r, NOW).is_ok());
}

proptest! {
    /// The decision and the gate agree for every purpose and recipient: the
    /// decision refuses everything for the recipient exactly when the gate
    /// does, with the same reason.
    #[test]
    fn the_decision_applies_the_same_gate(p in 0..POLICY.purposes.len(), r in 0..POLICY.recipients.len(), days in 0i64..4_000) {
        let now = datetime!(2020-01-01 12:00 UTC) + time::Duration::days(days);
        let purpose = PurposeIx(u16::try_from(p).unwrap_or(u16::MAX));
        let recipient = RecipientIx(u16::try_from(r).unwrap_or(u16::MAX));
        let request = Request {
            actor: Actor::Staff,
            purpose,
            wanted: POLICY.all_fields,
            recipient: Some(recipient),
            channel: None,
        };
        let decision = decide(&POLICY, &SubjectState::default(), &request, now);
        match recipient_gate(&POLICY, purpose, recipient, now) {
            Err(GateRefusal::RecipientNotAllowed) => {
                prop_assert!(decision.allowed.is_empty());
                prop_assert!(decision.refusals().any(|(_, why)| why == Reason::RecipientNotAllowed));
                prop_assert!(decision.refusals().all(|(_, why)| why != Reason::UnsafeTransfer));
            }
            Err(GateRefusal::UnsafeTransfer) => {
                prop_assert!(decision.allowed.is_empty());
                let table = &POLICY.recipients[r];
                let shared = POLICY.purposes[p].fields.intersect(table.fields);
                prop_assert!(shared.is_empty() || decision.refusals().any(|(_, why)| why == Reason::UnsafeTransfer));
            }
            Err(GateRefusal::AggregatedOnly) => prop_assert!(false, "not from recipient_gate"),
            Ok(table) => prop_assert!(decision.allowed.minus(table.fields).is_empty()),
        }
    }
}
