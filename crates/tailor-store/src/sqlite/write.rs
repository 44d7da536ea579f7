//! The write transactions of the platform side: account writes, consent appends and
//! erasures, with the counters they keep.
//!
//! Everything here runs inside one `IMMEDIATE` transaction per call, on the writer
//! connection. The account-write path is the bulk-import hot loop: a new account costs one
//! probe of the account-id index (the insert itself, which does nothing when the id exists
//! and falls back to reading the account), its contact point and consent rows are queued and
//! inserted many to a statement (the queue is flushed before anything is read, so reads see
//! every earlier write of the call), and the returned states are built from what was written
//! rather than read back. Only keyed digests are written for contact points.

use jiff::Timestamp;
use rusqlite::{CachedStatement, Connection};
use tailor_core::{AccountRegion, ConsentEvent, ContactDigests};

use super::SqlResult;
use super::counters::{Sequence, Tally, count};
use super::memberships;
use super::rows::{dense_no, load_account, micros, to_stored_precision};
use crate::contacts::{dedupe, identity, new_identity};
use crate::{
    AccountChange, AccountState, AccountWrite, Erasure, NewConsent, NewContact, StoreError,
    StoredContact,
};

const INSERT_ACCOUNT: &str = "INSERT INTO accounts \
     (account_no, account_id, region, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4) \
     ON CONFLICT (account_id) DO NOTHING";

/// Rows inserted by one statement of the queued inserts.
const ROWS_PER_INSERT: usize = 64;

/// A row type of the queued inserts.
trait QueuedRow {
    /// `INSERT INTO table (columns) VALUES `, to which one `(?, ...)` group per row is added.
    const INSERT: &'static str;
    const COLUMNS: usize;
    /// Binds this row's values from parameter `first` (1-based) on.
    fn bind(&self, statement: &mut CachedStatement<'_>, first: usize) -> rusqlite::Result<()>;
}

/// A contact point row to insert.
struct ContactRow {
    account_no: i64,
    contact_no: i64,
    kind: &'static str,
    context: &'static str,
    verified: bool,
    notice_version: Option<String>,
    primary_digest: [u8; 32],
    other_digest: Option<[u8; 32]>,
    added_at: i64,
}

impl QueuedRow for ContactRow {
    const INSERT: &'static str = "INSERT INTO contact_points (account_no, contact_no, kind, \
         context, verified, notice_version, primary_digest, other_digest, added_at) VALUES ";
    const COLUMNS: usize = 9;

    fn bind(&self, statement: &mut CachedStatement<'_>, first: usize) -> rusqlite::Result<()> {
        statement.raw_bind_parameter(first, self.account_no)?;
        statement.raw_bind_parameter(first + 1, self.contact_no)?;
        statement.raw_bind_parameter(first + 2, self.kind)?;
        statement.raw_bind_parameter(first + 3, self.context)?;
        statement.raw_bind_parameter(first + 4, self.verified)?;
        statement.raw_bind_parameter(first + 5, self.notice_version.as_deref())?;
        statement.raw_bind_parameter(first + 6, &self.primary_digest[..])?;
        statement.raw_bind_parameter(first + 7, self.other_digest.as_ref().map(|d| &d[..]))?;
        statement.raw_bind_parameter(first + 8, self.added_at)
    }
}

/// A consent event row to insert.
struct ConsentRow {
    account_no: i64,
    seq: i64,
    purpose: &'static str,
    state: &'static str,
    source: &'static str,
    at: i64,
    notice_version: Option<String>,
    recorded_at: i64,
}

impl QueuedRow for ConsentRow {
    const INSERT: &'static str = "INSERT INTO consent_events (account_no, seq, purpose, state, \
         source, at, notice_version, recorded_at) VALUES ";
    const COLUMNS: usize = 8;

    fn bind(&self, statement: &mut CachedStatement<'_>, first: usize) -> rusqlite::Result<()> {
        statement.raw_bind_parameter(first, self.account_no)?;
        statement.raw_bind_parameter(first + 1, self.seq)?;
        statement.raw_bind_parameter(first + 2, self.purpose)?;
        statement.raw_bind_parameter(first + 3, self.state)?;
        statement.raw_bind_parameter(first + 4, self.source)?;
        statement.raw_bind_parameter(first + 5, self.at)?;
        statement.raw_bind_parameter(first + 6, self.notice_version.as_deref())?;
        statement.raw_bind_parameter(first + 7, self.recorded_at)
    }
}

/// The insert statement of `rows` rows of `R`.
fn insert_sql<R: QueuedRow>(rows: usize) -> String {
    let group = format!("({})", vec!["?"; R::COLUMNS].join(", "));
    format!("{}{}", R::INSERT, vec![group; rows].join(", "))
}

/// Rows of one table waiting to be inserted, with the statements that insert them.
struct Queue<'c, R> {
    rows: Vec<R>,
    many: CachedStatement<'c>,
    one: CachedStatement<'c>,
}

impl<'c, R: QueuedRow> Queue<'c, R> {
    fn new(conn: &'c Connection) -> Result<Self, StoreError> {
        Ok(Self {
            rows: Vec::with_capacity(ROWS_PER_INSERT),
            many: conn
                .prepare_cached(&insert_sql::<R>(ROWS_PER_INSERT))
                .db()?,
            one: conn.prepare_cached(&insert_sql::<R>(1)).db()?,
        })
    }

    fn push(&mut self, row: R) -> Result<(), StoreError> {
        self.rows.push(row);
        if self.rows.len() == ROWS_PER_INSERT {
            for (i, row) in self.rows.iter().enumerate() {
                row.bind(&mut self.many, i * R::COLUMNS + 1).db()?;
            }
            self.many.raw_execute().db()?;
            self.rows.clear();
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        for row in self.rows.drain(..) {
            row.bind(&mut self.one, 1).db()?;
            self.one.raw_execute().db()?;
        }
        Ok(())
    }
}

/// The writes of one call: its statements and queued rows.
struct Batch<'c> {
    conn: &'c Connection,
    insert_account: CachedStatement<'c>,
    contacts: Queue<'c, ContactRow>,
    consents: Queue<'c, ConsentRow>,
}

impl<'c> Batch<'c> {
    fn new(conn: &'c Connection) -> Result<Self, StoreError> {
        Ok(Self {
            conn,
            insert_account: conn.prepare_cached(INSERT_ACCOUNT).db()?,
            contacts: Queue::new(conn)?,
            consents: Queue::new(conn)?,
        })
    }

    /// Inserts every queued row: call it before reading, and before the end of the call.
    fn flush(&mut self) -> Result<(), StoreError> {
        self.contacts.flush()?;
        self.consents.flush()
    }
}

/// Applies the account writes of one call, in order.
pub(super) fn write_accounts(
    conn: &Connection,
    tally: &mut Tally,
    writes: Vec<AccountWrite>,
    now: Timestamp,
) -> Result<Vec<AccountChange>, StoreError> {
    let now = to_stored_precision(now);
    let mut batch = Batch::new(conn)?;
    let changes = writes
        .into_iter()
        .map(|write| write_account(&mut batch, tally, write, now))
        .collect::<Result<Vec<_>, _>>()?;
    batch.flush()?;
    Ok(changes)
}

fn write_account(
    batch: &mut Batch<'_>,
    tally: &mut Tally,
    write: AccountWrite,
    now: Timestamp,
) -> Result<AccountChange, StoreError> {
    let AccountWrite {
        account_id,
        region,
        contacts,
        consents,
    } = write;
    let contacts = dedupe(contacts);

    // Try to create the account first: in a bulk import most are new, and the insert is the
    // only probe of the account-id index they need. It does nothing when the id exists.
    let candidate = tally.last(batch.conn, Sequence::Account)? + 1;
    let created = candidate <= i64::from(u32::MAX)
        && batch
            .insert_account
            .execute((candidate, &account_id, region.as_str(), micros(now)))
            .db()?
            == 1;
    if created {
        tally.set_last(Sequence::Account, candidate);
        tally.accounts += 1;
        let mut after = AccountState {
            no: dense_no(candidate)?,
            account_id,
            region,
            contacts: Vec::new(),
            consents: Vec::new(),
            created_at: now,
            updated_at: now,
        };
        after.contacts = replace_contacts(batch, tally, candidate, Vec::new(), contacts, 1, now)?;
        append_consents(batch, tally, candidate, &mut after.consents, consents, now)?;
        return Ok(AccountChange {
            before: None,
            after,
        });
    }

    // The account exists (perhaps written earlier in this call): read it, queued rows
    // included.
    batch.flush()?;
    let Some(before) = load_account(batch.conn, &account_id)? else {
        // Not created, yet not there: the account numbers are used up.
        return Err(StoreError::TooManyAccounts);
    };
    let no = i64::from(before.no.0);
    touch_account(batch.conn, no, &region, now)?;
    let next_contact_no = last_contact_no(batch.conn, no)? + 1;
    let mut after = before.clone();
    after.region = region;
    after.updated_at = now;
    let live = std::mem::take(&mut after.contacts);
    after.contacts = replace_contacts(batch, tally, no, live, contacts, next_contact_no, now)?;
    append_consents(batch, tally, no, &mut after.consents, consents, now)?;
    Ok(AccountChange {
        before: Some(before),
        after,
    })
}

/// Appends one consent event to an existing account; `None` if there is no such account.
pub(super) fn append_consent(
    conn: &Connection,
    tally: &mut Tally,
    account_id: &str,
    consent: NewConsent,
    now: Timestamp,
) -> Result<Option<AccountChange>, StoreError> {
    let now = to_stored_precision(now);
    let Some(before) = load_account(conn, account_id)? else {
        return Ok(None);
    };
    let mut after = before.clone();
    let no = i64::from(after.no.0);
    touch_account(conn, no, &after.region, now)?;
    after.updated_at = now;
    let mut batch = Batch::new(conn)?;
    append_consents(
        &mut batch,
        tally,
        no,
        &mut after.consents,
        vec![consent],
        now,
    )?;
    batch.flush()?;
    Ok(Some(AccountChange {
        before: Some(before),
        after,
    }))
}

/// Erases an account: deletes its contact points (live and history), its consent events, its
/// memberships with their history, its staged matches and its row, and records only the
/// counts. `None` if there is no such account.
pub(super) fn erase_account(
    conn: &Connection,
    tally: &mut Tally,
    account_id: &str,
    now: Timestamp,
) -> Result<Option<Erasure>, StoreError> {
    let Some(erased) = load_account(conn, account_id)? else {
        return Ok(None);
    };
    let no = i64::from(erased.no.0);
    let delete = |sql: &str| -> Result<i64, StoreError> {
        let deleted = conn.prepare_cached(sql).db()?.execute([no]).db()?;
        Ok(count(deleted))
    };
    let contact_points = delete("DELETE FROM contact_points WHERE account_no = ?1")?;
    let consent_events = delete("DELETE FROM consent_events WHERE account_no = ?1")?;
    delete("DELETE FROM contact_corrections WHERE account_no = ?1")?;
    let memberships = memberships::erase_account(conn, tally, erased.no, now)?;
    delete("DELETE FROM accounts WHERE account_no = ?1")?;
    conn.prepare_cached(
        "INSERT INTO erasures (erased_at, contact_points, consent_events, memberships) \
         VALUES (?1, ?2, ?3, ?4)",
    )
    .db()?
    .execute((
        micros(now),
        contact_points,
        consent_events,
        i64::try_from(memberships).unwrap_or(i64::MAX),
    ))
    .db()?;
    tally.accounts -= 1;
    tally.live_contact_points -= count(erased.contacts.len());
    tally.consent_events -= consent_events;
    tally.erasures += 1;
    Ok(Some(Erasure {
        erased,
        contact_points: contact_points.unsigned_abs(),
        consent_events: consent_events.unsigned_abs(),
        memberships,
    }))
}

/// Sets an existing account's region and update time.
fn touch_account(
    conn: &Connection,
    no: i64,
    region: &AccountRegion,
    now: Timestamp,
) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE accounts SET region = ?1, updated_at = ?2 WHERE account_no = ?3")
        .db()?
        .execute((region.as_str(), micros(now), no))
        .db()?;
    Ok(())
}

/// The highest contact number an account ever used, removed contact points included (numbers
/// are never reused within an account); 0 for none.
fn last_contact_no(conn: &Connection, no: i64) -> Result<i64, StoreError> {
    conn.prepare_cached(
        "SELECT COALESCE(MAX(contact_no), 0) FROM contact_points WHERE account_no = ?1",
    )
    .db()?
    .query_row([no], |row| row.get(0))
    .db()
}

/// Makes `wanted` the live contact points of account `no`, whose live ones are `live`:
/// those in both are kept (updated in place), those only in `live` are marked removed, new
/// ones are numbered from `next_no` in the order listed. Returns the new live set by number.
fn replace_contacts(
    batch: &mut Batch<'_>,
    tally: &mut Tally,
    no: i64,
    live: Vec<StoredContact>,
    wanted: Vec<NewContact>,
    mut next_no: i64,
    now: Timestamp,
) -> Result<Vec<StoredContact>, StoreError> {
    let mut live: Vec<Option<StoredContact>> = live.into_iter().map(Some).collect();
    let mut result = Vec::with_capacity(wanted.len());
    for new in wanted {
        let key = new_identity(&new);
        let existing = live.iter_mut().find(|slot| {
            slot.as_ref()
                .is_some_and(|s| identity(s.kind, s.context, &s.digests) == key)
        });
        if let Some(mut kept) = existing.and_then(Option::take) {
            if kept.verified != new.verified
                || kept.notice_version != new.notice_version
                || kept.digests != new.digests
            {
                batch
                    .conn
                    .prepare_cached(
                        "UPDATE contact_points SET verified = ?1, notice_version = ?2, \
                     other_digest = ?3 WHERE account_no = ?4 AND contact_no = ?5",
                    )
                    .db()?
                    .execute((
                        new.verified,
                        new.notice_version.as_deref(),
                        other_digest(&new.digests),
                        no,
                        i64::from(kept.contact_no),
                    ))
                    .db()?;
                kept.verified = new.verified;
                kept.notice_version = new.notice_version;
                kept.digests = new.digests;
            }
            result.push(kept);
            continue;
        }
        let contact_no = u32::try_from(next_no).map_err(|_| {
            StoreError::Database("an account has used up its contact point numbers".into())
        })?;
        next_no += 1;
        batch.contacts.push(ContactRow {
            account_no: no,
            contact_no: i64::from(contact_no),
            kind: new.kind.as_str(),
            context: new.context.as_str(),
            verified: new.verified,
            notice_version: new.notice_version.clone(),
            primary_digest: new.digests.primary().0,
            other_digest: other_digest(&new.digests),
            added_at: micros(now),
        })?;
        tally.live_contact_points += 1;
        result.push(StoredContact {
            contact_no,
            kind: new.kind,
            context: new.context,
            verified: new.verified,
            notice_version: new.notice_version,
            digests: new.digests,
            added_at: now,
        });
    }
    for removed in live.into_iter().flatten() {
        batch.conn.prepare_cached(
            "UPDATE contact_points SET removed_at = ?1 WHERE account_no = ?2 AND contact_no = ?3",
        )
        .db()?
        .execute((micros(now), no, i64::from(removed.contact_no)))
        .db()?;
        tally.live_contact_points -= 1;
    }
    result.sort_by_key(|c| c.contact_no);
    Ok(result)
}

/// A contact point's second digest form, if it has one.
fn other_digest(digests: &ContactDigests) -> Option<[u8; 32]> {
    digests.iter().nth(1).map(|d| d.0)
}

/// Appends consent events to account `no`, whose history so far is `history`.
fn append_consents(
    batch: &mut Batch<'_>,
    tally: &mut Tally,
    no: i64,
    history: &mut Vec<ConsentEvent>,
    consents: Vec<NewConsent>,
    now: Timestamp,
) -> Result<(), StoreError> {
    let mut seq = history.last().map_or(0, |e| e.seq);
    for consent in consents {
        seq += 1;
        let at = to_stored_precision(consent.at);
        batch.consents.push(ConsentRow {
            account_no: no,
            seq: i64::try_from(seq).unwrap_or(i64::MAX),
            purpose: consent.purpose.as_str(),
            state: consent.state.as_str(),
            source: consent.source.as_str(),
            at: micros(at),
            notice_version: consent.notice_version.clone(),
            recorded_at: micros(now),
        })?;
        tally.consent_events += 1;
        history.push(ConsentEvent {
            purpose: consent.purpose,
            state: consent.state,
            source: consent.source,
            at,
            notice_version: consent.notice_version,
            seq,
        });
    }
    Ok(())
}
