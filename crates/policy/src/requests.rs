//! Data-subject requests: their kinds and the states a request moves
//! through, with the transitions the law and the register allow, and the
//! statutory clock ([`Clock`], [`due`]). Pure: the engine records each
//! transition, this decides whether it may happen.

use serde::{Deserialize, Serialize};

pub use crate::requests_clock::{
    Clock, ClockError, Extension, Pause, check_extension, due, due_soon, may_pause, overdue, starts,
};

/// What the person asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequestKind {
    /// Art. 15: a copy of everything held, with the statement of Art. 15(1)-(2).
    Access,
    /// Art. 20: what the person provided or was observed, machine-readable.
    Portability,
    /// Art. 17.
    Erasure,
    /// Art. 16.
    Rectification,
    /// Art. 18.
    Restriction,
    /// The end of a restriction (Art. 18(3): the person is told first).
    LiftRestriction,
    /// Art. 21(1): to one legitimate-interest or public-task purpose.
    Objection,
    /// Art. 21(2)-(3): to all direct marketing.
    MarketingOptOut,
    /// An objection to the sale or sharing of personal data, with the scope
    /// of a Global Privacy Control signal (what an authorized agent's
    /// `sale:opt_out` asks for).
    SaleOptOut,
}

impl RequestKind {
    pub const ALL: [RequestKind; 9] = [
        RequestKind::Access,
        RequestKind::Portability,
        RequestKind::Erasure,
        RequestKind::Rectification,
        RequestKind::Restriction,
        RequestKind::LiftRestriction,
        RequestKind::Objection,
        RequestKind::MarketingOptOut,
        RequestKind::SaleOptOut,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Access => "access",
            RequestKind::Portability => "portability",
            RequestKind::Erasure => "erasure",
            RequestKind::Rectification => "rectification",
            RequestKind::Restriction => "restriction",
            RequestKind::LiftRestriction => "lift-restriction",
            RequestKind::Objection => "objection",
            RequestKind::MarketingOptOut => "marketing-opt-out",
            RequestKind::SaleOptOut => "sale-opt-out",
        }
    }

    pub fn parse(text: &str) -> Option<RequestKind> {
        RequestKind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// Whether recipients who received the data are told (Art. 19).
    pub fn tells_recipients(self) -> bool {
        matches!(
            self,
            RequestKind::Erasure | RequestKind::Rectification | RequestKind::Restriction
        )
    }
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequestState {
    Received,
    AwaitingVerification,
    Verified,
    InProgress,
    Completed,
    /// Done, except data kept on a stated ground (Art. 17(3)).
    PartiallyCompleted,
    /// With the reason, the right to complain to the regulator and to a court.
    Refused,
    Cancelled,
    /// Verification never came in time.
    Expired,
}

impl RequestState {
    pub const ALL: [RequestState; 9] = [
        RequestState::Received,
        RequestState::AwaitingVerification,
        RequestState::Verified,
        RequestState::InProgress,
        RequestState::Completed,
        RequestState::PartiallyCompleted,
        RequestState::Refused,
        RequestState::Cancelled,
        RequestState::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Received => "received",
            RequestState::AwaitingVerification => "awaiting-verification",
            RequestState::Verified => "verified",
            RequestState::InProgress => "in-progress",
            RequestState::Completed => "completed",
            RequestState::PartiallyCompleted => "partially-completed",
            RequestState::Refused => "refused",
            RequestState::Cancelled => "cancelled",
            RequestState::Expired => "expired",
        }
    }

    pub fn parse(text: &str) -> Option<RequestState> {
        RequestState::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// No transition leaves a final state.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RequestState::Completed
                | RequestState::PartiallyCompleted
                | RequestState::Refused
                | RequestState::Cancelled
                | RequestState::Expired
        )
    }

    /// Whether the statutory clock is running (not final, verified or later).
    pub fn is_open(self) -> bool {
        !self.is_final()
    }
}

/// What happens to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestEvent {
    /// A code was sent, or an agent asked for the person's identity.
    AskIdentity,
    /// The identity was checked (a code entered, or an agent's check).
    Verify,
    /// The work starts (tasks are planned).
    Start,
    /// Every task done, nothing kept.
    Complete,
    /// Every task done, some data kept on its ground.
    CompletePartially,
    Refuse,
    Cancel,
    /// The verification window ended unanswered.
    Expire,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a request that is {from} cannot be {event}")]
pub struct TransitionError {
    pub from: &'static str,
    pub event: &'static str,
}

impl RequestEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestEvent::AskIdentity => "sent for verification",
            RequestEvent::Verify => "verified",
            RequestEvent::Start => "started",
            RequestEvent::Complete => "completed",
            RequestEvent::CompletePartially => "partially completed",
            RequestEvent::Refuse => "refused",
            RequestEvent::Cancel => "cancelled",
            RequestEvent::Expire => "expired",
        }
    }
}

/// The state after `event`, or why it cannot happen. A request is never
/// acted on before the person is verified: `Start` needs `Verified`.
pub fn next_state(
    from: RequestState,
    event: RequestEvent,
) -> Result<RequestState, TransitionError> {
    use RequestEvent as E;
    use RequestState as S;
    let to = match (from, event) {
        (S::Received, E::AskIdentity) => Some(S::AwaitingVerification),
        (S::Received | S::AwaitingVerification, E::Verify) => Some(S::Verified),
        (S::Received | S::AwaitingVerification, E::Expire) => Some(S::Expired),
        (S::Verified, E::Start) => Some(S::InProgress),
        (S::InProgress, E::Complete) => Some(S::Completed),
        (S::InProgress, E::CompletePartially) => Some(S::PartiallyCompleted),
        (s, E::Refuse) if !s.is_final() => Some(S::Refused),
        (s, E::Cancel) if !s.is_final() && s != S::InProgress => Some(S::Cancelled),
        _ => None,
    };
    to.ok_or(TransitionError {
        from: from.as_str(),
        event: event.as_str(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in RequestKind::ALL {
            assert_eq!(RequestKind::parse(k.as_str()), Some(k));
        }
        for s in RequestState::ALL {
            assert_eq!(RequestState::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn nothing_is_done_before_verification_and_nothing_leaves_a_final_state() {
        for s in RequestState::ALL {
            let started = next_state(s, RequestEvent::Start);
            assert_eq!(started.is_ok(), s == RequestState::Verified, "{s:?}");
            if s.is_final() {
                for e in [
                    RequestEvent::AskIdentity,
                    RequestEvent::Verify,
                    RequestEvent::Start,
                    RequestEvent::Complete,
                    RequestEvent::CompletePartially,
                    RequestEvent::Refuse,
                    RequestEvent::Cancel,
                    RequestEvent::Expire,
                ] {
                    assert!(next_state(s, e).is_err(), "{s:?} {e:?}");
                }
            }
        }
    }

    #[test]
    fn a_request_under_way_is_finished_or_refused_not_cancelled() {
        assert!(next_state(RequestState::InProgress, RequestEvent::Cancel).is_err());
        assert_eq!(
            next_state(RequestState::InProgress, RequestEvent::CompletePartially),
            Ok(RequestState::PartiallyCompleted)
        );
    }
}
