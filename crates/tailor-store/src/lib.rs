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
use tailor_core::{
    AccountNo, AccountRegion, ConsentEvent, ConsentSource, ConsentState, ContactDigests,
    ContactKind, Context, Purpose,
};

pub mod conformance;
mod error;
mod sqlite;

pub use error::StoreError;
pub use sqlite::SqliteStore;

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

    /// Every account's current state, in account-number order, in batches of at most `batch`
    /// (0 counts as 1), sent on the returned bounded channel by a task of the backend's own
    /// (for rebuilding the index at start). The scan reads one consistent snapshot. A failure
    /// is sent as the last item; the channel closes after the last batch. Dropping the
    /// receiver stops the scan.
    fn scan_accounts(
        &self,
        batch: usize,
    ) -> tokio::sync::mpsc::Receiver<Result<Vec<AccountState>, StoreError>>;

    /// Counts of stored rows, for health and reports.
    async fn counts(&self) -> Result<StoreCounts, StoreError>;

    /// A small value under a name (secrets' hashes, settings); `None` if unset.
    async fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Sets a small value.
    async fn set_meta(&self, name: &str, value: &[u8]) -> Result<(), StoreError>;
}

/// Row counts: accounts, live contact points (not those kept as history), consent events,
/// and erasures ever made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreCounts {
    pub accounts: u64,
    pub live_contact_points: u64,
    pub consent_events: u64,
    pub erasures: u64,
}
