//! What several processes sharing one database need from it: a feed of what each committed
//! write changed, and jobs claimed by exactly one process at a time.
//!
//! Every `tailor serve` replica keeps the eligible index and the serving map in memory. A
//! write through one replica updates its own memory before it returns; the others learn of it
//! from the change feed: each write transaction appends, in the same transaction, one
//! [`Change`] per thing it changed, numbered by a gapless sequence in commit order (writes are
//! applied one at a time). A replica reloads what each change names from the store, in order,
//! and records the last number it applied; a read that must see every write acknowledged
//! before it began first reads the feed's head and waits until it has applied that far.
//!
//! The feed names only numbers (accounts, audiences): never an identifier, a digest or an
//! account id. A backend that only one process can open (SQLite holds a lock file) needs none
//! of this and offers none: [`crate::Store::replication`] is `None`.

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use tailor_core::{AccountNo, KeyedDigest};
use tokio::sync::watch;

use crate::{Audience, Membership, StoreError};

/// What a write changed, as other replicas must reload it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Changed {
    /// An account's facts (contact points, consents, its erasure) or its memberships.
    Account(AccountNo),
    /// An audience's own row (created, its release decision) but not its members.
    Audience(u32),
    /// An audience's members (a job applied, the audience deleted, memberships ended).
    Members(u32),
    /// The policy in force (its text is in the store's meta under [`POLICY_META`]).
    Policy,
}

/// The meta entry holding the text of the policy in force (written by every backend), for
/// replicas and operator commands to load.
pub const POLICY_META: &str = "policy_text";

/// One entry of the change feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    /// Its place in the feed: 1, 2, 3, … in commit order, without gaps.
    pub seq: u64,
    /// The process whose write it was ([`Replication::origin`]).
    pub origin: u64,
    pub what: Changed,
}

/// The change feed and job claims of a store that several processes share.
#[async_trait]
pub trait Replication: Send + Sync {
    /// This process's id in the feed and in job claims (unique per opened store).
    fn origin(&self) -> u64;

    /// The number of the last change committed by another process (0 for none): how far this
    /// process must have applied the feed to have seen every write acknowledged so far. Its own
    /// changes are left out: it applied them as it wrote them, and a read must never wait for
    /// them (they may sit behind a long job of its own holding its writer lock).
    async fn head(&self) -> Result<u64, StoreError>;

    /// The changes numbered after `after`, in order, at most `limit`. Old changes are pruned
    /// ([`Replication::prune_changes`]): a reader that finds the first one past `after + 1`
    /// has missed some and must reload everything.
    async fn changes_since(&self, after: u64, limit: usize) -> Result<Vec<Change>, StoreError>;

    /// A receiver told the number of each change committed by any process, as soon as it is
    /// announced (best effort: a lost notification is caught by reading [`Replication::head`]).
    fn subscribe(&self) -> watch::Receiver<u64>;

    /// Every keyed digest these accounts have ever had a contact point under, removed ones
    /// included (what an index built from any of their past states can hold for them).
    async fn digests_ever(
        &self,
        accounts: &[AccountNo],
    ) -> Result<Vec<(AccountNo, KeyedDigest)>, StoreError>;

    /// The live memberships of these accounts.
    async fn memberships_of_accounts(
        &self,
        accounts: &[AccountNo],
    ) -> Result<Vec<Membership>, StoreError>;

    /// An audience by number with its live memberships; `None` once deleted.
    async fn audience_with_members(
        &self,
        audience_no: u32,
        now: Timestamp,
    ) -> Result<Option<(Audience, Vec<Membership>)>, StoreError>;

    /// An audience by number (without its members); `None` once deleted.
    async fn audience_by_no(
        &self,
        audience_no: u32,
        now: Timestamp,
    ) -> Result<Option<Audience>, StoreError>;

    /// Claims an unfinished job for this process until `now + lease`: `true` if it was
    /// unclaimed, already this process's, or its claim had lapsed, and no earlier job of its
    /// audience is unfinished (an audience's jobs apply in order); `false` otherwise: another
    /// process holds it, it is finished, or it must wait for an earlier one.
    async fn claim_job(
        &self,
        job_no: u64,
        now: Timestamp,
        lease: SignedDuration,
    ) -> Result<bool, StoreError>;

    /// Claims one unfinished job that no live process holds (unclaimed, or its claim lapsed:
    /// its process died) and whose audience has no earlier unfinished job. Concurrent callers
    /// never get the same job.
    async fn claim_orphan(
        &self,
        now: Timestamp,
        lease: SignedDuration,
    ) -> Result<Option<u64>, StoreError>;

    /// Extends every claim this process holds to `now + lease`.
    async fn renew_claims(&self, now: Timestamp, lease: SignedDuration) -> Result<(), StoreError>;

    /// Deletes the changes recorded more than `age` ago by the wall clock (never the
    /// newest, so that the head stays readable); returns how many.
    async fn prune_changes(&self, age: SignedDuration) -> Result<u64, StoreError>;
}
