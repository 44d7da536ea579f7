//! Reading rows into the store's types, and the queries that read one account.
//!
//! The column lists here are shared by the per-account reads and the whole-store scan, so
//! that both decode rows the same way. A value that does not decode (an unknown kind, a
//! digest of the wrong length, a time out of range) is `Corrupt`, and the message names the
//! column, never the value.

use jiff::Timestamp;
use rusqlite::{Connection, Row};
use tailor_core::release::KeySetDigest;
use tailor_core::{
    AccountNo, AccountRegion, ConsentEvent, ConsentSource, ConsentState, ContactDigests,
    ContactKind, Context, KeyedDigest, PolicyVersion, Purpose,
};

use super::SqlResult;
use crate::packing::decode_rejected;
use crate::{
    AccountState, Advertiser, ApiKeyRecord, Job, JobCounts, JobOp, JobState, Membership,
    MembershipChange, MembershipEvent, RevokeReason, ScannedEvent, StoreError, StoredContact,
    UploadSession,
};

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

pub(super) use {account_columns, consent_columns, contact_columns};

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

pub(super) use {
    advertiser_columns, event_columns, job_columns, key_columns, membership_columns,
    session_columns,
};

/// A time as stored: unix microseconds.
pub(super) fn micros(at: Timestamp) -> i64 {
    at.as_microsecond()
}

pub(super) use crate::to_stored_precision;

fn unreadable(column: &str, error: rusqlite::types::FromSqlError) -> StoreError {
    StoreError::Corrupt(format!("{column}: {error}"))
}

pub(super) fn timestamp(
    row: &Row<'_>,
    index: usize,
    column: &str,
) -> Result<Timestamp, StoreError> {
    let us: i64 = row.get(index).db()?;
    Timestamp::from_microsecond(us)
        .map_err(|_| StoreError::Corrupt(format!("{column} holds a time out of range")))
}

fn account_no(row: &Row<'_>, index: usize) -> Result<i64, StoreError> {
    row.get(index).db()
}

/// An account number as the index holds it.
pub(super) fn dense_no(no: i64) -> Result<AccountNo, StoreError> {
    u32::try_from(no)
        .map(AccountNo)
        .map_err(|_| StoreError::TooManyAccounts)
}

pub(super) fn digest(
    row: &Row<'_>,
    index: usize,
    column: &str,
) -> Result<Option<KeyedDigest>, StoreError> {
    let value = row.get_ref(index).db()?;
    let Some(bytes) = value.as_blob_or_null().map_err(|e| unreadable(column, e))? else {
        return Ok(None);
    };
    <[u8; 32]>::try_from(bytes)
        .map(|b| Some(KeyedDigest(b)))
        .map_err(|_| StoreError::Corrupt(format!("{column} is not a 32-byte digest")))
}

/// A non-null 32-byte column (a query or key-set digest).
pub(super) fn bytes32(row: &Row<'_>, index: usize, column: &str) -> Result<[u8; 32], StoreError> {
    let value = row.get_ref(index).db()?;
    let bytes = value.as_blob().map_err(|e| unreadable(column, e))?;
    <[u8; 32]>::try_from(bytes)
        .map_err(|_| StoreError::Corrupt(format!("{column} is not a 32-byte digest")))
}

pub(super) fn parsed<T>(
    row: &Row<'_>,
    index: usize,
    column: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, StoreError> {
    let value = row.get_ref(index).db()?;
    let text = value.as_str().map_err(|e| unreadable(column, e))?;
    parse(text).ok_or_else(|| StoreError::Corrupt(format!("{column} holds an unknown value")))
}

/// An account row, with empty contact points and consents.
pub(super) fn account(row: &Row<'_>) -> Result<AccountState, StoreError> {
    Ok(AccountState {
        no: dense_no(account_no(row, 0)?)?,
        account_id: row.get(1).db()?,
        region: parsed(row, 2, "accounts.region", AccountRegion::parse)?,
        contacts: Vec::new(),
        consents: Vec::new(),
        created_at: timestamp(row, 3, "accounts.created_at")?,
        updated_at: timestamp(row, 4, "accounts.updated_at")?,
    })
}

/// A contact point row and its account number.
pub(super) fn contact(row: &Row<'_>) -> Result<(i64, StoredContact), StoreError> {
    let contact_no: i64 = row.get(1).db()?;
    let primary = digest(row, 6, "contact_points.primary_digest")?
        .ok_or_else(|| StoreError::Corrupt("contact_points.primary_digest is missing".into()))?;
    let other = digest(row, 7, "contact_points.other_digest")?;
    let stored = StoredContact {
        contact_no: u32::try_from(contact_no)
            .map_err(|_| StoreError::Corrupt("contact_points.contact_no is out of range".into()))?,
        kind: parsed(row, 2, "contact_points.kind", ContactKind::parse)?,
        context: parsed(row, 3, "contact_points.context", Context::parse)?,
        verified: row.get(4).db()?,
        notice_version: row.get(5).db()?,
        digests: ContactDigests::new(primary, other),
        added_at: timestamp(row, 8, "contact_points.added_at")?,
    };
    Ok((account_no(row, 0)?, stored))
}

/// A consent event row and its account number.
pub(super) fn consent(row: &Row<'_>) -> Result<(i64, ConsentEvent), StoreError> {
    let seq: i64 = row.get(1).db()?;
    let event = ConsentEvent {
        seq: u64::try_from(seq)
            .map_err(|_| StoreError::Corrupt("consent_events.seq is negative".into()))?,
        purpose: parsed(row, 2, "consent_events.purpose", Purpose::parse)?,
        state: parsed(row, 3, "consent_events.state", ConsentState::parse)?,
        source: parsed(row, 4, "consent_events.source", ConsentSource::parse)?,
        at: timestamp(row, 5, "consent_events.at")?,
        notice_version: row.get(6).db()?,
    };
    Ok((account_no(row, 0)?, event))
}

/// One account's current state: its row, live contact points and consent history. Run it
/// inside a transaction so that the three reads see one snapshot.
pub(super) fn load_account(
    conn: &Connection,
    account_id: &str,
) -> Result<Option<AccountState>, StoreError> {
    let mut statement = conn
        .prepare_cached(concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts WHERE account_id = ?1"
        ))
        .db()?;
    let mut rows = statement.query([account_id]).db()?;
    let Some(row) = rows.next().db()? else {
        return Ok(None);
    };
    let mut state = account(row)?;
    let no = i64::from(state.no.0);
    state.contacts = live_contacts(conn, no)?;
    state.consents = consents(conn, no)?;
    Ok(Some(state))
}

fn live_contacts(conn: &Connection, no: i64) -> Result<Vec<StoredContact>, StoreError> {
    let mut statement = conn
        .prepare_cached(concat!(
            "SELECT ",
            contact_columns!(),
            " FROM contact_points WHERE account_no = ?1 AND removed_at IS NULL \
             ORDER BY contact_no"
        ))
        .db()?;
    let mut rows = statement.query([no]).db()?;
    let mut contacts = Vec::new();
    while let Some(row) = rows.next().db()? {
        contacts.push(contact(row)?.1);
    }
    Ok(contacts)
}

fn consents(conn: &Connection, no: i64) -> Result<Vec<ConsentEvent>, StoreError> {
    let mut statement = conn
        .prepare_cached(concat!(
            "SELECT ",
            consent_columns!(),
            " FROM consent_events WHERE account_no = ?1 ORDER BY seq"
        ))
        .db()?;
    let mut rows = statement.query([no]).db()?;
    let mut events = Vec::new();
    while let Some(row) = rows.next().db()? {
        events.push(consent(row)?.1);
    }
    Ok(events)
}

/// An integer column that must fit `T` (a number, a count).
pub(super) fn number<T: TryFrom<i64>>(
    row: &Row<'_>,
    index: usize,
    column: &str,
) -> Result<T, StoreError> {
    let value: i64 = row.get(index).db()?;
    T::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column} is out of range")))
}

/// A nullable integer column that must fit `T`.
fn optional_number<T: TryFrom<i64>>(
    row: &Row<'_>,
    index: usize,
    column: &str,
) -> Result<Option<T>, StoreError> {
    let value: Option<i64> = row.get(index).db()?;
    value
        .map(|v| {
            T::try_from(v).map_err(|_| StoreError::Corrupt(format!("{column} is out of range")))
        })
        .transpose()
}

fn optional_timestamp(
    row: &Row<'_>,
    index: usize,
    column: &str,
) -> Result<Option<Timestamp>, StoreError> {
    let value: Option<i64> = row.get(index).db()?;
    value
        .map(|us| {
            Timestamp::from_microsecond(us)
                .map_err(|_| StoreError::Corrupt(format!("{column} holds a time out of range")))
        })
        .transpose()
}

fn required_digest(row: &Row<'_>, index: usize, column: &str) -> Result<KeyedDigest, StoreError> {
    digest(row, index, column)?.ok_or_else(|| StoreError::Corrupt(format!("{column} is missing")))
}

fn policy_version(row: &Row<'_>, index: usize, column: &str) -> Result<PolicyVersion, StoreError> {
    required_digest(row, index, column).map(|d| PolicyVersion(d.0))
}

/// An advertiser row.
pub(super) fn advertiser(row: &Row<'_>) -> Result<Advertiser, StoreError> {
    Ok(Advertiser {
        no: number(row, 0, "advertisers.advertiser_no")?,
        advertiser_id: row.get(1).db()?,
        name: row.get(2).db()?,
        entity: row.get(3).db()?,
        created_at: timestamp(row, 4, "advertisers.created_at")?,
    })
}

/// An API key row (its hash is never read back).
pub(super) fn api_key(row: &Row<'_>) -> Result<ApiKeyRecord, StoreError> {
    Ok(ApiKeyRecord {
        key_id: row.get(0).db()?,
        advertiser_no: number(row, 1, "api_keys.advertiser_no")?,
        created_at: timestamp(row, 2, "api_keys.created_at")?,
        revoked_at: optional_timestamp(row, 3, "api_keys.revoked_at")?,
    })
}

/// An upload session row.
pub(super) fn session(row: &Row<'_>) -> Result<UploadSession, StoreError> {
    Ok(UploadSession {
        no: number(row, 0, "upload_sessions.session_no")?,
        session_id: row.get(1).db()?,
        advertiser_no: number(row, 2, "upload_sessions.advertiser_no")?,
        audience_no: number(row, 3, "upload_sessions.audience_no")?,
        op: parsed(row, 4, "upload_sessions.op", JobOp::parse)?,
        created_at: timestamp(row, 5, "upload_sessions.created_at")?,
        expires_at: timestamp(row, 6, "upload_sessions.expires_at")?,
        job_no: optional_number(row, 7, "upload_sessions.job_no")?,
    })
}

/// A job row.
pub(super) fn job(row: &Row<'_>) -> Result<Job, StoreError> {
    let rejected = row.get_ref(8).db()?;
    let rejected = rejected
        .as_str()
        .map_err(|e| unreadable("jobs.rejected", e))?;
    Ok(Job {
        no: number(row, 0, "jobs.job_no")?,
        job_id: row.get(1).db()?,
        advertiser_no: number(row, 2, "jobs.advertiser_no")?,
        audience_no: number(row, 3, "jobs.audience_no")?,
        op: parsed(row, 4, "jobs.op", JobOp::parse)?,
        state: parsed(row, 5, "jobs.state", JobState::parse)?,
        counts: JobCounts {
            rows_received: number(row, 6, "jobs.rows_received")?,
            rows_accepted: number(row, 7, "jobs.rows_accepted")?,
            rejected: decode_rejected(rejected, "jobs.rejected")?,
        },
        error: row.get(9).db()?,
        created_at: timestamp(row, 10, "jobs.created_at")?,
        finished_at: optional_timestamp(row, 11, "jobs.finished_at")?,
        keys: KeySetDigest::from_bytes(bytes32(row, 12, "jobs.keys")?),
    })
}

/// A membership row.
pub(super) fn membership(row: &Row<'_>) -> Result<Membership, StoreError> {
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
pub(super) fn membership_event(row: &Row<'_>) -> Result<MembershipEvent, StoreError> {
    let kind = row.get_ref(3).db()?;
    let kind = kind
        .as_str()
        .map_err(|e| unreadable("membership_events.kind", e))?;
    let reason = row.get_ref(4).db()?;
    let reason = reason
        .as_str_or_null()
        .map_err(|e| unreadable("membership_events.reason", e))?;
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

/// A history scan's row: `audience_no, account_no, kind = 'revoke', job_no, contact_digest,
/// context, consent_seq, at`.
pub(super) fn scanned_event(row: &Row<'_>) -> Result<ScannedEvent, StoreError> {
    Ok(ScannedEvent {
        audience_no: number(row, 0, "membership_events.audience_no")?,
        account: AccountNo(number(row, 1, "membership_events.account_no")?),
        ended: number::<u8>(row, 2, "membership_events.kind")? == 1,
        job_no: optional_number(row, 3, "membership_events.job_no")?,
        contact_digest: required_digest(row, 4, "membership_events.contact_digest")?,
        context: parsed(row, 5, "membership_events.context", Context::parse)?,
        consent_seq: optional_number(row, 6, "membership_events.consent_seq")?,
        at: timestamp(row, 7, "membership_events.at")?,
    })
}

/// Accounts named in one statement of [`load_accounts_by_no`].
const ACCOUNTS_PER_QUERY: usize = 500;

/// The current states of the given accounts that exist, in account-number order. Accounts
/// are read many to a statement (three statements per few hundred accounts, their rows
/// merged by account number), not three statements per account. Run it inside a
/// transaction so that the reads see one snapshot.
pub(super) fn load_accounts_by_no(
    conn: &Connection,
    accounts: &[AccountNo],
) -> Result<Vec<AccountState>, StoreError> {
    let mut wanted = accounts.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    let mut states = Vec::with_capacity(wanted.len());
    for chunk in wanted.chunks(ACCOUNTS_PER_QUERY) {
        load_chunk(conn, chunk, &mut states)?;
    }
    Ok(states)
}

fn in_list(n: usize) -> String {
    (1..=n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn load_chunk(
    conn: &Connection,
    chunk: &[AccountNo],
    out: &mut Vec<AccountState>,
) -> Result<(), StoreError> {
    let list = in_list(chunk.len());
    let numbers = rusqlite::params_from_iter(chunk.iter().map(|a| a.0));
    let first = out.len();
    {
        let mut statement = conn
            .prepare_cached(&format!(
                concat!(
                    "SELECT ",
                    account_columns!(),
                    " FROM accounts WHERE account_no IN ({}) ORDER BY account_no"
                ),
                list
            ))
            .db()?;
        let mut rows = statement.query(numbers.clone()).db()?;
        while let Some(row) = rows.next().db()? {
            out.push(account(row)?);
        }
    }
    let loaded = &mut out[first..];
    if loaded.is_empty() {
        return Ok(());
    }
    let position = |loaded: &[AccountState], no: i64| {
        loaded
            .binary_search_by_key(&no, |s| i64::from(s.no.0))
            .map_err(|_| StoreError::Corrupt("a stored row belongs to no account".into()))
    };
    {
        let mut statement = conn
            .prepare_cached(&format!(
                concat!(
                    "SELECT ",
                    contact_columns!(),
                    " FROM contact_points WHERE account_no IN ({}) AND removed_at IS NULL \
                     ORDER BY account_no, contact_no"
                ),
                list
            ))
            .db()?;
        let mut rows = statement.query(numbers.clone()).db()?;
        while let Some(row) = rows.next().db()? {
            let (no, stored) = contact(row)?;
            let at = position(loaded, no)?;
            loaded[at].contacts.push(stored);
        }
    }
    let mut statement = conn
        .prepare_cached(&format!(
            concat!(
                "SELECT ",
                consent_columns!(),
                " FROM consent_events WHERE account_no IN ({}) ORDER BY account_no, seq"
            ),
            list
        ))
        .db()?;
    let mut rows = statement.query(numbers).db()?;
    while let Some(row) = rows.next().db()? {
        let (no, event) = consent(row)?;
        let at = position(loaded, no)?;
        loaded[at].consents.push(event);
    }
    Ok(())
}

/// An account's number, from its id.
pub(super) fn account_ids_of(
    conn: &Connection,
    accounts: &[AccountNo],
) -> Result<Vec<(AccountNo, String)>, StoreError> {
    let mut wanted = accounts.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    let mut ids = Vec::with_capacity(wanted.len());
    for chunk in wanted.chunks(ACCOUNTS_PER_QUERY) {
        let sql = format!(
            "SELECT account_no, account_id FROM accounts WHERE account_no IN ({}) \
             ORDER BY account_no",
            in_list(chunk.len())
        );
        let mut statement = conn.prepare_cached(&sql).db()?;
        let mut rows = statement
            .query(rusqlite::params_from_iter(chunk.iter().map(|a| a.0)))
            .db()?;
        while let Some(row) = rows.next().db()? {
            let no = dense_no(account_no(row, 0)?)?;
            let id: String = row.get(1).db()?;
            ids.push((no, id));
        }
    }
    Ok(ids)
}

pub(super) fn account_no_of(
    conn: &Connection,
    account_id: &str,
) -> Result<Option<AccountNo>, StoreError> {
    let mut statement = conn
        .prepare_cached("SELECT account_no FROM accounts WHERE account_id = ?1")
        .db()?;
    let mut rows = statement.query([account_id]).db()?;
    match rows.next().db()? {
        Some(row) => Ok(Some(dense_no(account_no(row, 0)?)?)),
        None => Ok(None),
    }
}
