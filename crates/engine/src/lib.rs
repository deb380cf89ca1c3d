//! The use cases, apart from HTTP: collection, reads, disclosures, keys and
//! the audit. Each takes a principal (who asks) and returns data or an
//! [`AppError`]; the HTTP layer only translates.

pub mod agents;
pub mod audit_action;
pub mod auth;
pub mod authz;
pub mod campaign;
pub mod collect;
pub mod consent;
pub mod cookies;
pub mod datasets;
pub mod disclose;
pub mod drp;
pub mod error;
pub mod events;
pub mod ids;
pub mod keys;
pub mod mail;
pub mod marketing;
pub mod objection;
pub mod read;
pub mod receipt;
pub mod requests;
pub mod retention;
pub mod rotation;
#[cfg(feature = "openapi")]
pub mod schema;

pub use auth::{Principal, Role};
pub use authz::Operation;
pub use error::AppError;

use custodian_policy::LoadedPolicy;
use custodian_vault::crypto::Keyring;
use custodian_vault::store::{Batch, Store, WriteOp};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// Purposes whose consent, given under some older policy version, a material
/// change since has invalidated; per version.
type Stale = HashMap<String, Arc<HashSet<String>>>;

/// Everything the use cases need, shared by every request.
#[derive(Clone)]
pub struct App {
    pub store: Store,
    pub keys: Arc<Keyring>,
    pub policy: Arc<LoadedPolicy>,
    /// The policy file's text, recorded with its version.
    pub policy_source: Arc<String>,
    stale: Arc<Mutex<Stale>>,
    /// Sends mail to people (verification codes, notices).
    pub mailer: Arc<dyn mail::Mailer>,
    /// Wakes this node's task runner when work is queued here.
    pub tasks_queued: Arc<tokio::sync::Notify>,
    /// This node's name as a task lease owner: unique per process.
    pub node: Arc<str>,
    /// Marketing checks, counted per key, channel and outcome (not audited
    /// one by one: see [`marketing::Counts`]).
    pub marketing_counts: Arc<marketing::Counts>,
    /// Woken when a task of a request finishes on this node: a reader
    /// waiting for its request to settle looks again at once.
    pub requests_settled: Arc<tokio::sync::Notify>,
    /// The least time between two one-time codes for one request.
    pub code_resend_gap: std::time::Duration,
    /// Who this business is in the Data Rights Protocol, and where it is reached.
    pub drp: Arc<drp::DrpSettings>,
    /// The policy's datasets that have a connection, by id.
    pub datasets: Arc<datasets::Datasets>,
    /// The datasets with a retention, connected for the sweep, by id.
    pub sweepers: Arc<retention::datasets::Sweepers>,
    /// The policy's retention, compiled per field.
    retention: Arc<custodian_policy::retention::Retention>,
    /// This node runs the retention sweep on a schedule.
    pub retention_sweep: bool,
    /// Authorized agents recently found by their tokens.
    pub agent_cache: Arc<drp::AgentCache>,
}

impl App {
    pub fn new(store: Store, keys: Keyring, policy: LoadedPolicy, policy_source: String) -> App {
        let drp = drp::DrpSettings::defaults(&policy, "127.0.0.1:8080");
        let policy_document = policy.document.clone();
        App {
            drp: Arc::new(drp),
            agent_cache: Arc::new(drp::AgentCache::default()),
            store,
            keys: Arc::new(keys),
            policy: Arc::new(policy),
            policy_source: Arc::new(policy_source),
            stale: Arc::new(Mutex::new(HashMap::new())),
            mailer: Arc::new(mail::NoMailer),
            tasks_queued: Arc::new(tokio::sync::Notify::new()),
            node: Arc::from(format!("node-{}", custodian_vault::crypto::new_id()).as_str()),
            marketing_counts: Arc::new(marketing::Counts::default()),
            code_resend_gap: requests::unverified::DEFAULT_RESEND_GAP,
            requests_settled: Arc::new(tokio::sync::Notify::new()),
            datasets: Arc::new(datasets::Datasets::new()),
            sweepers: Arc::new(retention::datasets::Sweepers::new()),
            retention: Arc::new(custodian_policy::retention::Retention::new(
                &policy_document,
            )),
            retention_sweep: false,
        }
    }

    /// The same, answering the Data Rights Protocol as `settings` say.
    pub fn with_drp(mut self, settings: drp::DrpSettings) -> App {
        self.drp = Arc::new(settings);
        self
    }

    /// The same, saying whether this node runs the retention sweep on a
    /// schedule (the published notice says data is erased automatically
    /// only then).
    pub fn with_retention_sweep(mut self, scheduled: bool) -> App {
        self.retention_sweep = scheduled;
        self
    }

    /// What this node does, for the statements the published notice makes.
    pub fn capabilities(&self) -> custodian_policy::render::Capabilities {
        running_capabilities(self.retention_sweep)
    }

    /// The same, sending mail through `mailer`.
    pub fn with_mailer(mut self, mailer: Arc<dyn mail::Mailer>) -> App {
        self.mailer = mailer;
        self
    }

    /// The same, reaching the organisation's own systems through `datasets`.
    pub fn with_datasets(mut self, datasets: datasets::Datasets) -> App {
        self.datasets = Arc::new(datasets);
        self
    }

    /// The same, sweeping the datasets with a retention through `sweepers`.
    pub fn with_sweepers(mut self, sweepers: retention::datasets::Sweepers) -> App {
        self.sweepers = Arc::new(sweepers);
        self
    }

    pub fn policy_version(&self) -> &str {
        &self.policy.compiled.version
    }

    /// Records the running policy version (refused if the same version was
    /// recorded with other content), so later versions can be compared with it.
    pub async fn register_policy(&self) -> Result<(), AppError> {
        let doc = &self.policy.document;
        let op = WriteOp::PutPolicyVersion {
            version: self.policy_version().to_string(),
            effective: doc.policy.effective.to_string(),
            sha256: custodian_vault::crypto::sha256(self.policy_source.as_bytes()),
            source: self.policy_source.to_string(),
            at: collect::micros(time::OffsetDateTime::now_utc()),
        };
        error::written(
            self.store
                .write(Batch {
                    ops: vec![op],
                    audit: vec![],
                    outbox: vec![],
                })
                .await,
        )
        .map(|_| ())
    }

    /// Opens a subject's data key. A key wrapped by a key-encryption key this
    /// node does not hold (rewrapped by another node after a rotation this
    /// node has not been restarted for) is a clear 503, logged, not a 500.
    pub fn data_key(
        &self,
        subject: &uuid::Uuid,
        wrapped: &custodian_vault::crypto::WrappedKey,
    ) -> Result<custodian_vault::crypto::DataKey, AppError> {
        self.keys.unwrap(subject, wrapped).map_err(|e| match e {
            custodian_vault::crypto::CryptoError::UnknownKek(kek) => {
                tracing::error!(
                    kek,
                    "a data key is wrapped by a key-encryption key missing from this node's key file; restart the node with the current key file"
                );
                AppError::KeyUnavailable(kek)
            }
            _ => AppError::Internal(error::Internal::DecryptFailed),
        })
    }

    /// The purposes for which consent given under `version` must be renewed:
    /// those a material change since then touches. A version this store never
    /// ran with cannot be compared, so every purpose needs renewal.
    pub async fn stale_purposes(&self, version: &str) -> Result<Arc<HashSet<String>>, AppError> {
        if version == self.policy_version() {
            return Ok(Arc::new(HashSet::new()));
        }
        if let Some(known) = self.stale.lock().ok().and_then(|m| m.get(version).cloned()) {
            return Ok(known);
        }
        let all = || {
            self.policy
                .document
                .purposes
                .iter()
                .map(|p| p.id.to_string())
                .collect::<HashSet<_>>()
        };
        let purposes = match self.store.policy_source(version).await? {
            Some(source) => match custodian_policy::parse("recorded policy", &source) {
                Ok(old) => custodian_policy::diff::diff(&old, &self.policy.document)
                    .into_iter()
                    .filter(|c| c.class == custodian_policy::diff::Class::Material)
                    .flat_map(|c| c.purposes)
                    .collect(),
                Err(_) => all(),
            },
            None => all(),
        };
        let purposes = Arc::new(purposes);
        if let Ok(mut m) = self.stale.lock() {
            m.insert(version.to_string(), purposes.clone());
        }
        Ok(purposes)
    }
}

impl App {
    /// Audits a refused call and hands back the error to answer with. A
    /// refusal is recorded like any decision (who, what, which purpose and
    /// subject, the reason code), so probing leaves a trace. Should the
    /// audit itself fail, that failure is the answer: nothing is refused
    /// unrecorded.
    pub async fn refuse(
        &self,
        principal: &Principal,
        operation: Operation,
        purpose: Option<&str>,
        subject: Option<uuid::Uuid>,
        error: AppError,
        now: time::OffsetDateTime,
    ) -> AppError {
        let entry = custodian_vault::audit::AuditDraft {
            at: collect::micros(now),
            actor: principal.actor(),
            action: operation.action().into(),
            purpose: purpose.map(str::to_string),
            subject,
            decision: "refused".into(),
            reason: Some(error.code().to_string()),
        };
        match error::written(self.store.write(Batch::audit_only(entry)).await) {
            Ok(_) => error,
            Err(e) => e,
        }
    }

    /// The role check of [`authz::RULES`], audited when it refuses.
    pub async fn authorize(
        &self,
        principal: &Principal,
        operation: Operation,
        now: time::OffsetDateTime,
    ) -> Result<authz::Rule, AppError> {
        match principal.authorize(operation) {
            Ok(rule) => Ok(rule),
            Err(e) => Err(self.refuse(principal, operation, None, None, e, now).await),
        }
    }

    /// The role check and the key's purpose binding, audited when either
    /// refuses; then the purpose must be declared.
    pub async fn authorize_for(
        &self,
        principal: &Principal,
        operation: Operation,
        purpose: &str,
        subject: Option<uuid::Uuid>,
        now: time::OffsetDateTime,
    ) -> Result<custodian_policy::compiled::PurposeIx, AppError> {
        if let Err(e) = principal.authorize_for(operation, purpose) {
            return Err(self
                .refuse(principal, operation, Some(purpose), subject, e, now)
                .await);
        }
        self.policy
            .compiled
            .purpose(purpose)
            .ok_or_else(|| AppError::UnknownPurpose(purpose.to_string()))
    }
}

/// What this build does, for the statements the published notice may make
/// about it: a statement appears only when the capability runs. The
/// retention sweep runs when it is scheduled (`retention_sweep_interval`,
/// on by default); direct change notices are not built yet; the audit chain
/// is keyed with a secret from the key file, so one who can write the
/// database cannot rewrite it unnoticed.
pub fn running_capabilities(retention_sweep: bool) -> custodian_policy::render::Capabilities {
    custodian_policy::render::Capabilities {
        retention_sweep,
        change_notices: false,
        tamper_evident_audit: true,
    }
}

/// Joins refusal reason codes into one audit reason, in a stable order.
pub fn reasons_text(reasons: impl IntoIterator<Item = &'static str>) -> Option<String> {
    let mut all: Vec<&str> = reasons.into_iter().collect();
    all.sort_unstable();
    all.dedup();
    (!all.is_empty()).then(|| all.join(","))
}

#[cfg(test)]
mod redaction_tests {
    /// Types that hold personal data or secrets print without them.
    #[test]
    fn personal_data_and_secrets_never_print() {
        let collect: crate::collect::CollectRequest = serde_json::from_value(serde_json::json!({
            "purpose": "account-management",
            "data": {"email": "ada@example.org", "full_name": "Ada Lovelace"}
        }))
        .unwrap();
        let lookup: crate::read::LookupQuery = serde_json::from_value(
            serde_json::json!({"purpose": "security", "email": "ada@example.org"}),
        )
        .unwrap();
        let key = crate::keys::NewKeyResponse {
            id: "ck_1".into(),
            key: "ck_1_secretsecret".into(),
            role: crate::Role::Admin,
        };
        let read = crate::read::ReadResponse {
            id: uuid::Uuid::nil(),
            purpose: "security".into(),
            policy_version: "1".into(),
            data: [("email".to_string(), "ada@example.org".to_string())].into(),
            refused: vec![],
        };
        let registered = crate::drp::Registered {
            agent_id: "TEST_AGENT".into(),
            token: "drp_secretsecret".into(),
        };
        for printed in [
            format!("{registered:?}"),
            format!("{collect:?}"),
            format!("{lookup:?}"),
            format!("{key:?}"),
            format!("{read:?}"),
        ] {
            assert!(!printed.contains("ada@"), "{printed}");
            assert!(!printed.contains("Lovelace"), "{printed}");
            assert!(!printed.contains("secretsecret"), "{printed}");
        }
    }
}
