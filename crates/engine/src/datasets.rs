//! What a connector does for a rights request, seen from the engine: find
//! the person's rows in one of the organisation's own systems, export them
//! (streamed), erase them by each field's declared strategy, correct them
//! (rectification) and mark them restricted. The connectors crate
//! implements [`Dataset`] per system; the engine runs each as a task of its
//! own for every request that reaches the datasets.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use tokio::sync::mpsc;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The person's identities, by the vault field they correspond to
/// (`email`, `phone`, `customer_id`, ...): every value known for each.
pub type Identities = BTreeMap<String, BTreeSet<String>>;

/// What an export sends, in order: a table's header, then its rows.
#[derive(Debug, Clone, PartialEq)]
pub enum ExportItem {
    /// The rows that follow come from `table`; `columns` are (field, category).
    Table {
        table: String,
        columns: Vec<(String, String)>,
    },
    /// One row, its values in the order of the columns (as text, or null).
    Row(Vec<Option<String>>),
}

/// A field kept through an erasure, and its ground.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptField {
    /// `table.field` (or the key pattern, or the resource).
    pub field: String,
    /// The purpose whose legal ground keeps it.
    pub purpose: String,
    /// The ground in words, with its retention.
    pub ground: String,
}

/// What an erasure did in one system.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Erased {
    /// Rows (or keys) changed, per table (or pattern), in the order done.
    pub changed: Vec<(String, u64)>,
    pub kept: Vec<KeptField>,
}

/// A connector's failure. `detail` never holds a credential or a value of
/// the person: connectors describe the failure, not the URL or the row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct ConnectorError {
    /// Worth retrying (the system is away, a deadlock, a timeout).
    pub transient: bool,
    pub detail: String,
}

impl ConnectorError {
    pub fn transient(detail: impl Into<String>) -> Self {
        ConnectorError {
            transient: true,
            detail: detail.into(),
        }
    }

    pub fn permanent(detail: impl Into<String>) -> Self {
        ConnectorError {
            transient: false,
            detail: detail.into(),
        }
    }
}

/// One declared dataset, connected.
pub trait Dataset: Send + Sync {
    /// The dataset's id in the policy.
    fn id(&self) -> &str;

    /// The kind of system (`postgres`, `mysql`, `redis`, `http`).
    fn system(&self) -> &'static str;

    /// How many rows (or keys) hold the person.
    fn locate<'a>(&'a self, who: &'a Identities) -> BoxFuture<'a, Result<u64, ConnectorError>>;

    /// Sends every row about the person to `out` as it is read (nothing is
    /// gathered in memory); returns how many rows were sent.
    fn export<'a>(
        &'a self,
        who: &'a Identities,
        out: mpsc::Sender<ExportItem>,
    ) -> BoxFuture<'a, Result<u64, ConnectorError>>;

    /// Applies each field's erasure strategy to the person's rows, in one
    /// transaction where the system has them; running it again changes
    /// nothing more.
    fn erase<'a>(&'a self, who: &'a Identities) -> BoxFuture<'a, Result<Erased, ConnectorError>>;

    /// Writes the corrected values (by vault field) into the fields that
    /// hold them, set-based, in one transaction where the system has them;
    /// running it again changes nothing more. `who` holds the old values
    /// and the new. What the connector cannot correct is listed by hand.
    fn rectify<'a>(
        &'a self,
        who: &'a Identities,
        corrections: &'a Corrections,
    ) -> BoxFuture<'a, Result<Applied, ConnectorError>> {
        let _ = (who, corrections);
        Box::pin(async move { Ok(Applied::unsupported(self.system(), "rectification")) })
    }

    /// Sets (`restricted`) or clears the declared restriction mark on the
    /// person's rows; what has no mark is listed, to act on by hand.
    fn restrict<'a>(
        &'a self,
        who: &'a Identities,
        restricted: bool,
    ) -> BoxFuture<'a, Result<Applied, ConnectorError>> {
        let _ = (who, restricted);
        Box::pin(async move { Ok(Applied::unsupported(self.system(), "restriction")) })
    }
}

/// A rectification's corrected values, by vault field.
pub type Corrections = BTreeMap<String, String>;

/// Something a connector could not do for a request, and why: staff act
/// on it by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByHand {
    /// The table, key pattern or resource (or the whole dataset: empty).
    pub what: String,
    pub why: String,
}

/// What a rectification or a restriction did in one system.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Rows (or keys, or calls) changed, per table (or pattern, or resource).
    pub changed: Vec<(String, u64)>,
    pub by_hand: Vec<ByHand>,
}

impl Applied {
    /// Nothing done: the connector does not carry out `what`.
    pub fn unsupported(system: &str, what: &str) -> Applied {
        Applied {
            changed: Vec::new(),
            by_hand: vec![ByHand {
                what: String::new(),
                why: format!("the {system} connector does not carry out {what}: act by hand"),
            }],
        }
    }
}

/// The connected datasets, by id.
pub type Datasets = BTreeMap<String, std::sync::Arc<dyn Dataset>>;
