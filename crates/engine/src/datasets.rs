//! What a connector does for a rights request, seen from the engine: find
//! the person's rows in one of the organisation's own systems, export them
//! (streamed), and erase them by each field's declared strategy. The
//! connectors crate implements [`Dataset`] per system; the engine runs each
//! as a task of its own for every access and erasure request.

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
}

/// The connected datasets, by id.
pub type Datasets = BTreeMap<String, std::sync::Arc<dyn Dataset>>;
