//! Tailor's platform side: accounts, contact points and consent flow in; the eligible index
//! stays equal to the store filtered by the policy.
//!
//! [`Engine`] owns the eligible-identifier index and the policy and talks to a
//! [`tailor_store::Store`]. Every write (an account import, a consent event, an erasure, a
//! policy change) updates the index before it returns, so that once a caller is told a write
//! is done, matching and serving already reflect it. Writes are serialized through one lock so
//! that index updates happen in the order the store committed them.
//!
//! The engine never logs and never returns a contact value: values are turned into keyed
//! digests as they are read ([`import`]) and refusals carry reason codes and field paths.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, RwLock};

use jiff::Timestamp;
use tailor_core::consent::standing;
use tailor_core::release::ReleaseConfig;
use tailor_core::{
    AccountFacts, AccountNo, Basis, ContactFacts, EligibleIndex, IndexKey, KeyedDigest,
    MarketingEligible, Policy, Purpose, Standing,
};
use tailor_store::{AccountChange, AccountState, NewContact, Store, StoreError};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

pub mod advertising;
pub mod audit;
mod clock;
pub mod data_use;
pub mod import;
pub mod incident;
mod release;
mod replica;
pub mod secret;
mod serving;
mod sharded;
mod view;

pub use advertising::{
    AdvertiserCreated, AudienceView, JobView, KeyCreated, PartView, Refused, SessionView,
};
pub use clock::{Clock, SystemClock};
pub use import::{ImportReject, ImportSummary, Refusal};
pub use view::{AccountView, ConsentView, ContactView, ErasureReport, PurposeView};

use import::{check_account, check_account_id, check_consent, parse_consent, parse_line};

/// The purpose the eligible index serves: audience matching.
pub const INDEXED_PURPOSE: Purpose = Purpose::MARKETING_TARGETED;

/// Serving-map changes made under one hold of its write lock (a few hundred microseconds).
const SERVING_CHUNK: usize = 1024;

/// Limits on what the engine reads.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The longest line of an import body.
    pub max_line_bytes: usize,
    /// The most bytes read from one import body.
    pub max_body_bytes: u64,
    /// Accounts written per store transaction.
    pub batch: usize,
    /// How long the membership history (every grant and end, with its basis) is kept, in
    /// days; the basis of a live membership is kept while it lives. 0 keeps it forever.
    pub history_retention_days: u32,
    /// With several processes on one database: how long a process's claim on a job lasts
    /// unless renewed (every third of it); a job whose process died is taken over by another
    /// once its claim lapses.
    pub job_lease_seconds: u32,
    /// Whether this engine runs upload jobs: resumes the unfinished ones at start and, with
    /// several processes on one database, takes over those whose process died. A server does;
    /// an operator command that only writes accounts does not.
    pub run_jobs: bool,
}

impl Limits {
    /// [`Limits::job_lease_seconds`] as a duration (at least a second).
    pub fn job_lease(&self) -> jiff::SignedDuration {
        jiff::SignedDuration::from_secs(i64::from(self.job_lease_seconds.max(1)))
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_line_bytes: 64 * 1024,
            max_body_bytes: 8 * 1024 * 1024 * 1024,
            batch: 10_000,
            history_retention_days: 1095,
            job_lease_seconds: 30,
            run_jobs: true,
        }
    }
}

/// The engine's failures. Refused input is not an error: it is counted in summaries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An import stopped on a storage failure; what was written before it stays written.
    #[error("import stopped after {} accounts: {source}", .summary.accounts)]
    ImportInterrupted {
        summary: Box<ImportSummary>,
        #[source]
        source: StoreError,
    },
    #[error("reading the request body: {0}")]
    Body(#[source] std::io::Error),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid secret key: {0}")]
    BadSecret(&'static str),
    #[error("the operating system's random generator failed")]
    Random,
    /// A task of the engine ended unexpectedly (the engine is shutting down).
    #[error("an engine task stopped")]
    Worker,
    /// Writes other processes committed could not be applied here in time (the database is
    /// unreachable or this process is far behind): the read was not answered.
    #[error("this process is behind the other processes' writes")]
    Behind,
}

/// What the index and the policy are, together (swapped together on a policy change).
#[derive(Debug)]
struct Shared {
    policy: Arc<Policy>,
    index: EligibleIndex,
    serving: serving::Serving,
}

/// The platform side of Tailor. Cheap to clone: clones share one engine.
///
/// Every write runs in a task of its own: if the caller stops waiting (an HTTP client hangs
/// up), the store write and the index update it started still finish together, so the index
/// never misses a committed change.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    key: IndexKey,
    clock: Arc<dyn Clock>,
    limits: Limits,
    releaser: release::Releaser,
    shared: RwLock<Shared>,
    /// Jobs to apply, in order, to the job worker.
    jobs: tokio::sync::mpsc::UnboundedSender<u64>,
    /// Requests to be told when the jobs queued so far are done.
    settle: tokio::sync::mpsc::UnboundedSender<tokio::sync::oneshot::Sender<()>>,
    /// Held across a store write and its index update, so that index updates happen in the
    /// order the store committed them.
    writer: tokio::sync::Mutex<()>,
    /// The key log checkpoints are signed with, once given ([`Engine::sign_log_with`]).
    log_key: std::sync::OnceLock<tailor_log::SigningKey>,
    /// The detective control: grants applied whose basis is a security or address-book
    /// context. Impossible by construction; it must stay 0.
    forbidden_grants: std::sync::atomic::AtomicU64,
    /// When the membership history was last pruned.
    last_prune: std::sync::Mutex<Option<Timestamp>>,
    /// How far the other processes' writes are applied here (see [`replica`]).
    follow: replica::Follow,
    /// Jobs applied in the store whose serving changes are not yet published here (job
    /// number → audience number).
    publishing: std::sync::Mutex<std::collections::HashMap<u64, u32>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

/// What one committed batch of account writes added.
struct BatchCounts {
    accounts: u64,
    contact_points: u64,
    consents: u64,
}

/// Runs a write to completion in its own task, whatever happens to the caller.
async fn detached<T, F>(work: F) -> T
where
    T: Send + 'static,
    F: std::future::Future<Output = T> + Send + 'static,
{
    joined(tokio::spawn(work)).await
}

/// The value of a task; its panic is the caller's panic.
async fn joined<T>(task: tokio::task::JoinHandle<T>) -> T {
    match task.await {
        Ok(value) => value,
        Err(join) => match join.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // Only a runtime shutting down cancels the task; the caller is going away too.
            Err(_) => std::future::pending().await,
        },
    }
}

impl Engine {
    /// An engine over `store`, with its index built from the store under `policy`.
    pub async fn open(
        store: Arc<dyn Store>,
        key: IndexKey,
        policy: Policy,
        clock: Arc<dyn Clock>,
        limits: Limits,
    ) -> Result<Self, EngineError> {
        Self::open_with(store, key, policy, clock, limits, ReleaseConfig::default()).await
    }

    /// As [`Engine::open`], with the release settings for advertiser-visible numbers.
    ///
    /// Builds the index and the serving map from the store, starts the job worker and the
    /// expiry sweeper, and resumes the jobs a previous run left queued.
    pub async fn open_with(
        store: Arc<dyn Store>,
        key: IndexKey,
        policy: Policy,
        clock: Arc<dyn Clock>,
        limits: Limits,
        release: ReleaseConfig,
    ) -> Result<Self, EngineError> {
        let now = clock.now();
        // Other processes' changes after this point are applied once the engine runs (those
        // already in what is loaded below are applied again, which changes nothing).
        let head = match store.replication() {
            Some(feed) => feed.head().await?,
            None => 0,
        };
        let started = std::time::Instant::now();
        let index = build_index(store.as_ref(), &policy, now).await?;
        tracing::info!(
            entries = index.len(),
            ms = started.elapsed().as_millis() as u64,
            "index built from the store"
        );
        let started = std::time::Instant::now();
        let serving = build_serving(store.as_ref(), now).await?;
        tracing::info!(
            memberships = serving.len(),
            ms = started.elapsed().as_millis() as u64,
            "serving map loaded from the store"
        );
        let started = std::time::Instant::now();
        let (jobs, job_queue) = tokio::sync::mpsc::unbounded_channel();
        let (settle, settle_queue) = tokio::sync::mpsc::unbounded_channel();
        let releaser = release::Releaser::new(&key, release);
        let inner = Arc::new(Inner {
            store,
            key,
            clock,
            limits,
            releaser,
            shared: RwLock::new(Shared {
                policy: Arc::new(policy),
                index,
                serving,
            }),
            jobs,
            settle,
            writer: tokio::sync::Mutex::new(()),
            log_key: std::sync::OnceLock::new(),
            forbidden_grants: std::sync::atomic::AtomicU64::new(0),
            last_prune: std::sync::Mutex::new(None),
            follow: replica::Follow::at(head),
            publishing: std::sync::Mutex::new(std::collections::HashMap::new()),
        });
        // The policy in force is in the log before anything is decided under it.
        let policy = inner.read().policy.clone();
        inner.publish_policy(&policy, now).await?;
        // Memberships the index no longer supports (a policy change while stopped) end now.
        inner.revoke_unsupported(now).await?;
        inner.sweep().await?;
        tracing::info!(
            ms = started.elapsed().as_millis() as u64,
            "memberships checked against the index and expiry"
        );
        if inner.limits.run_jobs {
            for job in inner.store.unfinished_jobs().await? {
                let _ = inner.jobs.send(job.no);
            }
        }
        tokio::spawn(advertising::job_worker(
            Arc::downgrade(&inner),
            job_queue,
            settle_queue,
        ));
        tokio::spawn(sweeper(Arc::downgrade(&inner)));
        if inner.store.replication().is_some() {
            tokio::spawn(replica::follower(
                Arc::downgrade(&inner),
                Arc::clone(&inner.follow.wake),
            ));
            if inner.limits.run_jobs {
                tokio::spawn(replica::claimer(
                    Arc::downgrade(&inner),
                    inner.limits.job_lease(),
                ));
            }
        }
        Ok(Self { inner })
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The detective control: grants applied since start whose basis is a security or
    /// address-book context (they are also counted in each job's log entry). It must be 0.
    pub fn forbidden_grants(&self) -> u64 {
        self.inner
            .forbidden_grants
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Signs log checkpoints with `key` from now on (every sweep, and on request). Only the
    /// first key given is used.
    pub fn sign_log_with(&self, key: tailor_log::SigningKey) {
        let _ = self.inner.log_key.set(key);
    }

    /// A signed checkpoint of the log as it is now (stored, so that `tailor log verify` checks
    /// it later); `None` without a signing key.
    pub async fn log_checkpoint(&self) -> Result<Option<String>, EngineError> {
        let Some(key) = self.inner.log_key.get() else {
            return Ok(None);
        };
        // One store write: a caller that stops waiting leaves it done or not done.
        audit::checkpoint(self.inner.store.as_ref(), key, self.now())
            .await
            .map(Some)
    }

    pub fn key(&self) -> &IndexKey {
        &self.inner.key
    }

    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// The limits the engine was opened with.
    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        Arc::clone(&self.inner.read().policy)
    }

    /// Waits until every write other processes sharing the store committed before this call
    /// is applied here (at once over a store only one process holds). Serving answers do this
    /// themselves.
    pub async fn caught_up(&self) -> Result<(), EngineError> {
        self.inner.catch_up().await
    }

    /// The accounts an identifier reaches among the eligible contact points.
    pub fn lookup(&self, digest: &KeyedDigest) -> Vec<AccountNo> {
        self.inner.read().index.lookup(digest).collect()
    }

    /// Entries in the index.
    pub fn index_len(&self) -> usize {
        self.inner.read().index.len()
    }

    /// Bytes the index's table holds.
    pub fn index_bytes(&self) -> usize {
        self.inner.read().index.allocated_bytes()
    }

    /// Every index entry, sorted (for checks).
    pub fn index_entries(&self) -> Vec<([u8; 10], AccountNo, u16)> {
        self.inner.read().index.entries()
    }

    /// Imports NDJSON account lines, streaming, in store transactions of `limits.batch`.
    pub async fn import<R: AsyncBufRead + Unpin>(
        &self,
        mut body: R,
    ) -> Result<ImportSummary, EngineError> {
        let limits = self.inner.limits;
        let mut summary = ImportSummary::default();
        let mut batch = Vec::with_capacity(limits.batch);
        let mut line = Vec::new();
        let mut line_no = 0u64;
        let mut read = 0u64;
        let mut in_flight = None;
        loop {
            line.clear();
            let (n, complete) = read_line(&mut body, &mut line, limits.max_line_bytes)
                .await
                .map_err(EngineError::Body)?;
            if n == 0 {
                break;
            }
            line_no += 1;
            read += n as u64;
            if read > limits.max_body_bytes {
                summary.truncated = true;
                summary.refuse(line_no, None, ImportReject::BodyTooLarge);
                break;
            }
            // An overlong line keeps none of its bytes: it is not blank, it is refused.
            if complete && line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            summary.lines += 1;
            if !complete {
                summary.refuse(line_no, None, ImportReject::LineTooLong);
                continue;
            }
            let now = self.now();
            let checked = parse_line(&line).and_then(|parsed| {
                check_account(line_no, parsed, &self.inner.key, now, &mut summary)
            });
            match checked {
                Ok(account) => batch.push(account),
                Err(reason) => summary.refuse(line_no, None, reason),
            }
            if batch.len() >= limits.batch {
                // One batch commits while the next is read and checked.
                if let Some(previous) = in_flight.take() {
                    self.settle(previous, &mut summary).await?;
                }
                in_flight = Some(self.start(std::mem::take(&mut batch)));
            }
        }
        if let Some(previous) = in_flight.take() {
            self.settle(previous, &mut summary).await?;
        }
        if !batch.is_empty() {
            let last = self.start(batch);
            self.settle(last, &mut summary).await?;
        }
        Ok(summary)
    }

    /// Imports one account, whose line must name `account_id`.
    pub async fn put_account(
        &self,
        account_id: &str,
        body: &[u8],
    ) -> Result<ImportSummary, EngineError> {
        let mut summary = ImportSummary {
            lines: 1,
            ..ImportSummary::default()
        };
        let now = self.now();
        let checked = parse_line(body)
            .and_then(|parsed| check_account(1, parsed, &self.inner.key, now, &mut summary))
            .and_then(|account| {
                if account.write.account_id == account_id {
                    Ok(account)
                } else {
                    Err(ImportReject::InvalidAccountId)
                }
            });
        match checked {
            Ok(account) => {
                let committing = self.start(vec![account]);
                self.settle(committing, &mut summary).await?;
            }
            Err(reason) => summary.refuse(1, None, reason),
        }
        Ok(summary)
    }

    /// Starts committing a batch in a task of its own.
    fn start(
        &self,
        batch: Vec<import::CheckedAccount>,
    ) -> tokio::task::JoinHandle<Result<BatchCounts, StoreError>> {
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move { inner.commit_batch(batch).await })
    }

    /// Waits for a batch started by [`Engine::start`] and counts it.
    async fn settle(
        &self,
        committing: tokio::task::JoinHandle<Result<BatchCounts, StoreError>>,
        summary: &mut ImportSummary,
    ) -> Result<(), EngineError> {
        match joined(committing).await {
            Ok(counts) => {
                summary.accounts += counts.accounts;
                summary.contact_points += counts.contact_points;
                summary.consents += counts.consents;
                Ok(())
            }
            Err(source) => Err(EngineError::ImportInterrupted {
                summary: Box::new(summary.clone()),
                source,
            }),
        }
    }

    /// Appends one consent event (JSON: purpose, state, source, at, notice_version).
    pub async fn record_consent(
        &self,
        account_id: &str,
        body: &[u8],
    ) -> Result<Result<AccountView, Refusal>, EngineError> {
        let refusal = |field: Option<&str>, reason: ImportReject| Refusal {
            line: 1,
            field: field.map(str::to_owned),
            reason: reason.code(),
        };
        if check_account_id(account_id).is_err() {
            return Ok(Err(refusal(None, ImportReject::InvalidAccountId)));
        }
        let line = match parse_consent(body) {
            Ok(line) => line,
            Err(reason) => return Ok(Err(refusal(None, reason))),
        };
        let consent = match check_consent(line, self.now()) {
            Ok(consent) => consent,
            Err((field, reason)) => return Ok(Err(refusal(Some(field), reason))),
        };
        let inner = Arc::clone(&self.inner);
        let account_id = account_id.to_owned();
        let change = detached(async move {
            let _writing = inner.writer.lock().await;
            let now = inner.clock.now();
            let change = inner
                .store
                .append_consent(&account_id, consent, now)
                .await?;
            if let Some(change) = &change {
                let ended = inner.apply(std::slice::from_ref(change), now);
                inner.revoke(ended, now).await?;
            }
            Ok::<_, StoreError>(change)
        })
        .await?;
        let Some(change) = change else {
            return Ok(Err(refusal(None, ImportReject::UnknownAccount)));
        };
        Ok(Ok(view::account_view(
            &change.after,
            &self.policy(),
            self.now(),
        )))
    }

    /// Erases an account: its contact points and consent history go, and so does every index
    /// entry of it. `None` if there was no such account.
    pub async fn erase(&self, account_id: &str) -> Result<Option<ErasureReport>, EngineError> {
        if check_account_id(account_id).is_err() {
            return Ok(None);
        }
        let inner = Arc::clone(&self.inner);
        let account_id = account_id.to_owned();
        let report = detached(async move {
            let _writing = inner.writer.lock().await;
            let now = inner.clock.now();
            let Some(erasure) = inner.store.erase_account(&account_id, now).await? else {
                return Ok::<_, StoreError>(None);
            };
            let removed = {
                let mut shared = inner.write();
                let Shared {
                    policy,
                    index,
                    serving,
                } = &mut *shared;
                let before = index.len();
                update_account(index, policy, Some(&erasure.erased), None, now);
                serving.remove_account(erasure.erased.no);
                before - index.len()
            };
            Ok(Some(ErasureReport {
                erased: true,
                contact_points: erasure.contact_points,
                consent_events: erasure.consent_events,
                index_entries: removed as u64,
                memberships: erasure.memberships,
            }))
        })
        .await?;
        Ok(report)
    }

    /// What the platform may show about an account: its contact points (never their values),
    /// what each is eligible for and why not, and its consent standing per purpose.
    pub async fn view(&self, account_id: &str) -> Result<Option<AccountView>, EngineError> {
        if check_account_id(account_id).is_err() {
            return Ok(None);
        }
        let Some(state) = self.inner.store.account(account_id).await? else {
            return Ok(None);
        };
        Ok(Some(view::account_view(&state, &self.policy(), self.now())))
    }

    /// Puts a new policy in force: the index is rebuilt under it before this returns.
    pub async fn set_policy(&self, policy: Policy) -> Result<(), EngineError> {
        let inner = Arc::clone(&self.inner);
        detached(async move {
            let _writing = inner.writer.lock().await;
            let now = inner.clock.now();
            inner.publish_policy(&policy, now).await?;
            inner.install_policy(policy, now).await
        })
        .await
    }

    /// Ends expired memberships and deletes expired upload sessions now (a background task
    /// does it every minute).
    pub async fn sweep(&self) -> Result<(), EngineError> {
        let inner = Arc::clone(&self.inner);
        detached(async move { inner.sweep().await }).await?;
        Ok(())
    }

    /// Rebuilds the index from the store (what a restart does), returning the new entry count.
    pub async fn rebuild(&self) -> Result<usize, EngineError> {
        let inner = Arc::clone(&self.inner);
        detached(async move {
            let _writing = inner.writer.lock().await;
            let now = inner.clock.now();
            let policy = Arc::clone(&inner.read().policy);
            let index = build_index(inner.store.as_ref(), &policy, now).await?;
            let len = index.len();
            inner.write().index = index;
            inner.revoke_unsupported(now).await?;
            Ok(len)
        })
        .await
    }
}

impl Inner {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Shared> {
        // A writer that panicked while holding the lock left the index mid-update; reading it
        // anyway is the lesser evil than refusing every request, and the next rebuild fixes it.
        self.shared
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[track_caller]
    fn write(&self) -> TimedWrite<'_> {
        let asked = std::time::Instant::now();
        let guard = self
            .shared
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        TimedWrite {
            guard,
            asked,
            held: std::time::Instant::now(),
            at: std::panic::Location::caller(),
        }
    }

    /// Writes a batch of checked accounts and updates the index, as one step.
    async fn commit_batch(
        &self,
        batch: Vec<import::CheckedAccount>,
    ) -> Result<BatchCounts, StoreError> {
        let _writing = self.writer.lock().await;
        let mut writes = Vec::with_capacity(batch.len());
        for account in batch {
            let mut write = account.write;
            if account.keep_contacts
                && let Some(current) = self.store.account(&write.account_id).await?
            {
                write.contacts = current.contacts.iter().map(as_new_contact).collect();
            }
            writes.push(write);
        }
        let consents = writes.iter().map(|w| w.consents.len() as u64).sum();
        let now = self.clock.now();
        let changes = self.store.write_accounts(writes, now).await?;
        let ended = self.apply(&changes, now);
        self.revoke(ended, now).await?;
        Ok(BatchCounts {
            accounts: changes.len() as u64,
            contact_points: changes.iter().map(|c| c.after.contacts.len() as u64).sum(),
            consents,
        })
    }

    /// Updates the index for committed changes, in commit order; returns the memberships
    /// whose contact point is no longer eligible. Serving answers stop using them at once
    /// (they re-check the index); [`Inner::revoke`] ends them in the store.
    fn apply(&self, changes: &[AccountChange], now: Timestamp) -> Vec<(u32, AccountNo)> {
        let mut shared = self.write();
        let Shared {
            policy,
            index,
            serving,
        } = &mut *shared;
        let mut ended = Vec::new();
        for change in changes {
            let eligible = update_account(
                index,
                policy,
                change.before.as_ref(),
                Some(&change.after),
                now,
            );
            ended.extend(serving.no_longer_eligible(change.after.no, &eligible));
        }
        ended
    }

    /// Ends memberships whose basis is no longer eligible, in the store and the serving map.
    /// Answers stopped using them already: they re-check the index.
    async fn revoke(&self, ended: Vec<(u32, AccountNo)>, now: Timestamp) -> Result<(), StoreError> {
        if ended.is_empty() {
            return Ok(());
        }
        self.store
            .revoke(ended.clone(), tailor_store::RevokeReason::Ineligible, now)
            .await?;
        self.serving_in_chunks(&ended, |serving, &(audience_no, account)| {
            serving.revoke(audience_no, account);
        })
        .await;
        Ok(())
    }

    /// Changes the serving map for each item, holding its write lock for one chunk of items
    /// at a time and letting other tasks run between chunks: a serving answer waits for one
    /// chunk at most, never for a whole job's or sweep's worth of changes.
    async fn serving_in_chunks<T>(
        &self,
        items: &[T],
        mut change: impl FnMut(&mut serving::Serving, &T),
    ) {
        for chunk in items.chunks(SERVING_CHUNK) {
            {
                let mut shared = self.write();
                for item in chunk {
                    change(&mut shared.serving, item);
                }
            }
            tokio::task::yield_now().await;
        }
    }

    /// Ends expired memberships and deletes expired upload sessions.
    async fn sweep(&self) -> Result<(), StoreError> {
        let _writing = self.writer.lock().await;
        let now = self.clock.now();
        let expired = self.store.expire_memberships(now).await?;
        // Answers skip expired memberships already.
        self.serving_in_chunks(&expired, |serving, &(audience_no, account)| {
            serving.revoke(audience_no, account);
        })
        .await;
        self.store.expire_sessions(now).await?;
        // The history is pruned at most once a day (the first sweep after a start included):
        // it is a scan of the whole history table.
        let due = {
            let mut last = self
                .last_prune
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let due = self.limits.history_retention_days > 0
                && last
                    .is_none_or(|t| now.duration_since(t) >= jiff::SignedDuration::from_hours(24));
            if due {
                *last = Some(now);
            }
            due
        };
        if due {
            let retention = i64::from(self.limits.history_retention_days);
            let cutoff = now - jiff::SignedDuration::from_hours(24 * retention);
            self.store.prune_history(cutoff, now).await?;
        }
        if let Some(key) = self.log_key.get() {
            // A failed checkpoint is tried again at the next sweep; the entries are safe.
            if let Err(error) = audit::checkpoint(self.store.as_ref(), key, now).await {
                tracing::warn!(%error, "no log checkpoint signed");
            }
        }
        Ok(())
    }

    /// Records a policy as the one in force: its text (for other processes sharing the
    /// database, which install it from the change feed, and for [`policy_in_force`]), then
    /// the log entry.
    async fn publish_policy(&self, policy: &Policy, now: Timestamp) -> Result<(), StoreError> {
        self.store
            .set_meta(
                tailor_store::replication::POLICY_META,
                policy.source().as_bytes(),
            )
            .await?;
        self.store.log_policy(policy.version(), now).await
    }

    /// Puts a policy in force here: the index rebuilt under it, then the memberships it no
    /// longer supports ended. The caller holds the writer lock.
    async fn install_policy(&self, policy: Policy, now: Timestamp) -> Result<(), EngineError> {
        let index = build_index(self.store.as_ref(), &policy, now).await?;
        {
            let mut shared = self.write();
            shared.policy = Arc::new(policy);
            shared.index = index;
        }
        self.revoke_unsupported(now).await?;
        Ok(())
    }

    /// Whether a job (number, audience number) that `matches` is applied but not yet
    /// published here.
    fn is_publishing(&self, matches: impl Fn(u64, u32) -> bool) -> bool {
        self.publishing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .any(|(&job, &audience)| matches(job, audience))
    }

    /// Ends every membership the current index does not support.
    async fn revoke_unsupported(&self, now: Timestamp) -> Result<(), StoreError> {
        let ended = self.read().unsupported();
        self.revoke(ended, now).await
    }
}

fn as_new_contact(contact: &tailor_store::StoredContact) -> NewContact {
    NewContact {
        kind: contact.kind,
        context: contact.context,
        verified: contact.verified,
        notice_version: contact.notice_version.clone(),
        digests: contact.digests,
    }
}

/// The contact points of an account eligible for matching at `at`.
pub fn eligible(policy: &Policy, state: &AccountState, at: Timestamp) -> Vec<MarketingEligible> {
    let facts = AccountFacts {
        no: state.no,
        region: &state.region,
        consents: &state.consents,
    };
    state
        .contacts
        .iter()
        .filter_map(|contact| {
            let contact_facts = ContactFacts {
                context: contact.context,
                verified: contact.verified,
                removed: false,
            };
            policy
                .marketing(INDEXED_PURPOSE, &facts, &contact_facts, contact.digests, at)
                .ok()
        })
        .collect()
}

/// Brings an account's index entries from `before` to `after`; returns the digests eligible
/// after.
fn update_account(
    index: &mut EligibleIndex,
    policy: &Policy,
    before: Option<&AccountState>,
    after: Option<&AccountState>,
    at: Timestamp,
) -> HashSet<KeyedDigest> {
    let new = after.map(|a| eligible(policy, a, at)).unwrap_or_default();
    let new_digests: HashSet<KeyedDigest> = new.iter().flat_map(|e| e.digests().iter()).collect();
    if let Some(before) = before {
        let old: HashSet<KeyedDigest> = before
            .contacts
            .iter()
            .flat_map(|c| c.digests.iter())
            .collect();
        for digest in old.difference(&new_digests) {
            index.remove(before.no, digest);
        }
    }
    for eligible in &new {
        index.insert(eligible);
    }
    new_digests
}

/// The policy last put in force on this store (by a server's start or a policy change),
/// `None` if none was recorded.
pub async fn policy_in_force(store: &dyn Store) -> Result<Option<Policy>, EngineError> {
    let Some(text) = store.meta(tailor_store::replication::POLICY_META).await? else {
        return Ok(None);
    };
    let text = String::from_utf8(text)
        .map_err(|_| StoreError::Corrupt("the stored policy is not UTF-8".into()))?;
    Policy::parse(&text)
        .map(Some)
        .map_err(|_| StoreError::Corrupt("the stored policy does not parse".into()).into())
}

/// Builds the serving map from the store's audiences and live memberships.
async fn build_serving(store: &dyn Store, now: Timestamp) -> Result<serving::Serving, EngineError> {
    let mut serving = serving::Serving::default();
    for audience in store.all_audiences(now).await? {
        serving.add_audience(&audience);
    }
    let mut batches = store.scan_memberships(4096);
    while let Some(batch) = batches.recv().await {
        for membership in batch? {
            serving.grant(&membership);
        }
    }
    for (account, id) in store.account_ids(&serving.unnamed()).await? {
        serving.name(account, &id);
    }
    Ok(serving)
}

/// Runs [`Engine::sweep`] once a minute while the engine lives.
async fn sweeper(inner: std::sync::Weak<Inner>) {
    let period = std::time::Duration::from_secs(60);
    // The first sweep waits a period too: the start already ended what expired while stopped.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        // A failure is retried at the next tick; serving answers skip expired memberships.
        let _ = inner.sweep().await;
    }
}

/// Builds the index from every account in the store.
pub async fn build_index(
    store: &dyn Store,
    policy: &Policy,
    at: Timestamp,
) -> Result<EligibleIndex, EngineError> {
    let counts = store.counts().await?;
    let mut index =
        EligibleIndex::with_capacity(usize::try_from(counts.live_contact_points).unwrap_or(0));
    let mut batches = store.scan_accounts(4096);
    while let Some(batch) = batches.recv().await {
        for state in batch? {
            for eligible in eligible(policy, &state, at) {
                index.insert(&eligible);
            }
        }
    }
    Ok(index)
}

/// Reads one line (up to and without its `\n`) into `line`, keeping at most `max` bytes of it;
/// returns the bytes consumed and whether the line fit.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<(usize, bool)> {
    let mut consumed = 0;
    let mut fits = true;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok((consumed, fits));
        }
        let (chunk, done) = match memchr_newline(available) {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let take = chunk.len();
        let content = match chunk.strip_suffix(b"\n") {
            Some(content) => content.strip_suffix(b"\r").unwrap_or(content),
            None => chunk,
        };
        if fits && line.len() + content.len() <= max {
            line.extend_from_slice(content);
        } else {
            fits = false;
        }
        reader.consume(take);
        consumed += take;
        if done {
            return Ok((consumed, fits));
        }
    }
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

/// The consent standing of an account for every purpose of the policy.
pub(crate) fn standings(
    policy: &Policy,
    state: &AccountState,
    at: Timestamp,
) -> BTreeMap<Purpose, Standing> {
    policy
        .purposes()
        .map(|(purpose, _)| (purpose, standing(&state.consents, purpose, at)))
        .collect()
}

/// How a basis is named in reports.
pub(crate) fn basis_name(basis: Basis) -> &'static str {
    match basis {
        Basis::Consent { .. } => "consent",
        Basis::OptOutRegime => "opt_out_regime",
        Basis::NotRequired => "not_required",
    }
}

/// The write lock on the shared state, reporting holds long enough to delay serving answers.
struct TimedWrite<'a> {
    guard: std::sync::RwLockWriteGuard<'a, Shared>,
    asked: std::time::Instant,
    held: std::time::Instant,
    at: &'static std::panic::Location<'static>,
}

impl std::ops::Deref for TimedWrite<'_> {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.guard
    }
}

impl std::ops::DerefMut for TimedWrite<'_> {
    fn deref_mut(&mut self) -> &mut Shared {
        &mut self.guard
    }
}

impl Drop for TimedWrite<'_> {
    fn drop(&mut self) {
        let held = self.held.elapsed();
        let waited = self.held.duration_since(self.asked);
        if held.as_millis() >= 50 || waited.as_millis() >= 50 {
            tracing::warn!(
                held_ms = held.as_millis() as u64,
                waited_ms = waited.as_millis() as u64,
                at = %self.at,
                "serving state locked long"
            );
        }
    }
}
