//! `tailor`: every Tailor tool behind one binary.
//!
//! `main` only parses arguments and dispatches; each subcommand lives in its own module. Errors
//! are printed once, on stderr, and turn into a non-zero exit code. Nothing here prints a
//! customer identifier.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod hash;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Hash(args) => hash::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tailor: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
