//! The advertiser side of the store: advertisers and their API keys, audiences, upload jobs,
//! upload sessions, memberships and the history of grants and revocations.
//!
//! Only what matched is ever stored: a job's rows that reached no eligible account leave
//! nothing but counters. A membership records its basis (the contact point's keyed digest and
//! context, the consent event, the policy version, the job, the time), and every grant and
//! revocation is kept in the membership history.

use jiff::Timestamp;
use tailor_core::release::{Epsilon, KeySetDigest, QueryDigest, ReleasedSize};
use tailor_core::{AccountNo, Context, KeyedDigest, PolicyVersion};

/// A new advertiser with its first API key (only the key's SHA-256 is stored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAdvertiser {
    /// Public id, chosen by the caller (random).
    pub advertiser_id: String,
    pub name: String,
    /// The legal entity privacy budgets are counted against.
    pub entity: String,
    pub key_id: String,
    pub key_sha256: [u8; 32],
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advertiser {
    pub no: u32,
    pub advertiser_id: String,
    pub name: String,
    pub entity: String,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub key_id: String,
    pub advertiser_no: u32,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAudience {
    pub audience_id: String,
    pub advertiser_no: u32,
    pub name: String,
    pub description: String,
    pub membership_ttl_days: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Audience {
    pub no: u32,
    pub audience_id: String,
    pub advertiser_no: u32,
    /// Its advertiser's legal entity (whose budget its sizes are charged to).
    pub entity: String,
    pub name: String,
    pub description: String,
    pub membership_ttl_days: u32,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Live (unexpired) members right now; the only count that feeds the release function.
    pub members: u64,
    /// Jobs queued or running for this audience.
    pub pending_jobs: u32,
    /// Jobs that succeeded for this audience, ever.
    pub succeeded_jobs: u32,
    /// The canonical query that defines it: its jobs' key sets and operations.
    pub query: QueryDigest,
    /// Its data epoch: moved by every change to its memberships (jobs, consent, expiry,
    /// erasure), so that a size released for one `(query, epoch)` is the answer for as long
    /// as both stay.
    pub epoch: u64,
    /// The latest size released for its current `query` (at this epoch or an earlier one).
    pub released: Option<Release>,
}

/// A size released to an advertiser, as recorded in the ledger of releases. Releases are
/// never deleted: the ledger is what privacy budgets are counted from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Release {
    pub audience_no: u32,
    pub query: QueryDigest,
    pub epoch: u64,
    /// `BelowThreshold` or `Approximate`; an unavailable size is not a release.
    pub size: ReleasedSize,
    pub epsilon: Epsilon,
    pub at: Timestamp,
}

/// A release to record against a legal entity's budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRelease {
    pub entity: String,
    pub advertiser_no: u32,
    pub release: Release,
}

/// What recording a release did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Charged {
    /// Recorded, and its ε counted against the entity's budget.
    Recorded(Release),
    /// The same question (audience, query, epoch) was already answered: that answer, for free.
    Cached(Release),
    /// The entity's budget does not admit it before `until`; nothing was recorded.
    Refused { until: Timestamp },
}

/// What a job does to an audience.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobOp {
    Add,
    Remove,
    Replace,
}

impl JobOp {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Remove => "remove",
            Self::Replace => "replace",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Add, Self::Remove, Self::Replace]
            .into_iter()
            .find(|op| op.as_str() == text)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl JobState {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Queued, Self::Running, Self::Succeeded, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// Counters of a job's rows: they describe the advertiser's own file and are exact.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobCounts {
    pub rows_received: u64,
    pub rows_accepted: u64,
    /// Refused rows or cells by reason code.
    pub rejected: std::collections::BTreeMap<String, u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewJob {
    pub job_id: String,
    pub advertiser_no: u32,
    pub audience_no: u32,
    pub op: JobOp,
    pub counts: JobCounts,
    /// The canonical key set of its upload (every part's).
    pub keys: KeySetDigest,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub no: u64,
    pub job_id: String,
    pub advertiser_no: u32,
    pub audience_no: u32,
    pub op: JobOp,
    pub state: JobState,
    pub counts: JobCounts,
    /// A fixed message when failed (never data).
    pub error: Option<String>,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// The canonical key set of its upload.
    pub keys: KeySetDigest,
}

/// Microseconds in a day.
const DAY: i64 = 86_400_000_000;

/// When a membership granted at `now` with a time to live of `days` expires (the latest
/// representable time if that is further).
pub fn expiry(now: Timestamp, days: u32) -> Timestamp {
    let latest = Timestamp::MAX.as_microsecond();
    let at = i64::from(days)
        .checked_mul(DAY)
        .and_then(|ttl| now.as_microsecond().checked_add(ttl))
        .map_or(latest, |at| at.min(latest));
    Timestamp::from_microsecond(at).unwrap_or(Timestamp::MAX)
}

/// A membership to grant, with its basis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    pub account: AccountNo,
    /// The keyed digest that matched: one form of the contact point (its primary digest or
    /// its other form), identifying it among the account's contact points.
    pub contact_digest: KeyedDigest,
    pub context: Context,
    /// The consent event granting it; `None` under an opt-out regime without events.
    pub consent_seq: Option<u64>,
    pub policy_version: PolicyVersion,
}

/// A live membership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Membership {
    pub audience_no: u32,
    pub account: AccountNo,
    pub contact_digest: KeyedDigest,
    pub context: Context,
    pub consent_seq: Option<u64>,
    pub policy_version: PolicyVersion,
    pub job_no: u64,
    pub granted_at: Timestamp,
    pub expires_at: Timestamp,
}

/// Why a membership ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RevokeReason {
    /// A `remove` job listed the account.
    Removed,
    /// A `replace` job's new list did not reach the account.
    Replaced,
    /// Its basis is no longer eligible (consent withdrawn, contact point removed or
    /// reclassified, region or policy change).
    Ineligible,
    /// The account was erased.
    Erased,
    /// The audience was deleted.
    AudienceDeleted,
    /// The membership reached its time to live.
    Expired,
}

impl RevokeReason {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Removed => "removed",
            Self::Replaced => "replaced",
            Self::Ineligible => "ineligible",
            Self::Erased => "erased",
            Self::AudienceDeleted => "audience_deleted",
            Self::Expired => "expired",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Removed,
            Self::Replaced,
            Self::Ineligible,
            Self::Erased,
            Self::AudienceDeleted,
            Self::Expired,
        ]
        .into_iter()
        .find(|r| r.as_str() == text)
    }
}

/// What happened to a membership in one history row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MembershipChange {
    /// A job granted or renewed it.
    Granted,
    /// It ended.
    Revoked(RevokeReason),
}

/// One row of the membership history: a grant (with the basis it recorded) or a revocation
/// (with the basis of the membership that ended). Rows are kept when memberships end; only an
/// erasure deletes them (the erased account's rows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MembershipEvent {
    /// Its number: increasing in recording order, never reused.
    pub no: u64,
    pub audience_no: u32,
    pub account: AccountNo,
    pub change: MembershipChange,
    /// The job that granted it, or that ended it (`remove`, `replace`); `None` for ends that
    /// no job caused (consent, expiry, audience deletion).
    pub job_no: Option<u64>,
    pub contact_digest: KeyedDigest,
    pub context: Context,
    pub consent_seq: Option<u64>,
    pub policy_version: PolicyVersion,
    pub at: Timestamp,
}

/// A row of the membership history as a history scan ([`crate::Store::scan_history`]) reads
/// it: what replaying a window needs and no more. The event number, the policy version and
/// why a membership ended are left out: reading them for millions of rows costs about a third
/// of the scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScannedEvent {
    pub audience_no: u32,
    pub account: AccountNo,
    /// A membership ended (the basis below is the one it rested on); else a grant.
    pub ended: bool,
    pub job_no: Option<u64>,
    pub contact_digest: KeyedDigest,
    pub context: Context,
    pub consent_seq: Option<u64>,
    pub at: Timestamp,
}

impl From<&MembershipEvent> for ScannedEvent {
    fn from(event: &MembershipEvent) -> Self {
        Self {
            audience_no: event.audience_no,
            account: event.account,
            ended: event.change != MembershipChange::Granted,
            job_no: event.job_no,
            contact_digest: event.contact_digest,
            context: event.context,
            consent_seq: event.consent_seq,
            at: event.at,
        }
    }
}

/// What applying a job changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Memberships created or renewed (a grant for a current member renews its basis and expiry).
    pub granted: Vec<Membership>,
    /// Memberships ended, with the audience and account.
    pub revoked: Vec<(u32, AccountNo)>,
}

/// An upload session: parts staged until commit, holding only what matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadSession {
    pub no: u64,
    pub session_id: String,
    pub advertiser_no: u32,
    pub audience_no: u32,
    pub op: JobOp,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// The job made by its commit.
    pub job_no: Option<u64>,
}

/// One staged part: its counters and the (account, contact digest) pairs it matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionPart {
    pub part_no: u32,
    pub counts: JobCounts,
    /// The canonical key set of the part's rows (all of them, matched or not).
    pub keys: KeySetDigest,
    pub matched: Vec<(AccountNo, KeyedDigest)>,
}

/// A staged part without its matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagedPart {
    pub part_no: u32,
    pub counts: JobCounts,
    pub keys: KeySetDigest,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_adds_days_and_saturates() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        assert_eq!(expiry(now, 540).as_second(), 1_800_000_000 + 540 * 86_400);
        assert_eq!(expiry(now, 0), now);
        assert_eq!(
            expiry(now, u32::MAX).as_microsecond(),
            Timestamp::MAX.as_microsecond()
        );
    }
}
