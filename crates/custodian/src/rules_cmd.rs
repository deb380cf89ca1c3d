//! `custodian rules ...`: the statutory deadline calculator.

use clap::{Subcommand, ValueEnum};
use custodian_policy::day::Day;
use custodian_policy::rules::calendar::Division;
use custodian_policy::rules::deadline::{RequestClock, response_due};
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum RulesCommand {
    /// When a data-subject request received on DATE (YYYY-MM-DD) is due.
    Deadline {
        received: String,
        #[arg(long, value_enum, default_value = "england-and-wales")]
        division: DivisionArg,
        /// The extended deadline (two further months).
        #[arg(long)]
        extended: bool,
        /// When identity information arrived, if later (Art. 12A).
        #[arg(long)]
        identity_received: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum DivisionArg {
    EnglandAndWales,
    Scotland,
    NorthernIreland,
}

pub fn run(command: RulesCommand) -> ExitCode {
    match command {
        RulesCommand::Deadline {
            received,
            division,
            extended,
            identity_received,
        } => {
            let Some(received) = parse_day(&received) else {
                return ExitCode::FAILURE;
            };
            let identity = match identity_received.as_deref().map(parse_day) {
                Some(None) => return ExitCode::FAILURE,
                Some(Some(d)) => Some(d),
                None => None,
            };
            let division = match division {
                DivisionArg::EnglandAndWales => Division::EnglandAndWales,
                DivisionArg::Scotland => Division::Scotland,
                DivisionArg::NorthernIreland => Division::NorthernIreland,
            };
            let clock = RequestClock {
                identity_received: identity,
                ..RequestClock::received(received)
            };
            match response_due(&clock, division, extended) {
                Ok(due) => {
                    out!("{}", Day(due));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("custodian: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn parse_day(text: &str) -> Option<time::Date> {
    let day = Day::parse(text).map(Day::date);
    if day.is_none() {
        eprintln!("custodian: `{text}` is not a date; write YYYY-MM-DD");
    }
    day
}
