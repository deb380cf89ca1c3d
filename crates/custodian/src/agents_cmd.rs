//! `custodian agents ...`: the authorized agents of the Data Rights
//! Protocol, managed from the command line (which holds the key file and
//! the database, so it is not asked for a key). Every change is audited
//! with the actor `cli`.

use crate::admin_cmd::open_app;
use crate::config::StoreArgs;
use crate::serve::runtime;
use clap::Subcommand;
use custodian_engine::agents::{self, AgentStatusChange, NewAgent};
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum AgentsCommand {
    /// Add an agent with its Ed25519 verify key.
    Add {
        #[command(flatten)]
        store: StoreArgs,
        /// The agent's id in the protocol (`agent-id`).
        #[arg(long)]
        id: String,
        /// The agent's Ed25519 verify key, base64 of its 32 bytes.
        #[arg(long)]
        verify_key: String,
        #[arg(long)]
        name: String,
        /// Accept the identity the agent attests (an email address it
        /// verified); without it, the person is sent this business's own
        /// one-time code.
        #[arg(long)]
        trust_identity: bool,
    },
    /// List the agents (never their tokens).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Suspend an agent: its token and signatures are refused.
    Suspend {
        #[command(flatten)]
        store: StoreArgs,
        id: String,
    },
    /// Reactivate a suspended agent.
    Activate {
        #[command(flatten)]
        store: StoreArgs,
        id: String,
    },
    /// Remove an agent and its token; its requests stay in the register.
    Remove {
        #[command(flatten)]
        store: StoreArgs,
        id: String,
    },
    /// Play an agent, for trials: make an Ed25519 key pair, write the
    /// secret key to FILE (mode 0600) and print the verify key.
    Keygen {
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Play an agent, for trials: sign the message on stdin with the secret
    /// key in FILE and print `base64(signature || message)`.
    Sign {
        #[arg(long)]
        key: std::path::PathBuf,
    },
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("custodian: {message}");
    ExitCode::FAILURE
}

async fn change(
    app: &custodian_engine::App,
    id: &str,
    to: AgentStatusChange,
    now: time::OffsetDateTime,
) -> ExitCode {
    match agents::change_as(app, "cli", id, to, now).await {
        Ok(a) => {
            out!("agent {} is {}", a.id, a.status);
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn keygen(out: &std::path::Path) -> ExitCode {
    use base64::Engine;
    let secret = custodian_vault::crypto::random_bytes::<32>();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(out).and_then(|mut f| {
        use std::io::Write;
        writeln!(
            f,
            "{}",
            base64::engine::general_purpose::STANDARD.encode(secret)
        )
    });
    if let Err(e) = written {
        return fail(format!("{}: {e}", out.display()));
    }
    let key = ed25519_dalek::SigningKey::from_bytes(&secret);
    out!(
        "{}",
        base64::engine::general_purpose::STANDARD.encode(key.verifying_key().as_bytes())
    );
    ExitCode::SUCCESS
}

fn sign(key_file: &std::path::Path) -> ExitCode {
    use base64::Engine;
    use std::io::Read;
    let secret = std::fs::read_to_string(key_file)
        .ok()
        .and_then(|t| {
            base64::engine::general_purpose::STANDARD
                .decode(t.trim())
                .ok()
        })
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok());
    let Some(secret) = secret else {
        return fail(format!(
            "{}: not a secret key from `custodian agents keygen`",
            key_file.display()
        ));
    };
    let mut message = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut message) {
        return fail(format!("cannot read the message: {e}"));
    }
    let key = ed25519_dalek::SigningKey::from_bytes(&secret);
    let trimmed = message.trim_ascii_end();
    out!("{}", custodian_vault::signed::sign(&key, trimmed));
    ExitCode::SUCCESS
}

pub fn run(command: AgentsCommand) -> ExitCode {
    match &command {
        AgentsCommand::Keygen { out } => return keygen(out),
        AgentsCommand::Sign { key } => return sign(key),
        _ => {}
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let now = time::OffsetDateTime::now_utc();
    rt.block_on(async move {
        let store = match &command {
            AgentsCommand::Add { store, .. }
            | AgentsCommand::List { store }
            | AgentsCommand::Suspend { store, .. }
            | AgentsCommand::Activate { store, .. }
            | AgentsCommand::Remove { store, .. } => store.clone(),
            AgentsCommand::Keygen { .. } | AgentsCommand::Sign { .. } => return ExitCode::FAILURE,
        };
        let app = match open_app(&store, None).await {
            Ok(a) => a,
            Err(code) => return code,
        };
        match command {
            AgentsCommand::Add {
                id,
                verify_key,
                name,
                trust_identity,
                ..
            } => {
                let req = NewAgent {
                    id,
                    verify_key,
                    name,
                    trust_identity,
                };
                match agents::add_as(&app, "cli", req, now).await {
                    Ok(a) => {
                        out!("added agent {} ({})", a.id, a.name);
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(e),
                }
            }
            AgentsCommand::List { .. } => match agents::list_all(&app).await {
                Ok(list) => {
                    for a in list {
                        let trust = if a.trust_identity {
                            "trusts-identity"
                        } else {
                            "sends-own-code"
                        };
                        out!(
                            "{}\t{}\t{}\t{}\t{}\t{}",
                            a.id,
                            a.status,
                            trust,
                            a.registered_at.as_deref().unwrap_or("not registered"),
                            a.verify_key,
                            a.name
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            },
            AgentsCommand::Suspend { id, .. } => {
                change(&app, &id, AgentStatusChange::Suspend, now).await
            }
            AgentsCommand::Activate { id, .. } => {
                change(&app, &id, AgentStatusChange::Activate, now).await
            }
            AgentsCommand::Keygen { .. } | AgentsCommand::Sign { .. } => ExitCode::FAILURE,
            AgentsCommand::Remove { id, .. } => {
                match agents::remove_as(&app, "cli", &id, now).await {
                    Ok(()) => {
                        out!("removed agent {id}");
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(e),
                }
            }
        }
    })
}
