//! Reading rows into the store's types, and the queries that read one account.
//!
//! The column lists here are shared by the per-account reads and the whole-store scan, so
//! that both decode rows the same way. A value that does not decode (an unknown kind, a
//! digest of the wrong length, a time out of range) is `Corrupt`, and the message names the
//! column, never the value.

use jiff::Timestamp;
use rusqlite::{Connection, Row};
use tailor_core::{
    AccountNo, AccountRegion, ConsentEvent, ConsentSource, ConsentState, ContactDigests,
    ContactKind, Context, KeyedDigest, Purpose,
};

use super::SqlResult;
use crate::{AccountState, StoreError, StoredContact};

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

/// A time as stored: unix microseconds.
pub(super) fn micros(at: Timestamp) -> i64 {
    at.as_microsecond()
}

/// A time as it will read back: cut to the microsecond.
pub(super) fn to_stored_precision(at: Timestamp) -> Timestamp {
    Timestamp::from_microsecond(at.as_microsecond()).unwrap_or(at)
}

fn unreadable(column: &str, error: rusqlite::types::FromSqlError) -> StoreError {
    StoreError::Corrupt(format!("{column}: {error}"))
}

fn timestamp(row: &Row<'_>, index: usize, column: &str) -> Result<Timestamp, StoreError> {
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

fn digest(row: &Row<'_>, index: usize, column: &str) -> Result<Option<KeyedDigest>, StoreError> {
    let value = row.get_ref(index).db()?;
    let Some(bytes) = value.as_blob_or_null().map_err(|e| unreadable(column, e))? else {
        return Ok(None);
    };
    <[u8; 32]>::try_from(bytes)
        .map(|b| Some(KeyedDigest(b)))
        .map_err(|_| StoreError::Corrupt(format!("{column} is not a 32-byte digest")))
}

fn parsed<T>(
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
