//! A PostgreSQL cluster of a test's own: `initdb` in a temporary folder,
//! on a free port, TLS on with a certificate the test makes (a CA of its
//! own, and a server certificate for localhost and 127.0.0.1). The
//! machine's shared server is left as it is. The cluster is stopped and its
//! folder removed on drop, whether the test passed or not.
//!
//! It runs where `CUSTODIAN_TEST_POSTGRES_URL` is set (PostgreSQL is
//! installed there); elsewhere the suite says it was skipped, and in CI a
//! skip is a failure.

use super::*;
use std::os::unix::fs::PermissionsExt;

pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    pub port: u16,
    /// The CA that issued the server's certificate.
    pub ca: PathBuf,
    /// A CA that did not.
    pub other_ca: PathBuf,
    /// Run the server's commands as the `postgres` user (initdb refuses root).
    as_postgres: bool,
}

impl Cluster {
    /// A running cluster, or `None` after saying why the suite is skipped.
    pub fn start(suite: &str) -> Option<Cluster> {
        if std::env::var("CUSTODIAN_TEST_POSTGRES_URL").is_err() {
            skip(suite, "CUSTODIAN_TEST_POSTGRES_URL is not set");
            return None;
        }
        let Some(bin) = server_bindir() else {
            skip(suite, "initdb was not found (PATH, pg_config --bindir)");
            return None;
        };
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| text(&o.stdout).trim() == "0");
        if root
            && !Command::new("id")
                .arg("postgres")
                .output()
                .is_ok_and(|o| o.status.success())
        {
            skip(
                suite,
                "running as root and there is no postgres user for initdb",
            );
            return None;
        }
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("custodian-pg-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let cluster = Cluster {
            ca: dir.join("ca.pem"),
            other_ca: dir.join("other-ca.pem"),
            dir,
            bin,
            port,
            as_postgres: root,
        };
        cluster.make_certificates();
        if root {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&cluster.dir)
                .status()
                .unwrap();
            assert!(ok.success(), "chown of the cluster's folder failed");
        }
        let data = cluster.data();
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "--no-instructions",
                "-E",
                "UTF8",
            ],
        );
        let d = cluster.dir.display();
        let conf = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{d}'\n\
             ssl = on\nssl_cert_file = '{d}/server.crt'\nssl_key_file = '{d}/server.key'\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
        );
        let conf_path = Path::new(&data).join("postgresql.conf");
        let mut all = std::fs::read_to_string(&conf_path).unwrap();
        all.push_str(&conf);
        std::fs::write(&conf_path, all).unwrap();
        // Over TCP, TLS only: a connection that works went over TLS.
        std::fs::write(
            Path::new(&data).join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .unwrap();
        cluster.pg_ctl(&["start"]);
        Some(cluster)
    }

    fn data(&self) -> String {
        self.dir.join("data").to_str().unwrap().to_string()
    }

    /// A URL for this cluster's `postgres` database. `host` is the name the
    /// certificate is checked against; the connection goes to 127.0.0.1.
    pub fn url(&self, host: &str, query: &str) -> String {
        let sep = if query.is_empty() { "" } else { "&" };
        format!(
            "postgres://postgres@{host}:{}/postgres?hostaddr=127.0.0.1{sep}{query}",
            self.port
        )
    }

    /// `pg_ctl restart -m fast`: every connection is cut, the server stops
    /// and starts again.
    pub fn restart(&self) {
        self.pg_ctl(&["restart", "-m", "fast"]);
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = self.data();
        let log = self.dir.join("server.log");
        let mut all = vec!["-D", &data, "-w", "-t", "60", "-l", log.to_str().unwrap()];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all);
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let out = self
            .command(program)
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap();
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}\nserver log:\n{log}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }

    /// A CA, a server certificate it issues for localhost and 127.0.0.1,
    /// and a second CA that issues nothing.
    fn make_certificates(&self) {
        make_certificates(&self.dir, &["localhost", "127.0.0.1"]);
    }

    /// A connection string over the cluster's Unix socket (trusted, no
    /// TLS), for a test's own setup of its tables.
    pub fn socket_config(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=postgres",
            self.dir.display(),
            self.port
        )
    }
}

/// In `dir`: `ca.pem` (a CA of the test's own), `server.crt` and
/// `server.key` (a server certificate it issues for `names`), and
/// `other-ca.pem` (a CA that issues nothing).
pub fn make_certificates(dir: &Path, names: &[&str]) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let ca = |name: &str| {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
    };
    let issuer = ca("Custodian test CA");
    let other = ca("Another CA");
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("ca.pem"), issuer.pem()).unwrap();
    std::fs::write(dir.join("other-ca.pem"), other.pem()).unwrap();
    std::fs::write(dir.join("server.crt"), cert.pem()).unwrap();
    let key_path = dir.join("server.key");
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl")
            .args(["-D", &data, "-w", "-t", "30", "stop", "-m", "immediate"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where initdb, pg_ctl and postgres are: on the PATH, at `pg_config
/// --bindir`, or the newest of Debian's /usr/lib/postgresql/*/bin.
fn server_bindir() -> Option<PathBuf> {
    let has_initdb = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(dir) = std::env::split_paths(&path).find(|d| has_initdb(d)) {
            return Some(dir);
        }
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(text(&out.stdout).trim());
        if out.status.success() && has_initdb(&dir) {
            return Some(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, dir)| has_initdb(dir))
        .collect();
    versions.sort();
    versions.pop().map(|(_, dir)| dir)
}

pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
