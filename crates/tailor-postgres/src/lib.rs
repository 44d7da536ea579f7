//! The PostgreSQL backend of Tailor's [`Store`] trait: [`PostgresStore`].
//!
//! It behaves exactly as the embedded SQLite backend does (the conformance suite in
//! `tailor_store::conformance` is the contract), on a server that many processes may share
//! and, later, on a distributed PostgreSQL (Citus): every large table carries the account
//! number in its primary key so that it can be distributed by it (see `schema`).
//!
//! Connections come from a `deadpool-postgres` pool; each has a statement timeout. Writes run
//! one after another under a transaction-scoped advisory lock, because the accountability log
//! is one ordered chain and the counters must stay exact (see `transaction`); reads run
//! beside them, each on one snapshot. Large batches (an import, a job's grants) are written
//! with binary `COPY` (see `bulk`).
//!
//! It must never store a contact value or an unkeyed hash: contact points arrive as keyed
//! digests and only those are written; no error or log line carries a value.

#![forbid(unsafe_code)]

mod accounts;
mod advertisers;
mod audiences;
mod bulk;
mod corrections;
mod counters;
mod log;
mod memberships;
mod releases;
mod replication;
mod rows;
mod scan;
mod schema;
mod transaction;

// Test support for other crates' tests; never part of the product.
#[cfg(feature = "testing")]
pub mod testing;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use jiff::{SignedDuration, Timestamp};
use tailor_core::release::{Epsilon, QueryDigest, ReleaseConfig};
use tailor_core::{AccountNo, KeyedDigest, PolicyVersion};
use tailor_store::replication::{Change, Changed, Replication};
use tailor_store::{
    AccountChange, AccountState, AccountWrite, Advertiser, ApiKeyRecord, Applied, Audience,
    Charged, Correction, CorrectionRefused, Erasure, Grant, Job, JobOp, Membership,
    MembershipEvent, NewAdvertiser, NewAudience, NewConsent, NewCorrection, NewJob, NewRelease,
    RevokeReason, ScannedEvent, SessionPart, StagedPart, Store, StoreCounts, StoreError,
    UploadSession,
};
use tokio::runtime::Handle;
use tokio::sync::mpsc::Receiver;

use crate::audiences::NewSession;
use crate::counters::Tally;
use crate::transaction::{Tx, Work};

/// How [`PostgresStore::connect`] sets up its connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostgresOptions {
    /// Connections the pool keeps at most (writes take one at a time; reads and scans take
    /// the others).
    pub max_connections: usize,
    /// How long one statement may run, waiting for a lock included, before the server
    /// cancels it (`statement_timeout`, set on every connection). A write waiting for the
    /// writer lock behind a long import counts that wait.
    pub statement_timeout: Duration,
}

impl Default for PostgresOptions {
    /// Sixteen connections; five minutes a statement, room for a job of millions of grants
    /// or an import batch without letting a stuck statement hold a connection forever.
    fn default() -> Self {
        Self {
            max_connections: 16,
            statement_timeout: Duration::from_secs(300),
        }
    }
}

/// Tailor's store in a PostgreSQL database. Cloning it is cheap and shares the pool.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// Where the scans' tasks run (scans are started from a synchronous method).
    runtime: Handle,
    /// This store's id in the change feed and in job claims.
    origin: u64,
    /// The numbers of changes announced by any process, once someone subscribed.
    announced: std::sync::OnceLock<Arc<tokio::sync::watch::Sender<u64>>>,
    /// For the listener's own connection (outside the pool). Never printed: it may hold a
    /// password.
    config: tokio_postgres::Config,
}

impl fmt::Debug for PostgresStore {
    /// Shows the pool's state, never the connection string (it may hold a password).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.inner.pool.status();
        f.debug_struct("PostgresStore")
            .field("connections", &status.size)
            .field("max_connections", &status.max_size)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (a `postgres://` URL or a `key=value` connection
    /// string), brings its schema up to date and returns the store. A database written by a
    /// newer version is refused with [`StoreError::SchemaTooNew`]. Call it inside a tokio
    /// runtime; the store's scans run on that runtime.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|_| StoreError::Database("the database URL cannot be read".into()))?;
        let startup = startup_options(config.get_options(), options.statement_timeout);
        config.options(startup);
        let manager = Manager::from_config(
            config.clone(),
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.max_connections.max(1))
            .build()
            .map_err(|e| StoreError::Database(format!("cannot build the pool: {e}")))?;
        let runtime = Handle::try_current()
            .map_err(|_| StoreError::Database("connect must run inside a tokio runtime".into()))?;
        let mut client = transaction::connection(&pool).await?;
        schema::migrate(&mut client).await?;
        drop(client);
        let origin = transaction::write(&pool, 0, |tx, _| {
            Box::pin(async move { replication::new_origin(tx).await })
        })
        .await?;
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                runtime,
                origin,
                announced: std::sync::OnceLock::new(),
                config,
            }),
        })
    }

    /// The newest schema version this build knows (and creates).
    pub fn schema_version() -> i64 {
        schema::known_version()
    }

    async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send,
        F: for<'t> FnMut(&'t Tx<'t>, &'t mut Tally) -> Work<'t, T> + Send,
    {
        transaction::write(&self.inner.pool, self.inner.origin, work).await
    }

    /// A short write outside the writer lock (job claims, pruning the feed): it touches no
    /// counter and no log.
    async fn claim<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send,
        F: for<'t> FnOnce(&'t Tx<'t>) -> Work<'t, T> + Send,
    {
        transaction::unlocked(&self.inner.pool, work).await
    }

    async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send,
        F: for<'t> FnOnce(&'t Tx<'t>) -> Work<'t, T> + Send,
    {
        transaction::read(&self.inner.pool, work).await
    }
}

/// The server options every connection starts with: those the URL gives, then the statement
/// timeout (set at connection start, so that no pooled connection is ever without it).
fn startup_options(given: Option<&str>, statement_timeout: Duration) -> String {
    let timeout = format!("-c statement_timeout={}", statement_timeout.as_millis());
    match given {
        Some(given) if !given.trim().is_empty() => format!("{given} {timeout}"),
        _ => timeout,
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn write_accounts(
        &self,
        writes: Vec<AccountWrite>,
        now: Timestamp,
    ) -> Result<Vec<AccountChange>, StoreError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let writes = Arc::new(writes);
        self.write(move |tx, tally| {
            let writes = Arc::clone(&writes);
            Box::pin(async move {
                let changes = accounts::write_accounts(tx, tally, &writes, now).await?;
                tally.changes.accounts(changes.iter().map(|c| c.after.no));
                Ok(changes)
            })
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
            let (account_id, consent) = (account_id.clone(), consent.clone());
            Box::pin(async move {
                let change = accounts::append_consent(tx, tally, &account_id, consent, now).await?;
                tally.changes.accounts(change.iter().map(|c| c.after.no));
                Ok(change)
            })
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
            let account_id = account_id.clone();
            Box::pin(async move {
                let erasure = accounts::erase_account(tx, tally, &account_id, now).await?;
                tally.changes.accounts(erasure.iter().map(|e| e.erased.no));
                Ok(erasure)
            })
        })
        .await
    }

    async fn account(&self, account_id: &str) -> Result<Option<AccountState>, StoreError> {
        let account_id = account_id.to_owned();
        self.read(move |tx| Box::pin(async move { accounts::load_account(tx, &account_id).await }))
            .await
    }

    async fn account_no(&self, account_id: &str) -> Result<Option<AccountNo>, StoreError> {
        let account_id = account_id.to_owned();
        self.read(move |tx| Box::pin(async move { accounts::account_no(tx, &account_id).await }))
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
        self.read(move |tx| Box::pin(async move { accounts::account_ids(tx, &accounts).await }))
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
        self.read(move |tx| {
            Box::pin(async move { accounts::load_accounts_by_no(tx, &accounts).await })
        })
        .await
    }

    fn scan_accounts(&self, batch: usize) -> Receiver<Result<Vec<AccountState>, StoreError>> {
        scan::accounts(self.inner.pool.clone(), &self.inner.runtime, batch)
    }

    async fn create_advertiser(
        &self,
        new: NewAdvertiser,
        now: Timestamp,
    ) -> Result<Advertiser, StoreError> {
        self.write(move |tx, tally| {
            let new = new.clone();
            Box::pin(async move { advertisers::create_advertiser(tx, tally, new, now).await })
        })
        .await
    }

    async fn advertiser(&self, advertiser_id: &str) -> Result<Option<Advertiser>, StoreError> {
        let id = advertiser_id.to_owned();
        self.read(move |tx| Box::pin(async move { advertisers::advertiser(tx, &id).await }))
            .await
    }

    async fn advertiser_by_key(
        &self,
        key_sha256: &[u8; 32],
    ) -> Result<Option<Advertiser>, StoreError> {
        let key = *key_sha256;
        self.read(move |tx| Box::pin(async move { advertisers::advertiser_by_key(tx, &key).await }))
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
            let key_id = key_id.clone();
            Box::pin(async move {
                advertisers::add_api_key(tx, advertiser_no, &key_id, &key_sha256, now).await
            })
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
        self.write(move |tx, _| {
            let key_id = key_id.clone();
            Box::pin(
                async move { advertisers::revoke_api_key(tx, advertiser_no, &key_id, now).await },
            )
        })
        .await
    }

    async fn api_keys(&self, advertiser_no: u32) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.read(move |tx| Box::pin(async move { advertisers::api_keys(tx, advertiser_no).await }))
            .await
    }

    async fn create_audience(
        &self,
        new: NewAudience,
        now: Timestamp,
    ) -> Result<Audience, StoreError> {
        self.write(move |tx, tally| {
            let new = new.clone();
            Box::pin(async move {
                let audience = audiences::create_audience(tx, tally, new, now).await?;
                tally.changes.add(Changed::Audience(audience.no));
                Ok(audience)
            })
        })
        .await
    }

    async fn audiences(
        &self,
        advertiser_no: u32,
        now: Timestamp,
    ) -> Result<Vec<Audience>, StoreError> {
        self.read(move |tx| {
            Box::pin(async move { audiences::audiences(tx, advertiser_no, now).await })
        })
        .await
    }

    async fn audience(
        &self,
        advertiser_no: u32,
        audience_id: &str,
        now: Timestamp,
    ) -> Result<Option<Audience>, StoreError> {
        let id = audience_id.to_owned();
        self.read(move |tx| {
            Box::pin(async move { audiences::audience_by_id(tx, advertiser_no, &id, now).await })
        })
        .await
    }

    async fn all_audiences(&self, now: Timestamp) -> Result<Vec<Audience>, StoreError> {
        self.read(move |tx| Box::pin(async move { audiences::all_audiences(tx, now).await }))
            .await
    }

    async fn delete_audience(
        &self,
        advertiser_no: u32,
        audience_id: &str,
        now: Timestamp,
    ) -> Result<Option<Applied>, StoreError> {
        let id = audience_id.to_owned();
        self.write(move |tx, tally| {
            let id = id.clone();
            Box::pin(async move {
                let audience = audiences::audience_by_id(tx, advertiser_no, &id, now).await?;
                let deleted =
                    audiences::delete_audience(tx, tally, advertiser_no, &id, now).await?;
                if let Some(audience) = audience.filter(|_| deleted.is_some()) {
                    tally.changes.add(Changed::Members(audience.no));
                }
                Ok(deleted)
            })
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
        self.write(move |tx, tally| {
            let session = session.clone();
            Box::pin(async move { audiences::create_session(tx, tally, session).await })
        })
        .await
    }

    async fn session(
        &self,
        advertiser_no: u32,
        session_id: &str,
    ) -> Result<Option<UploadSession>, StoreError> {
        let id = session_id.to_owned();
        self.read(move |tx| {
            Box::pin(async move { audiences::session(tx, advertiser_no, &id).await })
        })
        .await
    }

    async fn put_session_part(
        &self,
        session_no: u64,
        part: SessionPart,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.write(move |tx, _| {
            let part = part.clone();
            Box::pin(async move { audiences::put_session_part(tx, session_no, part, now).await })
        })
        .await
    }

    async fn session_parts(&self, session_no: u64) -> Result<Vec<StagedPart>, StoreError> {
        self.read(move |tx| Box::pin(async move { audiences::session_parts(tx, session_no).await }))
            .await
    }

    async fn commit_session(
        &self,
        session_no: u64,
        job: NewJob,
        now: Timestamp,
    ) -> Result<Job, StoreError> {
        self.write(move |tx, tally| {
            let job = job.clone();
            Box::pin(
                async move { audiences::commit_session(tx, tally, session_no, job, now).await },
            )
        })
        .await
    }

    async fn expire_sessions(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.write(move |tx, _| Box::pin(async move { audiences::expire_sessions(tx, now).await }))
            .await
    }

    async fn job(&self, advertiser_no: u32, job_id: &str) -> Result<Option<Job>, StoreError> {
        let id = job_id.to_owned();
        self.read(move |tx| Box::pin(async move { audiences::job(tx, advertiser_no, &id).await }))
            .await
    }

    async fn job_by_no(&self, job_no: u64) -> Result<Option<Job>, StoreError> {
        self.read(move |tx| Box::pin(async move { audiences::job_by_no(tx, job_no).await }))
            .await
    }

    async fn unfinished_jobs(&self) -> Result<Vec<Job>, StoreError> {
        self.read(|tx| Box::pin(async move { audiences::unfinished_jobs(tx).await }))
            .await
    }

    async fn set_job_running(&self, job_no: u64, now: Timestamp) -> Result<(), StoreError> {
        self.write(move |tx, _| {
            Box::pin(async move { audiences::set_job_running(tx, job_no, now).await })
        })
        .await
    }

    async fn staged_matches(
        &self,
        job_no: u64,
    ) -> Result<Vec<(AccountNo, KeyedDigest)>, StoreError> {
        self.read(move |tx| Box::pin(async move { audiences::staged_matches(tx, job_no).await }))
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
        let (grants, removals) = (Arc::new(grants), Arc::new(removals));
        let origin = self.inner.origin;
        self.write(move |tx, tally| {
            let (grants, removals) = (grants.to_vec(), removals.to_vec());
            Box::pin(async move {
                replication::check_claim(tx, job_no, origin).await?;
                let applied =
                    memberships::apply_job(tx, tally, job_no, grants, removals, query, now).await?;
                let audience = audiences::job_by_no(tx, job_no)
                    .await?
                    .map(|job| job.audience_no);
                if let Some(audience) = audience {
                    tally.changes.add(Changed::Members(audience));
                }
                Ok(applied)
            })
        })
        .await
    }

    async fn charge_release(
        &self,
        release: NewRelease,
        config: &ReleaseConfig,
    ) -> Result<Charged, StoreError> {
        let config = *config;
        self.write(move |tx, tally| {
            let release = release.clone();
            Box::pin(async move {
                let audience = release.release.audience_no;
                let charged = releases::charge(tx, release, &config).await?;
                tally.changes.add(Changed::Audience(audience));
                Ok(charged)
            })
        })
        .await
    }

    async fn entity_charges(
        &self,
        entity: &str,
        since: Timestamp,
    ) -> Result<Vec<(Timestamp, Epsilon)>, StoreError> {
        let entity = entity.to_owned();
        self.read(move |tx| {
            Box::pin(async move { releases::entity_charges(tx, &entity, since).await })
        })
        .await
    }

    async fn fail_job(
        &self,
        job_no: u64,
        message: &'static str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let origin = self.inner.origin;
        self.write(move |tx, _| {
            Box::pin(async move {
                replication::check_claim(tx, job_no, origin).await?;
                audiences::fail_job(tx, job_no, message, now).await
            })
        })
        .await
    }

    async fn memberships_of(&self, account: AccountNo) -> Result<Vec<Membership>, StoreError> {
        self.read(move |tx| Box::pin(async move { memberships::memberships_of(tx, account).await }))
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
        let memberships = Arc::new(memberships);
        self.write(move |tx, tally| {
            let memberships = memberships.to_vec();
            Box::pin(async move {
                tally.changes.memberships(&memberships);
                memberships::revoke(tx, tally, memberships, reason, now).await
            })
        })
        .await
    }

    async fn expire_memberships(
        &self,
        now: Timestamp,
    ) -> Result<Vec<(u32, AccountNo)>, StoreError> {
        self.write(move |tx, tally| {
            Box::pin(async move {
                let expired = memberships::expire_memberships(tx, tally, now).await?;
                tally.changes.memberships(&expired);
                Ok(expired)
            })
        })
        .await
    }

    async fn audience_members(
        &self,
        audience_no: u32,
        now: Timestamp,
    ) -> Result<Vec<AccountNo>, StoreError> {
        self.read(move |tx| {
            Box::pin(async move { memberships::audience_members(tx, audience_no, now).await })
        })
        .await
    }

    fn scan_memberships(&self, batch: usize) -> Receiver<Result<Vec<Membership>, StoreError>> {
        scan::memberships(self.inner.pool.clone(), &self.inner.runtime, batch)
    }

    fn scan_history(
        &self,
        from: Timestamp,
        to: Timestamp,
        batch: usize,
    ) -> Receiver<Result<Vec<ScannedEvent>, StoreError>> {
        scan::history(
            self.inner.pool.clone(),
            &self.inner.runtime,
            (from, to),
            batch,
        )
    }

    async fn membership_history(
        &self,
        audience_no: Option<u32>,
        account: Option<AccountNo>,
    ) -> Result<Vec<MembershipEvent>, StoreError> {
        self.read(move |tx| {
            Box::pin(async move { memberships::membership_history(tx, audience_no, account).await })
        })
        .await
    }

    async fn prune_history(&self, before: Timestamp, now: Timestamp) -> Result<u64, StoreError> {
        self.write(move |tx, tally| {
            Box::pin(async move {
                let rows = memberships::prune_history(tx, before).await?;
                if rows > 0 {
                    tally.journal.record(
                        now,
                        tailor_store::log::LogEvent::HistoryPruned { before, rows },
                    );
                }
                Ok(rows)
            })
        })
        .await
    }

    async fn correct_contact(
        &self,
        correction: NewCorrection,
        now: Timestamp,
    ) -> Result<Result<AccountChange, CorrectionRefused>, StoreError> {
        self.write(move |tx, tally| {
            let correction = correction.clone();
            Box::pin(async move {
                let corrected =
                    corrections::correct(tx, &mut tally.journal, correction, now).await?;
                if let Ok(change) = &corrected {
                    tally.changes.accounts([change.after.no]);
                }
                Ok(corrected)
            })
        })
        .await
    }

    async fn corrections(&self) -> Result<Vec<Correction>, StoreError> {
        self.read(|tx| Box::pin(async move { corrections::all(tx).await }))
            .await
    }

    async fn commitments(
        &self,
        accounts: &[AccountNo],
    ) -> Result<Vec<(AccountNo, tailor_store::log::Commitment)>, StoreError> {
        let accounts = accounts.to_vec();
        self.read(move |tx| Box::pin(async move { corrections::commitments(tx, &accounts).await }))
            .await
    }

    async fn log_size(&self) -> Result<u64, StoreError> {
        self.read(|tx| Box::pin(async move { log::size(tx).await }))
            .await
    }

    async fn log_entries(
        &self,
        start: u64,
        end: u64,
    ) -> Result<Vec<tailor_store::log::StoredEntry>, StoreError> {
        self.read(move |tx| Box::pin(async move { log::entries(tx, start, end).await }))
            .await
    }

    async fn log_event(
        &self,
        event: tailor_store::log::LogEvent,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.write(move |_, tally| {
            tally.journal.record(now, event.clone());
            Box::pin(async { Ok(()) })
        })
        .await
    }

    async fn log_policy(&self, version: PolicyVersion, now: Timestamp) -> Result<(), StoreError> {
        self.write(move |tx, tally| {
            Box::pin(async move {
                tally.changes.add(Changed::Policy);
                log::policy(tx, &mut tally.journal, version, now).await
            })
        })
        .await
    }

    async fn add_checkpoint(
        &self,
        checkpoint: tailor_store::log::StoredCheckpoint,
    ) -> Result<(), StoreError> {
        self.write(move |tx, _| {
            let checkpoint = checkpoint.clone();
            Box::pin(async move { log::add_checkpoint(tx, &checkpoint).await })
        })
        .await
    }

    async fn checkpoints(&self) -> Result<Vec<tailor_store::log::StoredCheckpoint>, StoreError> {
        self.read(|tx| Box::pin(async move { log::checkpoints(tx).await }))
            .await
    }

    async fn counts(&self) -> Result<StoreCounts, StoreError> {
        self.read(|tx| Box::pin(async move { counters::counts(tx).await }))
            .await
    }

    async fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let name = name.to_owned();
        self.read(move |tx| Box::pin(async move { log::meta(tx, &name).await }))
            .await
    }

    async fn set_meta(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        let (name, value) = (name.to_owned(), value.to_vec());
        self.write(move |tx, _| {
            let (name, value) = (name.clone(), value.clone());
            Box::pin(async move { log::set_meta(tx, &name, &value).await })
        })
        .await
    }

    async fn advertisers_by_no(&self, nos: &[u32]) -> Result<Vec<Advertiser>, StoreError> {
        if nos.is_empty() {
            return Ok(Vec::new());
        }
        let nos = nos.to_vec();
        self.read(move |tx| Box::pin(async move { advertisers::advertisers_by_no(tx, &nos).await }))
            .await
    }

    fn replication(&self) -> Option<&dyn Replication> {
        Some(self)
    }
}

#[async_trait]
impl Replication for PostgresStore {
    fn origin(&self) -> u64 {
        self.inner.origin
    }

    async fn head(&self) -> Result<u64, StoreError> {
        let origin = self.inner.origin;
        self.read(move |tx| Box::pin(async move { replication::head(tx, origin).await }))
            .await
    }

    async fn changes_since(&self, after: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        self.read(move |tx| Box::pin(async move { replication::since(tx, after, limit).await }))
            .await
    }

    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        let sender = self.inner.announced.get_or_init(|| {
            let sender = Arc::new(tokio::sync::watch::Sender::new(0));
            self.inner.runtime.spawn(replication::listen(
                self.inner.config.clone(),
                Arc::downgrade(&sender),
            ));
            sender
        });
        sender.subscribe()
    }

    async fn digests_ever(
        &self,
        accounts: &[AccountNo],
    ) -> Result<Vec<(AccountNo, KeyedDigest)>, StoreError> {
        let accounts = accounts.to_vec();
        self.read(move |tx| Box::pin(async move { replication::digests_ever(tx, &accounts).await }))
            .await
    }

    async fn memberships_of_accounts(
        &self,
        accounts: &[AccountNo],
    ) -> Result<Vec<Membership>, StoreError> {
        let accounts = accounts.to_vec();
        self.read(move |tx| {
            Box::pin(async move { memberships::memberships_of_accounts(tx, &accounts).await })
        })
        .await
    }

    async fn audience_with_members(
        &self,
        audience_no: u32,
        now: Timestamp,
    ) -> Result<Option<(Audience, Vec<Membership>)>, StoreError> {
        self.read(move |tx| {
            Box::pin(async move {
                let Some(audience) = audiences::audience_by_no(tx, audience_no, now).await? else {
                    return Ok(None);
                };
                let members = memberships::audience_memberships(tx, audience_no).await?;
                Ok(Some((audience, members)))
            })
        })
        .await
    }

    async fn audience_by_no(
        &self,
        audience_no: u32,
        now: Timestamp,
    ) -> Result<Option<Audience>, StoreError> {
        self.read(move |tx| {
            Box::pin(async move { audiences::audience_by_no(tx, audience_no, now).await })
        })
        .await
    }

    async fn claim_job(
        &self,
        job_no: u64,
        now: Timestamp,
        lease: SignedDuration,
    ) -> Result<bool, StoreError> {
        let origin = self.inner.origin;
        self.claim(move |tx| {
            Box::pin(async move { replication::claim_job(tx, job_no, origin, now, lease).await })
        })
        .await
    }

    async fn claim_orphan(
        &self,
        now: Timestamp,
        lease: SignedDuration,
    ) -> Result<Option<u64>, StoreError> {
        let origin = self.inner.origin;
        self.claim(move |tx| {
            Box::pin(async move { replication::claim_orphan(tx, origin, now, lease).await })
        })
        .await
    }

    async fn renew_claims(&self, now: Timestamp, lease: SignedDuration) -> Result<(), StoreError> {
        let origin = self.inner.origin;
        self.claim(move |tx| {
            Box::pin(async move { replication::renew_claims(tx, origin, now + lease).await })
        })
        .await
    }

    async fn prune_changes(&self, age: SignedDuration) -> Result<u64, StoreError> {
        // The feed is stamped by the wall clock (see `replication::record`), not an engine clock.
        let before = Timestamp::now() - age;
        self.claim(move |tx| Box::pin(async move { replication::prune(tx, before).await }))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statement_timeout_follows_the_urls_own_options() {
        let five_minutes = Duration::from_secs(300);
        assert_eq!(
            startup_options(None, five_minutes),
            "-c statement_timeout=300000"
        );
        assert_eq!(
            startup_options(Some("-c search_path=tailor"), Duration::from_millis(1500)),
            "-c search_path=tailor -c statement_timeout=1500"
        );
        assert_eq!(
            startup_options(Some(" "), five_minutes),
            "-c statement_timeout=300000"
        );
    }
}
