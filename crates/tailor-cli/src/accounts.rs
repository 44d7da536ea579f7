//! `tailor accounts import`: the admin API's account import, from a file or stdin, straight
//! into a data directory.
//!
//! It runs the same engine import as `POST /v1/admin/accounts` and prints the same summary
//! (JSON, on stdout). Refused lines are not a failure: they are in the summary, and the exit
//! code is 0. A store failure stops the import (what was written stays written), prints the
//! summary so far, and exits non-zero. A running `tailor serve` on the same data directory
//! does not see accounts imported this way until it restarts: import through the server
//! while it runs.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use tailor_core::Policy;
use tailor_engine::secret::load_index_key;
use tailor_engine::{Engine, EngineError, ImportSummary, Limits, SystemClock};
use tailor_server::config::{DEFAULT_DATA_DIR, SECRET_KEY_ENV};
use tokio::io::BufReader;

/// Accounts, contact points and consent history.
#[derive(Debug, Subcommand)]
pub(crate) enum AccountsCommand {
    Import(ImportArgs),
}

/// Import NDJSON account lines (the admin API's format) into a data directory.
///
/// Prints the summary as JSON on stdout: accounts, contact points and consents written,
/// refusals by reason code, and the first refusals with their lines.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The data directory (created if missing).
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,

    #[command(flatten)]
    database: crate::database::DatabaseArgs,

    /// The NDJSON file to read, or - for standard input.
    #[arg(value_name = "FILE|-")]
    input: PathBuf,
}

pub(crate) fn run(command: AccountsCommand) -> Result<ExitCode> {
    match command {
        AccountsCommand::Import(args) => crate::runtime::runtime()?.block_on(import(args)),
    }
}

async fn import(args: ImportArgs) -> Result<ExitCode> {
    let store = args.database.open(&args.data_dir).await?;
    let secret = std::env::var(SECRET_KEY_ENV).ok().filter(|v| !v.is_empty());
    let (key, _) = load_index_key(&args.data_dir, secret.as_deref())?;
    // A file has no size limit: it is the operator's own.
    // Only accounts: upload jobs are the servers' to run.
    let limits = Limits {
        max_body_bytes: u64::MAX,
        run_jobs: false,
        ..Limits::default()
    };
    // Decided under the policy the servers put in force (the shipped one before any).
    let policy = tailor_engine::policy_in_force(store.as_ref())
        .await?
        .unwrap_or_else(Policy::shipped);
    let engine = Engine::open(store, key, policy, Arc::new(SystemClock), limits).await?;
    let result = if args.input == Path::new("-") {
        engine
            .import(BufReader::with_capacity(1 << 18, tokio::io::stdin()))
            .await
    } else {
        let file = tokio::fs::File::open(&args.input)
            .await
            .with_context(|| format!("opening {}", args.input.display()))?;
        engine.import(BufReader::with_capacity(1 << 18, file)).await
    };
    match result {
        Ok(summary) => {
            print_summary(&summary)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(EngineError::ImportInterrupted { summary, source }) => {
            print_summary(&summary)?;
            Err(anyhow::Error::new(source).context(format!(
                "the import stopped after {} accounts",
                summary.accounts
            )))
        }
        Err(other) => Err(other.into()),
    }
}

fn print_summary(summary: &ImportSummary) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, summary).context("writing the summary")?;
    writeln!(out).context("writing the summary")?;
    Ok(())
}
