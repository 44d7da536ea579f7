//! The accountability log in SQLite: entries appended in the transaction of the change they
//! record, the tree's frontier kept in the meta table (so that an append costs O(log n)),
//! the root after each entry kept beside it (so that a changed entry is found where it was
//! changed), signed checkpoints, and the per-account keys commitments are made under.
//!
//! A write function records what it did with [`Journal::record`]; the writer appends the
//! journal just before committing. Account keys live in their own table, never in the log;
//! erasure deletes the account's key. Nothing here may write a contact value, an account id
//! or an unkeyed digest into an entry.

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension};

use super::SqlResult;
use super::rows::{micros, number, timestamp};
use crate::StoreError;
use crate::log::{AccountKey, LogEntry, LogEvent, StoredCheckpoint, StoredEntry};

/// The meta row holding the tree's frontier.
const FRONTIER: &str = "log_frontier";

/// What one transaction has to log, in order.
#[derive(Debug, Default)]
pub(super) struct Journal {
    events: Vec<(Timestamp, LogEvent)>,
}

impl Journal {
    pub(super) fn record(&mut self, at: Timestamp, event: LogEvent) {
        self.events.push((at, event));
    }

    /// Appends the recorded entries to the log, in the caller's transaction.
    pub(super) fn append(&mut self, conn: &Connection) -> Result<(), StoreError> {
        if self.events.is_empty() {
            return Ok(());
        }
        let mut frontier = frontier(conn)?;
        let mut insert = conn
            .prepare_cached("INSERT INTO log_entries (seq, data, root) VALUES (?1, ?2, ?3)")
            .db()?;
        for (at, event) in self.events.drain(..) {
            let entry = LogEntry {
                index: frontier.size(),
                at,
                event,
            };
            let data = entry.to_bytes();
            frontier.push(tailor_log::leaf_hash(&data));
            let index = i64::try_from(entry.index)
                .map_err(|_| StoreError::Database("the log is full".into()))?;
            insert
                .execute((index, &data, frontier.root().as_slice()))
                .db()?;
        }
        conn.prepare_cached(
            "INSERT INTO meta (name, value) VALUES (?1, ?2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .db()?
        .execute((FRONTIER, frontier.to_bytes()))
        .db()?;
        Ok(())
    }
}

/// The tree's frontier as of the last committed entry.
fn frontier(conn: &Connection) -> Result<tailor_log::Frontier, StoreError> {
    let bytes: Option<Vec<u8>> = conn
        .prepare_cached("SELECT value FROM meta WHERE name = ?1")
        .db()?
        .query_row([FRONTIER], |row| row.get(0))
        .optional()
        .db()?;
    match bytes {
        None => Ok(tailor_log::Frontier::new()),
        Some(bytes) => tailor_log::Frontier::from_bytes(&bytes)
            .ok_or_else(|| StoreError::Corrupt("meta.log_frontier is unreadable".into())),
    }
}

/// The key an account's commitments are made under, made (32 random bytes) if it has none.
pub(super) fn account_key(conn: &Connection, account_no: u32) -> Result<AccountKey, StoreError> {
    let found: Option<Vec<u8>> = conn
        .prepare_cached("SELECT key FROM account_keys WHERE account_no = ?1")
        .db()?
        .query_row([account_no], |row| row.get(0))
        .optional()
        .db()?;
    if let Some(bytes) = found {
        return <[u8; 32]>::try_from(bytes.as_slice())
            .map(AccountKey)
            .map_err(|_| StoreError::Corrupt("account_keys.key is not 32 bytes".into()));
    }
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|_| {
        StoreError::Database("the operating system's random generator failed".into())
    })?;
    conn.prepare_cached("INSERT INTO account_keys (account_no, key) VALUES (?1, ?2)")
        .db()?
        .execute((account_no, key.as_slice()))
        .db()?;
    Ok(AccountKey(key))
}

/// Forgets an account's key: its entries stay, unlinkable to it.
pub(super) fn forget_account_key(conn: &Connection, account_no: u32) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM account_keys WHERE account_no = ?1")
        .db()?
        .execute([account_no])
        .db()?;
    Ok(())
}

/// How many entries the log holds.
pub(super) fn size(conn: &Connection) -> Result<u64, StoreError> {
    Ok(frontier(conn)?.size())
}

/// Entries `start..end` (clipped to the log), in order.
pub(super) fn entries(
    conn: &Connection,
    start: u64,
    end: u64,
) -> Result<Vec<StoredEntry>, StoreError> {
    let start = i64::try_from(start).unwrap_or(i64::MAX);
    let end = i64::try_from(end).unwrap_or(i64::MAX);
    let mut statement = conn
        .prepare_cached(
            "SELECT seq, data, root FROM log_entries WHERE seq >= ?1 AND seq < ?2 ORDER BY seq",
        )
        .db()?;
    let mut found = statement.query((start, end)).db()?;
    let mut entries = Vec::new();
    while let Some(row) = found.next().db()? {
        entries.push(entry(row)?);
    }
    Ok(entries)
}

pub(super) fn entry(row: &rusqlite::Row<'_>) -> Result<StoredEntry, StoreError> {
    let root: Vec<u8> = row.get(2).db()?;
    Ok(StoredEntry {
        index: number(row, 0, "log_entries.seq")?,
        data: row.get(1).db()?,
        root: <[u8; 32]>::try_from(root.as_slice())
            .map_err(|_| StoreError::Corrupt("log_entries.root is not 32 bytes".into()))?,
    })
}

/// Records a signed checkpoint; one per size (the same note again is accepted).
pub(super) fn add_checkpoint(
    conn: &Connection,
    checkpoint: &StoredCheckpoint,
) -> Result<(), StoreError> {
    let size = i64::try_from(checkpoint.size)
        .map_err(|_| StoreError::Database("a checkpoint size is out of range".into()))?;
    let existing: Option<String> = conn
        .prepare_cached("SELECT note FROM log_checkpoints WHERE size = ?1")
        .db()?
        .query_row([size], |row| row.get(0))
        .optional()
        .db()?;
    match existing {
        Some(note) if note == checkpoint.note => Ok(()),
        Some(_) => Err(StoreError::Conflict(
            "another checkpoint of that size exists",
        )),
        None => {
            conn.prepare_cached("INSERT INTO log_checkpoints (size, note, at) VALUES (?1, ?2, ?3)")
                .db()?
                .execute((size, &checkpoint.note, micros(checkpoint.at)))
                .db()?;
            Ok(())
        }
    }
}

/// Every stored checkpoint, by size.
pub(super) fn checkpoints(conn: &Connection) -> Result<Vec<StoredCheckpoint>, StoreError> {
    let mut statement = conn
        .prepare_cached("SELECT size, note, at FROM log_checkpoints ORDER BY size")
        .db()?;
    let mut found = statement.query([]).db()?;
    let mut checkpoints = Vec::new();
    while let Some(row) = found.next().db()? {
        checkpoints.push(StoredCheckpoint {
            size: number(row, 0, "log_checkpoints.size")?,
            note: row.get(1).db()?,
            at: timestamp(row, 2, "log_checkpoints.at")?,
        });
    }
    Ok(checkpoints)
}

// -------------------------------------------------------------------------------------------
// What each change records

/// Records an account write: the contact points it collected and removed, the consent events
/// it appended.
pub(super) fn account_changed(
    conn: &Connection,
    journal: &mut Journal,
    change: &crate::AccountChange,
    at: Timestamp,
) -> Result<(), StoreError> {
    let key = account_key(conn, change.after.no.0)?;
    journal.record(at, crate::log::account_changed(&key, change));
    Ok(())
}

/// Records memberships of accounts ended through no advertiser's action, one entry per
/// account; `ended` holds (audience number, account number) pairs.
pub(super) fn memberships_ended(
    conn: &Connection,
    journal: &mut Journal,
    ended: &[(u32, u32)],
    reason: &str,
    at: Timestamp,
) -> Result<(), StoreError> {
    let mut by_account: std::collections::BTreeMap<u32, Vec<u32>> = Default::default();
    for &(audience_no, account_no) in ended {
        by_account.entry(account_no).or_default().push(audience_no);
    }
    // A policy change can end millions of memberships of a few audiences: each id is read once.
    let mut ids: std::collections::HashMap<u32, String> = Default::default();
    for (account_no, audiences) in by_account {
        let key = account_key(conn, account_no)?;
        let mut audience_ids = Vec::with_capacity(audiences.len());
        for audience_no in audiences {
            let id = match ids.get(&audience_no) {
                Some(id) => id.clone(),
                None => {
                    let id = audience_id(conn, audience_no)?;
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

/// An audience's public id (kept by number in the log's callers; a deleted audience's id is
/// not known any more and reads as its number).
pub(super) fn audience_id(conn: &Connection, audience_no: u32) -> Result<String, StoreError> {
    let id: Option<String> = conn
        .prepare_cached("SELECT audience_id FROM audiences WHERE audience_no = ?1")
        .db()?
        .query_row([audience_no], |row| row.get(0))
        .optional()
        .db()?;
    Ok(id.unwrap_or_else(|| format!("#{audience_no}")))
}

/// The meta row holding the version of the last policy logged.
const LOGGED_POLICY: &str = "log_policy";

/// Records that a policy took effect, unless it is the last one logged.
pub(super) fn policy(
    conn: &Connection,
    journal: &mut Journal,
    version: tailor_core::PolicyVersion,
    at: Timestamp,
) -> Result<(), StoreError> {
    let last: Option<Vec<u8>> = conn
        .prepare_cached("SELECT value FROM meta WHERE name = ?1")
        .db()?
        .query_row([LOGGED_POLICY], |row| row.get(0))
        .optional()
        .db()?;
    if last.as_deref() == Some(version.0.as_slice()) {
        return Ok(());
    }
    conn.prepare_cached(
        "INSERT INTO meta (name, value) VALUES (?1, ?2) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .db()?
    .execute((LOGGED_POLICY, version.0.as_slice()))
    .db()?;
    journal.record(
        at,
        LogEvent::PolicyChanged {
            version: hex::encode(version.0),
        },
    );
    Ok(())
}
