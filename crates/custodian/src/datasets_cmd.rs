//! `custodian datasets`: draft a dataset declaration from a live schema,
//! and check the declared datasets against theirs (the drift report the
//! server also logs at start).

use clap::Subcommand;
use custodian_policy::datasets::System;
use custodian_policy::datasets_schema::{Drift, draft, drift};
use custodian_policy::model::Policy;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum DatasetsCommand {
    /// Print a dataset declaration read from a live PostgreSQL or MariaDB
    /// schema, categories guessed from names and types (marked as guesses).
    Draft {
        /// postgres://... or mysql://...; read, never printed.
        #[arg(long, env = "CUSTODIAN_DRAFT_DATABASE_URL", hide_env_values = true)]
        database_url: String,
        /// The dataset's id in the draft.
        #[arg(long, default_value = "shop")]
        id: String,
        /// The connection's name (its URL then comes from CUSTODIAN_CONNECTION_<NAME>).
        #[arg(long)]
        connection: Option<String>,
    },
    /// Compare each declared table dataset with its live schema: columns not
    /// declared, declared columns gone, set-null on NOT NULL columns.
    /// Exits 1 when anything differs.
    Check {
        /// The policy file (default: the reference policy).
        #[arg(long, env = "CUSTODIAN_POLICY")]
        policy: Option<PathBuf>,
    },
}

pub fn run(command: DatasetsCommand) -> ExitCode {
    let rt = match crate::serve::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match command {
        DatasetsCommand::Draft {
            database_url,
            id,
            connection,
        } => {
            let Some(system) = custodian_connectors::schema::system_of(&database_url)
                .filter(|s| matches!(s, System::Postgres | System::Mysql))
            else {
                eprintln!("custodian: the URL is neither postgres:// nor mysql://");
                return ExitCode::FAILURE;
            };
            match rt.block_on(custodian_connectors::schema::read(system, &database_url)) {
                Ok(live) => {
                    let connection = connection.unwrap_or_else(|| id.clone());
                    print!("{}", draft(&id, system, &connection, &live));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("custodian: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        DatasetsCommand::Check { policy } => {
            let Some((loaded, _, _)) = crate::serve::load_policy(policy.as_deref()) else {
                return ExitCode::FAILURE;
            };
            let reports = rt.block_on(check(&loaded.document, |n| std::env::var(n).ok()));
            let mut differs = false;
            for (dataset, result) in reports {
                match result {
                    Ok(found) if found.is_empty() => println!("{dataset}: matches the database"),
                    Ok(found) => {
                        differs = true;
                        for d in found {
                            println!("{dataset}: {d}");
                        }
                    }
                    Err(why) => {
                        differs = true;
                        println!("{dataset}: not checked: {why}");
                    }
                }
            }
            if differs {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}

/// Each declared table dataset's drift, or why it could not be read.
pub async fn check(
    policy: &Policy,
    url_of: impl Fn(&str) -> Option<String>,
) -> Vec<(String, Result<Vec<Drift>, String>)> {
    let mut out = Vec::new();
    for d in &policy.datasets {
        if !matches!(*d.system, System::Postgres | System::Mysql) {
            continue;
        }
        let var = custodian_connectors::env_name(&d.connection);
        let Some(url) = url_of(&var) else {
            out.push((d.id.to_string(), Err(format!("{var} is not set"))));
            continue;
        };
        let result = custodian_connectors::schema::read(*d.system, &url)
            .await
            .map(|live| drift(d, &live))
            .map_err(|e| e.to_string());
        out.push((d.id.to_string(), result));
    }
    out
}
