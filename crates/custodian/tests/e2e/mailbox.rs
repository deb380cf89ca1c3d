//! A real SMTP server on loopback, for the tests that send mail: it speaks
//! enough of RFC 5321 for a client (greeting, EHLO/HELO, MAIL, RCPT, DATA
//! with dot-unstuffing, RSET, NOOP, QUIT), advertises no extension (so no
//! STARTTLS and no AUTH: clients use `smtp_tls = none`, allowed on loopback
//! only), and keeps every message it accepts. It can answer the next
//! recipient with a transient (451) or permanent (550) failure whose text
//! echoes the address, as real relays do, so tests can check that the
//! address goes no further. Dropping it stops it.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One message as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The envelope sender (MAIL FROM), without the angle brackets.
    pub from: String,
    /// The envelope recipients (RCPT TO).
    pub to: Vec<String>,
    /// The message as sent after DATA, dot-unstuffed, lines ending CRLF.
    pub data: String,
}

impl Received {
    /// The header fields, unfolded, in order.
    pub fn headers(&self) -> Vec<(String, String)> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or("");
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = fields.last_mut() {
                    value.push(' ');
                    value.push_str(line.trim());
                }
            } else if let Some((name, value)) = line.split_once(':') {
                fields.push((name.trim().to_string(), value.trim().to_string()));
            }
        }
        fields
    }

    /// A header field's value (the first of that name, any case), with
    /// RFC 2047 encoded words decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers()
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| decode_words(&v))
    }

    /// The body, decoded from its Content-Transfer-Encoding (7bit, 8bit,
    /// quoted-printable or base64), lines ending CRLF.
    pub fn body(&self) -> String {
        let raw = self
            .data
            .split_once("\r\n\r\n")
            .map_or("", |(_, body)| body);
        match self
            .header("Content-Transfer-Encoding")
            .map(|e| e.to_ascii_lowercase())
            .as_deref()
        {
            Some("quoted-printable") => quoted_printable(raw),
            Some("base64") => {
                use base64::Engine as _;
                let compact: String = raw.split_whitespace().collect();
                String::from_utf8_lossy(
                    &base64::engine::general_purpose::STANDARD
                        .decode(compact)
                        .unwrap(),
                )
                .into_owned()
            }
            _ => raw.to_string(),
        }
    }

    /// The first run of 6 to 8 digits in the body: a one-time code.
    pub fn code(&self) -> Option<String> {
        let body = self.body();
        body.split(|c: char| !c.is_ascii_digit())
            .find(|run| (6..=8).contains(&run.len()))
            .map(str::to_string)
    }
}

/// Decodes `=?charset?B?...?=` and `=?charset?Q?...?=` words (UTF-8 and
/// ASCII only, which is what the tests send); blanks between two encoded
/// words go, as RFC 2047 says.
fn decode_words(value: &str) -> String {
    use base64::Engine as _;
    let mut out = String::new();
    let mut rest = value;
    let mut after_word = false;
    while let Some(start) = rest.find("=?") {
        let parts: Vec<&str> = rest[start + 2..].splitn(3, '?').collect();
        let (Some(charset), Some(encoding), Some(tail)) =
            (parts.first(), parts.get(1), parts.get(2))
        else {
            break;
        };
        let Some(end) = tail.find("?=") else { break };
        let between = &rest[..start];
        if !(after_word && between.trim().is_empty()) {
            out.push_str(between);
        }
        let text = &tail[..end];
        if encoding.eq_ignore_ascii_case("b") {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .unwrap();
            out.push_str(&String::from_utf8_lossy(&bytes));
        } else {
            out.push_str(&quoted_printable(&text.replace('_', " ")));
        }
        after_word = true;
        rest = &rest[start + 2 + charset.len() + 1 + encoding.len() + 1 + end + 2..];
    }
    out.push_str(rest);
    out
}

fn quoted_printable(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'=' if bytes[i + 1..].starts_with(b"\r\n") => i += 3,
            b'=' if bytes[i + 1..].starts_with(b"\n") => i += 2,
            b'=' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'=');
                        i += 1;
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How the server answers the next RCPT TO, instead of accepting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 451: try again later.
    Transient,
    /// 550: refused for good.
    Permanent,
}

#[derive(Default)]
struct Shared {
    messages: Mutex<Vec<Received>>,
    arrived: Condvar,
    faults: Mutex<VecDeque<Fault>>,
}

pub struct Mailbox {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Mailbox {
    /// Listens on 127.0.0.1 on a free port, one thread per connection.
    pub fn start() -> Mailbox {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let shared = shared.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let shared = shared.clone();
                    std::thread::spawn(move || {
                        let _ = session(stream, &shared);
                    });
                }
            })
        };
        Mailbox {
            addr,
            shared,
            stop,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The next RCPT TO is answered with this fault (then it is used up).
    pub fn fail_next(&self, fault: Fault) {
        self.shared.faults.lock().unwrap().push_back(fault);
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<Received> {
        self.shared.messages.lock().unwrap().clone()
    }

    /// The latest message to `address` (any case), if one has arrived.
    pub fn latest_to(&self, address: &str) -> Option<Received> {
        self.messages()
            .into_iter()
            .rev()
            .find(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(address)))
    }

    /// The latest message to `address`, waiting up to `timeout` for one
    /// that is not among the first `seen` messages received.
    pub fn wait_for(&self, address: &str, seen: usize, timeout: Duration) -> Option<Received> {
        let deadline = Instant::now() + timeout;
        let mut messages = self.shared.messages.lock().unwrap();
        loop {
            if let Some(m) = messages
                .iter()
                .skip(seen)
                .rev()
                .find(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(address)))
            {
                return Some(m.clone());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            messages = self.shared.arrived.wait_timeout(messages, left).unwrap().0;
        }
    }

    /// The one-time code in the latest message to `address`.
    pub fn code_for(&self, address: &str) -> Option<String> {
        self.latest_to(address)?.code()
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The address inside `FROM:<a@b> PARAMS` or `TO:<a@b>`.
fn path(argument: &str) -> Option<String> {
    let (_, rest) = argument.split_once(':')?;
    let rest = rest.trim();
    let inner = rest.strip_prefix('<')?.split('>').next()?;
    Some(inner.to_string())
}

/// One SMTP session, until QUIT or the client goes. A client silent for ten
/// seconds is dropped, so a stuck test cannot keep a thread forever.
fn session(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut reply = |line: &str| writer.write_all(format!("{line}\r\n").as_bytes());
    reply("220 mailbox.test ESMTP custodian test mailbox")?;
    let mut greeted = false;
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        let (verb, argument) = text.split_once(' ').unwrap_or((text, ""));
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" | "HELO" => {
                greeted = true;
                from = None;
                to.clear();
                reply("250 mailbox.test")?;
            }
            "MAIL" if greeted => match path(argument) {
                Some(sender) => {
                    from = Some(sender);
                    to.clear();
                    reply("250 2.1.0 OK")?;
                }
                None => reply("501 5.5.4 Syntax: MAIL FROM:<address>")?,
            },
            "RCPT" if from.is_some() => match path(argument) {
                Some(recipient) => {
                    let fault = shared.faults.lock().unwrap().pop_front();
                    match fault {
                        Some(Fault::Transient) => reply(&format!(
                            "451 4.3.0 <{recipient}>: temporary failure, try again later"
                        ))?,
                        Some(Fault::Permanent) => reply(&format!(
                            "550 5.1.1 <{recipient}>: recipient address rejected"
                        ))?,
                        None => {
                            to.push(recipient);
                            reply("250 2.1.5 OK")?;
                        }
                    }
                }
                None => reply("501 5.5.4 Syntax: RCPT TO:<address>")?,
            },
            "DATA" if !to.is_empty() => {
                reply("354 End data with <CR><LF>.<CR><LF>")?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if reader.read_until(b'\n', &mut line)? == 0 {
                        return Ok(());
                    }
                    let text = String::from_utf8_lossy(&line);
                    let text = text.trim_end_matches(['\r', '\n']);
                    if text == "." {
                        break;
                    }
                    data.push_str(text.strip_prefix('.').unwrap_or(text));
                    data.push_str("\r\n");
                }
                let message = Received {
                    from: from.take().unwrap_or_default(),
                    to: std::mem::take(&mut to),
                    data,
                };
                let n = {
                    let mut messages = shared.messages.lock().unwrap();
                    messages.push(message);
                    messages.len()
                };
                shared.arrived.notify_all();
                reply(&format!("250 2.0.0 OK queued as {n}"))?;
            }
            "RSET" => {
                from = None;
                to.clear();
                reply("250 2.0.0 OK")?;
            }
            "NOOP" => reply("250 2.0.0 OK")?,
            "QUIT" => {
                reply("221 2.0.0 Bye")?;
                return Ok(());
            }
            "MAIL" | "RCPT" | "DATA" => reply("503 5.5.1 Bad sequence of commands")?,
            _ => reply("502 5.5.2 Command not recognized")?,
        }
    }
}
