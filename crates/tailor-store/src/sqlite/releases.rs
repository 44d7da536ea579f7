//! The ledger of released sizes, from which the privacy budgets of legal entities are counted.
//!
//! A release is recorded once per (audience, query, epoch): asking the same question again
//! reads the recorded answer and costs nothing. Recording checks the entity's budget and
//! charges it in the caller's write transaction, so that two releases can never both fit in
//! room for one. Rows are never deleted, not even with their audience: deleting an audience
//! must not give back the budget its sizes cost.

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row};
use tailor_core::release::{Epsilon, QueryDigest, ReleaseConfig, budget_admits};

use super::SqlResult;
use super::rows::{micros, number, timestamp, to_stored_precision};
use crate::packing::{decode_size, encode_size};
use crate::{Charged, NewRelease, Release, StoreError};

/// A release from the columns `epoch, size, epsilon_micros, at` starting at `first`.
pub(super) fn release(
    row: &Row<'_>,
    audience_no: u32,
    query: QueryDigest,
    first: usize,
) -> Result<Release, StoreError> {
    let size = row.get_ref(first + 1).db()?;
    let size = size
        .as_str()
        .map_err(|_| StoreError::Corrupt("releases.size is not text".into()))?;
    Ok(Release {
        audience_no,
        query,
        epoch: number(row, first, "releases.epoch")?,
        size: decode_size(size)?,
        epsilon: Epsilon::from_micros(number(row, first + 2, "releases.epsilon_micros")?),
        at: timestamp(row, first + 3, "releases.at")?,
    })
}

fn signed(n: u64, what: &'static str) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::Database(format!("{what} is out of range")))
}

/// Records a release if it is new and the entity's budget admits it; see
/// [`crate::Store::charge_release`].
pub(super) fn charge(
    conn: &Connection,
    new: NewRelease,
    config: &ReleaseConfig,
) -> Result<Charged, StoreError> {
    let mut release = new.release;
    let size = encode_size(release.size)?;
    release.at = to_stored_precision(release.at);
    let epoch = signed(release.epoch, "an epoch")?;
    let earlier = conn
        .prepare_cached(
            "SELECT epoch, size, epsilon_micros, at FROM releases \
             WHERE audience_no = ?1 AND query = ?2 AND epoch = ?3",
        )
        .db()?
        .query_row(
            (release.audience_no, release.query.as_bytes(), epoch),
            |row| Ok(self::release(row, release.audience_no, release.query, 0)),
        )
        .optional()
        .db()?;
    if let Some(earlier) = earlier {
        return Ok(Charged::Cached(earlier?));
    }
    let since = release.at - config.period();
    let charges = entity_charges(conn, &new.entity, since)?;
    if let Err(until) = budget_admits(&charges, release.at, config) {
        return Ok(Charged::Refused { until });
    }
    conn.prepare_cached(
        "INSERT INTO releases (entity, advertiser_no, audience_no, query, epoch, size, \
         epsilon_micros, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .db()?
    .execute((
        &new.entity,
        new.advertiser_no,
        release.audience_no,
        release.query.as_bytes(),
        epoch,
        size,
        signed(release.epsilon.micros(), "an epsilon")?,
        micros(release.at),
    ))
    .db()?;
    Ok(Charged::Recorded(release))
}

/// The ε charged to an entity after `since`, oldest first.
pub(super) fn entity_charges(
    conn: &Connection,
    entity: &str,
    since: Timestamp,
) -> Result<Vec<(Timestamp, Epsilon)>, StoreError> {
    let mut statement = conn
        .prepare_cached(
            "SELECT at, epsilon_micros FROM releases WHERE entity = ?1 AND at > ?2 \
             ORDER BY at",
        )
        .db()?;
    let mut found = statement.query((entity, micros(since))).db()?;
    let mut charges = Vec::new();
    while let Some(row) = found.next().db()? {
        charges.push((
            timestamp(row, 0, "releases.at")?,
            Epsilon::from_micros(number(row, 1, "releases.epsilon_micros")?),
        ));
    }
    Ok(charges)
}
