//! A table's retention: a valid one loads, each fault is reported at its
//! place with a hint, and the cut-off is the rule's period back (from the
//! start of an accounting year for accounting records).

use super::cutoff;
use crate::{REFERENCE_POLICY, load};

const SHOP: &str = r#"
[[datasets]]
id = "shop"
system = "postgres"
connection = "shop"

[[datasets.tables]]
name = "customers"
fields = [
  { name = "id", category = "account", identity = "username" },
  { name = "email", category = "email", identity = "email", erase = "set-null" },
]

[[datasets.tables]]
name = "baskets"
expire = { rule = "visit-13m", from = "created_at" }
fields = [
  { name = "customer_id", category = "orders", references = "customers.id", erase = "delete-row" },
  { name = "created_at", category = "orders" },
]

[[datasets]]
id = "sessions"
system = "redis"
connection = "sessions"

[[datasets.keys]]
pattern = "session:{email}:*"
kind = "hash"
category = "visit"
erase = "delete-row"
expire = { rule = "visit-13m", from = "seen_at" }
"#;

fn errors(datasets: &str) -> Vec<String> {
    match load("p.toml", &format!("{REFERENCE_POLICY}{datasets}")) {
        Ok(_) => Vec::new(),
        Err(e) => e.lines(),
    }
}

/// One error, containing `message`, on the line of the last `at`.
fn expect_one(from: &str, to: &str, message: &str, at: &str) {
    assert!(SHOP.contains(from), "no `{from}` in the example");
    let edited = SHOP.replacen(from, to, 1);
    let errors = errors(&edited);
    assert_eq!(errors.len(), 1, "expected one error, got {errors:#?}");
    assert!(
        errors[0].contains(message),
        "`{}` lacks `{message}`",
        errors[0]
    );
    let text = format!("{REFERENCE_POLICY}{edited}");
    let offset = text.rfind(at).unwrap();
    let line = text[..offset].matches('\n').count() + 1;
    assert!(
        errors[0].starts_with(&format!("p.toml:{line}:")),
        "`{}` is not at line {line}",
        errors[0]
    );
    assert!(errors[0].contains("; "), "no hint in `{}`", errors[0]);
}

#[test]
fn a_table_and_a_key_pattern_with_a_retention_load() {
    assert_eq!(errors(SHOP), Vec::<String>::new());
    let loaded = load("p.toml", &format!("{REFERENCE_POLICY}{SHOP}")).unwrap();
    let shop = &loaded.document.datasets[0];
    let parts = super::expiring(shop);
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].part, "baskets");
    assert_eq!(parts[0].expire.rule.as_str(), "visit-13m");
}

#[test]
fn an_unknown_rule_is_named() {
    expect_one(
        "rule = \"visit-13m\", from = \"created_at\"",
        "rule = \"visits-13m\", from = \"created_at\"",
        "unknown retention rule `visits-13m`",
        "\"visits-13m\"",
    );
}

#[test]
fn a_clock_column_that_is_not_declared_is_named() {
    expect_one(
        "from = \"created_at\"",
        "from = \"made_at\"",
        "the clock column `made_at` is not a declared field of table `baskets`",
        "\"made_at\"",
    );
}

#[test]
fn a_rule_running_from_a_consent_withdrawal_cannot_apply_to_a_table() {
    expect_one(
        "rule = \"visit-13m\", from = \"created_at\"",
        "rule = \"marketing-consent\", from = \"created_at\"",
        "runs from consent-withdrawal, which the table `baskets` does not record",
        "\"marketing-consent\"",
    );
}

#[test]
fn a_string_key_has_no_clock() {
    expect_one(
        "kind = \"hash\"",
        "kind = \"string\"",
        "is a string key, which holds no time",
        "\"seen_at\"",
    );
}

#[test]
fn an_unknown_key_in_expire_is_refused() {
    let edited = SHOP.replacen(
        "from = \"created_at\"",
        "from = \"created_at\", after = 1",
        1,
    );
    let errors = errors(&edited);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].contains("after"), "{}", errors[0]);
}

fn micros(date: time::Date) -> i64 {
    i64::try_from(date.midnight().assume_utc().unix_timestamp_nanos() / 1_000).unwrap()
}

#[test]
fn the_cutoff_is_the_period_back_and_for_accounting_the_start_of_that_year() {
    use time::macros::date;
    let policy = load("p.toml", REFERENCE_POLICY).unwrap().document;
    let rule = |id: &str| {
        policy
            .retention
            .iter()
            .find(|r| r.id.as_str() == id)
            .unwrap()
    };
    let now = micros(date!(2026 - 12 - 01));
    assert_eq!(
        cutoff(rule("visit-13m"), now),
        Some(micros(date!(2025 - 11 - 01)))
    );
    // Year end 31 March: six years back is 1 December 2020, in the year
    // that began on 1 April 2020. A transaction of 31 March 2020 closed its
    // year on 1 April 2020 and is due on 1 April 2026; one of 1 April 2020
    // is due on 1 April 2027.
    let accounting = cutoff(rule("accounting-6y"), now).unwrap();
    assert_eq!(accounting, micros(date!(2020 - 04 - 01)));
    assert!(micros(date!(2020 - 03 - 31)) < accounting);
    assert!(micros(date!(2020 - 04 - 01)) >= accounting);
}

#[test]
fn a_clock_column_that_holds_no_time_is_drift() {
    use crate::datasets_schema::{Drift, LiveColumn, LiveSchema, drift};
    let loaded = load("p.toml", &format!("{REFERENCE_POLICY}{SHOP}")).unwrap();
    let shop = &loaded.document.datasets[0];
    let live = |clock_type: &str| LiveSchema {
        columns: [
            ("customers", "id", "bigint"),
            ("customers", "email", "text"),
            ("baskets", "customer_id", "bigint"),
            ("baskets", "created_at", clock_type),
        ]
        .into_iter()
        .map(|(table, column, data_type)| LiveColumn {
            table: table.into(),
            column: column.into(),
            data_type: data_type.into(),
            nullable: true,
        })
        .collect(),
        references: Vec::new(),
    };
    assert_eq!(
        drift(shop, &live("character varying")),
        vec![Drift::ClockNotTime {
            table: "baskets".into(),
            column: "created_at".into(),
            data_type: "character varying".into(),
        }]
    );
    for timely in ["timestamp with time zone", "datetime", "date"] {
        assert_eq!(drift(shop, &live(timely)), Vec::new(), "{timely}");
    }
    // A clock column gone from the schema is drift of its own.
    let mut gone = live("timestamp");
    gone.columns.pop();
    assert_eq!(
        drift(shop, &gone),
        vec![Drift::Gone {
            table: "baskets".into(),
            column: "created_at".into(),
        }]
    );
}
