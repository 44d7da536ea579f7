//! The SQLite data directory, connections and schema migrations.
//!
//! Migrations are embedded SQL, applied in order inside one transaction and recorded in
//! `schema_migrations`. A database whose recorded version is newer than the newest migration
//! here is refused: this build does not know what a newer one changed and must not write to
//! it.
//!
//! The tables use only what a PostgreSQL port can mirror: integer times (unix microseconds),
//! BLOB digests (`bytea` there), booleans, composite primary keys. Two clauses are SQLite's
//! own: `INTEGER PRIMARY KEY` (a `BIGINT` key there) and `WITHOUT ROWID` (rows clustered by
//! their primary key, which PostgreSQL's primary-key index provides for the ordered scans).
//! Account numbers are allocated by the writer from the `last_account_no` counter, never
//! from the table's largest key, so that an erased account's number is never reused. No
//! contact value and no unkeyed hash has a column here: contact points are only their keyed
//! digests.

use std::fs;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::{SqlResult, now_micros};
use crate::StoreError;

/// One schema version.
struct Migration {
    version: i64,
    sql: &'static str,
}

/// Every migration, in order. Append only: a released migration is never edited.
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    sql: "
CREATE TABLE accounts (
    account_no INTEGER PRIMARY KEY,
    account_id TEXT NOT NULL UNIQUE,
    region TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE contact_points (
    account_no BIGINT NOT NULL REFERENCES accounts (account_no),
    contact_no BIGINT NOT NULL,
    kind TEXT NOT NULL,
    context TEXT NOT NULL,
    verified BOOLEAN NOT NULL,
    notice_version TEXT,
    primary_digest BLOB NOT NULL,
    other_digest BLOB,
    added_at BIGINT NOT NULL,
    removed_at BIGINT,
    PRIMARY KEY (account_no, contact_no)
) WITHOUT ROWID;

CREATE TABLE consent_events (
    account_no BIGINT NOT NULL REFERENCES accounts (account_no),
    seq BIGINT NOT NULL,
    purpose TEXT NOT NULL,
    state TEXT NOT NULL,
    source TEXT NOT NULL,
    at BIGINT NOT NULL,
    notice_version TEXT,
    recorded_at BIGINT NOT NULL,
    PRIMARY KEY (account_no, seq)
) WITHOUT ROWID;

CREATE TABLE erasures (
    erasure_no INTEGER PRIMARY KEY,
    erased_at BIGINT NOT NULL,
    contact_points BIGINT NOT NULL,
    consent_events BIGINT NOT NULL
);

CREATE TABLE meta (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

-- Counters kept by every write transaction: row counts, so that counting is a lookup and
-- not a scan of a hundred million contact points, and the last account number ever given.
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES
    ('accounts', 0), ('live_contact_points', 0), ('consent_events', 0), ('erasures', 0),
    ('last_account_no', 0);
",
}];

/// The newest schema version this build knows.
pub(super) fn known_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Creates the data directory if it is missing (0700 on unix, parents included) and checks
/// that it is a directory. An existing directory's permissions are left as they are.
pub(super) fn create_data_dir(dir: &Path) -> Result<(), StoreError> {
    let data_dir_error = |message: String| StoreError::DataDir {
        path: dir.display().to_string(),
        message,
    };
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => return Err(data_dir_error("exists and is not a directory".into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(data_dir_error(e.to_string())),
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        builder.mode(0o700);
        builder
            .create(dir)
            .map_err(|e| data_dir_error(e.to_string()))?;
        // The mode above is filtered by the umask; a umask can only remove bits, but set it
        // exactly anyway so that the directory is 0700 whatever the environment.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| data_dir_error(e.to_string()))?;
    }
    #[cfg(not(unix))]
    builder
        .create(dir)
        .map_err(|e| data_dir_error(e.to_string()))?;
    Ok(())
}

/// Creates an empty database file readable by its owner only (SQLite gives its WAL and
/// shared-memory files the same permissions), unless it exists.
pub(super) fn create_db_file(path: &Path) -> Result<(), StoreError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::DataDir {
            path: path.display().to_string(),
            message: e.to_string(),
        }),
    }
}

/// What a connection is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    Writer,
    Reader,
}

/// How long a statement waits for another connection's lock before failing (another process
/// on the same file, or a checkpoint).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens a connection with the PRAGMAs every connection needs.
pub(super) fn connect(path: &Path, role: Role) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| StoreError::DataDir {
        path: path.display().to_string(),
        message: format!("cannot open the database: {e}"),
    })?;
    conn.busy_timeout(BUSY_TIMEOUT).db()?;
    // A commit that returned is on disk: the WAL is synced at every commit.
    conn.pragma_update(None, "synchronous", "FULL").db()?;
    conn.pragma_update(None, "foreign_keys", "ON").db()?;
    conn.set_prepared_statement_cache_capacity(64);
    match role {
        Role::Writer => {
            // 64 MiB of page cache: bulk imports touch the account-id index all over.
            conn.pragma_update(None, "cache_size", -65_536).db()?;
            // Statement journals in memory: every insert of a bulk import opens one.
            conn.pragma_update(None, "temp_store", "MEMORY").db()?;
            // Checkpoint every 10,000 pages (40 MiB) rather than 1,000: a bulk import rewrites
            // the same index pages call after call, and each checkpoint writes them once.
            conn.pragma_update(None, "wal_autocheckpoint", 10_000)
                .db()?;
            // An erased account's bytes are overwritten, not left in free space in the file.
            conn.pragma_update(None, "secure_delete", "ON").db()?;
            let mode: String = conn
                .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
                .db()?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::DataDir {
                    path: path.display().to_string(),
                    message: format!(
                        "the file system does not support SQLite's WAL mode (got {mode})"
                    ),
                });
            }
        }
        Role::Reader => {
            conn.pragma_update(None, "cache_size", -16_384).db()?;
            conn.pragma_update(None, "query_only", "ON").db()?;
        }
    }
    Ok(conn)
}

/// Brings the schema up to the newest known version, or refuses a newer one.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .db()?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version BIGINT PRIMARY KEY,
            applied_at BIGINT NOT NULL
        )",
    )
    .db()?;
    let current: i64 = tx
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |row| row.get(0),
        )
        .db()?;
    let known = known_version();
    if current > known {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known,
        });
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
        tx.execute_batch(migration.sql).db()?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            (migration.version, now_micros()),
        )
        .db()?;
    }
    tx.commit().db()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_in_order() {
        let versions: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
        let expected: Vec<i64> = (1..=versions.len() as i64).collect();
        assert_eq!(versions, expected);
    }
}
