//! The one error type of this crate.
//!
//! Variants are classified by where the fault lies: the database failed (`Database`), what it
//! holds cannot be read by this version (`Corrupt`, `SchemaTooNew`), the data directory cannot
//! be used (`DataDir`), a capacity limit was reached (`TooManyAccounts`), or the request does
//! not fit what is stored (`Conflict`: a session committed twice, a job that is already
//! finished, a row that a concurrent call removed, an id that is taken). Messages never carry
//! a contact value, a digest or an account id: none of them may reach a log.

/// A storage failure. Never carries a contact value (none crosses this boundary).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database refused or failed an operation.
    #[error("database error: {0}")]
    Database(String),
    /// The data directory cannot be used.
    #[error("data directory {path}: {message}")]
    DataDir { path: String, message: String },
    /// The database holds something this version cannot read (a corrupt file or row).
    #[error("unreadable stored data: {0}")]
    Corrupt(String),
    /// The database was written by a newer version of Tailor, whose schema this version does
    /// not know; opening it could damage it.
    #[error(
        "the database schema is at version {found}, newer than the newest this build knows \
         ({known}); run a newer version of tailor"
    )]
    SchemaTooNew { found: i64, known: i64 },
    /// An account number beyond what the index can hold.
    #[error("more than 2^32 accounts")]
    TooManyAccounts,
    /// The request does not fit the stored state: it was already done (a session committed
    /// twice, a job applied or failed twice), what it refers to is gone (a session expired or
    /// an audience deleted meanwhile), or a unique id is taken. The message is fixed text.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// Another process holds the claim on this job (see [`crate::replication`]); this one
    /// must leave the job alone.
    #[error("the job is claimed by another process")]
    NotClaimed,
}
