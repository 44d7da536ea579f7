//! `tailor serve`: the platform-side HTTP server (see `tailor-server`).
//!
//! Secrets are never taken as arguments (they would show in `ps`): the index key and the
//! callers' tokens come from the environment, or from the data directory. A PostgreSQL URL may
//! be given as `--database-url`, but one holding a password belongs in `TAILOR_DATABASE_URL`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use tailor_core::release::{Epsilon, ReleaseConfig};
use tailor_engine::Limits;
use tailor_server::config::{DEFAULT_DATA_DIR, DEFAULT_LISTEN};
use tailor_server::{Config, serve};

/// Run the HTTP API: accounts, consent and erasure; advertisers, audiences, list uploads and
/// the serving lookup; the OpenAPI document at /v1/openapi.json; metrics.
///
/// Tokens come from TAILOR_ADMIN_TOKEN, TAILOR_SERVING_TOKEN and TAILOR_COMPLIANCE_TOKEN; a
/// role without one gets a generated token at first start, printed once on stdout and stored
/// hashed. The index key comes from TAILOR_SECRET_KEY or from secret.key in the data directory
/// (generated at first start: back it up). Prints `listening on http://ADDR`, then `ready: ...`
/// once the index is built. Stops cleanly on SIGTERM or ctrl-c.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The data directory (created on first start).
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,

    #[command(flatten)]
    database: crate::database::DatabaseArgs,

    /// The address to listen on (HOST:PORT; port 0 picks a free port).
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: String,

    /// A policy file (TOML) to enforce instead of the shipped one (`tailor policy show`).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,

    /// The most bytes read from one import body; the rest is refused with 413.
    #[arg(long, default_value_t = Limits::default().max_body_bytes)]
    max_body_bytes: u64,

    /// The longest account line accepted, in bytes.
    #[arg(long, default_value_t = Limits::default().max_line_bytes)]
    max_line_bytes: usize,

    /// The fewest members an audience needs to be targetable and to have its size shown;
    /// below it, advertisers see only `{"below_threshold":true}`.
    #[arg(long, default_value_t = ReleaseConfig::default().min_size, value_parser = clap::value_parser!(u64).range(1..))]
    min_audience_size: u64,

    /// How long the membership history (every grant and end, with its basis) is kept, in
    /// days, for incident analysis and data-use reports; the basis of a live membership is kept
    /// while it lives. 0 keeps it forever.
    #[arg(long, default_value_t = Limits::default().history_retention_days)]
    history_retention_days: u32,

    /// With several replicas on one PostgreSQL database: how long a replica's claim on a job
    /// lasts, in seconds, unless renewed (every third of it, while it lives). A job whose
    /// replica died is taken over by another once its claim lapses.
    #[arg(long, default_value_t = Limits::default().job_lease_seconds, value_parser = clap::value_parser!(u32).range(1..=3600))]
    job_lease_seconds: u32,

    /// The ε of one released size (discrete Laplace noise of scale 1/ε); smaller is noisier
    /// and more private. See docs/privacy.md.
    #[arg(long, default_value_t = ReleaseConfig::default().epsilon)]
    release_epsilon: Epsilon,

    /// The total ε a legal entity may spend on released sizes per period.
    #[arg(long, default_value_t = ReleaseConfig::default().budget)]
    release_budget: Epsilon,

    /// The rolling period of the budget, in days.
    #[arg(long, default_value_t = ReleaseConfig::default().period_days, value_parser = clap::value_parser!(u32).range(1..=3650))]
    release_period_days: u32,

    /// How long an audience changed only by people's consent, expiry or erasure keeps its
    /// last released size before a fresh one is drawn, in hours.
    #[arg(long, default_value_t = ReleaseConfig::default().refresh_hours, value_parser = clap::value_parser!(u32).range(0..=8760))]
    release_refresh_hours: u32,
}

pub(crate) fn run(args: ServeArgs) -> Result<ExitCode> {
    if args.release_epsilon > args.release_budget {
        anyhow::bail!(
            "--release-epsilon {} is more than --release-budget {}: no size could ever be released",
            args.release_epsilon,
            args.release_budget
        );
    }
    let config = Config {
        data_dir: args.data_dir,
        database: args.database.url()?,
        listen: args.listen,
        policy: args.policy,
        limits: Limits {
            max_body_bytes: args.max_body_bytes,
            max_line_bytes: args.max_line_bytes,
            history_retention_days: args.history_retention_days,
            job_lease_seconds: args.job_lease_seconds,
            ..Limits::default()
        },
        release: ReleaseConfig {
            min_size: args.min_audience_size,
            epsilon: args.release_epsilon,
            budget: args.release_budget,
            period_days: args.release_period_days,
            refresh_hours: args.release_refresh_hours,
            ..ReleaseConfig::default()
        },
        ..Config::default()
    }
    .with_env();
    crate::runtime::runtime()?.block_on(serve(config))?;
    Ok(ExitCode::SUCCESS)
}
