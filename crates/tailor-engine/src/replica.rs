//! Several engines on one database: following the other processes' writes, and claiming jobs.
//!
//! Only a store with [`Replication`] (PostgreSQL) has any of this; over SQLite, which one
//! process holds, every function here returns at once.
//!
//! - **Following.** A task applies the change feed in order, under the writer lock: each
//!   account it names is reloaded (its index entries, its memberships and id in the serving
//!   map), each audience's row or members are reloaded, and a new policy is installed. The
//!   engine's own changes are skipped (they were applied when written). `applied` is the last
//!   change number applied. The task wakes on each announcement (`LISTEN/NOTIFY`), when a
//!   reader asks, and every second.
//! - **Reads that see every acknowledged write.** [`Inner::catch_up`] reads the feed's head,
//!   the last change another process committed (one read serves every caller that arrived
//!   before it started; this process's own changes never make it wait), and waits until the
//!   follower has applied that far, at most [`CATCH_UP_BOUND`]. A serving answer and a job's
//!   re-check of its matches do this first: a consent withdrawn through any process before
//!   the answer was asked for is in it.
//! - **Jobs.** A job is run by the process that claims it ([`Replication::claim_job`]); the
//!   claim is renewed every third of a lease while the process lives, and a claim that lapsed
//!   (its process died) is taken over by another ([`Replication::claim_orphan`]), which runs
//!   the job from its staged matches. An audience's jobs run in the order they were made: a
//!   job waits until the earlier ones of its audience are finished, and the process that
//!   finishes a job claims whatever may run next. Applying a job is one transaction, so a process killed
//!   mid-job leaves nothing half-applied.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tailor_core::{AccountNo, KeyedDigest};
use tailor_store::StoreError;
use tailor_store::replication::{Changed, Replication};

use crate::{EngineError, Inner, build_index, build_serving, eligible};

/// Changes read from the feed at once.
const FOLLOW_BATCH: usize = 10_000;
/// Accounts reloaded per round of store reads.
const ACCOUNT_CHUNK: usize = 4096;
/// How long a read waits for this process to apply what other processes wrote before it
/// began; past it the read fails (503) rather than answer from a state it cannot vouch for.
pub(crate) const CATCH_UP_BOUND: Duration = Duration::from_secs(10);
/// How often the follower looks at the feed without being told.
const POLL: Duration = Duration::from_secs(1);
/// How long the feed keeps a change: a process behind by more reloads everything.
const FEED_RETENTION: SignedDuration = SignedDuration::from_hours(24);

/// Reads of the feed's head shared by the callers waiting for one.
#[derive(Debug, Default)]
pub(crate) struct Heads {
    /// Callers so far, numbered from 1.
    arrived: AtomicU64,
    /// (the last caller a completed read covers, the head it read).
    last: tokio::sync::Mutex<(u64, u64)>,
}

impl Heads {
    /// The feed's head as read by a read that started after this call did.
    async fn head(&self, feed: &dyn Replication) -> Result<u64, StoreError> {
        let ticket = self.arrived.fetch_add(1, Ordering::SeqCst) + 1;
        let mut last = self.last.lock().await;
        if last.0 >= ticket {
            return Ok(last.1);
        }
        // Every caller counted so far arrived before this read starts.
        let covered = self.arrived.load(Ordering::SeqCst);
        let head = feed.head().await?;
        *last = (covered, head);
        Ok(head)
    }
}

/// The engine's view of the feed: how far it has applied it, and how to wake the follower.
#[derive(Debug)]
pub(crate) struct Follow {
    pub(crate) applied: tokio::sync::watch::Sender<u64>,
    pub(crate) heads: Heads,
    pub(crate) wake: Arc<tokio::sync::Notify>,
}

impl Follow {
    pub(crate) fn at(head: u64) -> Self {
        Self {
            applied: tokio::sync::watch::Sender::new(head),
            heads: Heads::default(),
            wake: Arc::new(tokio::sync::Notify::new()),
        }
    }
}

/// Proof that the caller holds the engine's writer lock.
pub(crate) type Writing<'a> = tokio::sync::MutexGuard<'a, ()>;

impl Inner {
    /// Waits until every change committed before this call is applied here (nothing to do
    /// without a feed).
    pub(crate) async fn catch_up(&self) -> Result<(), EngineError> {
        let Some(feed) = self.store.replication() else {
            return Ok(());
        };
        let head = self.follow.heads.head(feed).await?;
        let mut applied = self.follow.applied.subscribe();
        if *applied.borrow() >= head {
            return Ok(());
        }
        self.follow.wake.notify_one();
        match tokio::time::timeout(CATCH_UP_BOUND, applied.wait_for(|&a| a >= head)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(EngineError::Worker),
            Err(_) => Err(EngineError::Behind),
        }
    }

    /// Applies every change in the feed not applied yet, in order.
    pub(crate) async fn follow_locked(&self, _writing: &Writing<'_>) -> Result<(), EngineError> {
        let Some(feed) = self.store.replication() else {
            return Ok(());
        };
        loop {
            let from = *self.follow.applied.borrow();
            let changes = feed.changes_since(from, FOLLOW_BATCH).await?;
            let (Some(first), Some(last)) = (changes.first(), changes.last()) else {
                return Ok(());
            };
            if first.seq != from + 1 {
                tracing::warn!(
                    applied = from,
                    first = first.seq,
                    "changes were pruned before this process applied them; reloading everything"
                );
                self.reload_everything(feed).await?;
                continue;
            }
            let last = last.seq;
            let mut accounts = BTreeSet::new();
            let mut audiences = BTreeSet::new();
            let mut members = BTreeSet::new();
            let mut policy = false;
            for change in changes.iter().filter(|c| c.origin != feed.origin()) {
                match change.what {
                    Changed::Account(no) => {
                        accounts.insert(no);
                    }
                    Changed::Audience(no) => {
                        audiences.insert(no);
                    }
                    Changed::Members(no) => {
                        members.insert(no);
                    }
                    Changed::Policy => policy = true,
                }
            }
            if policy {
                self.reload_policy().await?;
            }
            let accounts: Vec<AccountNo> = accounts.into_iter().collect();
            for chunk in accounts.chunks(ACCOUNT_CHUNK) {
                self.reload_accounts(feed, chunk).await?;
            }
            for &audience in audiences.difference(&members) {
                self.reload_audience(feed, audience).await?;
            }
            for &audience in &members {
                self.reload_members(feed, audience).await?;
            }
            self.follow.applied.send_replace(last);
        }
    }

    /// Rebuilds the index and the serving map from the store (after missing changes).
    async fn reload_everything(&self, feed: &dyn Replication) -> Result<(), EngineError> {
        let head = feed.head().await?;
        let now = self.clock.now();
        let policy = Arc::clone(&self.read().policy);
        let index = build_index(self.store.as_ref(), &policy, now).await?;
        let serving = build_serving(self.store.as_ref(), now).await?;
        {
            let mut shared = self.write();
            shared.index = index;
            shared.serving = serving;
        }
        self.follow.applied.send_replace(head);
        Ok(())
    }

    /// Installs the policy another process put in force.
    async fn reload_policy(&self) -> Result<(), EngineError> {
        let Some(policy) = crate::policy_in_force(self.store.as_ref()).await? else {
            return Ok(());
        };
        if policy.version() == self.read().policy.version() {
            return Ok(());
        }
        tracing::info!(
            version = %policy.version(),
            "another process put a new policy in force"
        );
        self.install_policy(policy, self.clock.now()).await
    }

    /// Reloads accounts another process wrote: their index entries, their memberships and
    /// ids; memberships resting on a contact point no longer eligible end here too (a job
    /// applied elsewhere may have granted one just before the change).
    async fn reload_accounts(
        &self,
        feed: &dyn Replication,
        accounts: &[AccountNo],
    ) -> Result<(), EngineError> {
        let states = self.store.accounts_by_no(accounts).await?;
        let ever = feed.digests_ever(accounts).await?;
        let memberships = feed.memberships_of_accounts(accounts).await?;
        let now = self.clock.now();
        let ended = {
            let mut shared = self.write();
            let crate::Shared {
                policy,
                index,
                serving,
            } = &mut *shared;
            let present: HashSet<AccountNo> = states.iter().map(|s| s.no).collect();
            let erased: HashSet<AccountNo> = accounts
                .iter()
                .filter(|a| !present.contains(a))
                .copied()
                .collect();
            index.remove_accounts(&erased);
            for (account, digest) in &ever {
                index.remove(*account, digest);
            }
            for &account in accounts {
                serving.remove_account(account);
            }
            for membership in &memberships {
                serving.grant(membership);
            }
            let mut ended = Vec::new();
            for state in &states {
                let now_eligible = eligible(policy, state, now);
                for e in &now_eligible {
                    index.insert(e);
                }
                let digests: HashSet<KeyedDigest> = now_eligible
                    .iter()
                    .flat_map(|e| e.digests().iter())
                    .collect();
                serving.name(state.no, &state.account_id);
                ended.extend(serving.no_longer_eligible(state.no, &digests));
            }
            ended
        };
        self.revoke(ended, now).await?;
        Ok(())
    }

    /// Reloads an audience's own row (its id, its release decision).
    async fn reload_audience(
        &self,
        feed: &dyn Replication,
        audience_no: u32,
    ) -> Result<(), EngineError> {
        match feed.audience_by_no(audience_no, self.clock.now()).await? {
            Some(audience) => self.write().serving.refresh_audience(&audience),
            None => self.reload_members(feed, audience_no).await?,
        }
        Ok(())
    }

    /// Reloads an audience and its members (a job applied elsewhere, a deletion).
    async fn reload_members(
        &self,
        feed: &dyn Replication,
        audience_no: u32,
    ) -> Result<(), EngineError> {
        let loaded = feed
            .audience_with_members(audience_no, self.clock.now())
            .await?;
        let held = self.read().serving.members_of(audience_no);
        let Some((audience, members)) = loaded else {
            self.write().serving.remove_audience(audience_no);
            self.serving_in_chunks(&held, |serving, &account| {
                serving.drop_memberships(audience_no, account);
            })
            .await;
            return Ok(());
        };
        let kept: HashSet<AccountNo> = members.iter().map(|m| m.account).collect();
        let gone: Vec<AccountNo> = held.into_iter().filter(|a| !kept.contains(a)).collect();
        let unnamed: Vec<AccountNo> = {
            let shared = self.read();
            kept.iter()
                .filter(|&&a| !shared.serving.is_named(a))
                .copied()
                .collect()
        };
        let ids = self.store.account_ids(&unnamed).await?;
        self.write().serving.refresh_audience(&audience);
        self.serving_in_chunks(&members, |serving, membership| serving.grant(membership))
            .await;
        self.serving_in_chunks(&ids, |serving, (account, id)| serving.name(*account, id))
            .await;
        self.serving_in_chunks(&gone, |serving, &account| {
            serving.drop_memberships(audience_no, account);
        })
        .await;
        Ok(())
    }
}

/// Applies the feed while the engine lives: on each announcement, when a reader asks, and
/// every [`POLL`].
pub(crate) async fn follower(inner: Weak<Inner>, wake: Arc<tokio::sync::Notify>) {
    let Some(announced) = inner
        .upgrade()
        .and_then(|inner| inner.store.replication().map(|feed| feed.subscribe()))
    else {
        return;
    };
    // `None` once announcements stop: polling alone still follows.
    let mut announced = Some(announced);
    loop {
        let heard = async {
            match announced.as_mut() {
                Some(receiver) => receiver.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            heard = heard => {
                if !heard {
                    announced = None;
                }
            }
            () = wake.notified() => {}
            () = tokio::time::sleep(POLL) => {}
        }
        let Some(inner) = inner.upgrade() else { return };
        let result = {
            let writing = inner.writer.lock().await;
            inner.follow_locked(&writing).await
        };
        if let Err(error) = result {
            tracing::warn!(%error, "applying the change feed failed; trying again");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Keeps this process's job claims alive, takes over jobs whose process died, and prunes
/// the feed, while the engine lives.
pub(crate) async fn claimer(inner: Weak<Inner>, lease: SignedDuration) {
    let period = Duration::try_from(lease / 3).unwrap_or(Duration::from_secs(1));
    loop {
        tokio::time::sleep(period).await;
        let Some(inner) = inner.upgrade() else { return };
        if let Err(error) = claim_round(&inner, lease).await {
            tracing::warn!(%error, "renewing or taking over job claims failed; trying again");
        }
    }
}

async fn claim_round(inner: &Inner, lease: SignedDuration) -> Result<(), StoreError> {
    let Some(feed) = inner.store.replication() else {
        return Ok(());
    };
    feed.renew_claims(inner.clock.now(), lease).await?;
    take_orphans(inner).await?;
    feed.prune_changes(FEED_RETENTION).await?;
    Ok(())
}

/// Claims the jobs no live process holds that may run now (their process died, or nobody
/// claimed them yet, or they waited for an earlier job of their audience), and queues them
/// here. A bounded number at a time: the rest are taken at the next call.
pub(crate) async fn take_orphans(inner: &Inner) -> Result<(), StoreError> {
    let Some(feed) = inner.store.replication() else {
        return Ok(());
    };
    for _ in 0..64 {
        let Some(job_no) = feed
            .claim_orphan(inner.clock.now(), inner.limits.job_lease())
            .await?
        else {
            break;
        };
        tracing::info!(job_no, "claimed a job no running process holds");
        if inner.jobs.send(job_no).is_err() {
            break;
        }
    }
    Ok(())
}

/// Claims a job before running it: `false` when another process holds it (or it is done).
pub(crate) async fn claim(inner: &Inner, job_no: u64, now: Timestamp) -> Result<bool, StoreError> {
    match inner.store.replication() {
        Some(feed) => feed.claim_job(job_no, now, inner.limits.job_lease()).await,
        None => Ok(true),
    }
}
