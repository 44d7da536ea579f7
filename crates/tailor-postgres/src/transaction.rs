//! Transactions on pooled connections: the one write path (the writer lock, the counters and
//! the log journal applied before commit, serialization failures retried), the read path (one
//! snapshot per call), the statements they run, and how PostgreSQL's errors become
//! [`StoreError`]s.
//!
//! PostgreSQL lets many transactions write at once; the store's semantics do not. The
//! accountability log is one chain (each entry's root depends on every entry before it),
//! account, audience, job and history numbers come from counters and must never repeat or
//! skip, and row counts must stay exact. So every write transaction first takes one
//! transaction-scoped advisory lock ([`WRITER_LOCK`]): writes are applied one after another,
//! exactly as the SQLite backend's single writer applies them, while reads run beside them on
//! snapshots of their own. Under that lock `READ COMMITTED` sees every earlier write, so it is
//! the isolation writes need.
//!
//! An error message never carries a value: PostgreSQL's `DETAIL` (which quotes key values) is
//! left out, only the SQLSTATE and the message are kept.

use std::future::Future;
use std::pin::Pin;

use deadpool_postgres::{Object, Pool};
use tokio_postgres::IsolationLevel;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::counters::Tally;
use tailor_store::StoreError;

/// A transaction on a pooled connection.
pub(crate) type Tx<'a> = deadpool_postgres::Transaction<'a>;

/// The work of one transaction, as a future borrowing the transaction.
pub(crate) type Work<'t, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 't>>;

/// Statement parameters.
pub(crate) type Params<'a> = [&'a (dyn ToSql + Sync)];

/// The advisory lock every write transaction holds (an arbitrary constant: "tailor" in ASCII).
const WRITER_LOCK: i64 = 0x7461_696c_6f72;

/// How many times a transaction that failed to serialize is run again before its failure is
/// returned.
const RETRIES: u32 = 5;

/// Runs `work` in one write transaction holding the writer lock, then applies its counters
/// and appends its log entries, and commits. A serialization failure or a deadlock (SQLSTATE
/// 40001, 40P01) runs the whole transaction again, `work` included, at most [`RETRIES`]
/// times: `work` must therefore only depend on its arguments and what it reads.
/// `origin` marks the changes it records in the change feed.
pub(crate) async fn write<T, F>(pool: &Pool, origin: u64, mut work: F) -> Result<T, StoreError>
where
    T: Send,
    F: for<'t> FnMut(&'t Tx<'t>, &'t mut Tally) -> Work<'t, T> + Send,
{
    let mut attempt = 0;
    loop {
        let mut client = connection(pool).await?;
        let result = write_once(&mut client, origin, &mut work).await;
        match result {
            Err(e) if is_retriable(&e) && attempt < RETRIES => attempt += 1,
            other => return other,
        }
    }
}

async fn write_once<T, F>(client: &mut Object, origin: u64, work: &mut F) -> Result<T, StoreError>
where
    T: Send,
    F: for<'t> FnMut(&'t Tx<'t>, &'t mut Tally) -> Work<'t, T> + Send,
{
    let tx = read_committed(client).await?;
    execute(&tx, "SELECT pg_advisory_xact_lock($1)", &[&WRITER_LOCK]).await?;
    let mut tally = Tally::default();
    let out = work(&tx, &mut tally).await?;
    crate::replication::record(&tx, &mut tally, origin).await?;
    tally.apply(&tx).await?;
    tally.journal.append(&tx).await?;
    tx.commit().await.db()?;
    Ok(out)
}

/// Runs `work` in one `READ COMMITTED` transaction without the writer lock: for writes that
/// touch no counter and no log (job claims, pruning the change feed).
pub(crate) async fn unlocked<T, F>(pool: &Pool, work: F) -> Result<T, StoreError>
where
    T: Send,
    F: for<'t> FnOnce(&'t Tx<'t>) -> Work<'t, T> + Send,
{
    let mut client = connection(pool).await?;
    let tx = read_committed(&mut client).await?;
    let out = work(&tx).await?;
    tx.commit().await.db()?;
    Ok(out)
}

/// Runs `work` in one read-only transaction: every statement sees one snapshot.
pub(crate) async fn read<T, F>(pool: &Pool, work: F) -> Result<T, StoreError>
where
    T: Send,
    F: for<'t> FnOnce(&'t Tx<'t>) -> Work<'t, T> + Send,
{
    let mut client = connection(pool).await?;
    let tx = snapshot(&mut client).await?;
    let out = work(&tx).await?;
    tx.commit().await.db()?;
    Ok(out)
}

/// Starts a `READ COMMITTED` transaction (each statement sees what was committed before it).
async fn read_committed(client: &mut Object) -> Result<Tx<'_>, StoreError> {
    client
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .start()
        .await
        .db()
}

/// Starts a read-only `REPEATABLE READ` transaction (one snapshot for all its statements).
pub(crate) async fn snapshot(client: &mut Object) -> Result<Tx<'_>, StoreError> {
    client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .db()
}

/// A connection from the pool.
pub(crate) async fn connection(pool: &Pool) -> Result<Object, StoreError> {
    pool.get()
        .await
        .map_err(|e| StoreError::Database(format!("cannot get a database connection: {e}")))
}

/// Runs a statement (prepared once per connection) and returns its rows.
pub(crate) async fn query(
    tx: &Tx<'_>,
    sql: &str,
    params: &Params<'_>,
) -> Result<Vec<Row>, StoreError> {
    let statement = tx.prepare_cached(sql).await.db()?;
    tx.query(&statement, params).await.db()
}

/// Runs a statement that returns at most one row.
pub(crate) async fn query_opt(
    tx: &Tx<'_>,
    sql: &str,
    params: &Params<'_>,
) -> Result<Option<Row>, StoreError> {
    let statement = tx.prepare_cached(sql).await.db()?;
    tx.query_opt(&statement, params).await.db()
}

/// Runs a statement that returns exactly one row.
pub(crate) async fn query_one(
    tx: &Tx<'_>,
    sql: &str,
    params: &Params<'_>,
) -> Result<Row, StoreError> {
    let statement = tx.prepare_cached(sql).await.db()?;
    tx.query_one(&statement, params).await.db()
}

/// Runs a statement and returns how many rows it changed.
pub(crate) async fn execute(
    tx: &Tx<'_>,
    sql: &str,
    params: &Params<'_>,
) -> Result<u64, StoreError> {
    let statement = tx.prepare_cached(sql).await.db()?;
    tx.execute(&statement, params).await.db()
}

/// Like [`execute`], but a unique or primary key violation is a [`StoreError::Conflict`]
/// saying `message`.
pub(crate) async fn execute_unique(
    tx: &Tx<'_>,
    sql: &str,
    params: &Params<'_>,
    message: &'static str,
) -> Result<u64, StoreError> {
    let statement = tx.prepare_cached(sql).await.db()?;
    match tx.execute(&statement, params).await {
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
            Err(StoreError::Conflict(message))
        }
        other => other.db(),
    }
}

/// Whether a failure is one that running the transaction again may not meet.
fn is_retriable(error: &StoreError) -> bool {
    matches!(error, StoreError::Database(message)
        if message.ends_with(SERIALIZATION_FAILURE) || message.ends_with(DEADLOCK))
}

const SERIALIZATION_FAILURE: &str = "(SQLSTATE 40001)";
const DEADLOCK: &str = "(SQLSTATE 40P01)";

/// Converts tokio-postgres's errors.
pub(crate) trait Db<T> {
    fn db(self) -> Result<T, StoreError>;
}

impl<T> Db<T> for Result<T, tokio_postgres::Error> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(classify)
    }
}

/// A database error as the store reports it: the server's message and SQLSTATE (never its
/// `DETAIL`, which quotes values), or the client's description of what failed; a value that
/// does not decode is `Corrupt`.
pub(crate) fn classify(error: tokio_postgres::Error) -> StoreError {
    if let Some(db) = error.as_db_error() {
        return StoreError::Database(format!("{} (SQLSTATE {})", db.message(), db.code().code()));
    }
    // A conversion failure names the Rust type and column type, never the value.
    let text = error.to_string();
    if text.starts_with("error deserializing column") {
        return StoreError::Corrupt(text);
    }
    StoreError::Database(text)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// A pool on the test server's own database (these tests need no schema: a write with an
    /// empty tally touches no table), or `None` after saying so when there is no server and
    /// this is not CI (see `testing`).
    async fn test_pool() -> Option<Pool> {
        let url = std::env::var("TAILOR_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let config: tokio_postgres::Config = url.parse().unwrap();
        let manager = deadpool_postgres::Manager::new(config, tokio_postgres::NoTls);
        let pool = Pool::builder(manager).max_size(2).build().unwrap();
        match connection(&pool).await {
            Ok(_) => Some(pool),
            Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("no PostgreSQL for the tests ({e}); CI needs one")
            }
            Err(e) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "\n=== skipped: no PostgreSQL ({e}) ===\n"
                );
                None
            }
        }
    }

    /// Raises a real server-side error with the given SQLSTATE.
    async fn raise(tx: &Tx<'_>, sqlstate: &str) -> Result<(), StoreError> {
        tx.batch_execute(&format!(
            "DO $$ BEGIN RAISE EXCEPTION 'provoked' USING ERRCODE = '{sqlstate}'; END $$"
        ))
        .await
        .db()
    }

    #[tokio::test]
    async fn a_serialization_failure_or_deadlock_runs_the_transaction_again() {
        let Some(pool) = test_pool().await else {
            return;
        };
        for sqlstate in ["40001", "40P01"] {
            let attempts = AtomicU32::new(0);
            let result = write(&pool, 0, |tx, _| {
                let attempt = attempts.fetch_add(1, Ordering::SeqCst);
                Box::pin(async move {
                    if attempt < 2 {
                        raise(tx, sqlstate).await?;
                    }
                    Ok(attempt)
                })
            })
            .await;
            assert_eq!(result.unwrap(), 2, "{sqlstate}: the third attempt commits");
        }
    }

    #[tokio::test]
    async fn retries_are_bounded_and_other_failures_are_not_retried() {
        let Some(pool) = test_pool().await else {
            return;
        };
        for (sqlstate, attempts_made) in [("40001", RETRIES + 1), ("23505", 1)] {
            let attempts = AtomicU32::new(0);
            let result: Result<(), StoreError> = write(&pool, 0, |tx, _| {
                attempts.fetch_add(1, Ordering::SeqCst);
                Box::pin(async move { raise(tx, sqlstate).await })
            })
            .await;
            match result {
                Err(StoreError::Database(message)) => {
                    assert!(
                        message.ends_with(&format!("(SQLSTATE {sqlstate})")),
                        "{message}"
                    );
                }
                other => panic!("{sqlstate}: expected a database error, got {other:?}"),
            }
            assert_eq!(attempts.load(Ordering::SeqCst), attempts_made, "{sqlstate}");
        }
    }

    #[test]
    fn only_serialization_failures_and_deadlocks_are_retried() {
        for (message, retried) in [
            ("could not serialize access (SQLSTATE 40001)", true),
            ("deadlock detected (SQLSTATE 40P01)", true),
            ("duplicate key value (SQLSTATE 23505)", false),
            ("connection closed", false),
        ] {
            assert_eq!(
                is_retriable(&StoreError::Database(message.into())),
                retried,
                "{message}"
            );
        }
        assert!(!is_retriable(&StoreError::Conflict("(SQLSTATE 40001)")));
    }
}
