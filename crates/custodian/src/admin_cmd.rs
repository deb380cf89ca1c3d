//! Operator commands on the store: `migrate`, `keys ...` (API keys and
//! key-encryption key rotation), `audit verify`.

use crate::config::StoreArgs;
use crate::serve::{load_keys, load_policy, runtime};
use clap::Subcommand;
use custodian_engine::keys::{self, NewKeyRequest};
use custodian_engine::rotation;
use custodian_engine::{App, Role};
use custodian_vault::keyfile;
use custodian_vault::store::Store;
use std::path::PathBuf;
use std::process::ExitCode;

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text).ok_or_else(|| {
        format!("`{text}` is not a role; use admin, dpo, agent, service or processor")
    })
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key; prints the key alone on stdout.
    Create {
        #[command(flatten)]
        store: StoreArgs,
        /// admin, dpo, agent, service or processor.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// A purpose a service key may use, or a processor key may receive
        /// disclosures for (repeat for several).
        #[arg(long = "purpose")]
        purposes: Vec<String>,
        /// The recipient of a processor key.
        #[arg(long)]
        recipient: Option<String>,
        #[arg(long)]
        label: Option<String>,
        /// The policy the bindings are checked against (default: the built-in reference policy).
        #[arg(long, env = "CUSTODIAN_POLICY")]
        policy: Option<PathBuf>,
    },
    /// List keys (never the keys themselves).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a key by its id (ck_...).
    Revoke {
        #[command(flatten)]
        store: StoreArgs,
        id: String,
    },
    /// Add a new key-encryption key to the key file and make it current.
    /// Restart every node with the new key file, then run `keys rewrap`.
    Rotate {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Re-wrap every data key under the current key-encryption key (the data
    /// itself is not re-encrypted). Every node must already have the current
    /// key file, or it cannot open the keys moved.
    Rewrap {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove a key-encryption key from the key file; refused while it still
    /// wraps any data key.
    RetireKek {
        #[command(flatten)]
        store: StoreArgs,
        /// The key-encryption key's number, as `keys rewrap` lists them.
        kek: u32,
    },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Recompute the audit chain; exit 1 and name the first broken entry if it is broken.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
    },
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("custodian: {message}");
    ExitCode::FAILURE
}

pub async fn open_app(
    store: &StoreArgs,
    policy: Option<&std::path::Path>,
) -> Result<App, ExitCode> {
    let settings = store.resolve().map_err(fail)?;
    let (policy, _, source) = load_policy(policy).ok_or(ExitCode::FAILURE)?;
    let keys = load_keys(&settings).map_err(fail)?;
    let audit_key = keys
        .audit_key()
        .ok_or_else(|| fail("the key file holds no audit key"))?;
    let store = Store::open(&settings.location(), false, audit_key)
        .await
        .map_err(|e| fail(format!("{}: {e}", settings.describe())))?;
    Ok(App::new(store, keys, policy, source))
}

pub fn migrate(store: StoreArgs) -> ExitCode {
    let settings = match store.resolve() {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        match Store::migrate(&settings.location()).await {
            Ok((from, to)) if from == to => {
                out!(
                    "{}: schema is at version {to}; nothing to do",
                    settings.describe()
                );
                ExitCode::SUCCESS
            }
            Ok((from, to)) => {
                out!(
                    "{}: schema migrated from version {from} to {to}",
                    settings.describe()
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail(format!("{}: {e}", settings.describe())),
        }
    })
}

pub fn keys(command: KeysCommand) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        match command {
            KeysCommand::Create {
                store,
                role,
                purposes,
                recipient,
                label,
                policy,
            } => {
                let app = match open_app(&store, policy.as_deref()).await {
                    Ok(a) => a,
                    Err(code) => return code,
                };
                let request = NewKeyRequest {
                    role,
                    purposes,
                    recipient,
                    label,
                };
                match keys::create_as(&app, "cli", request, time::OffsetDateTime::now_utc()).await {
                    Ok(created) => {
                        out!("{}", created.key);
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(e),
                }
            }
            KeysCommand::List { store } => {
                let app = match open_app(&store, None).await {
                    Ok(a) => a,
                    Err(code) => return code,
                };
                match keys::list_all(&app).await {
                    Ok(list) => {
                        for k in list {
                            let bound = match (&k.recipient, k.purposes.is_empty()) {
                                (Some(r), _) => format!("recipient={r}"),
                                (None, false) => format!("purposes={}", k.purposes.join(",")),
                                (None, true) => String::new(),
                            };
                            let state = k
                                .revoked_at
                                .map_or_else(|| "active".to_string(), |t| format!("revoked {t}"));
                            out!(
                                "{}\t{}\t{}\t{}\t{}\t{}",
                                k.id,
                                k.role,
                                state,
                                k.created_at,
                                bound,
                                k.label.unwrap_or_default()
                            );
                        }
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(e),
                }
            }
            KeysCommand::Rotate { store } => rotate(&store),
            KeysCommand::Rewrap { store } => rewrap(&store).await,
            KeysCommand::RetireKek { store, kek } => retire_kek(&store, kek).await,
            KeysCommand::Revoke { store, id } => {
                let app = match open_app(&store, None).await {
                    Ok(a) => a,
                    Err(code) => return code,
                };
                match keys::revoke_as(&app, "cli", &id, time::OffsetDateTime::now_utc()).await {
                    Ok(()) => {
                        out!("revoked {id}");
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(e),
                }
            }
        }
    })
}

fn rotate(store: &StoreArgs) -> ExitCode {
    let settings = match store.resolve() {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    match keyfile::add_kek(&settings.key_file) {
        Ok(id) => {
            out!(
                "key-encryption key {id} added to {} and made current; new data keys are wrapped by it.",
                settings.key_file.display()
            );
            out!(
                "Restart every Custodian node with this key file, then run `custodian keys rewrap` to move the existing data keys to it."
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

async fn rewrap(store: &StoreArgs) -> ExitCode {
    let app = match open_app(store, None).await {
        Ok(a) => a,
        Err(code) => return code,
    };
    match rotation::rewrap_all(&app, "cli", time::OffsetDateTime::now_utc).await {
        Ok(done) => {
            out!(
                "re-wrapped {} data keys under key-encryption key {}",
                done.moved,
                app.keys.current_kek()
            );
            for (kek, count) in done.per_kek {
                out!("key-encryption key {kek}: {count} data keys");
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

async fn retire_kek(store: &StoreArgs, kek: u32) -> ExitCode {
    let app = match open_app(store, None).await {
        Ok(a) => a,
        Err(code) => return code,
    };
    if let Err(e) = rotation::check_unused(&app, kek).await {
        return fail(e);
    }
    let settings = match store.resolve() {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    match keyfile::remove_kek(&settings.key_file, kek) {
        Ok(()) => {
            out!(
                "key-encryption key {kek} removed from {}",
                settings.key_file.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

pub fn audit(command: AuditCommand) -> ExitCode {
    let AuditCommand::Verify { store } = command;
    let settings = match store.resolve() {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        // The chain is keyed: verifying it needs the key file.
        let loaded = custodian_vault::keyfile::load(&settings.key_file).map_err(|e| e.to_string());
        let audit_key = match loaded.map(|k| k.audit_key()) {
            Ok(Some(k)) => k,
            Ok(None) => return fail("the key file holds no audit key"),
            Err(e) => return fail(e),
        };
        let store = match Store::open(&settings.location(), false, audit_key).await {
            Ok(s) => s,
            Err(e) => return fail(format!("{}: {e}", settings.describe())),
        };
        match store.verify_audit().await {
            Ok(v) if v.intact => {
                out!("audit chain intact: {} entries", v.entries);
                ExitCode::SUCCESS
            }
            Ok(v) => {
                out!(
                    "audit chain BROKEN at entry {}: {} ({} entries verified before it)",
                    v.first_broken.unwrap_or(0),
                    v.problem.unwrap_or_default(),
                    v.first_broken.unwrap_or(1) - 1
                );
                ExitCode::FAILURE
            }
            Err(e) => fail(e),
        }
    })
}
