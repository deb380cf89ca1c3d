//! Who may call which use case: one declared table, read by every use case
//! and by the test that calls every route with every kind of key.
//!
//! A role either may call an operation or may not. A key's bindings (a
//! service key's purposes, a processor key's recipient and purposes) then
//! narrow what an allowed call may touch; [`Binding`] names how, and the use
//! case applies it with the request in hand. Every refusal here is audited
//! by the caller through [`crate::App::refuse`].

use super::{AppError, Principal, Role};
use crate::audit_action::AuditAction;

/// Every use case a key can call. The public routes (health, the banner's
/// endpoints, the published documents) are not here: they take no key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    CollectNew,
    AddData,
    PutRelationship,
    ReadSubject,
    LookupSubject,
    Disclose,
    RecordConsent,
    RecordCompellingGrounds,
    ConsentReceipt,
    SubjectConsents,
    VisitorConsents,
    LinkVisitor,
    MarketingCheck,
    CampaignCheck,
    Suppress,
    SubmitRequest,
    ResendCode,
    ReadRequest,
    ListRequests,
    ReadReport,
    ManageRequest,
    ListKeys,
    CreateKey,
    RevokeKey,
    VerifyAudit,
    ListAgents,
    AddAgent,
    ChangeAgent,
    RemoveAgent,
    RetentionReport,
    RetentionRun,
    SetHold,
    ReleaseHold,
    ReviewRule,
}

/// How a key's bindings narrow an operation its role may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// Only unbound roles may call it; bindings play no part.
    None,
    /// A service key acts only for the purpose the request names, which
    /// must be one it is bound to.
    Purpose,
    /// A service key records only relationships that ground one of its
    /// purposes.
    RelationshipOfPurpose,
    /// A service key discloses for its purposes; a processor key receives
    /// disclosures to its own recipient only, and for its purposes when it
    /// is bound to any.
    RecipientAndPurpose,
    /// A service key sees only the consent events of its purposes (and the
    /// general objections that cover them).
    EventsOfPurposes,
    /// A service key links a visitor only if every grant the visitor made
    /// is for one of its purposes: linking must not carry a consent it
    /// could not have recorded itself.
    GrantsOfPurposes,
    /// A service key checks only its own marketing purposes.
    MarketingPurposes,
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub operation: Operation,
    pub roles: &'static [Role],
    pub binding: Binding,
}

use Role::{Admin, Agent, Dpo, Processor, Service};

/// The table. The DPO oversees: it reads, discloses, follows consents and
/// verifies the audit, but records nothing about a person (no collection,
/// consent, relationship, suppression or link): those are acts of the
/// organisation's systems and agents, and keeping them apart keeps the
/// overseer's trail clean. The one exception is the DPO's own judgement:
/// compelling grounds that override an objection (Art. 21(1)), which only
/// the DPO records. Processors only receive disclosures.
pub const RULES: &[Rule] = &[
    rule(
        Operation::CollectNew,
        &[Admin, Agent, Service],
        Binding::Purpose,
    ),
    rule(
        Operation::AddData,
        &[Admin, Agent, Service],
        Binding::Purpose,
    ),
    rule(
        Operation::PutRelationship,
        &[Admin, Agent, Service],
        Binding::RelationshipOfPurpose,
    ),
    rule(
        Operation::ReadSubject,
        &[Admin, Dpo, Agent, Service],
        Binding::Purpose,
    ),
    rule(
        Operation::LookupSubject,
        &[Admin, Dpo, Agent, Service],
        Binding::Purpose,
    ),
    rule(
        Operation::Disclose,
        &[Admin, Dpo, Service, Processor],
        Binding::RecipientAndPurpose,
    ),
    rule(
        Operation::RecordConsent,
        &[Admin, Agent, Service],
        Binding::Purpose,
    ),
    rule(
        Operation::ConsentReceipt,
        &[Admin, Dpo, Agent, Service],
        Binding::EventsOfPurposes,
    ),
    rule(
        Operation::SubjectConsents,
        &[Admin, Dpo, Agent, Service],
        Binding::EventsOfPurposes,
    ),
    rule(
        Operation::VisitorConsents,
        &[Admin, Dpo, Agent, Service],
        Binding::EventsOfPurposes,
    ),
    rule(
        Operation::LinkVisitor,
        &[Admin, Agent, Service],
        Binding::GrantsOfPurposes,
    ),
    rule(
        Operation::MarketingCheck,
        &[Admin, Dpo, Agent, Service],
        Binding::MarketingPurposes,
    ),
    rule(
        Operation::CampaignCheck,
        &[Admin, Dpo, Agent, Service],
        Binding::MarketingPurposes,
    ),
    rule(Operation::Suppress, &[Admin, Agent, Service], Binding::None),
    // Rights requests: the portal (a service key) and call-centre agents
    // take them in; staff follow the register; reports, which hold the
    // person's data, go to the person (by their session) and to the admin
    // and DPO; only the admin and DPO steer a request's course.
    rule(
        Operation::SubmitRequest,
        &[Admin, Agent, Service],
        Binding::None,
    ),
    rule(
        Operation::ResendCode,
        &[Admin, Agent, Service],
        Binding::None,
    ),
    rule(
        Operation::ReadRequest,
        &[Admin, Dpo, Agent, Service],
        Binding::None,
    ),
    rule(Operation::ListRequests, &[Admin, Dpo, Agent], Binding::None),
    rule(Operation::ReadReport, &[Admin, Dpo], Binding::None),
    rule(Operation::ManageRequest, &[Admin, Dpo], Binding::None),
    rule(Operation::RecordCompellingGrounds, &[Dpo], Binding::None),
    rule(Operation::ListKeys, &[Admin], Binding::None),
    rule(Operation::CreateKey, &[Admin], Binding::None),
    rule(Operation::RevokeKey, &[Admin], Binding::None),
    rule(Operation::VerifyAudit, &[Admin, Dpo], Binding::None),
    // Authorized agents (Data Rights Protocol) are trusted like keys: only
    // admins add, suspend or remove them.
    rule(Operation::ListAgents, &[Admin], Binding::None),
    rule(Operation::AddAgent, &[Admin], Binding::None),
    rule(Operation::ChangeAgent, &[Admin], Binding::None),
    rule(Operation::RemoveAgent, &[Admin], Binding::None),
    // Retention is the organisation's oversight: the DPO sees the report,
    // sets and lifts legal holds and records reviews; running the sweep by
    // hand (it erases) is an administrator's.
    rule(Operation::RetentionReport, &[Admin, Dpo], Binding::None),
    rule(Operation::RetentionRun, &[Admin], Binding::None),
    rule(Operation::SetHold, &[Admin, Dpo], Binding::None),
    rule(Operation::ReleaseHold, &[Admin, Dpo], Binding::None),
    rule(Operation::ReviewRule, &[Admin, Dpo], Binding::None),
];

const fn rule(operation: Operation, roles: &'static [Role], binding: Binding) -> Rule {
    Rule {
        operation,
        roles,
        binding,
    }
}

/// The rule for an operation. The table holds one row per operation (a
/// test checks it), so the fallback of no roles is never reached; were it
/// reached, it refuses.
pub fn rule_for(operation: Operation) -> Rule {
    RULES
        .iter()
        .find(|r| r.operation == operation)
        .copied()
        .unwrap_or(Rule {
            operation,
            roles: &[],
            binding: Binding::None,
        })
}

impl Operation {
    /// The audit action of a refusal of this operation.
    pub fn action(self) -> AuditAction {
        match self {
            Operation::CollectNew => AuditAction::Collect,
            Operation::AddData => AuditAction::CollectMore,
            Operation::PutRelationship => AuditAction::Relationship,
            Operation::ReadSubject => AuditAction::Read,
            Operation::LookupSubject => AuditAction::Lookup,
            Operation::Disclose => AuditAction::Disclosure,
            Operation::RecordConsent => AuditAction::ConsentRecord,
            Operation::RecordCompellingGrounds => AuditAction::ObjectionCompellingGrounds,
            Operation::ConsentReceipt => AuditAction::ConsentReceipt,
            Operation::SubjectConsents | Operation::VisitorConsents => AuditAction::ConsentHistory,
            Operation::LinkVisitor => AuditAction::ConsentLinkVisitor,
            Operation::MarketingCheck => AuditAction::MarketingCheck,
            Operation::CampaignCheck => AuditAction::MarketingCampaign,
            Operation::Suppress => AuditAction::MarketingSuppress,
            Operation::SubmitRequest => AuditAction::RequestReceive,
            Operation::ResendCode => AuditAction::RequestCode,
            Operation::ReadRequest => AuditAction::RequestRead,
            Operation::ListRequests => AuditAction::RequestList,
            Operation::ReadReport => AuditAction::RequestReport,
            Operation::ManageRequest => AuditAction::RequestManage,
            Operation::ListKeys => AuditAction::KeyList,
            Operation::CreateKey => AuditAction::KeyCreate,
            Operation::RevokeKey => AuditAction::KeyRevoke,
            Operation::VerifyAudit => AuditAction::AuditVerify,
            Operation::ListAgents => AuditAction::AgentList,
            Operation::AddAgent => AuditAction::AgentAdd,
            Operation::ChangeAgent => AuditAction::AgentChange,
            Operation::RemoveAgent => AuditAction::AgentRemove,
            Operation::RetentionReport => AuditAction::RetentionReport,
            Operation::RetentionRun => AuditAction::RetentionRun,
            Operation::SetHold => AuditAction::RetentionHold,
            Operation::ReleaseHold => AuditAction::RetentionRelease,
            Operation::ReviewRule => AuditAction::RetentionReview,
        }
    }
}

impl Principal {
    /// May this key's role call the operation at all?
    pub fn authorize(&self, operation: Operation) -> Result<Rule, AppError> {
        let rule = rule_for(operation);
        if rule.roles.contains(&self.role) {
            Ok(rule)
        } else {
            Err(AppError::ForbiddenCode {
                code: "role_not_allowed",
                detail: format!("a key with role {} may not do this", self.role.as_str()),
            })
        }
    }

    /// Is this key bound to act for `purpose`? Unbound roles are; a
    /// service key only for its own purposes; a processor key for its own
    /// when it has any.
    pub fn covers_purpose(&self, purpose: &str) -> bool {
        match self.role {
            Role::Service => self.purposes.iter().any(|p| p == purpose),
            Role::Processor => {
                self.purposes.is_empty() || self.purposes.iter().any(|p| p == purpose)
            }
            Role::Admin | Role::Dpo | Role::Agent => true,
        }
    }

    /// The role check and the purpose binding together, for operations
    /// bound by [`Binding::Purpose`] or [`Binding::RecipientAndPurpose`].
    pub fn authorize_for(&self, operation: Operation, purpose: &str) -> Result<(), AppError> {
        self.authorize(operation)?;
        if self.covers_purpose(purpose) {
            Ok(())
        } else {
            Err(not_bound(purpose))
        }
    }
}

pub fn not_bound(purpose: &str) -> AppError {
    AppError::ForbiddenCode {
        code: "purpose_not_allowed_for_key",
        detail: format!("this key is not bound to purpose `{purpose}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_per_operation() {
        for (i, r) in RULES.iter().enumerate() {
            assert_eq!(
                RULES.iter().filter(|o| o.operation == r.operation).count(),
                1,
                "row {i}"
            );
            assert!(!r.roles.is_empty(), "row {i} allows no one");
        }
        assert_eq!(RULES.len(), 34);
    }

    #[test]
    fn processors_only_receive_disclosures() {
        for r in RULES {
            assert_eq!(
                r.roles.contains(&Role::Processor),
                r.operation == Operation::Disclose,
                "{:?}",
                r.operation
            );
        }
    }
}
