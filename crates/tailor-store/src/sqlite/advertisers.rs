//! Advertisers and their API keys.
//!
//! A key is stored as its SHA-256 only, and a lookup by hash finds unrevoked keys only. A key
//! belongs to one advertiser: revoking through another advertiser's number finds nothing. A
//! key's hash is never read back out of the database.

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension};

use super::SqlResult;
use super::counters::{Sequence, Tally};
use super::rows::{self, advertiser_columns, key_columns, micros, to_stored_precision};
use crate::{Advertiser, ApiKeyRecord, NewAdvertiser, StoreError};

/// Creates an advertiser and its first key.
pub(super) fn create_advertiser(
    conn: &Connection,
    tally: &mut Tally,
    new: NewAdvertiser,
    now: Timestamp,
) -> Result<Advertiser, StoreError> {
    let now = to_stored_precision(now);
    let no = tally.next(conn, Sequence::Advertiser)?;
    let no = u32::try_from(no)
        .map_err(|_| StoreError::Database("advertiser numbers are used up".into()))?;
    conn.prepare_cached(
        "INSERT INTO advertisers (advertiser_no, advertiser_id, name, entity, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .db()?
    .execute((no, &new.advertiser_id, &new.name, &new.entity, micros(now)))
    .unique("the advertiser id is taken")?;
    tally.advertisers += 1;
    insert_key(conn, no, &new.key_id, &new.key_sha256, now)?;
    Ok(Advertiser {
        no,
        advertiser_id: new.advertiser_id,
        name: new.name,
        entity: new.entity,
        created_at: now,
    })
}

fn insert_key(
    conn: &Connection,
    advertiser_no: u32,
    key_id: &str,
    key_sha256: &[u8; 32],
    now: Timestamp,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO api_keys (key_id, advertiser_no, key_sha256, created_at) \
         VALUES (?1, ?2, ?3, ?4)",
    )
    .db()?
    .execute((key_id, advertiser_no, &key_sha256[..], micros(now)))
    .unique("the key id or key is taken")?;
    Ok(())
}

/// Adds a key to an existing advertiser.
pub(super) fn add_api_key(
    conn: &Connection,
    advertiser_no: u32,
    key_id: &str,
    key_sha256: &[u8; 32],
    now: Timestamp,
) -> Result<ApiKeyRecord, StoreError> {
    let now = to_stored_precision(now);
    let exists = conn
        .prepare_cached("SELECT 1 FROM advertisers WHERE advertiser_no = ?1")
        .db()?
        .query_row([advertiser_no], |_| Ok(()))
        .optional()
        .db()?
        .is_some();
    if !exists {
        return Err(StoreError::Conflict("no such advertiser"));
    }
    insert_key(conn, advertiser_no, key_id, key_sha256, now)?;
    Ok(ApiKeyRecord {
        key_id: key_id.to_owned(),
        advertiser_no,
        created_at: now,
        revoked_at: None,
    })
}

/// Revokes one of the advertiser's keys (a key revoked before keeps its first revocation
/// time); `None` if the advertiser has no such key.
pub(super) fn revoke_api_key(
    conn: &Connection,
    advertiser_no: u32,
    key_id: &str,
    now: Timestamp,
) -> Result<Option<ApiKeyRecord>, StoreError> {
    conn.prepare_cached(
        "UPDATE api_keys SET revoked_at = ?1 \
         WHERE key_id = ?2 AND advertiser_no = ?3 AND revoked_at IS NULL",
    )
    .db()?
    .execute((micros(now), key_id, advertiser_no))
    .db()?;
    api_key(conn, advertiser_no, key_id)
}

fn api_key(
    conn: &Connection,
    advertiser_no: u32,
    key_id: &str,
) -> Result<Option<ApiKeyRecord>, StoreError> {
    let mut statement = conn
        .prepare_cached(concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys WHERE key_id = ?1 AND advertiser_no = ?2"
        ))
        .db()?;
    let mut found = statement.query((key_id, advertiser_no)).db()?;
    found.next().db()?.map(rows::api_key).transpose()
}

/// The advertiser's keys, oldest first.
pub(super) fn api_keys(
    conn: &Connection,
    advertiser_no: u32,
) -> Result<Vec<ApiKeyRecord>, StoreError> {
    let mut statement = conn
        .prepare_cached(concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys WHERE advertiser_no = ?1 ORDER BY created_at, key_id"
        ))
        .db()?;
    let mut found = statement.query([advertiser_no]).db()?;
    let mut keys = Vec::new();
    while let Some(row) = found.next().db()? {
        keys.push(rows::api_key(row)?);
    }
    Ok(keys)
}

/// An advertiser by its public id.
pub(super) fn advertiser(
    conn: &Connection,
    advertiser_id: &str,
) -> Result<Option<Advertiser>, StoreError> {
    let mut statement = conn
        .prepare_cached(concat!(
            "SELECT ",
            advertiser_columns!(),
            " FROM advertisers WHERE advertiser_id = ?1"
        ))
        .db()?;
    let mut found = statement.query([advertiser_id]).db()?;
    found.next().db()?.map(rows::advertiser).transpose()
}

/// The advertiser owning an unrevoked key with this hash.
pub(super) fn advertiser_by_key(
    conn: &Connection,
    key_sha256: &[u8; 32],
) -> Result<Option<Advertiser>, StoreError> {
    let mut statement = conn
        .prepare_cached(
            "SELECT a.advertiser_no, a.advertiser_id, a.name, a.entity, a.created_at \
             FROM api_keys k JOIN advertisers a ON a.advertiser_no = k.advertiser_no \
             WHERE k.key_sha256 = ?1 AND k.revoked_at IS NULL",
        )
        .db()?;
    let mut found = statement.query([&key_sha256[..]]).db()?;
    found.next().db()?.map(rows::advertiser).transpose()
}

/// The advertisers with these numbers, by number; unknown numbers are skipped. One cached
/// statement per number: the callers ask about the few advertisers one person's memberships
/// name, not about many.
pub(super) fn advertisers_by_no(
    conn: &Connection,
    nos: &[u32],
) -> Result<Vec<Advertiser>, StoreError> {
    let mut wanted = nos.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    let mut statement = conn
        .prepare_cached(concat!(
            "SELECT ",
            advertiser_columns!(),
            " FROM advertisers WHERE advertiser_no = ?1"
        ))
        .db()?;
    let mut found = Vec::with_capacity(wanted.len());
    for no in wanted {
        let mut rows = statement.query([no]).db()?;
        if let Some(row) = rows.next().db()? {
            found.push(rows::advertiser(row)?);
        }
    }
    Ok(found)
}
