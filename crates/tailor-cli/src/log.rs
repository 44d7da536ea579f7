//! `tailor log verify`: checks a data directory's accountability log, offline.
//!
//! It recomputes the Merkle tree from the stored entries, checks the root recorded beside each
//! entry and every stored signed checkpoint (signature by the log's key, root of the entries up
//! to its size), and optionally a checkpoint an auditor kept (`--checkpoint FILE`). Problems
//! are printed one per line with their position (`entry N: ...`, `checkpoint of size N:
//! ...`); the exit status is 1 when there is any. It opens the store, so the server must not be
//! running on that directory (verify a copy of a live one). It prints no entry contents.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use tailor_engine::audit::{self, LOG_PUB_FILE};
use tailor_server::ServerError;
use tailor_server::config::DEFAULT_DATA_DIR;

/// The accountability log.
#[derive(Debug, Subcommand)]
pub(crate) enum LogCommand {
    Verify(VerifyArgs),
}

/// Check that the log's entries and signed checkpoints were not altered.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The data directory of the server (stopped).
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,

    #[command(flatten)]
    database: crate::database::DatabaseArgs,

    /// A signed checkpoint kept earlier (for example from `GET /v1/compliance/log/checkpoint`)
    /// that the log must still agree with.
    #[arg(long)]
    checkpoint: Option<PathBuf>,

    /// The log's verifier key file; `log.pub` in the data directory by default. An auditor
    /// should pass the copy it was given, not trust the one beside the data.
    #[arg(long)]
    key: Option<PathBuf>,

    /// How to print the result.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Text,
    Json,
}

pub(crate) fn run(command: LogCommand) -> Result<ExitCode> {
    let LogCommand::Verify(args) = command;
    if !args.data_dir.is_dir() {
        return Err(ServerError::NoDataDir(args.data_dir.display().to_string()).into());
    }
    let key_path = args
        .key
        .clone()
        .unwrap_or_else(|| args.data_dir.join(LOG_PUB_FILE));
    let verifier = audit::load_verifier(&key_path)
        .with_context(|| format!("reading the verifier key {}", key_path.display()))?;
    let given = match &args.checkpoint {
        Some(path) => Some(
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        ),
        None => None,
    };
    let report = crate::runtime::runtime()?.block_on(async {
        let store = args.database.open(&args.data_dir).await?;
        anyhow::Ok(audit::verify(store.as_ref(), &verifier, given.as_deref()).await?)
    })?;
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &report).context("writing the report")?;
            writeln!(out).context("writing the report")?;
        }
        Format::Text => {
            for problem in &report.problems {
                writeln!(out, "{}: {}", problem.position, problem.message)
                    .context("writing the report")?;
            }
            writeln!(
                out,
                "{}: {} entries, {} checkpoints, root {}",
                if report.ok() { "ok" } else { "FAILED" },
                report.entries,
                report.checkpoints,
                report.root
            )
            .context("writing the report")?;
        }
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
