//! `custodian`: the one binary. Subcommands are thin: they read files and
//! arguments, call the core, and print.

/// Prints a line on stdout, like `println!`, but a closed pipe (`custodian
/// keys list | head -1`) ends the program quietly instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::emit(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Prints on stdout without a line end; see [`out!`].
macro_rules! out_raw {
    ($($arg:tt)*) => {
        $crate::emit(format_args!($($arg)*))
    };
}

mod admin_cmd;
mod agents_cmd;

mod bench;
mod bench_connectors;
mod bench_retention;
mod bench_shop;
mod config;
mod datasets_cmd;

mod policy_cmd;
mod retention_cmd;
mod rules_cmd;
mod serve;
mod smtp;
mod suppressions_cmd;

// Requests allocate many small short-lived objects; mimalloc serves them
// from per-thread pages, measurably cheaper than the system allocator here.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "custodian",
    version,
    about = "The privacy engine that keeps a privacy policy's promises by construction"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (creates and migrates the store on first start).
    Serve {
        #[command(flatten)]
        args: config::ServeArgs,
        /// Refuse to start on a store that needs migrating, instead of migrating it.
        #[arg(long)]
        no_migrate: bool,
    },
    /// Apply pending database migrations.
    Migrate {
        #[command(flatten)]
        store: config::StoreArgs,
    },
    /// API keys (create, list, revoke) and key-encryption keys (rotate, rewrap, retire-kek).
    Keys {
        #[command(subcommand)]
        command: admin_cmd::KeysCommand,
    },
    /// Authorized agents of the Data Rights Protocol (add, list, suspend, activate, remove).
    Agents {
        #[command(subcommand)]
        command: agents_cmd::AgentsCommand,
    },
    /// Verify the audit chain.
    Audit {
        #[command(subcommand)]
        command: admin_cmd::AuditCommand,
    },
    /// The Telephone Preference Service lists that live calls are screened against.
    Suppressions {
        #[command(subcommand)]
        command: suppressions_cmd::SuppressionsCommand,
    },
    /// Consent receipts.
    Receipt {
        #[command(subcommand)]
        command: ReceiptCommand,
    },
    /// Check, render and compare policy files.
    Policy {
        #[command(subcommand)]
        command: policy_cmd::PolicyCommand,
    },
    /// The organisation's own systems: draft a dataset from a live schema,
    /// check the declared datasets against theirs.
    Datasets {
        #[command(subcommand)]
        command: datasets_cmd::DatasetsCommand,
    },
    /// Measure the server over HTTP on loopback against a bare SQLite baseline.
    Bench(bench::BenchArgs),
    /// Storage limitation: run the sweep, the report, legal holds, rule reviews.
    Retention {
        #[command(subcommand)]
        command: retention_cmd::RetentionCommand,
    },
    /// Statutory deadlines computed from the shipped calendars.
    Rules {
        #[command(subcommand)]
        command: rules_cmd::RulesCommand,
    },
    /// The mail relay for one-time codes: send a test message.
    Smtp {
        #[command(subcommand)]
        command: smtp::SmtpCommand,
    },
}

#[derive(Subcommand)]
enum ReceiptCommand {
    /// Check a signed consent receipt (from GET /v1/consents/{id}/receipt).
    Verify {
        file: std::path::PathBuf,
        /// The controller's published key (the `x` of /.well-known/custodian-receipt-key) to pin.
        // Base64url: one key in 64 starts with `-`, which must not read as a flag.
        #[arg(long, allow_hyphen_values = true)]
        public_key: Option<String>,
        /// Without `--public-key`, the signing node's key file (found as for
        /// `serve`) gives the key to pin.
        #[command(flatten)]
        store: config::StoreArgs,
    },
}

/// The key a receipt must be signed with: the one given, or the node's own
/// from its key file. A receipt is never accepted on the strength of the key
/// it carries itself: anyone can sign with a key of their own.
fn pinned_key(given: Option<&str>, store: &config::StoreArgs) -> Result<String, String> {
    if let Some(key) = given {
        return Ok(key.to_string());
    }
    const NOT_PINNED: &str = "the signer is not pinned: give the controller's published key with --public-key (the `x` of /.well-known/custodian-receipt-key), or run where the signing node's key file is (--data-dir or --key-file)";
    let settings = store.resolve()?;
    if !settings.key_file.exists() {
        return Err(NOT_PINNED.into());
    }
    let keys = custodian_vault::keyfile::load(&settings.key_file)
        .map_err(|e| format!("{}: {e}", settings.key_file.display()))?;
    let public = keys.receipt_public_key().ok_or(NOT_PINNED)?;
    use base64::Engine as _;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(public))
}

fn verify_receipt(
    file: &std::path::Path,
    given: Option<&str>,
    store: &config::StoreArgs,
) -> ExitCode {
    let pinned = match pinned_key(given, store) {
        Ok(k) => k,
        Err(problem) => {
            eprintln!("{}: NOT VERIFIED: {problem}", file.display());
            return ExitCode::FAILURE;
        }
    };
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: cannot read the receipt: {e}", file.display());
            return ExitCode::FAILURE;
        }
    };
    let bundle: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{}: not JSON: {e}", file.display());
            return ExitCode::FAILURE;
        }
    };
    match custodian_engine::receipt::verify(&bundle, Some(&pinned)) {
        Ok(message) => {
            out!("{}: {message}", file.display());
            ExitCode::SUCCESS
        }
        Err(problem) => {
            eprintln!("{}: INVALID: {problem}", file.display());
            ExitCode::FAILURE
        }
    }
}

/// Writes to stdout; when the reader has gone (a closed pipe), stops the
/// program at once with success: what it was asked for was read as far as
/// the reader wanted.
fn emit(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let written = stdout.write_fmt(args).and_then(|()| stdout.flush());
    if let Err(e) = written {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("custodian: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { args, no_migrate } => serve::run(args, !no_migrate),
        Command::Migrate { store } => admin_cmd::migrate(store),
        Command::Keys { command } => admin_cmd::keys(command),
        Command::Agents { command } => agents_cmd::run(command),
        Command::Audit { command } => admin_cmd::audit(command),
        Command::Receipt {
            command:
                ReceiptCommand::Verify {
                    file,
                    public_key,
                    store,
                },
        } => verify_receipt(&file, public_key.as_deref(), &store),
        Command::Suppressions { command } => suppressions_cmd::run(command),
        Command::Policy { command } => policy_cmd::run(command),
        Command::Bench(args) => bench::run(args),
        Command::Datasets { command } => datasets_cmd::run(command),
        Command::Rules { command } => rules_cmd::run(command),
        Command::Retention { command } => retention_cmd::run(command),
        Command::Smtp { command } => smtp::run(command),
    }
}
