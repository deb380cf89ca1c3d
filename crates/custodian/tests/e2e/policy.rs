//! The policy commands and the published pages, through the real binary.

use super::*;

#[test]
fn check_accepts_the_reference_policy_with_a_one_line_summary() {
    let out = run(&["policy", "check", reference().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1);
    assert!(
        stdout.contains("valid: policy 2.2 (uk-gdpr, effective 2026-12-01)"),
        "{stdout}"
    );
    assert!(stdout.contains("21 purposes"), "{stdout}");
}

#[test]
fn check_reports_every_error_with_file_line_and_column() {
    let scratch = Scratch::new("check");
    let broken = reference_text()
        .replacen("agreement = \"DPA-2018-MAIL-01\"\n", "", 1)
        .replacen("purpose = \"cookie-analytics\"\n", "", 1);
    let file = scratch.write("broken.toml", &broken);
    let out = run(&["policy", "check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with(file.to_str().unwrap()) && l.contains(".toml:"))
        .collect();
    assert_eq!(errors.len(), 2, "{stderr}");
    for line in &errors {
        // FILE:LINE:COLUMN: what is wrong; what would be right
        let rest = &line[file.to_str().unwrap().len() + 1..];
        let mut parts = rest.splitn(3, ':');
        assert!(parts.next().unwrap().parse::<usize>().is_ok(), "{line}");
        assert!(parts.next().unwrap().parse::<usize>().is_ok(), "{line}");
        assert!(parts.next().unwrap().contains("; "), "{line}");
    }
    assert!(stdout_is_empty(&out));
}

fn stdout_is_empty(out: &Output) -> bool {
    out.stdout.is_empty()
}

#[test]
fn check_names_a_missing_file() {
    let out = run(&["policy", "check", "/nonexistent/policy.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent/policy.toml: cannot read the policy file"));
}

#[test]
fn render_cookies_and_ropa_in_every_format() {
    let file = reference();
    let file = file.to_str().unwrap();
    let md = run(&["policy", "render", file, "--format", "md"]);
    assert!(md.status.success());
    assert!(text(&md.stdout).starts_with("# Privacy notice of i-Image IT Limited"));
    let html = run(&["policy", "render", file, "--format", "html"]);
    assert!(text(&html.stdout).contains("<h1>Privacy notice of i-Image IT Limited</h1>"));
    let cookies = run(&["policy", "cookies", file, "--format", "html"]);
    assert!(text(&cookies.stdout).contains("_analytics_id"));
    let csv = run(&["policy", "ropa", file, "--format", "csv"]);
    assert!(text(&csv.stdout).starts_with("controller,"));
    let json = run(&["policy", "ropa", file, "--format", "json"]);
    let record: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(record["controller"]["name"], "i-Image IT Limited");
    let bad = run(&["policy", "render", file, "--format", "pdf"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn diff_exits_3_only_for_material_changes() {
    let scratch = Scratch::new("diff");
    let old = reference();
    let same = run(&[
        "policy",
        "diff",
        old.to_str().unwrap(),
        old.to_str().unwrap(),
    ]);
    assert_eq!(same.status.code(), Some(0));
    assert!(same.stdout.is_empty());

    let editorial = scratch.write(
        "editorial.toml",
        &reference_text().replacen(
            "Completing any transaction that you do with us.",
            "Completing your transactions.",
            1,
        ),
    );
    let out = run(&[
        "policy",
        "diff",
        old.to_str().unwrap(),
        editorial.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(
        text(&out.stdout).trim(),
        "editorial: purpose `complete-transactions`: description changed"
    );

    let material = scratch.write(
        "material.toml",
        &reference_text().replacen("duration = \"13 months\"", "duration = \"25 months\"", 1),
    );
    let out = run(&[
        "policy",
        "diff",
        old.to_str().unwrap(),
        material.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stdout)
            .contains("material: retention rule `visit-13m` is longer: 13 months became 25 months")
    );
}

#[test]
fn deadline_command_follows_the_ico_method() {
    let out = run(&["rules", "deadline", "2026-11-26"]);
    assert_eq!(text(&out.stdout).trim(), "2026-12-29");
    let out = run(&["rules", "deadline", "2025-10-31", "--extended"]);
    assert_eq!(text(&out.stdout).trim(), "2026-01-30");
    let out = run(&["rules", "deadline", "26/11/2026"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not a date"));
}

#[test]
fn serve_publishes_the_policy_and_stops_on_sigterm() {
    let scratch = Scratch::new("pages");
    let server = Server::start(&["--data-dir", &scratch.arg("data")]);
    let r = server.get("/healthz", None);
    assert_eq!(
        (r.status, r.header("content-type")),
        (200, Some("application/json"))
    );
    assert!(r.body.contains("ok"));
    assert_eq!(server.get("/readyz", None).status, 200);
    let r = server.get("/privacy", None);
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(r.body.contains("Andrew Cakebread"));
    let r = server.get("/cookies.md", None);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("text/markdown")
    );
    assert!(r.body.starts_with("# Cookie policy of i-Image"));
    let policy = server.get("/v1/policy", None).json();
    assert_eq!(
        policy["controller"]["regulator"]["registration"],
        "ZA292671"
    );
    assert_eq!(policy["purposes"].as_array().unwrap().len(), 21);
    assert!(
        server
            .get("/v1/policy/ropa", None)
            .body
            .contains("\"activities\"")
    );
    let r = server.get("/no/such/page", None);
    assert_eq!(
        (r.status, r.header("content-type")),
        (404, Some("application/problem+json"))
    );
    assert_eq!(r.json()["code"], "not_found");
    assert_eq!(server.stop(), Some(0));
}

#[test]
fn serve_uses_the_policy_file_it_is_given_and_refuses_a_broken_one() {
    let scratch = Scratch::new("serve");
    let edited = scratch.write(
        "p.toml",
        &reference_text().replacen("version = \"2.2\"", "version = \"2.3\"", 1),
    );
    let server = Server::start(&[
        "--data-dir",
        &scratch.arg("data"),
        "--policy",
        edited.to_str().unwrap(),
    ]);
    let body = server.get("/", None).body;
    assert!(body.contains("Policy version 2.3."), "{body}");
    assert_eq!(server.stop(), Some(0));

    let broken = scratch.write("broken.toml", "[policy]\nversion = 2\n");
    let out = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &scratch.arg("data"),
        "--policy",
        broken.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("broken.toml:2:11"),
        "{}",
        text(&out.stderr)
    );
}

/// `custodian policy render ... | head -1`: the reader goes away early, and
/// the command ends quietly instead of panicking on the closed pipe.
#[test]
fn a_closed_output_pipe_ends_the_command_cleanly() {
    let mut child = bin()
        .args(["policy", "render", reference().to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}
