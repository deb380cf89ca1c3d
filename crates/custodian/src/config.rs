//! Settings: command-line flags, then `CUSTODIAN_*` environment variables
//! (clap reads both), then a TOML file (`--config`), then defaults.

use clap::Args;
use custodian_vault::store::DatabaseUrl;
use serde::Deserialize;
use std::net::SocketAddr;
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
}

pub const DEFAULT_DATA_DIR: &str = "custodian-data";
pub const DEFAULT_KEY_CACHE_MS: u64 = 2_000;
pub const DEFAULT_TASK_LEASE_MS: u64 = 30_000;
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
        })
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
