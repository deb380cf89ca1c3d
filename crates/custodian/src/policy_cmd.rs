//! `custodian policy ...`: check, render, cookies, ropa, diff.

use clap::{Subcommand, ValueEnum};
use custodian_policy::render::{Format, cookies, notice, ropa};
use custodian_policy::{LoadedPolicy, diff, load};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit status when `policy diff` finds a material change.
const MATERIAL_CHANGE: u8 = 3;

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy file: exit 0 with a summary, or 1 with every error as FILE:LINE:COLUMN.
    Check { file: PathBuf },
    /// Render the privacy notice.
    Render {
        file: PathBuf,
        #[arg(long, value_enum, default_value = "md")]
        format: DocFormat,
        /// Render as published by a server whose retention sweep is off
        /// (`retention_sweep_interval = 0`): the notice then does not say
        /// that data is erased automatically.
        #[arg(long)]
        without_retention_sweep: bool,
    },
    /// Render the cookie policy.
    Cookies {
        file: PathBuf,
        #[arg(long, value_enum, default_value = "md")]
        format: DocFormat,
    },
    /// Print the Art. 30 record of processing activities.
    Ropa {
        file: PathBuf,
        #[arg(long, value_enum, default_value = "json")]
        format: RecordFormat,
    },
    /// List every change between two versions; exit 3 if any is material.
    Diff { old: PathBuf, new: PathBuf },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum DocFormat {
    Md,
    Html,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum RecordFormat {
    Csv,
    Json,
}

impl From<DocFormat> for Format {
    fn from(f: DocFormat) -> Format {
        match f {
            DocFormat::Md => Format::Markdown,
            DocFormat::Html => Format::Html,
        }
    }
}

pub fn run(command: PolicyCommand) -> ExitCode {
    match command {
        PolicyCommand::Check { file } => with_policy(&file, |p| {
            out!("{}: valid: {}", file.display(), summary(p));
        }),
        PolicyCommand::Render {
            file,
            format,
            without_retention_sweep,
        } => with_policy(&file, |p| {
            // The notice as this build would publish it: it states only
            // what runs (the sweep runs unless the server turns it off).
            let capabilities = custodian_engine::running_capabilities(!without_retention_sweep);
            let notice = notice::notice_with(&p.document, &capabilities);
            out_raw!("{}", notice.write(format.into()));
        }),
        PolicyCommand::Cookies { file, format } => with_policy(&file, |p| {
            out_raw!(
                "{}",
                cookies::cookie_policy(&p.document).write(format.into())
            );
        }),
        PolicyCommand::Ropa { file, format } => with_policy(&file, |p| match format {
            RecordFormat::Csv => out_raw!("{}", ropa::csv(&p.document)),
            RecordFormat::Json => out!("{}", ropa::json(&p.document)),
        }),
        PolicyCommand::Diff { old, new } => {
            let (Some(old), Some(new)) = (read_policy(&old), read_policy(&new)) else {
                return ExitCode::FAILURE;
            };
            let changes = diff::diff(&old.document, &new.document);
            for change in &changes {
                out!("{change}");
            }
            if diff::is_material(&changes) {
                eprintln!("material changes: people must be told before they apply");
                ExitCode::from(MATERIAL_CHANGE)
            } else {
                if changes.is_empty() {
                    eprintln!("no changes");
                }
                ExitCode::SUCCESS
            }
        }
    }
}

fn summary(p: &LoadedPolicy) -> String {
    let d = &p.document;
    format!(
        "policy {} ({}, effective {}): {} categories ({} fields), {} purposes, {} recipients, {} storage locations, {} cookies",
        *d.policy.version,
        *d.policy.regime,
        d.policy.effective,
        d.categories.len(),
        p.compiled.fields.len(),
        d.purposes.len(),
        d.recipients.len(),
        d.storage.len(),
        d.cookies.len(),
    )
}

fn with_policy(file: &Path, then: impl FnOnce(&LoadedPolicy)) -> ExitCode {
    match read_policy(file) {
        Some(policy) => {
            then(&policy);
            ExitCode::SUCCESS
        }
        None => ExitCode::FAILURE,
    }
}

/// Reads and validates, printing every error to stderr.
pub fn read_policy(file: &Path) -> Option<LoadedPolicy> {
    let name = file.display().to_string();
    let source = match std::fs::read_to_string(file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{name}: cannot read the policy file: {e}");
            return None;
        }
    };
    match load(&name, &source) {
        Ok(policy) => Some(policy),
        Err(errors) => {
            for line in errors.lines() {
                eprintln!("{line}");
            }
            let count = errors.diagnostics.len();
            eprintln!(
                "custodian: {count} error{} in {name}",
                if count == 1 { "" } else { "s" }
            );
            None
        }
    }
}
