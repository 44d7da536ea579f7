//! The platform side: account writes, consent appends and erasures, with the counters they
//! keep and the log entries they record, and the reads of accounts.
//!
//! An account write is the bulk-import hot loop, and a round trip to the server costs far more
//! than the work of one account, so a call never reads or writes account by account: the
//! accounts it names that exist are read at once, every write is worked out in memory (a later
//! write of the same account starting from the earlier one's result), and the rows go out at
//! the end, new ones by `COPY` when the call is large (`bulk`), changes by one set-wise
//! `UPDATE` each. A new account's number comes from the counter and its log key is made here.
//! Returned states are built from what was written rather than read back. Only keyed digests
//! are written for contact points.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::Timestamp;
use tailor_core::{AccountNo, AccountRegion, ConsentEvent, ContactDigests};
use tailor_store::contacts::{dedupe, identity, new_identity};
use tailor_store::log::{AccountKey, LogEvent};
use tailor_store::{
    AccountChange, AccountState, AccountWrite, Erasure, NewConsent, NewContact, StoreError,
    StoredContact, to_stored_precision,
};
use tokio_postgres::types::{ToSql, Type};

use crate::bulk::{self, BulkRow};
use crate::counters::{Sequence, Tally, count};
use crate::log::{self, KeyRow};
use crate::memberships;
use crate::rows::{self, account_columns, consent_columns, contact_columns, dense_no, micros};
use crate::transaction::{Tx, execute, query, query_opt};

/// An account row to insert.
struct AccountRow {
    account_no: i64,
    account_id: String,
    region: String,
    at: i64,
}

impl BulkRow for AccountRow {
    const TARGET: &'static str =
        "accounts (account_no, account_id, region, created_at, updated_at)";
    const TYPES: &'static [Type] = &[Type::INT8, Type::TEXT, Type::TEXT, Type::INT8, Type::INT8];
    fn values(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![
            &self.account_no,
            &self.account_id,
            &self.region,
            &self.at,
            &self.at,
        ]
    }
}

/// A contact point row to insert.
struct ContactRow {
    account_no: i64,
    contact_no: i64,
    kind: &'static str,
    context: &'static str,
    verified: bool,
    notice_version: Option<String>,
    primary_digest: Vec<u8>,
    other_digest: Option<Vec<u8>>,
    added_at: i64,
}

impl BulkRow for ContactRow {
    const TARGET: &'static str = "contact_points (account_no, contact_no, kind, context, \
         verified, notice_version, primary_digest, other_digest, added_at)";
    const TYPES: &'static [Type] = &[
        Type::INT8,
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::BOOL,
        Type::TEXT,
        Type::BYTEA,
        Type::BYTEA,
        Type::INT8,
    ];
    fn values(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![
            &self.account_no,
            &self.contact_no,
            &self.kind,
            &self.context,
            &self.verified,
            &self.notice_version,
            &self.primary_digest,
            &self.other_digest,
            &self.added_at,
        ]
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

impl BulkRow for ConsentRow {
    const TARGET: &'static str = "consent_events (account_no, seq, purpose, state, source, at, \
         notice_version, recorded_at)";
    const TYPES: &'static [Type] = &[
        Type::INT8,
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::INT8,
        Type::TEXT,
        Type::INT8,
    ];
    fn values(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![
            &self.account_no,
            &self.seq,
            &self.purpose,
            &self.state,
            &self.source,
            &self.at,
            &self.notice_version,
            &self.recorded_at,
        ]
    }
}

/// Rows of one call waiting to be written.
#[derive(Default)]
struct Queue {
    accounts: Vec<AccountRow>,
    contacts: Vec<ContactRow>,
    consents: Vec<ConsentRow>,
    keys: Vec<KeyRow>,
}

impl Queue {
    /// Writes every queued row, accounts first (the other rows refer to them).
    async fn flush(&mut self, tx: &Tx<'_>) -> Result<(), StoreError> {
        bulk::insert(tx, &self.accounts).await?;
        bulk::insert(tx, &self.contacts).await?;
        bulk::insert(tx, &self.consents).await?;
        bulk::insert(tx, &self.keys).await?;
        self.accounts.clear();
        self.contacts.clear();
        self.consents.clear();
        self.keys.clear();
        Ok(())
    }
}

/// What one call of [`write_accounts`] knows and has still to write.
#[derive(Default)]
struct Call {
    /// The current state of every existing account the call names and of every account it
    /// wrote, by id: a later write of the same account in the call starts from it.
    states: HashMap<String, AccountState>,
    /// The highest contact number each of those accounts ever used (removed ones included).
    last_contact: HashMap<i64, i64>,
    /// Their log keys.
    keys: HashMap<i64, AccountKey>,
    queue: Queue,
    /// Changes to stored contact points, by (account, contact number), the last one of each
    /// kept (each sets whole values, so the last is what running them in order leaves).
    updates: BTreeMap<(i64, i64), ContactUpdate>,
    removals: BTreeSet<(i64, i64)>,
    /// Existing accounts written: their new region (the last one given).
    touched: BTreeMap<i64, String>,
}

/// New values of a stored contact point kept by a write.
struct ContactUpdate {
    verified: bool,
    notice_version: Option<String>,
    other_digest: Option<Vec<u8>>,
}

/// Applies the account writes of one call, in order, and records each in the journal.
///
/// The accounts the call names that exist are read first, all at once (five statements);
/// then every write is worked out in memory, and what it wrote goes out at the end: new rows
/// by `bulk` (`COPY` for a large call), changed contact points and touched accounts by one
/// set-wise `UPDATE` each. A call therefore costs a handful of statements however many
/// accounts it writes, new or not.
pub(crate) async fn write_accounts(
    tx: &Tx<'_>,
    tally: &mut Tally,
    writes: &[AccountWrite],
    now: Timestamp,
) -> Result<Vec<AccountChange>, StoreError> {
    let now = to_stored_precision(now);
    let mut call = Call::default();
    read_existing(tx, writes, &mut call).await?;
    let mut changes = Vec::with_capacity(writes.len());
    for write in writes {
        let (change, key) = match call.states.get(&write.account_id) {
            None => create_account(tx, tally, &mut call, write.clone(), now).await?,
            Some(before) => {
                let before = before.clone();
                update_account(tally, &mut call, before, write.clone(), now)?
            }
        };
        tally
            .journal
            .record(now, tailor_store::log::account_changed(&key, &change));
        call.states
            .insert(change.after.account_id.clone(), change.after.clone());
        changes.push(change);
    }
    finish(tx, call, now).await?;
    Ok(changes)
}

/// Reads the states, last contact numbers and keys of the accounts of `writes` that exist.
async fn read_existing(
    tx: &Tx<'_>,
    writes: &[AccountWrite],
    call: &mut Call,
) -> Result<(), StoreError> {
    let ids: Vec<&str> = writes.iter().map(|w| w.account_id.as_str()).collect();
    let found = query(
        tx,
        concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts WHERE account_id = ANY($1) ORDER BY account_no"
        ),
        &[&ids],
    )
    .await?;
    if found.is_empty() {
        return Ok(());
    }
    let mut states = found
        .iter()
        .map(rows::account)
        .collect::<Result<Vec<_>, _>>()?;
    fill(tx, &mut states).await?;
    let numbers: Vec<i64> = states.iter().map(|s| i64::from(s.no.0)).collect();
    for row in query(
        tx,
        "SELECT account_no, MAX(contact_no) FROM contact_points WHERE account_no = ANY($1) \
         GROUP BY account_no",
        &[&numbers],
    )
    .await?
    {
        call.last_contact.insert(
            rows::get(&row, 0, "contact_points.account_no")?,
            rows::get(&row, 1, "contact_points.contact_no")?,
        );
    }
    for row in query(
        tx,
        "SELECT account_no, key FROM account_keys WHERE account_no = ANY($1)",
        &[&numbers],
    )
    .await?
    {
        call.keys.insert(
            rows::get(&row, 0, "account_keys.account_no")?,
            AccountKey(rows::bytes32(&row, 1, "account_keys.key")?),
        );
    }
    for state in states {
        call.states.insert(state.account_id.clone(), state);
    }
    Ok(())
}

/// Writes what a call queued: new rows first (the changes may concern them), then changed
/// contact points, removed ones and touched accounts.
async fn finish(tx: &Tx<'_>, mut call: Call, now: Timestamp) -> Result<(), StoreError> {
    call.queue.flush(tx).await?;
    if !call.updates.is_empty() {
        let mut accounts = Vec::with_capacity(call.updates.len());
        let mut numbers = Vec::with_capacity(call.updates.len());
        let mut verified = Vec::with_capacity(call.updates.len());
        let mut notices = Vec::with_capacity(call.updates.len());
        let mut others = Vec::with_capacity(call.updates.len());
        for ((account_no, contact_no), update) in call.updates {
            accounts.push(account_no);
            numbers.push(contact_no);
            verified.push(update.verified);
            notices.push(update.notice_version);
            others.push(update.other_digest);
        }
        execute(
            tx,
            "UPDATE contact_points c SET verified = u.verified, \
             notice_version = u.notice_version, other_digest = u.other_digest \
             FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BOOLEAN[], $4::TEXT[], $5::BYTEA[]) \
             AS u (account_no, contact_no, verified, notice_version, other_digest) \
             WHERE c.account_no = u.account_no AND c.contact_no = u.contact_no",
            &[&accounts, &numbers, &verified, &notices, &others],
        )
        .await?;
    }
    if !call.removals.is_empty() {
        let (accounts, numbers): (Vec<i64>, Vec<i64>) = call.removals.into_iter().unzip();
        execute(
            tx,
            "UPDATE contact_points c SET removed_at = $3 \
             FROM UNNEST($1::BIGINT[], $2::BIGINT[]) AS u (account_no, contact_no) \
             WHERE c.account_no = u.account_no AND c.contact_no = u.contact_no",
            &[&accounts, &numbers, &micros(now)],
        )
        .await?;
    }
    if !call.touched.is_empty() {
        let (accounts, regions): (Vec<i64>, Vec<String>) = call.touched.into_iter().unzip();
        execute(
            tx,
            "UPDATE accounts a SET region = u.region, updated_at = $3 \
             FROM UNNEST($1::BIGINT[], $2::TEXT[]) AS u (account_no, region) \
             WHERE a.account_no = u.account_no",
            &[&accounts, &regions, &micros(now)],
        )
        .await?;
    }
    Ok(())
}

/// Queues a new account's rows.
async fn create_account(
    tx: &Tx<'_>,
    tally: &mut Tally,
    call: &mut Call,
    write: AccountWrite,
    now: Timestamp,
) -> Result<(AccountChange, AccountKey), StoreError> {
    let AccountWrite {
        account_id,
        region,
        contacts,
        consents,
    } = write;
    let no = tally.last(tx, Sequence::Account).await? + 1;
    if no > i64::from(u32::MAX) {
        return Err(StoreError::TooManyAccounts);
    }
    tally.set_last(Sequence::Account, no);
    tally.accounts += 1;
    call.queue.accounts.push(AccountRow {
        account_no: no,
        account_id: account_id.clone(),
        region: region.as_str().to_owned(),
        at: micros(now),
    });
    let key = log::new_account_key()?;
    call.queue.keys.push(KeyRow {
        account_no: no,
        key: key.0.to_vec(),
    });
    call.keys.insert(no, key.clone());
    let mut after = AccountState {
        no: dense_no(no)?,
        account_id,
        region,
        contacts: Vec::new(),
        consents: Vec::new(),
        created_at: now,
        updated_at: now,
    };
    after.contacts = replace_contacts(tally, call, no, Vec::new(), dedupe(contacts), now)?;
    append_consents(
        tally,
        &mut call.queue,
        no,
        &mut after.consents,
        consents,
        now,
    );
    Ok((
        AccountChange {
            before: None,
            after,
        },
        key,
    ))
}

/// Changes an account that exists (or that the call created), from its current state.
fn update_account(
    tally: &mut Tally,
    call: &mut Call,
    before: AccountState,
    write: AccountWrite,
    now: Timestamp,
) -> Result<(AccountChange, AccountKey), StoreError> {
    let AccountWrite {
        region,
        contacts,
        consents,
        ..
    } = write;
    let no = i64::from(before.no.0);
    let key = match call.keys.get(&no) {
        Some(key) => key.clone(),
        None => {
            // Every account is given a key when it is created; one without (written by an
            // older version) gets it now.
            let key = log::new_account_key()?;
            call.queue.keys.push(KeyRow {
                account_no: no,
                key: key.0.to_vec(),
            });
            call.keys.insert(no, key.clone());
            key
        }
    };
    call.touched.insert(no, region.as_str().to_owned());
    let mut after = before.clone();
    after.region = region;
    after.updated_at = now;
    let live = std::mem::take(&mut after.contacts);
    after.contacts = replace_contacts(tally, call, no, live, dedupe(contacts), now)?;
    append_consents(
        tally,
        &mut call.queue,
        no,
        &mut after.consents,
        consents,
        now,
    );
    Ok((
        AccountChange {
            before: Some(before),
            after,
        },
        key,
    ))
}

/// Appends one consent event to an existing account; `None` if there is no such account.
pub(crate) async fn append_consent(
    tx: &Tx<'_>,
    tally: &mut Tally,
    account_id: &str,
    consent: NewConsent,
    now: Timestamp,
) -> Result<Option<AccountChange>, StoreError> {
    let now = to_stored_precision(now);
    let Some(before) = load_account(tx, account_id).await? else {
        return Ok(None);
    };
    let mut after = before.clone();
    let no = i64::from(after.no.0);
    touch_account(tx, no, &after.region, now).await?;
    after.updated_at = now;
    let mut queue = Queue::default();
    append_consents(
        tally,
        &mut queue,
        no,
        &mut after.consents,
        vec![consent],
        now,
    );
    queue.flush(tx).await?;
    let change = AccountChange {
        before: Some(before),
        after,
    };
    let key = log::account_key(tx, change.after.no.0).await?;
    tally
        .journal
        .record(now, tailor_store::log::account_changed(&key, &change));
    Ok(Some(change))
}

/// Erases an account: deletes its contact points (live and history), its consent events, its
/// corrections, its memberships with their history, its staged matches, its log key and its
/// row, and records only the counts. `None` if there is no such account.
pub(crate) async fn erase_account(
    tx: &Tx<'_>,
    tally: &mut Tally,
    account_id: &str,
    now: Timestamp,
) -> Result<Option<Erasure>, StoreError> {
    let Some(erased) = load_account(tx, account_id).await? else {
        return Ok(None);
    };
    let no = i64::from(erased.no.0);
    let contact_points = execute(
        tx,
        "DELETE FROM contact_points WHERE account_no = $1",
        &[&no],
    )
    .await?;
    let consent_events = execute(
        tx,
        "DELETE FROM consent_events WHERE account_no = $1",
        &[&no],
    )
    .await?;
    execute(
        tx,
        "DELETE FROM contact_corrections WHERE account_no = $1",
        &[&no],
    )
    .await?;
    let memberships = memberships::erase_account(tx, tally, erased.no, now).await?;
    execute(tx, "DELETE FROM accounts WHERE account_no = $1", &[&no]).await?;
    let signed = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    execute(
        tx,
        "INSERT INTO erasures (erased_at, contact_points, consent_events, memberships) \
         VALUES ($1, $2, $3, $4)",
        &[
            &micros(now),
            &signed(contact_points),
            &signed(consent_events),
            &signed(memberships),
        ],
    )
    .await?;
    tally.accounts -= 1;
    tally.live_contact_points -= count(erased.contacts.len());
    tally.consent_events -= signed(consent_events);
    tally.erasures += 1;
    let key = log::account_key(tx, erased.no.0).await?;
    tally.journal.record(
        now,
        LogEvent::Erasure {
            account: key.account(),
            memberships_ended: memberships,
        },
    );
    log::forget_account_key(tx, erased.no.0).await?;
    Ok(Some(Erasure {
        erased,
        contact_points,
        consent_events,
        memberships,
    }))
}

/// Sets an existing account's region and update time.
async fn touch_account(
    tx: &Tx<'_>,
    no: i64,
    region: &AccountRegion,
    now: Timestamp,
) -> Result<(), StoreError> {
    execute(
        tx,
        "UPDATE accounts SET region = $1, updated_at = $2 WHERE account_no = $3",
        &[&region.as_str(), &micros(now), &no],
    )
    .await?;
    Ok(())
}

/// Makes `wanted` the live contact points of account `no`, whose live ones are `live`:
/// those in both are kept (updated in place), those only in `live` are marked removed, new
/// ones are numbered after the highest number the account ever used, in the order listed.
/// Returns the new live set by number.
fn replace_contacts(
    tally: &mut Tally,
    call: &mut Call,
    no: i64,
    live: Vec<StoredContact>,
    wanted: Vec<NewContact>,
    now: Timestamp,
) -> Result<Vec<StoredContact>, StoreError> {
    let mut next_no = call.last_contact.get(&no).copied().unwrap_or(0) + 1;
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
                call.updates.insert(
                    (no, i64::from(kept.contact_no)),
                    ContactUpdate {
                        verified: new.verified,
                        notice_version: new.notice_version.clone(),
                        other_digest: other_digest(&new.digests).map(|d| d.to_vec()),
                    },
                );
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
        call.queue.contacts.push(ContactRow {
            account_no: no,
            contact_no: i64::from(contact_no),
            kind: new.kind.as_str(),
            context: new.context.as_str(),
            verified: new.verified,
            notice_version: new.notice_version.clone(),
            primary_digest: new.digests.primary().0.to_vec(),
            other_digest: other_digest(&new.digests).map(|d| d.to_vec()),
            added_at: micros(now),
        });
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
    call.last_contact.insert(no, next_no - 1);
    for removed in live.into_iter().flatten() {
        call.removals.insert((no, i64::from(removed.contact_no)));
        tally.live_contact_points -= 1;
    }
    result.sort_by_key(|c| c.contact_no);
    Ok(result)
}

/// A contact point's second digest form, if it has one.
fn other_digest(digests: &ContactDigests) -> Option<[u8; 32]> {
    digests.iter().nth(1).map(|d| d.0)
}

/// Queues consent events for account `no`, whose history so far is `history`.
fn append_consents(
    tally: &mut Tally,
    queue: &mut Queue,
    no: i64,
    history: &mut Vec<ConsentEvent>,
    consents: Vec<NewConsent>,
    now: Timestamp,
) {
    let mut seq = history.last().map_or(0, |e| e.seq);
    for consent in consents {
        seq += 1;
        let at = to_stored_precision(consent.at);
        queue.consents.push(ConsentRow {
            account_no: no,
            seq: i64::try_from(seq).unwrap_or(i64::MAX),
            purpose: consent.purpose.as_str(),
            state: consent.state.as_str(),
            source: consent.source.as_str(),
            at: micros(at),
            notice_version: consent.notice_version.clone(),
            recorded_at: micros(now),
        });
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
}

// -------------------------------------------------------------------------------------------
// Reads

/// One account's current state: its row, live contact points and consent history. Run it
/// inside a transaction so that the three reads see one snapshot.
pub(crate) async fn load_account(
    tx: &Tx<'_>,
    account_id: &str,
) -> Result<Option<AccountState>, StoreError> {
    let row = query_opt(
        tx,
        concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts WHERE account_id = $1"
        ),
        &[&account_id],
    )
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut states = vec![rows::account(&row)?];
    fill(tx, &mut states).await?;
    Ok(states.pop())
}

/// The current states of the given accounts that exist, in account-number order: three
/// statements for all of them.
pub(crate) async fn load_accounts_by_no(
    tx: &Tx<'_>,
    accounts: &[AccountNo],
) -> Result<Vec<AccountState>, StoreError> {
    let numbers = rows::account_numbers(accounts);
    let found = query(
        tx,
        concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts WHERE account_no = ANY($1) ORDER BY account_no"
        ),
        &[&numbers],
    )
    .await?;
    let mut states = found
        .iter()
        .map(rows::account)
        .collect::<Result<Vec<_>, _>>()?;
    fill(tx, &mut states).await?;
    Ok(states)
}

/// Reads the live contact points and consent history of `states` (sorted by number).
async fn fill(tx: &Tx<'_>, states: &mut [AccountState]) -> Result<(), StoreError> {
    if states.is_empty() {
        return Ok(());
    }
    let numbers: Vec<i64> = states.iter().map(|s| i64::from(s.no.0)).collect();
    let position = |states: &[AccountState], no: i64| {
        states
            .binary_search_by_key(&no, |s| i64::from(s.no.0))
            .map_err(|_| StoreError::Corrupt("a stored row belongs to no account".into()))
    };
    let contacts = query(
        tx,
        concat!(
            "SELECT ",
            contact_columns!(),
            " FROM contact_points WHERE account_no = ANY($1) AND removed_at IS NULL \
             ORDER BY account_no, contact_no"
        ),
        &[&numbers],
    )
    .await?;
    for row in &contacts {
        let (no, contact) = rows::contact(row)?;
        let at = position(states, no)?;
        states[at].contacts.push(contact);
    }
    let consents = query(
        tx,
        concat!(
            "SELECT ",
            consent_columns!(),
            " FROM consent_events WHERE account_no = ANY($1) ORDER BY account_no, seq"
        ),
        &[&numbers],
    )
    .await?;
    for row in &consents {
        let (no, event) = rows::consent(row)?;
        let at = position(states, no)?;
        states[at].consents.push(event);
    }
    Ok(())
}

/// The ids of the given accounts that exist, by number.
pub(crate) async fn account_ids(
    tx: &Tx<'_>,
    accounts: &[AccountNo],
) -> Result<Vec<(AccountNo, String)>, StoreError> {
    let found = query(
        tx,
        "SELECT account_no, account_id FROM accounts WHERE account_no = ANY($1) \
         ORDER BY account_no",
        &[&rows::account_numbers(accounts)],
    )
    .await?;
    found
        .iter()
        .map(|row| {
            Ok((
                dense_no(rows::get(row, 0, "accounts.account_no")?)?,
                rows::get(row, 1, "accounts.account_id")?,
            ))
        })
        .collect()
}

/// An account's number, from its id.
pub(crate) async fn account_no(
    tx: &Tx<'_>,
    account_id: &str,
) -> Result<Option<AccountNo>, StoreError> {
    let row = query_opt(
        tx,
        "SELECT account_no FROM accounts WHERE account_id = $1",
        &[&account_id],
    )
    .await?;
    row.map(|row| dense_no(rows::get(&row, 0, "accounts.account_no")?))
        .transpose()
}
