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
const MIGRATIONS: &[Migration] = &[
    Migration {
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
    },
    Migration {
        version: 2,
        sql: "
-- The advertiser side. Numbers (advertiser, audience, session, job, history event) come from
-- counters, never from a table's largest key, so that a deleted row's number is never given
-- again: the membership history names audiences and jobs by number.

CREATE TABLE advertisers (
    advertiser_no INTEGER PRIMARY KEY,
    advertiser_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    entity TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Only the SHA-256 of a key is stored.
CREATE TABLE api_keys (
    key_id TEXT PRIMARY KEY,
    advertiser_no BIGINT NOT NULL REFERENCES advertisers (advertiser_no),
    key_sha256 BLOB NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX api_keys_by_advertiser ON api_keys (advertiser_no);

-- A deleted audience's row goes; its jobs and membership history stay. `membership_rows`
-- counts its rows in `memberships` (kept by every write), so that its size is a lookup and
-- a count of the few rows past their expiry.
CREATE TABLE audiences (
    audience_no INTEGER PRIMARY KEY,
    audience_id TEXT NOT NULL UNIQUE,
    advertiser_no BIGINT NOT NULL REFERENCES advertisers (advertiser_no),
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    membership_ttl_days BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    membership_rows BIGINT NOT NULL
);
CREATE INDEX audiences_by_advertiser ON audiences (advertiser_no);

CREATE TABLE upload_sessions (
    session_no INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL UNIQUE,
    advertiser_no BIGINT NOT NULL,
    audience_no BIGINT NOT NULL,
    op TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    job_no BIGINT
);
CREATE INDEX upload_sessions_by_audience ON upload_sessions (audience_no);
CREATE INDEX upload_sessions_by_expiry ON upload_sessions (expires_at);

-- A staged part holds only what matched: `matched` is packed (account number, keyed digest)
-- pairs, 4 + 32 bytes each, sorted. `rejected` is `code=n` items joined by `;`, with `%`,
-- `;` and `=` percent-escaped in codes.
CREATE TABLE session_parts (
    session_no BIGINT NOT NULL,
    part_no BIGINT NOT NULL,
    rows_received BIGINT NOT NULL,
    rows_accepted BIGINT NOT NULL,
    rejected TEXT NOT NULL,
    matched BLOB NOT NULL,
    staged_at BIGINT NOT NULL,
    PRIMARY KEY (session_no, part_no)
);

CREATE TABLE jobs (
    job_no INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL UNIQUE,
    advertiser_no BIGINT NOT NULL,
    audience_no BIGINT NOT NULL,
    session_no BIGINT NOT NULL,
    op TEXT NOT NULL,
    state TEXT NOT NULL,
    rows_received BIGINT NOT NULL,
    rows_accepted BIGINT NOT NULL,
    rejected TEXT NOT NULL,
    error TEXT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT
);
CREATE INDEX jobs_by_audience ON jobs (audience_no, state);
CREATE INDEX jobs_by_state ON jobs (state, job_no);

-- Memberships not yet ended. A row past `expires_at` is not a member; it stays until
-- expire_memberships ends it (with a history row).
CREATE TABLE memberships (
    audience_no BIGINT NOT NULL,
    account_no BIGINT NOT NULL,
    contact_digest BLOB NOT NULL,
    context TEXT NOT NULL,
    consent_seq BIGINT,
    policy_version BLOB NOT NULL,
    job_no BIGINT NOT NULL,
    granted_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (audience_no, account_no)
) WITHOUT ROWID;
CREATE INDEX memberships_by_account ON memberships (account_no);
CREATE INDEX memberships_by_expiry ON memberships (audience_no, expires_at);

-- Every grant and every end of a membership, with the basis granted or ended. `job_no` is
-- the job that granted or ended it (none for ends caused by consent, expiry or deletion).
-- Only an erasure deletes rows here (the erased account's), hence the index by account; the
-- history is otherwise read whole (incident analysis), so no other index slows the half a
-- million rows a large job appends.
CREATE TABLE membership_events (
    event_no INTEGER PRIMARY KEY,
    audience_no BIGINT NOT NULL,
    account_no BIGINT NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT,
    job_no BIGINT,
    contact_digest BLOB NOT NULL,
    context TEXT NOT NULL,
    consent_seq BIGINT,
    policy_version BLOB NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX membership_events_by_account ON membership_events (account_no);

ALTER TABLE erasures ADD COLUMN memberships BIGINT NOT NULL DEFAULT 0;

INSERT INTO counters (name, value) VALUES
    ('advertisers', 0), ('audiences', 0), ('memberships', 0),
    ('last_advertiser_no', 0), ('last_audience_no', 0), ('last_session_no', 0),
    ('last_job_no', 0), ('last_event_no', 0);
",
    },
    Migration {
        version: 3,
        sql: "
-- Privacy-safe sizes. An audience's canonical query (its jobs' key sets and operations,
-- keyed) and data epoch (moved by every change to its memberships) decide which answer a
-- size question gets; a job and a staged part keep the key set of their rows.
ALTER TABLE audiences ADD COLUMN query BLOB NOT NULL DEFAULT x'0000000000000000000000000000000000000000000000000000000000000000';
ALTER TABLE audiences ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN keys BLOB NOT NULL DEFAULT x'0000000000000000000000000000000000000000000000000000000000000000';
ALTER TABLE session_parts ADD COLUMN keys BLOB NOT NULL DEFAULT x'0000000000000000000000000000000000000000000000000000000000000000';

-- The ledger of released sizes: never deleted (not even with the audience), because the
-- budgets of legal entities are counted from it. One answer per (audience, query, epoch).
CREATE TABLE releases (
    release_no INTEGER PRIMARY KEY,
    entity TEXT NOT NULL,
    advertiser_no BIGINT NOT NULL,
    audience_no BIGINT NOT NULL,
    query BLOB NOT NULL,
    epoch BIGINT NOT NULL,
    size TEXT NOT NULL,
    epsilon_micros BIGINT NOT NULL,
    at BIGINT NOT NULL,
    UNIQUE (audience_no, query, epoch)
);
CREATE INDEX releases_by_entity ON releases (entity, at);
",
    },
    Migration {
        version: 4,
        sql: "
-- The accountability log. `data` is an entry's bytes (an RFC 6962 leaf), `root` the tree's
-- root after it; the tree's frontier is in `meta` (`log_frontier`). Checkpoints are signed
-- notes, one per tree size. Account keys, under which accounts appear in entries, live
-- outside the log; erasure deletes them.
CREATE TABLE log_entries (
    seq INTEGER PRIMARY KEY,
    data BLOB NOT NULL,
    root BLOB NOT NULL
);
CREATE TABLE log_checkpoints (
    size INTEGER PRIMARY KEY,
    note TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE TABLE account_keys (
    account_no INTEGER PRIMARY KEY,
    key BLOB NOT NULL
);

-- Corrections of the context a contact point was collected in (the account system learned
-- that a `profile` phone was given for 2FA): kept, with both digests of the contact point, so
-- that past grants can be replayed under the corrected context. Erasure deletes the account's.
CREATE TABLE contact_corrections (
    correction_no INTEGER PRIMARY KEY,
    account_no BIGINT NOT NULL,
    kind TEXT NOT NULL,
    digest BLOB NOT NULL,
    other_digest BLOB,
    from_context TEXT NOT NULL,
    to_context TEXT NOT NULL,
    effective_since BIGINT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX contact_corrections_by_account ON contact_corrections (account_no);
",
    },
];

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
    Checkpointer,
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
            // No automatic checkpoints: they would run inside the commit that crosses the
            // threshold. The store's checkpoint thread does them (see `checkpoint`).
            conn.pragma_update(None, "wal_autocheckpoint", 0).db()?;
            // When the WAL starts over, its file is cut back to 64 MiB, so that one large
            // job or import does not leave it at its largest size.
            conn.pragma_update(None, "journal_size_limit", 67_108_864)
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
        // Checkpoints read the WAL and write the database file; they need no cache.
        Role::Checkpointer => {
            conn.pragma_update(None, "cache_size", -1_024).db()?;
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

    /// A database made by the first version (accounts, an erasure) is brought to the newest
    /// schema with its rows and counters intact.
    #[test]
    fn a_version_1_database_is_upgraded() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL);
             INSERT INTO schema_migrations VALUES (1, 0);",
        )
        .unwrap();
        conn.execute_batch(MIGRATIONS[0].sql).unwrap();
        conn.execute_batch(
            "INSERT INTO accounts VALUES (7, 'old', 'US', 1, 1);
             INSERT INTO erasures (erased_at, contact_points, consent_events) VALUES (5, 2, 3);
             UPDATE counters SET value = 7 WHERE name = 'last_account_no';
             UPDATE counters SET value = 1 WHERE name IN ('accounts', 'erasures');",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let versions: Vec<i64> = conn
            .prepare("SELECT version FROM schema_migrations ORDER BY version")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(versions, (1..=known_version()).collect::<Vec<_>>());
        let erasure: (i64, i64, i64) = conn
            .query_row(
                "SELECT contact_points, consent_events, memberships FROM erasures",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .unwrap();
        assert_eq!(erasure, (2, 3, 0));
        let counters: Vec<(String, i64)> = conn
            .prepare("SELECT name, value FROM counters ORDER BY name")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let expected: Vec<(String, i64)> = [
            ("accounts", 1),
            ("advertisers", 0),
            ("audiences", 0),
            ("consent_events", 0),
            ("erasures", 1),
            ("last_account_no", 7),
            ("last_advertiser_no", 0),
            ("last_audience_no", 0),
            ("last_event_no", 0),
            ("last_job_no", 0),
            ("last_session_no", 0),
            ("live_contact_points", 0),
            ("memberships", 0),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v))
        .collect();
        assert_eq!(counters, expected);
        let account: String = conn
            .query_row(
                "SELECT account_id FROM accounts WHERE account_no = 7",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(account, "old");
        // Running it again changes nothing.
        migrate(&mut conn).unwrap();
    }

    #[test]
    fn migrations_are_in_order() {
        let versions: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
        let expected: Vec<i64> = (1..=versions.len() as i64).collect();
        assert_eq!(versions, expected);
    }
}
