//! The accountability log in PostgreSQL: entries appended in the transaction of the change
//! they record (under the writer lock, so the log is one ordered chain), the tree's frontier
//! kept in `meta` (an append costs O(log n)), the root after each entry kept beside it,
//! signed checkpoints, and the per-account keys commitments are made under.
//!
//! A write records what it did with [`Journal::record`]; the writer appends the journal just
//! before committing. What an entry says is built by `tailor_store::log`, shared with the
//! SQLite backend. Account keys live in their own table, never in the log; erasure deletes
//! the account's key. Nothing here may write a contact value, an account id or an unkeyed
//! digest into an entry.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use tailor_store::StoreError;
use tailor_store::log::{AccountKey, LogEntry, LogEvent, StoredCheckpoint, StoredEntry};
use tokio_postgres::types::{ToSql, Type};

use crate::bulk::{self, BulkRow};
use crate::rows::{self, micros};
use crate::transaction::{Tx, execute, query, query_opt};

/// The meta row holding the tree's frontier.
const FRONTIER: &str = "log_frontier";

/// The meta row holding the version of the last policy logged.
const LOGGED_POLICY: &str = "log_policy";

/// What one transaction has to log, in order.
#[derive(Debug, Default)]
pub(crate) struct Journal {
    events: Vec<(Timestamp, LogEvent)>,
}

/// A log entry row.
struct EntryRow {
    seq: i64,
    data: Vec<u8>,
    root: Vec<u8>,
}

impl BulkRow for EntryRow {
    const TARGET: &'static str = "log_entries (seq, data, root)";
    const TYPES: &'static [Type] = &[Type::INT8, Type::BYTEA, Type::BYTEA];
    fn values(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![&self.seq, &self.data, &self.root]
    }
}

impl Journal {
    pub(crate) fn record(&mut self, at: Timestamp, event: LogEvent) {
        self.events.push((at, event));
    }

    /// Appends the recorded entries to the log, in the caller's transaction.
    pub(crate) async fn append(&mut self, tx: &Tx<'_>) -> Result<(), StoreError> {
        if self.events.is_empty() {
            return Ok(());
        }
        let mut frontier = frontier(tx).await?;
        let mut entries = Vec::with_capacity(self.events.len());
        for (at, event) in self.events.drain(..) {
            let entry = LogEntry {
                index: frontier.size(),
                at,
                event,
            };
            let data = entry.to_bytes();
            frontier.push(tailor_log::leaf_hash(&data));
            entries.push(EntryRow {
                seq: i64::try_from(entry.index)
                    .map_err(|_| StoreError::Database("the log is full".into()))?,
                data,
                root: frontier.root().to_vec(),
            });
        }
        bulk::insert(tx, &entries).await?;
        set_meta(tx, FRONTIER, &frontier.to_bytes()).await
    }
}

/// Sets a meta value.
pub(crate) async fn set_meta(tx: &Tx<'_>, name: &str, value: &[u8]) -> Result<(), StoreError> {
    execute(
        tx,
        "INSERT INTO meta (name, value) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        &[&name, &value],
    )
    .await?;
    Ok(())
}

/// A meta value.
pub(crate) async fn meta(tx: &Tx<'_>, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let row = query_opt(tx, "SELECT value FROM meta WHERE name = $1", &[&name]).await?;
    row.map(|row| rows::get(&row, 0, "meta.value")).transpose()
}

/// The tree's frontier as of the last committed entry.
async fn frontier(tx: &Tx<'_>) -> Result<tailor_log::Frontier, StoreError> {
    match meta(tx, FRONTIER).await? {
        None => Ok(tailor_log::Frontier::new()),
        Some(bytes) => tailor_log::Frontier::from_bytes(&bytes)
            .ok_or_else(|| StoreError::Corrupt("meta.log_frontier is unreadable".into())),
    }
}

/// A new account key: 32 random bytes.
pub(crate) fn new_account_key() -> Result<AccountKey, StoreError> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|_| {
        StoreError::Database("the operating system's random generator failed".into())
    })?;
    Ok(AccountKey(key))
}

/// An account key row.
pub(crate) struct KeyRow {
    pub(crate) account_no: i64,
    pub(crate) key: Vec<u8>,
}

impl BulkRow for KeyRow {
    const TARGET: &'static str = "account_keys (account_no, key)";
    const TYPES: &'static [Type] = &[Type::INT8, Type::BYTEA];
    fn values(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![&self.account_no, &self.key]
    }
}

/// The key an account's commitments are made under, made if it has none.
pub(crate) async fn account_key(tx: &Tx<'_>, account_no: u32) -> Result<AccountKey, StoreError> {
    let no = i64::from(account_no);
    let found = query_opt(
        tx,
        "SELECT key FROM account_keys WHERE account_no = $1",
        &[&no],
    )
    .await?;
    if let Some(row) = found {
        return rows::bytes32(&row, 0, "account_keys.key").map(AccountKey);
    }
    let key = new_account_key()?;
    execute(
        tx,
        "INSERT INTO account_keys (account_no, key) VALUES ($1, $2)",
        &[&no, &key.0.as_slice()],
    )
    .await?;
    Ok(key)
}

/// Forgets an account's key: its entries stay, unlinkable to it.
pub(crate) async fn forget_account_key(tx: &Tx<'_>, account_no: u32) -> Result<(), StoreError> {
    execute(
        tx,
        "DELETE FROM account_keys WHERE account_no = $1",
        &[&i64::from(account_no)],
    )
    .await?;
    Ok(())
}

/// How many entries the log holds.
pub(crate) async fn size(tx: &Tx<'_>) -> Result<u64, StoreError> {
    Ok(frontier(tx).await?.size())
}

/// Entries `start..end` (clipped to the log), in order.
pub(crate) async fn entries(
    tx: &Tx<'_>,
    start: u64,
    end: u64,
) -> Result<Vec<StoredEntry>, StoreError> {
    let start = i64::try_from(start).unwrap_or(i64::MAX);
    let end = i64::try_from(end).unwrap_or(i64::MAX);
    let found = query(
        tx,
        "SELECT seq, data, root FROM log_entries WHERE seq >= $1 AND seq < $2 ORDER BY seq",
        &[&start, &end],
    )
    .await?;
    found
        .iter()
        .map(|row| {
            Ok(StoredEntry {
                index: rows::number(row, 0, "log_entries.seq")?,
                data: rows::get(row, 1, "log_entries.data")?,
                root: rows::bytes32(row, 2, "log_entries.root")?,
            })
        })
        .collect()
}

/// Records a signed checkpoint; one per size (the same note again is accepted).
pub(crate) async fn add_checkpoint(
    tx: &Tx<'_>,
    checkpoint: &StoredCheckpoint,
) -> Result<(), StoreError> {
    let size = i64::try_from(checkpoint.size)
        .map_err(|_| StoreError::Database("a checkpoint size is out of range".into()))?;
    let existing = query_opt(
        tx,
        "SELECT note FROM log_checkpoints WHERE size = $1",
        &[&size],
    )
    .await?;
    match existing {
        Some(row) => {
            let note: &str = rows::get(&row, 0, "log_checkpoints.note")?;
            if note == checkpoint.note {
                Ok(())
            } else {
                Err(StoreError::Conflict(
                    "another checkpoint of that size exists",
                ))
            }
        }
        None => {
            execute(
                tx,
                "INSERT INTO log_checkpoints (size, note, at) VALUES ($1, $2, $3)",
                &[&size, &checkpoint.note, &micros(checkpoint.at)],
            )
            .await?;
            Ok(())
        }
    }
}

/// Every stored checkpoint, by size.
pub(crate) async fn checkpoints(tx: &Tx<'_>) -> Result<Vec<StoredCheckpoint>, StoreError> {
    let found = query(
        tx,
        "SELECT size, note, at FROM log_checkpoints ORDER BY size",
        &[],
    )
    .await?;
    found
        .iter()
        .map(|row| {
            Ok(StoredCheckpoint {
                size: rows::number(row, 0, "log_checkpoints.size")?,
                note: rows::get(row, 1, "log_checkpoints.note")?,
                at: rows::timestamp(row, 2, "log_checkpoints.at")?,
            })
        })
        .collect()
}

/// Records memberships of accounts ended through no advertiser's action, one entry per
/// account; `ended` holds (audience number, account number) pairs.
pub(crate) async fn memberships_ended(
    tx: &Tx<'_>,
    journal: &mut Journal,
    ended: &[(u32, u32)],
    reason: &str,
    at: Timestamp,
) -> Result<(), StoreError> {
    let mut by_account: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for &(audience_no, account_no) in ended {
        by_account.entry(account_no).or_default().push(audience_no);
    }
    // A policy change can end millions of memberships of a few audiences: each id is read once.
    let mut ids: HashMap<u32, String> = HashMap::new();
    for (account_no, audiences) in by_account {
        let key = account_key(tx, account_no).await?;
        let mut audience_ids = Vec::with_capacity(audiences.len());
        for audience_no in audiences {
            let id = match ids.get(&audience_no) {
                Some(id) => id.clone(),
                None => {
                    let id = audience_id(tx, audience_no).await?;
                    ids.insert(audience_no, id.clone());
                    id
                }
            };
            audience_ids.push(id);
        }
        audience_ids.sort();
        journal.record(
            at,
            LogEvent::MembershipsEnded {
                account: key.account(),
                reason: reason.to_owned(),
                audience_ids,
            },
        );
    }
    Ok(())
}

/// An audience's public id (a deleted audience's id is not known any more and reads as its
/// number).
pub(crate) async fn audience_id(tx: &Tx<'_>, audience_no: u32) -> Result<String, StoreError> {
    let row = query_opt(
        tx,
        "SELECT audience_id FROM audiences WHERE audience_no = $1",
        &[&i64::from(audience_no)],
    )
    .await?;
    match row {
        Some(row) => rows::get(&row, 0, "audiences.audience_id"),
        None => Ok(format!("#{audience_no}")),
    }
}

/// Records that a policy took effect, unless it is the last one logged.
pub(crate) async fn policy(
    tx: &Tx<'_>,
    journal: &mut Journal,
    version: tailor_core::PolicyVersion,
    at: Timestamp,
) -> Result<(), StoreError> {
    if meta(tx, LOGGED_POLICY).await?.as_deref() == Some(version.0.as_slice()) {
        return Ok(());
    }
    set_meta(tx, LOGGED_POLICY, version.0.as_slice()).await?;
    journal.record(
        at,
        LogEvent::PolicyChanged {
            version: hex::encode(version.0),
        },
    );
    Ok(())
}
