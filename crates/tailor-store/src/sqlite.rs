//! The embedded SQLite backend: one database file, `tailor.db`, in a data directory.
//!
//! All database work runs on blocking threads, never on the async executor. One writer
//! connection behind a mutex applies each call's writes in one `IMMEDIATE` transaction, with
//! cached prepared statements; reads take a connection of their own from a small pool and,
//! the journal being a WAL, never wait for a write. Commits are synced (`synchronous=FULL`): a
//! method that returned `Ok` survives a crash. Row counts are kept in a table by the write
//! transactions, so that [`Store::counts`] is a lookup; the writer gives account numbers from a
//! counter, so that they are never reused.
//!
//! It must never store a contact value or an unkeyed hash: contact points arrive as keyed
//! digests and only those are written.

mod rows;
mod scan;
mod schema;
mod write;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use jiff::Timestamp;
use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::mpsc;

use self::rows::load_account;
use self::schema::Role;
use self::write::Tally;
use crate::{
    AccountChange, AccountState, AccountWrite, Erasure, NewConsent, Store, StoreCounts, StoreError,
};

/// The database file inside the data directory.
const DB_FILE: &str = "tailor.db";

/// Idle read connections kept for reuse.
const IDLE_READERS: usize = 8;

/// Tailor's store in a SQLite database inside a data directory. Cloning it is cheap and
/// shares the connections.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: PathBuf,
    /// `tailor.lock`, held locked for as long as the store is open: two processes serving
    /// one data directory would each keep an index of their own.
    _lock: std::fs::File,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("db", &self.inner.db)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens the store in `dir`, creating the directory (0700 on unix) and the database if
    /// they are missing and bringing the schema up to date. A database written by a newer
    /// version is refused with [`StoreError::SchemaTooNew`].
    ///
    /// This does blocking IO; call it at start, before serving, or from a blocking task.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        schema::create_data_dir(dir)?;
        let lock = lock_data_dir(dir)?;
        let db = dir.join(DB_FILE);
        schema::create_db_file(&db)?;
        let mut writer = schema::connect(&db, Role::Writer)?;
        schema::migrate(&mut writer)?;
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                _lock: lock,
                writer: Mutex::new(writer),
                readers: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The lock file's name in the data directory.
    pub const LOCK_FILE: &'static str = "tailor.lock";

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.db
    }

    /// The newest schema version this build knows (and creates).
    pub fn schema_version() -> i64 {
        schema::known_version()
    }

    /// Runs `work` in one write transaction on a blocking thread, then applies its row-count
    /// changes and commits.
    async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>, &mut Tally) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        blocking(move || {
            // A panic while the lock was held unwound through the transaction's drop, which
            // rolled it back: the connection is clean, so a poisoned lock is still usable.
            let mut conn = inner.writer.lock().unwrap_or_else(PoisonError::into_inner);
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .db()?;
            let mut tally = Tally::default();
            let out = work(&tx, &mut tally)?;
            tally.apply(&tx)?;
            tx.commit().db()?;
            Ok(out)
        })
        .await
    }

    /// Runs `work` in one read transaction (one snapshot) on a pooled read connection.
    async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        blocking(move || {
            let mut conn = inner.take_reader()?;
            let out = (|| {
                let tx = conn.transaction().db()?;
                let out = work(&tx)?;
                tx.commit().db()?;
                Ok(out)
            })();
            inner.return_reader(conn);
            out
        })
        .await
    }
}

impl Inner {
    fn take_reader(&self) -> Result<Connection, StoreError> {
        let idle = self
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match idle {
            Some(conn) => Ok(conn),
            None => schema::connect(&self.db, Role::Reader),
        }
    }

    fn return_reader(&self, conn: Connection) {
        let mut idle = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
    }
}

/// Runs blocking database work off the async executor.
async fn blocking<T, F>(work: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err(StoreError::Database("a storage task panicked".into())),
        Err(_) => Err(StoreError::Database("a storage task was cancelled".into())),
    }
}

/// The current time in unix microseconds (for migration records only; every stored time of
/// the data model is passed in by the caller).
fn now_micros() -> i64 {
    Timestamp::now().as_microsecond()
}

/// Converts rusqlite's errors, classifying them.
trait SqlResult<T> {
    fn db(self) -> Result<T, StoreError>;
}

impl<T> SqlResult<T> for Result<T, rusqlite::Error> {
    fn db(self) -> Result<T, StoreError> {
        use rusqlite::Error as E;
        use rusqlite::ErrorCode as C;
        self.map_err(|e| match &e {
            E::SqliteFailure(f, _) if matches!(f.code, C::DatabaseCorrupt | C::NotADatabase) => {
                StoreError::Corrupt(e.to_string())
            }
            E::FromSqlConversionFailure(..)
            | E::IntegralValueOutOfRange(..)
            | E::InvalidColumnType(..)
            | E::Utf8Error(..) => StoreError::Corrupt(e.to_string()),
            _ => StoreError::Database(e.to_string()),
        })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn write_accounts(
        &self,
        writes: Vec<AccountWrite>,
        now: Timestamp,
    ) -> Result<Vec<AccountChange>, StoreError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        self.write(move |tx, tally| write::write_accounts(tx, tally, writes, now))
            .await
    }

    async fn append_consent(
        &self,
        account_id: &str,
        consent: NewConsent,
        now: Timestamp,
    ) -> Result<Option<AccountChange>, StoreError> {
        let account_id = account_id.to_owned();
        self.write(move |tx, tally| write::append_consent(tx, tally, &account_id, consent, now))
            .await
    }

    async fn erase_account(
        &self,
        account_id: &str,
        now: Timestamp,
    ) -> Result<Option<Erasure>, StoreError> {
        let account_id = account_id.to_owned();
        self.write(move |tx, tally| write::erase_account(tx, tally, &account_id, now))
            .await
    }

    async fn account(&self, account_id: &str) -> Result<Option<AccountState>, StoreError> {
        let account_id = account_id.to_owned();
        self.read(move |tx| load_account(tx, &account_id)).await
    }

    fn scan_accounts(&self, batch: usize) -> mpsc::Receiver<Result<Vec<AccountState>, StoreError>> {
        let (sender, receiver) = mpsc::channel(scan::QUEUE);
        let db = self.inner.db.clone();
        let batch = batch.max(1);
        let scan_sender = sender.clone();
        // A thread of its own rather than the runtime's blocking pool: a scan of millions of
        // accounts is long, and it must run to its end (or report why not) even when called
        // outside a runtime or while one shuts down.
        let spawned = std::thread::Builder::new()
            .name("tailor-store-scan".into())
            .spawn(move || scan::run(&db, batch, &scan_sender));
        if let Err(e) = spawned {
            // The channel is empty, so this cannot fail for lack of room.
            let _ = sender.try_send(Err(StoreError::Database(format!(
                "cannot start the account scan: {e}"
            ))));
        }
        receiver
    }

    async fn counts(&self) -> Result<StoreCounts, StoreError> {
        self.read(|tx| {
            let mut counts = StoreCounts::default();
            let mut statement = tx.prepare_cached("SELECT name, value FROM counters").db()?;
            let mut rows = statement.query([]).db()?;
            while let Some(row) = rows.next().db()? {
                let name: String = row.get(0).db()?;
                let value: i64 = row.get(1).db()?;
                let value = u64::try_from(value)
                    .map_err(|_| StoreError::Corrupt("counters.value is negative".into()))?;
                match name.as_str() {
                    "accounts" => counts.accounts = value,
                    "live_contact_points" => counts.live_contact_points = value,
                    "consent_events" => counts.consent_events = value,
                    "erasures" => counts.erasures = value,
                    // Not a row count.
                    _ => {}
                }
            }
            Ok(counts)
        })
        .await
    }

    async fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let name = name.to_owned();
        self.read(move |tx| {
            let mut statement = tx
                .prepare_cached("SELECT value FROM meta WHERE name = ?1")
                .db()?;
            let mut rows = statement.query([&name]).db()?;
            match rows.next().db()? {
                Some(row) => Ok(Some(row.get(0).db()?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn set_meta(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        let name = name.to_owned();
        let value = value.to_vec();
        self.write(move |tx, _| {
            tx.prepare_cached(
                "INSERT INTO meta (name, value) VALUES (?1, ?2) \
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            )
            .db()?
            .execute((&name, &value))
            .db()?;
            Ok(())
        })
        .await
    }
}

/// Takes the data directory's lock, or says that another process holds it.
fn lock_data_dir(dir: &Path) -> Result<std::fs::File, StoreError> {
    let path = dir.join(SqliteStore::LOCK_FILE);
    let data_dir_error = |message: String| StoreError::DataDir {
        path: dir.display().to_string(),
        message,
    };
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options
        .open(&path)
        .map_err(|e| data_dir_error(format!("cannot open {}: {e}", SqliteStore::LOCK_FILE)))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(data_dir_error(
            "in use by another tailor process (stop it first; a running `tailor serve` \
             takes imports over HTTP)"
                .to_owned(),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(data_dir_error(format!(
            "cannot lock {}: {e}",
            SqliteStore::LOCK_FILE
        ))),
    }
}
