//! A PostgreSQL connection string, and the TLS settings it carries.
//!
//! The string may hold a password (in the URL's user part or a `password`
//! parameter), so it is never printed as given: `Display` and `Debug` show
//! it with the password left out, and only the connecting code reads the
//! whole string.

use std::fmt;
use std::path::{Path, PathBuf};

/// A `postgres://` URL or a `key=value` connection string. Prints redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    raw: String,
    /// A root certificate given apart from the URL (a setting), which
    /// takes the place of the URL's `sslrootcert`.
    root_cert: Option<PathBuf>,
}

/// How the connection is protected, after libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it, its certificate not checked (libpq's
    /// default, and the default here).
    Prefer,
    /// TLS always, its certificate not checked.
    Require,
    /// TLS, with a certificate issued under a trusted root; any host name.
    VerifyCa,
    /// TLS, with a certificate issued under a trusted root for the host
    /// connected to.
    VerifyFull,
}

/// The connection string split into what the PostgreSQL client reads and
/// the TLS settings it does not.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Split {
    /// The string without `sslmode` and `sslrootcert`.
    pub rest: String,
    pub mode: SslMode,
    pub root_cert: Option<PathBuf>,
}

impl DatabaseUrl {
    pub fn new(raw: impl Into<String>) -> DatabaseUrl {
        DatabaseUrl {
            raw: raw.into(),
            root_cert: None,
        }
    }

    /// The root certificate (PEM) to trust, in place of the URL's
    /// `sslrootcert`.
    pub fn with_root_cert(mut self, path: impl Into<PathBuf>) -> DatabaseUrl {
        self.root_cert = Some(path.into());
        self
    }

    pub fn root_cert(&self) -> Option<&Path> {
        self.root_cert.as_deref()
    }

    /// The whole string, password included: for connecting, never for
    /// printing.
    pub fn expose(&self) -> &str {
        &self.raw
    }

    /// The same string with a password left out: for messages.
    pub fn redacted(&self) -> String {
        let mut shown = if is_url(&self.raw) {
            redact_url(&self.raw)
        } else {
            tokens(&self.raw)
                .into_iter()
                .filter(|t| !t.key.eq_ignore_ascii_case("password"))
                .map(|t| t.text)
                .collect::<Vec<_>>()
                .join(" ")
        };
        if let Some(root) = &self.root_cert {
            shown.push_str(&format!(" (root certificate {})", root.display()));
        }
        shown
    }

    /// Takes out the TLS settings the PostgreSQL client does not know.
    pub(crate) fn split(&self) -> Result<Split, String> {
        let (rest, mode, root) = if is_url(&self.raw) {
            split_url(&self.raw)
        } else {
            split_pairs(&self.raw)
        };
        let root_cert = self.root_cert.clone().or(root.map(PathBuf::from));
        let mode = match mode.as_deref() {
            Some("disable") => SslMode::Disable,
            Some("prefer") => SslMode::Prefer,
            Some("require") => SslMode::Require,
            Some("verify-ca") => SslMode::VerifyCa,
            Some("verify-full") => SslMode::VerifyFull,
            // A root certificate given says the server is to be checked.
            None if root_cert.is_some() => SslMode::VerifyFull,
            None => SslMode::Prefer,
            Some(other) => {
                return Err(format!(
                    "sslmode={other} is not supported; use disable, prefer, require, verify-ca or verify-full"
                ));
            }
        };
        if root_cert.is_some() && matches!(mode, SslMode::Disable) {
            return Err("a root certificate is given but sslmode=disable turns TLS off".into());
        }
        Ok(Split {
            rest,
            mode,
            root_cert,
        })
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<DatabaseUrl, Self::Err> {
        Ok(DatabaseUrl::new(s))
    }
}

impl<'de> serde::Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<DatabaseUrl, D::Error> {
        String::deserialize(d).map(DatabaseUrl::new)
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({:?})", self.redacted())
    }
}

fn is_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// The URL without the password of its user part or of a `password`
/// parameter.
fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let (scheme, after) = base.split_once("://").unwrap_or(("postgres", base));
    let (authority, path) = match after.find('/') {
        Some(i) => after.split_at(i),
        None => (after, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((user, hosts)) => {
            let user = user.split_once(':').map_or(user, |(name, _)| name);
            format!("{user}@{hosts}")
        }
        None => authority.to_string(),
    };
    let mut shown = format!("{scheme}://{authority}{path}");
    if let Some(q) = query {
        let kept: Vec<&str> = q
            .split('&')
            .filter(|pair| {
                let key = pair.split_once('=').map_or(*pair, |(k, _)| k);
                !decode(key).eq_ignore_ascii_case("password")
            })
            .collect();
        if !kept.is_empty() {
            shown.push('?');
            shown.push_str(&kept.join("&"));
        }
    }
    shown
}

type Taken = (String, Option<String>, Option<String>);

fn split_url(url: &str) -> Taken {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None, None);
    };
    let (mut mode, mut root) = (None, None);
    let mut kept = Vec::new();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match decode(key).as_str() {
            "sslmode" => mode = Some(decode(value)),
            "sslrootcert" => root = Some(decode(value)),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (rest, mode, root)
}

fn split_pairs(s: &str) -> Taken {
    let (mut mode, mut root) = (None, None);
    let mut kept = Vec::new();
    for t in tokens(s) {
        match t.key.as_str() {
            "sslmode" => mode = Some(t.value),
            "sslrootcert" => root = Some(t.value),
            _ => kept.push(t.text),
        }
    }
    (kept.join(" "), mode, root)
}

/// One `key=value` of a libpq connection string, with its text as written.
struct Token {
    key: String,
    value: String,
    text: String,
}

/// The `key = value` pairs of a libpq connection string; a value may be
/// quoted with `'`, with `\` escaping the next character.
fn tokens(s: &str) -> Vec<Token> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied();
    while i < chars.len() {
        while at(i).is_some_and(char::is_whitespace) {
            i += 1;
        }
        let start = i;
        let mut key = String::new();
        while let Some(c) = at(i).filter(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
            i += 1;
        }
        while at(i).is_some_and(char::is_whitespace) {
            i += 1;
        }
        if at(i) == Some('=') {
            i += 1;
        }
        while at(i).is_some_and(char::is_whitespace) {
            i += 1;
        }
        let mut value = String::new();
        if at(i) == Some('\'') {
            i += 1;
            while let Some(c) = at(i) {
                i += 1;
                match c {
                    '\\' => {
                        if let Some(next) = at(i) {
                            value.push(next);
                            i += 1;
                        }
                    }
                    '\'' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = at(i).filter(|c| !c.is_whitespace()) {
                value.push(c);
                i += 1;
            }
        }
        if key.is_empty() && value.is_empty() {
            break;
        }
        out.push(Token {
            key,
            value,
            text: chars.get(start..i).unwrap_or_default().iter().collect(),
        });
    }
    out
}

/// Percent-decoding, as the PostgreSQL client does for URL parameters.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_never_shown() {
        let shown = |s: &str| DatabaseUrl::new(s).to_string();
        assert_eq!(
            shown("postgres://app:secret@db:5432/custodian"),
            "postgres://app@db:5432/custodian"
        );
        assert_eq!(
            shown("postgres://db/custodian?sslmode=verify-full"),
            "postgres://db/custodian?sslmode=verify-full"
        );
        for s in [
            "postgres://db/custodian?password=hunter2",
            "postgres://db/custodian?sslmode=require&pass%77ord=hunter2",
            "postgresql://u:hunter2@db",
            "host=db password=hunter2 dbname=c",
            "host=db password = 'hun ter2' dbname=c",
        ] {
            let url = DatabaseUrl::new(s);
            assert!(!url.to_string().contains("hunter2"), "{url}");
            assert!(!url.to_string().contains("ter2"), "{url}");
            assert!(!format!("{url:?}").contains("ter2"), "{url:?}");
        }
        assert_eq!(
            DatabaseUrl::new("host=db password=x dbname=c").to_string(),
            "host=db dbname=c"
        );
    }

    #[test]
    fn tls_settings_are_taken_out() {
        let s = DatabaseUrl::new(
            "postgres://u@db/c?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca.pem",
        )
        .split()
        .unwrap();
        assert_eq!(s.rest, "postgres://u@db/c?application_name=x");
        assert_eq!(s.mode, SslMode::VerifyFull);
        assert_eq!(s.root_cert, Some(PathBuf::from("/etc/ca.pem")));

        let s = DatabaseUrl::new("host=db sslmode='require' dbname=c")
            .split()
            .unwrap();
        assert_eq!(s.rest, "host=db dbname=c");
        assert_eq!(s.mode, SslMode::Require);

        // The libpq default; a root certificate alone asks for verify-full;
        // the setting's root certificate wins over the URL's.
        let plain = DatabaseUrl::new("postgres://db/c");
        assert_eq!(plain.split().unwrap().mode, SslMode::Prefer);
        let rooted = plain.with_root_cert("/ca.pem");
        assert_eq!(rooted.split().unwrap().mode, SslMode::VerifyFull);
        let both =
            DatabaseUrl::new("postgres://db/c?sslrootcert=/url.pem").with_root_cert("/set.pem");
        assert_eq!(
            both.split().unwrap().root_cert,
            Some(PathBuf::from("/set.pem"))
        );

        assert!(
            DatabaseUrl::new("postgres://db/c?sslmode=allow")
                .split()
                .is_err()
        );
        assert!(
            DatabaseUrl::new("postgres://db/c?sslmode=disable&sslrootcert=/ca.pem")
                .split()
                .is_err()
        );
    }
}
