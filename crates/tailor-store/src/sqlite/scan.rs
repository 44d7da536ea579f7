//! The whole-store scans: every account's state, in account-number order, and every
//! membership, by audience and account, in batches.
//!
//! For accounts, three cursors ordered by account number (accounts, live contact points,
//! consent events) are read side by side in one read transaction and merged per account, so
//! a scan is three sequential reads however many accounts there are, never one query per
//! account; memberships are one ordered read. Batches go through a bounded channel: memory
//! stays bounded whatever the store's size, and a slow consumer slows the scan rather than
//! the scan filling memory.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use rusqlite::{Row, Rows};
use tokio::sync::mpsc::{Receiver, Sender};

use super::SqlResult;
use super::rows::{self, account_columns, consent_columns, contact_columns, membership_columns};
use super::schema::{Role, connect};
use crate::{AccountState, Membership, StoreError};

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
    run: fn(&Path, usize, &Sender<Batch<T>>),
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
    let capacity = batch.min(8192);
    let mut pending = Vec::with_capacity(capacity);
    while let Some(row) = found.next().db()? {
        pending.push(rows::membership(row)?);
        if pending.len() >= batch {
            let full = std::mem::replace(&mut pending, Vec::with_capacity(capacity));
            if sender.blocking_send(Ok(full)).is_err() {
                return Ok(());
            }
        }
    }
    if !pending.is_empty() {
        let _ = sender.blocking_send(Ok(pending));
    }
    Ok(())
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
