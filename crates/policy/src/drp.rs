//! The Data Rights Protocol (Consumer Reports, v1.0) as rules: which of the
//! protocol's actions a policy offers, how each becomes a request of the
//! register, how the register's states read as the protocol's statuses, and
//! the checks of a signed message's claims in the protocol's order. Pure:
//! the signature itself is checked by the vault, the clock is a parameter.

use crate::CompiledPolicy;
use crate::requests::{RequestKind, RequestState};
use time::OffsetDateTime;

/// The protocol version spoken, in the discovery document and in messages.
pub const VERSION: &str = "1.0";

/// The longest validity window of a signed message accepted (`issued-at`
/// to `expires-at`): a short window limits how long a captured message can
/// be replayed.
pub const MAX_WINDOW_SECONDS: i64 = 15 * 60;

/// An action (a "right") of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Access,
    AccessCategories,
    AccessSpecific,
    Deletion,
    SaleOptOut,
    SaleOptIn,
}

impl Action {
    pub const ALL: [Action; 6] = [
        Action::Access,
        Action::AccessCategories,
        Action::AccessSpecific,
        Action::Deletion,
        Action::SaleOptOut,
        Action::SaleOptIn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Access => "access",
            Action::AccessCategories => "access:categories",
            Action::AccessSpecific => "access:specific",
            Action::Deletion => "deletion",
            Action::SaleOptOut => "sale:opt_out",
            Action::SaleOptIn => "sale:opt_in",
        }
    }

    /// The protocol's own examples spell the sale actions with a hyphen as
    /// well as with an underscore; both are read.
    pub fn parse(text: &str) -> Option<Action> {
        let text = text.replace("opt-", "opt_");
        Action::ALL.into_iter().find(|a| a.as_str() == text)
    }

    /// The register's kind for this action. Every access variant is the
    /// right of access (Art. 15 gives the categories and the data in one
    /// answer); an opt-out of sale or sharing is an objection with the
    /// scope of a Global Privacy Control signal. An opt-in to sale is not a
    /// right: consent is the person's own act, never an agent's.
    pub fn kind(self) -> Option<RequestKind> {
        match self {
            Action::Access | Action::AccessCategories | Action::AccessSpecific => {
                Some(RequestKind::Access)
            }
            Action::Deletion => Some(RequestKind::Erasure),
            Action::SaleOptOut => Some(RequestKind::SaleOptOut),
            Action::SaleOptIn => None,
        }
    }
}

/// The actions a policy offers: access (with its variants) and deletion,
/// which the law gives against every controller and the notice declares;
/// and the opt-out of sale or sharing only where the policy sells or shares
/// (a purpose disclosing to a recipient for its own marketing, or setting
/// marketing cookies): elsewhere there is nothing for it to stop.
pub fn offered(policy: &CompiledPolicy) -> Vec<Action> {
    let mut actions = vec![
        Action::Access,
        Action::AccessCategories,
        Action::AccessSpecific,
        Action::Deletion,
    ];
    if policy.purposes.iter().any(|p| p.gpc_scope) {
        actions.push(Action::SaleOptOut);
    }
    actions
}

/// A request's status in the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Open,
    InProgress,
    Fulfilled,
    Revoked,
    Denied,
    Expired,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::InProgress => "in_progress",
            Status::Fulfilled => "fulfilled",
            Status::Revoked => "revoked",
            Status::Denied => "denied",
            Status::Expired => "expired",
        }
    }
}

/// The reasons the protocol names for a status.
pub const DENIAL_REASONS: [&str; 7] = [
    "suspected_fraud",
    "insuf_verification",
    "no_match",
    "claim_not_covered",
    "outside_jurisdiction",
    "too_many_requests",
    "other",
];

/// The protocol's status of a register request, and its reason. `found`:
/// whether the vault held anything about the person (known once the work
/// is done); `refusal`: the reason a refused request was given, which is
/// passed on when it is one of the protocol's reason codes.
pub fn status(
    state: RequestState,
    found: bool,
    refusal: Option<&str>,
) -> (Status, Option<&'static str>) {
    use RequestState as S;
    match state {
        S::Received => (Status::Open, None),
        S::AwaitingVerification => (Status::InProgress, Some("need_user_verification")),
        S::Verified | S::InProgress => (Status::InProgress, None),
        S::Completed | S::PartiallyCompleted if !found => (Status::Denied, Some("no_match")),
        S::Completed | S::PartiallyCompleted => (Status::Fulfilled, None),
        S::Cancelled => (Status::Revoked, None),
        S::Refused => {
            let given = refusal.map(str::trim);
            let reason = DENIAL_REASONS
                .into_iter()
                .find(|r| Some(*r) == given)
                .unwrap_or("other");
            (Status::Denied, Some(reason))
        }
        S::Expired => (Status::Expired, None),
    }
}

/// The claims every signed message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub agent_id: String,
    pub business_id: String,
    pub issued_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// Why a signed message's claims are refused, in the order they are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimRefusal {
    /// `agent-id` is not the agent the token (or the path) names.
    AgentMismatch,
    /// `business-id` is not this business.
    WrongBusiness,
    /// Now is before `issued-at`: the sender's clock runs fast.
    NotYetValid,
    /// Now is at or after `expires-at`.
    Expired,
    /// `expires-at` is more than [`MAX_WINDOW_SECONDS`] after `issued-at`.
    WindowTooLong,
}

impl ClaimRefusal {
    pub fn code(self) -> &'static str {
        match self {
            ClaimRefusal::AgentMismatch => "agent_mismatch",
            ClaimRefusal::WrongBusiness => "wrong_business",
            ClaimRefusal::NotYetValid => "not_yet_valid",
            ClaimRefusal::Expired => "expired",
            ClaimRefusal::WindowTooLong => "window_too_long",
        }
    }
}

/// The protocol's checks after the signature, in its order: the agent, the
/// business, issued-at, expires-at; then the window's length.
pub fn check_claims(
    claims: &Claims,
    agent: &str,
    business: &str,
    now: OffsetDateTime,
) -> Result<(), ClaimRefusal> {
    if claims.agent_id != agent {
        return Err(ClaimRefusal::AgentMismatch);
    }
    if claims.business_id != business {
        return Err(ClaimRefusal::WrongBusiness);
    }
    if now < claims.issued_at {
        return Err(ClaimRefusal::NotYetValid);
    }
    if now >= claims.expires_at {
        return Err(ClaimRefusal::Expired);
    }
    if (claims.expires_at - claims.issued_at).whole_seconds() > MAX_WINDOW_SECONDS {
        return Err(ClaimRefusal::WindowTooLong);
    }
    Ok(())
}

/// A protocol timestamp (ISO 8601 with an offset, as RFC 3339 writes it).
pub fn parse_time(text: &str) -> Option<OffsetDateTime> {
    use time::format_description::well_known::{Iso8601, Rfc3339};
    OffsetDateTime::parse(text, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(text, &Iso8601::DEFAULT))
        .ok()
}

/// A default business id from the controller's name, in the directory's
/// form (`[A-Z_]+`): `i-Image IT Ltd` becomes `I_IMAGE_IT_LTD`.
pub fn business_id_from(name: &str) -> String {
    let mut id = String::new();
    for c in name.chars() {
        if c.is_ascii_alphabetic() {
            id.push(c.to_ascii_uppercase());
        } else if !id.ends_with('_') && !id.is_empty() {
            id.push('_');
        }
    }
    id.trim_end_matches('_').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn claims() -> Claims {
        Claims {
            agent_id: "TEST_AGENT".into(),
            business_id: "TEST_CB".into(),
            issued_at: datetime!(2025-01-01 00:00 UTC),
            expires_at: datetime!(2025-01-01 00:15 UTC),
        }
    }

    #[test]
    fn claims_are_checked_in_the_protocols_order() {
        let at = datetime!(2025-01-01 00:05 UTC);
        assert_eq!(check_claims(&claims(), "TEST_AGENT", "TEST_CB", at), Ok(()));
        // Every claim wrong at once: the agent is named first.
        let all_wrong = Claims {
            issued_at: datetime!(2025-01-01 01:00 UTC),
            expires_at: datetime!(2025-01-01 02:00 UTC),
            ..claims()
        };
        let refuse = |agent, business, now| check_claims(&all_wrong, agent, business, now);
        assert_eq!(
            refuse("OTHER", "OTHER", at),
            Err(ClaimRefusal::AgentMismatch)
        );
        assert_eq!(
            refuse("TEST_AGENT", "OTHER", at),
            Err(ClaimRefusal::WrongBusiness)
        );
        assert_eq!(
            refuse("TEST_AGENT", "TEST_CB", at),
            Err(ClaimRefusal::NotYetValid)
        );
        assert_eq!(
            refuse("TEST_AGENT", "TEST_CB", datetime!(2025-01-01 02:00 UTC)),
            Err(ClaimRefusal::Expired)
        );
        assert_eq!(
            refuse("TEST_AGENT", "TEST_CB", datetime!(2025-01-01 01:30 UTC)),
            Err(ClaimRefusal::WindowTooLong)
        );
    }

    #[test]
    fn the_window_is_at_most_fifteen_minutes_and_expiry_is_exclusive() {
        let c = claims();
        assert_eq!(
            check_claims(&c, "TEST_AGENT", "TEST_CB", c.issued_at),
            Ok(())
        );
        assert_eq!(
            check_claims(&c, "TEST_AGENT", "TEST_CB", c.expires_at),
            Err(ClaimRefusal::Expired)
        );
        let longer = Claims {
            expires_at: datetime!(2025-01-01 00:15:01 UTC),
            ..claims()
        };
        assert_eq!(
            check_claims(&longer, "TEST_AGENT", "TEST_CB", c.issued_at),
            Err(ClaimRefusal::WindowTooLong)
        );
    }

    #[test]
    fn the_test_vectors_timestamps_parse() {
        assert_eq!(
            parse_time("2025-01-01T00:15:00.000+00:00"),
            Some(datetime!(2025-01-01 00:15 UTC))
        );
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn actions_map_onto_the_register() {
        for a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Some(a));
        }
        assert_eq!(Action::parse("sale:opt-out"), Some(Action::SaleOptOut));
        assert_eq!(Action::AccessSpecific.kind(), Some(RequestKind::Access));
        assert_eq!(Action::Deletion.kind(), Some(RequestKind::Erasure));
        assert_eq!(Action::SaleOptOut.kind(), Some(RequestKind::SaleOptOut));
        assert_eq!(Action::SaleOptIn.kind(), None);
        assert_eq!(Action::parse("rectification"), None);
    }

    #[test]
    fn the_reference_policy_offers_what_it_declares() {
        let policy = crate::reference().unwrap();
        let offered = offered(&policy.compiled);
        let sells_or_shares = policy.compiled.purposes.iter().any(|p| p.gpc_scope);
        assert_eq!(offered.contains(&Action::SaleOptOut), sells_or_shares);
        assert!(offered.contains(&Action::Access) && offered.contains(&Action::Deletion));
        assert!(!offered.contains(&Action::SaleOptIn));
        for a in &offered {
            assert!(a.kind().is_some(), "{a:?} is offered but maps to nothing");
        }
    }

    #[test]
    fn states_read_as_the_protocols_statuses() {
        use RequestState as S;
        assert_eq!(status(S::Received, false, None), (Status::Open, None));
        assert_eq!(
            status(S::AwaitingVerification, false, None),
            (Status::InProgress, Some("need_user_verification"))
        );
        assert_eq!(
            status(S::InProgress, false, None),
            (Status::InProgress, None)
        );
        assert_eq!(status(S::Completed, true, None), (Status::Fulfilled, None));
        assert_eq!(
            status(S::PartiallyCompleted, true, None),
            (Status::Fulfilled, None)
        );
        assert_eq!(
            status(S::Completed, false, None),
            (Status::Denied, Some("no_match"))
        );
        assert_eq!(status(S::Cancelled, true, None), (Status::Revoked, None));
        assert_eq!(
            status(S::Refused, false, Some("suspected_fraud")),
            (Status::Denied, Some("suspected_fraud"))
        );
        assert_eq!(
            status(S::Refused, false, Some("manifestly unfounded")),
            (Status::Denied, Some("other"))
        );
        assert_eq!(status(S::Expired, false, None), (Status::Expired, None));
    }

    #[test]
    fn business_ids_take_the_directorys_form() {
        assert_eq!(business_id_from("i-Image IT Ltd"), "I_IMAGE_IT_LTD");
        assert_eq!(business_id_from("  A&B  plc. "), "A_B_PLC");
    }
}
