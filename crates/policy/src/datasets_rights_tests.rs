//! Rectification and restriction declarations: a valid one loads, and each
//! fault is reported at its place with a hint.

use crate::{REFERENCE_POLICY, load};

const DECLARED: &str = r#"
[[datasets]]
id = "shop"
system = "postgres"
connection = "shop"

[[datasets.tables]]
name = "customers"
restrict = { column = "processing_restricted", value = true }
fields = [
  { name = "id", category = "account" },
  { name = "email", category = "email", identity = "email" },
  { name = "name", category = "name", rectify = "full_name", erase = "replace", replacement = "erased" },
]

[[datasets.tables]]
name = "orders"
restrict = { column = "hold", value = "restricted", lifted = "open" }
fields = [
  { name = "customer_id", category = "orders", references = "customers.id", erase = "delete-row" },
]

[[datasets]]
id = "helpdesk"
system = "http"
connection = "helpdesk"

[[datasets.resources]]
name = "tickets"
identity = "email"
category = "enquiries"
export = { url = "/users/{email}/tickets" }
erase = { method = "DELETE", url = "/users/{email}" }
rectify = { method = "PATCH", url = "/users/{email}" }
restrict = { method = "POST", url = "/users/{email}/hold" }
lift = { method = "DELETE", url = "/users/{email}/hold" }
"#;

fn errors(extra: &str) -> Vec<String> {
    match load("p.toml", &format!("{REFERENCE_POLICY}{extra}")) {
        Ok(_) => Vec::new(),
        Err(e) => e.lines(),
    }
}

/// One error, containing `message`, on the line where `at` last occurs.
fn expect_one(from: &str, to: &str, message: &str, at: &str) {
    assert!(DECLARED.contains(from), "no `{from}` in the example");
    let edited = DECLARED.replacen(from, to, 1);
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
    let column = offset - text[..offset].rfind('\n').map_or(0, |n| n + 1) + 1;
    assert!(
        errors[0].starts_with(&format!("p.toml:{line}:{column}")),
        "`{}` is not at line {line}, column {column}",
        errors[0]
    );
    assert!(errors[0].contains("; "), "no hint in `{}`", errors[0]);
}

#[test]
fn the_declarations_load_and_say_what_they_write() {
    assert_eq!(errors(DECLARED), Vec::<String>::new());
    let loaded = load("p.toml", &format!("{REFERENCE_POLICY}{DECLARED}")).unwrap();
    let tables = &loaded.document.datasets[0].tables;
    let boolean = tables[0].restrict.as_ref().unwrap();
    use crate::datasets::MarkValue;
    assert_eq!(boolean.value_for(true), Some(MarkValue::Bool(true)));
    assert_eq!(boolean.value_for(false), Some(MarkValue::Bool(false)));
    let text = tables[1].restrict.as_ref().unwrap();
    assert_eq!(text.value_for(false), Some(MarkValue::Text("open".into())));
    assert_eq!(tables[0].fields[1].rectified_by(), Some("email"));
    assert_eq!(tables[0].fields[2].rectified_by(), Some("full_name"));
    assert_eq!(tables[0].fields[0].rectified_by(), None);
}

#[test]
fn a_rectification_from_an_unknown_vault_field_is_refused() {
    expect_one(
        "rectify = \"full_name\"",
        "rectify = \"nickname\"",
        "rectified from `nickname`, which is not a field of the vault",
        "\"nickname\"",
    );
}

#[test]
fn a_reference_cannot_be_rectified() {
    expect_one(
        "references = \"customers.id\",",
        "references = \"customers.id\", rectify = \"email\",",
        "cannot be rectified",
        "\"email\", erase = \"delete-row\"",
    );
}

#[test]
fn a_mark_on_a_personal_field_is_refused() {
    expect_one(
        "column = \"processing_restricted\"",
        "column = \"email\"",
        "a field declared as personal data",
        "\"email\", value",
    );
}

#[test]
fn a_mark_without_a_column_name_is_refused() {
    expect_one(
        "column = \"hold\"",
        "column = \" \"",
        "a column without a name",
        "\" \"",
    );
}

#[test]
fn a_lifted_value_of_another_kind_is_refused() {
    expect_one(
        "lifted = \"open\"",
        "lifted = false",
        "the lifted value must differ",
        "false }",
    );
}

#[test]
fn a_lifted_value_equal_to_the_mark_is_refused() {
    expect_one(
        "lifted = \"open\"",
        "lifted = \"restricted\"",
        "the lifted value must differ",
        "\"restricted\" }",
    );
}

#[test]
fn a_restriction_without_its_lifting_is_refused() {
    expect_one(
        "lift = { method = \"DELETE\", url = \"/users/{email}/hold\" }\n",
        "",
        "declares only one of `restrict` and `lift`",
        "\"tickets\"",
    );
}

#[test]
fn a_rectify_template_must_name_the_identity() {
    expect_one(
        "rectify = { method = \"PATCH\", url = \"/users/{email}\" }",
        "rectify = { method = \"PATCH\", url = \"/users/{phone}\" }",
        "must name the identity `{email}`",
        "\"/users/{phone}\"",
    );
}

#[test]
fn an_unknown_mark_key_is_refused_where_written() {
    let edited = DECLARED.replacen("value = true", "valu = true", 1);
    let errors = errors(&edited);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].contains("valu"), "{}", errors[0]);
}

#[test]
fn portable_categories_are_those_of_consent_and_contract_purposes() {
    let loaded = load("p.toml", REFERENCE_POLICY).unwrap();
    let portable = super::portable_categories(&loaded.document);
    for p in &loaded.document.purposes {
        let covered = matches!(
            *p.basis,
            crate::terms::LegalBasis::Consent | crate::terms::LegalBasis::Contract
        );
        for c in &p.categories {
            if covered {
                assert!(super::is_portable(&portable, c), "{} of {}", **c, *p.id);
            }
        }
    }
    assert!(!super::is_portable(&portable, "no-such-category"));
    // The reference policy's contract purposes name one field of `usage`:
    // that field is carried, the rest of the category is not.
    assert!(super::is_portable(&portable, "usage.last_active_at"));
    assert!(!super::is_portable(&portable, "usage"));
    assert!(!super::is_portable(&portable, "usage.features_used"));
}
