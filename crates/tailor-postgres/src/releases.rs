//! The ledger of released sizes, from which the privacy budgets of legal entities are counted.
//!
//! A release is recorded once per (audience, query, epoch): asking the same question again
//! reads the recorded answer and costs nothing. Recording checks the entity's budget and
//! charges it in the caller's write transaction (under the writer lock), so that two releases
//! can never both fit in room for one. Rows are never deleted, not even with their audience.

use jiff::Timestamp;
use tailor_core::release::{Epsilon, QueryDigest, ReleaseConfig, budget_admits};
use tailor_store::packing::{decode_size, encode_size};
use tailor_store::{Charged, NewRelease, Release, StoreError, to_stored_precision};
use tokio_postgres::Row;

use crate::counters::signed;
use crate::rows::{self, micros, number, timestamp};
use crate::transaction::{Tx, execute, query, query_opt};

/// A release from the columns `epoch, size, epsilon_micros, at` starting at `first`.
pub(crate) fn release(
    row: &Row,
    audience_no: u32,
    query: QueryDigest,
    first: usize,
) -> Result<Release, StoreError> {
    let size: &str = rows::get(row, first + 1, "releases.size")?;
    Ok(Release {
        audience_no,
        query,
        epoch: number(row, first, "releases.epoch")?,
        size: decode_size(size)?,
        epsilon: Epsilon::from_micros(number(row, first + 2, "releases.epsilon_micros")?),
        at: timestamp(row, first + 3, "releases.at")?,
    })
}

/// Records a release if it is new and the entity's budget admits it; see
/// [`tailor_store::Store::charge_release`].
pub(crate) async fn charge(
    tx: &Tx<'_>,
    new: NewRelease,
    config: &ReleaseConfig,
) -> Result<Charged, StoreError> {
    let mut release = new.release;
    let size = encode_size(release.size)?;
    release.at = to_stored_precision(release.at);
    let epoch = signed(release.epoch, "an epoch")?;
    let audience_no = i64::from(release.audience_no);
    let earlier = query_opt(
        tx,
        "SELECT epoch, size, epsilon_micros, at FROM releases \
         WHERE audience_no = $1 AND query = $2 AND epoch = $3",
        &[&audience_no, &release.query.as_bytes().as_slice(), &epoch],
    )
    .await?;
    if let Some(row) = earlier {
        return Ok(Charged::Cached(self::release(
            &row,
            release.audience_no,
            release.query,
            0,
        )?));
    }
    let since = release.at - config.period();
    let charges = entity_charges(tx, &new.entity, since).await?;
    if let Err(until) = budget_admits(&charges, release.at, config) {
        return Ok(Charged::Refused { until });
    }
    execute(
        tx,
        "INSERT INTO releases (entity, advertiser_no, audience_no, query, epoch, size, \
         epsilon_micros, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &new.entity,
            &i64::from(new.advertiser_no),
            &audience_no,
            &release.query.as_bytes().as_slice(),
            &epoch,
            &size,
            &signed(release.epsilon.micros(), "an epsilon")?,
            &micros(release.at),
        ],
    )
    .await?;
    Ok(Charged::Recorded(release))
}

/// The ε charged to an entity after `since`, oldest first.
pub(crate) async fn entity_charges(
    tx: &Tx<'_>,
    entity: &str,
    since: Timestamp,
) -> Result<Vec<(Timestamp, Epsilon)>, StoreError> {
    let found = query(
        tx,
        "SELECT at, epsilon_micros FROM releases WHERE entity = $1 AND at > $2 ORDER BY at",
        &[&entity, &micros(since)],
    )
    .await?;
    found
        .iter()
        .map(|row| {
            Ok((
                timestamp(row, 0, "releases.at")?,
                Epsilon::from_micros(number(row, 1, "releases.epsilon_micros")?),
            ))
        })
        .collect()
}
