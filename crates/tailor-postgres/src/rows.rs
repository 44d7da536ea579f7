//! Reading rows into the store's types.
//!
//! The column lists here are shared by the per-account reads and the whole-store scans, so
//! that both decode rows the same way. A value that does not decode (an unknown kind, a
//! digest of the wrong length, a time out of range) is `Corrupt`, and the message names the
//! column, never the value.

use jiff::Timestamp;
use tailor_core::release::KeySetDigest;
use tailor_core::{
    AccountNo, AccountRegion, ConsentEvent, ConsentSource, ConsentState, ContactDigests,
    ContactKind, Context, KeyedDigest, PolicyVersion, Purpose,
};
use tailor_store::packing::decode_rejected;
use tailor_store::{
    AccountState, Advertiser, ApiKeyRecord, Job, JobCounts, JobOp, JobState, Membership,
    MembershipChange, MembershipEvent, RevokeReason, ScannedEvent, StoreError, StoredContact,
    UploadSession,
};
use tokio_postgres::Row;
use tokio_postgres::types::FromSql;

/// Account columns; decoded by [`account`]. (Macros rather than constants, so that queries
/// are built with `concat!` at compile time.)
macro_rules! account_columns {
    () => {
        "account_no, account_id, region, created_at, updated_at"
    };
}

/// Contact point columns, account number first; decoded by [`contact`].
macro_rules! contact_columns {
    () => {
        "account_no, contact_no, kind, context, verified, notice_version, primary_digest, \
         other_digest, added_at"
    };
}

/// Consent event columns, account number first; decoded by [`consent`].
macro_rules! consent_columns {
    () => {
        "account_no, seq, purpose, state, source, at, notice_version"
    };
}

/// Advertiser columns; decoded by [`advertiser`].
macro_rules! advertiser_columns {
    () => {
        "advertiser_no, advertiser_id, name, entity, created_at"
    };
}

/// API key columns; decoded by [`api_key`].
macro_rules! key_columns {
    () => {
        "key_id, advertiser_no, created_at, revoked_at"
    };
}

/// Upload session columns; decoded by [`session`].
macro_rules! session_columns {
    () => {
        "session_no, session_id, advertiser_no, audience_no, op, created_at, expires_at, job_no"
    };
}

/// Job columns; decoded by [`job`].
macro_rules! job_columns {
    () => {
        "job_no, job_id, advertiser_no, audience_no, op, state, rows_received, rows_accepted, \
         rejected, error, created_at, finished_at, keys"
    };
}

/// Membership columns; decoded by [`membership`].
macro_rules! membership_columns {
    () => {
        "audience_no, account_no, contact_digest, context, consent_seq, policy_version, job_no, \
         granted_at, expires_at"
    };
}

/// Membership history columns; decoded by [`membership_event`].
macro_rules! event_columns {
    () => {
        "event_no, audience_no, account_no, kind, reason, job_no, contact_digest, context, \
         consent_seq, policy_version, at"
    };
}

pub(crate) use {
    account_columns, advertiser_columns, consent_columns, contact_columns, event_columns,
    job_columns, key_columns, membership_columns, session_columns,
};

/// A column's value.
pub(crate) fn get<'a, T: FromSql<'a>>(
    row: &'a Row,
    index: usize,
    column: &str,
) -> Result<T, StoreError> {
    row.try_get(index)
        .map_err(|_| StoreError::Corrupt(format!("{column} is unreadable")))
}

/// Account numbers as SQL wants them (for `= ANY($n)`), sorted and distinct.
pub(crate) fn account_numbers(accounts: &[AccountNo]) -> Vec<i64> {
    let mut numbers: Vec<i64> = accounts.iter().map(|a| i64::from(a.0)).collect();
    numbers.sort_unstable();
    numbers.dedup();
    numbers
}

/// A time as stored: unix microseconds.
pub(crate) fn micros(at: Timestamp) -> i64 {
    at.as_microsecond()
}

fn to_time(us: i64, column: &str) -> Result<Timestamp, StoreError> {
    Timestamp::from_microsecond(us)
        .map_err(|_| StoreError::Corrupt(format!("{column} holds a time out of range")))
}

pub(crate) fn timestamp(row: &Row, index: usize, column: &str) -> Result<Timestamp, StoreError> {
    to_time(get(row, index, column)?, column)
}

fn optional_timestamp(
    row: &Row,
    index: usize,
    column: &str,
) -> Result<Option<Timestamp>, StoreError> {
    let value: Option<i64> = get(row, index, column)?;
    value.map(|us| to_time(us, column)).transpose()
}

/// An integer column that must fit `T` (a number, a count).
pub(crate) fn number<T: TryFrom<i64>>(
    row: &Row,
    index: usize,
    column: &str,
) -> Result<T, StoreError> {
    let value: i64 = get(row, index, column)?;
    T::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column} is out of range")))
}

/// A nullable integer column that must fit `T`.
fn optional_number<T: TryFrom<i64>>(
    row: &Row,
    index: usize,
    column: &str,
) -> Result<Option<T>, StoreError> {
    let value: Option<i64> = get(row, index, column)?;
    value
        .map(|v| {
            T::try_from(v).map_err(|_| StoreError::Corrupt(format!("{column} is out of range")))
        })
        .transpose()
}

/// An account number as the index holds it.
pub(crate) fn dense_no(no: i64) -> Result<AccountNo, StoreError> {
    u32::try_from(no)
        .map(AccountNo)
        .map_err(|_| StoreError::TooManyAccounts)
}

/// A text column parsed by `parse`.
pub(crate) fn parsed<T>(
    row: &Row,
    index: usize,
    column: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, StoreError> {
    let text: &str = get(row, index, column)?;
    parse(text).ok_or_else(|| StoreError::Corrupt(format!("{column} holds an unknown value")))
}

/// A nullable 32-byte digest column.
pub(crate) fn digest(
    row: &Row,
    index: usize,
    column: &str,
) -> Result<Option<KeyedDigest>, StoreError> {
    let bytes: Option<&[u8]> = get(row, index, column)?;
    bytes
        .map(|b| {
            <[u8; 32]>::try_from(b)
                .map(KeyedDigest)
                .map_err(|_| StoreError::Corrupt(format!("{column} is not a 32-byte digest")))
        })
        .transpose()
}

/// A non-null 32-byte column (a digest, a key, a root).
pub(crate) fn bytes32(row: &Row, index: usize, column: &str) -> Result<[u8; 32], StoreError> {
    let bytes: &[u8] = get(row, index, column)?;
    <[u8; 32]>::try_from(bytes)
        .map_err(|_| StoreError::Corrupt(format!("{column} is not 32 bytes")))
}

fn required_digest(row: &Row, index: usize, column: &str) -> Result<KeyedDigest, StoreError> {
    bytes32(row, index, column).map(KeyedDigest)
}

fn policy_version(row: &Row, index: usize, column: &str) -> Result<PolicyVersion, StoreError> {
    bytes32(row, index, column).map(PolicyVersion)
}

/// An account row, with empty contact points and consents.
pub(crate) fn account(row: &Row) -> Result<AccountState, StoreError> {
    Ok(AccountState {
        no: dense_no(get(row, 0, "accounts.account_no")?)?,
        account_id: get(row, 1, "accounts.account_id")?,
        region: parsed(row, 2, "accounts.region", AccountRegion::parse)?,
        contacts: Vec::new(),
        consents: Vec::new(),
        created_at: timestamp(row, 3, "accounts.created_at")?,
        updated_at: timestamp(row, 4, "accounts.updated_at")?,
    })
}

/// A contact point row and its account number.
pub(crate) fn contact(row: &Row) -> Result<(i64, StoredContact), StoreError> {
    let primary = required_digest(row, 6, "contact_points.primary_digest")?;
    let other = digest(row, 7, "contact_points.other_digest")?;
    let stored = StoredContact {
        contact_no: number(row, 1, "contact_points.contact_no")?,
        kind: parsed(row, 2, "contact_points.kind", ContactKind::parse)?,
        context: parsed(row, 3, "contact_points.context", Context::parse)?,
        verified: get(row, 4, "contact_points.verified")?,
        notice_version: get(row, 5, "contact_points.notice_version")?,
        digests: ContactDigests::new(primary, other),
        added_at: timestamp(row, 8, "contact_points.added_at")?,
    };
    Ok((get(row, 0, "contact_points.account_no")?, stored))
}

/// A consent event row and its account number.
pub(crate) fn consent(row: &Row) -> Result<(i64, ConsentEvent), StoreError> {
    let event = ConsentEvent {
        seq: number(row, 1, "consent_events.seq")?,
        purpose: parsed(row, 2, "consent_events.purpose", Purpose::parse)?,
        state: parsed(row, 3, "consent_events.state", ConsentState::parse)?,
        source: parsed(row, 4, "consent_events.source", ConsentSource::parse)?,
        at: timestamp(row, 5, "consent_events.at")?,
        notice_version: get(row, 6, "consent_events.notice_version")?,
    };
    Ok((get(row, 0, "consent_events.account_no")?, event))
}

/// An advertiser row.
pub(crate) fn advertiser(row: &Row) -> Result<Advertiser, StoreError> {
    Ok(Advertiser {
        no: number(row, 0, "advertisers.advertiser_no")?,
        advertiser_id: get(row, 1, "advertisers.advertiser_id")?,
        name: get(row, 2, "advertisers.name")?,
        entity: get(row, 3, "advertisers.entity")?,
        created_at: timestamp(row, 4, "advertisers.created_at")?,
    })
}

/// An API key row (its hash is never read back).
pub(crate) fn api_key(row: &Row) -> Result<ApiKeyRecord, StoreError> {
    Ok(ApiKeyRecord {
        key_id: get(row, 0, "api_keys.key_id")?,
        advertiser_no: number(row, 1, "api_keys.advertiser_no")?,
        created_at: timestamp(row, 2, "api_keys.created_at")?,
        revoked_at: optional_timestamp(row, 3, "api_keys.revoked_at")?,
    })
}

/// An upload session row.
pub(crate) fn session(row: &Row) -> Result<UploadSession, StoreError> {
    Ok(UploadSession {
        no: number(row, 0, "upload_sessions.session_no")?,
        session_id: get(row, 1, "upload_sessions.session_id")?,
        advertiser_no: number(row, 2, "upload_sessions.advertiser_no")?,
        audience_no: number(row, 3, "upload_sessions.audience_no")?,
        op: parsed(row, 4, "upload_sessions.op", JobOp::parse)?,
        created_at: timestamp(row, 5, "upload_sessions.created_at")?,
        expires_at: timestamp(row, 6, "upload_sessions.expires_at")?,
        job_no: optional_number(row, 7, "upload_sessions.job_no")?,
    })
}

/// A job row.
pub(crate) fn job(row: &Row) -> Result<Job, StoreError> {
    let rejected: &str = get(row, 8, "jobs.rejected")?;
    Ok(Job {
        no: number(row, 0, "jobs.job_no")?,
        job_id: get(row, 1, "jobs.job_id")?,
        advertiser_no: number(row, 2, "jobs.advertiser_no")?,
        audience_no: number(row, 3, "jobs.audience_no")?,
        op: parsed(row, 4, "jobs.op", JobOp::parse)?,
        state: parsed(row, 5, "jobs.state", JobState::parse)?,
        counts: JobCounts {
            rows_received: number(row, 6, "jobs.rows_received")?,
            rows_accepted: number(row, 7, "jobs.rows_accepted")?,
            rejected: decode_rejected(rejected, "jobs.rejected")?,
        },
        error: get(row, 9, "jobs.error")?,
        created_at: timestamp(row, 10, "jobs.created_at")?,
        finished_at: optional_timestamp(row, 11, "jobs.finished_at")?,
        keys: KeySetDigest::from_bytes(bytes32(row, 12, "jobs.keys")?),
    })
}

/// A membership row.
pub(crate) fn membership(row: &Row) -> Result<Membership, StoreError> {
    Ok(Membership {
        audience_no: number(row, 0, "memberships.audience_no")?,
        account: AccountNo(number(row, 1, "memberships.account_no")?),
        contact_digest: required_digest(row, 2, "memberships.contact_digest")?,
        context: parsed(row, 3, "memberships.context", Context::parse)?,
        consent_seq: optional_number(row, 4, "memberships.consent_seq")?,
        policy_version: policy_version(row, 5, "memberships.policy_version")?,
        job_no: number(row, 6, "memberships.job_no")?,
        granted_at: timestamp(row, 7, "memberships.granted_at")?,
        expires_at: timestamp(row, 8, "memberships.expires_at")?,
    })
}

/// A membership history row.
/// A history scan's row: `audience_no, account_no, kind = 'revoke', job_no, contact_digest,
/// context, consent_seq, at`.
pub(crate) fn scanned_event(row: &Row) -> Result<ScannedEvent, StoreError> {
    Ok(ScannedEvent {
        audience_no: number(row, 0, "membership_events.audience_no")?,
        account: AccountNo(number(row, 1, "membership_events.account_no")?),
        ended: get(row, 2, "membership_events.kind")?,
        job_no: optional_number(row, 3, "membership_events.job_no")?,
        contact_digest: required_digest(row, 4, "membership_events.contact_digest")?,
        context: parsed(row, 5, "membership_events.context", Context::parse)?,
        consent_seq: optional_number(row, 6, "membership_events.consent_seq")?,
        at: timestamp(row, 7, "membership_events.at")?,
    })
}

pub(crate) fn membership_event(row: &Row) -> Result<MembershipEvent, StoreError> {
    let kind: &str = get(row, 3, "membership_events.kind")?;
    let reason: Option<&str> = get(row, 4, "membership_events.reason")?;
    let change = match (kind, reason) {
        ("grant", None) => MembershipChange::Granted,
        ("revoke", Some(reason)) => RevokeReason::parse(reason)
            .map(MembershipChange::Revoked)
            .ok_or_else(|| {
                StoreError::Corrupt("membership_events.reason holds an unknown value".into())
            })?,
        _ => {
            return Err(StoreError::Corrupt(
                "membership_events.kind and reason do not agree".into(),
            ));
        }
    };
    Ok(MembershipEvent {
        no: number(row, 0, "membership_events.event_no")?,
        audience_no: number(row, 1, "membership_events.audience_no")?,
        account: AccountNo(number(row, 2, "membership_events.account_no")?),
        change,
        job_no: optional_number(row, 5, "membership_events.job_no")?,
        contact_digest: required_digest(row, 6, "membership_events.contact_digest")?,
        context: parsed(row, 7, "membership_events.context", Context::parse)?,
        consent_seq: optional_number(row, 8, "membership_events.consent_seq")?,
        policy_version: policy_version(row, 9, "membership_events.policy_version")?,
        at: timestamp(row, 10, "membership_events.at")?,
    })
}
