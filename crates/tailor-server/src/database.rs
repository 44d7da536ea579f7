//! Where Tailor's store lives: the embedded SQLite database in the data directory (the
//! default), or a PostgreSQL database named by a [`DatabaseUrl`]. [`open_store`] is the one
//! place that chooses; `tailor serve` and every command that opens the store call it.
//!
//! Whatever the store, the data directory keeps the secrets it holds today (the index key,
//! the log's signing key): they are never written to the database, so that a database dump
//! alone cannot match digests or sign the log.
//!
//! A connection string may hold a password: nothing here prints it. [`DatabaseUrl`] shows
//! only its host, port and database name.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use tailor_postgres::{PostgresOptions, PostgresStore};
use tailor_store::{SqliteStore, Store, StoreError};
use zeroize::Zeroizing;

use crate::error::ServerError;

/// The environment variable `--database-url` is read from when the flag is absent.
pub const DATABASE_URL_ENV: &str = "TAILOR_DATABASE_URL";

/// A PostgreSQL connection string (`postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` or
/// `key=value` pairs), read and checked to name a host. A value of this type can be
/// connected to; whether the server answers is only known then.
#[derive(Clone)]
pub struct DatabaseUrl {
    /// The string as given (it may hold a password, hence zeroized when dropped).
    text: Zeroizing<String>,
    /// `HOST:PORT/DATABASE`, for messages.
    place: String,
}

/// Why a string is not a [`DatabaseUrl`]. The message never repeats the string.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DatabaseUrlError {
    /// The string is neither a `postgres://` URL nor `key=value` pairs.
    #[error(
        "not a PostgreSQL connection string (expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE)"
    )]
    Unreadable,
    /// The string names no host to connect to.
    #[error("the PostgreSQL connection string names no host")]
    NoHost,
}

impl FromStr for DatabaseUrl {
    type Err = DatabaseUrlError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let config: tokio_postgres::Config =
            text.parse().map_err(|_| DatabaseUrlError::Unreadable)?;
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            #[cfg(unix)]
            Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
            None => return Err(DatabaseUrlError::NoHost),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        // PostgreSQL's own default: the database named like the user.
        let dbname = config
            .get_dbname()
            .or(config.get_user())
            .unwrap_or("postgres");
        Ok(Self {
            text: Zeroizing::new(text.to_owned()),
            place: format!("{host}:{port}/{dbname}"),
        })
    }
}

impl DatabaseUrl {
    /// `HOST:PORT/DATABASE`: safe to print and log (no user, no password).
    pub fn place(&self) -> &str {
        &self.place
    }
}

impl fmt::Debug for DatabaseUrl {
    /// The place only: the string may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl").field(&self.place).finish()
    }
}

impl fmt::Display for DatabaseUrl {
    /// `postgres://HOST:PORT/DATABASE`, without the user or the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "postgres://{}", self.place)
    }
}

/// Opens the store: the PostgreSQL database at `database` when given (bringing its schema up
/// to date), otherwise the SQLite database in `data_dir`. Either way `data_dir` is created
/// when missing (owner-only), since it holds the keys. Must run inside a tokio runtime.
pub async fn open_store(
    data_dir: &Path,
    database: Option<&DatabaseUrl>,
) -> Result<Arc<dyn Store>, ServerError> {
    match database {
        None => Ok(Arc::new(SqliteStore::open(data_dir)?)),
        Some(url) => {
            create_data_dir(data_dir)?;
            let store = PostgresStore::connect(&url.text, PostgresOptions::default())
                .await
                .map_err(|source| ServerError::Database {
                    place: url.place.clone(),
                    source,
                })?;
            tracing::info!(database = %url.place, "store: PostgreSQL");
            Ok(Arc::new(store))
        }
    }
}

/// Creates the data directory readable by its owner only, as the SQLite store does for its
/// own (it holds the index key and the log's signing key).
fn create_data_dir(dir: &Path) -> Result<(), StoreError> {
    let error = |message: String| StoreError::DataDir {
        path: dir.display().to_string(),
        message,
    };
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => return Err(error("exists and is not a directory".into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(error(e.to_string())),
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| error(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_show_their_place_and_never_their_password() {
        let cases = [
            (
                "postgres://tailor:s3cret@db.internal:6543/audiences",
                "db.internal:6543/audiences",
            ),
            (
                "postgresql://tailor:s3cret@db.internal/tailor",
                "db.internal:5432/tailor",
            ),
            (
                "host=10.0.0.5 user=tailor password=s3cret dbname=t",
                "10.0.0.5:5432/t",
            ),
            (
                "postgres://tailor:s3cret@db.internal",
                "db.internal:5432/tailor",
            ),
        ];
        for (text, place) in cases {
            let url: DatabaseUrl = text.parse().expect(text);
            assert_eq!(url.place(), place, "{text}");
            assert!(!format!("{url}").contains("s3cret"));
            assert!(!format!("{url:?}").contains("s3cret"));
        }
    }

    #[test]
    fn strings_that_are_not_connection_strings_are_refused() {
        let cases = [
            ("not a url", DatabaseUrlError::Unreadable),
            ("mysql://root@localhost/db", DatabaseUrlError::Unreadable),
            ("postgres://", DatabaseUrlError::NoHost),
            ("dbname=tailor", DatabaseUrlError::NoHost),
        ];
        for (text, expected) in cases {
            assert_eq!(text.parse::<DatabaseUrl>().err(), Some(expected), "{text}");
        }
    }
}
