//! Memberships and their history: applying a job, ending memberships (by a job, by consent,
//! by expiry, by deleting an audience, by erasing an account), and reading them back.
//!
//! Applying a job is the hot path: half a million grants in one transaction. The grants
//! (sorted by account, one per account) are staged in a temporary table, by `COPY` when they
//! are many (`bulk`), and everything else is set-wise SQL over that table: the upsert into
//! `memberships`, the history rows (numbered from the event counter in account order), and a
//! `replace`'s end of every member the new list did not reach. Every grant and every end
//! writes a history row with the basis granted or ended. Each audience's `membership_rows`,
//! its data epoch and the store's `memberships` counter move in the same transaction.
//!
//! Nothing here may write a membership without its history row, or end one without it.

use std::collections::BTreeMap;

use jiff::Timestamp;
use tailor_core::release::QueryDigest;
use tailor_core::{AccountNo, Context, PolicyVersion};
use tailor_store::audience::expiry;
use tailor_store::log::LogEvent;
use tailor_store::packing::{decode_rejected, holds_account, without_account};
use tailor_store::{
    Applied, Grant, JobOp, JobState, Membership, MembershipEvent, RevokeReason, StoreError,
    to_stored_precision,
};
use tokio_postgres::types::{ToSql, Type};

use crate::bulk::{self, BulkRow};
use crate::counters::{Sequence, Tally, count, signed};
use crate::rows::{self, event_columns, membership_columns, micros};
use crate::transaction::{Tx, execute, query, query_one, query_opt};

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

// -------------------------------------------------------------------------------------------
// History

/// One history row.
struct EventRow {
    event_no: i64,
    audience_no: i64,
    account_no: i64,
    kind: &'static str,
    reason: Option<&'static str>,
    job_no: Option<i64>,
    contact_digest: Vec<u8>,
    context: &'static str,
    consent_seq: Option<i64>,
    policy_version: Vec<u8>,
    at: i64,
}

impl BulkRow for EventRow {
    const TARGET: &'static str = "membership_events (event_no, audience_no, account_no, kind, \
         reason, job_no, contact_digest, context, consent_seq, policy_version, at)";
    const TYPES: &'static [Type] = &[
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::INT8,
        Type::BYTEA,
        Type::TEXT,
        Type::INT8,
        Type::BYTEA,
        Type::INT8,
    ];
    fn values(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![
            &self.event_no,
            &self.audience_no,
            &self.account_no,
            &self.kind,
            &self.reason,
            &self.job_no,
            &self.contact_digest,
            &self.context,
            &self.consent_seq,
            &self.policy_version,
            &self.at,
        ]
    }
}

/// Writes one revocation history row per basis, in order, numbered from the event counter.
/// (Grants' rows are written from the staged grants by [`grant_history`].)
async fn revoke_history(
    tx: &Tx<'_>,
    tally: &mut Tally,
    audience_no: u32,
    reason: RevokeReason,
    job_no: Option<u64>,
    now: Timestamp,
    bases: impl ExactSizeIterator<Item = Basis>,
) -> Result<(), StoreError> {
    let n = bases.len();
    if n == 0 {
        return Ok(());
    }
    let mut next = tally.reserve(tx, Sequence::Event, n).await?;
    let job_no = job_no.map(|j| signed(j, "a job number")).transpose()?;
    let rows = bases
        .map(|basis| {
            let row = EventRow {
                event_no: next,
                audience_no: i64::from(audience_no),
                account_no: i64::from(basis.account.0),
                kind: "revoke",
                reason: Some(reason.as_str()),
                job_no,
                contact_digest: basis.contact_digest.to_vec(),
                context: basis.context.as_str(),
                consent_seq: basis
                    .consent_seq
                    .map(|s| signed(s, "a consent sequence number"))
                    .transpose()?,
                policy_version: basis.policy_version.0.to_vec(),
                at: micros(now),
            };
            next += 1;
            Ok(row)
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    bulk::insert(tx, &rows).await
}

// -------------------------------------------------------------------------------------------
// Grants

/// One grant staged for a job, in the transaction's temporary `staged_grants` table.
struct StagedGrant {
    account_no: i64,
    contact_digest: Vec<u8>,
    context: &'static str,
    consent_seq: Option<i64>,
    policy_version: Vec<u8>,
}

impl BulkRow for StagedGrant {
    const TARGET: &'static str =
        "staged_grants (account_no, contact_digest, context, consent_seq, policy_version)";
    const TYPES: &'static [Type] = &[Type::INT8, Type::BYTEA, Type::TEXT, Type::INT8, Type::BYTEA];
    fn values(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![
            &self.account_no,
            &self.contact_digest,
            &self.context,
            &self.consent_seq,
            &self.policy_version,
        ]
    }
}

/// Deletes the staged grants of erased accounts (numbers given once, whose account is gone:
/// numbers are never reused), and returns those accounts.
async fn drop_erased(tx: &Tx<'_>) -> Result<std::collections::HashSet<AccountNo>, StoreError> {
    let gone = query(
        tx,
        "DELETE FROM staged_grants s \
         WHERE s.account_no <= (SELECT value FROM counters WHERE name = 'last_account_no') \
           AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.account_no = s.account_no) \
         RETURNING s.account_no",
        &[],
    )
    .await?;
    gone.iter()
        .map(|row| rows::dense_no(rows::get(row, 0, "staged_grants.account_no")?))
        .collect()
}

/// Stages `grants` (sorted by account, one per account) in a temporary table dropped at the
/// end of the transaction.
async fn stage_grants(tx: &Tx<'_>, grants: &[Grant]) -> Result<(), StoreError> {
    tx.batch_execute(
        "CREATE TEMPORARY TABLE staged_grants (
            account_no BIGINT PRIMARY KEY,
            contact_digest BYTEA NOT NULL,
            context TEXT NOT NULL,
            consent_seq BIGINT,
            policy_version BYTEA NOT NULL
        ) ON COMMIT DROP",
    )
    .await
    .map_err(crate::transaction::classify)?;
    let rows = grants
        .iter()
        .map(|g| {
            Ok(StagedGrant {
                account_no: i64::from(g.account.0),
                contact_digest: g.contact_digest.0.to_vec(),
                context: g.context.as_str(),
                consent_seq: g
                    .consent_seq
                    .map(|s| signed(s, "a consent sequence number"))
                    .transpose()?,
                policy_version: g.policy_version.0.to_vec(),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    bulk::insert(tx, &rows).await
}

/// Writes the staged grants into the audience: new memberships are inserted, existing ones
/// renewed. Returns how many were new.
async fn write_grants(
    tx: &Tx<'_>,
    audience_no: u32,
    job_no: i64,
    (now, expires_at): (Timestamp, Timestamp),
    grants: usize,
    empty: bool,
) -> Result<u64, StoreError> {
    let audience = i64::from(audience_no);
    let existing: i64 = if empty {
        0
    } else {
        let row = query_one(
            tx,
            "SELECT COUNT(*) FROM memberships m JOIN staged_grants s \
             ON s.account_no = m.account_no WHERE m.audience_no = $1",
            &[&audience],
        )
        .await?;
        rows::get(&row, 0, "a membership count")?
    };
    execute(
        tx,
        "INSERT INTO memberships (audience_no, account_no, contact_digest, context, \
         consent_seq, policy_version, job_no, granted_at, expires_at) \
         SELECT $1, account_no, contact_digest, context, consent_seq, policy_version, \
         $2, $3, $4 FROM staged_grants ORDER BY account_no \
         ON CONFLICT (audience_no, account_no) DO UPDATE SET \
         contact_digest = excluded.contact_digest, context = excluded.context, \
         consent_seq = excluded.consent_seq, policy_version = excluded.policy_version, \
         job_no = excluded.job_no, granted_at = excluded.granted_at, \
         expires_at = excluded.expires_at",
        &[&audience, &job_no, &micros(now), &micros(expires_at)],
    )
    .await?;
    let grants = count(grants);
    Ok((grants - existing).unsigned_abs())
}

/// Writes the history rows of the staged grants, numbered in account order.
async fn grant_history(
    tx: &Tx<'_>,
    tally: &mut Tally,
    audience_no: u32,
    job_no: i64,
    now: Timestamp,
    grants: usize,
) -> Result<(), StoreError> {
    if grants == 0 {
        return Ok(());
    }
    let first = tally.reserve(tx, Sequence::Event, grants).await?;
    execute(
        tx,
        "INSERT INTO membership_events (event_no, audience_no, account_no, kind, reason, \
         job_no, contact_digest, context, consent_seq, policy_version, at) \
         SELECT $1 + ROW_NUMBER() OVER (ORDER BY account_no) - 1, $2, account_no, 'grant', \
         NULL, $3, contact_digest, context, consent_seq, policy_version, $4 \
         FROM staged_grants",
        &[&first, &i64::from(audience_no), &job_no, &micros(now)],
    )
    .await?;
    Ok(())
}

// -------------------------------------------------------------------------------------------
// Ends

/// Moves an audience's `membership_rows` and the store's memberships counter by `delta`, and
/// its data epoch: any change to its members makes a size question about it a new one.
async fn count_members(
    tx: &Tx<'_>,
    tally: &mut Tally,
    audience_no: u32,
    delta: i64,
) -> Result<(), StoreError> {
    if delta == 0 {
        return Ok(());
    }
    execute(
        tx,
        "UPDATE audiences SET membership_rows = membership_rows + $1, epoch = epoch + 1 \
         WHERE audience_no = $2",
        &[&delta, &i64::from(audience_no)],
    )
    .await?;
    tally.memberships += delta;
    Ok(())
}

/// Decodes memberships returned by a `DELETE ... RETURNING`, sorted by account (`RETURNING`
/// gives rows in no promised order).
fn ended_rows(found: &[tokio_postgres::Row]) -> Result<Vec<Membership>, StoreError> {
    let mut ended = found
        .iter()
        .map(rows::membership)
        .collect::<Result<Vec<_>, _>>()?;
    ended.sort_unstable_by_key(|m| (m.audience_no, m.account));
    Ok(ended)
}

/// Ends the memberships of `accounts` in one audience that exist, writing their history.
/// Returns the memberships ended, by account.
async fn end_accounts(
    tx: &Tx<'_>,
    tally: &mut Tally,
    audience_no: u32,
    accounts: &[AccountNo],
    reason: RevokeReason,
    job_no: Option<u64>,
    now: Timestamp,
) -> Result<Vec<Membership>, StoreError> {
    if accounts.is_empty() {
        return Ok(Vec::new());
    }
    let numbers = rows::account_numbers(accounts);
    let found = query(
        tx,
        concat!(
            "DELETE FROM memberships WHERE audience_no = $1 AND account_no = ANY($2) RETURNING ",
            membership_columns!()
        ),
        &[&i64::from(audience_no), &numbers],
    )
    .await?;
    let ended = ended_rows(&found)?;
    finish_ends(tx, tally, audience_no, &ended, reason, job_no, now).await?;
    Ok(ended)
}

/// Writes the history and counters of memberships of one audience just ended.
async fn finish_ends(
    tx: &Tx<'_>,
    tally: &mut Tally,
    audience_no: u32,
    ended: &[Membership],
    reason: RevokeReason,
    job_no: Option<u64>,
    now: Timestamp,
) -> Result<(), StoreError> {
    revoke_history(
        tx,
        tally,
        audience_no,
        reason,
        job_no,
        now,
        ended.iter().map(Basis::from),
    )
    .await?;
    count_members(tx, tally, audience_no, -count(ended.len())).await
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

async fn job_row(tx: &Tx<'_>, job_no: i64) -> Result<Option<JobRow>, StoreError> {
    let row = query_opt(
        tx,
        "SELECT audience_no, session_no, op, state FROM jobs WHERE job_no = $1",
        &[&job_no],
    )
    .await?;
    row.map(|row| {
        Ok(JobRow {
            audience_no: rows::number(&row, 0, "jobs.audience_no")?,
            session_no: rows::get(&row, 1, "jobs.session_no")?,
            op: rows::parsed(&row, 2, "jobs.op", JobOp::parse)?,
            state: rows::parsed(&row, 3, "jobs.state", JobState::parse)?,
        })
    })
    .transpose()
}

/// Applies a job: see [`tailor_store::Store::apply_job`]. Grants are taken one per account
/// (the first listed), and `granted` and `revoked` come sorted by account.
pub(crate) async fn apply_job(
    tx: &Tx<'_>,
    tally: &mut Tally,
    job_no: u64,
    mut grants: Vec<Grant>,
    mut removals: Vec<AccountNo>,
    query_digest: QueryDigest,
    now: Timestamp,
) -> Result<Applied, StoreError> {
    let now = to_stored_precision(now);
    let job_key = signed(job_no, "a job number")?;
    let Some(job) = job_row(tx, job_key).await? else {
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
    let audience_no = job.audience_no;
    let audience = query_opt(
        tx,
        "SELECT membership_ttl_days, membership_rows FROM audiences WHERE audience_no = $1",
        &[&i64::from(audience_no)],
    )
    .await?;
    let Some(audience) = audience else {
        return Err(StoreError::Conflict("the job's audience is deleted"));
    };
    let ttl_days: u32 = rows::number(&audience, 0, "audiences.membership_ttl_days")?;
    let rows_before: i64 = rows::get(&audience, 1, "audiences.membership_rows")?;
    let expires_at = expiry(now, ttl_days);

    let mut applied = Applied::default();
    let mut ended = Vec::new();
    match job.op {
        JobOp::Add | JobOp::Replace => {
            // One grant per account, the first listed.
            grants.sort_by_key(|g| g.account);
            grants.dedup_by_key(|g| g.account);
            if !grants.is_empty() {
                stage_grants(tx, &grants).await?;
                // An account erased (through another process) since the job re-checked its
                // matches is not granted: nothing of it may be written again.
                let erased = drop_erased(tx).await?;
                if !erased.is_empty() {
                    grants.retain(|g| !erased.contains(&g.account));
                }
                let new = write_grants(
                    tx,
                    audience_no,
                    job_key,
                    (now, expires_at),
                    grants.len(),
                    rows_before == 0,
                )
                .await?;
                count_members(tx, tally, audience_no, signed(new, "a count")?).await?;
                grant_history(tx, tally, audience_no, job_key, now, grants.len()).await?;
            }
            if job.op == JobOp::Replace && rows_before > 0 {
                ended = end_others(tx, tally, audience_no, job_no, now, grants.is_empty()).await?;
                applied.revoked = ended.iter().map(|m| (audience_no, m.account)).collect();
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
            ended = end_accounts(
                tx,
                tally,
                audience_no,
                &removals,
                RevokeReason::Removed,
                Some(job_no),
                now,
            )
            .await?;
            applied.revoked = ended.iter().map(|m| (audience_no, m.account)).collect();
        }
    }
    log_job(tx, tally, job_key, audience_no, &grants, &ended, now).await?;
    execute(
        tx,
        "UPDATE audiences SET updated_at = $1, query = $2 WHERE audience_no = $3",
        &[
            &micros(now),
            &query_digest.as_bytes().as_slice(),
            &i64::from(audience_no),
        ],
    )
    .await?;
    execute(
        tx,
        "UPDATE jobs SET state = 'succeeded', finished_at = $1, \
         started_at = COALESCE(started_at, $1) WHERE job_no = $2",
        &[&micros(now), &job_key],
    )
    .await?;
    execute(
        tx,
        "DELETE FROM session_parts WHERE session_no = $1",
        &[&job.session_no],
    )
    .await?;
    Ok(applied)
}

/// A `replace`'s end of every member its list did not reach (all of them when it granted
/// nothing and so staged nothing).
async fn end_others(
    tx: &Tx<'_>,
    tally: &mut Tally,
    audience_no: u32,
    job_no: u64,
    now: Timestamp,
    nothing_staged: bool,
) -> Result<Vec<Membership>, StoreError> {
    let audience = i64::from(audience_no);
    let found = if nothing_staged {
        query(
            tx,
            concat!(
                "DELETE FROM memberships WHERE audience_no = $1 RETURNING ",
                membership_columns!()
            ),
            &[&audience],
        )
        .await?
    } else {
        query(
            tx,
            concat!(
                "DELETE FROM memberships m WHERE m.audience_no = $1 AND NOT EXISTS \
                 (SELECT 1 FROM staged_grants s WHERE s.account_no = m.account_no) RETURNING ",
                membership_columns!()
            ),
            &[&audience],
        )
        .await?
    };
    let ended = ended_rows(&found)?;
    finish_ends(
        tx,
        tally,
        audience_no,
        &ended,
        RevokeReason::Replaced,
        Some(job_no),
        now,
    )
    .await?;
    Ok(ended)
}

/// Records an applied job in the log, with the root of its grants and revocations.
async fn log_job(
    tx: &Tx<'_>,
    tally: &mut Tally,
    job_key: i64,
    audience_no: u32,
    grants: &[Grant],
    ended: &[Membership],
    now: Timestamp,
) -> Result<(), StoreError> {
    let leaf = |granted: bool, b: Basis| {
        tailor_store::log::grant_leaf(
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
    let row = query_one(
        tx,
        "SELECT j.job_id, v.advertiser_id, a.audience_id, j.op, j.rows_received, \
         j.rows_accepted, j.rejected FROM jobs j \
         JOIN advertisers v ON v.advertiser_no = j.advertiser_no \
         JOIN audiences a ON a.audience_no = j.audience_no WHERE j.job_no = $1",
        &[&job_key],
    )
    .await?;
    let rejected: &str = rows::get(&row, 6, "jobs.rejected")?;
    tally.journal.record(
        now,
        LogEvent::JobCompleted {
            job_id: rows::get(&row, 0, "jobs.job_id")?,
            advertiser_id: rows::get(&row, 1, "advertisers.advertiser_id")?,
            audience_id: rows::get(&row, 2, "audiences.audience_id")?,
            op: rows::get(&row, 3, "jobs.op")?,
            policy_version: grants.first().map(|g| hex::encode(g.policy_version.0)),
            rows_received: rows::number(&row, 4, "jobs.rows_received")?,
            rows_accepted: rows::number(&row, 5, "jobs.rows_accepted")?,
            rejected: decode_rejected(rejected, "jobs.rejected")?,
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
pub(crate) async fn revoke(
    tx: &Tx<'_>,
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
        let gone = end_accounts(tx, tally, audience_no, &accounts, reason, None, now).await?;
        ended.extend(gone.iter().map(|m| (audience_no, m.account.0)));
    }
    crate::log::memberships_ended(tx, &mut tally.journal, &ended, reason.as_str(), now).await?;
    Ok(ended.len() as u64)
}

/// Ends every membership expired at `now`, audience by audience, and logs how many per
/// audience. Returns them, by audience and account.
pub(crate) async fn expire_memberships(
    tx: &Tx<'_>,
    tally: &mut Tally,
    now: Timestamp,
) -> Result<Vec<(u32, AccountNo)>, StoreError> {
    let now = to_stored_precision(now);
    let found = query(
        tx,
        concat!(
            "DELETE FROM memberships WHERE expires_at <= $1 RETURNING ",
            membership_columns!()
        ),
        &[&micros(now)],
    )
    .await?;
    let ended = ended_rows(&found)?;
    let mut by_audience: BTreeMap<u32, Vec<Membership>> = BTreeMap::new();
    for m in ended {
        by_audience.entry(m.audience_no).or_default().push(m);
    }
    let mut expired = Vec::new();
    for (audience_no, ended) in by_audience {
        finish_ends(
            tx,
            tally,
            audience_no,
            &ended,
            RevokeReason::Expired,
            None,
            now,
        )
        .await?;
        let audience_id = crate::log::audience_id(tx, audience_no).await?;
        tally.journal.record(
            now,
            LogEvent::MembershipsExpired {
                audience_id,
                expired: ended.len() as u64,
            },
        );
        expired.extend(ended.iter().map(|m| (audience_no, m.account)));
    }
    Ok(expired)
}

/// Ends every membership of an audience that is being deleted. Returns them, by account.
pub(crate) async fn end_audience(
    tx: &Tx<'_>,
    tally: &mut Tally,
    audience_no: u32,
    now: Timestamp,
) -> Result<Vec<Membership>, StoreError> {
    let found = query(
        tx,
        concat!(
            "DELETE FROM memberships WHERE audience_no = $1 RETURNING ",
            membership_columns!()
        ),
        &[&i64::from(audience_no)],
    )
    .await?;
    let ended = ended_rows(&found)?;
    finish_ends(
        tx,
        tally,
        audience_no,
        &ended,
        RevokeReason::AudienceDeleted,
        None,
        now,
    )
    .await?;
    Ok(ended)
}

/// Deletes an erased account's memberships, its history rows and its staged matches.
/// Returns how many memberships were live at `now`.
pub(crate) async fn erase_account(
    tx: &Tx<'_>,
    tally: &mut Tally,
    account: AccountNo,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let no = i64::from(account.0);
    let found = query(
        tx,
        "DELETE FROM memberships WHERE account_no = $1 RETURNING audience_no, expires_at",
        &[&no],
    )
    .await?;
    let mut per_audience: BTreeMap<u32, i64> = BTreeMap::new();
    let mut live = 0;
    for row in &found {
        let audience_no: u32 = rows::number(row, 0, "memberships.audience_no")?;
        let expires_at: i64 = rows::get(row, 1, "memberships.expires_at")?;
        *per_audience.entry(audience_no).or_default() += 1;
        if expires_at > micros(now) {
            live += 1;
        }
    }
    for (audience_no, n) in per_audience {
        count_members(tx, tally, audience_no, -n).await?;
    }
    execute(
        tx,
        "DELETE FROM membership_events WHERE account_no = $1",
        &[&no],
    )
    .await?;
    scrub_staged(tx, account).await?;
    Ok(live)
}

/// Removes an account's pairs from every staged part. Staged parts live only until their
/// job is applied or their session expires, so this reads little.
async fn scrub_staged(tx: &Tx<'_>, account: AccountNo) -> Result<(), StoreError> {
    let found = query(
        tx,
        "SELECT session_no, part_no, matched FROM session_parts",
        &[],
    )
    .await?;
    for row in &found {
        let matched: &[u8] = rows::get(row, 2, "session_parts.matched")?;
        if holds_account(matched, account) {
            let session_no: i64 = rows::get(row, 0, "session_parts.session_no")?;
            let part_no: i64 = rows::get(row, 1, "session_parts.part_no")?;
            execute(
                tx,
                "UPDATE session_parts SET matched = $1 WHERE session_no = $2 AND part_no = $3",
                &[&without_account(matched, account), &session_no, &part_no],
            )
            .await?;
        }
    }
    Ok(())
}

// -------------------------------------------------------------------------------------------
// Reads

/// Memberships not yet ended (those past expiry included, until the expiry sweep ends them)
/// whose row meets `condition`, a SQL condition on `$1` (and an order).
async fn memberships_where(
    tx: &Tx<'_>,
    condition: &str,
    param: &(dyn ToSql + Sync),
) -> Result<Vec<Membership>, StoreError> {
    let sql = format!(
        "SELECT {} FROM memberships WHERE {condition}",
        membership_columns!()
    );
    let found = query(tx, &sql, &[param]).await?;
    found.iter().map(rows::membership).collect()
}

/// An account's memberships not yet ended, by audience.
pub(crate) async fn memberships_of(
    tx: &Tx<'_>,
    account: AccountNo,
) -> Result<Vec<Membership>, StoreError> {
    memberships_of_accounts(tx, &[account]).await
}

/// The memberships not yet ended of these accounts, by account and audience.
pub(crate) async fn memberships_of_accounts(
    tx: &Tx<'_>,
    accounts: &[AccountNo],
) -> Result<Vec<Membership>, StoreError> {
    memberships_where(
        tx,
        "account_no = ANY($1) ORDER BY account_no, audience_no",
        &rows::account_numbers(accounts),
    )
    .await
}

/// An audience's memberships not yet ended.
pub(crate) async fn audience_memberships(
    tx: &Tx<'_>,
    audience_no: u32,
) -> Result<Vec<Membership>, StoreError> {
    memberships_where(tx, "audience_no = $1", &i64::from(audience_no)).await
}

/// An audience's members unexpired at `now`, sorted.
pub(crate) async fn audience_members(
    tx: &Tx<'_>,
    audience_no: u32,
    now: Timestamp,
) -> Result<Vec<AccountNo>, StoreError> {
    let found = query(
        tx,
        "SELECT account_no FROM memberships WHERE audience_no = $1 AND expires_at > $2 \
         ORDER BY account_no",
        &[&i64::from(audience_no), &micros(now)],
    )
    .await?;
    found
        .iter()
        .map(|row| Ok(AccountNo(rows::number(row, 0, "memberships.account_no")?)))
        .collect()
}

/// The membership history, oldest first, optionally of one audience and one account.
pub(crate) async fn membership_history(
    tx: &Tx<'_>,
    audience_no: Option<u32>,
    account: Option<AccountNo>,
) -> Result<Vec<MembershipEvent>, StoreError> {
    // A null filter matches every row.
    let audience = audience_no.map(i64::from);
    let account = account.map(|a| i64::from(a.0));
    let found = query(
        tx,
        concat!(
            "SELECT ",
            event_columns!(),
            " FROM membership_events WHERE ($1::BIGINT IS NULL OR audience_no = $1) \
             AND ($2::BIGINT IS NULL OR account_no = $2) ORDER BY event_no"
        ),
        &[&audience, &account],
    )
    .await?;
    found.iter().map(rows::membership_event).collect()
}

/// Deletes history rows recorded before `before`, keeping the grant each live membership
/// rests on (its `granted_at` and basis). Returns how many rows went.
pub(crate) async fn prune_history(tx: &Tx<'_>, before: Timestamp) -> Result<u64, StoreError> {
    execute(
        tx,
        "DELETE FROM membership_events e WHERE e.at < $1 AND NOT (e.kind = 'grant' AND EXISTS \
         (SELECT 1 FROM memberships m WHERE m.audience_no = e.audience_no \
          AND m.account_no = e.account_no AND m.granted_at = e.at))",
        &[&micros(before)],
    )
    .await
}
