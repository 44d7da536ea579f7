//! The PostgreSQL schema and its versioned migrations.
//!
//! Migrations are embedded SQL, applied in order inside one transaction (holding an advisory
//! lock, so that two processes starting at once do not both migrate) and recorded in
//! `schema_migrations`. A database whose recorded version is newer than the newest migration
//! here is refused: this build does not know what a newer one changed and must not write to
//! it.
//!
//! The tables mirror the SQLite backend's (the same columns, the same encodings: times as
//! unix microseconds in `BIGINT`, which round-trip exactly to the microsecond; digests as
//! `bytea`), so that both backends hold the same facts the same way. No contact value and no
//! unkeyed hash has a column here.
//!
//! The schema is ready to be distributed (Citus): every large table carries the account
//! number and includes it in its primary key, so that all of one person's rows (account,
//! contact points, consent history, memberships, membership history, log key, corrections)
//! are co-located on one shard. An erasure, an account write and `memberships_of` then touch
//! one shard; a job's grants are split by account over every shard and applied in parallel.
//! The comment above each table says how it would be distributed. Small tables (advertisers,
//! audiences, jobs, sessions, releases) would be reference tables; the counters, meta and the
//! accountability log (one ordered chain) stay on the coordinator.

use deadpool_postgres::Object;

use crate::transaction::{Db, execute, query_one};
use tailor_store::StoreError;

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
-- Distributed by account_no. (On Citus, the uniqueness of account_id, which does not include
-- the distribution column, moves to a lookup table distributed by account_id.) Numbers come
-- from the `last_account_no` counter, never from the largest key, so that an erased
-- account's number is never reused.
CREATE TABLE accounts (
    account_no BIGINT PRIMARY KEY,
    account_id TEXT NOT NULL UNIQUE,
    region TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Distributed by account_no, co-located with accounts. Removed contact points stay as history
-- (removed_at set). Only keyed digests: the primary one identifies the contact point.
CREATE TABLE contact_points (
    account_no BIGINT NOT NULL REFERENCES accounts (account_no),
    contact_no BIGINT NOT NULL,
    kind TEXT NOT NULL,
    context TEXT NOT NULL,
    verified BOOLEAN NOT NULL,
    notice_version TEXT,
    primary_digest BYTEA NOT NULL,
    other_digest BYTEA,
    added_at BIGINT NOT NULL,
    removed_at BIGINT,
    PRIMARY KEY (account_no, contact_no)
);

-- Distributed by account_no, co-located with accounts. Append-only consent history.
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
);

-- Small (one row per erasure, counts only): on the coordinator.
CREATE TABLE erasures (
    erasure_no BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    erased_at BIGINT NOT NULL,
    contact_points BIGINT NOT NULL,
    consent_events BIGINT NOT NULL,
    memberships BIGINT NOT NULL
);

-- Small values under a name (secrets' hashes, settings, the log's frontier): on the
-- coordinator.
CREATE TABLE meta (
    name TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

-- Row counts kept by every write transaction (so that counting is a lookup) and the last
-- number given in each sequence: on the coordinator, written under the writer lock.
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES
    ('accounts', 0), ('live_contact_points', 0), ('consent_events', 0), ('erasures', 0),
    ('advertisers', 0), ('audiences', 0), ('memberships', 0),
    ('last_account_no', 0), ('last_advertiser_no', 0), ('last_audience_no', 0),
    ('last_session_no', 0), ('last_job_no', 0), ('last_event_no', 0);

-- The advertiser side: small tables, reference tables on Citus. Only the SHA-256 of an API
-- key is stored.
CREATE TABLE advertisers (
    advertiser_no BIGINT PRIMARY KEY,
    advertiser_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    entity TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    key_id TEXT PRIMARY KEY,
    advertiser_no BIGINT NOT NULL REFERENCES advertisers (advertiser_no),
    key_sha256 BYTEA NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX api_keys_by_advertiser ON api_keys (advertiser_no);

-- A deleted audience's row goes; its jobs and membership history stay. `membership_rows`
-- counts its rows in memberships (kept by every write), so that its size is a lookup and a
-- count of the few rows past their expiry. `query` and `epoch` decide which released size
-- answers a size question.
CREATE TABLE audiences (
    audience_no BIGINT PRIMARY KEY,
    audience_id TEXT NOT NULL UNIQUE,
    advertiser_no BIGINT NOT NULL REFERENCES advertisers (advertiser_no),
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    membership_ttl_days BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    membership_rows BIGINT NOT NULL,
    query BYTEA NOT NULL,
    epoch BIGINT NOT NULL
);
CREATE INDEX audiences_by_advertiser ON audiences (advertiser_no);

CREATE TABLE upload_sessions (
    session_no BIGINT PRIMARY KEY,
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

-- Staged parts live only until their job is applied or their session expires: on the
-- coordinator. `matched` is packed (account number, keyed digest) pairs
-- (`tailor_store::packing`), `rejected` the encoded rejection counters.
CREATE TABLE session_parts (
    session_no BIGINT NOT NULL,
    part_no BIGINT NOT NULL,
    rows_received BIGINT NOT NULL,
    rows_accepted BIGINT NOT NULL,
    rejected TEXT NOT NULL,
    matched BYTEA NOT NULL,
    staged_at BIGINT NOT NULL,
    keys BYTEA NOT NULL,
    PRIMARY KEY (session_no, part_no)
);

CREATE TABLE jobs (
    job_no BIGINT PRIMARY KEY,
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
    finished_at BIGINT,
    keys BYTEA NOT NULL
);
CREATE INDEX jobs_by_audience ON jobs (audience_no, state);
CREATE INDEX jobs_by_state ON jobs (state, job_no);

-- Memberships not yet ended. Distributed by account_no, co-located with the account's other
-- rows: an erasure and a person's memberships stay on one shard, and a job's grants (sorted
-- by account) spread over every shard. The primary key is (audience_no, account_no): it
-- includes the distribution column, and its order serves the hot per-audience work (applying
-- a job, replacing an audience, its size, its members) as range scans; the index by account
-- serves the per-person reads. A row past `expires_at` is not a member; it stays until
-- expire_memberships ends it (with a history row).
CREATE TABLE memberships (
    audience_no BIGINT NOT NULL,
    account_no BIGINT NOT NULL,
    contact_digest BYTEA NOT NULL,
    context TEXT NOT NULL,
    consent_seq BIGINT,
    policy_version BYTEA NOT NULL,
    job_no BIGINT NOT NULL,
    granted_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (audience_no, account_no)
);
CREATE INDEX memberships_by_account ON memberships (account_no);
CREATE INDEX memberships_by_expiry ON memberships (audience_no, expires_at);

-- Every grant and every end of a membership, with its basis. Distributed by account_no,
-- co-located with memberships (an erasure deletes the account's rows on its shard); the
-- primary key (account_no, event_no) includes it. Event numbers come from a counter and are
-- unique on their own; history is read in event order through the second index.
CREATE TABLE membership_events (
    event_no BIGINT NOT NULL,
    audience_no BIGINT NOT NULL,
    account_no BIGINT NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT,
    job_no BIGINT,
    contact_digest BYTEA NOT NULL,
    context TEXT NOT NULL,
    consent_seq BIGINT,
    policy_version BYTEA NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (account_no, event_no)
);
CREATE INDEX membership_events_by_no ON membership_events (event_no);

-- The ledger of released sizes: never deleted (privacy budgets are counted from it). Small;
-- a reference table on Citus. One answer per (audience, query, epoch).
CREATE TABLE releases (
    release_no BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entity TEXT NOT NULL,
    advertiser_no BIGINT NOT NULL,
    audience_no BIGINT NOT NULL,
    query BYTEA NOT NULL,
    epoch BIGINT NOT NULL,
    size TEXT NOT NULL,
    epsilon_micros BIGINT NOT NULL,
    at BIGINT NOT NULL,
    UNIQUE (audience_no, query, epoch)
);
CREATE INDEX releases_by_entity ON releases (entity, at);

-- The accountability log: one ordered chain, appended under the writer lock, on the
-- coordinator (never distributed: each entry's root depends on all before it). `data` is an
-- entry's bytes, `root` the tree's root after it; the frontier is in meta (`log_frontier`).
CREATE TABLE log_entries (
    seq BIGINT PRIMARY KEY,
    data BYTEA NOT NULL,
    root BYTEA NOT NULL
);
CREATE TABLE log_checkpoints (
    size BIGINT PRIMARY KEY,
    note TEXT NOT NULL,
    at BIGINT NOT NULL
);

-- The per-account keys log commitments are made under. Distributed by account_no,
-- co-located with accounts; erasure deletes the account's.
CREATE TABLE account_keys (
    account_no BIGINT PRIMARY KEY,
    key BYTEA NOT NULL
);

-- Corrections of the context a contact point was collected in, with both digests. Distributed
-- by account_no (in the primary key), co-located with accounts; erasure deletes the
-- account's. Read whole in correction order.
CREATE TABLE contact_corrections (
    correction_no BIGINT GENERATED ALWAYS AS IDENTITY,
    account_no BIGINT NOT NULL,
    kind TEXT NOT NULL,
    digest BYTEA NOT NULL,
    other_digest BYTEA,
    from_context TEXT NOT NULL,
    to_context TEXT NOT NULL,
    effective_since BIGINT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (account_no, correction_no)
);
CREATE INDEX contact_corrections_by_no ON contact_corrections (correction_no);
",
    },
    Migration {
        version: 2,
        sql: "
-- The change feed: what each write changed, for the other `tailor serve` processes sharing
-- this database (crate::replication). Numbers only: an account or audience number, never an
-- identifier. On the coordinator, like the log: it is one ordered sequence.
CREATE TABLE changes (
    seq BIGINT PRIMARY KEY,
    origin BIGINT NOT NULL,
    kind SMALLINT NOT NULL,
    subject BIGINT NOT NULL,
    at BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('last_change_seq', 0), ('last_origin', 0);
-- Which process holds a job, and until when (a lapsed claim is taken over).
ALTER TABLE jobs ADD COLUMN claimed_by BIGINT, ADD COLUMN lease_until BIGINT;
",
    },
];

/// The advisory lock held while migrating ("tailor-m" in ASCII): another process starting at
/// the same time waits for the first to finish, then finds nothing to do.
const MIGRATION_LOCK: i64 = 0x7461_696c_6f72_2d6d;

/// The newest schema version this build knows.
pub(crate) fn known_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Brings the schema up to the newest known version, or refuses a newer one.
pub(crate) async fn migrate(client: &mut Object) -> Result<(), StoreError> {
    let tx = client.transaction().await.db()?;
    execute(&tx, "SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version BIGINT PRIMARY KEY,
            applied_at BIGINT NOT NULL
        )",
    )
    .await
    .db()?;
    let row = query_one(
        &tx,
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        &[],
    )
    .await?;
    let current: i64 = crate::rows::get(&row, 0, "schema_migrations.version")?;
    let known = known_version();
    if current > known {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known,
        });
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
        tx.batch_execute(migration.sql).await.db()?;
        execute(
            &tx,
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
            &[&migration.version, &jiff::Timestamp::now().as_microsecond()],
        )
        .await?;
    }
    tx.commit().await.db()
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
