//! Rectification and restriction as PostgreSQL and MariaDB share them: the
//! set-based statements, one per table, each guarded so that a second run
//! changes nothing. A rectification writes the corrected value into every
//! field that holds the same vault field (its identity, or its declared
//! `rectify`); a restriction sets the table's declared mark, and a table
//! without one is counted, to be listed for staff.

use crate::relational::{Dialect, Param, Planner, Statement};
use custodian_engine::datasets::{ByHand, Corrections};
use custodian_policy::datasets::{MarkValue, split_reference};
use std::collections::BTreeSet;

/// A restriction's statements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestrictPlan {
    /// One `UPDATE` per table with a mark.
    pub marks: Vec<Statement>,
    /// One `SELECT count(*)` per table without one that reaches the person.
    pub unmarked: Vec<Statement>,
}

/// Why an unmarked table holding `rows` of the person is listed.
pub fn unmarked_why(rows: u64, restricted: bool) -> String {
    let done = if restricted {
        "not restricted automatically"
    } else {
        "restriction not lifted automatically"
    };
    format!("{rows} rows, no restriction mark declared: {done}: act by hand")
}

impl<D: Dialect> Planner<'_, D> {
    /// Keys other tables refer to: changing one would break the references.
    fn referenced(&self) -> BTreeSet<(&str, &str)> {
        self.dataset
            .tables
            .iter()
            .flat_map(|t| t.fields.iter())
            .filter_map(|f| f.references.as_deref().and_then(|r| split_reference(r)))
            .collect()
    }

    /// The rectification: one `UPDATE` per table holding a corrected
    /// field, touching only rows where a field still differs; and the
    /// fields it will not change (keys other tables refer to).
    pub fn rectify(&self, corrections: &Corrections) -> (Vec<Statement>, Vec<ByHand>) {
        let keys = self.referenced();
        let mut out = Vec::new();
        let mut by_hand = Vec::new();
        for t in self.erase_order() {
            let mut fields = Vec::new();
            for f in &t.fields {
                let Some(value) = f.rectified_by().and_then(|v| corrections.get(v)) else {
                    continue;
                };
                if keys.contains(&(t.name.as_str(), f.name.as_str())) {
                    by_hand.push(ByHand {
                        what: format!("{}.{}", *t.name, *f.name),
                        why: "a key other tables refer to is not rectified automatically: act by hand"
                            .into(),
                    });
                    continue;
                }
                fields.push((self.dialect.quote(&f.name), value.clone()));
            }
            if fields.is_empty() {
                continue;
            }
            // Parameters in the order the SQL names them: sets, condition, guards.
            let mut params = Vec::new();
            let mut sets = Vec::new();
            for (column, value) in &fields {
                params.push(Param::Text(value.clone()));
                sets.push(format!(
                    "{column} = {}",
                    self.dialect.placeholder(params.len())
                ));
            }
            let Some(cond) = self.condition(t, &mut params, &mut Vec::new()) else {
                continue;
            };
            let mut guards = Vec::new();
            for (column, value) in &fields {
                params.push(Param::Text(value.clone()));
                let p = self.dialect.placeholder(params.len());
                guards.push(self.dialect.differs(column, &p));
            }
            out.push(Statement {
                table: t.name.to_string(),
                sql: format!(
                    "UPDATE {} SET {} WHERE {cond} AND ({})",
                    self.dialect.quote(&t.name),
                    sets.join(", "),
                    guards.join(" OR ")
                ),
                params,
                columns: Vec::new(),
            });
        }
        (out, by_hand)
    }

    /// The restriction (or its lifting): the marks to set, and the counts
    /// of the person's rows in tables that declare none.
    pub fn restrict(&self, restricted: bool) -> RestrictPlan {
        let mut plan = RestrictPlan {
            marks: Vec::new(),
            unmarked: Vec::new(),
        };
        for t in &self.dataset.tables {
            let table = self.dialect.quote(&t.name);
            let mut params = Vec::new();
            let Some(mark) = &t.restrict else {
                if let Some(cond) = self.condition(t, &mut params, &mut Vec::new()) {
                    plan.unmarked.push(Statement {
                        table: t.name.to_string(),
                        sql: format!("SELECT count(*) FROM {table} WHERE {cond}"),
                        params,
                        columns: Vec::new(),
                    });
                }
                continue;
            };
            let column = self.dialect.quote(&mark.column);
            // Booleans and integers are the policy's, not the person's:
            // written as literals, which any column type of theirs takes.
            let literal = |v: &MarkValue| match v {
                MarkValue::Bool(true) => Some("TRUE".to_string()),
                MarkValue::Bool(false) => Some("FALSE".to_string()),
                MarkValue::Int(i) => Some(i.to_string()),
                MarkValue::Text(_) => None,
            };
            let value = mark.value_for(restricted);
            let set = match &value {
                None => "NULL".to_string(),
                Some(MarkValue::Text(text)) => {
                    params.push(Param::Text(text.clone()));
                    self.dialect.placeholder(params.len())
                }
                Some(v) => literal(v).unwrap_or_default(),
            };
            let Some(cond) = self.condition(t, &mut params, &mut Vec::new()) else {
                continue;
            };
            let guard = match &value {
                None => format!("{column} IS NOT NULL"),
                Some(MarkValue::Text(text)) => {
                    params.push(Param::Text(text.clone()));
                    let p = self.dialect.placeholder(params.len());
                    self.dialect.differs(&column, &p)
                }
                Some(v) => self
                    .dialect
                    .differs(&column, &literal(v).unwrap_or_default()),
            };
            plan.marks.push(Statement {
                table: t.name.to_string(),
                sql: format!("UPDATE {table} SET {column} = {set} WHERE {cond} AND {guard}"),
                params,
                columns: Vec::new(),
            });
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custodian_engine::datasets::Identities;
    use custodian_policy::datasets::Dataset;

    struct Pg;
    impl Dialect for Pg {
        fn quote(&self, ident: &str) -> String {
            format!("\"{ident}\"")
        }
        fn placeholder(&self, n: usize) -> String {
            format!("${n}")
        }
        fn one_of(&self, column: &str, values: &[String], params: &mut Vec<Param>) -> String {
            params.push(Param::List(values.to_vec()));
            format!("{column} = ANY(${})", params.len())
        }
        fn as_text(&self, column: &str) -> String {
            format!("{column}::text")
        }
        fn hmac(&self, _: &str, _: &[u8], _: &[u8], _: &mut Vec<Param>) -> String {
            String::new()
        }
        fn differs(&self, column: &str, param: &str) -> String {
            format!("{column} IS DISTINCT FROM {param}")
        }
    }

    fn dataset() -> Dataset {
        let text = r#"
id = "shop"
system = "postgres"
connection = "shop"

[[tables]]
name = "customers"
restrict = { column = "hold", value = "yes" }
fields = [
  { name = "id", category = "account" },
  { name = "email", category = "email", identity = "email" },
  { name = "name", category = "name", rectify = "full_name" },
]

[[tables]]
name = "orders"
fields = [
  { name = "customer_id", category = "orders", references = "customers.id" },
]
"#;
        toml::from_str(text).unwrap()
    }

    fn who() -> Identities {
        let mut who = Identities::new();
        who.entry("email".into())
            .or_default()
            .extend(["old@x.org".to_string(), "new@x.org".to_string()]);
        who
    }

    #[test]
    fn a_rectification_is_one_guarded_update_per_table() {
        let d = dataset();
        let who = who();
        let planner = Planner {
            dataset: &d,
            dialect: Pg,
            who: &who,
        };
        let corrections: Corrections = [
            ("email".to_string(), "new@x.org".to_string()),
            ("full_name".to_string(), "Ann".to_string()),
        ]
        .into();
        let (statements, by_hand) = planner.rectify(&corrections);
        assert!(by_hand.is_empty());
        assert_eq!(statements.len(), 1);
        assert_eq!(
            statements[0].sql,
            "UPDATE \"customers\" SET \"email\" = $1, \"name\" = $2 WHERE (\"email\" = ANY($3)) AND (\"email\" IS DISTINCT FROM $4 OR \"name\" IS DISTINCT FROM $5)"
        );
        assert_eq!(statements[0].params[3], Param::Text("new@x.org".into()));
    }

    #[test]
    fn a_restriction_marks_what_declares_a_mark_and_counts_the_rest() {
        let d = dataset();
        let who = who();
        let planner = Planner {
            dataset: &d,
            dialect: Pg,
            who: &who,
        };
        let set = planner.restrict(true);
        assert_eq!(
            set.marks[0].sql,
            "UPDATE \"customers\" SET \"hold\" = $1 WHERE (\"email\" = ANY($2)) AND \"hold\" IS DISTINCT FROM $3"
        );
        assert_eq!(set.unmarked.len(), 1);
        assert_eq!(set.unmarked[0].table, "orders");
        let lift = planner.restrict(false);
        assert_eq!(
            lift.marks[0].sql,
            "UPDATE \"customers\" SET \"hold\" = NULL WHERE (\"email\" = ANY($1)) AND \"hold\" IS NOT NULL"
        );
    }
}
