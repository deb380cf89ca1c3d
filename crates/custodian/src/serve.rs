//! `custodian serve`: open (and migrate) the store, load the keys and the
//! policy, make the first admin key on a fresh store, and serve.

use crate::config::{ServeArgs, StoreSettings};
use custodian_engine::keys::{self, NewKeyRequest};
use custodian_engine::{App, Role};
use custodian_policy::{LoadedPolicy, REFERENCE_POLICY_FILE};
use custodian_vault::crypto::Keyring;
use custodian_vault::keyfile;
use custodian_vault::store::Store;
use std::process::ExitCode;

pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CUSTODIAN_LOG")
                // The pool warns once per closed connection; the store says
                // once that the database went away and once that it came back.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,deadpool=error")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

pub fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("custodian: cannot start the runtime: {e}");
            ExitCode::FAILURE
        })
}

/// Loads the policy named in the settings, or the built-in reference policy:
/// the policy, where it came from (for messages), and its text (recorded with
/// its version).
pub fn load_policy(file: Option<&std::path::Path>) -> Option<(LoadedPolicy, String, String)> {
    match file {
        Some(file) => {
            let policy = crate::policy_cmd::read_policy(file)?;
            let source = std::fs::read_to_string(file).ok()?;
            Some((policy, file.display().to_string(), source))
        }
        None => match custodian_policy::reference() {
            Ok(p) => Some((
                p,
                format!("{REFERENCE_POLICY_FILE} (built in)"),
                custodian_policy::REFERENCE_POLICY.to_string(),
            )),
            Err(e) => {
                eprintln!("{e}");
                None
            }
        },
    }
}

/// The key file, created on first use.
pub fn load_keys(settings: &StoreSettings) -> Result<Keyring, String> {
    let (keys, created) = keyfile::load_or_create(&settings.key_file).map_err(|e| e.to_string())?;
    if created {
        tracing::warn!(
            key_file = %settings.key_file.display(),
            "created a new key file (mode 0600) holding the key-encryption key; back it up apart from the database: without it the data cannot be read"
        );
    }
    Ok(keys)
}

pub fn run(args: ServeArgs, migrate: bool) -> ExitCode {
    init_logging();
    let settings = match args.resolve() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("custodian: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some((policy, policy_source, policy_text)) = load_policy(settings.policy.as_deref()) else {
        return ExitCode::FAILURE;
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let keys = match load_keys(&settings.store) {
            Ok(k) => k,
            Err(e) => {
                eprintln!("custodian: {e}");
                return ExitCode::FAILURE;
            }
        };
        let Some(audit_key) = keys.audit_key() else {
            eprintln!("custodian: the key file holds no audit key");
            return ExitCode::FAILURE;
        };
        let store = match Store::open(&settings.store.location(), migrate, audit_key).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("custodian: {}: {e}", settings.store.describe());
                return ExitCode::FAILURE;
            }
        };
        let mailer = match crate::smtp::mailer_from(settings.smtp.as_ref()) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("custodian: {e}");
                return ExitCode::FAILURE;
            }
        };
        if settings.smtp.is_none() {
            tracing::warn!(
                "no mail relay is configured (smtp_host): rights requests that need a one-time code are kept but answered 503 until one is"
            );
        }
        // Each dataset's keyed hashes use a key of its own, derived from the
        // key file's blind-index key: stable across restarts and nodes.
        let hash_keys = |dataset: &str| keys.blind_index("dataset-hash-key", dataset);
        let declared = std::sync::Arc::new(policy.document.clone());
        let (datasets, unconnected) =
            custodian_connectors::connect_all(&declared, |name| std::env::var(name).ok(), hash_keys);
        for u in &unconnected {
            tracing::warn!(
                dataset = %u.dataset,
                "a dataset is not connected ({}); its tasks fail until it is",
                u.why
            );
        }
        // The drift report, as a warning: the server starts either way.
        let drift_policy = declared.clone();
        tokio::spawn(async move {
            for (dataset, result) in
                crate::datasets_cmd::check(&drift_policy, |n| std::env::var(n).ok()).await
            {
                match result {
                    Ok(found) => {
                        for d in found {
                            tracing::warn!(dataset = %dataset, "dataset drift: {d}");
                        }
                    }
                    Err(why) => {
                        tracing::warn!(dataset = %dataset, "dataset not checked: {why}")
                    }
                }
            }
        });
        // The datasets with a retention get sweepers of their own.
        let (sweepers, unswept) = custodian_connectors::sweep::connect_sweepers(
            &declared,
            |name| std::env::var(name).ok(),
            hash_keys,
        );
        for u in &unswept {
            tracing::warn!(
                dataset = %u.dataset,
                "a dataset with a retention is not connected ({}); the sweep reports it as failed",
                u.why
            );
        }
        let mut app = App::new(store, keys, policy, policy_text)
            .with_mailer(mailer)
            .with_datasets(datasets)
            .with_sweepers(sweepers)
            .with_retention_sweep(settings.retention_sweep.is_some());
        app.code_resend_gap = settings.code_resend_gap;
        match custodian_engine::rotation::missing_keks(&app).await {
            Ok(missing) if missing.is_empty() => {}
            Ok(missing) => {
                let ids: Vec<String> = missing.iter().map(u32::to_string).collect();
                eprintln!(
                    "custodian: the key file {} lacks key-encryption key {}, which wraps data keys in {}; \
                     start this node with the key file that holds it (after `custodian keys rotate`, \
                     every node needs the new key file)",
                    settings.store.key_file.display(),
                    ids.join(", "),
                    settings.store.describe()
                );
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("custodian: {e}");
                return ExitCode::FAILURE;
            }
        }
        if let Err(e) = app.register_policy().await {
            eprintln!("custodian: {e}");
            return ExitCode::FAILURE;
        }
        // A policy whose retention changed since the stored expiries were
        // computed marks them all for the sweep to work out again.
        if let Err(e) = custodian_engine::retention::sweep::note_policy(&app).await {
            eprintln!("custodian: {e}");
            return ExitCode::FAILURE;
        }
        if let Err(e) = bootstrap_admin(&app).await {
            eprintln!("custodian: {e}");
            return ExitCode::FAILURE;
        }
        let listener = match tokio::net::TcpListener::bind(settings.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("custodian: cannot listen on {}: {e}", settings.listen);
                return ExitCode::FAILURE;
            }
        };
        let shutdown = custodian_server::shutdown_signal();
        let bound = listener
            .local_addr()
            .map_or_else(|_| settings.listen.to_string(), |a| a.to_string());
        let mut drp = custodian_engine::drp::DrpSettings::defaults(&app.policy, &bound);
        if let Some(url) = &settings.public_url {
            drp.api_base.clone_from(url);
        }
        if let Some(id) = &settings.drp_business_id {
            drp.business_id.clone_from(id);
        }
        tracing::info!(
            business_id = %drp.business_id,
            api_base = %drp.api_base,
            "answering authorized agents (Data Rights Protocol 1.0)"
        );
        let app = app.with_drp(drp);
        let limits = custodian_server::Limits {
            per_key: settings.rate_limit_per_key,
            per_ip: settings.rate_limit_per_ip,
            body_bytes: settings.body_limit,
            key_cache: settings.key_cache,
        };
        tracing::info!(
            policy = %policy_source,
            version = %app.policy_version(),
            store = %settings.store.describe(),
            "custodian listening on http://{bound}"
        );
        // One stop signal for the server and the background work; the
        // runner finishes the task under way before the process exits.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let runner_settings = custodian_engine::requests::tasks::RunnerSettings {
            lease: settings.task_lease,
            unverified_expiry: settings.unverified_expiry,
            ..Default::default()
        };
        let runner = tokio::spawn(custodian_engine::requests::tasks::runner(
            app.clone(),
            runner_settings,
            stopped(stop_rx.clone()),
        ));
        let sweeper = settings.retention_sweep.map(|every| {
            tokio::spawn(custodian_engine::retention::sweep::scheduled(
                app.clone(),
                every,
                stopped(stop_rx.clone()),
            ))
        });
        let served = custodian_server::serve(
            listener,
            custodian_server::router(app, &limits),
            stopped(stop_rx),
        )
        .await;
        if runner.await.is_err() {
            tracing::error!("the task runner stopped abnormally");
        }
        if let Some(sweeper) = sweeper {
            if sweeper.await.is_err() {
                tracing::error!("the retention sweep stopped abnormally");
            }
        }
        match served {
            Ok(()) => {
                tracing::info!("custodian stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("custodian: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// On a store with no keys at all, creates an admin key and prints it once.
async fn bootstrap_admin(app: &App) -> Result<(), String> {
    let existing = app.store.api_keys().await.map_err(|e| e.to_string())?;
    if !existing.is_empty() {
        return Ok(());
    }
    let request = NewKeyRequest {
        role: Role::Admin,
        purposes: Vec::new(),
        recipient: None,
        label: Some("first admin key".into()),
    };
    let created = keys::create_as(app, "bootstrap", request, time::OffsetDateTime::now_utc())
        .await
        .map_err(|e| e.to_string())?;
    println!("admin API key (shown once; keep it safe): {}", created.key);
    Ok(())
}
