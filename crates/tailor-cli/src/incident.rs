//! `tailor incident analyze`: the incident analysis of `POST /v1/compliance/incidents`, offline,
//! on a stopped server's data directory.
//!
//! It replays every grant made between `--from` and `--to` under `--policy FILE` (the shipped
//! policy when absent; pass the policy the server runs with) and the corrected facts, prints
//! the report (JSON, or CSV of the affected grants), and with `--remediate` ends the affected
//! memberships still live, in the store, and logs it. Accounts appear as log commitments only.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use jiff::Timestamp;
use tailor_core::Policy;
use tailor_engine::incident;
use tailor_engine::{Clock, SystemClock};
use tailor_server::ServerError;
use tailor_server::config::DEFAULT_DATA_DIR;

/// Incidents: who was affected, by whom, when.
#[derive(Debug, Subcommand)]
pub(crate) enum IncidentCommand {
    Analyze(AnalyzeArgs),
}

/// Replay the grants of a window under a (corrected) policy and count who was affected.
#[derive(Debug, Args)]
pub(crate) struct AnalyzeArgs {
    /// The data directory of the server (stopped).
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,

    #[command(flatten)]
    database: crate::database::DatabaseArgs,

    /// The window's start (RFC 3339).
    #[arg(long)]
    from: Timestamp,

    /// The window's end (RFC 3339), inclusive.
    #[arg(long)]
    to: Timestamp,

    /// The policy to replay under; the shipped policy when absent.
    #[arg(long)]
    policy: Option<PathBuf>,

    /// End the affected memberships that are still live, and log it.
    #[arg(long)]
    remediate: bool,

    /// How to print the report.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Json,
    Csv,
}

pub(crate) fn run(command: IncidentCommand) -> Result<ExitCode> {
    let IncidentCommand::Analyze(args) = command;
    if !args.data_dir.is_dir() {
        return Err(ServerError::NoDataDir(args.data_dir.display().to_string()).into());
    }
    if args.to < args.from {
        anyhow::bail!("--to is before --from");
    }
    let policy = match &args.policy {
        None => Policy::shipped(),
        Some(path) => match crate::policy::load(path)? {
            Ok(policy) => policy,
            Err(code) => return Ok(code),
        },
    };
    let report = crate::runtime::runtime()?.block_on(async {
        let store = args.database.open(&args.data_dir).await?;
        let now = SystemClock.now();
        let mut report =
            incident::analyze(store.as_ref(), &policy, args.from, args.to, now).await?;
        if args.remediate {
            incident::remediate(store.as_ref(), &mut report, now).await?;
        }
        Ok::<_, anyhow::Error>(report)
    })?;
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &report).context("writing the report")?;
            writeln!(out).context("writing the report")?;
        }
        Format::Csv => out
            .write_all(report.to_csv().as_bytes())
            .context("writing the report")?,
    }
    eprintln!(
        "tailor: {} grants examined; affected: {} accounts, {} advertisers, {} audiences, {} jobs, {} grants{}",
        report.grants_examined,
        report.affected.accounts,
        report.affected.advertisers,
        report.affected.audiences,
        report.affected.jobs,
        report.affected.grants,
        report
            .remediated
            .map(|n| format!("; {n} memberships ended"))
            .unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}
