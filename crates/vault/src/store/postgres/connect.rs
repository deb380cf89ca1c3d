//! Connecting: TLS after the URL's `sslmode` (rustls on ring), the reader
//! pool, which failures mean the database is away, and the one shared flag
//! that logs its going and coming back once each.

use super::*;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_postgres::config::SslMode as ClientSslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// How long a new connection may take before the store counts as away,
/// unless the URL says (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a read waits for a pooled connection.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);

/// What a connection needs: the client's settings and the TLS connector.
#[derive(Clone)]
pub(super) struct Connector {
    config: tokio_postgres::Config,
    tls: Option<MakeRustlsConnect>,
}

impl Connector {
    pub(super) fn new(url: &DatabaseUrl) -> Result<Connector, StoreError> {
        let split = url.split().map_err(StoreError::Settings)?;
        let mut config: tokio_postgres::Config = split.rest.parse().map_err(|e| {
            // The client names the option at fault, never its value.
            StoreError::Settings(format!("the database URL is not usable: {e}"))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.ssl_mode(match split.mode {
            SslMode::Disable => ClientSslMode::Disable,
            SslMode::Prefer => ClientSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => ClientSslMode::Require,
        });
        let tls = match split.mode {
            SslMode::Disable => None,
            mode => Some(rustls_connector(mode, split.root_cert.as_deref())?),
        };
        if !matches!(split.mode, SslMode::VerifyCa | SslMode::VerifyFull) && !all_local(&config) {
            tracing::warn!(
                sslmode = ?split.mode,
                "the database server's certificate is not checked; set sslmode=verify-full (and sslrootcert) for a database on another machine"
            );
        }
        Ok(Connector { config, tls })
    }

    /// One connection, its I/O driven by a task of its own.
    pub(super) async fn connect(
        &self,
    ) -> Result<(Client, tokio::task::JoinHandle<()>), tokio_postgres::Error> {
        let drive = |conn: Result<(), tokio_postgres::Error>| {
            if let Err(e) = conn {
                // The store's flag says it once when the database goes away.
                tracing::debug!(error = %e, "a PostgreSQL connection closed");
            }
        };
        match &self.tls {
            None => {
                let (client, conn) = self.config.connect(tokio_postgres::NoTls).await?;
                Ok((client, tokio::spawn(async move { drive(conn.await) })))
            }
            Some(tls) => {
                let (client, conn) = self.config.connect(tls.clone()).await?;
                Ok((client, tokio::spawn(async move { drive(conn.await) })))
            }
        }
    }

    /// A connection for one-off use (migrations, the writer at start).
    pub(super) async fn open(&self) -> Result<Client, StoreError> {
        let (client, _task) = self
            .connect()
            .await
            .map_err(|e| StoreError::Unavailable(describe(&e)))?;
        Ok(client)
    }

    /// The reader pool: connections made as needed up to `size`, a closed
    /// one replaced on its next checkout.
    pub(super) fn pool(&self, size: usize, health: Arc<Health>) -> Result<Pool, StoreError> {
        let manager = deadpool_postgres::Manager::from_connect(
            self.config.clone(),
            PoolConnect {
                connector: self.clone(),
                health,
            },
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        Pool::builder(manager)
            .max_size(size)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(CHECKOUT_TIMEOUT))
            .create_timeout(Some(
                self.config
                    .get_connect_timeout()
                    .copied()
                    .unwrap_or(CONNECT_TIMEOUT)
                    * 2,
            ))
            .build()
            .map_err(|e| StoreError::Settings(format!("the reader pool: {e}")))
    }
}

pub(super) type Pool = deadpool_postgres::Pool;

struct PoolConnect {
    connector: Connector,
    health: Arc<Health>,
}

type Connected = Result<(Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>;

impl deadpool_postgres::Connect for PoolConnect {
    fn connect(
        &self,
        _: &tokio_postgres::Config,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Connected> + Send + '_>> {
        Box::pin(async move {
            let connected = self.connector.connect().await;
            match &connected {
                Ok(_) => self.health.up(),
                Err(e) => self.health.down(&describe(e)),
            }
            connected
        })
    }
}

/// Whether every host of the settings is this machine (a Unix socket or a
/// loopback address), where an unchecked certificate is no risk.
fn all_local(config: &tokio_postgres::Config) -> bool {
    use tokio_postgres::config::Host;
    config.get_hosts().iter().all(|h| match h {
        Host::Tcp(name) => {
            name == "localhost"
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|a| a.is_loopback())
        }
        #[cfg(unix)]
        Host::Unix(_) => true,
    })
}

fn rustls_connector(mode: SslMode, root: Option<&Path>) -> Result<MakeRustlsConnect, StoreError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Settings(format!("TLS: {e}")))?;
    let config = match mode {
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let roots = Arc::new(root_store(root)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| StoreError::Settings(format!("TLS: {e}")))?;
            let verifier: Arc<dyn ServerCertVerifier> = if mode == SslMode::VerifyCa {
                Arc::new(AnyName(webpki))
            } else {
                webpki
            };
            builder
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth()
        }
        _ => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unchecked(provider)))
            .with_no_client_auth(),
    };
    Ok(MakeRustlsConnect::new(config))
}

/// The roots to trust: the PEM file given, or the Mozilla roots built in.
fn root_store(root: Option<&Path>) -> Result<RootCertStore, StoreError> {
    let Some(path) = root else {
        return Ok(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        });
    };
    let unusable = |why: String| {
        StoreError::Settings(format!(
            "the database root certificate {}: {why}",
            path.display()
        ))
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| unusable(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unusable(e.to_string()))?;
    let mut store = RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(unusable("holds no usable certificate".into()));
    }
    Ok(store)
}

/// `sslmode=verify-ca`: the chain is checked, the host name is not.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `sslmode=prefer` and `require`, as in libpq: encrypted, the certificate
/// not checked (the handshake's signatures still are).
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// An error with its causes: the client's own text for a failed TLS
/// handshake is "error performing TLS handshake", its cause says why (the
/// certificate's issuer or name). A server's error adds its SQLSTATE, and
/// its message only for classes about connecting, authentication and the
/// server's state: the message or detail of a failed statement may quote a
/// value.
pub(super) fn describe(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let more = match c.downcast_ref::<tokio_postgres::error::DbError>() {
            Some(db) => {
                let code = db.code().code();
                if ["08", "28", "3D", "53", "57"]
                    .iter()
                    .any(|class| code.starts_with(class))
                {
                    format!("{} {code}: {}", db.severity(), db.message())
                } else {
                    format!("{} {code}", db.severity())
                }
            }
            None => c.to_string(),
        };
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// Whether an error means the connection, or the server, is gone (rather
/// than that one statement failed): the socket closed or failed, the server
/// is shutting down or starting, or refuses connections for now.
pub(super) fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        let code = code.code();
        // Class 08: connection exception; 57P01-03: admin or crash
        // shutdown, cannot connect now; 53300: too many connections.
        return code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300");
    }
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if c.is::<std::io::Error>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// Whether the database is away, shared by the readers and the writer, so
/// that the log says once that it went away and once that it came back,
/// not once per request. A server that is still starting up can accept one
/// connection and refuse the next: a second outage that begins within a
/// few seconds of coming back is the same restart, and is not logged again
/// (requests still answer 503 while it lasts).
pub(super) struct Health {
    away: AtomicBool,
    /// A flap of the outage last logged: its end is not logged either.
    quiet: AtomicBool,
    came_back: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            away: AtomicBool::new(false),
            quiet: AtomicBool::new(false),
            came_back: std::sync::Mutex::new(None),
        }
    }
}

/// How long after coming back a new failure still counts as the same restart.
const SETTLING: std::time::Duration = std::time::Duration::from_secs(5);

impl Health {
    /// A connection failed or could not be made.
    pub(super) fn down(&self, why: &dyn std::fmt::Display) {
        if self.away.swap(true, Ordering::AcqRel) {
            return;
        }
        let settling = self
            .came_back
            .lock()
            .ok()
            .and_then(|at| *at)
            .is_some_and(|at| at.elapsed() < SETTLING);
        if settling {
            self.quiet.store(true, Ordering::Release);
            tracing::debug!(error = %why, "the PostgreSQL store is still settling after a restart");
        } else {
            self.quiet.store(false, Ordering::Release);
            tracing::warn!(
                error = %why,
                "the PostgreSQL store went away; requests answer 503 until it comes back"
            );
        }
    }

    /// A new connection was made.
    pub(super) fn up(&self) {
        if self.away.load(Ordering::Acquire) && self.away.swap(false, Ordering::AcqRel) {
            if let Ok(mut at) = self.came_back.lock() {
                *at = Some(std::time::Instant::now());
            }
            if !self.quiet.load(Ordering::Acquire) {
                tracing::info!("the PostgreSQL store came back");
            }
        }
    }
}

impl PgStore {
    /// The store's error for a failed statement: `Unavailable` when the
    /// connection or the server is gone, which also marks the store away.
    pub(super) fn failed(&self, e: tokio_postgres::Error) -> StoreError {
        let text = describe(&e);
        if is_connection_error(&e) {
            self.inner.health.down(&text);
            StoreError::Unavailable(text)
        } else {
            StoreError::Backend(text)
        }
    }

    /// A read connection from the pool.
    pub(super) async fn reader(&self) -> Result<deadpool_postgres::Object, StoreError> {
        use deadpool_postgres::{PoolError, TimeoutType};
        self.inner.readers.get().await.map_err(|e| match e {
            // Every connection busy: the database is there, the node is
            // overloaded.
            PoolError::Timeout(TimeoutType::Wait) => {
                StoreError::Unavailable("every read connection is busy".into())
            }
            PoolError::Timeout(_) => {
                let why = "connecting to the database timed out";
                self.inner.health.down(&why);
                StoreError::Unavailable(why.into())
            }
            // The pool's connector has marked the store away already.
            PoolError::Backend(e) => StoreError::Unavailable(describe(&e)),
            PoolError::Closed => StoreError::Unavailable("the reader pool is closed".into()),
            other => StoreError::Backend(other.to_string()),
        })
    }
}

/// A pool of connections to some other PostgreSQL database (a connector's
/// dataset), with the same TLS after `sslmode` as the store's own. Errors
/// name the setting at fault, never the URL.
pub fn pool_for(url: &DatabaseUrl, size: usize) -> Result<deadpool_postgres::Pool, StoreError> {
    Connector::new(url)?.pool(size, Arc::new(Health::default()))
}
