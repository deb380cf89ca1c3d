//! `custodian suppressions import --list tps FILE`: loads the Telephone
//! Preference Service (or Corporate TPS) file the organisation downloads,
//! streamed line by line (never held whole in memory), as keyed hashes in
//! the suppression list that live-call checks screen against.

use crate::admin_cmd::open_app;
use crate::config::StoreArgs;
use crate::serve::runtime;
use clap::Subcommand;
use custodian_engine::marketing;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum SuppressionsCommand {
    /// Load a TPS or CTPS file (one number per line, UK national or
    /// international form; a first CSV column is read) into the list that
    /// live calls are screened against. Prints progress on stderr and the
    /// count on stdout.
    Import {
        #[command(flatten)]
        store: StoreArgs,
        /// tps (individuals) or ctps (corporate subscribers).
        #[arg(long)]
        list: String,
        file: PathBuf,
    },
}

const BATCH: usize = 10_000;

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("custodian: {message}");
    ExitCode::FAILURE
}

pub fn run(command: SuppressionsCommand) -> ExitCode {
    let SuppressionsCommand::Import { store, list, file } = command;
    if !marketing::TPS_LISTS.contains(&list.as_str()) {
        return fail(format!("unknown list `{list}`; expected tps or ctps"));
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        let app = match open_app(&store, None).await {
            Ok(a) => a,
            Err(code) => return code,
        };
        let reader = match std::fs::File::open(&file) {
            Ok(f) => std::io::BufReader::new(f),
            Err(e) => return fail(format!("{}: {e}", file.display())),
        };
        let mut hash = custodian_vault::crypto::Sha256Stream::default();
        let (mut lines, mut loaded) = (0u64, 0u64);
        let mut batch = Vec::with_capacity(BATCH);
        let now = time::OffsetDateTime::now_utc();
        for line in reader.lines() {
            let line = match line {
                Ok(l) => l,
                Err(e) => return fail(format!("{}: {e}", file.display())),
            };
            hash.update(line.as_bytes());
            hash.update(b"\n");
            lines += 1;
            batch.push(line);
            if batch.len() == BATCH {
                match marketing::import_tps_batch(&app, &list, &batch, now).await {
                    Ok(n) => loaded += n as u64,
                    Err(e) => return fail(e),
                }
                batch.clear();
                eprintln!("{list}: {lines} lines read, {loaded} numbers loaded");
            }
        }
        match marketing::import_tps_batch(&app, &list, &batch, now).await {
            Ok(n) => loaded += n as u64,
            Err(e) => return fail(e),
        }
        let skipped = lines - loaded;
        if let Err(e) =
            marketing::record_tps_import(&app, &list, loaded, skipped, hash.finish(), now).await
        {
            return fail(e);
        }
        println!("{list}: {loaded} numbers loaded ({skipped} lines were not numbers)");
        ExitCode::SUCCESS
    })
}
