//! The async runtime of the subcommands that talk to the store or serve HTTP.

use anyhow::{Context, Result};

/// A multi-threaded tokio runtime with IO and timers.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
