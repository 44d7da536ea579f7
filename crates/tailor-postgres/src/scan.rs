//! The whole-store scans: every account's state, in account-number order, every membership,
//! by audience and account, and the history of a window, in recording order, in batches.
//!
//! For accounts, three cursors (portals) ordered by account number (accounts, live contact
//! points, consent events) are read side by side in one read-only snapshot and merged per
//! account, a few thousand rows per fetch: a scan is three sequential reads however many
//! accounts there are, never one query per account. Batches go through a bounded channel:
//! memory stays bounded whatever the store's size, and a slow consumer slows the scan rather
//! than the scan filling memory. A failure, or a panic (a bug), is sent as the last item, so
//! that a consumer never mistakes a scan cut short for a complete one.

use std::collections::VecDeque;
use std::future::Future;

use deadpool_postgres::Pool;
use jiff::Timestamp;
use tailor_store::{AccountState, Membership, ScannedEvent, StoreError};
use tokio::runtime::Handle;
use tokio::sync::mpsc::{Receiver, Sender, channel};
use tokio_postgres::{Portal, Row};

use crate::rows::{self, account_columns, consent_columns, contact_columns, membership_columns};
use crate::transaction::{Db, Tx, connection, snapshot};

/// Batches in flight between the scan and its consumer.
const QUEUE: usize = 2;

/// Rows fetched at once from a merged cursor.
const FETCH: i32 = 4_096;

type Batch<T> = Result<Vec<T>, StoreError>;

/// Starts a scan as a task on `runtime`, with a second task that reports a panic of the
/// first. Returns the receiving end of its batches.
fn start<T, F, Fut>(runtime: &Handle, what: &'static str, scan: F) -> Receiver<Batch<T>>
where
    T: Send + 'static,
    F: FnOnce(Sender<Batch<T>>) -> Fut,
    Fut: Future<Output = Result<(), StoreError>> + Send + 'static,
{
    let (sender, receiver) = channel(QUEUE);
    let running = runtime.spawn(scan(sender.clone()));
    runtime.spawn(async move {
        let failure = match running.await {
            Ok(Ok(())) => return,
            Ok(Err(error)) => error,
            Err(_) => StoreError::Database(format!("the {what} scan panicked")),
        };
        // The receiver may be gone; then nobody is left to tell.
        let _ = sender.send(Err(failure)).await;
    });
    receiver
}

/// Scans every account's state.
pub(crate) fn accounts(
    pool: Pool,
    runtime: &Handle,
    batch: usize,
) -> Receiver<Batch<AccountState>> {
    let batch = batch.max(1);
    start(runtime, "account", move |sender| async move {
        scan_accounts(&pool, batch, &sender).await
    })
}

/// Scans every membership not yet ended.
pub(crate) fn memberships(
    pool: Pool,
    runtime: &Handle,
    batch: usize,
) -> Receiver<Batch<Membership>> {
    let batch = batch.max(1);
    start(runtime, "membership", move |sender| async move {
        scan_memberships(&pool, batch, &sender).await
    })
}

/// Scans the grants recorded in a window and the ends recorded from its start on.
pub(crate) fn history(
    pool: Pool,
    runtime: &Handle,
    (from, to): (Timestamp, Timestamp),
    batch: usize,
) -> Receiver<Batch<ScannedEvent>> {
    let batch = batch.max(1);
    start(runtime, "history", move |sender| async move {
        scan_history(&pool, (from, to), batch, &sender).await
    })
}

/// The number of rows to fetch for a batch of `batch`.
fn fetch_size(batch: usize) -> i32 {
    i32::try_from(batch).unwrap_or(i32::MAX)
}

async fn scan_memberships(
    pool: &Pool,
    batch: usize,
    sender: &Sender<Batch<Membership>>,
) -> Result<(), StoreError> {
    let mut client = connection(pool).await?;
    let tx = snapshot(&mut client).await?;
    let portal = tx
        .bind(
            concat!(
                "SELECT ",
                membership_columns!(),
                " FROM memberships ORDER BY audience_no, account_no"
            ),
            &[],
        )
        .await
        .db()?;
    send_portal(&tx, &portal, batch, rows::membership, sender).await
}

async fn scan_history(
    pool: &Pool,
    (from, to): (Timestamp, Timestamp),
    batch: usize,
    sender: &Sender<Batch<ScannedEvent>>,
) -> Result<(), StoreError> {
    let mut client = connection(pool).await?;
    let tx = snapshot(&mut client).await?;
    let (from, to) = (rows::micros(from), rows::micros(to));
    let portal = tx
        .bind(
            "SELECT audience_no, account_no, kind = 'revoke', job_no, contact_digest, context, \
             consent_seq, at FROM membership_events \
             WHERE (kind = 'grant' AND at BETWEEN $1 AND $2) OR (kind = 'revoke' AND at >= $1) \
             ORDER BY event_no",
            &[&from, &to],
        )
        .await
        .db()?;
    send_portal(&tx, &portal, batch, rows::scanned_event, sender).await
}

/// Sends a portal's rows, decoded, in batches of `batch`; stops early (without an error) when
/// the receiver is gone.
async fn send_portal<T>(
    tx: &Tx<'_>,
    portal: &Portal,
    batch: usize,
    decode: fn(&Row) -> Result<T, StoreError>,
    sender: &Sender<Batch<T>>,
) -> Result<(), StoreError> {
    loop {
        let found = tx.query_portal(portal, fetch_size(batch)).await.db()?;
        if found.is_empty() {
            return Ok(());
        }
        let last = found.len() < batch;
        let decoded = found.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        if sender.send(Ok(decoded)).await.is_err() || last {
            return Ok(());
        }
    }
}

async fn scan_accounts(
    pool: &Pool,
    batch: usize,
    sender: &Sender<Batch<AccountState>>,
) -> Result<(), StoreError> {
    let mut client = connection(pool).await?;
    // One snapshot for the whole scan: a write that lands meanwhile is either wholly in it or
    // wholly out of it.
    let tx = snapshot(&mut client).await?;
    let accounts = tx
        .bind(
            concat!(
                "SELECT ",
                account_columns!(),
                " FROM accounts ORDER BY account_no"
            ),
            &[],
        )
        .await
        .db()?;
    let mut contacts = Cursor::open(
        &tx,
        concat!(
            "SELECT ",
            contact_columns!(),
            " FROM contact_points WHERE removed_at IS NULL ORDER BY account_no, contact_no"
        ),
        rows::contact,
        "contact point",
    )
    .await?;
    let mut consents = Cursor::open(
        &tx,
        concat!(
            "SELECT ",
            consent_columns!(),
            " FROM consent_events ORDER BY account_no, seq"
        ),
        rows::consent,
        "consent event",
    )
    .await?;
    loop {
        let found = tx.query_portal(&accounts, fetch_size(batch)).await.db()?;
        if found.is_empty() {
            break;
        }
        let last = found.len() < batch;
        let mut states = Vec::with_capacity(found.len());
        for row in &found {
            let mut state = rows::account(row)?;
            let no = i64::from(state.no.0);
            contacts.take_for(no, &mut state.contacts).await?;
            consents.take_for(no, &mut state.consents).await?;
            states.push(state);
        }
        if sender.send(Ok(states)).await.is_err() {
            // The consumer stopped listening; nothing is lost.
            return Ok(());
        }
        if last {
            break;
        }
    }
    contacts.expect_end().await?;
    consents.expect_end().await
}

/// A cursor over rows ordered by account number, read a fetch at a time.
struct Cursor<'t, T> {
    tx: &'t Tx<'t>,
    portal: Portal,
    ahead: VecDeque<(i64, T)>,
    exhausted: bool,
    decode: fn(&Row) -> Result<(i64, T), StoreError>,
    what: &'static str,
}

impl<'t, T> Cursor<'t, T> {
    async fn open(
        tx: &'t Tx<'t>,
        sql: &str,
        decode: fn(&Row) -> Result<(i64, T), StoreError>,
        what: &'static str,
    ) -> Result<Self, StoreError> {
        let portal = tx.bind(sql, &[]).await.db()?;
        Ok(Self {
            tx,
            portal,
            ahead: VecDeque::new(),
            exhausted: false,
            decode,
            what,
        })
    }

    /// The account number of the next row, fetching more rows if none is read ahead.
    async fn peek(&mut self) -> Result<Option<i64>, StoreError> {
        if self.ahead.is_empty() && !self.exhausted {
            let found = self.tx.query_portal(&self.portal, FETCH).await.db()?;
            self.exhausted = found.len() < FETCH as usize;
            for row in &found {
                self.ahead.push_back((self.decode)(row)?);
            }
        }
        Ok(self.ahead.front().map(|(no, _)| *no))
    }

    /// Moves every row of account `no` into `out`. Rows are ordered by account number, so a
    /// row of a smaller number belongs to no account: the foreign keys forbid it.
    async fn take_for(&mut self, no: i64, out: &mut Vec<T>) -> Result<(), StoreError> {
        while let Some(row_no) = self.peek().await? {
            if row_no > no {
                break;
            }
            if row_no < no {
                return Err(self.orphan());
            }
            if let Some((_, item)) = self.ahead.pop_front() {
                out.push(item);
            }
        }
        Ok(())
    }

    async fn expect_end(&mut self) -> Result<(), StoreError> {
        match self.peek().await? {
            Some(_) => Err(self.orphan()),
            None => Ok(()),
        }
    }

    fn orphan(&self) -> StoreError {
        StoreError::Corrupt(format!("a stored {} belongs to no account", self.what))
    }
}
