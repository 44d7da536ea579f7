//! Audiences, upload sessions and jobs: creating, reading, deleting, staging parts,
//! committing, failing and expiring.
//!
//! Every lookup by public id is scoped to its advertiser: another advertiser's audience, job
//! or session is not found, exactly as one that does not exist. Lookups by number (session,
//! job) are the engine's, made after a scoped lookup. A staged part holds only what matched,
//! packed as `tailor_store::packing` says.
//!
//! An audience's size is its `membership_rows` counter less its rows past expiry (few, and
//! counted over the `(audience_no, expires_at)` index). `updated_at` moves only with the
//! advertiser's own actions (creation, applied jobs): a membership ended by a person's consent
//! must not show in anything the advertiser sees.

use jiff::Timestamp;
use tailor_core::release::{KeySetDigest, QueryDigest};
use tailor_core::{AccountNo, KeyedDigest};
use tailor_store::log::LogEvent;
use tailor_store::packing::{decode_rejected, encode_rejected, pack_matches, unpack_matches};
use tailor_store::{
    Applied, Audience, Job, JobCounts, JobOp, JobState, NewAudience, NewJob, Release, SessionPart,
    StagedPart, StoreError, UploadSession, to_stored_precision,
};
use tokio_postgres::Row;

use crate::counters::{Sequence, Tally, signed};
use crate::memberships;
use crate::releases;
use crate::rows::{self, job_columns, micros, number, session_columns, timestamp};
use crate::transaction::{Tx, execute, execute_unique, query, query_opt};

/// The message of a job failed because its audience was deleted.
const AUDIENCE_DELETED: &str = "audience deleted";

// -------------------------------------------------------------------------------------------
// Audiences

/// The audience columns and its counts at `$1`; followed by a `WHERE` on `a`.
macro_rules! audience_select {
    () => {
        "SELECT a.audience_no, a.audience_id, a.advertiser_no, a.name, a.description, \
         a.membership_ttl_days, a.created_at, a.updated_at, \
         a.membership_rows - (SELECT COUNT(*) FROM memberships m \
             WHERE m.audience_no = a.audience_no AND m.expires_at <= $1), \
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

fn audience(row: &Row) -> Result<Audience, StoreError> {
    let no = number(row, 0, "audiences.audience_no")?;
    let query = QueryDigest::from_bytes(rows::bytes32(row, 11, "audiences.query")?);
    let released_epoch: Option<i64> = rows::get(row, 13, "releases.epoch")?;
    let released: Option<Release> = match released_epoch {
        None => None,
        Some(_) => Some(releases::release(row, no, query, 13)?),
    };
    Ok(Audience {
        no,
        audience_id: rows::get(row, 1, "audiences.audience_id")?,
        advertiser_no: number(row, 2, "audiences.advertiser_no")?,
        entity: rows::get(row, 17, "advertisers.entity")?,
        name: rows::get(row, 3, "audiences.name")?,
        description: rows::get(row, 4, "audiences.description")?,
        membership_ttl_days: number(row, 5, "audiences.membership_ttl_days")?,
        created_at: timestamp(row, 6, "audiences.created_at")?,
        updated_at: timestamp(row, 7, "audiences.updated_at")?,
        members: number(row, 8, "audiences.membership_rows")?,
        pending_jobs: number(row, 9, "a pending job count")?,
        succeeded_jobs: number(row, 10, "a succeeded job count")?,
        query,
        epoch: number(row, 12, "audiences.epoch")?,
        released,
    })
}

pub(crate) async fn create_audience(
    tx: &Tx<'_>,
    tally: &mut Tally,
    new: NewAudience,
    now: Timestamp,
) -> Result<Audience, StoreError> {
    let now = to_stored_precision(now);
    let owner = query_opt(
        tx,
        "SELECT entity FROM advertisers WHERE advertiser_no = $1",
        &[&i64::from(new.advertiser_no)],
    )
    .await?;
    let Some(owner) = owner else {
        return Err(StoreError::Conflict("no such advertiser"));
    };
    let entity: String = rows::get(&owner, 0, "advertisers.entity")?;
    let no = tally.next(tx, Sequence::Audience).await?;
    let no = u32::try_from(no)
        .map_err(|_| StoreError::Database("audience numbers are used up".into()))?;
    execute_unique(
        tx,
        "INSERT INTO audiences (audience_no, audience_id, advertiser_no, name, description, \
         membership_ttl_days, created_at, updated_at, membership_rows, query, epoch) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, 0, $8, 0)",
        &[
            &i64::from(no),
            &new.audience_id,
            &i64::from(new.advertiser_no),
            &new.name,
            &new.description,
            &i64::from(new.membership_ttl_days),
            &micros(now),
            &QueryDigest::EMPTY.as_bytes().as_slice(),
        ],
        "the audience id is taken",
    )
    .await?;
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
pub(crate) async fn audiences(
    tx: &Tx<'_>,
    advertiser_no: u32,
    now: Timestamp,
) -> Result<Vec<Audience>, StoreError> {
    let found = query(
        tx,
        concat!(
            audience_select!(),
            "WHERE a.advertiser_no = $2 ORDER BY a.audience_no"
        ),
        &[&micros(now), &i64::from(advertiser_no)],
    )
    .await?;
    found.iter().map(audience).collect()
}

/// Every audience, by number.
pub(crate) async fn all_audiences(
    tx: &Tx<'_>,
    now: Timestamp,
) -> Result<Vec<Audience>, StoreError> {
    let found = query(
        tx,
        concat!(audience_select!(), "ORDER BY a.audience_no"),
        &[&micros(now)],
    )
    .await?;
    found.iter().map(audience).collect()
}

pub(crate) async fn audience_by_no(
    tx: &Tx<'_>,
    audience_no: u32,
    now: Timestamp,
) -> Result<Option<Audience>, StoreError> {
    let row = query_opt(
        tx,
        concat!(audience_select!(), "WHERE a.audience_no = $2"),
        &[&micros(now), &i64::from(audience_no)],
    )
    .await?;
    row.as_ref().map(audience).transpose()
}

pub(crate) async fn audience_by_id(
    tx: &Tx<'_>,
    advertiser_no: u32,
    audience_id: &str,
    now: Timestamp,
) -> Result<Option<Audience>, StoreError> {
    let row = query_opt(
        tx,
        concat!(
            audience_select!(),
            "WHERE a.advertiser_no = $2 AND a.audience_id = $3"
        ),
        &[&micros(now), &i64::from(advertiser_no), &audience_id],
    )
    .await?;
    row.as_ref().map(audience).transpose()
}

/// Deletes an audience: its memberships end (with history), its unfinished jobs fail, its
/// sessions and their parts go, then its row; the deletion is logged.
pub(crate) async fn delete_audience(
    tx: &Tx<'_>,
    tally: &mut Tally,
    advertiser_no: u32,
    audience_id: &str,
    now: Timestamp,
) -> Result<Option<Applied>, StoreError> {
    let now = to_stored_precision(now);
    let owned = query_opt(
        tx,
        "SELECT audience_no FROM audiences WHERE audience_id = $1 AND advertiser_no = $2",
        &[&audience_id, &i64::from(advertiser_no)],
    )
    .await?;
    let Some(owned) = owned else {
        return Ok(None);
    };
    let audience_no: u32 = number(&owned, 0, "audiences.audience_no")?;
    let key = i64::from(audience_no);
    let ended = memberships::end_audience(tx, tally, audience_no, now).await?;
    execute(
        tx,
        "UPDATE jobs SET state = 'failed', error = $1, finished_at = $2 \
         WHERE audience_no = $3 AND state IN ('queued', 'running')",
        &[&AUDIENCE_DELETED, &micros(now), &key],
    )
    .await?;
    execute(
        tx,
        "DELETE FROM session_parts WHERE session_no IN \
         (SELECT session_no FROM upload_sessions WHERE audience_no = $1)",
        &[&key],
    )
    .await?;
    execute(
        tx,
        "DELETE FROM upload_sessions WHERE audience_no = $1",
        &[&key],
    )
    .await?;
    execute(tx, "DELETE FROM audiences WHERE audience_no = $1", &[&key]).await?;
    tally.audiences -= 1;
    tally.journal.record(
        now,
        LogEvent::AudienceDeleted {
            audience_id: audience_id.to_owned(),
            ended: ended.len() as u64,
        },
    );
    Ok(Some(Applied {
        granted: Vec::new(),
        revoked: ended.iter().map(|m| (audience_no, m.account)).collect(),
    }))
}

// -------------------------------------------------------------------------------------------
// Sessions

/// A session to create (the trait method's arguments).
#[derive(Clone, Debug)]
pub(crate) struct NewSession {
    pub(crate) session_id: String,
    pub(crate) advertiser_no: u32,
    pub(crate) audience_no: u32,
    pub(crate) op: JobOp,
    pub(crate) now: Timestamp,
    pub(crate) expires_at: Timestamp,
}

pub(crate) async fn create_session(
    tx: &Tx<'_>,
    tally: &mut Tally,
    session: NewSession,
) -> Result<UploadSession, StoreError> {
    let created_at = to_stored_precision(session.now);
    let expires_at = to_stored_precision(session.expires_at);
    let owner = query_opt(
        tx,
        "SELECT advertiser_no FROM audiences WHERE audience_no = $1",
        &[&i64::from(session.audience_no)],
    )
    .await?;
    let owner: Option<i64> = owner
        .map(|row| rows::get(&row, 0, "audiences.advertiser_no"))
        .transpose()?;
    if owner != Some(i64::from(session.advertiser_no)) {
        return Err(StoreError::Conflict("no such audience"));
    }
    let no = tally.next(tx, Sequence::Session).await?;
    execute_unique(
        tx,
        "INSERT INTO upload_sessions (session_no, session_id, advertiser_no, audience_no, op, \
         created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &no,
            &session.session_id,
            &i64::from(session.advertiser_no),
            &i64::from(session.audience_no),
            &session.op.as_str(),
            &micros(created_at),
            &micros(expires_at),
        ],
        "the session id is taken",
    )
    .await?;
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

pub(crate) async fn session(
    tx: &Tx<'_>,
    advertiser_no: u32,
    session_id: &str,
) -> Result<Option<UploadSession>, StoreError> {
    let row = query_opt(
        tx,
        concat!(
            "SELECT ",
            session_columns!(),
            " FROM upload_sessions WHERE session_id = $1 AND advertiser_no = $2"
        ),
        &[&session_id, &i64::from(advertiser_no)],
    )
    .await?;
    row.as_ref().map(rows::session).transpose()
}

async fn session_by_no(tx: &Tx<'_>, session_no: i64) -> Result<UploadSession, StoreError> {
    let row = query_opt(
        tx,
        concat!(
            "SELECT ",
            session_columns!(),
            " FROM upload_sessions WHERE session_no = $1"
        ),
        &[&session_no],
    )
    .await?;
    match row {
        Some(row) => rows::session(&row),
        None => Err(StoreError::Conflict("no such upload session")),
    }
}

/// Stages a part of an uncommitted session, replacing one of the same number.
pub(crate) async fn put_session_part(
    tx: &Tx<'_>,
    session_no: u64,
    part: SessionPart,
    now: Timestamp,
) -> Result<(), StoreError> {
    let session_no = signed(session_no, "a session number")?;
    if session_by_no(tx, session_no).await?.job_no.is_some() {
        return Err(StoreError::Conflict("the upload session is committed"));
    }
    execute(
        tx,
        "INSERT INTO session_parts (session_no, part_no, rows_received, rows_accepted, \
         rejected, matched, staged_at, keys) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (session_no, part_no) DO UPDATE SET \
         rows_received = excluded.rows_received, rows_accepted = excluded.rows_accepted, \
         rejected = excluded.rejected, matched = excluded.matched, \
         staged_at = excluded.staged_at, keys = excluded.keys",
        &[
            &session_no,
            &i64::from(part.part_no),
            &signed(part.counts.rows_received, "a row count")?,
            &signed(part.counts.rows_accepted, "a row count")?,
            &encode_rejected(&part.counts.rejected),
            &pack_matches(part.matched),
            &micros(now),
            &part.keys.as_bytes().as_slice(),
        ],
    )
    .await?;
    Ok(())
}

/// The staged parts' counters and key sets, by part number.
pub(crate) async fn session_parts(
    tx: &Tx<'_>,
    session_no: u64,
) -> Result<Vec<StagedPart>, StoreError> {
    let session_no = signed(session_no, "a session number")?;
    let found = query(
        tx,
        "SELECT part_no, rows_received, rows_accepted, rejected, keys FROM session_parts \
         WHERE session_no = $1 ORDER BY part_no",
        &[&session_no],
    )
    .await?;
    found
        .iter()
        .map(|row| {
            let rejected: &str = rows::get(row, 3, "session_parts.rejected")?;
            Ok(StagedPart {
                part_no: number(row, 0, "session_parts.part_no")?,
                counts: JobCounts {
                    rows_received: number(row, 1, "session_parts.rows_received")?,
                    rows_accepted: number(row, 2, "session_parts.rows_accepted")?,
                    rejected: decode_rejected(rejected, "session_parts.rejected")?,
                },
                keys: KeySetDigest::from_bytes(rows::bytes32(row, 4, "session_parts.keys")?),
            })
        })
        .collect()
}

/// Creates a session's job (queued) and links it.
pub(crate) async fn commit_session(
    tx: &Tx<'_>,
    tally: &mut Tally,
    session_no: u64,
    job: NewJob,
    now: Timestamp,
) -> Result<Job, StoreError> {
    let now = to_stored_precision(now);
    let session_key = signed(session_no, "a session number")?;
    let session = session_by_no(tx, session_key).await?;
    if session.job_no.is_some() {
        return Err(StoreError::Conflict("the upload session is committed"));
    }
    if (session.advertiser_no, session.audience_no, session.op)
        != (job.advertiser_no, job.audience_no, job.op)
    {
        return Err(StoreError::Conflict("the job does not match its session"));
    }
    let no = tally.next(tx, Sequence::Job).await?;
    execute_unique(
        tx,
        "INSERT INTO jobs (job_no, job_id, advertiser_no, audience_no, session_no, op, state, \
         rows_received, rows_accepted, rejected, created_at, keys) \
         VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $8, $9, $10, $11)",
        &[
            &no,
            &job.job_id,
            &i64::from(job.advertiser_no),
            &i64::from(job.audience_no),
            &session_key,
            &job.op.as_str(),
            &signed(job.counts.rows_received, "a row count")?,
            &signed(job.counts.rows_accepted, "a row count")?,
            &encode_rejected(&job.counts.rejected),
            &micros(now),
            &job.keys.as_bytes().as_slice(),
        ],
        "the job id is taken",
    )
    .await?;
    execute(
        tx,
        "UPDATE upload_sessions SET job_no = $1 WHERE session_no = $2",
        &[&no, &session_key],
    )
    .await?;
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
pub(crate) async fn expire_sessions(tx: &Tx<'_>, now: Timestamp) -> Result<u64, StoreError> {
    let now = micros(now);
    execute(
        tx,
        "DELETE FROM session_parts WHERE session_no IN (SELECT session_no FROM upload_sessions \
         WHERE job_no IS NULL AND expires_at <= $1)",
        &[&now],
    )
    .await?;
    execute(
        tx,
        "DELETE FROM upload_sessions WHERE job_no IS NULL AND expires_at <= $1",
        &[&now],
    )
    .await
}

// -------------------------------------------------------------------------------------------
// Jobs

pub(crate) async fn job(
    tx: &Tx<'_>,
    advertiser_no: u32,
    job_id: &str,
) -> Result<Option<Job>, StoreError> {
    let row = query_opt(
        tx,
        concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE job_id = $1 AND advertiser_no = $2"
        ),
        &[&job_id, &i64::from(advertiser_no)],
    )
    .await?;
    row.as_ref().map(rows::job).transpose()
}

/// A job by number, whoever owns it.
pub(crate) async fn job_by_no(tx: &Tx<'_>, job_no: u64) -> Result<Option<Job>, StoreError> {
    let job_no = signed(job_no, "a job number")?;
    let row = query_opt(
        tx,
        concat!("SELECT ", job_columns!(), " FROM jobs WHERE job_no = $1"),
        &[&job_no],
    )
    .await?;
    row.as_ref().map(rows::job).transpose()
}

/// Queued and running jobs, oldest first.
pub(crate) async fn unfinished_jobs(tx: &Tx<'_>) -> Result<Vec<Job>, StoreError> {
    let found = query(
        tx,
        concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE state IN ('queued', 'running') ORDER BY job_no"
        ),
        &[],
    )
    .await?;
    found.iter().map(rows::job).collect()
}

/// Why a change allowed only to unfinished jobs changed nothing.
async fn not_unfinished(tx: &Tx<'_>, job_no: i64) -> Result<StoreError, StoreError> {
    let exists = query_opt(tx, "SELECT 1 FROM jobs WHERE job_no = $1", &[&job_no])
        .await?
        .is_some();
    Ok(StoreError::Conflict(if exists {
        "the job is finished"
    } else {
        "no such job"
    }))
}

/// Marks a queued job running (a running one stays as it is, keeping its start time).
pub(crate) async fn set_job_running(
    tx: &Tx<'_>,
    job_no: u64,
    now: Timestamp,
) -> Result<(), StoreError> {
    let job_no = signed(job_no, "a job number")?;
    let changed = execute(
        tx,
        "UPDATE jobs SET state = 'running', started_at = COALESCE(started_at, $1) \
         WHERE job_no = $2 AND state IN ('queued', 'running')",
        &[&micros(now), &job_no],
    )
    .await?;
    if changed == 0 {
        return Err(not_unfinished(tx, job_no).await?);
    }
    Ok(())
}

/// Marks an unfinished job failed and deletes its staged parts.
pub(crate) async fn fail_job(
    tx: &Tx<'_>,
    job_no: u64,
    message: &'static str,
    now: Timestamp,
) -> Result<(), StoreError> {
    let job_no = signed(job_no, "a job number")?;
    let changed = execute(
        tx,
        "UPDATE jobs SET state = 'failed', error = $1, finished_at = $2 \
         WHERE job_no = $3 AND state IN ('queued', 'running')",
        &[&message, &micros(now), &job_no],
    )
    .await?;
    if changed == 0 {
        return Err(not_unfinished(tx, job_no).await?);
    }
    execute(
        tx,
        "DELETE FROM session_parts WHERE session_no = (SELECT session_no FROM jobs \
         WHERE job_no = $1)",
        &[&job_no],
    )
    .await?;
    Ok(())
}

/// Every pair the job's staged parts matched, sorted, without duplicates.
pub(crate) async fn staged_matches(
    tx: &Tx<'_>,
    job_no: u64,
) -> Result<Vec<(AccountNo, KeyedDigest)>, StoreError> {
    let job_no = signed(job_no, "a job number")?;
    let job = query_opt(
        tx,
        "SELECT session_no FROM jobs WHERE job_no = $1",
        &[&job_no],
    )
    .await?;
    let Some(job) = job else {
        return Err(StoreError::Conflict("no such job"));
    };
    let session_no: i64 = rows::get(&job, 0, "jobs.session_no")?;
    let found = query(
        tx,
        "SELECT matched FROM session_parts WHERE session_no = $1",
        &[&session_no],
    )
    .await?;
    let mut pairs = Vec::new();
    for row in &found {
        let matched: &[u8] = rows::get(row, 0, "session_parts.matched")?;
        unpack_matches(matched, &mut pairs)?;
    }
    // Each part is sorted already: the stable sort finds the runs and merges them.
    pairs.sort();
    pairs.dedup();
    Ok(pairs)
}
