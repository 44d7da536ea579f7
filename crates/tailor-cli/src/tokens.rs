//! `tailor tokens reset`: replaces a role's stored token with a new random one and prints it,
//! once.
//!
//! The store keeps only the token's SHA-256, so a lost token cannot be shown again, only
//! replaced. A running `tailor serve` keeps the tokens it read at start: restart it for the
//! new one to take effect. A role whose token is set in the environment
//! (`TAILOR_ADMIN_TOKEN`, ...) uses that one whatever is stored.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use tailor_server::config::DEFAULT_DATA_DIR;
use tailor_server::{Role, ServerError, tokens};

/// The callers' bearer tokens.
#[derive(Debug, Subcommand)]
pub(crate) enum TokensCommand {
    Reset(ResetArgs),
}

/// Replace a role's token with a new one, printed once on stdout.
#[derive(Debug, Args)]
pub(crate) struct ResetArgs {
    /// The data directory of the server.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,

    #[command(flatten)]
    database: crate::database::DatabaseArgs,

    /// The role whose token to replace.
    #[arg(long, value_enum)]
    role: RoleArg,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum RoleArg {
    Admin,
    Serving,
    Compliance,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Admin => Role::Admin,
            RoleArg::Serving => Role::Serving,
            RoleArg::Compliance => Role::Compliance,
        }
    }
}

pub(crate) fn run(command: TokensCommand) -> Result<ExitCode> {
    let TokensCommand::Reset(args) = command;
    // Resetting a token of a data directory that does not exist would create an empty one.
    if !args.data_dir.is_dir() {
        return Err(ServerError::NoDataDir(args.data_dir.display().to_string()).into());
    }
    let role = Role::from(args.role);
    let token = crate::runtime::runtime()?.block_on(async {
        let store = args.database.open(&args.data_dir).await?;
        anyhow::Ok(tokens::reset(store.as_ref(), role).await?)
    })?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", token.as_str()).context("writing the token")?;
    eprintln!(
        "tailor: new {role} token printed above (shown only this once; only its hash is stored). \
         Restart tailor serve for it to take effect; {} overrides it when set.",
        role.env_var()
    );
    Ok(ExitCode::SUCCESS)
}
