//! `custodian retention ...`: run the sweep by hand, the report of what
//! expires when, legal holds, and the review of retention rules. Each acts
//! on the store directly, as `cli` in the audit.

use crate::admin_cmd::open_app;
use crate::config::StoreArgs;
use crate::serve::runtime;
use clap::Subcommand;
use custodian_engine::App;
use custodian_engine::retention::datasets::DatasetSwept;
use custodian_engine::retention::holds::{self, HoldRequest, HoldScope};
use custodian_engine::retention::report;
use custodian_engine::retention::sweep::{self, SweepSettings, SweepSummary};
use std::path::PathBuf;
use std::process::ExitCode;
use time::OffsetDateTime;

const ACTOR: &str = "cli";

#[derive(Subcommand)]
pub enum RetentionCommand {
    /// Erase the data whose retention ended now, in batches, showing progress.
    Run {
        #[command(flatten)]
        store: StoreArgs,
        /// The policy the server runs with (default: the built-in reference policy).
        #[arg(long, env = "CUSTODIAN_POLICY")]
        policy: Option<PathBuf>,
        /// Show what would be erased; erase nothing.
        #[arg(long)]
        dry_run: bool,
        /// Subjects per batch (one transaction each).
        #[arg(long, default_value_t = 500)]
        batch: i64,
        /// Stop after this many batches; the next run goes on from there.
        #[arg(long)]
        max_batches: Option<u64>,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// What expires when and why, what is held, and the rules due for review.
    Report {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long, env = "CUSTODIAN_POLICY")]
        policy: Option<PathBuf>,
        /// How far ahead: 30d, 12w, 6m, 1y.
        #[arg(long, default_value = "30d")]
        within: String,
        #[arg(long)]
        json: bool,
    },
    /// Legal holds: set, release, list.
    Hold {
        #[command(subcommand)]
        command: HoldCommand,
    },
    /// Record that a retention rule was reviewed (audited).
    Review {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long, env = "CUSTODIAN_POLICY")]
        policy: Option<PathBuf>,
        /// The rule's id in the policy.
        rule: String,
        /// What the review found.
        #[arg(long)]
        note: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum HoldCommand {
    /// Keep data from expiry and erasure; prints the hold's id.
    Set {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long, env = "CUSTODIAN_POLICY")]
        policy: Option<PathBuf>,
        /// subject, category or dataset.
        #[arg(long, value_enum)]
        scope: ScopeArg,
        /// The subject's id, the category's id or the dataset's name.
        #[arg(long)]
        target: String,
        #[arg(long)]
        reason: String,
        /// When the hold ends by itself (RFC 3339).
        #[arg(long)]
        ends_at: Option<String>,
    },
    /// Release a hold; what it kept is then due as its rules say.
    Release {
        #[command(flatten)]
        store: StoreArgs,
        id: uuid::Uuid,
    },
    /// Every hold, in force or not.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ScopeArg {
    Subject,
    Category,
    Dataset,
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("custodian: {message}");
    ExitCode::FAILURE
}

async fn app(store: &StoreArgs, policy: Option<&std::path::Path>) -> Result<App, ExitCode> {
    open_app(store, policy).await
}

/// The app, with a sweeper for each declared dataset with a retention
/// whose connection (`CUSTODIAN_CONNECTION_<NAME>`) is set.
fn with_sweepers(app: App) -> App {
    let keys = app.keys.clone();
    let (sweepers, missing) = custodian_connectors::sweep::connect_sweepers(
        &app.policy.document,
        |name| std::env::var(name).ok(),
        |dataset| keys.blind_index("dataset-hash-key", dataset),
    );
    for u in missing {
        eprintln!(
            "custodian: dataset {} is not connected: {}",
            u.dataset, u.why
        );
    }
    app.with_sweepers(sweepers)
}

fn dataset_line(d: &DatasetSwept, dry_run: bool) -> String {
    let what = if dry_run { "due" } else { "erased" };
    match (&d.held_by, &d.error) {
        (Some(h), _) => format!(
            "dataset {} (rule {}): held by {h}, not swept",
            d.dataset, d.rule
        ),
        (None, Some(e)) => format!("dataset {} (rule {}): failed: {e}", d.dataset, d.rule),
        (None, None) => {
            let parts: Vec<String> = d
                .changed
                .iter()
                .map(|p| format!("{} {}", p.part, p.rows))
                .collect();
            format!(
                "dataset {} (rule {}, before {}): {} rows {what} ({})",
                d.dataset,
                d.rule,
                d.cutoff,
                d.total,
                parts.join(", ")
            )
        }
    }
}

fn progress_line(s: &SweepSummary) -> String {
    // After the vault, each line is a dataset swept.
    if let Some(d) = s.datasets.last() {
        return dataset_line(d, s.dry_run);
    }
    format!(
        "batch {}: {} subjects examined, {} data {}, {} subjects shredded, {} held",
        s.batches,
        s.subjects_examined,
        s.data_erased,
        if s.dry_run { "due" } else { "erased" },
        s.subjects_shredded,
        s.data_held
    )
}

pub fn run(command: RetentionCommand) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let now = OffsetDateTime::now_utc();
        match command {
            RetentionCommand::Run {
                store,
                policy,
                dry_run,
                batch,
                max_batches,
                json,
            } => {
                if !(1..=10_000).contains(&batch) {
                    return fail("--batch must be between 1 and 10000");
                }
                let app = match app(&store, policy.as_deref()).await {
                    Ok(a) => a,
                    Err(code) => return code,
                };
                let app = with_sweepers(app);
                let settings = SweepSettings {
                    batch,
                    max_batches,
                    dry_run,
                    ..SweepSettings::default()
                };
                // Progress on stderr, so stdout holds the summary alone.
                let mut progress = |s: &SweepSummary| eprintln!("{}", progress_line(s));
                let done = sweep::run_as(&app, ACTOR, &settings, now, &mut progress).await;
                // A dataset that could not be swept fails the run (after
                // the summary), so that a cron job notices.
                let code = |s: &SweepSummary| {
                    if s.datasets.iter().any(|d| d.error.is_some()) {
                        ExitCode::FAILURE
                    } else {
                        ExitCode::SUCCESS
                    }
                };
                match done {
                    Ok(s) if json => {
                        out!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
                        code(&s)
                    }
                    Ok(s) => {
                        out!(
                            "{}{} data {} ({} subjects shredded), {} held, {} subjects examined in {} batches{}",
                            if s.dry_run { "dry run: " } else { "" },
                            s.data_erased,
                            if s.dry_run { "due" } else { "erased" },
                            s.subjects_shredded,
                            s.data_held,
                            s.subjects_examined,
                            s.batches,
                            if s.finished { "" } else { "; more is due: run again" }
                        );
                        for (rule, n) in &s.by_rule {
                            out!("  {rule}: {n}");
                        }
                        for d in &s.datasets {
                            out!("{}", dataset_line(d, s.dry_run));
                        }
                        code(&s)
                    }
                    Err(e) => fail(e),
                }
            }
            RetentionCommand::Report {
                store,
                policy,
                within,
                json,
            } => {
                let app = match app(&store, policy.as_deref()).await {
                    Ok(a) => a,
                    Err(code) => return code,
                };
                let app = with_sweepers(app);
                match report::report_as(&app, Some(&within), now).await {
                    Ok(r) if json => {
                        out!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
                        ExitCode::SUCCESS
                    }
                    Ok(r) => {
                        out!("Retention report, {} to {}", r.generated_at, r.until);
                        out!("Expiring ({}{}):", r.expiring.len(), if r.truncated { ", more not listed" } else { "" });
                        for d in &r.expiring {
                            out!(
                                "  {}\t{}\t{}\trule {}{}\t{}",
                                d.expires_at,
                                d.subject,
                                d.field,
                                d.rule,
                                d.kept_by.as_ref().map_or_else(String::new, |k| format!(" (kept: {k})")),
                                d.why
                            );
                        }
                        out!("Legal holds in force ({}):", r.holds.len());
                        for h in &r.holds {
                            out!(
                                "  {}\t{} {}\tset by {} at {}\tuntil {}\t{}",
                                h.id,
                                h.scope,
                                h.target,
                                h.set_by,
                                h.set_at,
                                h.ends_at.as_deref().unwrap_or("it is released"),
                                h.reason
                            );
                        }
                        out!("Datasets with a retention ({}):", r.datasets.len());
                        for d in &r.datasets {
                            out!(
                                "  {}\t{}\trule {}\tdue before {}\t{}{}",
                                d.dataset,
                                d.parts.join(", "),
                                d.rule,
                                d.cutoff,
                                d.held_by.map_or_else(|| "not held".to_string(), |h| format!("held by {h}")),
                                if d.connected { "" } else { "\tnot connected" }
                            );
                        }
                        out!("Rules due for review ({}):", r.reviews_due.len());
                        for v in &r.reviews_due {
                            out!(
                                "  {}\tlast reviewed {}\tdue {}{}",
                                v.rule,
                                v.last_reviewed.as_deref().unwrap_or("never"),
                                v.due.as_deref().unwrap_or("now"),
                                if v.overdue { " (overdue)" } else { "" }
                            );
                        }
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(e),
                }
            }
            RetentionCommand::Hold { command } => hold(command, now).await,
            RetentionCommand::Review {
                store,
                policy,
                rule,
                note,
            } => {
                let app = match app(&store, policy.as_deref()).await {
                    Ok(a) => a,
                    Err(code) => return code,
                };
                match report::review_as(&app, ACTOR, &rule, note, now).await {
                    Ok(r) => {
                        out!(
                            "rule {} reviewed at {}; next review due {}",
                            r.rule,
                            r.reviewed_at,
                            r.next_due.as_deref().unwrap_or("-")
                        );
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(e),
                }
            }
        }
    })
}

async fn hold(command: HoldCommand, now: OffsetDateTime) -> ExitCode {
    match command {
        HoldCommand::Set {
            store,
            policy,
            scope,
            target,
            reason,
            ends_at,
        } => {
            let app = match app(&store, policy.as_deref()).await {
                Ok(a) => a,
                Err(code) => return code,
            };
            let scope = match scope {
                ScopeArg::Subject => HoldScope::Subject,
                ScopeArg::Category => HoldScope::Category,
                ScopeArg::Dataset => HoldScope::Dataset,
            };
            let req = HoldRequest {
                scope,
                target,
                reason,
                ends_at,
            };
            match holds::set_hold_as(&app, ACTOR, req, now).await {
                Ok(h) => {
                    out!("{}", h.id);
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        HoldCommand::Release { store, id } => {
            let app = match app(&store, None).await {
                Ok(a) => a,
                Err(code) => return code,
            };
            match holds::release_hold_as(&app, ACTOR, id, now).await {
                Ok(h) => {
                    out!("released {}", h.id);
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        HoldCommand::List { store } => {
            let app = match app(&store, None).await {
                Ok(a) => a,
                Err(code) => return code,
            };
            match holds::list_holds_as(&app, now).await {
                Ok(list) => {
                    for h in list {
                        out!(
                            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                            h.id,
                            if h.active { "active" } else { "ended" },
                            h.scope,
                            h.target,
                            h.set_by,
                            h.ends_at.as_deref().unwrap_or("-"),
                            h.reason
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
    }
}
