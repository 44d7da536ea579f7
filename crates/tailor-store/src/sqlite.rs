//! The embedded SQLite backend: one database file, `tailor.db`, in a data directory.
//!
//! All database work runs on blocking threads, never on the async executor. One writer
//! connection behind a mutex applies each call's writes in one `IMMEDIATE` transaction, with
//! cached prepared statements; reads take a connection of their own from a small pool and,
//! the journal being a WAL, never wait for a write. Commits are synced (`synchronous=FULL`): a
//! method that returned `Ok` survives a crash; checkpoints run on a thread of their own, off
//! the writer's path. Row counts are kept in a table by the write transactions, so that
//! [`Store::counts`] is a lookup; the writer gives account, audience, job and other numbers
//! from counters, so that they are never reused.
//!
//! It must never store a contact value or an unkeyed hash: contact points arrive as keyed
//! digests and only those are written.

mod advertisers;
mod audiences;
mod checkpoint;
mod corrections;
mod counters;
mod log;
mod memberships;
mod releases;
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

use tailor_core::{AccountNo, KeyedDigest, PolicyVersion};

use self::audiences::NewSession;
use self::checkpoint::Checkpointer;
use self::counters::Tally;
use self::rows::load_account;
use self::schema::Role;
use crate::{
    AccountChange, AccountState, AccountWrite, Advertiser, ApiKeyRecord, Applied, Audience,
    Charged, Erasure, Grant, Job, JobOp, Membership, MembershipEvent, NewAdvertiser, NewAudience,
    NewConsent, NewJob, NewRelease, RevokeReason, ScannedEvent, SessionPart, StagedPart, Store,
    StoreCounts, StoreError, UploadSession,
};
use tailor_core::release::{Epsilon, QueryDigest, ReleaseConfig};

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
    /// Dropped first (declared first): it stops its thread and closes its connection, so that
    /// once the store is dropped no connection of it is left open (the last to close
    /// removes the WAL).
    _checkpointer: Checkpointer,
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
        let checkpoints = schema::connect(&db, Role::Checkpointer)?;
        let checkpointer = Checkpointer::start(&mut writer, checkpoints)?;
        Ok(Self {
            inner: Arc::new(Inner {
                _checkpointer: checkpointer,
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
            tally.journal.append(&tx)?;
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

    /// Like [`db`](SqlResult::db), but a unique or primary key violation is a
    /// [`StoreError::Conflict`] saying `message`.
    fn unique(self, message: &'static str) -> Result<T, StoreError>;
}

impl<T> SqlResult<T> for Result<T, rusqlite::Error> {
    fn unique(self, message: &'static str) -> Result<T, StoreError> {
        use rusqlite::ffi::{SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_UNIQUE};
        match self {
            Err(rusqlite::Error::SqliteFailure(f, _))
                if matches!(
                    f.extended_code,
                    SQLITE_CONSTRAINT_UNIQUE | SQLITE_CONSTRAINT_PRIMARYKEY
                ) =>
            {
                Err(StoreError::Conflict(message))
            }
            other => other.db(),
        }
    }

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
        self.write(move |tx, tally| {
            let changes = write::write_accounts(tx, tally, writes, now)?;
            for change in &changes {
                log::account_changed(tx, &mut tally.journal, change, now)?;
            }
            Ok(changes)
        })
        .await
    }

    async fn append_consent(
        &self,
        account_id: &str,
        consent: NewConsent,
        now: Timestamp,
    ) -> Result<Option<AccountChange>, StoreError> {
        let account_id = account_id.to_owned();
        self.write(move |tx, tally| {
            let change = write::append_consent(tx, tally, &account_id, consent, now)?;
            if let Some(change) = &change {
                log::account_changed(tx, &mut tally.journal, change, now)?;
            }
            Ok(change)
        })
        .await
    }

    async fn erase_account(
        &self,
        account_id: &str,
        now: Timestamp,
    ) -> Result<Option<Erasure>, StoreError> {
        let account_id = account_id.to_owned();
        self.write(move |tx, tally| {
            let erasure = write::erase_account(tx, tally, &account_id, now)?;
            if let Some(erasure) = &erasure {
                let account_no = erasure.erased.no.0;
                let key = log::account_key(tx, account_no)?;
                tally.journal.record(
                    now,
                    crate::log::LogEvent::Erasure {
                        account: key.account(),
                        memberships_ended: erasure.memberships,
                    },
                );
                log::forget_account_key(tx, account_no)?;
            }
            Ok(erasure)
        })
        .await
    }

    async fn account(&self, account_id: &str) -> Result<Option<AccountState>, StoreError> {
        let account_id = account_id.to_owned();
        self.read(move |tx| load_account(tx, &account_id)).await
    }

    async fn account_no(&self, account_id: &str) -> Result<Option<AccountNo>, StoreError> {
        let account_id = account_id.to_owned();
        self.read(move |tx| rows::account_no_of(tx, &account_id))
            .await
    }

    async fn account_ids(
        &self,
        accounts: &[AccountNo],
    ) -> Result<Vec<(AccountNo, String)>, StoreError> {
        if accounts.is_empty() {
            return Ok(Vec::new());
        }
        let accounts = accounts.to_vec();
        self.read(move |tx| rows::account_ids_of(tx, &accounts))
            .await
    }

    async fn accounts_by_no(
        &self,
        accounts: &[AccountNo],
    ) -> Result<Vec<AccountState>, StoreError> {
        if accounts.is_empty() {
            return Ok(Vec::new());
        }
        let accounts = accounts.to_vec();
        self.read(move |tx| rows::load_accounts_by_no(tx, &accounts))
            .await
    }

    fn scan_accounts(&self, batch: usize) -> mpsc::Receiver<Result<Vec<AccountState>, StoreError>> {
        scan::start(&self.inner.db, batch, "account", scan::run)
    }

    async fn create_advertiser(
        &self,
        new: NewAdvertiser,
        now: Timestamp,
    ) -> Result<Advertiser, StoreError> {
        self.write(move |tx, tally| {
            let advertiser = advertisers::create_advertiser(tx, tally, new, now)?;
            tally.journal.record(
                now,
                crate::log::LogEvent::AdvertiserCreated {
                    advertiser_id: advertiser.advertiser_id.clone(),
                    entity: advertiser.entity.clone(),
                },
            );
            Ok(advertiser)
        })
        .await
    }

    async fn advertiser(&self, advertiser_id: &str) -> Result<Option<Advertiser>, StoreError> {
        let advertiser_id = advertiser_id.to_owned();
        self.read(move |tx| advertisers::advertiser(tx, &advertiser_id))
            .await
    }

    async fn advertiser_by_key(
        &self,
        key_sha256: &[u8; 32],
    ) -> Result<Option<Advertiser>, StoreError> {
        let key_sha256 = *key_sha256;
        self.read(move |tx| advertisers::advertiser_by_key(tx, &key_sha256))
            .await
    }

    async fn add_api_key(
        &self,
        advertiser_no: u32,
        key_id: &str,
        key_sha256: [u8; 32],
        now: Timestamp,
    ) -> Result<ApiKeyRecord, StoreError> {
        let key_id = key_id.to_owned();
        self.write(move |tx, _| {
            advertisers::add_api_key(tx, advertiser_no, &key_id, &key_sha256, now)
        })
        .await
    }

    async fn revoke_api_key(
        &self,
        advertiser_no: u32,
        key_id: &str,
        now: Timestamp,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        let key_id = key_id.to_owned();
        self.write(move |tx, _| advertisers::revoke_api_key(tx, advertiser_no, &key_id, now))
            .await
    }

    async fn api_keys(&self, advertiser_no: u32) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.read(move |tx| advertisers::api_keys(tx, advertiser_no))
            .await
    }

    async fn create_audience(
        &self,
        new: NewAudience,
        now: Timestamp,
    ) -> Result<Audience, StoreError> {
        self.write(move |tx, tally| audiences::create_audience(tx, tally, new, now))
            .await
    }

    async fn audiences(
        &self,
        advertiser_no: u32,
        now: Timestamp,
    ) -> Result<Vec<Audience>, StoreError> {
        self.read(move |tx| audiences::audiences(tx, advertiser_no, now))
            .await
    }

    async fn audience(
        &self,
        advertiser_no: u32,
        audience_id: &str,
        now: Timestamp,
    ) -> Result<Option<Audience>, StoreError> {
        let audience_id = audience_id.to_owned();
        self.read(move |tx| audiences::audience_by_id(tx, advertiser_no, &audience_id, now))
            .await
    }

    async fn all_audiences(&self, now: Timestamp) -> Result<Vec<Audience>, StoreError> {
        self.read(move |tx| audiences::all_audiences(tx, now)).await
    }

    async fn delete_audience(
        &self,
        advertiser_no: u32,
        audience_id: &str,
        now: Timestamp,
    ) -> Result<Option<Applied>, StoreError> {
        let audience_id = audience_id.to_owned();
        self.write(move |tx, tally| {
            let deleted = audiences::delete_audience(tx, tally, advertiser_no, &audience_id, now)?;
            if let Some(applied) = &deleted {
                tally.journal.record(
                    now,
                    crate::log::LogEvent::AudienceDeleted {
                        audience_id: audience_id.clone(),
                        ended: applied.revoked.len() as u64,
                    },
                );
            }
            Ok(deleted)
        })
        .await
    }

    async fn create_session(
        &self,
        session_id: &str,
        advertiser_no: u32,
        audience_no: u32,
        op: JobOp,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<UploadSession, StoreError> {
        let session = NewSession {
            session_id: session_id.to_owned(),
            advertiser_no,
            audience_no,
            op,
            now,
            expires_at,
        };
        self.write(move |tx, tally| audiences::create_session(tx, tally, session))
            .await
    }

    async fn session(
        &self,
        advertiser_no: u32,
        session_id: &str,
    ) -> Result<Option<UploadSession>, StoreError> {
        let session_id = session_id.to_owned();
        self.read(move |tx| audiences::session(tx, advertiser_no, &session_id))
            .await
    }

    async fn put_session_part(
        &self,
        session_no: u64,
        part: SessionPart,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.write(move |tx, _| audiences::put_session_part(tx, session_no, part, now))
            .await
    }

    async fn session_parts(&self, session_no: u64) -> Result<Vec<StagedPart>, StoreError> {
        self.read(move |tx| audiences::session_parts(tx, session_no))
            .await
    }

    async fn commit_session(
        &self,
        session_no: u64,
        job: NewJob,
        now: Timestamp,
    ) -> Result<Job, StoreError> {
        self.write(move |tx, tally| audiences::commit_session(tx, tally, session_no, job, now))
            .await
    }

    async fn expire_sessions(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.write(move |tx, _| audiences::expire_sessions(tx, now))
            .await
    }

    async fn job(&self, advertiser_no: u32, job_id: &str) -> Result<Option<Job>, StoreError> {
        let job_id = job_id.to_owned();
        self.read(move |tx| audiences::job(tx, advertiser_no, &job_id))
            .await
    }

    async fn job_by_no(&self, job_no: u64) -> Result<Option<Job>, StoreError> {
        self.read(move |tx| audiences::job_by_no(tx, job_no)).await
    }

    async fn unfinished_jobs(&self) -> Result<Vec<Job>, StoreError> {
        self.read(|tx| audiences::unfinished_jobs(tx)).await
    }

    async fn set_job_running(&self, job_no: u64, now: Timestamp) -> Result<(), StoreError> {
        self.write(move |tx, _| audiences::set_job_running(tx, job_no, now))
            .await
    }

    async fn staged_matches(
        &self,
        job_no: u64,
    ) -> Result<Vec<(AccountNo, KeyedDigest)>, StoreError> {
        self.read(move |tx| audiences::staged_matches(tx, job_no))
            .await
    }

    async fn apply_job(
        &self,
        job_no: u64,
        grants: Vec<Grant>,
        removals: Vec<AccountNo>,
        query: QueryDigest,
        now: Timestamp,
    ) -> Result<Applied, StoreError> {
        self.write(move |tx, tally| {
            memberships::apply_job(tx, tally, job_no, grants, removals, query, now)
        })
        .await
    }

    async fn charge_release(
        &self,
        release: NewRelease,
        config: &ReleaseConfig,
    ) -> Result<Charged, StoreError> {
        let config = *config;
        self.write(move |tx, _| releases::charge(tx, release, &config))
            .await
    }

    async fn entity_charges(
        &self,
        entity: &str,
        since: Timestamp,
    ) -> Result<Vec<(Timestamp, Epsilon)>, StoreError> {
        let entity = entity.to_owned();
        self.read(move |tx| releases::entity_charges(tx, &entity, since))
            .await
    }

    async fn fail_job(
        &self,
        job_no: u64,
        message: &'static str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.write(move |tx, _| audiences::fail_job(tx, job_no, message, now))
            .await
    }

    async fn memberships_of(&self, account: AccountNo) -> Result<Vec<Membership>, StoreError> {
        self.read(move |tx| memberships::memberships_of(tx, account))
            .await
    }

    async fn revoke(
        &self,
        memberships: Vec<(u32, AccountNo)>,
        reason: RevokeReason,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        if memberships.is_empty() {
            return Ok(0);
        }
        self.write(move |tx, tally| memberships::revoke(tx, tally, memberships, reason, now))
            .await
    }

    async fn expire_memberships(
        &self,
        now: Timestamp,
    ) -> Result<Vec<(u32, AccountNo)>, StoreError> {
        self.write(move |tx, tally| {
            let expired = memberships::expire_memberships(tx, tally, now)?;
            let mut by_audience: std::collections::BTreeMap<u32, u64> = Default::default();
            for &(audience_no, _) in &expired {
                *by_audience.entry(audience_no).or_default() += 1;
            }
            for (audience_no, n) in by_audience {
                let audience_id = log::audience_id(tx, audience_no)?;
                tally.journal.record(
                    now,
                    crate::log::LogEvent::MembershipsExpired {
                        audience_id,
                        expired: n,
                    },
                );
            }
            Ok(expired)
        })
        .await
    }

    async fn audience_members(
        &self,
        audience_no: u32,
        now: Timestamp,
    ) -> Result<Vec<AccountNo>, StoreError> {
        self.read(move |tx| memberships::audience_members(tx, audience_no, now))
            .await
    }

    fn scan_memberships(
        &self,
        batch: usize,
    ) -> mpsc::Receiver<Result<Vec<Membership>, StoreError>> {
        scan::start(&self.inner.db, batch, "membership", scan::run_memberships)
    }

    fn scan_history(
        &self,
        from: Timestamp,
        to: Timestamp,
        batch: usize,
    ) -> mpsc::Receiver<Result<Vec<ScannedEvent>, StoreError>> {
        scan::start(
            &self.inner.db,
            batch,
            "history",
            move |db, batch, sender| {
                scan::run_history(db, (from, to), batch, sender);
            },
        )
    }

    async fn membership_history(
        &self,
        audience_no: Option<u32>,
        account: Option<AccountNo>,
    ) -> Result<Vec<MembershipEvent>, StoreError> {
        self.read(move |tx| memberships::membership_history(tx, audience_no, account))
            .await
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
                    "advertisers" => counts.advertisers = value,
                    "audiences" => counts.audiences = value,
                    "memberships" => counts.memberships = value,
                    // Not a row count.
                    _ => {}
                }
            }
            Ok(counts)
        })
        .await
    }

    async fn prune_history(&self, before: Timestamp, now: Timestamp) -> Result<u64, StoreError> {
        self.write(move |tx, tally| {
            let rows = memberships::prune_history(tx, before)?;
            if rows > 0 {
                tally
                    .journal
                    .record(now, crate::log::LogEvent::HistoryPruned { before, rows });
            }
            Ok(rows)
        })
        .await
    }

    async fn correct_contact(
        &self,
        correction: crate::NewCorrection,
        now: Timestamp,
    ) -> Result<Result<AccountChange, crate::CorrectionRefused>, StoreError> {
        self.write(move |tx, tally| corrections::correct(tx, &mut tally.journal, correction, now))
            .await
    }

    async fn corrections(&self) -> Result<Vec<crate::Correction>, StoreError> {
        self.read(|tx| corrections::all(tx)).await
    }

    async fn commitments(
        &self,
        accounts: &[AccountNo],
    ) -> Result<Vec<(AccountNo, crate::log::Commitment)>, StoreError> {
        let accounts = accounts.to_vec();
        self.read(move |tx| corrections::commitments(tx, &accounts))
            .await
    }

    async fn log_size(&self) -> Result<u64, StoreError> {
        self.read(|tx| log::size(tx)).await
    }

    async fn log_entries(
        &self,
        start: u64,
        end: u64,
    ) -> Result<Vec<crate::log::StoredEntry>, StoreError> {
        self.read(move |tx| log::entries(tx, start, end)).await
    }

    async fn log_event(
        &self,
        event: crate::log::LogEvent,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.write(move |_, tally| {
            tally.journal.record(now, event);
            Ok(())
        })
        .await
    }

    async fn log_policy(&self, version: PolicyVersion, now: Timestamp) -> Result<(), StoreError> {
        self.write(move |tx, tally| log::policy(tx, &mut tally.journal, version, now))
            .await
    }

    async fn add_checkpoint(
        &self,
        checkpoint: crate::log::StoredCheckpoint,
    ) -> Result<(), StoreError> {
        self.write(move |tx, _| log::add_checkpoint(tx, &checkpoint))
            .await
    }

    async fn checkpoints(&self) -> Result<Vec<crate::log::StoredCheckpoint>, StoreError> {
        self.read(|tx| log::checkpoints(tx)).await
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

    async fn advertisers_by_no(&self, nos: &[u32]) -> Result<Vec<Advertiser>, StoreError> {
        if nos.is_empty() {
            return Ok(Vec::new());
        }
        let nos = nos.to_vec();
        self.read(move |tx| advertisers::advertisers_by_no(tx, &nos))
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
