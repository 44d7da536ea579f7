//! `--database-url`: the option every command that opens the store shares, so that an operator
//! can point `tailor serve` and the offline commands at the same PostgreSQL database.
//!
//! The string is read by clap as is and parsed here, not by clap: clap repeats a refused value
//! in its error, and this one may hold a password. Nothing here prints it.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use tailor_server::database::{DATABASE_URL_ENV, DatabaseUrl, open_store};
use tailor_store::Store;

/// Where the store lives: PostgreSQL when a URL is given, the data directory's SQLite
/// database otherwise.
#[derive(Debug, Args)]
pub(crate) struct DatabaseArgs {
    /// Keep the store in this PostgreSQL database instead of tailor.db in the data
    /// directory (postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE; the schema is created or
    /// updated on open). The data directory is still required: it keeps the index key
    /// (secret.key), the log's signing key and verifier key, which never go to the database.
    /// Prefer the environment variable when the URL holds a password (arguments show in ps).
    /// No lock file guards a database as one guards a data directory: stop tailor serve before
    /// running an operator command on its database.
    #[arg(
        long,
        env = DATABASE_URL_ENV,
        hide_env_values = true,
        value_name = "URL",
        value_parser = given_url
    )]
    database_url: Option<GivenUrl>,
}

/// The string as given, before it is parsed; its `Debug` does not show it.
#[derive(Clone)]
struct GivenUrl(String);

impl fmt::Debug for GivenUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GivenUrl(<hidden>)")
    }
}

fn given_url(text: &str) -> Result<GivenUrl, std::convert::Infallible> {
    Ok(GivenUrl(text.to_owned()))
}

impl DatabaseArgs {
    /// The parsed URL, or `None` for the SQLite default. An empty variable counts as unset.
    pub(crate) fn url(&self) -> Result<Option<DatabaseUrl>> {
        match &self.database_url {
            Some(GivenUrl(text)) if !text.is_empty() => text
                .parse()
                .map(Some)
                .with_context(|| format!("--database-url (or {DATABASE_URL_ENV})")),
            _ => Ok(None),
        }
    }

    /// Opens the store these options name, with `data_dir` for the keys (and for the SQLite
    /// database when no URL is given).
    pub(crate) async fn open(&self, data_dir: &Path) -> Result<Arc<dyn Store>> {
        let url = self.url()?;
        let opened = open_store(data_dir, url.as_ref()).await;
        // A PostgreSQL error names its database already; an SQLite one needs its directory.
        match url {
            Some(_) => Ok(opened?),
            None => {
                opened.with_context(|| format!("opening the data directory {}", data_dir.display()))
            }
        }
    }
}
