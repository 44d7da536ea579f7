//! `tailor advertisers create`: creates an advertiser and its first API key straight in a data
//! directory, and prints the same JSON as `POST /v1/admin/advertisers`.
//!
//! It writes through the store only (the engine's `create_advertiser`, which needs no index),
//! so it is quick whatever the data directory holds. Like every command that opens a data
//! directory, it refuses while `tailor serve` holds it (the store's lock says so); create
//! advertisers through the admin API then. The key is printed once, on stdout; only its SHA-256
//! is stored.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use tailor_engine::advertising::create_advertiser;
use tailor_engine::{Clock as _, Refused, SystemClock};
use tailor_server::ServerError;
use tailor_server::config::DEFAULT_DATA_DIR;

/// Advertisers and their API keys.
#[derive(Debug, Subcommand)]
pub(crate) enum AdvertisersCommand {
    Create(CreateArgs),
}

/// Create an advertiser and its first API key; prints
/// {"advertiser_id","name","entity","key_id","api_key"} once on stdout.
#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// The data directory of the server (it must exist, and no server may be running on it).
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,

    #[command(flatten)]
    database: crate::database::DatabaseArgs,

    /// The advertiser's display name.
    #[arg(long)]
    name: String,

    /// The legal entity privacy budgets are counted against (the name when absent).
    #[arg(long)]
    entity: Option<String>,
}

pub(crate) fn run(command: AdvertisersCommand) -> Result<ExitCode> {
    let AdvertisersCommand::Create(args) = command;
    // Creating an advertiser in a directory that does not exist would start an empty one that
    // no server reads.
    if !args.data_dir.is_dir() {
        return Err(ServerError::NoDataDir(args.data_dir.display().to_string()).into());
    }
    let created = crate::runtime::runtime()?.block_on(async {
        let store = args.database.open(&args.data_dir).await?;
        let created = create_advertiser(
            store.as_ref(),
            &args.name,
            args.entity.as_deref(),
            SystemClock.now(),
        )
        .await?;
        anyhow::Ok(created)
    })?;
    let created = match created {
        Ok(created) => created,
        Err(Refused::Invalid(field)) => {
            bail!("--{field} must be 1 to 200 characters, without control characters")
        }
        Err(_) => bail!("the advertiser was refused"),
    };
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &created).context("writing the advertiser")?;
    writeln!(out).context("writing the advertiser")?;
    eprintln!(
        "tailor: the api_key above is shown only this once (only its hash is stored); give it to \
         the advertiser as its bearer token"
    );
    Ok(ExitCode::SUCCESS)
}
