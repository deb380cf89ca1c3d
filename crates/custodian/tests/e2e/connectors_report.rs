//! The access report of a person with many rows in a dataset, served as a
//! stream: JSON and the HTML page, each with every row, while the
//! server's peak memory grows by far less than the report's size. Runs
//! where `CUSTODIAN_TEST_POSTGRES_URL` is set; in CI its absence fails.

use super::connectors::{
    PgDb, SCHEMA, agent, finished, peak_memory, pg_vault_with_shop, seed_sql, shop, submit,
};
use super::*;
use serde_json::Value;

const ORDERS: u64 = 400_000;

/// A note with markup in it, which the page must show as text.
const MARKUP: &str = "<b>fish & chips</b> \"now\"";

#[test]
fn a_report_with_many_dataset_rows_is_streamed_whole_under_a_memory_bound() {
    let Ok(admin) = std::env::var("CUSTODIAN_TEST_POSTGRES_URL") else {
        skip(
            "connectors report streaming",
            "CUSTODIAN_TEST_POSTGRES_URL is not set",
        );
        return;
    };
    let pg = PgDb::create(&admin);
    for s in SCHEMA {
        pg.exec(s);
    }
    pg.exec(&seed_sql(1, 1)[0]);
    // 400,000 orders of about 125 bytes each as JSON: 50 MB if gathered,
    // several times that as parsed values.
    pg.exec(&format!(
        "INSERT INTO orders (id, customer_id, total, note) \
         SELECT 100 + g, 1, g % 1000, repeat('n', 100) || g FROM generate_series(1, {ORDERS}) g"
    ));
    pg.exec(&format!(
        "UPDATE orders SET note = '{}' WHERE id = 107",
        MARKUP.replace('\'', "''")
    ));
    let (v, _vault_db) = pg_vault_with_shop(
        &admin,
        "report-stream",
        &shop("shop-pg", "postgres", "shop-pg"),
        &pg.url,
    );
    let a = agent(&v);
    let report = |id: &str, path: &str| {
        let r = v
            .server
            .get(&format!("/v1/requests/{id}/{path}"), Some(&v.admin));
        assert_eq!(r.status, 200, "{}", r.body);
        r
    };

    // A small request, its reports served, so the baseline holds a
    // warmed-up server; then the large one, carried out.
    let small = submit(&v, &a, "access", &super::connectors::email(2));
    assert_eq!(finished(&v, &small)["state"], "completed");
    report(&small, "report");
    report(&small, "report.html");
    let request = submit(&v, &a, "access", &super::connectors::email(1));
    let deadline = Instant::now() + Duration::from_secs(300);
    let done = loop {
        let r = v
            .server
            .get(&format!("/v1/requests/{request}"), Some(&v.admin))
            .json();
        if r["state"] != "in-progress" || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["outcome"]["systems"][0]["rows"], 1 + ORDERS, "{done}");
    let parts = done["outcome"]["systems"][0]["parts"].as_u64().unwrap();
    assert!(parts >= 10, "{parts} parts");

    let before = peak_memory(v.server.pid());
    let json = report(&request, "report");
    let after_json = peak_memory(v.server.pid());
    let html = report(&request, "report.html");
    let after_html = peak_memory(v.server.pid());
    let _ = writeln!(
        std::io::stderr(),
        "report streaming: {} bytes of JSON, {} of HTML from {parts} parts; peak memory {} MiB before, {} after JSON, {} after HTML",
        json.body.len(),
        html.body.len(),
        before >> 20,
        after_json >> 20,
        after_html >> 20
    );
    // Each answer is larger than the bound: the server holds about a part
    // (1 MiB) at a time, with its copies (sealed, opened, written), never
    // the answer.
    for (what, after, size) in [
        ("JSON", after_json, json.body.len()),
        ("HTML", after_html, html.body.len()),
    ] {
        let grown = after.saturating_sub(before);
        assert!(size > 40 << 20, "{what}: {size} bytes");
        assert!(
            grown < 28 << 20,
            "serving the reports up to the {what} grew the server's peak memory by {} MiB",
            grown >> 20
        );
    }

    // The JSON: the vault's report, and every row the shop holds, each once.
    assert_eq!(json.header("content-type"), Some("application/json"));
    assert_eq!(json.header("cache-control"), Some("no-store"));
    let body: Value = serde_json::from_str(&json.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}), ending {:?}", tail(&json.body)));
    assert_eq!(body["request"], request.as_str());
    assert!(
        body["statement"]
            .as_str()
            .unwrap()
            .contains("# Your personal")
    );
    let systems = body["systems"].as_array().unwrap();
    assert_eq!(systems.len(), 1);
    assert_eq!(systems[0]["dataset"], "shop-pg");
    assert_eq!(systems[0]["rows"], 1 + ORDERS);
    let mut got: Vec<Vec<Value>> = Vec::new();
    for segment in systems[0]["tables"].as_array().unwrap() {
        if segment["table"] == "orders" {
            let columns: Vec<&Value> = segment["columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| &c["field"])
                .collect();
            assert_eq!(columns, ["customer_id", "total", "note"], "{segment}");
            got.extend(
                segment["rows"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_array().unwrap().clone()),
            );
        }
    }
    let mut expected: Vec<Vec<Value>> = pg
        .rows("SELECT customer_id::text, total::text, note FROM orders")
        .into_iter()
        .map(|r| {
            r.into_iter()
                .map(|v| v.map_or(Value::Null, Value::from))
                .collect()
        })
        .collect();
    let key = |r: &Vec<Value>| r.iter().map(|v| v.to_string()).collect::<Vec<_>>();
    got.sort_by_key(key);
    expected.sort_by_key(key);
    assert_eq!(got.len(), ORDERS as usize);
    assert!(
        got == expected,
        "the report's orders differ from the shop's"
    );

    // The page: the statement, then the shop's rows, markup shown as text.
    assert_eq!(
        html.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let page = &html.body;
    assert!(page.ends_with("</html>\n"), "ends {:?}", tail(page));
    let section = page
        .find("The data our other systems hold about you")
        .unwrap();
    assert!(page[..section].contains("Your rights"));
    assert!(page.contains("<h3 id=\"dataset-shop-pg\">shop-pg (postgres)</h3>"));
    assert!(page.contains(&format!("<td>{}</td>", "n".repeat(100) + "323456")));
    assert!(
        page.contains("<td>&lt;b&gt;fish &amp; chips&lt;/b&gt; &quot;now&quot;</td>"),
        "the markup is not escaped"
    );
    assert!(!page.contains("<b>fish"));
    // The customer's row and every order's, each starting with the id 1.
    assert_eq!(page.matches("<tr><td>1</td>").count(), 1 + ORDERS as usize);
    assert!(page.contains(&format!("<td>{}</td>", super::connectors::email(1))));
}

fn tail(text: &str) -> &str {
    let mut start = text.len().saturating_sub(200);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    &text[start..]
}
