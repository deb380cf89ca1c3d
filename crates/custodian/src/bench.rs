//! `custodian bench`: starts a real server on loopback on a fresh embedded
//! store, drives it over HTTP with concurrent keep-alive clients, and prints
//! collections/s, reads/s with p50/p99, the server's idle memory and start-up
//! time, and, measured in the same run, bare SQLite inserts of the same rows
//! and bytes, so that the ratios hold on a noisy machine.
//!
//! Only 127.0.0.1 is ever contacted; every loop is bounded in count.

use clap::Args;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Subjects to collect.
    #[arg(long, default_value_t = 20_000)]
    collections: usize,
    /// Purpose-checked reads.
    #[arg(long, default_value_t = 40_000)]
    reads: usize,
    /// Addresses in the streamed campaign-list check.
    #[arg(long, default_value_t = 1_000_000)]
    campaign: usize,
    /// Subjects in the vault when rights requests are measured (the
    /// collections above count towards it).
    #[arg(long, default_value_t = 1_000_000)]
    pub vault_subjects: usize,
    /// Access and erasure requests timed one at a time, each.
    #[arg(long, default_value_t = 200)]
    pub timed_requests: usize,
    /// Erasure requests queued at once for the throughput figure.
    #[arg(long, default_value_t = 1_000)]
    queued_erasures: usize,
    /// Signed Data Rights Protocol requests from an authorized agent.
    #[arg(long, default_value_t = 20_000)]
    drp_requests: usize,
    /// Concurrent keep-alive client connections.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Stored data for the retention sweep figures, smaller then larger
    /// (each run has the same due data).
    #[arg(long, value_delimiter = ',', default_value = "1000000,10000000")]
    retention_stored: Vec<usize>,
    /// Data past their retention in each sweep run.
    #[arg(long, default_value_t = 10_000)]
    retention_due: usize,
    /// Measure only the retention sweep (not the server over HTTP).
    #[arg(long)]
    retention_only: bool,
    /// Measure only access and erasure requests across datasets in
    /// PostgreSQL, MariaDB and Redis (URLs from CUSTODIAN_BENCH_POSTGRES_URL,
    /// CUSTODIAN_BENCH_MARIADB_URL, CUSTODIAN_BENCH_REDIS_URL).
    #[arg(long)]
    connectors: bool,
    /// Customers in the connectors' shop (each database).
    #[arg(long, default_value_t = 1_000_000)]
    pub shop_customers: usize,
    /// Orders in the connectors' shop (each database).
    #[arg(long, default_value_t = 10_000_000)]
    pub shop_orders: usize,
    /// Keep the data folder afterwards (it is removed by default).
    #[arg(long)]
    keep: bool,
}

pub(crate) struct Running {
    child: Child,
    pub addr: String,
    pub admin: String,
    started_in: Duration,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(data: &Path) -> Result<Running, String> {
    start_server_with(data, &[], &[])
}

/// A server on `data` with more arguments and environment variables.
pub(crate) fn start_server_with(
    data: &Path,
    extra: &[&str],
    env: &[(String, String)],
) -> Result<Running, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut child = Command::new(exe)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--rate-limit-per-key",
            "0",
            "--rate-limit-per-ip",
            "0",
        ])
        .arg("--data-dir")
        .arg(data)
        .args(extra)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("CUSTODIAN_LOG", "warn,custodian::serve=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let mut admin = String::new();
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if let Some(k) = line.split("keep it safe): ").nth(1) {
            admin = k.trim().to_string();
            break;
        }
    }
    let mut addr = String::new();
    let mut lines = BufReader::new(stderr).lines();
    for line in lines.by_ref().map_while(Result::ok) {
        if let Some(rest) = line.split("listening on http://").nth(1) {
            addr = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
            break;
        }
    }
    // Keep draining the server's log so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    if admin.is_empty() || addr.is_empty() {
        return Err("the server did not start".into());
    }
    // Ready means /readyz answers 200: the store is open and answering.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
            use std::io::{Read, Write};
            let _ = s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut response = String::new();
            let _ = s.read_to_string(&mut response);
            if response.starts_with("HTTP/1.1 200") {
                break;
            }
        }
        if Instant::now() > deadline {
            return Err("the server never became ready".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(Running {
        child,
        addr,
        admin,
        started_in: started.elapsed(),
    })
}

/// CPU time the process has used so far, user and system, in seconds
/// (Linux clock ticks of 10 ms; None elsewhere).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it are plain.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// Server CPU per operation over a phase, in microseconds, as text.
fn cpu_per_op(before: Option<f64>, after: Option<f64>, ops: usize) -> String {
    match (before, after) {
        (Some(b), Some(a)) if ops > 0 => {
            format!("{:.1} µs server CPU each", (a - b) * 1e6 / ops as f64)
        }
        _ => "server CPU not available".into(),
    }
}

fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// One keep-alive HTTP/1.1 connection.
pub(crate) struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub(crate) async fn open(addr: &str) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(8192),
        })
    }

    /// Sends a request and returns (status, body).
    pub(crate) async fn call(&mut self, request: &[u8]) -> std::io::Result<(u16, &[u8])> {
        self.stream.write_all(request).await?;
        self.buf.clear();
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            self.buf.reserve(8192);
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "closed",
                ));
            }
        };
        // Parsed from the bytes: this client shares the machine's cores with
        // the server, so it spends as little as it can per answer.
        let head = self.buf.get(..head_end).unwrap_or_default();
        let status = head
            .get(9..12)
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let length = content_length(head).unwrap_or(0);
        while self.buf.len() < head_end + length {
            self.buf.reserve(8192);
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "closed",
                ));
            }
        }
        Ok((
            status,
            self.buf
                .get(head_end..head_end + length)
                .unwrap_or_default(),
        ))
    }
}

/// The Content-Length of a response head, if it has one.
fn content_length(head: &[u8]) -> Option<usize> {
    head.split(|b| *b == b'\n').find_map(|line| {
        let colon = line.iter().position(|b| *b == b':')?;
        let (name, value) = line.split_at(colon);
        if !name.eq_ignore_ascii_case(b"content-length") {
            return None;
        }
        std::str::from_utf8(value.get(1..)?)
            .ok()?
            .trim()
            .parse()
            .ok()
    })
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub(crate) fn post(addr: &str, key: &str, path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

pub(crate) fn get(addr: &str, key: &str, path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\r\n")
        .into_bytes()
}

pub(crate) fn collection_body(i: usize) -> String {
    format!(
        "{{\"purpose\":\"account-management\",\"source\":{{\"channel\":\"web\"}},\"data\":{{\"full_name\":\"Bench Person {i}\",\"email\":\"person{i}@bench.example\",\"postal_address\":\"{i} Benchmark Road, Testbury TB1 1AA\"}}}}"
    )
}

pub(crate) struct Run {
    elapsed: Duration,
    latencies: Vec<Duration>,
    pub failures: usize,
    bodies: Vec<Vec<u8>>,
}

/// Sends `requests` over `clients` connections, each request answered before
/// that connection sends the next. Keeps the bodies when asked to.
pub(crate) async fn drive(
    addr: &str,
    requests: Arc<Vec<Vec<u8>>>,
    clients: usize,
    keep_bodies: bool,
) -> Result<Run, String> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (addr, requests, next) = (addr.to_string(), requests.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(&addr).await.map_err(|e| e.to_string())?;
            let mut latencies = Vec::new();
            let mut bodies = Vec::new();
            let mut failures = 0;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(request) = requests.get(i) else {
                    break;
                };
                let t = Instant::now();
                let (status, body) = conn.call(request).await.map_err(|e| e.to_string())?;
                latencies.push(t.elapsed());
                if !(200..300).contains(&status) {
                    failures += 1;
                }
                if keep_bodies {
                    bodies.push(body.to_vec());
                }
            }
            Ok::<_, String>((latencies, bodies, failures))
        }));
    }
    let mut run = Run {
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
        failures: 0,
        bodies: Vec::new(),
    };
    for t in tasks {
        let (l, b, f) = t.await.map_err(|e| e.to_string())??;
        run.latencies.extend(l);
        run.bodies.extend(b);
        run.failures += f;
    }
    run.elapsed = start.elapsed();
    run.latencies.sort_unstable();
    Ok(run)
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Bare SQLite: the same number of rows and bytes, WAL, synchronous=FULL, one
/// transaction per row (each acknowledged write durable, as Custodian's are),
/// and the same in 1,000-row transactions.
fn sqlite_baseline(dir: &Path, rows: usize, bytes: usize) -> Result<(f64, f64), String> {
    let run = |name: &str, per_tx: usize| -> Result<f64, String> {
        let path = dir.join(name);
        let conn = rusqlite::Connection::open(&path).map_err(|e| e.to_string())?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| e.to_string())?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| e.to_string())?;
        conn.execute_batch(
            "CREATE TABLE t (id BLOB PRIMARY KEY, body BLOB NOT NULL) WITHOUT ROWID",
        )
        .map_err(|e| e.to_string())?;
        let payload = vec![0x5au8; bytes];
        let start = Instant::now();
        let mut done = 0;
        while done < rows {
            let tx = conn.unchecked_transaction().map_err(|e| e.to_string())?;
            {
                let mut stmt = tx
                    .prepare_cached("INSERT INTO t (id, body) VALUES (?1, ?2)")
                    .map_err(|e| e.to_string())?;
                for _ in 0..per_tx.min(rows - done) {
                    let id = custodian_vault::crypto::new_id();
                    stmt.execute(rusqlite::params![id.as_bytes().as_slice(), payload])
                        .map_err(|e| e.to_string())?;
                    done += 1;
                }
            }
            tx.commit().map_err(|e| e.to_string())?;
        }
        Ok(rows as f64 / start.elapsed().as_secs_f64())
    };
    Ok((run("per-row.db", 1)?, run("batched.db", 1000)?))
}

struct DrpFigures {
    run: Run,
    per_s: f64,
    cpu: String,
    bare_verify_per_s: f64,
}

/// An authorized agent (a key pair made here, trusted for the identity it
/// attests) registers and sends signed deletion requests for addresses the
/// vault does not hold: each is decoded, verified, checked, and registered
/// with its task queued (the task finds no one and completes). The bare
/// verification of the same bodies, on this thread, is the baseline.
fn drp_phase(
    args: &BenchArgs,
    addr: &str,
    admin: &str,
    phase: &mut dyn FnMut(Vec<Vec<u8>>) -> Result<(Run, String), String>,
) -> Result<DrpFigures, String> {
    use base64::Engine;
    let key = ed25519_dalek::SigningKey::from_bytes(&custodian_vault::crypto::random_bytes::<32>());
    let verify_key =
        base64::engine::general_purpose::STANDARD.encode(key.verifying_key().as_bytes());
    let business = custodian_policy::drp::business_id_from(
        &custodian_policy::reference()
            .map_err(|e| e.to_string())?
            .document
            .controller
            .legal_name,
    );
    let call = |request: Vec<u8>| -> Result<(u16, Vec<u8>), String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let mut conn = Conn::open(addr).await.map_err(|e| e.to_string())?;
            let (status, body) = conn.call(&request).await.map_err(|e| e.to_string())?;
            Ok((status, body.to_vec()))
        })
    };
    let (status, _) = call(post(
        addr,
        admin,
        "/v1/agents",
        &format!(
            "{{\"id\":\"BENCH_AGENT\",\"name\":\"Bench\",\"verify_key\":\"{verify_key}\",\"trust_identity\":true}}"
        ),
    ))?;
    if status != 201 {
        return Err(format!("the bench agent was refused: {status}"));
    }
    let now = time::OffsetDateTime::now_utc();
    let stamp = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let (issued, expires) = (stamp(now), stamp(now + time::Duration::minutes(14)));
    let claims = format!(
        "\"agent-id\":\"BENCH_AGENT\",\"business-id\":\"{business}\",\"issued-at\":\"{issued}\",\"expires-at\":\"{expires}\",\"drp.version\":\"1.0\""
    );
    let signed = custodian_vault::signed::sign(&key, format!("{{{claims}}}").as_bytes());
    let (status, body) = call(
        format!(
            "POST /v1/agent/BENCH_AGENT HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{signed}",
            signed.len()
        )
        .into_bytes(),
    )?;
    let token = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("token").and_then(|t| t.as_str()).map(str::to_string))
        .ok_or_else(|| format!("the bench agent could not register: {status}"))?;
    let bodies: Vec<String> = (0..args.drp_requests)
        .map(|i| {
            let message = format!(
                "{{{claims},\"exercise\":\"deletion\",\"agent-request-id\":\"{i}\",\"email\":\"stranger{i}@drp.bench.example\",\"email_verified\":true}}"
            );
            custodian_vault::signed::sign(&key, message.as_bytes())
        })
        .collect();
    // The baseline: what the verification alone costs one core.
    let public = key.verifying_key().to_bytes();
    let t = Instant::now();
    for body in &bodies {
        let signed = custodian_vault::signed::Signed::decode(body).map_err(|e| e.to_string())?;
        signed.verify(&public).map_err(|e| e.to_string())?;
    }
    let bare_verify_per_s = bodies.len() as f64 / t.elapsed().as_secs_f64();
    let requests: Vec<Vec<u8>> = bodies
        .iter()
        .map(|b| {
            format!(
                "POST /v1/data-rights-request HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            )
            .into_bytes()
        })
        .collect();
    let (run, cpu) = phase(requests)?;
    let per_s = args.drp_requests as f64 / run.elapsed.as_secs_f64();
    Ok(DrpFigures {
        run,
        per_s,
        cpu,
        bare_verify_per_s,
    })
}

pub fn run(args: BenchArgs) -> ExitCode {
    match bench(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("custodian bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench(args: &BenchArgs) -> Result<(), String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let dir: PathBuf = std::env::temp_dir().join(format!("custodian-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let result = if args.connectors {
        crate::bench_connectors::run(args, cores, &dir)
    } else if args.retention_only {
        retention_table(args, &dir)
    } else {
        bench_in(args, cores, &dir).and_then(|()| retention_table(args, &dir))
    };
    if !args.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

/// The retention sweep's figures, as rows of the same table.
fn retention_table(args: &BenchArgs, dir: &Path) -> Result<(), String> {
    println!();
    println!(
        "retention sweep: embedded store, subjects of 10 data, {} due in each run",
        args.retention_due
    );
    let mut runs = Vec::new();
    for stored in &args.retention_stored {
        let f = crate::bench_retention::sweep_figures(dir, *stored, args.retention_due)?;
        println!(
            "seeded {} data in {:.0} s; swept in {:.2} s",
            f.stored,
            f.seeded_in.as_secs_f64(),
            f.swept_in.as_secs_f64()
        );
        if f.erased != f.due as u64 {
            return Err(format!(
                "the sweep erased {} data, not the {} due",
                f.erased, f.due
            ));
        }
        runs.push(f);
    }
    println!();
    println!("| measure | figure |");
    println!("|---|---|");
    for f in &runs {
        println!(
            "| retention sweep, {} data stored, {} due (erased, audited one by one, {} subjects shredded) | {:.2} s, {:.0} data erased/s |",
            f.stored,
            f.due,
            f.shredded,
            f.swept_in.as_secs_f64(),
            f.erased as f64 / f.swept_in.as_secs_f64()
        );
    }
    if let (Some(first), Some(last)) = (runs.first(), runs.last()) {
        if runs.len() > 1 {
            println!(
                "| sweep time, {} data stored / {} data stored | {:.2}x |",
                last.stored,
                first.stored,
                last.swept_in.as_secs_f64() / first.swept_in.as_secs_f64()
            );
        }
    }
    Ok(())
}

fn bench_in(args: &BenchArgs, cores: usize, dir: &Path) -> Result<(), String> {
    println!(
        "custodian bench: {cores} cores, {} client connections on 127.0.0.1, embedded SQLite store (WAL, synchronous=FULL)",
        args.clients
    );
    let server = start_server(&dir.join("data"))?;
    std::thread::sleep(Duration::from_millis(500));
    let idle = resident_kib(server.child.id());
    println!(
        "start-up to a ready /readyz: {:.0} ms",
        ms(server.started_in)
    );
    match idle {
        Some(kib) => println!("resident memory when idle: {:.1} MiB", kib as f64 / 1024.0),
        None => println!("resident memory when idle: not available on this system"),
    }
    // Clients get one thread, the server the rest.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let addr = server.addr.clone();
    let key = server.admin.clone();

    let bodies: Vec<String> = (0..args.collections).map(collection_body).collect();
    let mean_bytes = bodies.iter().map(String::len).sum::<usize>() / bodies.len().max(1);
    let requests: Vec<Vec<u8>> = bodies
        .iter()
        .map(|b| post(&addr, &key, "/v1/subjects", b))
        .collect();
    let server_pid = server.child.id();
    let cpu = || cpu_seconds(server_pid);
    // One phase of requests: its run, and the server's CPU per request.
    let phase = |requests: Vec<Vec<u8>>, keep_bodies: bool| {
        let count = requests.len();
        let before = cpu();
        let run = rt.block_on(drive(&addr, Arc::new(requests), args.clients, keep_bodies))?;
        Ok::<_, String>((run, cpu_per_op(before, cpu(), count)))
    };
    let (collected, collect_cpu) = phase(requests, true)?;
    let ids: Vec<String> = collected
        .bodies
        .iter()
        .filter_map(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        .filter_map(|v| v.get("id").and_then(|id| id.as_str()).map(str::to_string))
        .collect();
    if ids.is_empty() {
        return Err("no collection succeeded".into());
    }
    let collections_per_s = args.collections as f64 / collected.elapsed.as_secs_f64();

    let reads: Vec<Vec<u8>> = (0..args.reads)
        .map(|i| {
            let id = ids.get((i * 7919) % ids.len()).map_or("", String::as_str);
            get(
                &addr,
                &key,
                &format!("/v1/subjects/{id}?purpose=postal-marketing"),
            )
        })
        .collect();
    let (read, read_cpu) = phase(reads, false)?;
    let reads_per_s = args.reads as f64 / read.elapsed.as_secs_f64();

    // Consent writes: every collected person grants email marketing, with evidence.
    let grants: Vec<Vec<u8>> = ids
        .iter()
        .map(|id| {
            let body = format!(
                "{{\"subject\":\"{id}\",\"purpose\":\"requested-communications\",\"channel\":\"email\",\"action\":\"grant\",\"method\":\"web-form\",\"evidence\":{{\"wording\":\"Email me the newsletter\",\"ip\":\"203.0.113.9\"}}}}"
            );
            post(&addr, &key, "/v1/consents", &body)
        })
        .collect();
    let (consented, consent_cpu) = phase(grants, false)?;
    let consents_per_s = ids.len() as f64 / consented.elapsed.as_secs_f64();

    // The HTTP ceiling of this client and server on this machine: a health check.
    let health: Vec<Vec<u8>> = (0..args.reads)
        .map(|_| format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes())
        .collect();
    let (healthy, health_cpu) = phase(health, false)?;
    let health_per_s = args.reads as f64 / healthy.elapsed.as_secs_f64();

    let drp = drp_phase(args, &addr, &key, &mut |requests| phase(requests, false))?;

    // Single checks, as a mailer makes before each send.
    let checks: Vec<Vec<u8>> = (0..args.reads)
        .map(|i| {
            get(
                &addr,
                &key,
                &format!(
                    "/v1/marketing/check?channel=email&email=person{}@bench.example",
                    (i * 7919) % args.collections.max(1)
                ),
            )
        })
        .collect();
    let (checked, check_cpu) = phase(checks, false)?;
    let single_checks_per_s = args.reads as f64 / checked.elapsed.as_secs_f64();

    // A campaign list checked in one streamed request: half known addresses, half not.
    let list_len = args.campaign;
    let mut list = String::from("{\"channel\":\"email\"}\n");
    for i in 0..list_len {
        if i % 2 == 0 {
            list.push_str(&format!(
                "person{}@bench.example\n",
                i % args.collections.max(1)
            ));
        } else {
            list.push_str(&format!("stranger{i}@elsewhere.example\n"));
        }
    }
    let request = post(&addr, &key, "/v1/marketing/check", &list);
    let before = cpu();
    let bulk = rt.block_on(async {
        let conn = Conn::open(&addr).await.map_err(|e| e.to_string())?;
        let (mut reader, mut writer) = conn.stream.into_split();
        let t = Instant::now();
        // Write and read at once: the answer streams back while the list is sent.
        let sending = tokio::spawn(async move { writer.write_all(&request).await.map(|_| writer) });
        let mut tail: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            let n = reader.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            tail.extend_from_slice(buf.get(..n).unwrap_or_default());
            if tail.ends_with(b"\r\n0\r\n\r\n") {
                break;
            }
            let keep = tail.len().saturating_sub(8);
            tail.drain(..keep);
        }
        let _writer = sending
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(t.elapsed())
    })?;
    let checks_per_s = list_len as f64 / bulk.as_secs_f64();
    let campaign_cpu = cpu_per_op(before, cpu(), list_len);

    // Rights requests against a large vault: fill it up first.
    let extra: Vec<Vec<u8>> = (args.collections..args.vault_subjects.max(args.collections))
        .map(|i| post(&addr, &key, "/v1/subjects", &collection_body(i)))
        .collect();
    let seeded = extra.len();
    let t = Instant::now();
    let (filled, _) = phase(extra, false)?;
    println!(
        "vault filled to {} subjects ({seeded} more in {:.0} s, {} failed)",
        args.collections + seeded,
        t.elapsed().as_secs_f64(),
        filled.failures
    );
    let subjects = args.collections + seeded;
    let request_body = |kind: &str, i: usize| {
        format!(
            "{{\"kind\":\"{kind}\",\"email\":\"person{i}@bench.example\",\"identity\":{{\"method\":\"bench\",\"evidence\":\"bench\"}}}}"
        )
    };
    // One at a time: submission (verified by the agent's check) to a
    // completed report, awaited on a second connection (`wait_ms`: the
    // answer comes when the request settles, so no polling competes with
    // the work for the two cores).
    let timed = |kind: &'static str, offset: usize| {
        rt.block_on(async {
            let mut submit = Conn::open(&addr).await.map_err(|e| e.to_string())?;
            let mut poll = Conn::open(&addr).await.map_err(|e| e.to_string())?;
            let mut latencies = Vec::new();
            for n in 0..args.timed_requests {
                let person = (offset + n * 7919) % subjects.max(1);
                let t = Instant::now();
                let (status, body) = submit
                    .call(&post(
                        &addr,
                        &key,
                        "/v1/requests",
                        &request_body(kind, person),
                    ))
                    .await
                    .map_err(|e| e.to_string())?;
                if status != 201 {
                    return Err(format!("a {kind} request was refused: {status}"));
                }
                let id = serde_json::from_slice::<serde_json::Value>(body)
                    .ok()
                    .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_string))
                    .ok_or("a request answer without an id")?;
                let path = format!("/v1/requests/{id}?wait_ms=30000");
                loop {
                    let (_, body) = poll
                        .call(&get(&addr, &key, &path))
                        .await
                        .map_err(|e| e.to_string())?;
                    if find(body, b"\"state\":\"completed\"").is_some()
                        || find(body, b"\"state\":\"partially-completed\"").is_some()
                    {
                        break;
                    }
                    if t.elapsed() > Duration::from_secs(30) {
                        return Err(format!("a {kind} request did not complete in 30 s"));
                    }
                }
                latencies.push(t.elapsed());
            }
            latencies.sort_unstable();
            Ok::<_, String>(latencies)
        })
    };
    let access = timed("access", 1)?;
    let erasure = timed("erasure", 3)?;
    // Many at once: erasures queued together, until none is in progress.
    let queued: Vec<Vec<u8>> = (0..args.queued_erasures)
        .map(|n| {
            post(
                &addr,
                &key,
                "/v1/requests",
                &request_body("erasure", (5 + n * 104_729) % subjects.max(1)),
            )
        })
        .collect();
    let before_erasures = cpu();
    let t = Instant::now();
    let (queued_run, _) = phase(queued, false)?;
    rt.block_on(async {
        let mut poll = Conn::open(&addr).await.map_err(|e| e.to_string())?;
        let path = "/v1/requests?state=in-progress&limit=1";
        loop {
            let (_, body) = poll
                .call(&get(&addr, &key, path))
                .await
                .map_err(|e| e.to_string())?;
            if body == b"[]" {
                return Ok::<_, String>(());
            }
            if t.elapsed() > Duration::from_secs(300) {
                return Err("queued erasures did not finish in 300 s".into());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })?;
    let erasure_elapsed = t.elapsed();
    let erasures_per_s = args.queued_erasures as f64 / erasure_elapsed.as_secs_f64();
    let erasure_cpu = cpu_per_op(before_erasures, cpu(), args.queued_erasures);
    drop(server);

    let (per_row, batched) = sqlite_baseline(dir, args.collections, mean_bytes)?;
    println!();
    println!("| measure | figure |");
    println!("|---|---|");
    println!(
        "| collections (POST /v1/subjects, 3 fields: encrypt, store, blind index, audit, outbox) | {collections_per_s:.0}/s, p50 {:.2} ms, p99 {:.2} ms, {} failed, {collect_cpu} |",
        ms(percentile(&collected.latencies, 0.50)),
        ms(percentile(&collected.latencies, 0.99)),
        collected.failures
    );
    println!(
        "| purpose-checked reads (GET /v1/subjects/{{id}}: decide, decrypt, audit) | {reads_per_s:.0}/s, p50 {:.2} ms, p99 {:.2} ms, {} failed, {read_cpu} |",
        ms(percentile(&read.latencies, 0.50)),
        ms(percentile(&read.latencies, 0.99)),
        read.failures
    );
    println!(
        "| consent writes (POST /v1/consents: validate, append event, fold preferences, audit, outbox) | {consents_per_s:.0}/s, p50 {:.2} ms, p99 {:.2} ms, {} failed, {consent_cpu} |",
        ms(percentile(&consented.latencies, 0.50)),
        ms(percentile(&consented.latencies, 0.99)),
        consented.failures
    );
    println!(
        "| baseline: GET /healthz with the same clients (this machine's HTTP ceiling for them) | {health_per_s:.0}/s, {health_cpu} |"
    );
    println!(
        "| single marketing checks (GET /v1/marketing/check by email) | {single_checks_per_s:.0}/s, p50 {:.2} ms, p99 {:.2} ms, {} failed, {check_cpu} |",
        ms(percentile(&checked.latencies, 0.50)),
        ms(percentile(&checked.latencies, 0.99)),
        checked.failures
    );
    println!(
        "| marketing check of a {list_len}-address campaign list in one streamed request (half known, half not) | {checks_per_s:.0} addresses/s, {campaign_cpu} |"
    );
    println!(
        "| baseline: bare SQLite inserts of {} rows of {mean_bytes} B, one durable transaction each | {per_row:.0}/s |",
        args.collections
    );
    println!("| baseline: the same rows in 1,000-row transactions | {batched:.0}/s |");
    println!(
        "| access request, verified submission to completed report (JSON and HTML), vault of {subjects} subjects | p50 {:.2} ms, p99 {:.2} ms ({} requests, one at a time) |",
        ms(percentile(&access, 0.50)),
        ms(percentile(&access, 0.99)),
        access.len()
    );
    println!(
        "| erasure request, verified submission to completed (key destroyed, lookups gone, audited) | p50 {:.2} ms, p99 {:.2} ms ({} requests, one at a time) |",
        ms(percentile(&erasure, 0.50)),
        ms(percentile(&erasure, 0.99)),
        erasure.len()
    );
    println!(
        "| erasures, {} queued at once, to the last completed | {erasures_per_s:.0}/s ({} refused at intake), {erasure_cpu} |",
        args.queued_erasures, queued_run.failures
    );
    println!(
        "| signed Data Rights Protocol requests (POST /v1/data-rights-request: decode, Ed25519 verify_strict, claims, register with the agent's attested identity, task queued, audit) | {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, {} failed, {} |",
        drp.per_s,
        ms(percentile(&drp.run.latencies, 0.50)),
        ms(percentile(&drp.run.latencies, 0.99)),
        drp.run.failures,
        drp.cpu
    );
    println!(
        "| baseline: bare decode and Ed25519 verify_strict of the same {} bodies, one thread | {:.0}/s |",
        args.drp_requests, drp.bare_verify_per_s
    );
    println!(
        "| collections / per-row baseline | {:.2}x |",
        collections_per_s / per_row
    );
    println!(
        "| collections / batched baseline | {:.2}x |",
        collections_per_s / batched
    );
    Ok(())
}
