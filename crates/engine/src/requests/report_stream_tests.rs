//! The assembled report, checked without a store: the JSON equals what
//! gathering every part in memory gave, and the HTML holds every row once,
//! escaped.

use super::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;

type Parts = BTreeMap<(String, u32), Vec<u8>>;

/// The report as the steps write it, the parts taken from `parts`.
fn assemble(format: &str, vault: &[u8], systems: &[SystemOutcome], parts: &Parts) -> Vec<u8> {
    let (mut writer, steps) = plan(format, vault.to_vec(), systems).unwrap();
    let mut out = Vec::new();
    for step in steps {
        let part = match &step {
            Step::Part { dataset, n } => Some(parts[&(dataset.clone(), *n)].clone()),
            _ => None,
        };
        out.extend(writer.write(step, part.as_deref()).unwrap());
    }
    out
}

/// What the report was before it was streamed: every part gathered into
/// one value under `systems`.
fn gathered(vault: &[u8], systems: &[SystemOutcome], parts: &Parts) -> Value {
    let mut report: Value = serde_json::from_slice(vault).unwrap();
    let mut all = Vec::new();
    for s in systems {
        let mut tables = Vec::new();
        for n in 0..s.parts {
            let part: Vec<Value> = serde_json::from_slice(&parts[&(s.dataset.clone(), n)]).unwrap();
            tables.extend(part);
        }
        all.push(
            json!({"dataset": s.dataset, "system": s.system, "rows": s.rows, "tables": tables}),
        );
    }
    report
        .as_object_mut()
        .unwrap()
        .insert("systems".into(), Value::Array(all));
    report
}

fn system(dataset: &str, rows: u64, parts: u32) -> SystemOutcome {
    SystemOutcome {
        dataset: dataset.into(),
        system: "postgres".into(),
        rows,
        parts,
        changed: Vec::new(),
    }
}

fn segment(table: &str, rows: &[&[Option<&str>]]) -> Value {
    json!({
        "table": table,
        "columns": [{"field": "id", "category": "account"}, {"field": "note", "category": "orders"}],
        "rows": rows,
    })
}

/// Two datasets: the first's `orders` spans two parts, the second found
/// nothing (no parts).
fn example() -> (Vec<u8>, Vec<SystemOutcome>, Parts) {
    let vault = serde_json::to_vec_pretty(&json!({
        "request": "r1", "found": true, "data": [{"field": "email", "value": "a@b.c"}],
        "statement": "# Your personal information",
    }))
    .unwrap();
    let mut parts = Parts::new();
    parts.insert(
        ("shop".into(), 0),
        serde_json::to_vec(&json!([
            segment(
                "customers",
                &[&[Some("1"), Some("<script>alert(1)</script>")]]
            ),
            segment(
                "orders",
                &[&[Some("10"), None], &[Some("11"), Some("a & b")]]
            ),
        ]))
        .unwrap(),
    );
    parts.insert(
        ("shop".into(), 1),
        serde_json::to_vec(&json!([segment("orders", &[&[Some("12"), Some("last")]])])).unwrap(),
    );
    (
        vault,
        vec![system("shop", 4, 2), system("empty", 0, 0)],
        parts,
    )
}

#[test]
fn the_json_report_equals_the_report_gathered_in_memory() {
    let (vault, systems, parts) = example();
    let streamed = assemble("json", &vault, &systems, &parts);
    let streamed: Value = serde_json::from_slice(&streamed)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&streamed)));
    assert_eq!(streamed, gathered(&vault, &systems, &parts));
    assert_eq!(
        streamed["systems"][0]["tables"].as_array().unwrap().len(),
        3
    );
    assert_eq!(streamed["systems"][1]["tables"], json!([]));
}

#[test]
fn a_report_without_datasets_and_other_formats_are_served_as_stored() {
    let (vault, systems, parts) = example();
    assert_eq!(assemble("json", &vault, &[], &parts), vault);
    assert_eq!(assemble("archive", b"tar", &systems, &parts), b"tar");
}

#[test]
fn the_html_report_has_a_section_per_dataset_with_its_rows_escaped() {
    let (_, systems, parts) = example();
    let vault =
        b"<!doctype html>\n<html><body>\n<main>\n<h1>Statement</h1>\n</main>\n</body>\n</html>\n";
    let page = String::from_utf8(assemble("html", vault, &systems, &parts)).unwrap();
    let main = page.find("<h1>Statement</h1>").unwrap();
    let section = page
        .find("<h2 id=\"the-data-our-other-systems-hold-about-you\">")
        .unwrap();
    let end = page.find("</main>").unwrap();
    assert!(main < section && section < end, "{page}");
    assert!(page.ends_with("</main>\n</body>\n</html>\n"), "{page}");
    assert!(
        page.contains("<h3 id=\"dataset-shop\">shop (postgres)</h3>"),
        "{page}"
    );
    assert!(
        page.contains("<h3 id=\"dataset-empty\">empty (postgres)</h3>"),
        "{page}"
    );
    assert!(
        page.contains("<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>"),
        "{page}"
    );
    assert!(!page.contains("<script>"), "{page}");
    assert!(page.contains("<td>a &amp; b</td>"), "{page}");
    // `orders` is one table across the two parts, with its three rows.
    assert_eq!(page.matches("<caption>Table orders</caption>").count(), 1);
    assert_eq!(page.matches("<table>").count(), 2, "{page}");
    assert_eq!(page.matches("</table>").count(), 2, "{page}");
    for id in ["10", "11", "12"] {
        assert_eq!(page.matches(&format!("<tr><td>{id}</td>")).count(), 1);
    }
}

#[test]
fn a_part_or_a_page_that_cannot_be_read_is_refused() {
    let (vault, systems, _) = example();
    let (mut writer, _) = plan("json", vault.clone(), &systems).unwrap();
    assert!(
        writer
            .write(
                Step::Part {
                    dataset: "shop".into(),
                    n: 0
                },
                Some(b"{\"x\":1}")
            )
            .is_err()
    );
    assert!(
        writer
            .write(
                Step::Part {
                    dataset: "shop".into(),
                    n: 0
                },
                Some(b"[1,")
            )
            .is_err()
    );
    let (mut writer, _) = plan("html", b"<main></main>".to_vec(), &systems).unwrap();
    assert!(
        writer
            .write(
                Step::Part {
                    dataset: "shop".into(),
                    n: 0
                },
                Some(b"[{\"table\":1}]")
            )
            .is_err()
    );
    assert!(plan("html", b"<p>no main</p>".to_vec(), &systems).is_err());
    assert!(plan("json", b"[1]".to_vec(), &systems).is_err());
}
