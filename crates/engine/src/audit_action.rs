//! Every action the audit records, named once.
//!
//! The chain stores an action as its name (a string, so entries written by
//! older releases verify and read as they were); the engine only ever
//! builds one from this enum, so a typo cannot invent an action that a
//! search of the audit would then miss. The names are a contract: the
//! README's audit section and operators' queries use them.

use custodian_policy::consent::ConsentAction;
use custodian_policy::requests::RequestKind;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditAction {
    // The vault's subjects.
    Collect,
    CollectMore,
    /// More data for a subject that replaced some of its values.
    Rectify,
    Relationship,
    Read,
    Lookup,
    /// A disclosure refused before its recipient was checked (`disclose`).
    Disclosure,
    /// A disclosure to a named recipient (`disclose:<recipient>`).
    Disclose(String),
    // Consent and marketing.
    /// One event of the consent ledger (`consent.<action>`).
    ConsentEvent(ConsentAction),
    ConsentRecord,
    ConsentCookies,
    ConsentHistory,
    ConsentLinkVisitor,
    ConsentReceipt,
    ObjectionCompellingGrounds,
    MarketingCheck,
    MarketingCampaign,
    MarketingCampaignCheck,
    MarketingSuppress,
    MarketingTpsImport,
    // Keys, the audit itself, agents.
    KeyList,
    KeyCreate,
    KeyRevoke,
    KeysRewrap,
    AuditVerify,
    AgentList,
    AgentAdd,
    AgentChange,
    AgentActivate,
    AgentSuspend,
    AgentRemove,
    // Rights requests.
    RequestReceive,
    RequestCode,
    RequestVerify,
    RequestRead,
    RequestList,
    RequestReport,
    RequestManage,
    RequestCancel,
    RequestRefuse,
    RequestExtend,
    RequestPause,
    RequestResume,
    RequestFee,
    RequestRetry,
    RequestExpire,
    RequestComplete,
    /// A request of a kind carried out (`request.<kind>`).
    RequestDone(RequestKind),
    SubjectErase,
    SubjectRectify,
    SubjectRestriction,
    SubjectRestrictionLifted,
    DatasetExport,
    DatasetErase,
    DatasetPortability,
    DatasetRectify,
    DatasetRestrict,
    DatasetRestrictionLifted,
    // The Data Rights Protocol.
    DrpAgent,
    DrpRegister,
    DrpRequest,
    DrpStatus,
    DrpRevoke,
    // Retention.
    RetentionReport,
    RetentionRun,
    RetentionSweep,
    /// A declared dataset swept under a rule.
    RetentionDataset,
    RetentionErase,
    RetentionShred,
    RetentionHold,
    RetentionRelease,
    RetentionReview,
}

impl AuditAction {
    /// The name the audit stores.
    pub fn name(&self) -> String {
        use AuditAction::*;
        let fixed = match self {
            Disclose(recipient) => return format!("disclose:{recipient}"),
            ConsentEvent(action) => return format!("consent.{}", action.as_str()),
            RequestDone(kind) => return format!("request.{}", kind.as_str()),
            Collect => "collect",
            CollectMore => "collect.more",
            Rectify => "rectify",
            Relationship => "relationship",
            Read => "read",
            Lookup => "lookup",
            Disclosure => "disclose",
            ConsentRecord => "consent.record",
            ConsentCookies => "consent.cookies",
            ConsentHistory => "consent.history",
            ConsentLinkVisitor => "consent.link-visitor",
            ConsentReceipt => "consent.receipt",
            ObjectionCompellingGrounds => "objection.compelling-grounds",
            MarketingCheck => "marketing.check",
            MarketingCampaign => "marketing.campaign",
            MarketingCampaignCheck => "marketing.campaign-check",
            MarketingSuppress => "marketing.suppress",
            MarketingTpsImport => "marketing.tps-import",
            KeyList => "key.list",
            KeyCreate => "key.create",
            KeyRevoke => "key.revoke",
            KeysRewrap => "keys.rewrap",
            AuditVerify => "audit.verify",
            AgentList => "agent.list",
            AgentAdd => "agent.add",
            AgentChange => "agent.change",
            AgentActivate => "agent.activate",
            AgentSuspend => "agent.suspend",
            AgentRemove => "agent.remove",
            RequestReceive => "request.receive",
            RequestCode => "request.code",
            RequestVerify => "request.verify",
            RequestRead => "request.read",
            RequestList => "request.list",
            RequestReport => "request.report",
            RequestManage => "request.manage",
            RequestCancel => "request.cancel",
            RequestRefuse => "request.refuse",
            RequestExtend => "request.extend",
            RequestPause => "request.pause",
            RequestResume => "request.resume",
            RequestFee => "request.fee",
            RequestRetry => "request.retry",
            RequestExpire => "request.expire",
            RequestComplete => "request.complete",
            SubjectErase => "subject.erase",
            SubjectRectify => "subject.rectify",
            SubjectRestriction => "subject.restriction",
            SubjectRestrictionLifted => "subject.restriction-lifted",
            DatasetExport => "dataset.export",
            DatasetErase => "dataset.erase",
            DatasetPortability => "dataset.portability",
            DatasetRectify => "dataset.rectify",
            DatasetRestrict => "dataset.restrict",
            DatasetRestrictionLifted => "dataset.restriction-lifted",
            DrpAgent => "drp.agent",
            DrpRegister => "drp.register",
            DrpRequest => "drp.request",
            DrpStatus => "drp.status",
            DrpRevoke => "drp.revoke",
            RetentionReport => "retention.report",
            RetentionRun => "retention.run",
            RetentionSweep => "retention.sweep",
            RetentionDataset => "retention.dataset",
            RetentionErase => "retention.erase",
            RetentionShred => "retention.shred",
            RetentionHold => "retention.hold",
            RetentionRelease => "retention.release",
            RetentionReview => "retention.review",
        };
        fixed.to_string()
    }
}

impl From<AuditAction> for String {
    fn from(action: AuditAction) -> String {
        action.name()
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_action_has_its_own_well_formed_name() {
        use AuditAction::*;
        let all = [
            Collect,
            CollectMore,
            Rectify,
            Relationship,
            Read,
            Lookup,
            Disclosure,
            ConsentRecord,
            ConsentCookies,
            ConsentHistory,
            ConsentLinkVisitor,
            ConsentReceipt,
            ObjectionCompellingGrounds,
            MarketingCheck,
            MarketingCampaign,
            MarketingCampaignCheck,
            MarketingSuppress,
            MarketingTpsImport,
            KeyList,
            KeyCreate,
            KeyRevoke,
            KeysRewrap,
            AuditVerify,
            AgentList,
            AgentAdd,
            AgentChange,
            AgentActivate,
            AgentSuspend,
            AgentRemove,
            RequestReceive,
            RequestCode,
            RequestVerify,
            RequestRead,
            RequestList,
            RequestReport,
            RequestManage,
            RequestCancel,
            RequestRefuse,
            RequestExtend,
            RequestPause,
            RequestResume,
            RequestFee,
            RequestRetry,
            RequestExpire,
            RequestComplete,
            SubjectErase,
            SubjectRectify,
            SubjectRestriction,
            SubjectRestrictionLifted,
            DatasetExport,
            DatasetErase,
            DatasetPortability,
            DatasetRectify,
            DatasetRestrict,
            DatasetRestrictionLifted,
            DrpAgent,
            DrpRegister,
            DrpRequest,
            DrpStatus,
            DrpRevoke,
            RetentionReport,
            RetentionRun,
            RetentionSweep,
            RetentionDataset,
            RetentionErase,
            RetentionShred,
            RetentionHold,
            RetentionRelease,
            RetentionReview,
            Disclose("analytics".into()),
            ConsentEvent(ConsentAction::Grant),
            RequestDone(RequestKind::Access),
        ];
        let names: BTreeSet<String> = all.iter().map(AuditAction::name).collect();
        assert_eq!(names.len(), all.len(), "two actions share a name");
        for name in &names {
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b"-.:".contains(&b)),
                "{name}"
            );
        }
        assert!(names.contains("disclose:analytics"));
        assert!(names.contains("consent.grant"));
        assert!(names.contains("request.access"));
    }
}
