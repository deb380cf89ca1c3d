//! `custodian`: the one binary. Subcommands are thin: they read files and
//! arguments, call the core, and print.

mod policy_cmd;
mod rules_cmd;
mod serve;

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
    /// Check, render and compare policy files.
    Policy {
        #[command(subcommand)]
        command: policy_cmd::PolicyCommand,
    },
    /// Statutory deadlines computed from the shipped calendars.
    Rules {
        #[command(subcommand)]
        command: rules_cmd::RulesCommand,
    },
    /// Run the server.
    Serve(serve::ServeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Policy { command } => policy_cmd::run(command),
        Command::Rules { command } => rules_cmd::run(command),
        Command::Serve(args) => serve::run(args),
    }
}
