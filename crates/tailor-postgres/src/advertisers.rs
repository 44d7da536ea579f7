//! Advertisers and their API keys.
//!
//! A key is stored as its SHA-256 only, and a lookup by hash finds unrevoked keys only. A key
//! belongs to one advertiser: revoking through another advertiser's number finds nothing. A
//! key's hash is never read back out of the database.

use jiff::Timestamp;
use tailor_store::log::LogEvent;
use tailor_store::{Advertiser, ApiKeyRecord, NewAdvertiser, StoreError, to_stored_precision};

use crate::counters::{Sequence, Tally};
use crate::rows::{self, advertiser_columns, key_columns, micros};
use crate::transaction::{Tx, execute, execute_unique, query, query_opt};

/// Creates an advertiser and its first key, and logs it.
pub(crate) async fn create_advertiser(
    tx: &Tx<'_>,
    tally: &mut Tally,
    new: NewAdvertiser,
    now: Timestamp,
) -> Result<Advertiser, StoreError> {
    let now = to_stored_precision(now);
    let no = tally.next(tx, Sequence::Advertiser).await?;
    let no = u32::try_from(no)
        .map_err(|_| StoreError::Database("advertiser numbers are used up".into()))?;
    execute_unique(
        tx,
        "INSERT INTO advertisers (advertiser_no, advertiser_id, name, entity, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &i64::from(no),
            &new.advertiser_id,
            &new.name,
            &new.entity,
            &micros(now),
        ],
        "the advertiser id is taken",
    )
    .await?;
    tally.advertisers += 1;
    insert_key(tx, no, &new.key_id, &new.key_sha256, now).await?;
    tally.journal.record(
        now,
        LogEvent::AdvertiserCreated {
            advertiser_id: new.advertiser_id.clone(),
            entity: new.entity.clone(),
        },
    );
    Ok(Advertiser {
        no,
        advertiser_id: new.advertiser_id,
        name: new.name,
        entity: new.entity,
        created_at: now,
    })
}

async fn insert_key(
    tx: &Tx<'_>,
    advertiser_no: u32,
    key_id: &str,
    key_sha256: &[u8; 32],
    now: Timestamp,
) -> Result<(), StoreError> {
    execute_unique(
        tx,
        "INSERT INTO api_keys (key_id, advertiser_no, key_sha256, created_at) \
         VALUES ($1, $2, $3, $4)",
        &[
            &key_id,
            &i64::from(advertiser_no),
            &key_sha256.as_slice(),
            &micros(now),
        ],
        "the key id or key is taken",
    )
    .await?;
    Ok(())
}

/// Adds a key to an existing advertiser.
pub(crate) async fn add_api_key(
    tx: &Tx<'_>,
    advertiser_no: u32,
    key_id: &str,
    key_sha256: &[u8; 32],
    now: Timestamp,
) -> Result<ApiKeyRecord, StoreError> {
    let now = to_stored_precision(now);
    let exists = query_opt(
        tx,
        "SELECT 1 FROM advertisers WHERE advertiser_no = $1",
        &[&i64::from(advertiser_no)],
    )
    .await?
    .is_some();
    if !exists {
        return Err(StoreError::Conflict("no such advertiser"));
    }
    insert_key(tx, advertiser_no, key_id, key_sha256, now).await?;
    Ok(ApiKeyRecord {
        key_id: key_id.to_owned(),
        advertiser_no,
        created_at: now,
        revoked_at: None,
    })
}

/// Revokes one of the advertiser's keys (a key revoked before keeps its first revocation
/// time); `None` if the advertiser has no such key.
pub(crate) async fn revoke_api_key(
    tx: &Tx<'_>,
    advertiser_no: u32,
    key_id: &str,
    now: Timestamp,
) -> Result<Option<ApiKeyRecord>, StoreError> {
    execute(
        tx,
        "UPDATE api_keys SET revoked_at = $1 \
         WHERE key_id = $2 AND advertiser_no = $3 AND revoked_at IS NULL",
        &[&micros(now), &key_id, &i64::from(advertiser_no)],
    )
    .await?;
    let row = query_opt(
        tx,
        concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys WHERE key_id = $1 AND advertiser_no = $2"
        ),
        &[&key_id, &i64::from(advertiser_no)],
    )
    .await?;
    row.as_ref().map(rows::api_key).transpose()
}

/// The advertiser's keys, oldest first.
pub(crate) async fn api_keys(
    tx: &Tx<'_>,
    advertiser_no: u32,
) -> Result<Vec<ApiKeyRecord>, StoreError> {
    let found = query(
        tx,
        concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys WHERE advertiser_no = $1 ORDER BY created_at, key_id"
        ),
        &[&i64::from(advertiser_no)],
    )
    .await?;
    found.iter().map(rows::api_key).collect()
}

/// An advertiser by its public id.
pub(crate) async fn advertiser(
    tx: &Tx<'_>,
    advertiser_id: &str,
) -> Result<Option<Advertiser>, StoreError> {
    let row = query_opt(
        tx,
        concat!(
            "SELECT ",
            advertiser_columns!(),
            " FROM advertisers WHERE advertiser_id = $1"
        ),
        &[&advertiser_id],
    )
    .await?;
    row.as_ref().map(rows::advertiser).transpose()
}

/// The advertiser owning an unrevoked key with this hash.
pub(crate) async fn advertiser_by_key(
    tx: &Tx<'_>,
    key_sha256: &[u8; 32],
) -> Result<Option<Advertiser>, StoreError> {
    let row = query_opt(
        tx,
        "SELECT a.advertiser_no, a.advertiser_id, a.name, a.entity, a.created_at \
         FROM api_keys k JOIN advertisers a ON a.advertiser_no = k.advertiser_no \
         WHERE k.key_sha256 = $1 AND k.revoked_at IS NULL",
        &[&key_sha256.as_slice()],
    )
    .await?;
    row.as_ref().map(rows::advertiser).transpose()
}

/// The advertisers with these numbers, by number; unknown numbers are skipped.
pub(crate) async fn advertisers_by_no(
    tx: &Tx<'_>,
    nos: &[u32],
) -> Result<Vec<Advertiser>, StoreError> {
    let numbers: Vec<i64> = nos.iter().map(|&n| i64::from(n)).collect();
    let found = query(
        tx,
        concat!(
            "SELECT ",
            advertiser_columns!(),
            " FROM advertisers WHERE advertiser_no = ANY($1) ORDER BY advertiser_no"
        ),
        &[&numbers],
    )
    .await?;
    found.iter().map(rows::advertiser).collect()
}
