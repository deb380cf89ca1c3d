//! The cookie banner in a real browser: Debian's Chromium driven by
//! playwright-core (`tests/browser/consent.mjs`). Needs `node`, Chromium at
//! `/usr/bin/chromium` (or `CHROMIUM`) and `npm install` in `tests/browser`;
//! without them it says it was skipped, except in CI, where it must run.

use super::*;

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser")
}

fn missing() -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!("no Chromium at {chromium}"));
    }
    if Command::new("node")
        .arg("--version")
        .output()
        .map_or(true, |o| !o.status.success())
    {
        return Some("no node".into());
    }
    if !browser_dir().join("node_modules/playwright-core").exists() {
        return Some("playwright-core is not installed (npm install in tests/browser)".into());
    }
    None
}

#[test]
fn the_banner_works_in_chromium() {
    if let Some(why) = missing() {
        skip("browser tests", &why);
        return;
    }
    let scratch = Scratch::new("browser");
    let server = Server::start(&["--data-dir", &scratch.arg("data")]);
    let admin = server.admin_key.clone().unwrap();
    let out = Command::new("node")
        .arg(browser_dir().join("consent.mjs"))
        .arg(format!("http://{}", server.addr))
        .arg(&admin)
        .output()
        .unwrap();
    let report = text(&out.stdout);
    println!("{report}");
    assert!(out.status.success(), "{report}\n{}", text(&out.stderr));
    assert!(
        report.lines().filter(|l| l.starts_with("ok - ")).count() >= 8,
        "{report}"
    );
}
