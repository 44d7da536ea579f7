//! Tailor's storage: the [`Store`] trait every backend implements, the types that cross it,
//! a conformance suite ([`conformance`]) that every backend passes, and the embedded SQLite
//! backend ([`SqliteStore`]).
//!
//! What is stored never includes a raw contact value or an unkeyed hash of one: contact points
//! cross this boundary as [`ContactDigests`] (HMAC-SHA-256 under the platform key). The trait
//! is async and takes `&self`: a backend may serve many writers at once (PostgreSQL) or
//! serialize them internally (SQLite); callers must not assume either.
//!
//! Large tables are keyed so that they can later be distributed by account or by digest:
//! every row of contact points and consent history carries its account number.

use async_trait::async_trait;
use jiff::Timestamp;
use tailor_core::release::{Epsilon, QueryDigest, ReleaseConfig};
use tailor_core::{
    AccountNo, AccountRegion, ConsentEvent, ConsentSource, ConsentState, ContactDigests,
    ContactKind, Context, KeyedDigest, PolicyVersion, Purpose,
};

pub mod audience;
pub mod conformance;
pub mod contacts;
mod error;
pub mod log;
pub mod packing;
pub mod replication;
mod sqlite;

pub use audience::{
    Advertiser, ApiKeyRecord, Applied, Audience, Charged, Grant, Job, JobCounts, JobOp, JobState,
    Membership, MembershipChange, MembershipEvent, NewAdvertiser, NewAudience, NewJob, NewRelease,
    Release, RevokeReason, ScannedEvent, SessionPart, StagedPart, UploadSession,
};
pub use error::StoreError;
pub use sqlite::SqliteStore;

/// A time as every backend stores it and reads it back: cut to the microsecond.
pub fn to_stored_precision(at: Timestamp) -> Timestamp {
    Timestamp::from_microsecond(at.as_microsecond()).unwrap_or(at)
}

/// A contact point to store for an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewContact {
    pub kind: ContactKind,
    pub context: Context,
    pub verified: bool,
    pub notice_version: Option<String>,
    pub digests: ContactDigests,
}

/// A consent event to append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewConsent {
    pub purpose: Purpose,
    pub state: ConsentState,
    pub source: ConsentSource,
    pub at: Timestamp,
    pub notice_version: Option<String>,
}

/// An account write: create or update the account, replace its contact points with
/// `contacts`, append `consents` to its history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountWrite {
    /// The platform's opaque account id.
    pub account_id: String,
    pub region: AccountRegion,
    pub contacts: Vec<NewContact>,
    pub consents: Vec<NewConsent>,
}

/// A contact point as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredContact {
    /// Its number within the account, stable for its lifetime.
    pub contact_no: u32,
    pub kind: ContactKind,
    pub context: Context,
    pub verified: bool,
    pub notice_version: Option<String>,
    pub digests: ContactDigests,
    pub added_at: Timestamp,
}

/// An account's current state: its live contact points and its whole consent history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountState {
    pub no: AccountNo,
    pub account_id: String,
    pub region: AccountRegion,
    /// Live contact points (removed ones are kept in history, not here), by `contact_no`.
    pub contacts: Vec<StoredContact>,
    /// Every consent event, in recording order (`seq` ascending).
    pub consents: Vec<ConsentEvent>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The result of one account write: the state before (if the account existed) and after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountChange {
    pub before: Option<AccountState>,
    pub after: AccountState,
}

/// What an erasure removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Erasure {
    /// The state that was erased (for the caller to update its index).
    pub erased: AccountState,
    /// Contact point rows deleted: the live ones and those kept as history.
    pub contact_points: u64,
    /// Consent events deleted.
    pub consent_events: u64,
    /// Live memberships ended (their history rows are deleted with the account).
    pub memberships: u64,
}

/// Storage for Tailor. Every method is atomic: it commits entirely or not at all, and a
/// method that returned `Ok` is durable.
///
/// Times are kept to the microsecond: a sub-microsecond part is cut off, and every returned
/// state already shows the times as they read back. Account numbers are never reused, not
/// even after an erasure.
///
/// A write whose future is dropped before it completes may still commit (the work runs on a
/// thread of its own); a caller that must act on every committed write should run writes in
/// a task that is not cancelled.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies account writes in order, all in one atomic unit (the call commits entirely or
    /// not at all), and returns one change per write, in order; `now` stamps them. A later
    /// write of the same account in one call sees the earlier one.
    ///
    /// Contact points of an existing account that are not in the write are marked removed
    /// at `now` (kept in history); contact points in both are kept with their `contact_no`
    /// and `added_at` (their `verified` flag, notice version and other digest are updated).
    /// New ones get the next numbers of the account, in the order listed; a number is never
    /// reused, even by a contact point removed and added again. A contact point is identified
    /// by its kind, context and primary digest; one listed twice is kept once, as its last
    /// listing says.
    ///
    /// A backend may serialize writes (SQLite does): a call of some thousands of accounts
    /// amortizes the commit, while much larger calls hold up other writes, such as a consent
    /// withdrawal, for as long as they take.
    async fn write_accounts(
        &self,
        writes: Vec<AccountWrite>,
        now: Timestamp,
    ) -> Result<Vec<AccountChange>, StoreError>;

    /// Appends one consent event; `None` if the account does not exist.
    async fn append_consent(
        &self,
        account_id: &str,
        consent: NewConsent,
        now: Timestamp,
    ) -> Result<Option<AccountChange>, StoreError>;

    /// Erases an account: its contact points (live and historical) and its consent history
    /// are deleted; only counts remain. `None` if the account does not exist.
    async fn erase_account(
        &self,
        account_id: &str,
        now: Timestamp,
    ) -> Result<Option<Erasure>, StoreError>;

    /// One account's current state.
    async fn account(&self, account_id: &str) -> Result<Option<AccountState>, StoreError>;

    /// The number of an account, from its id (the serving path's one store read).
    async fn account_no(&self, account_id: &str) -> Result<Option<AccountNo>, StoreError>;

    /// The ids of the given accounts (those that exist), in account-number order.
    async fn account_ids(
        &self,
        accounts: &[AccountNo],
    ) -> Result<Vec<(AccountNo, String)>, StoreError>;

    /// The current states of the given accounts (those that exist), in account-number order.
    async fn accounts_by_no(&self, accounts: &[AccountNo])
    -> Result<Vec<AccountState>, StoreError>;

    /// Every account's current state, in account-number order, in batches of at most `batch`
    /// (0 counts as 1), sent on the returned bounded channel by a task of the backend's own
    /// (for rebuilding the index at start). The scan reads one consistent snapshot. A failure
    /// is sent as the last item; the channel closes after the last batch. Dropping the
    /// receiver stops the scan.
    fn scan_accounts(
        &self,
        batch: usize,
    ) -> tokio::sync::mpsc::Receiver<Result<Vec<AccountState>, StoreError>>;

    // Advertisers and their keys.

    /// Creates an advertiser with its first API key.
    async fn create_advertiser(
        &self,
        new: NewAdvertiser,
        now: Timestamp,
    ) -> Result<Advertiser, StoreError>;

    async fn advertiser(&self, advertiser_id: &str) -> Result<Option<Advertiser>, StoreError>;

    /// The advertiser owning an unrevoked key with this SHA-256.
    async fn advertiser_by_key(
        &self,
        key_sha256: &[u8; 32],
    ) -> Result<Option<Advertiser>, StoreError>;

    /// Adds a key (rotation: add, then revoke the old one).
    async fn add_api_key(
        &self,
        advertiser_no: u32,
        key_id: &str,
        key_sha256: [u8; 32],
        now: Timestamp,
    ) -> Result<ApiKeyRecord, StoreError>;

    /// Revokes a key of this advertiser; `None` if it has no such key.
    async fn revoke_api_key(
        &self,
        advertiser_no: u32,
        key_id: &str,
        now: Timestamp,
    ) -> Result<Option<ApiKeyRecord>, StoreError>;

    async fn api_keys(&self, advertiser_no: u32) -> Result<Vec<ApiKeyRecord>, StoreError>;

    // Audiences. Every lookup is scoped to its advertiser: another advertiser's id is `None`.

    async fn create_audience(
        &self,
        new: NewAudience,
        now: Timestamp,
    ) -> Result<Audience, StoreError>;

    /// The advertiser's audiences, with members counted unexpired at `now`.
    async fn audiences(
        &self,
        advertiser_no: u32,
        now: Timestamp,
    ) -> Result<Vec<Audience>, StoreError>;

    async fn audience(
        &self,
        advertiser_no: u32,
        audience_id: &str,
        now: Timestamp,
    ) -> Result<Option<Audience>, StoreError>;

    /// Every audience of every advertiser, with members counted at `now` (for the serving
    /// map at start).
    async fn all_audiences(&self, now: Timestamp) -> Result<Vec<Audience>, StoreError>;

    /// Deletes an audience: its memberships end (history: `audience_deleted`), its queued jobs
    /// fail, its sessions go. `None` if the advertiser has no such audience.
    async fn delete_audience(
        &self,
        advertiser_no: u32,
        audience_id: &str,
        now: Timestamp,
    ) -> Result<Option<Applied>, StoreError>;

    // Upload sessions and jobs. A direct upload is a session of one part committed at once.

    async fn create_session(
        &self,
        session_id: &str,
        advertiser_no: u32,
        audience_no: u32,
        op: JobOp,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<UploadSession, StoreError>;

    async fn session(
        &self,
        advertiser_no: u32,
        session_id: &str,
    ) -> Result<Option<UploadSession>, StoreError>;

    /// Stages a part (replacing an earlier part of the same number). A
    /// [`StoreError::Conflict`] if the session is committed or gone.
    async fn put_session_part(
        &self,
        session_no: u64,
        part: SessionPart,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// The staged parts' counters and key sets (without their matches), by part number.
    async fn session_parts(&self, session_no: u64) -> Result<Vec<StagedPart>, StoreError>;

    /// Creates the session's job (queued) and links it; the parts stay staged until the job
    /// is applied. Fails with [`StoreError::Conflict`] if the session is already committed,
    /// is gone, or does not match the job (advertiser, audience, operation).
    async fn commit_session(
        &self,
        session_no: u64,
        job: NewJob,
        now: Timestamp,
    ) -> Result<Job, StoreError>;

    /// Deletes sessions past `expires_at` that were never committed, with their parts.
    async fn expire_sessions(&self, now: Timestamp) -> Result<u64, StoreError>;

    async fn job(&self, advertiser_no: u32, job_id: &str) -> Result<Option<Job>, StoreError>;

    /// A job by its number, whoever owns it (for the job worker).
    async fn job_by_no(&self, job_no: u64) -> Result<Option<Job>, StoreError>;

    /// Queued and running jobs, oldest first (to resume at start).
    async fn unfinished_jobs(&self) -> Result<Vec<Job>, StoreError>;

    async fn set_job_running(&self, job_no: u64, now: Timestamp) -> Result<(), StoreError>;

    /// Every (account, contact digest) its session's parts matched, deduplicated.
    async fn staged_matches(
        &self,
        job_no: u64,
    ) -> Result<Vec<(AccountNo, KeyedDigest)>, StoreError>;

    /// Applies a job in one transaction, by the job's operation: `add` grants `grants`
    /// (renewing current members' basis and expiry), `remove` ends the memberships of
    /// `removals`, `replace` grants `grants` and ends every other membership of the audience.
    /// Expiry is `now` plus the audience's time to live. Every grant and revocation is written
    /// to the membership history; the job becomes `succeeded` and its staged parts are
    /// deleted, in the same transaction.
    ///
    /// Several grants for one account count once (the first listed); `granted` and `revoked`
    /// are sorted by account. A [`StoreError::Conflict`] if the job is finished or gone, its
    /// audience is deleted, or the lists do not fit its operation (removals for `add` or
    /// `replace`, grants for `remove`). The audience's canonical query becomes `query`.
    async fn apply_job(
        &self,
        job_no: u64,
        grants: Vec<Grant>,
        removals: Vec<AccountNo>,
        query: QueryDigest,
        now: Timestamp,
    ) -> Result<Applied, StoreError>;

    // Releases.

    /// Records a release against its legal entity's budget, checked and charged in one
    /// transaction: the same (audience, query, epoch) already released gives that release
    /// for free; otherwise the entity's releases within `config`'s period before the
    /// release's time must leave room for its ε (see [`tailor_core::release::budget_admits`]).
    async fn charge_release(
        &self,
        release: NewRelease,
        config: &ReleaseConfig,
    ) -> Result<Charged, StoreError>;

    /// The ε an entity was charged, by time, for releases after `since`.
    async fn entity_charges(
        &self,
        entity: &str,
        since: Timestamp,
    ) -> Result<Vec<(Timestamp, Epsilon)>, StoreError>;

    /// Marks a job failed with a fixed message; its staged parts are deleted.
    async fn fail_job(
        &self,
        job_no: u64,
        message: &'static str,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    // Memberships.

    /// An account's live memberships, by audience: those not yet ended, so that one past
    /// its expiry is listed until [`Store::expire_memberships`] ends it (compare
    /// `expires_at` with the time).
    async fn memberships_of(&self, account: AccountNo) -> Result<Vec<Membership>, StoreError>;

    /// Ends memberships, writing the history. Returns how many existed.
    async fn revoke(
        &self,
        memberships: Vec<(u32, AccountNo)>,
        reason: RevokeReason,
        now: Timestamp,
    ) -> Result<u64, StoreError>;

    /// Ends every membership whose expiry is at or before `now` (history: `expired`).
    async fn expire_memberships(&self, now: Timestamp)
    -> Result<Vec<(u32, AccountNo)>, StoreError>;

    /// An audience's live members at `now`, sorted (for checks and tests).
    async fn audience_members(
        &self,
        audience_no: u32,
        now: Timestamp,
    ) -> Result<Vec<AccountNo>, StoreError>;

    /// Every live membership, in batches of at most `batch` (0 counts as 1), by audience and
    /// account, from one snapshot (for building the serving map at start). As with
    /// [`Store::memberships_of`], memberships past their expiry are included until ended.
    fn scan_memberships(
        &self,
        batch: usize,
    ) -> tokio::sync::mpsc::Receiver<Result<Vec<Membership>, StoreError>>;

    /// The membership history, oldest first: every row, or those of one audience, of one
    /// account, or of both.
    async fn membership_history(
        &self,
        audience_no: Option<u32>,
        account: Option<AccountNo>,
    ) -> Result<Vec<MembershipEvent>, StoreError>;

    /// What an incident analysis replays: every grant recorded from `from` to `to` (both
    /// included) and every end recorded from `from` on (the ends those grants can have), in
    /// recording order, in batches of at most `batch` (0 counts as 1), from one snapshot, sent
    /// by a task of the backend's own as [`Store::scan_accounts`] sends accounts.
    fn scan_history(
        &self,
        from: Timestamp,
        to: Timestamp,
        batch: usize,
    ) -> tokio::sync::mpsc::Receiver<Result<Vec<ScannedEvent>, StoreError>>;

    /// Deletes the membership history recorded before `before`, except the grant each live
    /// membership rests on; logs how many rows went. Returns that count.
    async fn prune_history(&self, before: Timestamp, now: Timestamp) -> Result<u64, StoreError>;

    // Corrections.

    /// Corrects the context a contact point of an account was collected in, from
    /// `effective_since` on: the live contact point whose digests include `digest` takes
    /// `context`, the correction is kept (for replaying past grants) and logged. `None` if
    /// there is no such account; `Some(Err(()))`-like refusals are [`CorrectionRefused`].
    async fn correct_contact(
        &self,
        correction: NewCorrection,
        now: Timestamp,
    ) -> Result<Result<AccountChange, CorrectionRefused>, StoreError>;

    /// Every correction ever made, oldest first.
    async fn corrections(&self) -> Result<Vec<Correction>, StoreError>;

    /// The log commitments of accounts that still have a key (erased ones have none), by
    /// account number.
    async fn commitments(
        &self,
        accounts: &[AccountNo],
    ) -> Result<Vec<(AccountNo, log::Commitment)>, StoreError>;

    // The accountability log. Entries are appended by the writes themselves, in their own
    // transactions (see [`log`]).

    /// How many entries the log holds.
    async fn log_size(&self) -> Result<u64, StoreError>;

    /// Entries `start..end` of the log (clipped to its size), in order.
    async fn log_entries(&self, start: u64, end: u64) -> Result<Vec<log::StoredEntry>, StoreError>;

    /// Appends one entry the engine decided on (an incident's remediation), in a transaction
    /// of its own.
    async fn log_event(&self, event: log::LogEvent, now: Timestamp) -> Result<(), StoreError>;

    /// Records that a policy took effect (an entry, unless it is already the last one logged).
    async fn log_policy(&self, version: PolicyVersion, now: Timestamp) -> Result<(), StoreError>;

    /// Stores a signed checkpoint; one per size (the same note again is accepted, another is
    /// a [`StoreError::Conflict`]).
    async fn add_checkpoint(&self, checkpoint: log::StoredCheckpoint) -> Result<(), StoreError>;

    /// Every stored checkpoint, by size.
    async fn checkpoints(&self) -> Result<Vec<log::StoredCheckpoint>, StoreError>;

    /// Counts of stored rows, for health and reports.
    async fn counts(&self) -> Result<StoreCounts, StoreError>;

    /// A small value under a name (secrets' hashes, settings); `None` if unset.
    async fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Sets a small value.
    async fn set_meta(&self, name: &str, value: &[u8]) -> Result<(), StoreError>;

    /// The advertisers with these numbers (those that exist; duplicates once), by number
    /// (to name the advertisers of memberships, whose history holds numbers).
    async fn advertisers_by_no(&self, nos: &[u32]) -> Result<Vec<Advertiser>, StoreError>;

    /// The change feed and job claims, for a backend that several processes can share
    /// (see [`replication`]); `None` for one that only one process can open.
    fn replication(&self) -> Option<&dyn replication::Replication> {
        None
    }
}

/// A correction of the context a contact point was collected in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCorrection {
    pub account_id: String,
    pub kind: ContactKind,
    /// A keyed digest of the contact point (either form).
    pub digest: KeyedDigest,
    pub context: Context,
    pub effective_since: Timestamp,
}

/// Why a correction was not made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CorrectionRefused {
    /// No such account.
    NoAccount,
    /// The account has no live contact point of that kind and value.
    NoContact,
}

/// A correction as kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Correction {
    pub account: AccountNo,
    pub kind: ContactKind,
    /// The contact point's digests, so that grants through either form find it even once the
    /// contact point is removed.
    pub digests: ContactDigests,
    pub from: Context,
    pub to: Context,
    pub effective_since: Timestamp,
    pub at: Timestamp,
}

/// Row counts: accounts, live contact points (not those kept as history), consent events,
/// erasures ever made, advertisers, audiences, and memberships not yet ended (those past
/// their expiry count until [`Store::expire_memberships`] ends them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreCounts {
    pub accounts: u64,
    pub live_contact_points: u64,
    pub consent_events: u64,
    pub erasures: u64,
    pub advertisers: u64,
    pub audiences: u64,
    pub memberships: u64,
}
