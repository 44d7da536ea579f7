//! `tailor policy`: check a policy file, or print the shipped one.
//!
//! `check` reports every problem as `FILE:LINE: message` (the format editors and CI jump
//! to) and exits 1 if there is any; a policy that makes a security or address-book context
//! eligible for marketing is always one. `show` prints the policy built into this binary,
//! which is what `tailor serve` enforces without `--policy`: the starting point for a custom
//! one.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use tailor_core::policy::DEFAULT_POLICY;
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
}

pub(crate) fn run(command: PolicyCommand) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match command {
        PolicyCommand::Show => {
            out.write_all(DEFAULT_POLICY.as_bytes())
                .context("writing the policy")?;
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Check { file } => match load_policy_file(&file) {
            Ok(policy) => {
                writeln!(out, "ok: {}", policy.version()).context("writing the result")?;
                Ok(ExitCode::SUCCESS)
            }
            Err(problems @ ServerError::Policy { .. }) => {
                eprintln!("{problems}");
                Ok(ExitCode::FAILURE)
            }
            Err(other) => Err(other.into()),
        },
    }
}
