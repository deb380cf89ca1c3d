//! Settings: command-line flags, then `CUSTODIAN_*` environment variables
//! (clap reads both), then a TOML file (`--config`), then defaults.

use clap::{Args, ValueEnum};
use custodian_vault::store::DatabaseUrl;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// Where the data lives; shared by `serve`, `migrate`, `keys` and `audit`.
#[derive(Args, Debug, Clone, Default)]
pub struct StoreArgs {
    /// A TOML settings file.
    #[arg(long, env = "CUSTODIAN_CONFIG")]
    pub config: Option<PathBuf>,
    /// The folder for the embedded database and the key file.
    #[arg(long, env = "CUSTODIAN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// A `postgres://` URL: use PostgreSQL instead of the embedded store.
    /// TLS follows its `sslmode` (disable, prefer, require, verify-ca,
    /// verify-full) and `sslrootcert`.
    #[arg(long, env = "CUSTODIAN_DATABASE_URL")]
    pub database_url: Option<DatabaseUrl>,
    /// The root certificate (PEM) that PostgreSQL's certificate must chain
    /// to; takes the place of the URL's `sslrootcert`, and without an
    /// `sslmode` in the URL means verify-full.
    #[arg(long, env = "CUSTODIAN_DATABASE_ROOT_CERT")]
    pub database_root_cert: Option<PathBuf>,
    /// The key file (default: keys.toml in the data folder).
    #[arg(long, env = "CUSTODIAN_KEY_FILE")]
    pub key_file: Option<PathBuf>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The policy file (default: the reference policy built into the binary).
    #[arg(long, env = "CUSTODIAN_POLICY")]
    pub policy: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, env = "CUSTODIAN_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Requests per second allowed to one API key; 0 turns the limit off.
    #[arg(long, env = "CUSTODIAN_RATE_LIMIT_PER_KEY")]
    pub rate_limit_per_key: Option<u32>,
    /// Requests per second allowed from one client address; 0 turns the limit off.
    #[arg(long, env = "CUSTODIAN_RATE_LIMIT_PER_IP")]
    pub rate_limit_per_ip: Option<u32>,
    /// The largest request body accepted, in bytes.
    #[arg(long, env = "CUSTODIAN_BODY_LIMIT")]
    pub body_limit: Option<usize>,
    /// How long, in milliseconds, a verified API key is trusted before the
    /// store is asked again (default 2000): a key revoked on another node
    /// stops working within this time.
    #[arg(long, env = "CUSTODIAN_KEY_CACHE_MS")]
    pub key_cache_ms: Option<u64>,
    /// How long, in milliseconds, a node holds a claimed task before another
    /// may take it over (default 30000): how soon the work of a node that
    /// died is picked up again.
    #[arg(long, env = "CUSTODIAN_TASK_LEASE_MS")]
    pub task_lease_ms: Option<u64>,
    /// How long, in milliseconds, a request may await the person's
    /// verification before it expires (default 2592000000, thirty days).
    #[arg(long, env = "CUSTODIAN_UNVERIFIED_EXPIRY_MS")]
    pub unverified_expiry_ms: Option<u64>,
    /// The least time, in milliseconds, between two one-time codes for one
    /// request (default 60000).
    #[arg(long, env = "CUSTODIAN_CODE_RESEND_GAP_MS")]
    pub code_resend_gap_ms: Option<u64>,
    /// Where this server is reached from outside, e.g.
    /// `https://privacy.example.org` (default: `http://` and the address it
    /// listens on): the API base of the Data Rights Protocol's discovery
    /// document and of verification links.
    #[arg(long, env = "CUSTODIAN_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// This business's id in the Data Rights Protocol (`business-id`);
    /// default: the controller's name in capitals, `I_IMAGE_IT_LTD`.
    #[arg(long, env = "CUSTODIAN_DRP_BUSINESS_ID")]
    pub drp_business_id: Option<String>,
    /// How often, in seconds, the retention sweep erases the data whose
    /// retention ended (default 3600); 0 turns the scheduled sweep off, and
    /// the published notice then no longer says data is erased automatically.
    #[arg(long, env = "CUSTODIAN_RETENTION_SWEEP_INTERVAL")]
    pub retention_sweep_interval: Option<u64>,
    #[command(flatten)]
    pub smtp: SmtpArgs,
}

/// The organisation's mail relay, for one-time codes. The credentials are
/// read from the environment only (`CUSTODIAN_SMTP_USERNAME`,
/// `CUSTODIAN_SMTP_PASSWORD`): never a flag (visible to every user in the
/// process list), never the settings file.
#[derive(Args, Debug, Clone, Default)]
pub struct SmtpArgs {
    /// The mail relay's host name or address (unset: no mail is sent).
    #[arg(long, env = "CUSTODIAN_SMTP_HOST")]
    pub smtp_host: Option<String>,
    /// The relay's port (default 587; 465 with `--smtp-tls tls`).
    #[arg(long, env = "CUSTODIAN_SMTP_PORT")]
    pub smtp_port: Option<u16>,
    /// How the connection is secured: starttls (the default), tls, or none
    /// (allowed only for a relay on loopback).
    #[arg(long, env = "CUSTODIAN_SMTP_TLS")]
    pub smtp_tls: Option<SmtpTls>,
    /// The sender, `privacy@example.org` or `Example Ltd <privacy@example.org>`.
    #[arg(long, env = "CUSTODIAN_SMTP_FROM")]
    pub smtp_from: Option<String>,
    /// How long one message may take to send, in milliseconds (default 30000).
    #[arg(long, env = "CUSTODIAN_SMTP_TIMEOUT_MS")]
    pub smtp_timeout_ms: Option<u64>,
}

/// How the connection to the relay is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which the relay must offer.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
    /// No encryption: only for a relay on this machine.
    None,
}

/// The settings file. Every key is optional; unknown keys are refused.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<DatabaseUrl>,
    pub database_root_cert: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub policy: Option<PathBuf>,
    pub rate_limit_per_key: Option<u32>,
    pub rate_limit_per_ip: Option<u32>,
    pub body_limit: Option<usize>,
    pub key_cache_ms: Option<u64>,
    pub task_lease_ms: Option<u64>,
    pub unverified_expiry_ms: Option<u64>,
    pub code_resend_gap_ms: Option<u64>,
    pub public_url: Option<String>,
    pub drp_business_id: Option<String>,
    pub retention_sweep_interval: Option<u64>,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<u16>,
    pub smtp_tls: Option<SmtpTls>,
    pub smtp_from: Option<String>,
    pub smtp_timeout_ms: Option<u64>,
}

/// Resolved settings for the store.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    pub data_dir: PathBuf,
    /// With the root certificate setting applied; prints redacted.
    pub database_url: Option<DatabaseUrl>,
    pub key_file: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub store: StoreSettings,
    pub policy: Option<PathBuf>,
    pub listen: SocketAddr,
    pub rate_limit_per_key: u32,
    pub rate_limit_per_ip: u32,
    pub body_limit: usize,
    pub key_cache: std::time::Duration,
    pub task_lease: std::time::Duration,
    pub unverified_expiry: std::time::Duration,
    pub code_resend_gap: std::time::Duration,
    /// Where this server is reached from outside, without a trailing slash.
    pub public_url: Option<String>,
    pub drp_business_id: Option<String>,
    /// How often the retention sweep runs; `None`: not on a schedule.
    pub retention_sweep: Option<std::time::Duration>,
    /// The mail relay; `None` when no `smtp_host` is set.
    pub smtp: Option<SmtpSettings>,
}

/// Resolved, validated settings for the mail relay.
#[derive(Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub from: String,
    pub credentials: Option<SmtpCredentials>,
    pub timeout: std::time::Duration,
}

/// The relay's user name and password, from the environment.
#[derive(Clone)]
pub struct SmtpCredentials {
    pub username: String,
    pub password: String,
}

/// Neither credential ever prints.
impl std::fmt::Debug for SmtpCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SmtpCredentials(<redacted>)")
    }
}

/// Neither credential ever prints.
impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("from", &self.from)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

pub const DEFAULT_SMTP_PORT: u16 = 587;
pub const DEFAULT_SMTPS_PORT: u16 = 465;
pub const DEFAULT_SMTP_TIMEOUT_MS: u64 = 30_000;
pub const SMTP_USERNAME_ENV: &str = "CUSTODIAN_SMTP_USERNAME";
pub const SMTP_PASSWORD_ENV: &str = "CUSTODIAN_SMTP_PASSWORD";

pub const DEFAULT_DATA_DIR: &str = "custodian-data";
pub const DEFAULT_KEY_CACHE_MS: u64 = 2_000;
pub const DEFAULT_TASK_LEASE_MS: u64 = 30_000;
/// The retention sweep runs hourly unless told otherwise: the policy's
/// promise that data is kept no longer than necessary holds without anyone
/// remembering to run it.
pub const DEFAULT_RETENTION_SWEEP_INTERVAL_S: u64 = 3_600;
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_RATE_PER_KEY: u32 = 5_000;
pub const DEFAULT_RATE_PER_IP: u32 = 10_000;
pub const DEFAULT_BODY_LIMIT: usize = 256 * 1024;

fn read_file(path: Option<&Path>) -> Result<FileSettings, String> {
    let Some(path) = path else {
        return Ok(FileSettings::default());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read the settings file: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        let (line, column) = e.span().map_or((1, 1), |s| {
            custodian_policy::located::line_column(&text, s.start)
        });
        format!("{}:{line}:{column}: {}", path.display(), e.message().trim())
    })
}

impl StoreArgs {
    pub fn resolve(&self) -> Result<StoreSettings, String> {
        let file = read_file(self.config.as_deref())?;
        Ok(self.resolve_with(&file))
    }

    fn resolve_with(&self, file: &FileSettings) -> StoreSettings {
        let data_dir = self
            .data_dir
            .clone()
            .or_else(|| file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let key_file = self
            .key_file
            .clone()
            .or_else(|| file.key_file.clone())
            .unwrap_or_else(|| data_dir.join("keys.toml"));
        let root_cert = self
            .database_root_cert
            .clone()
            .or_else(|| file.database_root_cert.clone());
        let database_url = self
            .database_url
            .clone()
            .or_else(|| file.database_url.clone())
            .map(|url| match root_cert {
                Some(root) => url.with_root_cert(root),
                None => url,
            });
        StoreSettings {
            database_url,
            data_dir,
            key_file,
        }
    }
}

impl ServeArgs {
    pub fn resolve(&self) -> Result<Settings, String> {
        let file = read_file(self.store.config.as_deref())?;
        let smtp = self.smtp.resolve_with(&file, smtp_credentials_from_env)?;
        let default_listen: SocketAddr = DEFAULT_LISTEN
            .parse()
            .map_err(|_| "bad default address".to_string())?;
        Ok(Settings {
            store: self.store.resolve_with(&file),
            policy: self.policy.clone().or(file.policy),
            listen: self.listen.or(file.listen).unwrap_or(default_listen),
            rate_limit_per_key: self
                .rate_limit_per_key
                .or(file.rate_limit_per_key)
                .unwrap_or(DEFAULT_RATE_PER_KEY),
            rate_limit_per_ip: self
                .rate_limit_per_ip
                .or(file.rate_limit_per_ip)
                .unwrap_or(DEFAULT_RATE_PER_IP),
            body_limit: self
                .body_limit
                .or(file.body_limit)
                .unwrap_or(DEFAULT_BODY_LIMIT),
            key_cache: std::time::Duration::from_millis(
                self.key_cache_ms
                    .or(file.key_cache_ms)
                    .unwrap_or(DEFAULT_KEY_CACHE_MS),
            ),
            task_lease: std::time::Duration::from_millis(
                self.task_lease_ms
                    .or(file.task_lease_ms)
                    .unwrap_or(DEFAULT_TASK_LEASE_MS),
            ),
            unverified_expiry: self
                .unverified_expiry_ms
                .or(file.unverified_expiry_ms)
                .map_or(
                    custodian_engine::requests::tasks::DEFAULT_UNVERIFIED_EXPIRY,
                    std::time::Duration::from_millis,
                ),
            code_resend_gap: self.code_resend_gap_ms.or(file.code_resend_gap_ms).map_or(
                custodian_engine::requests::unverified::DEFAULT_RESEND_GAP,
                std::time::Duration::from_millis,
            ),
            public_url: public_url(self.public_url.clone().or(file.public_url))?,
            drp_business_id: business_id(self.drp_business_id.clone().or(file.drp_business_id))?,
            retention_sweep: match self
                .retention_sweep_interval
                .or(file.retention_sweep_interval)
                .unwrap_or(DEFAULT_RETENTION_SWEEP_INTERVAL_S)
            {
                0 => None,
                seconds => Some(std::time::Duration::from_secs(seconds)),
            },
            smtp,
        })
    }
}

/// An http(s) URL, kept without its trailing slash.
fn public_url(given: Option<String>) -> Result<Option<String>, String> {
    let Some(url) = given else { return Ok(None) };
    let url = url.trim().trim_end_matches('/').to_string();
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or_default();
    if rest.is_empty() || rest.contains(char::is_whitespace) {
        return Err("public_url must be an http:// or https:// URL".into());
    }
    Ok(Some(url))
}

fn business_id(given: Option<String>) -> Result<Option<String>, String> {
    match given {
        Some(id) if !custodian_engine::agents::valid_id(&id) => {
            Err("drp_business_id is 1 to 64 letters, digits, `_` or `-`".into())
        }
        other => Ok(other),
    }
}

/// The relay's credentials from `CUSTODIAN_SMTP_USERNAME` and
/// `CUSTODIAN_SMTP_PASSWORD`: both or neither.
fn smtp_credentials_from_env() -> Result<Option<SmtpCredentials>, String> {
    let read = |name: &str| match std::env::var(name) {
        Ok(v) if !v.is_empty() => Ok(Some(v)),
        Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{name} is not valid UTF-8")),
    };
    match (read(SMTP_USERNAME_ENV)?, read(SMTP_PASSWORD_ENV)?) {
        (Some(username), Some(password)) => Ok(Some(SmtpCredentials { username, password })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(format!(
            "{SMTP_USERNAME_ENV} is set but {SMTP_PASSWORD_ENV} is not: set both or neither"
        )),
        (None, Some(_)) => Err(format!(
            "{SMTP_PASSWORD_ENV} is set but {SMTP_USERNAME_ENV} is not: set both or neither"
        )),
    }
}

/// Whether `host` names this machine: `localhost` or a loopback address
/// (127.0.0.0/8, ::1, with or without brackets).
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim();
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl SmtpArgs {
    /// Flags and environment over the file; `None` when no host is set.
    /// Refused: a sender missing or without `@`, port 0, a zero timeout,
    /// and `none` for a relay that is not on loopback (the codes and the
    /// credentials would cross the network in clear).
    fn resolve_with(
        &self,
        file: &FileSettings,
        credentials: impl FnOnce() -> Result<Option<SmtpCredentials>, String>,
    ) -> Result<Option<SmtpSettings>, String> {
        let host = self
            .smtp_host
            .clone()
            .or_else(|| file.smtp_host.clone())
            .map(|h| {
                // `[::1]` as written in a URL: the bare address is what connects.
                let h = h.trim();
                h.strip_prefix('[')
                    .and_then(|h| h.strip_suffix(']'))
                    .unwrap_or(h)
                    .to_string()
            })
            .filter(|h| !h.is_empty());
        let from = self.smtp_from.clone().or_else(|| file.smtp_from.clone());
        let Some(host) = host else {
            if from.is_some() || self.smtp_port.or(file.smtp_port).is_some() {
                return Err("smtp: smtp_from or smtp_port is set but smtp_host is not".into());
            }
            return Ok(None);
        };
        let tls = self.smtp_tls.or(file.smtp_tls).unwrap_or_default();
        if tls == SmtpTls::None && !is_loopback_host(&host) {
            return Err(format!(
                "smtp: smtp_tls = \"none\" is allowed only for a relay on loopback (127.0.0.1, ::1, localhost), not `{host}`: one-time codes and credentials would cross the network unencrypted; use \"starttls\" or \"tls\""
            ));
        }
        let port = self.smtp_port.or(file.smtp_port).unwrap_or(match tls {
            SmtpTls::Tls => DEFAULT_SMTPS_PORT,
            SmtpTls::Starttls | SmtpTls::None => DEFAULT_SMTP_PORT,
        });
        if port == 0 {
            return Err("smtp: smtp_port must not be 0".into());
        }
        let from = from
            .map(|f| f.trim().to_string())
            .filter(|f| !f.is_empty())
            .ok_or("smtp: smtp_host is set but smtp_from (the sender address) is not")?;
        if !from.contains('@') {
            return Err(format!("smtp: smtp_from `{from}` is not an email address"));
        }
        let timeout_ms = self
            .smtp_timeout_ms
            .or(file.smtp_timeout_ms)
            .unwrap_or(DEFAULT_SMTP_TIMEOUT_MS);
        if timeout_ms == 0 {
            return Err("smtp: smtp_timeout_ms must be more than 0".into());
        }
        Ok(Some(SmtpSettings {
            host,
            port,
            tls,
            from,
            credentials: credentials()?,
            timeout: std::time::Duration::from_millis(timeout_ms),
        }))
    }
}

impl StoreSettings {
    pub fn location(&self) -> custodian_vault::store::Location {
        match &self.database_url {
            Some(url) => custodian_vault::store::Location::Postgres(url.clone()),
            None => custodian_vault::store::Location::Sqlite(self.data_dir.join("custodian.db")),
        }
    }

    /// Where the data is, for messages: never the password of a database URL.
    pub fn describe(&self) -> String {
        match &self.database_url {
            Some(url) => format!("PostgreSQL at {url}"),
            None => format!("SQLite at {}", self.data_dir.join("custodian.db").display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_url_and_business_id_are_checked() {
        assert_eq!(
            public_url(Some("https://privacy.example.org/".into())),
            Ok(Some("https://privacy.example.org".into()))
        );
        assert_eq!(public_url(None), Ok(None));
        for bad in [
            "ftp://example.org",
            "https://",
            "privacy.example.org",
            "http://a b",
        ] {
            assert!(public_url(Some(bad.into())).is_err(), "{bad}");
        }
        assert_eq!(
            business_id(Some("TEST_CB".into())),
            Ok(Some("TEST_CB".into()))
        );
        assert!(business_id(Some("TEST CB".into())).is_err());
        assert!(business_id(Some(String::new())).is_err());
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let file = FileSettings {
            data_dir: Some("/from/file".into()),
            rate_limit_per_ip: Some(7),
            ..FileSettings::default()
        };
        let args = StoreArgs {
            data_dir: Some("/from/flag".into()),
            ..StoreArgs::default()
        };
        let s = args.resolve_with(&file);
        assert_eq!(s.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(s.key_file, PathBuf::from("/from/flag/keys.toml"));
        let s = StoreArgs::default().resolve_with(&file);
        assert_eq!(s.data_dir, PathBuf::from("/from/file"));
    }

    fn smtp(args: SmtpArgs, file: &FileSettings) -> Result<Option<SmtpSettings>, String> {
        args.resolve_with(file, || {
            Ok(Some(SmtpCredentials {
                username: "relay-user".into(),
                password: "hunter2".into(),
            }))
        })
    }

    #[test]
    fn smtp_settings_have_defaults_and_flags_beat_the_file() {
        assert!(
            smtp(SmtpArgs::default(), &FileSettings::default())
                .unwrap()
                .is_none()
        );
        let file = FileSettings {
            smtp_host: Some("mail.example.org".into()),
            smtp_from: Some("Example <privacy@example.org>".into()),
            smtp_port: Some(2525),
            ..FileSettings::default()
        };
        let s = smtp(SmtpArgs::default(), &file).unwrap().unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.tls),
            ("mail.example.org", 2525, SmtpTls::Starttls)
        );
        assert_eq!(
            s.timeout,
            std::time::Duration::from_millis(DEFAULT_SMTP_TIMEOUT_MS)
        );
        let args = SmtpArgs {
            smtp_port: Some(25),
            smtp_tls: Some(SmtpTls::Tls),
            ..SmtpArgs::default()
        };
        let s = smtp(args, &file).unwrap().unwrap();
        assert_eq!((s.port, s.tls), (25, SmtpTls::Tls));
        let file = FileSettings {
            smtp_port: None,
            smtp_tls: Some(SmtpTls::Tls),
            ..file
        };
        assert_eq!(smtp(SmtpArgs::default(), &file).unwrap().unwrap().port, 465);
        let file: FileSettings = toml::from_str(
            "smtp_host = \"127.0.0.1\"\nsmtp_tls = \"none\"\nsmtp_from = \"a@b.example\"",
        )
        .unwrap();
        let s = smtp(SmtpArgs::default(), &file).unwrap().unwrap();
        assert_eq!((s.port, s.tls), (587, SmtpTls::None));
        assert!(toml::from_str::<FileSettings>("smtp_tls = \"ssl\"").is_err());
    }

    #[test]
    fn smtp_without_encryption_only_on_loopback() {
        for host in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
            "localhost",
            "LocalHost",
        ] {
            assert!(is_loopback_host(host), "{host}");
            let args = SmtpArgs {
                smtp_host: Some(host.into()),
                smtp_tls: Some(SmtpTls::None),
                smtp_from: Some("a@b.example".into()),
                ..SmtpArgs::default()
            };
            assert!(smtp(args, &FileSettings::default()).is_ok(), "{host}");
        }
        for host in [
            "mail.example.org",
            "10.0.0.1",
            "localhost.example.org",
            "0.0.0.0",
        ] {
            assert!(!is_loopback_host(host), "{host}");
            let args = SmtpArgs {
                smtp_host: Some(host.into()),
                smtp_tls: Some(SmtpTls::None),
                smtp_from: Some("a@b.example".into()),
                ..SmtpArgs::default()
            };
            let e = smtp(args, &FileSettings::default()).unwrap_err();
            assert!(e.contains("loopback") && e.contains(host), "{e}");
        }
    }

    #[test]
    fn smtp_settings_that_cannot_work_are_refused() {
        let with = |args: SmtpArgs| smtp(args, &FileSettings::default());
        let host = || Some("mail.example.org".to_string());
        assert!(
            with(SmtpArgs {
                smtp_host: host(),
                ..SmtpArgs::default()
            })
            .unwrap_err()
            .contains("smtp_from")
        );
        assert!(
            with(SmtpArgs {
                smtp_host: host(),
                smtp_from: Some("nobody".into()),
                ..SmtpArgs::default()
            })
            .is_err()
        );
        assert!(
            with(SmtpArgs {
                smtp_host: host(),
                smtp_from: Some("a@b.example".into()),
                smtp_port: Some(0),
                ..SmtpArgs::default()
            })
            .is_err()
        );
        assert!(
            with(SmtpArgs {
                smtp_from: Some("a@b.example".into()),
                ..SmtpArgs::default()
            })
            .unwrap_err()
            .contains("smtp_host")
        );
    }

    #[test]
    fn smtp_credentials_are_not_shown() {
        let args = SmtpArgs {
            smtp_host: Some("mail.example.org".into()),
            smtp_from: Some("a@b.example".into()),
            ..SmtpArgs::default()
        };
        let s = smtp(args, &FileSettings::default()).unwrap().unwrap();
        let shown = format!("{s:?} {:?}", s.credentials);
        assert!(
            !shown.contains("hunter2") && !shown.contains("relay-user"),
            "{shown}"
        );
        assert!(shown.contains("mail.example.org"), "{shown}");
        // Not a key of the settings file: credentials come from the environment only.
        assert!(toml::from_str::<FileSettings>("smtp_password = \"x\"").is_err());
    }

    #[test]
    fn database_passwords_are_not_shown() {
        let file = FileSettings {
            database_url: Some(DatabaseUrl::new(
                "postgres://app:hunter2@db/c?sslmode=verify-full",
            )),
            database_root_cert: Some("/etc/ca.pem".into()),
            ..FileSettings::default()
        };
        let s = StoreArgs::default().resolve_with(&file);
        for shown in [
            s.describe(),
            format!("{s:?}"),
            format!("{:?}", s.location()),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(
                shown.contains("postgres://app@db/c?sslmode=verify-full"),
                "{shown}"
            );
        }
        assert!(s.describe().contains("/etc/ca.pem"));
    }
}
