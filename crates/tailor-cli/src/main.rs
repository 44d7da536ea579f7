//! `tailor`: every Tailor tool behind one binary.
//!
//! `main` only parses arguments and dispatches; each subcommand lives in its own module. Errors
//! are printed once, on stderr, and turn into a non-zero exit code. Nothing here prints a
//! customer identifier.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of the system allocator: the import pipeline, the index rebuild and the
/// hashing workers allocate on one thread and free on another, which glibc's allocator
/// serializes behind an arena lock (about a tenth of a rebuild's time went to that lock).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod accounts;
mod advertisers;
mod database;
mod hash;
mod incident;
mod log;
mod policy;
mod runtime;
mod serve;
mod tokens;

/// Tailor: customer-list audiences that cannot misuse security data.
#[derive(Debug, Parser)]
#[command(name = "tailor", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Hash(hash::HashArgs),
    Serve(serve::ServeArgs),
    #[command(subcommand)]
    Accounts(accounts::AccountsCommand),
    #[command(subcommand)]
    Advertisers(advertisers::AdvertisersCommand),
    #[command(subcommand)]
    Incident(incident::IncidentCommand),
    #[command(subcommand)]
    Log(log::LogCommand),
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    #[command(subcommand)]
    Tokens(tokens::TokensCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Hash(args) => hash::run(args).map(|()| ExitCode::SUCCESS),
        Command::Serve(args) => serve::run(args),
        Command::Accounts(command) => accounts::run(command),
        Command::Advertisers(command) => advertisers::run(command),
        Command::Incident(command) => incident::run(command),
        Command::Log(command) => log::run(command),
        Command::Policy(command) => policy::run(command),
        Command::Tokens(command) => tokens::run(command),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("tailor: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
