//! A dataset against its live schema: the drift (columns the policy does not
//! know of, declared columns that are gone, strategies the schema refuses)
//! and a first declaration drafted from a schema. Pure: the connectors read
//! the schema, this compares and writes.

use crate::datasets::{Dataset, Strategy, System};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveColumn {
    pub table: String,
    pub column: String,
    pub data_type: String,
    pub nullable: bool,
}

/// A foreign key: `table.column -> ref_table.ref_column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveReference {
    pub table: String,
    pub column: String,
    pub ref_table: String,
    pub ref_column: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveSchema {
    /// In table order, then column order.
    pub columns: Vec<LiveColumn>,
    pub references: Vec<LiveReference>,
}

/// One difference between a dataset and its live schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// A column the policy does not declare: personal data it may not know of.
    Undeclared { table: String, column: String },
    /// A declared column the schema no longer has.
    Gone { table: String, column: String },
    /// A declared table the schema no longer has.
    TableGone { table: String },
    /// `set-null` on a column that cannot be null.
    NotNull { table: String, column: String },
    /// A retention's clock column that holds no date or time.
    ClockNotTime {
        table: String,
        column: String,
        data_type: String,
    },
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Drift::Undeclared { table, column } => write!(
                f,
                "{table}.{column} is not declared: personal data the policy may not know of"
            ),
            Drift::Gone { table, column } => {
                write!(f, "{table}.{column} is declared but gone from the database")
            }
            Drift::TableGone { table } => {
                write!(f, "table {table} is declared but gone from the database")
            }
            Drift::NotNull { table, column } => write!(
                f,
                "{table}.{column} is NOT NULL, so erasing it with set-null would fail; use replace, hash, delete-row or keep"
            ),
            Drift::ClockNotTime {
                table,
                column,
                data_type,
            } => write!(
                f,
                "{table}.{column} is the retention clock but a {data_type}; the sweep compares it with a date and time, so make it a date or timestamp column"
            ),
        }
    }
}

/// Every difference between `d` and `live`.
pub fn drift(d: &Dataset, live: &LiveSchema) -> Vec<Drift> {
    let mut by_table: BTreeMap<&str, BTreeMap<&str, &LiveColumn>> = BTreeMap::new();
    for c in &live.columns {
        by_table
            .entry(c.table.as_str())
            .or_default()
            .insert(c.column.as_str(), c);
    }
    let referenced: BTreeSet<(&str, &str)> = d
        .tables
        .iter()
        .flat_map(|t| t.fields.iter())
        .filter_map(|f| {
            f.references
                .as_deref()
                .and_then(|r| crate::datasets::split_reference(r))
        })
        .collect();
    let mut out = Vec::new();
    let declared: BTreeSet<&str> = d.tables.iter().map(|t| t.name.as_str()).collect();
    for t in &d.tables {
        let Some(columns) = by_table.get(t.name.as_str()) else {
            out.push(Drift::TableGone {
                table: t.name.to_string(),
            });
            continue;
        };
        let deletes = t.fields.iter().any(|f| *f.erase == Strategy::DeleteRow);
        for f in &t.fields {
            match columns.get(f.name.as_str()) {
                None => out.push(Drift::Gone {
                    table: t.name.to_string(),
                    column: f.name.to_string(),
                }),
                Some(c) => {
                    let clock = t
                        .expire
                        .as_ref()
                        .is_some_and(|e| e.from.as_str() == f.name.as_str());
                    let timely = c.data_type.to_ascii_lowercase();
                    if clock && !timely.contains("date") && !timely.contains("time") {
                        out.push(Drift::ClockNotTime {
                            table: t.name.to_string(),
                            column: f.name.to_string(),
                            data_type: c.data_type.clone(),
                        });
                    }
                    let is_key = referenced.contains(&(t.name.as_str(), f.name.as_str()));
                    if !c.nullable && *f.erase == Strategy::SetNull && !deletes && !is_key {
                        out.push(Drift::NotNull {
                            table: t.name.to_string(),
                            column: f.name.to_string(),
                        });
                    }
                }
            }
        }
        // The restriction mark is no personal data, but it must exist.
        let mark = t.restrict.as_ref().map(|m| m.column.as_str());
        if let Some(m) = mark.filter(|m| !columns.contains_key(m)) {
            out.push(Drift::Gone {
                table: t.name.to_string(),
                column: m.to_string(),
            });
        }
        for column in columns.keys() {
            if !t.fields.iter().any(|f| f.name.as_str() == *column) && mark != Some(*column) {
                out.push(Drift::Undeclared {
                    table: t.name.to_string(),
                    column: (*column).to_string(),
                });
            }
        }
    }
    for (table, columns) in &by_table {
        if !declared.contains(table) {
            for column in columns.keys() {
                out.push(Drift::Undeclared {
                    table: (*table).to_string(),
                    column: (*column).to_string(),
                });
            }
        }
    }
    out
}

/// A category and identity guessed from a column's name and type, by the
/// reference policy's category ids.
pub fn guess(column: &str, data_type: &str) -> (&'static str, Option<&'static str>) {
    let c = column.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| c.contains(w));
    if has(&["email", "e_mail", "mail"]) {
        ("email", Some("email"))
    } else if has(&["phone", "mobile", "tel"]) {
        ("phone", Some("phone"))
    } else if has(&[
        "address",
        "street",
        "city",
        "postcode",
        "post_code",
        "zip",
        "county",
    ]) {
        ("postal-address", None)
    } else if has(&["ip"]) && (c == "ip" || c.ends_with("_ip") || c.starts_with("ip_")) {
        ("ip-address", None)
    } else if has(&["name", "surname"]) {
        ("name", None)
    } else if has(&[
        "order", "total", "amount", "price", "invoice", "payment", "item",
    ]) {
        ("orders", None)
    } else if has(&["user", "login", "password", "account"]) {
        ("account", None)
    } else if data_type.contains("inet") {
        ("ip-address", None)
    } else {
        ("usage", None)
    }
}

fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A dataset declaration to start from: every table and column, the
/// foreign keys as references, categories and identities guessed from
/// names and types and marked as guesses.
pub fn draft(id: &str, system: System, connection: &str, live: &LiveSchema) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "# Drafted from the live schema: every category and identity below is a guess\n\
         # (marked `# guess`) to check against the policy's [[categories]] before use.\n\
         # Fields without `erase` are set to null on erasure; referenced keys stay.\n\
         [[datasets]]\nid = {}\nsystem = {}\nconnection = {}\n",
        toml_string(id),
        toml_string(system.as_str()),
        toml_string(connection)
    ));
    let mut tables: Vec<&str> = Vec::new();
    for c in &live.columns {
        if !tables.contains(&c.table.as_str()) {
            tables.push(&c.table);
        }
    }
    for table in tables {
        out.push_str(&format!(
            "\n[[datasets.tables]]\nname = {}\nfields = [\n",
            toml_string(table)
        ));
        for c in live.columns.iter().filter(|c| c.table == table) {
            let (category, identity) = guess(&c.column, &c.data_type);
            let mut line = format!(
                "  {{ name = {}, category = {}",
                toml_string(&c.column),
                toml_string(category)
            );
            if let Some(identity) = identity {
                line.push_str(&format!(", identity = {}", toml_string(identity)));
            }
            if let Some(r) = live
                .references
                .iter()
                .find(|r| r.table == c.table && r.column == c.column)
            {
                line.push_str(&format!(
                    ", references = {}",
                    toml_string(&format!("{}.{}", r.ref_table, r.ref_column))
                ));
            }
            let nullable = if c.nullable { "" } else { ", NOT NULL" };
            line.push_str(&format!(" }},  # guess ({}{nullable})\n", c.data_type));
            out.push_str(&line);
        }
        out.push_str("]\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(table: &str, column: &str, nullable: bool) -> LiveColumn {
        LiveColumn {
            table: table.into(),
            column: column.into(),
            data_type: "text".into(),
            nullable,
        }
    }

    fn shop() -> LiveSchema {
        LiveSchema {
            columns: vec![
                col("customers", "id", false),
                col("customers", "email", true),
                col("customers", "name", false),
                col("orders", "id", false),
                col("orders", "customer_id", true),
            ],
            references: vec![LiveReference {
                table: "orders".into(),
                column: "customer_id".into(),
                ref_table: "customers".into(),
                ref_column: "id".into(),
            }],
        }
    }

    #[test]
    fn a_draft_is_a_valid_declaration_once_appended_to_the_policy() {
        let text = draft("shop", System::Postgres, "shop", &shop());
        assert!(text.contains("references = \"customers.id\""), "{text}");
        assert!(text.contains("identity = \"email\""), "{text}");
        assert!(text.contains("# guess"), "{text}");
        let policy = format!("{}\n{text}", crate::REFERENCE_POLICY);
        // Guessed categories are the reference policy's; the draft's
        // set-null on `customers.name` (NOT NULL) is for `datasets check`.
        if let Err(e) = crate::load("p.toml", &policy) {
            panic!("{e}");
        }
    }

    #[test]
    fn a_restriction_mark_is_declared_and_missed_when_gone() {
        let text = draft("shop", System::Postgres, "shop", &shop()).replacen(
            "name = \"customers\"\n",
            "name = \"customers\"\nrestrict = { column = \"held\" }\n",
            1,
        );
        let policy = format!("{}\n{text}", crate::REFERENCE_POLICY);
        let loaded = crate::load("p.toml", &policy).unwrap();
        let d = &loaded.document.datasets[0];
        assert!(d.tables.iter().any(|t| t.restrict.is_some()), "{text}");
        let gone = Drift::Gone {
            table: "customers".into(),
            column: "held".into(),
        };
        assert!(drift(d, &shop()).contains(&gone));
        let mut live = shop();
        live.columns.push(col("customers", "held", false));
        let found = drift(d, &live);
        assert!(!found.contains(&gone), "{found:?}");
        assert!(
            !found
                .iter()
                .any(|f| matches!(f, Drift::Undeclared { column, .. } if column == "held")),
            "{found:?}"
        );
    }

    #[test]
    fn drift_names_undeclared_gone_and_not_null_conflicts() {
        let text = draft("shop", System::Postgres, "shop", &shop());
        let policy = format!("{}\n{text}", crate::REFERENCE_POLICY);
        let loaded = crate::load("p.toml", &policy).unwrap();
        let d = &loaded.document.datasets[0];
        let mut live = shop();
        live.columns.retain(|c| c.column != "email");
        live.columns.push(col("customers", "birthday", true));
        live.columns.push(col("audit_log", "who", true));
        let found = drift(d, &live);
        let text: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert!(
            found.contains(&Drift::Gone {
                table: "customers".into(),
                column: "email".into()
            }),
            "{text:?}"
        );
        assert!(
            found.contains(&Drift::Undeclared {
                table: "customers".into(),
                column: "birthday".into()
            }),
            "{text:?}"
        );
        assert!(
            found.contains(&Drift::Undeclared {
                table: "audit_log".into(),
                column: "who".into()
            }),
            "{text:?}"
        );
        assert!(
            found.contains(&Drift::NotNull {
                table: "customers".into(),
                column: "name".into()
            }),
            "{text:?}"
        );
        // orders.id is NOT NULL and set-null; customers.id is a referenced key.
        assert!(
            found.contains(&Drift::NotNull {
                table: "orders".into(),
                column: "id".into()
            }),
            "{text:?}"
        );
        assert!(
            !found.contains(&Drift::NotNull {
                table: "customers".into(),
                column: "id".into()
            }),
            "{text:?}"
        );
        assert!(
            drift(d, &shop())
                .iter()
                .all(|d| matches!(d, Drift::NotNull { .. }))
        );
    }
}
