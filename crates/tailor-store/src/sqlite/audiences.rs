//! Audiences, upload sessions and jobs: creating, reading, deleting, staging parts,
//! committing, failing and expiring.
//!
//! Every lookup by public id is scoped to its advertiser: another advertiser's audience, job
//! or session is not found, exactly as one that does not exist. Lookups by number (session,
//! job) are the engine's, made after a scoped lookup. A staged part holds only what matched.
//!
//! An audience's size is its `membership_rows` counter less its rows past expiry (few, and
//! counted over the `(audience_no, expires_at)` index), so that listing an advertiser's
//! audiences costs a few index probes per audience whatever their sizes. `updated_at` moves
//! only with the advertiser's own actions (creation, applied jobs): a membership ended by a
//! person's consent must not show in anything the advertiser sees.

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row};
use tailor_core::release::{KeySetDigest, QueryDigest};
use tailor_core::{AccountNo, KeyedDigest};

use super::SqlResult;
use super::counters::{Sequence, Tally, count};
use super::memberships;
use super::releases;
use super::rows::{
    self, job_columns, micros, number, session_columns, timestamp, to_stored_precision,
};
use crate::packing::{decode_rejected, encode_rejected, pack_matches, unpack_matches};
use crate::{
    Applied, Audience, Job, JobCounts, JobOp, JobState, NewAudience, NewJob, Release, SessionPart,
    StagedPart, StoreError, UploadSession,
};

/// The message of a job failed because its audience was deleted.
const AUDIENCE_DELETED: &str = "audience deleted";

// -------------------------------------------------------------------------------------------
// Audiences

/// The audience columns and its counts at `?2`; followed by a `WHERE` on `a`.
macro_rules! audience_select {
    () => {
        "SELECT a.audience_no, a.audience_id, a.advertiser_no, a.name, a.description, \
         a.membership_ttl_days, a.created_at, a.updated_at, \
         a.membership_rows - (SELECT COUNT(*) FROM memberships m \
             WHERE m.audience_no = a.audience_no AND m.expires_at <= ?2), \
         (SELECT COUNT(*) FROM jobs j \
             WHERE j.audience_no = a.audience_no AND j.state IN ('queued', 'running')), \
         (SELECT COUNT(*) FROM jobs j \
             WHERE j.audience_no = a.audience_no AND j.state = 'succeeded'), \
         a.query, a.epoch, r.epoch, r.size, r.epsilon_micros, r.at, \
         (SELECT e.entity FROM advertisers e WHERE e.advertiser_no = a.advertiser_no) \
         FROM audiences a LEFT JOIN releases r ON r.release_no = \
             (SELECT MAX(l.release_no) FROM releases l \
              WHERE l.audience_no = a.audience_no AND l.query = a.query) "
    };
}

fn audience(row: &Row<'_>) -> Result<Audience, StoreError> {
    let no = number(row, 0, "audiences.audience_no")?;
    Ok(Audience {
        no,
        audience_id: row.get(1).db()?,
        advertiser_no: number(row, 2, "audiences.advertiser_no")?,
        entity: row.get(17).db()?,
        name: row.get(3).db()?,
        description: row.get(4).db()?,
        membership_ttl_days: number(row, 5, "audiences.membership_ttl_days")?,
        created_at: timestamp(row, 6, "audiences.created_at")?,
        updated_at: timestamp(row, 7, "audiences.updated_at")?,
        members: number(row, 8, "audiences.membership_rows")?,
        pending_jobs: number(row, 9, "a pending job count")?,
        succeeded_jobs: number(row, 10, "a succeeded job count")?,
        query: QueryDigest::from_bytes(rows::bytes32(row, 11, "audiences.query")?),
        epoch: number(row, 12, "audiences.epoch")?,
        released: released(row, no, 13)?,
    })
}

/// The latest release of an audience's query, from the joined `releases` columns at `first`.
fn released(row: &Row<'_>, audience_no: u32, first: usize) -> Result<Option<Release>, StoreError> {
    let epoch: Option<i64> = row.get(first).db()?;
    if epoch.is_none() {
        return Ok(None);
    }
    let query = QueryDigest::from_bytes(rows::bytes32(row, 11, "audiences.query")?);
    Ok(Some(releases::release(row, audience_no, query, first)?))
}

pub(super) fn create_audience(
    conn: &Connection,
    tally: &mut Tally,
    new: NewAudience,
    now: Timestamp,
) -> Result<Audience, StoreError> {
    let now = to_stored_precision(now);
    let entity: Option<String> = conn
        .prepare_cached("SELECT entity FROM advertisers WHERE advertiser_no = ?1")
        .db()?
        .query_row([new.advertiser_no], |row| row.get(0))
        .optional()
        .db()?;
    let Some(entity) = entity else {
        return Err(StoreError::Conflict("no such advertiser"));
    };
    let no = tally.next(conn, Sequence::Audience)?;
    let no = u32::try_from(no)
        .map_err(|_| StoreError::Database("audience numbers are used up".into()))?;
    conn.prepare_cached(
        "INSERT INTO audiences (audience_no, audience_id, advertiser_no, name, description, \
         membership_ttl_days, created_at, updated_at, membership_rows) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, 0)",
    )
    .db()?
    .execute((
        no,
        &new.audience_id,
        new.advertiser_no,
        &new.name,
        &new.description,
        new.membership_ttl_days,
        micros(now),
    ))
    .unique("the audience id is taken")?;
    tally.audiences += 1;
    Ok(Audience {
        no,
        audience_id: new.audience_id,
        advertiser_no: new.advertiser_no,
        entity,
        name: new.name,
        description: new.description,
        membership_ttl_days: new.membership_ttl_days,
        created_at: now,
        updated_at: now,
        members: 0,
        pending_jobs: 0,
        succeeded_jobs: 0,
        query: QueryDigest::EMPTY,
        epoch: 0,
        released: None,
    })
}

/// The advertiser's audiences, by number (creation order).
pub(super) fn audiences(
    conn: &Connection,
    advertiser_no: u32,
    now: Timestamp,
) -> Result<Vec<Audience>, StoreError> {
    let mut statement = conn
        .prepare_cached(concat!(
            audience_select!(),
            "WHERE a.advertiser_no = ?1 ORDER BY a.audience_no"
        ))
        .db()?;
    let mut found = statement.query((advertiser_no, micros(now))).db()?;
    let mut all = Vec::new();
    while let Some(row) = found.next().db()? {
        all.push(audience(row)?);
    }
    Ok(all)
}

/// Every audience, by number.
pub(super) fn all_audiences(
    conn: &Connection,
    now: Timestamp,
) -> Result<Vec<Audience>, StoreError> {
    let mut statement = conn
        .prepare_cached(concat!(audience_select!(), "ORDER BY a.audience_no"))
        .db()?;
    // `?1` (the advertiser in the scoped queries) is unused here.
    let mut found = statement.query((0, micros(now))).db()?;
    let mut all = Vec::new();
    while let Some(row) = found.next().db()? {
        all.push(audience(row)?);
    }
    Ok(all)
}

pub(super) fn audience_by_id(
    conn: &Connection,
    advertiser_no: u32,
    audience_id: &str,
    now: Timestamp,
) -> Result<Option<Audience>, StoreError> {
    let mut statement = conn
        .prepare_cached(concat!(
            audience_select!(),
            "WHERE a.advertiser_no = ?1 AND a.audience_id = ?3"
        ))
        .db()?;
    let mut found = statement
        .query((advertiser_no, micros(now), audience_id))
        .db()?;
    found.next().db()?.map(audience).transpose()
}

/// An audience's number, if the advertiser owns one with this id.
fn owned_audience(
    conn: &Connection,
    advertiser_no: u32,
    audience_id: &str,
) -> Result<Option<u32>, StoreError> {
    let no: Option<i64> = conn
        .prepare_cached(
            "SELECT audience_no FROM audiences WHERE audience_id = ?1 AND advertiser_no = ?2",
        )
        .db()?
        .query_row((audience_id, advertiser_no), |row| row.get(0))
        .optional()
        .db()?;
    no.map(|n| {
        u32::try_from(n)
            .map_err(|_| StoreError::Corrupt("audiences.audience_no is out of range".into()))
    })
    .transpose()
}

/// Deletes an audience: its memberships end (with history), its unfinished jobs fail, its
/// sessions and their parts go, then its row.
pub(super) fn delete_audience(
    conn: &Connection,
    tally: &mut Tally,
    advertiser_no: u32,
    audience_id: &str,
    now: Timestamp,
) -> Result<Option<Applied>, StoreError> {
    let now = to_stored_precision(now);
    let Some(audience_no) = owned_audience(conn, advertiser_no, audience_id)? else {
        return Ok(None);
    };
    let ended = memberships::end_audience(conn, tally, audience_no, now)?;
    conn.prepare_cached(
        "UPDATE jobs SET state = 'failed', error = ?1, finished_at = ?2 \
         WHERE audience_no = ?3 AND state IN ('queued', 'running')",
    )
    .db()?
    .execute((AUDIENCE_DELETED, micros(now), audience_no))
    .db()?;
    conn.prepare_cached(
        "DELETE FROM session_parts WHERE session_no IN \
         (SELECT session_no FROM upload_sessions WHERE audience_no = ?1)",
    )
    .db()?
    .execute([audience_no])
    .db()?;
    conn.prepare_cached("DELETE FROM upload_sessions WHERE audience_no = ?1")
        .db()?
        .execute([audience_no])
        .db()?;
    conn.prepare_cached("DELETE FROM audiences WHERE audience_no = ?1")
        .db()?
        .execute([audience_no])
        .db()?;
    tally.audiences -= 1;
    Ok(Some(Applied {
        granted: Vec::new(),
        revoked: ended.iter().map(|m| (audience_no, m.account)).collect(),
    }))
}

// -------------------------------------------------------------------------------------------
// Sessions

pub(super) fn create_session(
    conn: &Connection,
    tally: &mut Tally,
    session: NewSession,
) -> Result<UploadSession, StoreError> {
    let created_at = to_stored_precision(session.now);
    let expires_at = to_stored_precision(session.expires_at);
    let owner: Option<i64> = conn
        .prepare_cached("SELECT advertiser_no FROM audiences WHERE audience_no = ?1")
        .db()?
        .query_row([session.audience_no], |row| row.get(0))
        .optional()
        .db()?;
    if owner != Some(i64::from(session.advertiser_no)) {
        return Err(StoreError::Conflict("no such audience"));
    }
    let no = tally.next(conn, Sequence::Session)?;
    conn.prepare_cached(
        "INSERT INTO upload_sessions (session_no, session_id, advertiser_no, audience_no, op, \
         created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .db()?
    .execute((
        no,
        &session.session_id,
        session.advertiser_no,
        session.audience_no,
        session.op.as_str(),
        micros(created_at),
        micros(expires_at),
    ))
    .unique("the session id is taken")?;
    Ok(UploadSession {
        no: no.unsigned_abs(),
        session_id: session.session_id,
        advertiser_no: session.advertiser_no,
        audience_no: session.audience_no,
        op: session.op,
        created_at,
        expires_at,
        job_no: None,
    })
}

/// A session to create (the trait method's arguments).
pub(super) struct NewSession {
    pub(super) session_id: String,
    pub(super) advertiser_no: u32,
    pub(super) audience_no: u32,
    pub(super) op: JobOp,
    pub(super) now: Timestamp,
    pub(super) expires_at: Timestamp,
}

pub(super) fn session(
    conn: &Connection,
    advertiser_no: u32,
    session_id: &str,
) -> Result<Option<UploadSession>, StoreError> {
    let mut statement = conn
        .prepare_cached(concat!(
            "SELECT ",
            session_columns!(),
            " FROM upload_sessions WHERE session_id = ?1 AND advertiser_no = ?2"
        ))
        .db()?;
    let mut found = statement.query((session_id, advertiser_no)).db()?;
    found.next().db()?.map(rows::session).transpose()
}

fn session_by_no(conn: &Connection, session_no: i64) -> Result<UploadSession, StoreError> {
    let mut statement = conn
        .prepare_cached(concat!(
            "SELECT ",
            session_columns!(),
            " FROM upload_sessions WHERE session_no = ?1"
        ))
        .db()?;
    let mut found = statement.query([session_no]).db()?;
    match found.next().db()? {
        Some(row) => rows::session(row),
        None => Err(StoreError::Conflict("no such upload session")),
    }
}

fn signed(n: u64, what: &'static str) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::Database(format!("{what} is out of range")))
}

/// Stages a part of an uncommitted session, replacing one of the same number.
pub(super) fn put_session_part(
    conn: &Connection,
    session_no: u64,
    part: SessionPart,
    now: Timestamp,
) -> Result<(), StoreError> {
    let session_no = signed(session_no, "a session number")?;
    if session_by_no(conn, session_no)?.job_no.is_some() {
        return Err(StoreError::Conflict("the upload session is committed"));
    }
    conn.prepare_cached(
        "INSERT INTO session_parts (session_no, part_no, rows_received, rows_accepted, \
         rejected, matched, staged_at, keys) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
         ON CONFLICT (session_no, part_no) DO UPDATE SET \
         rows_received = excluded.rows_received, rows_accepted = excluded.rows_accepted, \
         rejected = excluded.rejected, matched = excluded.matched, \
         staged_at = excluded.staged_at, keys = excluded.keys",
    )
    .db()?
    .execute((
        session_no,
        part.part_no,
        signed(part.counts.rows_received, "a row count")?,
        signed(part.counts.rows_accepted, "a row count")?,
        encode_rejected(&part.counts.rejected),
        pack_matches(part.matched),
        micros(now),
        part.keys.as_bytes(),
    ))
    .db()?;
    Ok(())
}

/// The staged parts' counters and key sets, by part number.
pub(super) fn session_parts(
    conn: &Connection,
    session_no: u64,
) -> Result<Vec<StagedPart>, StoreError> {
    let session_no = signed(session_no, "a session number")?;
    let mut statement = conn
        .prepare_cached(
            "SELECT part_no, rows_received, rows_accepted, rejected, keys FROM session_parts \
             WHERE session_no = ?1 ORDER BY part_no",
        )
        .db()?;
    let mut found = statement.query([session_no]).db()?;
    let mut parts = Vec::new();
    while let Some(row) = found.next().db()? {
        let rejected = row.get_ref(3).db()?;
        let rejected = rejected
            .as_str()
            .map_err(|_| StoreError::Corrupt("session_parts.rejected is not text".into()))?;
        parts.push(StagedPart {
            part_no: number(row, 0, "session_parts.part_no")?,
            counts: JobCounts {
                rows_received: number(row, 1, "session_parts.rows_received")?,
                rows_accepted: number(row, 2, "session_parts.rows_accepted")?,
                rejected: decode_rejected(rejected, "session_parts.rejected")?,
            },
            keys: KeySetDigest::from_bytes(rows::bytes32(row, 4, "session_parts.keys")?),
        });
    }
    Ok(parts)
}

/// Creates a session's job (queued) and links it.
pub(super) fn commit_session(
    conn: &Connection,
    tally: &mut Tally,
    session_no: u64,
    job: NewJob,
    now: Timestamp,
) -> Result<Job, StoreError> {
    let now = to_stored_precision(now);
    let session_key = signed(session_no, "a session number")?;
    let session = session_by_no(conn, session_key)?;
    if session.job_no.is_some() {
        return Err(StoreError::Conflict("the upload session is committed"));
    }
    if (session.advertiser_no, session.audience_no, session.op)
        != (job.advertiser_no, job.audience_no, job.op)
    {
        return Err(StoreError::Conflict("the job does not match its session"));
    }
    let no = tally.next(conn, Sequence::Job)?;
    conn.prepare_cached(
        "INSERT INTO jobs (job_no, job_id, advertiser_no, audience_no, session_no, op, state, \
         rows_received, rows_accepted, rejected, created_at, keys) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7, ?8, ?9, ?10, ?11)",
    )
    .db()?
    .execute((
        no,
        &job.job_id,
        job.advertiser_no,
        job.audience_no,
        session_key,
        job.op.as_str(),
        signed(job.counts.rows_received, "a row count")?,
        signed(job.counts.rows_accepted, "a row count")?,
        encode_rejected(&job.counts.rejected),
        micros(now),
        job.keys.as_bytes(),
    ))
    .unique("the job id is taken")?;
    conn.prepare_cached("UPDATE upload_sessions SET job_no = ?1 WHERE session_no = ?2")
        .db()?
        .execute((no, session_key))
        .db()?;
    Ok(Job {
        no: no.unsigned_abs(),
        job_id: job.job_id,
        advertiser_no: job.advertiser_no,
        audience_no: job.audience_no,
        op: job.op,
        state: JobState::Queued,
        counts: job.counts,
        error: None,
        created_at: now,
        finished_at: None,
        keys: job.keys,
    })
}

/// Deletes uncommitted sessions whose expiry is at or before `now`, with their parts.
pub(super) fn expire_sessions(conn: &Connection, now: Timestamp) -> Result<u64, StoreError> {
    let now = micros(now);
    conn.prepare_cached(
        "DELETE FROM session_parts WHERE session_no IN (SELECT session_no FROM upload_sessions \
         WHERE job_no IS NULL AND expires_at <= ?1)",
    )
    .db()?
    .execute([now])
    .db()?;
    let deleted = conn
        .prepare_cached("DELETE FROM upload_sessions WHERE job_no IS NULL AND expires_at <= ?1")
        .db()?
        .execute([now])
        .db()?;
    Ok(count(deleted).unsigned_abs())
}

// -------------------------------------------------------------------------------------------
// Jobs

pub(super) fn job(
    conn: &Connection,
    advertiser_no: u32,
    job_id: &str,
) -> Result<Option<Job>, StoreError> {
    let mut statement = conn
        .prepare_cached(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE job_id = ?1 AND advertiser_no = ?2"
        ))
        .db()?;
    let mut found = statement.query((job_id, advertiser_no)).db()?;
    found.next().db()?.map(rows::job).transpose()
}

/// A job by number, whoever owns it.
pub(super) fn job_by_no(conn: &Connection, job_no: u64) -> Result<Option<Job>, StoreError> {
    let job_no = signed(job_no, "a job number")?;
    let mut statement = conn
        .prepare_cached(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE job_no = ?1"
        ))
        .db()?;
    let mut found = statement.query([job_no]).db()?;
    found.next().db()?.map(rows::job).transpose()
}

/// Queued and running jobs, oldest first.
pub(super) fn unfinished_jobs(conn: &Connection) -> Result<Vec<Job>, StoreError> {
    let mut statement = conn
        .prepare_cached(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE state IN ('queued', 'running') ORDER BY job_no"
        ))
        .db()?;
    let mut found = statement.query([]).db()?;
    let mut jobs = Vec::new();
    while let Some(row) = found.next().db()? {
        jobs.push(rows::job(row)?);
    }
    Ok(jobs)
}

/// Why a change allowed only to unfinished jobs changed nothing.
fn not_unfinished(conn: &Connection, job_no: i64) -> Result<StoreError, StoreError> {
    let exists = conn
        .prepare_cached("SELECT 1 FROM jobs WHERE job_no = ?1")
        .db()?
        .query_row([job_no], |_| Ok(()))
        .optional()
        .db()?
        .is_some();
    Ok(StoreError::Conflict(if exists {
        "the job is finished"
    } else {
        "no such job"
    }))
}

/// Marks a queued job running (a running one stays as it is, keeping its start time).
pub(super) fn set_job_running(
    conn: &Connection,
    job_no: u64,
    now: Timestamp,
) -> Result<(), StoreError> {
    let job_no = signed(job_no, "a job number")?;
    let changed = conn
        .prepare_cached(
            "UPDATE jobs SET state = 'running', started_at = COALESCE(started_at, ?1) \
             WHERE job_no = ?2 AND state IN ('queued', 'running')",
        )
        .db()?
        .execute((micros(now), job_no))
        .db()?;
    if changed == 0 {
        return Err(not_unfinished(conn, job_no)?);
    }
    Ok(())
}

/// Marks an unfinished job failed and deletes its staged parts.
pub(super) fn fail_job(
    conn: &Connection,
    job_no: u64,
    message: &'static str,
    now: Timestamp,
) -> Result<(), StoreError> {
    let job_no = signed(job_no, "a job number")?;
    let changed = conn
        .prepare_cached(
            "UPDATE jobs SET state = 'failed', error = ?1, finished_at = ?2 \
             WHERE job_no = ?3 AND state IN ('queued', 'running')",
        )
        .db()?
        .execute((message, micros(now), job_no))
        .db()?;
    if changed == 0 {
        return Err(not_unfinished(conn, job_no)?);
    }
    conn.prepare_cached(
        "DELETE FROM session_parts WHERE session_no = (SELECT session_no FROM jobs \
         WHERE job_no = ?1)",
    )
    .db()?
    .execute([job_no])
    .db()?;
    Ok(())
}

/// Every pair the job's staged parts matched, sorted, without duplicates.
pub(super) fn staged_matches(
    conn: &Connection,
    job_no: u64,
) -> Result<Vec<(AccountNo, KeyedDigest)>, StoreError> {
    let job_no = signed(job_no, "a job number")?;
    let session_no: Option<i64> = conn
        .prepare_cached("SELECT session_no FROM jobs WHERE job_no = ?1")
        .db()?
        .query_row([job_no], |row| row.get(0))
        .optional()
        .db()?;
    let Some(session_no) = session_no else {
        return Err(StoreError::Conflict("no such job"));
    };
    let mut statement = conn
        .prepare_cached("SELECT matched FROM session_parts WHERE session_no = ?1")
        .db()?;
    let mut found = statement.query([session_no]).db()?;
    let mut pairs = Vec::new();
    while let Some(row) = found.next().db()? {
        let matched = row.get_ref(0).db()?;
        let matched = matched
            .as_blob()
            .map_err(|_| StoreError::Corrupt("session_parts.matched is not a blob".into()))?;
        unpack_matches(matched, &mut pairs)?;
    }
    // Each part is sorted already: the stable sort finds the runs and merges them.
    pairs.sort();
    pairs.dedup();
    Ok(pairs)
}
