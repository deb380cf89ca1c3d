//! The use cases, apart from HTTP: collection, reads, disclosures, keys and
//! the audit. Each takes a principal (who asks) and returns data or an
//! [`AppError`]; the HTTP layer only translates.

pub mod auth;
pub mod collect;
pub mod disclose;
pub mod error;
pub mod keys;
pub mod read;

pub use auth::{Principal, Role};
pub use error::AppError;

use custodian_policy::LoadedPolicy;
use custodian_vault::crypto::Keyring;
use custodian_vault::store::Store;
use std::sync::Arc;

/// Everything the use cases need, shared by every request.
#[derive(Clone)]
pub struct App {
    pub store: Store,
    pub keys: Arc<Keyring>,
    pub policy: Arc<LoadedPolicy>,
}

impl App {
    pub fn new(store: Store, keys: Keyring, policy: LoadedPolicy) -> App {
        App {
            store,
            keys: Arc::new(keys),
            policy: Arc::new(policy),
        }
    }

    pub fn policy_version(&self) -> &str {
        &self.policy.compiled.version
    }
}

/// Joins refusal reason codes into one audit reason, in a stable order.
pub fn reasons_text(reasons: impl IntoIterator<Item = &'static str>) -> Option<String> {
    let mut all: Vec<&str> = reasons.into_iter().collect();
    all.sort_unstable();
    all.dedup();
    (!all.is_empty()).then(|| all.join(","))
}
