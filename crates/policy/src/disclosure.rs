//! The disclosure gate: may a purpose send records about individuals to a
//! recipient today? The decision applies the same gate field by field (it
//! also narrows to the recipient's categories); a disclosure of whole
//! records asks it once, before reading anyone. One rule, in one place.

use crate::compiled::{CompiledPolicy, PurposeIx, RecipientIx, RecipientTable, TransferRule};
use crate::day::Day;
use crate::terms::DisclosureForm;
use time::OffsetDateTime;

/// Why a recipient may not receive records for a purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateRefusal {
    /// The purpose does not name the recipient (or either is unknown).
    RecipientNotAllowed,
    /// Art. 44: no adequacy decision in force today and no safeguard.
    UnsafeTransfer,
    /// The recipient receives only aggregated statistics.
    AggregatedOnly,
}

impl GateRefusal {
    pub fn code(self) -> &'static str {
        match self {
            GateRefusal::RecipientNotAllowed => "recipient_not_allowed",
            GateRefusal::UnsafeTransfer => "unsafe_transfer",
            GateRefusal::AggregatedOnly => "aggregated_only",
        }
    }
}

/// The purpose names the recipient and the transfer is safe at `now`: the
/// recipient's table, for its categories and the form it receives.
pub fn recipient_gate(
    policy: &CompiledPolicy,
    purpose: PurposeIx,
    recipient: RecipientIx,
    now: OffsetDateTime,
) -> Result<&RecipientTable, GateRefusal> {
    let (Some(p), Some(table)) = (
        policy.purposes.get(purpose.get()),
        policy.recipients.get(recipient.get()),
    ) else {
        return Err(GateRefusal::RecipientNotAllowed);
    };
    if !p.discloses_to(recipient) {
        return Err(GateRefusal::RecipientNotAllowed);
    }
    if !transfer_allowed(table.transfer, now) {
        return Err(GateRefusal::UnsafeTransfer);
    }
    Ok(table)
}

/// [`recipient_gate`], for a disclosure of records about individuals: a
/// recipient of aggregated statistics only never gets one.
pub fn records_gate(
    policy: &CompiledPolicy,
    purpose: PurposeIx,
    recipient: RecipientIx,
    now: OffsetDateTime,
) -> Result<&RecipientTable, GateRefusal> {
    let table = recipient_gate(policy, purpose, recipient, now)?;
    if table.form == DisclosureForm::Aggregated {
        return Err(GateRefusal::AggregatedOnly);
    }
    Ok(table)
}

/// Whether a recipient's transfer rule allows a disclosure at `now`.
pub fn transfer_allowed(rule: TransferRule, now: OffsetDateTime) -> bool {
    let today = Day(now.date());
    match rule {
        TransferRule::Always => true,
        // An adequacy decision's end date is its last day in force.
        TransferRule::Between(from, until) => from <= today && until.is_none_or(|u| today <= u),
        TransferRule::Never => false,
    }
}

#[cfg(test)]
#[path = "disclosure_tests.rs"]
mod tests;
