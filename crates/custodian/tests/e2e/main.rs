//! End-to-end: the real `custodian` binary, its exit codes and output, and the
//! real server over real HTTP, on SQLite always and on PostgreSQL when
//! `CUSTODIAN_TEST_POSTGRES_URL` names a server (required in CI).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

/// Each scenario runs on the embedded store and on PostgreSQL (which skips,
/// or fails in CI, when no server is configured).
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use crate::vault::{Backend, vault_on};
            #[test]
            fn sqlite() {
                if let Some(v) = vault_on(Backend::Sqlite, &[]) {
                    super::$name(v);
                }
            }
            #[test]
            fn postgres() {
                if let Some(v) = vault_on(Backend::Postgres, &[]) {
                    super::$name(v);
                }
            }
        }
    )*};
    (by backend: $($name:ident),* $(,)?) => {$(
        mod $name {
            use crate::vault::Backend;
            #[test]
            fn sqlite() {
                super::$name(Backend::Sqlite);
            }
            #[test]
            fn postgres() {
                super::$name(Backend::Postgres);
            }
        }
    )*};
}

mod architecture;
mod authz;
mod browser;
mod cluster;
mod connectors;
mod connectors_report;
mod connectors_rights;
mod connectors_tls;
mod consent;
mod drp;
mod mailbox;
mod policy;
mod postgres;
mod postgres_cluster;
mod requests;
mod retention;
mod retention_datasets;
mod smtp;
mod vault;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Says plainly that a suite did not run, on its own line in plain `cargo
/// test` output (a write to the stderr handle is not captured the way
/// `eprintln!` is, so it shows even when the test passes). In CI
/// (`CI=true`) a skip is a failure: there every suite must run.
pub fn skip(suite: &str, why: &str) {
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "{suite} must run in CI: {why}"
    );
    let _ = writeln!(std::io::stderr(), "SKIPPED: {suite}: {why}");
}

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_custodian"))
}

pub fn reference() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/i-image-it.toml")
}

pub fn reference_text() -> String {
    std::fs::read_to_string(reference()).unwrap()
}

pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A scratch directory removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("custodian-e2e-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn arg(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A running server, killed on drop if a test fails before stopping it.
pub struct Server {
    child: Child,
    pub addr: String,
    /// Everything the server wrote to stdout (the one-time admin key).
    pub stdout: String,
    /// Everything the server logged, for tests that search it.
    pub log: Arc<Mutex<String>>,
    pub admin_key: Option<String>,
    /// The thread that reads the server's log; joined on stop, so the log
    /// is whole once `stop` returns.
    log_reader: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub fn start(args: &[&str]) -> Server {
        Server::start_with_env(args, &[])
    }

    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = bin()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        let log_reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(i) = line.find("listening on http://") {
                    let rest = &line[i + "listening on http://".len()..];
                    let _ = tx.send(
                        rest.split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_string(),
                    );
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!("server did not start: {}", log.lock().unwrap());
            }
        };
        // The admin key, when printed, is printed before the server listens.
        let mut stdout = String::new();
        let mut out = child.stdout.take().unwrap();
        let mut buf = [0u8; 4096];
        let (otx, orx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut all = Vec::new();
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                all.extend_from_slice(&buf[..n]);
                let _ = otx.send(all.clone());
            }
        });
        if let Ok(bytes) = orx.recv_timeout(Duration::from_millis(300)) {
            stdout = text(&bytes);
        }
        let admin_key = stdout
            .lines()
            .find_map(|l| l.split("keep it safe): ").nth(1))
            .map(str::to_string);
        Server {
            child,
            addr,
            stdout,
            log,
            admin_key,
            log_reader: Some(log_reader),
        }
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&str>,
    ) -> Reply {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        if let Some(k) = key {
            head.push_str(&format!("Authorization: Bearer {k}\r\n"));
        }
        if let Some(b) = body {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            ));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        if let Some(b) = body {
            stream.write_all(b.as_bytes()).unwrap();
        }
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(raw.len());
        let head = text(&raw[..split]);
        let body = raw.get(split + 4..).unwrap_or_default();
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| {
                l.split_once(": ")
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        // A streamed answer (no length known in advance) comes chunked.
        let chunked = headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
        });
        let body = if chunked {
            dechunk(body)
        } else {
            body.to_vec()
        };
        Reply {
            status,
            headers,
            body: text(&body),
        }
    }

    pub fn get(&self, path: &str, key: Option<&str>) -> Reply {
        self.request("GET", path, key, None)
    }

    pub fn post(&self, path: &str, key: Option<&str>, body: &serde_json::Value) -> Reply {
        self.request("POST", path, key, Some(&body.to_string()))
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The server's process id, for tests that read its /proc entries.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: the process dies at once, mid-work, as in a crash.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit code once it has stopped.
    pub fn stop(mut self) -> Option<i32> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                if let Some(reader) = self.log_reader.take() {
                    let _ = reader.join();
                }
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// The body of a chunked answer, its chunks joined. An answer cut short
/// (no last, empty chunk) keeps what arrived and ends with a marker that
/// no JSON or page holds, so a test cannot mistake it for a whole answer.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            out.extend_from_slice(b"\n[cut short]");
            return out;
        };
        let size = text(&raw[..eol]);
        let size = size.split(';').next().unwrap_or_default().trim();
        let Ok(size) = usize::from_str_radix(size, 16) else {
            out.extend_from_slice(b"\n[cut short]");
            return out;
        };
        if size == 0 {
            return out;
        }
        let start = eol + 2;
        let Some(chunk) = raw.get(start..start + size) else {
            out.extend_from_slice(&raw[start.min(raw.len())..]);
            out.extend_from_slice(b"\n[cut short]");
            return out;
        };
        out.extend_from_slice(chunk);
        raw = raw.get(start + size + 2..).unwrap_or_default();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
