//! End-to-end: the real `custodian` binary, its exit codes and output, and the
//! real server over real HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_custodian"))
}

fn reference() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/i-image-it.toml")
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("custodian-e2e-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, content).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn reference_text() -> String {
    std::fs::read_to_string(reference()).unwrap()
}

#[test]
fn check_accepts_the_reference_policy_with_a_one_line_summary() {
    let out = run(&["policy", "check", reference().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1);
    assert!(
        stdout.contains("valid: policy 2.0 (uk-gdpr, effective 2026-12-01)"),
        "{stdout}"
    );
    assert!(stdout.contains("18 purposes"), "{stdout}");
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
    assert_eq!(text(&out.stdout).trim(), "2026-02-02");
    let out = run(&["rules", "deadline", "26/11/2026"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not a date"));
}

/// A running server, killed on drop if a test fails before stopping it.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let mut child = bin()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(i) = line.find("listening on http://") {
                    let rest = &line[i + "listening on http://".len()..];
                    let addr = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server did not start");
        Server { child, addr }
    }

    fn get(&self, path: &str) -> (u16, String, String) {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let content_type = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-type: ")
                    .map(str::to_string)
            })
            .unwrap_or_default();
        (status, content_type, body.to_string())
    }

    fn stop(mut self) -> Option<i32> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serve_publishes_the_policy_and_stops_on_sigterm() {
    let server = Server::start(&[]);
    let (status, content_type, body) = server.get("/healthz");
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    assert!(body.contains("ok"));
    let (status, _, _) = server.get("/readyz");
    assert_eq!(status, 200);
    let (status, content_type, body) = server.get("/privacy");
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/html"));
    assert!(body.contains("Andrew Cakebread"));
    let (_, content_type, body) = server.get("/cookies.md");
    assert!(content_type.starts_with("text/markdown"));
    assert!(body.starts_with("# Cookie policy of i-Image"));
    let (_, _, body) = server.get("/v1/policy");
    let policy: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        policy["controller"]["regulator"]["registration"],
        "ZA292671"
    );
    assert_eq!(policy["purposes"].as_array().unwrap().len(), 18);
    let (_, _, body) = server.get("/v1/policy/ropa");
    assert!(body.contains("\"activities\""));
    let (status, content_type, body) = server.get("/no/such/page");
    assert_eq!(
        (status, content_type.as_str()),
        (404, "application/problem+json")
    );
    assert!(body.contains("\"code\":\"not_found\""));
    assert_eq!(server.stop(), Some(0));
}

#[test]
fn serve_uses_the_policy_file_it_is_given_and_refuses_a_broken_one() {
    let scratch = Scratch::new("serve");
    let edited = scratch.write(
        "p.toml",
        &reference_text().replacen("version = \"2.0\"", "version = \"2.1\"", 1),
    );
    let server = Server::start(&["--policy", edited.to_str().unwrap()]);
    let (_, _, body) = server.get("/");
    assert!(body.contains("Policy version 2.1."), "{body}");
    assert_eq!(server.stop(), Some(0));

    let broken = scratch.write("broken.toml", "[policy]\nversion = 2\n");
    let out = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
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
