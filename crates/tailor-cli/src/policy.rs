//! `tailor policy`: check a policy file, print the shipped one, or print the record of
//! processing a policy implies.
//!
//! `check` reports every problem as `FILE:LINE: message` (the format editors and CI jump
//! to) and exits 1 if there is any; a policy that makes a security or address-book context
//! eligible for marketing is always one. `show` prints the policy built into this binary,
//! which is what `tailor serve` enforces without `--policy`: the starting point for a custom
//! one. `report` prints the GDPR article 30 record of processing under a policy file (or the
//! shipped policy), in Markdown or JSON; a file with problems fails exactly as `check` does.
//! The record itself is built in `tailor_core::processing`; this module only reads the file
//! and writes the rendering.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Subcommand, ValueEnum};
use tailor_core::Policy;
use tailor_core::policy::DEFAULT_POLICY;
use tailor_core::processing::ProcessingRecord;
use tailor_engine::advertising::MAX_TTL_DAYS;
use tailor_server::ServerError;
use tailor_server::config::load_policy_file;

/// Policy files: which contact points may be used for which purpose.
#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Check a policy file: prints `ok: <version>`, or each problem as FILE:LINE: message.
    Check {
        /// The policy file (TOML).
        file: PathBuf,
    },
    /// Print the shipped policy (what `tailor serve` enforces without --policy).
    Show,
    /// Print the record of processing (GDPR article 30) under a policy file.
    ///
    /// The record lists the purposes with their contexts and legal basis by region, the
    /// categories of people and data, the recipients, transfers, retention and safeguards, each
    /// guarantee naming the code that enforces it, and carries the policy's version. Without
    /// FILE it is the shipped policy's record. A file with problems fails as `check` does: each
    /// problem as FILE:LINE: message on stderr, exit code 1.
    Report {
        /// The policy file (TOML); without it, the shipped policy (what `tailor serve`
        /// enforces without --policy).
        file: Option<PathBuf>,
        /// Markdown for people, JSON for programs.
        #[arg(long, value_enum, default_value_t = ReportFormat::Markdown)]
        format: ReportFormat,
    },
}

/// How `tailor policy report` writes the record.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum ReportFormat {
    Markdown,
    Json,
}

pub(crate) fn run(command: PolicyCommand) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match command {
        PolicyCommand::Show => {
            out.write_all(DEFAULT_POLICY.as_bytes())
                .context("writing the policy")?;
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Check { file } => match load(&file)? {
            Ok(policy) => {
                writeln!(out, "ok: {}", policy.version()).context("writing the result")?;
                Ok(ExitCode::SUCCESS)
            }
            Err(code) => Ok(code),
        },
        PolicyCommand::Report { file, format } => {
            let policy = match file {
                None => Policy::shipped(),
                Some(file) => match load(&file)? {
                    Ok(policy) => policy,
                    Err(code) => return Ok(code),
                },
            };
            let record = ProcessingRecord::of(&policy, MAX_TTL_DAYS);
            match format {
                ReportFormat::Markdown => out
                    .write_all(record.to_markdown().as_bytes())
                    .context("writing the record")?,
                ReportFormat::Json => {
                    serde_json::to_writer_pretty(&mut out, &record)
                        .context("writing the record")?;
                    writeln!(out).context("writing the record")?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Reads and checks a policy file. A file with problems has them printed on stderr, one
/// `FILE:LINE: message` each, and gives the failing exit code; a file that cannot be read is
/// an error.
pub(crate) fn load(file: &Path) -> Result<Result<Policy, ExitCode>> {
    match load_policy_file(file) {
        Ok(policy) => Ok(Ok(policy)),
        Err(problems @ ServerError::Policy { .. }) => {
            eprintln!("{problems}");
            Ok(Err(ExitCode::FAILURE))
        }
        Err(other) => Err(other.into()),
    }
}
