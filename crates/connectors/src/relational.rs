//! What PostgreSQL and MariaDB share: from a dataset's tables and the
//! person's identities, the statements that find, export and erase the
//! person's rows. A table is reached through its identity fields and
//! through the references it makes to tables already reached; erasure runs
//! referring tables before the tables they refer to, so foreign keys hold
//! and every table is still found through its parents. Each statement is
//! set-based: one per table, whatever the number of rows.

use custodian_engine::datasets::{Identities, KeptField};
use custodian_policy::datasets::{Dataset, DatasetField, Strategy, Table, split_reference};
use custodian_policy::model::Policy;
use std::collections::BTreeSet;

/// A statement's parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    /// One value, typed by the server after the column it meets.
    Text(String),
    /// A list of values, for `= ANY(...)` (PostgreSQL only).
    List(Vec<String>),
    Bytes(Vec<u8>),
}

/// How one SQL dialect writes what differs.
pub trait Dialect {
    fn quote(&self, ident: &str) -> String;
    /// The placeholder of parameter number `n` (1-based).
    fn placeholder(&self, n: usize) -> String;
    /// `column` is one of `values`: pushes the parameters, returns the SQL.
    fn one_of(&self, column: &str, values: &[String], params: &mut Vec<Param>) -> String;
    /// The column as text, for export.
    fn as_text(&self, column: &str) -> String;
    /// `'h:'` and the hex HMAC-SHA256 of the column's text; pushes the
    /// inner and outer padded keys as parameters, in the order its SQL
    /// names them.
    fn hmac(&self, column: &str, ipad: &[u8], opad: &[u8], params: &mut Vec<Param>) -> String;
    /// The column differs from the parameter (nulls compared as values).
    fn differs(&self, column: &str, param: &str) -> String;
    /// What `UPDATE` names: the (quoted) table, by default.
    fn update_target(&self, table: &str) -> String {
        table.to_string()
    }
    /// The head of a `DELETE` of the (quoted) table's rows.
    fn delete_from(&self, table: &str) -> String {
        format!("DELETE FROM {table}")
    }
}

/// A statement and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub table: String,
    pub sql: String,
    pub params: Vec<Param>,
    /// For exports: (field, category) of each selected column.
    pub columns: Vec<(String, String)>,
}

/// The prefix of a hashed value: a value that has it is hashed already.
pub const HASHED: &str = "h:";

/// The HMAC key, padded as HMAC pads it (RFC 2104), so that SQL with only
/// SHA-256 can compute HMAC-SHA256.
pub fn padded_keys(key: &[u8; 32]) -> (Vec<u8>, Vec<u8>) {
    let mut ipad = vec![0x36u8; 64];
    let mut opad = vec![0x5cu8; 64];
    for (i, k) in key.iter().enumerate() {
        if let Some(b) = ipad.get_mut(i) {
            *b ^= k;
        }
        if let Some(b) = opad.get_mut(i) {
            *b ^= k;
        }
    }
    (ipad, opad)
}

/// The value a hashed field is given, computed here (for Redis and tests).
pub fn hashed_value(key: &[u8; 32], value: &str) -> String {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let tag = ring::hmac::sign(&k, value.as_bytes());
    let mut out = String::from(HASHED);
    for b in tag.as_ref() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

pub struct Planner<'a, D: Dialect> {
    pub dataset: &'a Dataset,
    pub dialect: D,
    pub who: &'a Identities,
}

impl<'a, D: Dialect> Planner<'a, D> {
    fn table(&self, name: &str) -> Option<&'a Table> {
        self.dataset.tables.iter().find(|t| t.name.as_str() == name)
    }

    /// The condition that selects the person's rows of `table`, or None
    /// when nothing leads to it. `seen` stops cycles of references.
    pub(crate) fn condition(
        &self,
        table: &Table,
        params: &mut Vec<Param>,
        seen: &mut Vec<String>,
    ) -> Option<String> {
        if seen.iter().any(|s| s == table.name.as_str()) {
            return None;
        }
        seen.push(table.name.to_string());
        let mut parts = Vec::new();
        for f in &table.fields {
            if let Some(identity) = &f.identity {
                let values: Vec<String> = self
                    .who
                    .get(identity.as_str())
                    .map(|v| v.iter().cloned().collect())
                    .unwrap_or_default();
                if !values.is_empty() {
                    let column = self.dialect.quote(&f.name);
                    parts.push(self.dialect.one_of(&column, &values, params));
                }
            }
            let Some((parent, key)) = f.references.as_deref().and_then(|r| split_reference(r))
            else {
                continue;
            };
            let Some(parent) = self.table(parent) else {
                continue;
            };
            let mut sub_params = params.clone();
            if let Some(inner) = self.condition(parent, &mut sub_params, seen) {
                *params = sub_params;
                parts.push(format!(
                    "{} IN (SELECT {} FROM {} WHERE {inner})",
                    self.dialect.quote(&f.name),
                    self.dialect.quote(key),
                    self.dialect.quote(&parent.name)
                ));
            }
        }
        seen.pop();
        if parts.is_empty() {
            None
        } else {
            Some(format!("({})", parts.join(" OR ")))
        }
    }

    /// Tables in erasure order: every table before the tables it refers to.
    pub fn erase_order(&self) -> Vec<&'a Table> {
        fn visit<'t>(
            t: &'t Table,
            all: &'t [Table],
            done: &mut BTreeSet<String>,
            active: &mut BTreeSet<String>,
            out: &mut Vec<&'t Table>,
        ) {
            if done.contains(t.name.as_str()) || !active.insert(t.name.to_string()) {
                return;
            }
            // Referrers of `t` go first.
            for other in all {
                let refers = other.fields.iter().any(|f| {
                    f.references
                        .as_deref()
                        .and_then(|r| split_reference(r))
                        .is_some_and(|(p, _)| p == t.name.as_str())
                });
                if refers && other.name.as_str() != t.name.as_str() {
                    visit(other, all, done, active, out);
                }
            }
            active.remove(t.name.as_str());
            if done.insert(t.name.to_string()) {
                out.push(t);
            }
        }
        let mut done = BTreeSet::new();
        let mut active = BTreeSet::new();
        let mut out = Vec::new();
        for t in &self.dataset.tables {
            visit(t, &self.dataset.tables, &mut done, &mut active, &mut out);
        }
        out
    }

    /// One `SELECT count(*)` per table reached.
    pub fn locate(&self) -> Vec<Statement> {
        self.dataset
            .tables
            .iter()
            .filter_map(|t| {
                let mut params = Vec::new();
                let cond = self.condition(t, &mut params, &mut Vec::new())?;
                Some(Statement {
                    table: t.name.to_string(),
                    sql: format!(
                        "SELECT count(*) FROM {} WHERE {cond}",
                        self.dialect.quote(&t.name)
                    ),
                    params,
                    columns: Vec::new(),
                })
            })
            .collect()
    }

    /// One `SELECT` of the declared fields per table reached.
    pub fn export(&self) -> Vec<Statement> {
        self.dataset
            .tables
            .iter()
            .filter_map(|t| {
                let mut params = Vec::new();
                let cond = self.condition(t, &mut params, &mut Vec::new())?;
                let select: Vec<String> = t
                    .fields
                    .iter()
                    .map(|f| self.dialect.as_text(&self.dialect.quote(&f.name)))
                    .collect();
                Some(Statement {
                    table: t.name.to_string(),
                    sql: format!(
                        "SELECT {} FROM {} WHERE {cond}",
                        select.join(", "),
                        self.dialect.quote(&t.name)
                    ),
                    params,
                    columns: t
                        .fields
                        .iter()
                        .map(|f| (f.name.to_string(), f.category.to_string()))
                        .collect(),
                })
            })
            .collect()
    }

    /// The erasure: one `DELETE` or `UPDATE` per table, in erasure order.
    /// Each `UPDATE` touches only rows that still hold something to erase,
    /// so a second run changes nothing.
    pub fn erase(&self, hash_key: &[u8; 32]) -> Vec<Statement> {
        let (ipad, opad) = padded_keys(hash_key);
        // Keys other tables refer to stay (unless their row goes): they
        // identify rows, and changing them would break the references.
        let keys = referenced_keys(self.dataset);
        let mut out = Vec::new();
        for t in self.erase_order() {
            let table = self.dialect.quote(&t.name);
            if t.fields.iter().any(|f| *f.erase == Strategy::DeleteRow) {
                let mut params = Vec::new();
                let Some(cond) = self.condition(t, &mut params, &mut Vec::new()) else {
                    continue;
                };
                out.push(Statement {
                    table: t.name.to_string(),
                    sql: format!("{} WHERE {cond}", self.dialect.delete_from(&table)),
                    params,
                    columns: Vec::new(),
                });
                continue;
            }
            // Parameters go in the order the SQL names them (MariaDB's
            // are positional): the assignments, the condition, the guards.
            let erased = erased_in_place(t, &keys);
            if erased.is_empty() {
                continue;
            }
            let mut params = Vec::new();
            let sets = erase_assignments(&self.dialect, &erased, (&ipad, &opad), &mut params);
            let Some(cond) = self.condition(t, &mut params, &mut Vec::new()) else {
                continue;
            };
            let guards = still_held(&self.dialect, &erased, &mut params);
            out.push(Statement {
                table: t.name.to_string(),
                sql: format!(
                    "UPDATE {} SET {} WHERE {cond} AND ({})",
                    self.dialect.update_target(&table),
                    sets.join(", "),
                    guards.join(" OR ")
                ),
                params,
                columns: Vec::new(),
            });
        }
        out
    }
}

/// The columns other tables refer to, as (table, column): an erasure in
/// place never changes them, or the references would break.
pub(crate) fn referenced_keys(dataset: &Dataset) -> BTreeSet<(&str, &str)> {
    dataset
        .tables
        .iter()
        .flat_map(|t| t.fields.iter())
        .filter_map(|f| f.references.as_deref().and_then(|r| split_reference(r)))
        .collect()
}

/// The fields of `t` an erasure changes in place (set to null, replaced,
/// or a keyed hash), the referenced keys left out.
pub(crate) fn erased_in_place<'a>(
    t: &'a Table,
    keys: &BTreeSet<(&str, &str)>,
) -> Vec<&'a DatasetField> {
    t.fields
        .iter()
        .filter(|f| !keys.contains(&(t.name.as_str(), f.name.as_str())))
        .filter(|f| {
            matches!(
                *f.erase,
                Strategy::SetNull | Strategy::Replace | Strategy::Hash
            )
        })
        .collect()
}

/// The `SET` assignments that erase `erased` in place, each field by its
/// strategy, their parameters pushed in the order the SQL names them
/// (MariaDB's placeholders are positional). A hashed value is not hashed
/// again, so a rerun leaves it as it is.
pub(crate) fn erase_assignments<D: Dialect>(
    dialect: &D,
    erased: &[&DatasetField],
    (ipad, opad): (&[u8], &[u8]),
    params: &mut Vec<Param>,
) -> Vec<String> {
    let mut sets = Vec::new();
    for f in erased {
        let column = dialect.quote(&f.name);
        match *f.erase {
            Strategy::Replace => {
                let value = f.replacement.as_deref().cloned().unwrap_or_default();
                params.push(Param::Text(value));
                let p = dialect.placeholder(params.len());
                sets.push(format!("{column} = {p}"));
            }
            Strategy::Hash => {
                let text = dialect.as_text(&column);
                let hmac = dialect.hmac(&column, ipad, opad, params);
                sets.push(format!(
                    "{column} = CASE WHEN {text} LIKE '{HASHED}%' THEN {column} ELSE {hmac} END"
                ));
            }
            _ => sets.push(format!("{column} = NULL")),
        }
    }
    sets
}

/// For each field of `erased`, the condition that it still holds what an
/// erasure removes: the statement's guard, so that a rerun touches no row
/// and changes nothing more.
pub(crate) fn still_held<D: Dialect>(
    dialect: &D,
    erased: &[&DatasetField],
    params: &mut Vec<Param>,
) -> Vec<String> {
    let mut guards = Vec::new();
    for f in erased {
        let column = dialect.quote(&f.name);
        match *f.erase {
            Strategy::Replace => {
                let value = f.replacement.as_deref().cloned().unwrap_or_default();
                params.push(Param::Text(value));
                let q = dialect.placeholder(params.len());
                guards.push(dialect.differs(&column, &q));
            }
            Strategy::Hash => {
                let text = dialect.as_text(&column);
                guards.push(format!("({text} NOT LIKE '{HASHED}%')"));
            }
            _ => guards.push(format!("{column} IS NOT NULL")),
        }
    }
    guards
}

/// The fields a dataset keeps through an erasure, with their grounds.
pub fn kept(policy: &Policy, dataset: &Dataset) -> Vec<KeptField> {
    let mut out = Vec::new();
    let mut push = |name: String, f: &DatasetField| {
        if *f.erase != Strategy::Keep {
            return;
        }
        let Some(ground) = &f.ground else { return };
        let text = custodian_policy::datasets::ground_text(
            policy,
            ground,
            f.retention.as_deref().map(String::as_str),
        )
        .unwrap_or_else(|| ground.to_string());
        out.push(KeptField {
            field: name,
            purpose: ground.to_string(),
            ground: text,
        });
    };
    for t in &dataset.tables {
        for f in &t.fields {
            push(format!("{}.{}", *t.name, *f.name), f);
        }
    }
    for k in &dataset.keys {
        for f in &k.fields {
            push(format!("{}#{}", *k.pattern, *f.name), f);
        }
    }
    out
}

/// A database's message with anything quoted taken out: messages quote
/// values (a duplicate key) as well as names, and no value leaves here.
pub fn scrub(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut inside = false;
    for c in message.chars() {
        if c == '\'' {
            if !inside {
                out.push_str("'…");
            }
            out.push(if inside { '\'' } else { '\0' });
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    out.replace('\0', "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_are_scrubbed() {
        assert_eq!(
            scrub("Duplicate entry 'a@b.c' for key 'email'"),
            "Duplicate entry '…' for key '…'"
        );
    }

    #[test]
    fn the_hash_is_hmac_sha256_with_a_prefix() {
        let key = [7u8; 32];
        let v = hashed_value(&key, "x");
        assert!(v.starts_with(HASHED));
        assert_eq!(v.len(), HASHED.len() + 64);
        assert_ne!(v, hashed_value(&[8u8; 32], "x"));
    }
}
