//! The retention sweep of a table, as SQL: from a table's retention (the
//! column its clock runs from) and the cut-off, the statements that erase
//! the due rows by the declared field strategies, each bounded to a batch
//! of rows and run again until it changes nothing, so that a big backlog
//! never holds one long transaction. Where rows are deleted, the rows of
//! other tables that refer to them go first (deleted, or the reference set
//! to null, as those tables declare), so foreign keys hold. Every
//! statement touches only rows that still hold something to erase: a
//! second sweep changes nothing.

use crate::relational::{
    Dialect, Param, erase_assignments, erased_in_place, padded_keys, referenced_keys, still_held,
};
use custodian_policy::datasets::{Dataset, DatasetField, Strategy, Table, split_reference};

/// One bounded statement, repeated until it changes fewer rows than the
/// batch; `count` is its dry-run twin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub table: String,
    /// Changes at most one batch of rows.
    pub sql: String,
    /// Counts the rows the repeated statement would change in all.
    pub count: String,
    pub params: Vec<Param>,
    pub count_params: Vec<Param>,
}

/// How a dialect bounds a statement to `batch` rows.
pub trait Bounded: Dialect {
    /// The cut-off as a literal the server compares with the clock column.
    fn moment(&self, micros: i64) -> Option<String>;
    fn delete_batch(&self, table: &str, cond: &str, batch: u64) -> String;
    fn update_batch(&self, table: &str, sets: &str, cond: &str, batch: u64) -> String;
}

pub struct SweepPlanner<'a, D: Bounded> {
    pub dataset: &'a Dataset,
    pub dialect: D,
    pub hash_key: &'a [u8; 32],
}

fn deletes(t: &Table) -> bool {
    t.fields.iter().any(|f| *f.erase == Strategy::DeleteRow)
}

impl<D: Bounded> SweepPlanner<'_, D> {
    /// The steps that sweep `table` (a declared table with a retention) at
    /// `cutoff`, children first; `None` when the table or its retention is
    /// not declared or the moment cannot be written.
    pub fn table(&self, table: &str, cutoff: i64, batch: u64) -> Option<Vec<Step>> {
        let t = self
            .dataset
            .tables
            .iter()
            .find(|t| t.name.as_str() == table)?;
        let from = t.expire.as_ref()?.from.as_str();
        let due = format!(
            "{} < {}",
            self.dialect.quote(from),
            self.dialect.moment(cutoff)?
        );
        let mut out = Vec::new();
        if deletes(t) {
            self.children(t, &due, batch, &mut vec![t.name.to_string()], &mut out);
            out.push(self.delete(t, &due, batch));
        } else if let Some(step) = self.update(t, &due, batch) {
            out.push(step);
        }
        Some(out)
    }

    /// The rows of other tables that refer to the rows of `parent` that
    /// `cond` selects: deleted where their table deletes rows (their own
    /// referrers first), else the reference set to null. Validation refuses
    /// a kept reference to a deleted row, so there is no third case.
    fn children(
        &self,
        parent: &Table,
        cond: &str,
        batch: u64,
        seen: &mut Vec<String>,
        out: &mut Vec<Step>,
    ) {
        for child in &self.dataset.tables {
            if seen.iter().any(|s| s == child.name.as_str()) {
                continue;
            }
            for f in &child.fields {
                let Some((p, key)) = f.references.as_deref().and_then(|r| split_reference(r))
                else {
                    continue;
                };
                if p != parent.name.as_str() {
                    continue;
                }
                let refers = format!(
                    "{} IN (SELECT {} FROM {} WHERE {cond})",
                    self.dialect.quote(&f.name),
                    self.dialect.quote(key),
                    self.dialect.quote(&parent.name)
                );
                if deletes(child) {
                    seen.push(child.name.to_string());
                    self.children(child, &refers, batch, seen, out);
                    seen.pop();
                    out.push(self.delete(child, &refers, batch));
                } else {
                    let column = self.dialect.quote(&f.name);
                    let table = self.dialect.quote(&child.name);
                    out.push(Step {
                        table: child.name.to_string(),
                        sql: self.dialect.update_batch(
                            &table,
                            &format!("{column} = NULL"),
                            &refers,
                            batch,
                        ),
                        count: format!("SELECT count(*) FROM {table} WHERE {refers}"),
                        params: Vec::new(),
                        count_params: Vec::new(),
                    });
                }
            }
        }
    }

    fn delete(&self, t: &Table, cond: &str, batch: u64) -> Step {
        let table = self.dialect.quote(&t.name);
        Step {
            table: t.name.to_string(),
            sql: self.dialect.delete_batch(&table, cond, batch),
            count: format!("SELECT count(*) FROM {table} WHERE {cond}"),
            params: Vec::new(),
            count_params: Vec::new(),
        }
    }

    /// Sets, replaces or hashes the due rows' fields; keys other tables
    /// refer to stay (they identify rows), and `keep` fields are kept.
    fn update(&self, t: &Table, due: &str, batch: u64) -> Option<Step> {
        let keys = referenced_keys(self.dataset);
        let erased = erased_in_place(t, &keys);
        if erased.is_empty() {
            return None;
        }
        let (ipad, opad) = padded_keys(self.hash_key);
        // Parameters go in the order the SQL names them (MariaDB's are
        // positional): the assignments, then the guards.
        let mut params = Vec::new();
        let sets = erase_assignments(&self.dialect, &erased, (&ipad, &opad), &mut params);
        let guards = self.guards(&erased, &mut params);
        let mut count_params = Vec::new();
        let count_guards = self.guards(&erased, &mut count_params);
        let table = self.dialect.quote(&t.name);
        Some(Step {
            table: t.name.to_string(),
            sql: self.dialect.update_batch(
                &table,
                &sets.join(", "),
                &format!("{due} AND ({guards})"),
                batch,
            ),
            count: format!("SELECT count(*) FROM {table} WHERE {due} AND ({count_guards})"),
            params,
            count_params,
        })
    }

    /// The rows that still hold something to erase; pushes the parameters.
    fn guards(&self, erased: &[&DatasetField], params: &mut Vec<Param>) -> String {
        still_held(&self.dialect, erased, params).join(" OR ")
    }
}

#[cfg(all(test, feature = "mysql"))]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const SHOP: &str = r#"
[[datasets]]
id = "shop"
system = "mysql"
connection = "shop"

[[datasets.tables]]
name = "customers"
expire = { rule = "account-2y", from = "closed_at" }
fields = [
  { name = "id", category = "account" },
  { name = "email", category = "email", identity = "email", erase = "set-null" },
  { name = "name", category = "name", erase = "replace", replacement = "erased" },
  { name = "closed_at", category = "account" },
]

[[datasets.tables]]
name = "baskets"
expire = { rule = "visit-13m", from = "created_at" }
fields = [
  { name = "id", category = "orders" },
  { name = "customer_id", category = "orders", references = "customers.id", erase = "delete-row" },
  { name = "created_at", category = "orders" },
]

[[datasets.tables]]
name = "basket_items"
fields = [
  { name = "basket_id", category = "orders", references = "baskets.id", erase = "delete-row" },
  { name = "item", category = "orders" },
]

[[datasets.tables]]
name = "notes"
fields = [
  { name = "basket_id", category = "orders", references = "baskets.id", erase = "set-null" },
  { name = "text", category = "orders" },
]
"#;

    fn steps(table: &str) -> Vec<Step> {
        let text = format!("{}{SHOP}", custodian_policy::REFERENCE_POLICY);
        let policy = custodian_policy::load("p.toml", &text).unwrap().document;
        let planner = SweepPlanner {
            dataset: &policy.datasets[0],
            dialect: crate::mysql::My,
            hash_key: &[7; 32],
        };
        // 2020-01-01T00:00:00Z
        planner.table(table, 1_577_836_800_000_000, 500).unwrap()
    }

    #[test]
    fn deleted_rows_take_their_referrers_first_in_bounded_statements() {
        let s = steps("baskets");
        let tables: Vec<&str> = s.iter().map(|s| s.table.as_str()).collect();
        assert_eq!(tables, ["basket_items", "notes", "baskets"]);
        let due = "`created_at` < '2020-01-01 00:00:00.000000'";
        assert_eq!(
            s[0].sql,
            format!(
                "DELETE FROM `basket_items` WHERE `basket_id` IN (SELECT `id` FROM `baskets` WHERE {due}) LIMIT 500"
            )
        );
        assert_eq!(
            s[1].sql,
            format!(
                "UPDATE `notes` SET `basket_id` = NULL WHERE `basket_id` IN (SELECT `id` FROM `baskets` WHERE {due}) LIMIT 500"
            )
        );
        assert_eq!(
            s[2].sql,
            format!("DELETE FROM `baskets` WHERE {due} LIMIT 500")
        );
        assert_eq!(
            s[2].count,
            format!("SELECT count(*) FROM `baskets` WHERE {due}")
        );
    }

    #[test]
    fn kept_rows_are_erased_field_by_field_only_where_something_is_left() {
        let s = steps("customers");
        assert_eq!(s.len(), 1);
        // `id` is a key other tables refer to: it stays.
        assert_eq!(
            s[0].sql,
            "UPDATE `customers` SET `email` = NULL, `name` = ?, `closed_at` = NULL \
             WHERE `closed_at` < '2020-01-01 00:00:00.000000' \
             AND (`email` IS NOT NULL OR NOT (`name` <=> ?) OR `closed_at` IS NOT NULL) LIMIT 500"
        );
        let erased = Param::Text("erased".into());
        assert_eq!(s[0].params, vec![erased.clone(), erased.clone()]);
        assert_eq!(s[0].count_params, vec![erased]);
        assert!(
            s[0].count
                .starts_with("SELECT count(*) FROM `customers` WHERE `closed_at` < ")
        );
    }

    #[test]
    fn a_table_without_a_retention_has_no_sweep() {
        let text = format!("{}{SHOP}", custodian_policy::REFERENCE_POLICY);
        let policy = custodian_policy::load("p.toml", &text).unwrap().document;
        let planner = SweepPlanner {
            dataset: &policy.datasets[0],
            dialect: crate::mysql::My,
            hash_key: &[7; 32],
        };
        assert!(planner.table("notes", 0, 500).is_none());
        assert!(planner.table("nowhere", 0, 500).is_none());
    }
}
