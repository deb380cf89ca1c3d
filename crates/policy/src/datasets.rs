//! Datasets: what the organisation's own systems (a shop database, a Redis
//! keyspace, an API) hold about people, declared in the policy so that
//! rights requests reach them. A dataset names its connection only; the URL
//! and any secret come from configuration or the environment, never from
//! the policy file.
//!
//! ```toml
//! [[datasets]]
//! id = "shop"
//! system = "postgres"
//! connection = "shop"          # CUSTODIAN_CONNECTION_SHOP holds the URL
//!
//! [[datasets.tables]]
//! name = "customers"
//! fields = [
//!   { name = "id", category = "account", identity = "customer_id" },
//!   { name = "email", category = "email", identity = "email", erase = "set-null" },
//! ]
//!
//! [[datasets.tables]]
//! name = "orders"
//! fields = [
//!   { name = "customer_id", category = "orders", references = "customers.id", erase = "keep", ground = "statutory-accounting" },
//! ]
//! ```

pub use crate::datasets_retention::Expire;
use crate::diagnostic::Diagnostic;
use crate::located::At;
use crate::model::Policy;
use crate::terms::LegalBasis;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The kind of system a dataset lives in; each has a connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum System {
    Postgres,
    /// MariaDB or MySQL.
    Mysql,
    Redis,
    Http,
}

impl System {
    pub fn as_str(self) -> &'static str {
        match self {
            System::Postgres => "postgres",
            System::Mysql => "mysql",
            System::Redis => "redis",
            System::Http => "http",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    pub id: At<String>,
    pub system: At<System>,
    /// The connection's name: its URL comes from the environment variable
    /// `CUSTODIAN_CONNECTION_<NAME>` (upper case, `-` as `_`).
    pub connection: At<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Tables (PostgreSQL, MariaDB).
    #[serde(default)]
    pub tables: Vec<Table>,
    /// Key patterns (Redis).
    #[serde(default)]
    pub keys: Vec<KeyPattern>,
    /// API resources (HTTP).
    #[serde(default)]
    pub resources: Vec<Resource>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    pub name: At<String>,
    /// The table's retention: the rule and the column its clock runs from
    /// (see `datasets_retention`).
    #[serde(default)]
    pub expire: Option<Expire>,
    pub fields: Vec<DatasetField>,
    /// How the table marks a person's rows restricted (Art. 18); a table
    /// without it is listed in a restriction's answer, to act on by hand.
    #[serde(default)]
    pub restrict: Option<RestrictMark>,
}

/// A restriction mark: `column` is set to `value` while the person's
/// processing is restricted, and to `lifted` once it is lifted (for a
/// boolean value its opposite, otherwise null, when not given).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RestrictMark {
    pub column: At<String>,
    #[serde(default = "restricted_true")]
    pub value: At<MarkValue>,
    #[serde(default)]
    pub lifted: Option<At<MarkValue>>,
}

fn restricted_true() -> At<MarkValue> {
    At::new(MarkValue::Bool(true))
}

/// A value a restriction mark is set to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum MarkValue {
    Bool(bool),
    Int(i64),
    Text(String),
}

impl RestrictMark {
    /// The value written for `restricted` (None: null).
    pub fn value_for(&self, restricted: bool) -> Option<MarkValue> {
        if restricted {
            return Some((*self.value).clone());
        }
        match (&self.lifted, &*self.value) {
            (Some(l), _) => Some((**l).clone()),
            (None, MarkValue::Bool(b)) => Some(MarkValue::Bool(!b)),
            (None, _) => None,
        }
    }
}

/// A Redis key pattern: `{identity}` placeholders are filled with the
/// person's identities; `*` matches anything (the keys are then scanned).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPattern {
    pub pattern: At<String>,
    pub kind: At<KeyKind>,
    /// The category of a string key's value, or of hash fields not listed.
    pub category: At<String>,
    /// What erasure does to the whole key (string keys), or to hash fields
    /// not listed in `fields`.
    #[serde(default)]
    pub erase: At<Strategy>,
    #[serde(default)]
    pub replacement: Option<At<String>>,
    #[serde(default)]
    pub ground: Option<At<String>>,
    #[serde(default)]
    pub retention: Option<At<String>>,
    /// Hash fields with their own category or strategy.
    #[serde(default)]
    pub fields: Vec<DatasetField>,
    /// The keys' retention: the rule and the hash field (unix seconds) its
    /// clock runs from (see `datasets_retention`).
    #[serde(default)]
    pub expire: Option<Expire>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyKind {
    String,
    Hash,
}

/// An API resource: a method and URL template for each of find, export and
/// erase; `{identity}` placeholders are filled (URL-encoded).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    pub name: At<String>,
    /// The identity the URLs are filled with.
    pub identity: At<String>,
    pub category: At<String>,
    /// Whether the system knows the person: 2xx yes, 404 no. Without it,
    /// the export's 404 says no.
    #[serde(default)]
    pub find: Option<Endpoint>,
    pub export: Endpoint,
    #[serde(default)]
    pub erase: Option<Endpoint>,
    /// Sends the corrected values (a JSON object, by vault field) to the
    /// person's record; without it a rectification lists the resource to
    /// correct by hand.
    #[serde(default)]
    pub rectify: Option<Endpoint>,
    /// Marks the person's processing restricted, and `lift` lifts it;
    /// declared together or not at all.
    #[serde(default)]
    pub restrict: Option<Endpoint>,
    #[serde(default)]
    pub lift: Option<Endpoint>,
    /// What the system keeps after an erasure, and on which ground.
    #[serde(default)]
    pub ground: Option<At<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    #[serde(default = "get")]
    pub method: At<String>,
    pub url: At<String>,
}

fn get() -> At<String> {
    At::new("GET".to_string())
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetField {
    pub name: At<String>,
    /// A data category of the policy (or `category.field`).
    pub category: At<String>,
    /// The person's identity this field holds: a field of the vault
    /// (`email`, `phone`, `customer_id`, ...). Access starts from these.
    #[serde(default)]
    pub identity: Option<At<String>>,
    /// `table.field` this field refers to (a foreign key).
    #[serde(default)]
    pub references: Option<At<String>>,
    /// The vault field whose corrections this field takes (an identity
    /// field takes its identity's without saying so).
    #[serde(default)]
    pub rectify: Option<At<String>>,
    #[serde(default)]
    pub erase: At<Strategy>,
    /// For `replace`: the fixed value written instead.
    #[serde(default)]
    pub replacement: Option<At<String>>,
    /// For `keep`: the purpose of the policy whose legal ground keeps it.
    #[serde(default)]
    pub ground: Option<At<String>>,
    /// For `keep`: the retention rule (the ground's own when not given).
    #[serde(default)]
    pub retention: Option<At<String>>,
}

/// What erasure does to a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// The whole row (or key) goes.
    DeleteRow,
    /// The field is set to null (the hash field removed).
    #[default]
    SetNull,
    /// The field is set to the fixed `replacement`.
    Replace,
    /// The field is replaced by a keyed hash of its value (HMAC-SHA256
    /// under the connection's key), so that rows stay linkable but no
    /// longer identify the person.
    Hash,
    /// Kept, under `ground` with its retention rule (Art. 17(3)).
    Keep,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::DeleteRow => "delete-row",
            Strategy::SetNull => "set-null",
            Strategy::Replace => "replace",
            Strategy::Hash => "hash",
            Strategy::Keep => "keep",
        }
    }
}

impl DatasetField {
    /// The vault field a rectification of which corrects this field.
    pub fn rectified_by(&self) -> Option<&str> {
        self.rectify
            .as_deref()
            .or(self.identity.as_deref())
            .map(String::as_str)
    }
}

/// `table.field`, split.
pub fn split_reference(reference: &str) -> Option<(&str, &str)> {
    reference
        .split_once('.')
        .filter(|(t, f)| !t.is_empty() && !f.is_empty())
}

/// The ground a kept field is kept on, in words: the purpose's obligation
/// and its retention rule.
pub fn ground_text(policy: &Policy, ground: &str, retention: Option<&str>) -> Option<String> {
    let purpose = policy.purposes.iter().find(|p| p.id.as_str() == ground)?;
    let rule_id = retention.or(purpose.retention.as_deref().map(String::as_str))?;
    let rule = policy.retention.iter().find(|r| r.id.as_str() == rule_id)?;
    let why = rule
        .legal_obligation
        .clone()
        .or_else(|| purpose.obligation.as_deref().cloned())
        .unwrap_or_else(|| purpose.name.clone());
    Some(format!(
        "{why} (kept {} {})",
        rule.duration.as_str(),
        rule.from.as_str()
    ))
}

/// Checks every dataset of `policy`; faults go to `out`.
pub fn validate(policy: &Policy, out: &mut Vec<Diagnostic>) {
    let mut ids = BTreeSet::new();
    for d in &policy.datasets {
        if d.id.as_str() == "vault" || d.id.trim().is_empty() {
            out.push(Diagnostic::new(
                d.id.span(),
                format!("dataset id `{}` is reserved or empty", *d.id),
                "`vault` names Custodian's own store; give the dataset another id",
            ));
        }
        if !ids.insert(d.id.as_str()) {
            out.push(Diagnostic::new(
                d.id.span(),
                format!("duplicate dataset id `{}`", *d.id),
                "each dataset needs its own id; rename one of them",
            ));
        }
        if d.connection.trim().is_empty()
            || !d
                .connection
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            || d.connection.contains("://")
        {
            out.push(Diagnostic::new(
                d.connection.span(),
                format!("dataset `{}` names its connection as a URL or an odd name", *d.id),
                "name the connection (letters, digits, - and _); its URL comes from CUSTODIAN_CONNECTION_<NAME>, never from the policy",
            ));
        }
        let (wrong, right): (usize, &str) = match *d.system {
            System::Postgres | System::Mysql => (d.keys.len() + d.resources.len(), "tables"),
            System::Redis => (d.tables.len() + d.resources.len(), "keys"),
            System::Http => (d.tables.len() + d.keys.len(), "resources"),
        };
        if wrong > 0 {
            out.push(Diagnostic::new(
                d.system.span(),
                format!(
                    "dataset `{}` is a {} system but declares other than {right}",
                    *d.id,
                    d.system.as_str()
                ),
                format!("declare [[datasets.{right}]] only"),
            ));
        }
        tables(policy, d, out);
        crate::datasets_rights::validate(policy, d, out);
        crate::datasets_retention::validate(policy, d, out);
        for k in &d.keys {
            category(policy, &k.category, out);
            strategy(
                policy,
                &k.erase,
                k.replacement.as_ref(),
                k.ground.as_ref(),
                k.retention.as_ref(),
                &k.pattern,
                out,
            );
            for f in &k.fields {
                field(policy, f, out);
            }
            for placeholder in placeholders(&k.pattern) {
                identity(policy, &k.pattern, placeholder, out);
            }
            if placeholders(&k.pattern).is_empty() {
                out.push(Diagnostic::new(
                    k.pattern.span(),
                    format!("key pattern `{}` names no identity", *k.pattern),
                    "put the person's identity in the pattern, such as \"session:{email}:*\"",
                ));
            }
        }
        for r in &d.resources {
            category(policy, &r.category, out);
            identity(policy, &r.identity, r.identity.as_str(), out);
            if let Some(g) = &r.ground {
                ground(policy, g, None, out);
            }
            if r.erase.is_none() && r.ground.is_none() {
                out.push(Diagnostic::new(
                    r.name.span(),
                    format!("resource `{}` has no erase endpoint and no ground to keep it", *r.name),
                    "add `erase = { method = \"DELETE\", url = \"...\" }`, or `ground = \"...\"` (Art. 17(3))",
                ));
            }
            for e in [r.find.as_ref(), Some(&r.export), r.erase.as_ref()]
                .into_iter()
                .flatten()
            {
                endpoint(e, &r.identity, out);
            }
        }
    }
}

pub(crate) fn endpoint(e: &Endpoint, identity: &str, out: &mut Vec<Diagnostic>) {
    if !matches!(
        e.method.to_ascii_uppercase().as_str(),
        "GET" | "POST" | "PUT" | "PATCH" | "DELETE"
    ) {
        out.push(Diagnostic::new(
            e.method.span(),
            format!("unknown HTTP method `{}`", *e.method),
            "use GET, POST, PUT, PATCH or DELETE",
        ));
    }
    let names = placeholders(&e.url);
    if names.is_empty() || names.iter().any(|n| *n != identity) {
        out.push(Diagnostic::new(
            e.url.span(),
            format!(
                "URL template `{}` must name the identity `{{{identity}}}` and nothing else",
                *e.url
            ),
            "write the resource's identity in braces, such as \"/users/{email}\"",
        ));
    }
}

/// The `{name}` placeholders of a pattern or template.
pub fn placeholders(pattern: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        let after = rest.get(open + 1..).unwrap_or("");
        let Some(close) = after.find('}') else { break };
        out.push(after.get(..close).unwrap_or(""));
        rest = after.get(close + 1..).unwrap_or("");
    }
    out
}

fn tables(policy: &Policy, d: &Dataset, out: &mut Vec<Diagnostic>) {
    let mut names: BTreeMap<&str, &Table> = BTreeMap::new();
    for t in &d.tables {
        if names.insert(t.name.as_str(), t).is_some() {
            out.push(Diagnostic::new(
                t.name.span(),
                format!(
                    "table `{}` is declared twice in dataset `{}`",
                    *t.name, *d.id
                ),
                "declare each table once",
            ));
        }
    }
    for t in &d.tables {
        let mut seen = BTreeSet::new();
        for f in &t.fields {
            if !seen.insert(f.name.as_str()) {
                out.push(Diagnostic::new(
                    f.name.span(),
                    format!(
                        "field `{}` is declared twice in table `{}`",
                        *f.name, *t.name
                    ),
                    "declare each field once",
                ));
            }
            field(policy, f, out);
            if let Some(r) = &f.references {
                let target = split_reference(r);
                let found = target.and_then(|(table, column)| {
                    names
                        .get(table)
                        .map(|t| t.fields.iter().any(|f| f.name.as_str() == column))
                });
                match found {
                    Some(true) => {}
                    Some(false) | None => out.push(Diagnostic::new(
                        r.span(),
                        format!(
                            "`{}.{}` refers to `{}`, which is not a declared table and field of dataset `{}`",
                            *t.name, *f.name, **r, *d.id
                        ),
                        format!(
                            "declare the table and field it refers to; tables: {}",
                            names.keys().copied().collect::<Vec<_>>().join(", ")
                        ),
                    )),
                }
                // A deleted parent row cannot stay referenced by a kept child.
                if let Some((table, _)) = target {
                    let parent_deleted = names
                        .get(table)
                        .is_some_and(|p| p.fields.iter().any(|f| *f.erase == Strategy::DeleteRow));
                    let child_stays = !t.fields.iter().any(|f| *f.erase == Strategy::DeleteRow)
                        && matches!(
                            *f.erase,
                            Strategy::Keep | Strategy::Hash | Strategy::Replace
                        );
                    if parent_deleted && child_stays {
                        out.push(Diagnostic::new(
                            f.erase.span(),
                            format!(
                                "`{}.{}` stays after erasure but refers to rows of `{table}`, which erasure deletes",
                                *t.name, *f.name
                            ),
                            "erase the reference with `set-null` or delete the referring row too",
                        ));
                    }
                }
            }
        }
        let deletes = t.fields.iter().any(|f| *f.erase == Strategy::DeleteRow);
        if deletes {
            if let Some(kept) = t.fields.iter().find(|f| *f.erase == Strategy::Keep) {
                out.push(Diagnostic::new(
                    kept.erase.span(),
                    format!(
                        "`{}.{}` is kept, but another field of the table deletes the row",
                        *t.name, *kept.name
                    ),
                    "keep the row (erase the other fields one by one) or do not keep this field",
                ));
            }
        }
    }
}

fn field(policy: &Policy, f: &DatasetField, out: &mut Vec<Diagnostic>) {
    category(policy, &f.category, out);
    if let Some(id) = &f.identity {
        identity(policy, id, id.as_str(), out);
    }
    strategy(
        policy,
        &f.erase,
        f.replacement.as_ref(),
        f.ground.as_ref(),
        f.retention.as_ref(),
        &f.name,
        out,
    );
}

fn category(policy: &Policy, reference: &At<String>, out: &mut Vec<Diagnostic>) {
    let (cat, fld) = match reference.split_once('.') {
        Some((c, f)) => (c, Some(f)),
        None => (reference.as_str(), None),
    };
    let found = policy.categories.iter().find(|c| c.id.as_str() == cat);
    let ok = match (found, fld) {
        (Some(c), Some(f)) => c.fields.iter().any(|x| x.name.as_str() == f),
        (Some(_), None) => true,
        (None, _) => false,
    };
    if !ok {
        let known: Vec<&str> = policy.categories.iter().map(|c| c.id.as_str()).collect();
        out.push(Diagnostic::new(
            reference.span(),
            format!("unknown data category `{}`", **reference),
            format!("expected one of: {}", known.join(", ")),
        ));
    }
}

fn identity(policy: &Policy, at: &At<String>, name: &str, out: &mut Vec<Diagnostic>) {
    let known = policy
        .categories
        .iter()
        .flat_map(|c| c.fields.iter())
        .any(|f| f.name.as_str() == name);
    if !known {
        out.push(Diagnostic::new(
            at.span(),
            format!("identity `{name}` is not a field of the vault"),
            "name a field declared under [[categories]] (email, phone, a customer id, ...)",
        ));
    }
}

fn strategy(
    policy: &Policy,
    erase: &At<Strategy>,
    replacement: Option<&At<String>>,
    ground_of: Option<&At<String>>,
    retention: Option<&At<String>>,
    what: &At<String>,
    out: &mut Vec<Diagnostic>,
) {
    match (**erase, ground_of) {
        (Strategy::Keep, None) => out.push(Diagnostic::new(
            erase.span(),
            format!("`{}` is kept without a ground", **what),
            "name the purpose whose legal ground keeps it: `ground = \"...\"` (Art. 17(3))",
        )),
        (Strategy::Keep, Some(g)) => ground(policy, g, retention, out),
        (_, Some(g)) => out.push(Diagnostic::new(
            g.span(),
            format!("`{}` names a ground but is not kept", **what),
            "use `erase = \"keep\"` or remove the ground",
        )),
        _ => {}
    }
    match (**erase, replacement) {
        (Strategy::Replace, None) => out.push(Diagnostic::new(
            erase.span(),
            format!("`{}` is replaced, but by nothing", **what),
            "add `replacement = \"...\"`",
        )),
        (Strategy::Replace, Some(_)) | (_, None) => {}
        (_, Some(r)) => out.push(Diagnostic::new(
            r.span(),
            format!("`{}` names a replacement but is not replaced", **what),
            "use `erase = \"replace\"` or remove the replacement",
        )),
    }
}

fn ground(
    policy: &Policy,
    ground: &At<String>,
    retention: Option<&At<String>>,
    out: &mut Vec<Diagnostic>,
) {
    let Some(purpose) = policy
        .purposes
        .iter()
        .find(|p| p.id.as_str() == ground.as_str())
    else {
        out.push(Diagnostic::new(
            ground.span(),
            format!("ground `{}` is not a purpose of the policy", **ground),
            "name a purpose with a legal-obligation basis (or a retention rule that states one)",
        ));
        return;
    };
    if let Some(r) = retention {
        if !policy.retention.iter().any(|x| x.id.as_str() == r.as_str()) {
            out.push(Diagnostic::new(
                r.span(),
                format!("unknown retention rule `{}`", **r),
                "name a [[retention]] rule",
            ));
            return;
        }
    }
    let rule_id = retention
        .map(|r| r.as_str())
        .or(purpose.retention.as_deref().map(String::as_str));
    let rule = rule_id.and_then(|id| policy.retention.iter().find(|r| r.id.as_str() == id));
    let obligation = *purpose.basis == LegalBasis::LegalObligation
        || rule.is_some_and(|r| r.legal_obligation.is_some());
    if rule.is_none() || !obligation {
        out.push(Diagnostic::new(
            ground.span(),
            format!(
                "purpose `{}` is no ground to keep data through an erasure",
                **ground
            ),
            "Art. 17(3): name a legal-obligation purpose with a retention rule (or give `retention` a rule that states the obligation)",
        ));
    }
}

#[cfg(test)]
#[path = "datasets_tests.rs"]
mod tests;
