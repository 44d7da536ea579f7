//! The whole-store scans: every account's state, in account-number order, every membership,
//! by audience and account, and the history of a window, in recording order, in batches.
//!
//! For accounts, three cursors ordered by account number (accounts, live contact points,
//! consent events) are read side by side in one read transaction and merged per account, so
//! a scan is three sequential reads however many accounts there are, never one query per
//! account; memberships are one ordered read. Batches go through a bounded channel: memory
//! stays bounded whatever the store's size, and a slow consumer slows the scan rather than
//! the scan filling memory.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use jiff::Timestamp;
use rusqlite::{Connection, Row, Rows};
use tokio::sync::mpsc::{Receiver, Sender};

use super::SqlResult;
use super::rows::{
    self, account_columns, consent_columns, contact_columns, membership_columns, micros,
};
use super::schema::{Role, connect};
use crate::{AccountState, Membership, ScannedEvent, StoreError};

/// Batches in flight between the scan and its consumer.
const QUEUE: usize = 2;

type Batch<T> = Result<Vec<T>, StoreError>;

/// Runs a scan to its end, or until the receiver is dropped. A failure (or a panic, which
/// would be a bug here) is sent as the last item, so that the consumer never mistakes a
/// scan cut short for a complete one.
fn guarded<T>(
    what: &'static str,
    sender: &Sender<Batch<T>>,
    scan: impl FnOnce() -> Result<(), StoreError>,
) {
    let outcome = catch_unwind(AssertUnwindSafe(scan));
    let failure = match outcome {
        Ok(Ok(())) => return,
        Ok(Err(error)) => error,
        Err(_) => StoreError::Database(format!("the {what} scan panicked")),
    };
    // The receiver may be gone; then nobody is left to tell.
    let _ = sender.blocking_send(Err(failure));
}

/// Starts a scan on a thread of its own rather than the runtime's blocking pool: a scan of
/// millions of rows is long, and it must run to its end (or report why not) even when called
/// outside a runtime or while one shuts down. Returns the receiving end of its batches.
pub(super) fn start<T: Send + 'static>(
    db: &Path,
    batch: usize,
    what: &'static str,
    run: impl FnOnce(&Path, usize, &Sender<Batch<T>>) + Send + 'static,
) -> Receiver<Batch<T>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(QUEUE);
    let db = db.to_path_buf();
    let batch = batch.max(1);
    let scan_sender = sender.clone();
    let spawned = std::thread::Builder::new()
        .name("tailor-store-scan".into())
        .spawn(move || run(&db, batch, &scan_sender));
    if let Err(e) = spawned {
        // The channel is empty, so this cannot fail for lack of room.
        let _ = sender.try_send(Err(StoreError::Database(format!(
            "cannot start the {what} scan: {e}"
        ))));
    }
    receiver
}

/// Scans every account.
pub(super) fn run(db: &Path, batch: usize, sender: &Sender<Batch<AccountState>>) {
    guarded("account", sender, || scan(db, batch, sender));
}

/// Scans every membership not yet ended (those past expiry included, until the expiry sweep
/// ends them).
pub(super) fn run_memberships(db: &Path, batch: usize, sender: &Sender<Batch<Membership>>) {
    guarded("membership", sender, || scan_memberships(db, batch, sender));
}

/// Scans the grants recorded in a window and the ends recorded from its start on.
pub(super) fn run_history(
    db: &Path,
    window: (Timestamp, Timestamp),
    batch: usize,
    sender: &Sender<Batch<ScannedEvent>>,
) {
    guarded("history", sender, || {
        scan_history(db, window, batch, sender)
    });
}

/// Connections a history scan reads at once, at most: the history is the largest table, and
/// an incident analysis waits for all of it.
const HISTORY_READERS: usize = 4;

/// Attempts at opening the readers of a history scan on one snapshot.
const SNAPSHOT_ATTEMPTS: usize = 5;

/// A snapshot of the history: the log's last entry and the last history row.
type Marker = (i64, i64);

/// The state a snapshot of the history is identified by: the log's last entry and the last
/// history row. Every write that changes the history appends to the log in its transaction,
/// so two read transactions that see the same pair see the same history.
fn marker(conn: &Connection) -> Result<Marker, StoreError> {
    conn.query_row(
        "SELECT (SELECT COALESCE(MAX(seq), -1) FROM log_entries), \
                (SELECT COALESCE(MAX(event_no), 0) FROM membership_events)",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .db()
}

/// Opens `n` connections, each in a read transaction, with the snapshot each one took.
fn open_readers(db: &Path, n: usize) -> Result<Vec<(Connection, Marker)>, StoreError> {
    (0..n)
        .map(|_| {
            let conn = connect(db, Role::Reader)?;
            // The snapshot is taken at the transaction's first read: the marker's.
            conn.execute_batch("BEGIN").db()?;
            let marker = marker(&conn)?;
            Ok((conn, marker))
        })
        .collect()
}

/// Opens `readers` connections, each in a read transaction, all on the same snapshot; returns
/// them with the last history row that snapshot holds. Falls back to one reader when writes
/// keep landing between the openings.
fn snapshot_readers(db: &Path, readers: usize) -> Result<(Vec<Connection>, i64), StoreError> {
    for _ in 0..SNAPSHOT_ATTEMPTS {
        let opened = open_readers(db, readers)?;
        if opened.windows(2).all(|pair| pair[0].1 == pair[1].1) {
            let last = opened.first().map_or(0, |(_, marker)| marker.1);
            return Ok((opened.into_iter().map(|(conn, _)| conn).collect(), last));
        }
    }
    let opened = open_readers(db, 1)?;
    let last = opened.first().map_or(0, |(_, marker)| marker.1);
    Ok((opened.into_iter().map(|(conn, _)| conn).collect(), last))
}

fn scan_history(
    db: &Path,
    (from, to): (Timestamp, Timestamp),
    batch: usize,
    sender: &Sender<Batch<ScannedEvent>>,
) -> Result<(), StoreError> {
    let readers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, HISTORY_READERS);
    let (conns, last) = snapshot_readers(db, readers)?;
    // Equal ranges of event numbers, one per reader (numbers deleted by pruning or erasure
    // leave some ranges lighter; they are still read in one pass each).
    let readers = conns.len() as i64;
    let span = ((last + readers - 1) / readers).max(1);
    let (parts, received) =
        std::sync::mpsc::sync_channel::<(usize, Option<Batch<_>>)>(QUEUE * conns.len());
    std::thread::scope(|scope| {
        for (part, conn) in conns.into_iter().enumerate() {
            let parts = parts.clone();
            let range = (part as i64 * span + 1, (part as i64 + 1) * span);
            scope.spawn(move || {
                let outcome = catch_unwind(AssertUnwindSafe(|| {
                    scan_history_range(&conn, (from, to), range, batch, |rows| {
                        parts.send((part, Some(Ok(rows)))).is_ok()
                    })
                }));
                let end = match outcome {
                    Ok(Ok(())) => None,
                    Ok(Err(error)) => Some(Err(error)),
                    Err(_) => Some(Err(StoreError::Database(
                        "the history scan panicked".into(),
                    ))),
                };
                // The coordinator may be gone (the consumer stopped listening).
                if let Some(failure) = end {
                    let _ = parts.send((part, Some(failure)));
                }
                let _ = parts.send((part, None));
            });
        }
        drop(parts);
        let outcome = forward_in_order(&received, sender);
        // Readers still sending find no one listening and stop, so that the scope can end.
        drop(received);
        outcome
    })
}

/// Forwards the readers' batches in event order: the first range's as they come, the others'
/// held until every range before theirs is done. Returning stops the readers (their sends
/// fail once the receiver is dropped).
fn forward_in_order(
    received: &std::sync::mpsc::Receiver<(usize, Option<Batch<ScannedEvent>>)>,
    sender: &Sender<Batch<ScannedEvent>>,
) -> Result<(), StoreError> {
    let mut current = 0;
    let mut held: std::collections::BTreeMap<usize, Vec<Vec<ScannedEvent>>> =
        std::collections::BTreeMap::new();
    let mut done = std::collections::BTreeSet::new();
    while let Ok((part, item)) = received.recv() {
        match item {
            Some(Err(error)) => return Err(error),
            Some(Ok(rows)) if part == current => {
                if sender.blocking_send(Ok(rows)).is_err() {
                    return Ok(());
                }
            }
            Some(Ok(rows)) => held.entry(part).or_default().push(rows),
            None => {
                done.insert(part);
                while done.contains(&current) {
                    current += 1;
                    for rows in held.remove(&current).into_iter().flatten() {
                        if sender.blocking_send(Ok(rows)).is_err() {
                            return Ok(());
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Reads one range of event numbers of a history scan, handing batches to `send` (which
/// says whether to go on).
fn scan_history_range(
    conn: &Connection,
    (from, to): (Timestamp, Timestamp),
    (first, last): (i64, i64),
    batch: usize,
    send: impl FnMut(Vec<ScannedEvent>) -> bool,
) -> Result<(), StoreError> {
    // `event_no` is the rowid: each range is read in the table's own order, without a sort.
    let mut query = conn
        .prepare(
            "SELECT audience_no, account_no, kind = 'revoke', job_no, contact_digest, context, \
             consent_seq, at FROM membership_events WHERE event_no BETWEEN ?3 AND ?4 \
             AND ((kind = 'grant' AND at BETWEEN ?1 AND ?2) OR (kind = 'revoke' AND at >= ?1)) \
             ORDER BY event_no",
        )
        .db()?;
    let mut found = query.query((micros(from), micros(to), first, last)).db()?;
    send_rows(&mut found, batch, rows::scanned_event, send)
}

/// Hands decoded rows to `send` in batches of `batch`; stops early (without an error) when
/// `send` says the receiver is gone.
fn send_rows<T>(
    found: &mut Rows<'_>,
    batch: usize,
    decode: fn(&Row<'_>) -> Result<T, StoreError>,
    mut send: impl FnMut(Vec<T>) -> bool,
) -> Result<(), StoreError> {
    let capacity = batch.min(8192);
    let mut pending = Vec::with_capacity(capacity);
    while let Some(row) = found.next().db()? {
        pending.push(decode(row)?);
        if pending.len() >= batch {
            let full = std::mem::replace(&mut pending, Vec::with_capacity(capacity));
            if !send(full) {
                return Ok(());
            }
        }
    }
    if !pending.is_empty() {
        send(pending);
    }
    Ok(())
}

fn scan_memberships(
    db: &Path,
    batch: usize,
    sender: &Sender<Batch<Membership>>,
) -> Result<(), StoreError> {
    let mut conn = connect(db, Role::Reader)?;
    let tx = conn.transaction().db()?;
    let mut query = tx
        .prepare(concat!(
            "SELECT ",
            membership_columns!(),
            " FROM memberships ORDER BY audience_no, account_no"
        ))
        .db()?;
    let mut found = query.query([]).db()?;
    send_rows(&mut found, batch, rows::membership, |rows| {
        sender.blocking_send(Ok(rows)).is_ok()
    })
}

fn scan(db: &Path, batch: usize, sender: &Sender<Batch<AccountState>>) -> Result<(), StoreError> {
    let mut conn = connect(db, Role::Reader)?;
    // One snapshot for the whole scan: a write that lands meanwhile is either wholly in it or
    // wholly out of it.
    let tx = conn.transaction().db()?;
    let mut accounts_query = tx
        .prepare(concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts ORDER BY account_no"
        ))
        .db()?;
    let mut contacts_query = tx
        .prepare(concat!(
            "SELECT ",
            contact_columns!(),
            " FROM contact_points WHERE removed_at IS NULL ORDER BY account_no, contact_no"
        ))
        .db()?;
    let mut consents_query = tx
        .prepare(concat!(
            "SELECT ",
            consent_columns!(),
            " FROM consent_events ORDER BY account_no, seq"
        ))
        .db()?;
    let mut accounts = accounts_query.query([]).db()?;
    let mut contacts = Cursor::new(
        contacts_query.query([]).db()?,
        rows::contact,
        "contact point",
    )?;
    let mut consents = Cursor::new(
        consents_query.query([]).db()?,
        rows::consent,
        "consent event",
    )?;

    let mut pending = Vec::with_capacity(batch);
    while let Some(row) = accounts.next().db()? {
        let mut state = rows::account(row)?;
        let no = i64::from(state.no.0);
        contacts.take_for(no, &mut state.contacts)?;
        consents.take_for(no, &mut state.consents)?;
        pending.push(state);
        if pending.len() >= batch {
            let full = std::mem::replace(&mut pending, Vec::with_capacity(batch));
            if sender.blocking_send(Ok(full)).is_err() {
                return Ok(());
            }
        }
    }
    contacts.expect_end()?;
    consents.expect_end()?;
    if !pending.is_empty() {
        // A closed channel means the consumer stopped listening; nothing is lost.
        let _ = sender.blocking_send(Ok(pending));
    }
    Ok(())
}

/// A cursor over rows ordered by account number, one row read ahead.
struct Cursor<'s, T> {
    rows: Rows<'s>,
    decode: fn(&Row<'_>) -> Result<(i64, T), StoreError>,
    ahead: Option<(i64, T)>,
    what: &'static str,
}

impl<'s, T> Cursor<'s, T> {
    fn new(
        rows: Rows<'s>,
        decode: fn(&Row<'_>) -> Result<(i64, T), StoreError>,
        what: &'static str,
    ) -> Result<Self, StoreError> {
        let mut cursor = Self {
            rows,
            decode,
            ahead: None,
            what,
        };
        cursor.advance()?;
        Ok(cursor)
    }

    fn advance(&mut self) -> Result<(), StoreError> {
        self.ahead = match self.rows.next().db()? {
            Some(row) => Some((self.decode)(row)?),
            None => None,
        };
        Ok(())
    }

    /// Moves every row of account `no` into `out`. Rows are ordered by account number, so a
    /// row of a smaller number belongs to no account: the foreign keys forbid it.
    fn take_for(&mut self, no: i64, out: &mut Vec<T>) -> Result<(), StoreError> {
        while let Some((row_no, _)) = &self.ahead {
            if *row_no > no {
                break;
            }
            if *row_no < no {
                return Err(self.orphan());
            }
            if let Some((_, item)) = self.ahead.take() {
                out.push(item);
            }
            self.advance()?;
        }
        Ok(())
    }

    fn expect_end(&self) -> Result<(), StoreError> {
        match self.ahead {
            Some(_) => Err(self.orphan()),
            None => Ok(()),
        }
    }

    fn orphan(&self) -> StoreError {
        StoreError::Corrupt(format!("a stored {} belongs to no account", self.what))
    }
}
