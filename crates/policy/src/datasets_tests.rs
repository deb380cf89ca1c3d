//! Datasets in the policy: a valid declaration loads, and each fault is
//! reported at its place with a hint.

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
  { name = "name", category = "name", erase = "replace", replacement = "erased" },
  { name = "phone", category = "phone", erase = "hash" },
]

[[datasets.tables]]
name = "orders"
fields = [
  { name = "customer_id", category = "orders", references = "customers.id", erase = "keep", ground = "statutory-accounting" },
  { name = "total", category = "orders.order_total", erase = "keep", ground = "statutory-accounting", retention = "accounting-6y" },
]

[[datasets.tables]]
name = "carts"
fields = [
  { name = "customer_id", category = "orders", references = "customers.id", erase = "delete-row" },
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

[[datasets]]
id = "helpdesk"
system = "http"
connection = "helpdesk"

[[datasets.resources]]
name = "tickets"
identity = "email"
category = "enquiries"
find = { url = "/users/{email}" }
export = { url = "/users/{email}/tickets" }
erase = { method = "DELETE", url = "/users/{email}" }
"#;

fn errors(extra: &str) -> Vec<String> {
    let text = format!("{REFERENCE_POLICY}{extra}");
    match load("p.toml", &text) {
        Ok(_) => Vec::new(),
        Err(e) => e.lines(),
    }
}

/// One error, containing `message`, on the line where `at` first occurs
/// in the edited datasets.
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
fn a_declared_shop_loads() {
    assert_eq!(errors(SHOP), Vec::<String>::new());
    let loaded = load("p.toml", &format!("{REFERENCE_POLICY}{SHOP}")).unwrap();
    assert_eq!(loaded.document.datasets.len(), 3);
}

#[test]
fn an_unknown_category_is_named() {
    expect_one(
        "category = \"phone\"",
        "category = \"telephone\"",
        "unknown data category `telephone`",
        "\"telephone\"",
    );
}

#[test]
fn a_reference_to_an_undeclared_table_is_named() {
    expect_one(
        "references = \"customers.id\", erase = \"keep\"",
        "references = \"clients.id\", erase = \"keep\"",
        "refers to `clients.id`",
        "\"clients.id\"",
    );
}

#[test]
fn a_kept_field_without_a_ground_is_refused() {
    expect_one(
        "erase = \"keep\", ground = \"statutory-accounting\" }",
        "erase = \"keep\" }",
        "kept without a ground",
        "\"keep\" }",
    );
}

#[test]
fn a_ground_that_is_no_legal_obligation_is_refused() {
    expect_one(
        "erase = \"keep\", ground = \"statutory-accounting\" }",
        "erase = \"keep\", ground = \"seek-feedback\" }",
        "no ground to keep data",
        "\"seek-feedback\"",
    );
}

#[test]
fn a_connection_written_as_a_url_is_refused() {
    expect_one(
        "connection = \"shop\"",
        "connection = \"postgres://u:secret@h/db\"",
        "names its connection as a URL",
        "\"postgres://",
    );
}

#[test]
fn an_identity_the_vault_does_not_hold_is_refused() {
    expect_one(
        "identity = \"username\"",
        "identity = \"loyalty_card\"",
        "identity `loyalty_card` is not a field of the vault",
        "\"loyalty_card\"",
    );
}

#[test]
fn a_replacement_is_required_and_only_for_replace() {
    expect_one(
        ", replacement = \"erased\"",
        "",
        "replaced, but by nothing",
        "erase = \"replace\"",
    );
}

#[test]
fn a_kept_child_of_a_deleted_parent_is_refused() {
    let edited = SHOP.replacen(
        "{ name = \"email\", category = \"email\", identity = \"email\", erase = \"set-null\" }",
        "{ name = \"email\", category = \"email\", identity = \"email\", erase = \"delete-row\" }",
        1,
    );
    let errors = errors(&edited);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("refers to rows of `customers`, which erasure deletes")),
        "{errors:#?}"
    );
}

#[test]
fn a_pattern_without_an_identity_is_refused() {
    expect_one(
        "pattern = \"session:{email}:*\"",
        "pattern = \"session:*\"",
        "names no identity",
        "\"session:*\"",
    );
}

#[test]
fn an_http_template_must_name_its_identity() {
    expect_one(
        "export = { url = \"/users/{email}/tickets\" }",
        "export = { url = \"/users/{phone}/tickets\" }",
        "must name the identity `{email}`",
        "\"/users/{phone}/tickets\"",
    );
}

#[test]
fn an_http_resource_neither_erased_nor_kept_is_refused() {
    expect_one(
        "erase = { method = \"DELETE\", url = \"/users/{email}\" }\n",
        "",
        "no erase endpoint and no ground",
        "name = \"tickets\"",
    );
}

#[test]
fn the_reference_datasets_example_loads_with_the_reference_policy() {
    let example = include_str!("../../../policies/i-image-it.datasets.example.toml");
    assert_eq!(errors(&format!("\n{example}")), Vec::<String>::new());
}
