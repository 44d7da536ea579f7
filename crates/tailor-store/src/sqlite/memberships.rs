//! Memberships and their history: applying a job, ending memberships (by a job, by consent,
//! by expiry, by deleting an audience, by erasing an account), and reading them back.
//!
//! Applying a job is the hot path: half a million grants in one transaction. Grants are
//! sorted by account, so that every B-tree they touch is walked once from left to right, and
//! written many rows to a prepared statement, the values shared by every row of a call (the
//! audience, the job, the times) bound once per statement. Every grant and every end writes a
//! history row with the basis granted or ended; history rows are numbered from a counter.
//! Each audience's `membership_rows` and the store's `memberships` counter move in the same
//! transaction as the rows.
//!
//! Nothing here may write a membership without its history row, or end one without it.

use std::collections::BTreeMap;

use jiff::Timestamp;
use rusqlite::{CachedStatement, Connection, OptionalExtension, ToSql};
use tailor_core::release::QueryDigest;
use tailor_core::{AccountNo, Context, PolicyVersion};

use super::SqlResult;
use super::counters::{Sequence, Tally, count};
use super::rows::{self, event_columns, membership_columns, micros, to_stored_precision};
use crate::audience::expiry;
use crate::packing::{holds_account, without_account};
use crate::{
    Applied, Grant, JobOp, JobState, Membership, MembershipEvent, RevokeReason, StoreError,
};

/// Rows written (or accounts named) by one statement.
const ROWS_PER_STATEMENT: usize = 128;

/// A number as SQL wants it.
fn signed(n: u64, what: &'static str) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::Database(format!("{what} is out of range")))
}

/// What happened, for a history row.
#[derive(Clone, Copy)]
enum Change {
    Grant,
    Revoke(RevokeReason),
}

impl Change {
    fn kind(self) -> &'static str {
        match self {
            Self::Grant => "grant",
            Self::Revoke(_) => "revoke",
        }
    }

    fn reason(self) -> Option<&'static str> {
        match self {
            Self::Grant => None,
            Self::Revoke(reason) => Some(reason.as_str()),
        }
    }
}

/// The values every row of one multi-row statement shares, bound as `?1`, `?2`, ... and the
/// per-row values bound after them.
trait RowValues {
    /// Per-row values.
    const COLUMNS: usize;
    fn bind(&self, statement: &mut CachedStatement<'_>, first: usize) -> rusqlite::Result<()>;
}

/// Binds `shared` as `?1`.. and each row's values after them.
fn bind_all<R: RowValues>(
    statement: &mut CachedStatement<'_>,
    shared: &[&dyn ToSql],
    rows: &[R],
) -> Result<(), StoreError> {
    for (i, value) in shared.iter().enumerate() {
        statement.raw_bind_parameter(i + 1, value).db()?;
    }
    for (i, row) in rows.iter().enumerate() {
        row.bind(statement, shared.len() + 1 + i * R::COLUMNS)
            .db()?;
    }
    Ok(())
}

/// `VALUES` groups for `rows` rows: each group is `template` with `{}` replaced by the
/// per-row parameters, numbered after `shared` shared ones.
fn values_sql(template: &str, shared: usize, columns: usize, rows: usize) -> String {
    let mut groups = Vec::with_capacity(rows);
    for row in 0..rows {
        let mut group = template.to_owned();
        for column in 0..columns {
            let n = shared + 1 + row * columns + column;
            group = group.replacen("{}", &format!("?{n}"), 1);
        }
        groups.push(group);
    }
    groups.join(", ")
}

// -------------------------------------------------------------------------------------------
// History

/// One history row's own values (the shared ones are the audience, the change, the job and
/// the time).
struct EventRow {
    event_no: i64,
    account_no: u32,
    contact_digest: [u8; 32],
    context: &'static str,
    consent_seq: Option<i64>,
    policy_version: [u8; 32],
}

impl RowValues for EventRow {
    const COLUMNS: usize = 6;

    fn bind(&self, statement: &mut CachedStatement<'_>, first: usize) -> rusqlite::Result<()> {
        statement.raw_bind_parameter(first, self.event_no)?;
        statement.raw_bind_parameter(first + 1, self.account_no)?;
        statement.raw_bind_parameter(first + 2, &self.contact_digest[..])?;
        statement.raw_bind_parameter(first + 3, self.context)?;
        statement.raw_bind_parameter(first + 4, self.consent_seq)?;
        statement.raw_bind_parameter(first + 5, &self.policy_version[..])
    }
}

/// The basis a history row records.
struct Basis {
    account: AccountNo,
    contact_digest: [u8; 32],
    context: Context,
    consent_seq: Option<u64>,
    policy_version: PolicyVersion,
}

impl From<&Membership> for Basis {
    fn from(m: &Membership) -> Self {
        Self {
            account: m.account,
            contact_digest: m.contact_digest.0,
            context: m.context,
            consent_seq: m.consent_seq,
            policy_version: m.policy_version,
        }
    }
}

impl From<&Grant> for Basis {
    fn from(g: &Grant) -> Self {
        Self {
            account: g.account,
            contact_digest: g.contact_digest.0,
            context: g.context,
            consent_seq: g.consent_seq,
            policy_version: g.policy_version,
        }
    }
}

fn history_sql(rows: usize) -> String {
    format!(
        "INSERT INTO membership_events (event_no, audience_no, account_no, kind, reason, \
         job_no, contact_digest, context, consent_seq, policy_version, at) VALUES {}",
        values_sql("({}, ?1, {}, ?2, ?3, ?4, {}, {}, {}, {}, ?5)", 5, 6, rows)
    )
}

/// Writes one history row per basis, in order, numbered from the event counter.
fn write_history(
    conn: &Connection,
    tally: &mut Tally,
    audience_no: u32,
    change: Change,
    job_no: Option<u64>,
    now: Timestamp,
    bases: impl ExactSizeIterator<Item = Basis>,
) -> Result<(), StoreError> {
    let n = bases.len();
    if n == 0 {
        return Ok(());
    }
    let mut next = tally.reserve(conn, Sequence::Event, n)?;
    let job_no = job_no.map(|j| signed(j, "a job number")).transpose()?;
    let at = micros(now);
    let (kind, reason) = (change.kind(), change.reason());
    let shared: [&dyn ToSql; 5] = [&audience_no, &kind, &reason, &job_no, &at];
    let rows = bases
        .map(|basis| {
            let row = EventRow {
                event_no: next,
                account_no: basis.account.0,
                contact_digest: basis.contact_digest,
                context: basis.context.as_str(),
                consent_seq: basis
                    .consent_seq
                    .map(|s| signed(s, "a consent sequence number"))
                    .transpose()?,
                policy_version: basis.policy_version.0,
            };
            next += 1;
            Ok(row)
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    execute_rows(conn, history_sql, &shared, &rows, |_| Ok(()))
}

// -------------------------------------------------------------------------------------------
// Grants

/// One membership row's own values (the shared ones are the audience, the job and the
/// times).
struct GrantRow {
    account_no: u32,
    contact_digest: [u8; 32],
    context: &'static str,
    consent_seq: Option<i64>,
    policy_version: [u8; 32],
}

impl RowValues for GrantRow {
    const COLUMNS: usize = 5;

    fn bind(&self, statement: &mut CachedStatement<'_>, first: usize) -> rusqlite::Result<()> {
        statement.raw_bind_parameter(first, self.account_no)?;
        statement.raw_bind_parameter(first + 1, &self.contact_digest[..])?;
        statement.raw_bind_parameter(first + 2, self.context)?;
        statement.raw_bind_parameter(first + 3, self.consent_seq)?;
        statement.raw_bind_parameter(first + 4, &self.policy_version[..])
    }
}

fn grant_values(rows: usize) -> String {
    format!(
        "INSERT INTO memberships (audience_no, account_no, contact_digest, context, \
         consent_seq, policy_version, job_no, granted_at, expires_at) VALUES {}",
        values_sql("(?1, {}, {}, {}, {}, {}, ?2, ?3, ?4)", 4, 5, rows)
    )
}

/// Inserts new memberships, skipping existing ones, and returns the accounts inserted.
fn insert_sql(rows: usize) -> String {
    format!(
        "{} ON CONFLICT (audience_no, account_no) DO NOTHING RETURNING account_no",
        grant_values(rows)
    )
}

/// Inserts or renews memberships.
fn upsert_sql(rows: usize) -> String {
    format!(
        "{} ON CONFLICT (audience_no, account_no) DO UPDATE SET \
         contact_digest = excluded.contact_digest, context = excluded.context, \
         consent_seq = excluded.consent_seq, policy_version = excluded.policy_version, \
         job_no = excluded.job_no, granted_at = excluded.granted_at, \
         expires_at = excluded.expires_at",
        grant_values(rows)
    )
}

fn grant_row(grant: &Grant) -> Result<GrantRow, StoreError> {
    Ok(GrantRow {
        account_no: grant.account.0,
        contact_digest: grant.contact_digest.0,
        context: grant.context.as_str(),
        consent_seq: grant
            .consent_seq
            .map(|s| signed(s, "a consent sequence number"))
            .transpose()?,
        policy_version: grant.policy_version.0,
    })
}

/// Runs `sql(n)` once per `n` rows: many rows to a statement, the remainder one by one.
/// `returned` receives what a `RETURNING` clause gives.
fn execute_rows<R: RowValues>(
    conn: &Connection,
    sql: fn(usize) -> String,
    shared: &[&dyn ToSql],
    rows: &[R],
    mut returned: impl FnMut(&rusqlite::Row<'_>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut run = |statement: &mut CachedStatement<'_>, chunk: &[R]| -> Result<(), StoreError> {
        bind_all(statement, shared, chunk)?;
        let mut out = statement.raw_query();
        while let Some(row) = out.next().db()? {
            returned(row)?;
        }
        Ok(())
    };
    let mut chunks = rows.chunks_exact(ROWS_PER_STATEMENT);
    if chunks.len() > 0 {
        let mut many = conn.prepare_cached(&sql(ROWS_PER_STATEMENT)).db()?;
        for chunk in &mut chunks {
            run(&mut many, chunk)?;
        }
    }
    if !chunks.remainder().is_empty() {
        let mut one = conn.prepare_cached(&sql(1)).db()?;
        for row in chunks.remainder() {
            run(&mut one, std::slice::from_ref(row))?;
        }
    }
    Ok(())
}

/// What is known of an audience's current members before grants are written.
enum Current {
    /// It has none.
    Empty,
    /// Its member accounts, sorted (read for a `replace`, which touches all of them anyway).
    Known(Vec<u32>),
    /// Not read: the inserts find out (an `add`, which may be small beside a large audience).
    Unknown,
}

/// Writes `grants` (sorted by account, one per account) into the audience: new memberships
/// are inserted, existing ones renewed. Returns how many were new.
fn write_grants(
    conn: &Connection,
    audience_no: u32,
    job_no: i64,
    (now, expires_at): (Timestamp, Timestamp),
    grants: &[Grant],
    current: &Current,
) -> Result<u64, StoreError> {
    let (granted_at, expires_at) = (micros(now), micros(expires_at));
    let shared: [&dyn ToSql; 4] = [&audience_no, &job_no, &granted_at, &expires_at];
    let rows = grants
        .iter()
        .map(grant_row)
        .collect::<Result<Vec<_>, _>>()?;
    let ignore = |_: &rusqlite::Row<'_>| Ok(());

    let (new, renewals) = match current {
        Current::Empty => {
            execute_rows(conn, grant_values, &shared, &rows, ignore)?;
            return Ok(rows.len() as u64);
        }
        Current::Known(members) => {
            let (renewals, new): (Vec<GrantRow>, Vec<GrantRow>) = rows
                .into_iter()
                .partition(|row| members.binary_search(&row.account_no).is_ok());
            execute_rows(conn, grant_values, &shared, &new, ignore)?;
            (new.len() as u64, renewals)
        }
        Current::Unknown => {
            // Insert, learning which accounts were not members yet; renew the others.
            let mut inserted = Vec::with_capacity(rows.len());
            execute_rows(conn, insert_sql, &shared, &rows, |row| {
                inserted.push(row.get::<_, u32>(0).db()?);
                Ok(())
            })?;
            inserted.sort_unstable();
            let new = inserted.len() as u64;
            let renewals = rows
                .into_iter()
                .filter(|row| inserted.binary_search(&row.account_no).is_err())
                .collect();
            (new, renewals)
        }
    };
    execute_rows(conn, upsert_sql, &shared, &renewals, ignore)?;
    Ok(new)
}

/// Every member account of an audience (expired ones included), sorted.
fn member_accounts(conn: &Connection, audience_no: u32) -> Result<Vec<u32>, StoreError> {
    // The expiry index holds the account numbers too, in a fraction of the table's pages.
    let mut statement = conn
        .prepare_cached(
            "SELECT account_no FROM memberships INDEXED BY memberships_by_expiry \
             WHERE audience_no = ?1",
        )
        .db()?;
    let mut found = statement.query([audience_no]).db()?;
    let mut accounts = Vec::new();
    while let Some(row) = found.next().db()? {
        accounts.push(rows::number(row, 0, "memberships.account_no")?);
    }
    accounts.sort_unstable();
    Ok(accounts)
}

// -------------------------------------------------------------------------------------------
// Ends

/// Moves an audience's `membership_rows` and the store's memberships counter by `delta`, and
/// its data epoch: any change to its members makes a size question about it a new one.
fn count_members(
    conn: &Connection,
    tally: &mut Tally,
    audience_no: u32,
    delta: i64,
) -> Result<(), StoreError> {
    if delta == 0 {
        return Ok(());
    }
    conn.prepare_cached(
        "UPDATE audiences SET membership_rows = membership_rows + ?1, epoch = epoch + 1 \
         WHERE audience_no = ?2",
    )
    .db()?
    .execute((delta, audience_no))
    .db()?;
    tally.memberships += delta;
    Ok(())
}

fn delete_accounts_sql(rows: usize) -> String {
    let accounts: Vec<String> = (0..rows).map(|i| format!("?{}", i + 2)).collect();
    format!(
        concat!(
            "DELETE FROM memberships WHERE audience_no = ?1 AND account_no IN ({}) RETURNING ",
            membership_columns!()
        ),
        accounts.join(", ")
    )
}

/// Ends the memberships of `accounts` (sorted, distinct) in one audience that exist, writing
/// their history. Returns the memberships ended, by account.
fn end_accounts(
    conn: &Connection,
    tally: &mut Tally,
    audience_no: u32,
    accounts: &[AccountNo],
    reason: RevokeReason,
    job_no: Option<u64>,
    now: Timestamp,
) -> Result<Vec<Membership>, StoreError> {
    let mut ended = Vec::new();
    let mut many = conn
        .prepare_cached(&delete_accounts_sql(ROWS_PER_STATEMENT))
        .db()?;
    let mut one = conn.prepare_cached(&delete_accounts_sql(1)).db()?;
    let mut collect =
        |statement: &mut CachedStatement<'_>, chunk: &[AccountNo]| -> Result<(), StoreError> {
            statement.raw_bind_parameter(1, audience_no).db()?;
            for (i, account) in chunk.iter().enumerate() {
                statement.raw_bind_parameter(i + 2, account.0).db()?;
            }
            let mut returned = statement.raw_query();
            while let Some(row) = returned.next().db()? {
                ended.push(rows::membership(row)?);
            }
            Ok(())
        };
    let mut chunks = accounts.chunks_exact(ROWS_PER_STATEMENT);
    for chunk in &mut chunks {
        collect(&mut many, chunk)?;
    }
    for account in chunks.remainder() {
        collect(&mut one, std::slice::from_ref(account))?;
    }
    // RETURNING gives rows in no promised order.
    ended.sort_unstable_by_key(|m| m.account);
    finish_ends(conn, tally, audience_no, &ended, reason, job_no, now)?;
    Ok(ended)
}

/// Writes the history and counters of memberships of one audience just ended.
fn finish_ends(
    conn: &Connection,
    tally: &mut Tally,
    audience_no: u32,
    ended: &[Membership],
    reason: RevokeReason,
    job_no: Option<u64>,
    now: Timestamp,
) -> Result<(), StoreError> {
    write_history(
        conn,
        tally,
        audience_no,
        Change::Revoke(reason),
        job_no,
        now,
        ended.iter().map(Basis::from),
    )?;
    count_members(conn, tally, audience_no, -count(ended.len()))
}

/// Which memberships of an audience a set-wise end takes.
#[derive(Clone, Copy)]
enum Which {
    /// All of them (the audience is deleted).
    All,
    /// Those expired at this time.
    ExpiredAt(i64),
}

/// Ends a set of an audience's memberships, writing their history. Returns them, by account.
fn end_where(
    conn: &Connection,
    tally: &mut Tally,
    audience_no: u32,
    which: Which,
    reason: RevokeReason,
    job_no: Option<u64>,
    now: Timestamp,
) -> Result<Vec<Membership>, StoreError> {
    let (select, delete, value) = match which {
        Which::All => (
            concat!(
                "SELECT ",
                membership_columns!(),
                " FROM memberships WHERE audience_no = ?1 ORDER BY account_no"
            ),
            "DELETE FROM memberships WHERE audience_no = ?1",
            None,
        ),
        Which::ExpiredAt(at) => (
            concat!(
                "SELECT ",
                membership_columns!(),
                " FROM memberships WHERE audience_no = ?1 AND expires_at <= ?2 \
                 ORDER BY account_no"
            ),
            "DELETE FROM memberships WHERE audience_no = ?1 AND expires_at <= ?2",
            Some(at),
        ),
    };
    let mut ended = Vec::new();
    {
        let mut statement = conn.prepare_cached(select).db()?;
        let mut found = match value {
            None => statement.query([i64::from(audience_no)]),
            Some(v) => statement.query([i64::from(audience_no), v]),
        }
        .db()?;
        while let Some(row) = found.next().db()? {
            ended.push(rows::membership(row)?);
        }
    }
    if ended.is_empty() {
        return Ok(ended);
    }
    let mut statement = conn.prepare_cached(delete).db()?;
    let deleted = match value {
        None => statement.execute([i64::from(audience_no)]),
        Some(v) => statement.execute([i64::from(audience_no), v]),
    }
    .db()?;
    if deleted != ended.len() {
        return Err(StoreError::Database(
            "memberships changed within a write transaction".into(),
        ));
    }
    finish_ends(conn, tally, audience_no, &ended, reason, job_no, now)?;
    Ok(ended)
}

// -------------------------------------------------------------------------------------------
// The operations

/// The job row fields applying needs.
struct JobRow {
    audience_no: u32,
    session_no: i64,
    op: JobOp,
    state: JobState,
}

fn job_row(conn: &Connection, job_no: i64) -> Result<Option<JobRow>, StoreError> {
    conn.prepare_cached("SELECT audience_no, session_no, op, state FROM jobs WHERE job_no = ?1")
        .db()?
        .query_row([job_no], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
            ))
        })
        .optional()
        .db()?
        .map(|(audience_no, session_no, op, state)| {
            Ok(JobRow {
                audience_no: u32::try_from(audience_no)
                    .map_err(|_| StoreError::Corrupt("jobs.audience_no is out of range".into()))?,
                session_no,
                op: JobOp::parse(&op)
                    .ok_or_else(|| StoreError::Corrupt("jobs.op holds an unknown value".into()))?,
                state: JobState::parse(&state).ok_or_else(|| {
                    StoreError::Corrupt("jobs.state holds an unknown value".into())
                })?,
            })
        })
        .transpose()
}

/// Applies a job: see [`crate::Store::apply_job`]. Grants are taken one per account (the
/// first listed), and `granted` and `revoked` come sorted by account.
pub(super) fn apply_job(
    conn: &Connection,
    tally: &mut Tally,
    job_no: u64,
    mut grants: Vec<Grant>,
    mut removals: Vec<AccountNo>,
    query: QueryDigest,
    now: Timestamp,
) -> Result<Applied, StoreError> {
    let now = to_stored_precision(now);
    let job_key = signed(job_no, "a job number")?;
    let Some(job) = job_row(conn, job_key)? else {
        return Err(StoreError::Conflict("no such job"));
    };
    if !matches!(job.state, JobState::Queued | JobState::Running) {
        return Err(StoreError::Conflict("the job is finished"));
    }
    match job.op {
        JobOp::Add | JobOp::Replace if !removals.is_empty() => {
            return Err(StoreError::Conflict("only a remove job takes removals"));
        }
        JobOp::Remove if !grants.is_empty() => {
            return Err(StoreError::Conflict("a remove job takes no grants"));
        }
        _ => {}
    }
    let audience: Option<(i64, i64)> = conn
        .prepare_cached(
            "SELECT membership_ttl_days, membership_rows FROM audiences WHERE audience_no = ?1",
        )
        .db()?
        .query_row([job.audience_no], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()
        .db()?;
    let Some((ttl_days, rows_before)) = audience else {
        return Err(StoreError::Conflict("the job's audience is deleted"));
    };
    let ttl_days = u32::try_from(ttl_days)
        .map_err(|_| StoreError::Corrupt("audiences.membership_ttl_days is out of range".into()))?;
    let audience_no = job.audience_no;
    let expires_at = expiry(now, ttl_days);

    let mut applied = Applied::default();
    let mut ended_memberships = Vec::new();
    match job.op {
        JobOp::Add | JobOp::Replace => {
            // One grant per account, the first listed.
            grants.sort_by_key(|g| g.account);
            grants.dedup_by_key(|g| g.account);
            let current = if rows_before == 0 {
                Current::Empty
            } else if job.op == JobOp::Replace {
                Current::Known(member_accounts(conn, audience_no)?)
            } else {
                Current::Unknown
            };
            let new = write_grants(
                conn,
                audience_no,
                job_key,
                (now, expires_at),
                &grants,
                &current,
            )?;
            count_members(conn, tally, audience_no, signed(new, "a count")?)?;
            write_history(
                conn,
                tally,
                audience_no,
                Change::Grant,
                Some(job_no),
                now,
                grants.iter().map(Basis::from),
            )?;
            if let (JobOp::Replace, Current::Known(members)) = (job.op, &current) {
                // Every member the new list did not reach.
                let others: Vec<AccountNo> = members
                    .iter()
                    .filter(|&&a| {
                        grants
                            .binary_search_by_key(&AccountNo(a), |g| g.account)
                            .is_err()
                    })
                    .map(|&a| AccountNo(a))
                    .collect();
                let ended = end_accounts(
                    conn,
                    tally,
                    audience_no,
                    &others,
                    RevokeReason::Replaced,
                    Some(job_no),
                    now,
                )?;
                applied.revoked = ended.iter().map(|m| (audience_no, m.account)).collect();
                ended_memberships = ended;
            }
            applied.granted = grants
                .iter()
                .map(|g| Membership {
                    audience_no,
                    account: g.account,
                    contact_digest: g.contact_digest,
                    context: g.context,
                    consent_seq: g.consent_seq,
                    policy_version: g.policy_version,
                    job_no,
                    granted_at: now,
                    expires_at,
                })
                .collect();
        }
        JobOp::Remove => {
            removals.sort_unstable();
            removals.dedup();
            let ended = end_accounts(
                conn,
                tally,
                audience_no,
                &removals,
                RevokeReason::Removed,
                Some(job_no),
                now,
            )?;
            applied.revoked = ended.iter().map(|m| (audience_no, m.account)).collect();
            ended_memberships = ended;
        }
    }
    log_job(
        conn,
        tally,
        job_key,
        audience_no,
        &grants,
        &ended_memberships,
        now,
    )?;

    conn.prepare_cached("UPDATE audiences SET updated_at = ?1, query = ?2 WHERE audience_no = ?3")
        .db()?
        .execute((micros(now), query.as_bytes(), audience_no))
        .db()?;
    conn.prepare_cached(
        "UPDATE jobs SET state = 'succeeded', finished_at = ?1, \
         started_at = COALESCE(started_at, ?1) WHERE job_no = ?2",
    )
    .db()?
    .execute((micros(now), job_key))
    .db()?;
    conn.prepare_cached("DELETE FROM session_parts WHERE session_no = ?1")
        .db()?
        .execute([job.session_no])
        .db()?;
    Ok(applied)
}

/// Records an applied job in the log, with the root of its grants and revocations.
fn log_job(
    conn: &Connection,
    tally: &mut Tally,
    job_key: i64,
    audience_no: u32,
    grants: &[Grant],
    ended: &[Membership],
    now: Timestamp,
) -> Result<(), StoreError> {
    let leaf = |granted: bool, b: Basis| {
        crate::log::grant_leaf(
            granted,
            audience_no,
            b.account.0,
            &b.contact_digest,
            b.context.as_str(),
            b.consent_seq,
            &b.policy_version.0,
        )
    };
    let leaves: Vec<tailor_log::Hash> = grants
        .iter()
        .map(|g| leaf(true, Basis::from(g)))
        .chain(ended.iter().map(|m| leaf(false, Basis::from(m))))
        .collect();
    let (job_id, advertiser_id, audience_id, op, received, accepted, rejected): (
        String,
        String,
        String,
        String,
        i64,
        i64,
        String,
    ) = conn
        .prepare_cached(
            "SELECT j.job_id, v.advertiser_id, a.audience_id, j.op, j.rows_received, \
             j.rows_accepted, j.rejected FROM jobs j \
             JOIN advertisers v ON v.advertiser_no = j.advertiser_no \
             JOIN audiences a ON a.audience_no = j.audience_no WHERE j.job_no = ?1",
        )
        .db()?
        .query_row([job_key], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
                row.get(6)?,
            ))
        })
        .db()?;
    tally.journal.record(
        now,
        crate::log::LogEvent::JobCompleted {
            job_id,
            advertiser_id,
            audience_id,
            op,
            policy_version: grants.first().map(|g| hex::encode(g.policy_version.0)),
            rows_received: received.unsigned_abs(),
            rows_accepted: accepted.unsigned_abs(),
            rejected: crate::packing::decode_rejected(&rejected, "jobs.rejected")?
                .into_iter()
                .collect(),
            granted: grants.len() as u64,
            revoked: ended.len() as u64,
            root: hex::encode(tailor_log::root_of(&leaves)),
            forbidden_basis: grants
                .iter()
                .filter(|g| g.context.is_security() || g.context == Context::AddressBook)
                .count() as u64,
        },
    );
    Ok(())
}

/// Ends memberships by (audience, account), writing their history with `reason`. Returns how
/// many existed.
pub(super) fn revoke(
    conn: &Connection,
    tally: &mut Tally,
    mut memberships: Vec<(u32, AccountNo)>,
    reason: RevokeReason,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let now = to_stored_precision(now);
    memberships.sort_unstable();
    memberships.dedup();
    let mut by_audience: BTreeMap<u32, Vec<AccountNo>> = BTreeMap::new();
    for (audience_no, account) in memberships {
        by_audience.entry(audience_no).or_default().push(account);
    }
    let mut ended = Vec::new();
    for (audience_no, accounts) in by_audience {
        let gone = end_accounts(conn, tally, audience_no, &accounts, reason, None, now)?;
        ended.extend(gone.iter().map(|m| (audience_no, m.account.0)));
    }
    super::log::memberships_ended(conn, &mut tally.journal, &ended, reason.as_str(), now)?;
    Ok(ended.len() as u64)
}

/// Ends every membership expired at `now`, audience by audience. Returns them, by audience
/// and account.
pub(super) fn expire_memberships(
    conn: &Connection,
    tally: &mut Tally,
    now: Timestamp,
) -> Result<Vec<(u32, AccountNo)>, StoreError> {
    let now = to_stored_precision(now);
    let audiences: Vec<u32> = {
        let mut statement = conn
            .prepare_cached("SELECT audience_no FROM audiences ORDER BY audience_no")
            .db()?;
        let mut found = statement.query([]).db()?;
        let mut audiences = Vec::new();
        while let Some(row) = found.next().db()? {
            audiences.push(rows::number(row, 0, "audiences.audience_no")?);
        }
        audiences
    };
    let mut expired = Vec::new();
    for audience_no in audiences {
        let ended = end_where(
            conn,
            tally,
            audience_no,
            Which::ExpiredAt(micros(now)),
            RevokeReason::Expired,
            None,
            now,
        )?;
        expired.extend(ended.iter().map(|m| (audience_no, m.account)));
    }
    Ok(expired)
}

/// Ends every membership of an audience that is being deleted. Returns them, by account.
pub(super) fn end_audience(
    conn: &Connection,
    tally: &mut Tally,
    audience_no: u32,
    now: Timestamp,
) -> Result<Vec<Membership>, StoreError> {
    end_where(
        conn,
        tally,
        audience_no,
        Which::All,
        RevokeReason::AudienceDeleted,
        None,
        now,
    )
}

/// Deletes an erased account's memberships, its history rows and its staged matches.
/// Returns how many memberships were live at `now`.
pub(super) fn erase_account(
    conn: &Connection,
    tally: &mut Tally,
    account: AccountNo,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let mut per_audience: BTreeMap<u32, i64> = BTreeMap::new();
    let mut live = 0;
    {
        let mut statement = conn
            .prepare_cached("SELECT audience_no, expires_at FROM memberships WHERE account_no = ?1")
            .db()?;
        let mut found = statement.query([account.0]).db()?;
        while let Some(row) = found.next().db()? {
            let audience_no: u32 = rows::number(row, 0, "memberships.audience_no")?;
            let expires_at: i64 = row.get(1).db()?;
            *per_audience.entry(audience_no).or_default() += 1;
            if expires_at > micros(now) {
                live += 1;
            }
        }
    }
    conn.prepare_cached("DELETE FROM memberships WHERE account_no = ?1")
        .db()?
        .execute([account.0])
        .db()?;
    for (audience_no, n) in per_audience {
        count_members(conn, tally, audience_no, -n)?;
    }
    conn.prepare_cached("DELETE FROM membership_events WHERE account_no = ?1")
        .db()?
        .execute([account.0])
        .db()?;
    scrub_staged(conn, account)?;
    Ok(live)
}

/// Removes an account's pairs from every staged part. Staged parts live only until their
/// job is applied or their session expires, so this reads little.
fn scrub_staged(conn: &Connection, account: AccountNo) -> Result<(), StoreError> {
    let mut rewrites = Vec::new();
    {
        let mut statement = conn
            .prepare_cached("SELECT session_no, part_no, matched FROM session_parts")
            .db()?;
        let mut found = statement.query([]).db()?;
        while let Some(row) = found.next().db()? {
            let matched = row.get_ref(2).db()?;
            let matched = matched
                .as_blob()
                .map_err(|_| StoreError::Corrupt("session_parts.matched is not a blob".into()))?;
            if holds_account(matched, account) {
                let session_no: i64 = row.get(0).db()?;
                let part_no: i64 = row.get(1).db()?;
                rewrites.push((session_no, part_no, without_account(matched, account)));
            }
        }
    }
    let mut update = conn
        .prepare_cached(
            "UPDATE session_parts SET matched = ?1 WHERE session_no = ?2 AND part_no = ?3",
        )
        .db()?;
    for (session_no, part_no, matched) in rewrites {
        update.execute((matched, session_no, part_no)).db()?;
    }
    Ok(())
}

// -------------------------------------------------------------------------------------------
// Reads

/// An account's memberships not yet ended (those past expiry included, until the expiry
/// sweep ends them), by audience.
pub(super) fn memberships_of(
    conn: &Connection,
    account: AccountNo,
) -> Result<Vec<Membership>, StoreError> {
    let mut statement = conn
        .prepare_cached(concat!(
            "SELECT ",
            membership_columns!(),
            " FROM memberships WHERE account_no = ?1 ORDER BY audience_no"
        ))
        .db()?;
    let mut found = statement.query([account.0]).db()?;
    let mut memberships = Vec::new();
    while let Some(row) = found.next().db()? {
        memberships.push(rows::membership(row)?);
    }
    Ok(memberships)
}

/// An audience's members unexpired at `now`, sorted.
pub(super) fn audience_members(
    conn: &Connection,
    audience_no: u32,
    now: Timestamp,
) -> Result<Vec<AccountNo>, StoreError> {
    let mut statement = conn
        .prepare_cached(
            "SELECT account_no FROM memberships WHERE audience_no = ?1 AND expires_at > ?2 \
             ORDER BY account_no",
        )
        .db()?;
    let mut found = statement.query((audience_no, micros(now))).db()?;
    let mut members = Vec::new();
    while let Some(row) = found.next().db()? {
        members.push(AccountNo(rows::number(row, 0, "memberships.account_no")?));
    }
    Ok(members)
}

/// The membership history, oldest first, optionally of one audience and one account.
pub(super) fn membership_history(
    conn: &Connection,
    audience_no: Option<u32>,
    account: Option<AccountNo>,
) -> Result<Vec<MembershipEvent>, StoreError> {
    const SELECT: &str = concat!("SELECT ", event_columns!(), " FROM membership_events");
    let (filter, values): (&str, Vec<i64>) = match (audience_no, account) {
        (None, None) => ("", Vec::new()),
        (Some(a), None) => (" WHERE audience_no = ?1", vec![i64::from(a)]),
        (None, Some(n)) => (" WHERE account_no = ?1", vec![i64::from(n.0)]),
        (Some(a), Some(n)) => (
            " WHERE account_no = ?1 AND audience_no = ?2",
            vec![i64::from(n.0), i64::from(a)],
        ),
    };
    let sql = format!("{SELECT}{filter} ORDER BY event_no");
    let mut statement = conn.prepare_cached(&sql).db()?;
    let mut found = statement.query(rusqlite::params_from_iter(values)).db()?;
    let mut events = Vec::new();
    while let Some(row) = found.next().db()? {
        events.push(rows::membership_event(row)?);
    }
    Ok(events)
}

/// Deletes history rows recorded before `before`, keeping the grant each live membership rests
/// on (its `granted_at` and basis). Returns how many rows went.
pub(super) fn prune_history(conn: &Connection, before: Timestamp) -> Result<u64, StoreError> {
    let deleted = conn
        .prepare_cached(
            "DELETE FROM membership_events WHERE at < ?1 AND NOT (kind = 'grant' AND EXISTS \
             (SELECT 1 FROM memberships m WHERE m.audience_no = membership_events.audience_no \
              AND m.account_no = membership_events.account_no \
              AND m.granted_at = membership_events.at))",
        )
        .db()?
        .execute([micros(before)])
        .db()?;
    Ok(deleted as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_numbered_after_the_shared_ones() {
        assert_eq!(
            values_sql("(?1, {}, {})", 1, 2, 2),
            "(?1, ?2, ?3), (?1, ?4, ?5)"
        );
    }
}
