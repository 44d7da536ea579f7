//! The change feed and job claims (see [`tailor_store::replication`]): what lets several
//! `tailor serve` processes share one database.
//!
//! A write transaction records what it changed in its [`Tally`]; [`record`] appends those
//! changes to `changes`, numbered by the `last_change_seq` counter (gapless: writes hold the
//! writer lock), and announces the last number with `NOTIFY tailor_changes` (delivered at
//! commit, never for a rolled-back write). [`listen`] keeps one connection outside the pool
//! listening, and passes each number on; when it loses its connection it reconnects and
//! announces 0, which sends readers to [`head`].
//!
//! Job claims do not take the writer lock: a claim is one row update, and `FOR UPDATE SKIP
//! LOCKED` gives concurrent claimers different jobs. Applying or failing a job checks the
//! claim inside the writer's transaction ([`check_claim`]), so a process whose claim lapsed
//! and was taken over cannot apply the job a second time.

use std::collections::BTreeSet;
use std::sync::Weak;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tailor_core::{AccountNo, KeyedDigest};
use tailor_store::StoreError;
use tailor_store::replication::{Change, Changed};
use tokio::sync::watch;
use tokio_postgres::AsyncMessage;

use crate::counters::{Sequence, Tally};
use crate::rows::{self, micros};
use crate::transaction::{Tx, execute, query, query_opt};

/// The channel changes are announced on.
const CHANNEL: &str = "tailor_changes";

/// Memberships ended at once above which the change names their audiences, not accounts.
const BY_AUDIENCE_ABOVE: usize = 256;

/// What one write transaction changed, in a stable order.
#[derive(Debug, Default)]
pub(crate) struct Changes(BTreeSet<Changed>);

impl Changes {
    pub(crate) fn add(&mut self, what: Changed) {
        self.0.insert(what);
    }

    pub(crate) fn accounts(&mut self, accounts: impl IntoIterator<Item = AccountNo>) {
        self.0.extend(accounts.into_iter().map(Changed::Account));
    }

    /// Memberships ended or granted: by account when few, else by audience (one reload of
    /// each audience is cheaper than thousands of account reloads).
    pub(crate) fn memberships(&mut self, pairs: &[(u32, AccountNo)]) {
        if pairs.len() > BY_AUDIENCE_ABOVE {
            self.0.extend(
                pairs
                    .iter()
                    .map(|&(audience, _)| Changed::Members(audience)),
            );
        } else {
            self.accounts(pairs.iter().map(|&(_, account)| account));
        }
    }
}

fn kind(what: Changed) -> (i16, i64) {
    match what {
        Changed::Account(no) => (1, i64::from(no.0)),
        Changed::Audience(no) => (2, i64::from(no)),
        Changed::Members(no) => (3, i64::from(no)),
        Changed::Policy => (4, 0),
    }
}

fn changed(kind: i16, subject: i64) -> Result<Changed, StoreError> {
    let no = |what| {
        u32::try_from(subject).map_err(|_| StoreError::Corrupt(format!("changes.subject {what}")))
    };
    Ok(match kind {
        1 => Changed::Account(AccountNo(no("account")?)),
        2 => Changed::Audience(no("audience")?),
        3 => Changed::Members(no("audience")?),
        4 => Changed::Policy,
        _ => return Err(StoreError::Corrupt("changes.kind is unknown".into())),
    })
}

/// Appends the transaction's changes to the feed and announces them (at commit).
pub(crate) async fn record(tx: &Tx<'_>, tally: &mut Tally, origin: u64) -> Result<(), StoreError> {
    let changes = std::mem::take(&mut tally.changes).0;
    if changes.is_empty() {
        return Ok(());
    }
    let first = tally.reserve(tx, Sequence::Change, changes.len()).await?;
    let origin = crate::counters::signed(origin, "the origin")?;
    // The wall clock, not the caller's (an engine may run on a test clock): only pruning reads it.
    let at = micros(Timestamp::now());
    let (mut seqs, mut kinds, mut subjects) = (Vec::new(), Vec::new(), Vec::new());
    for (seq, what) in (first..).zip(changes) {
        let (kind, subject) = kind(what);
        seqs.push(seq);
        kinds.push(kind);
        subjects.push(subject);
    }
    let last = seqs.last().copied().unwrap_or(first);
    execute(
        tx,
        "INSERT INTO changes (seq, origin, kind, subject, at) \
         SELECT s, $2, k, j, $5 FROM UNNEST($1::BIGINT[], $3::SMALLINT[], $4::BIGINT[]) AS u(s, k, j)",
        &[&seqs, &origin, &kinds, &subjects, &at],
    )
    .await?;
    execute(
        tx,
        "SELECT pg_notify($1, $2)",
        &[&CHANNEL, &last.to_string()],
    )
    .await?;
    Ok(())
}

/// The number of the last change committed by a process other than `origin` (the newest
/// change is never pruned, but another process's may be: then 0, nothing left to wait for).
pub(crate) async fn head(tx: &Tx<'_>, origin: u64) -> Result<u64, StoreError> {
    // A backward scan of the primary key, stopping at the first row of another process.
    let row = query_opt(
        tx,
        "SELECT seq FROM changes WHERE origin <> $1 ORDER BY seq DESC LIMIT 1",
        &[&crate::counters::signed(origin, "the origin")?],
    )
    .await?;
    match row {
        Some(row) => rows::number(&row, 0, "changes.seq"),
        None => Ok(0),
    }
}

pub(crate) async fn since(
    tx: &Tx<'_>,
    after: u64,
    limit: usize,
) -> Result<Vec<Change>, StoreError> {
    let after = crate::counters::signed(after, "a change number")?;
    let limit = crate::counters::count(limit);
    let found = query(
        tx,
        "SELECT seq, origin, kind, subject FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2",
        &[&after, &limit],
    )
    .await?;
    found
        .iter()
        .map(|row| {
            Ok(Change {
                seq: rows::number(row, 0, "changes.seq")?,
                origin: rows::number(row, 1, "changes.origin")?,
                what: changed(
                    rows::get(row, 2, "changes.kind")?,
                    rows::get(row, 3, "changes.subject")?,
                )?,
            })
        })
        .collect()
}

pub(crate) async fn digests_ever(
    tx: &Tx<'_>,
    accounts: &[AccountNo],
) -> Result<Vec<(AccountNo, KeyedDigest)>, StoreError> {
    let found = query(
        tx,
        "SELECT account_no, primary_digest, other_digest FROM contact_points \
         WHERE account_no = ANY($1)",
        &[&rows::account_numbers(accounts)],
    )
    .await?;
    let mut out = Vec::with_capacity(found.len() * 2);
    for row in &found {
        let account = rows::dense_no(rows::get(row, 0, "contact_points.account_no")?)?;
        out.extend(
            [
                rows::digest(row, 1, "contact_points.primary_digest")?,
                rows::digest(row, 2, "contact_points.other_digest")?,
            ]
            .into_iter()
            .flatten()
            .map(|digest| (account, digest)),
        );
    }
    Ok(out)
}

/// The condition that job `j` is the first unfinished job of its audience: an audience's jobs
/// are applied in the order they were made (a `replace` then an `add` is not an `add` then a
/// `replace`), whichever process runs them.
macro_rules! first_of_its_audience {
    () => {
        "NOT EXISTS (SELECT 1 FROM jobs e WHERE e.audience_no = j.audience_no \
         AND e.job_no < j.job_no AND e.state IN ('queued', 'running'))"
    };
}

/// Claims `job_no` for `origin` (see [`tailor_store::replication::Replication::claim_job`]).
pub(crate) async fn claim_job(
    tx: &Tx<'_>,
    job_no: u64,
    origin: u64,
    now: Timestamp,
    lease: SignedDuration,
) -> Result<bool, StoreError> {
    let claimed = execute(
        tx,
        concat!(
            "UPDATE jobs j SET claimed_by = $2, lease_until = $4 \
             WHERE j.job_no = $1 AND j.state IN ('queued', 'running') \
               AND (j.claimed_by IS NULL OR j.claimed_by = $2 OR j.lease_until < $3) AND ",
            first_of_its_audience!()
        ),
        &[
            &crate::counters::signed(job_no, "a job number")?,
            &crate::counters::signed(origin, "the origin")?,
            &micros(now),
            &micros(now + lease),
        ],
    )
    .await?;
    Ok(claimed == 1)
}

pub(crate) async fn claim_orphan(
    tx: &Tx<'_>,
    origin: u64,
    now: Timestamp,
    lease: SignedDuration,
) -> Result<Option<u64>, StoreError> {
    let row = query_opt(
        tx,
        concat!(
            "UPDATE jobs SET claimed_by = $1, lease_until = $3 WHERE job_no = ( \
                 SELECT j.job_no FROM jobs j WHERE j.state IN ('queued', 'running') \
                   AND (j.claimed_by IS NULL OR j.lease_until < $2) AND ",
            first_of_its_audience!(),
            " ORDER BY j.job_no LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING job_no"
        ),
        &[
            &crate::counters::signed(origin, "the origin")?,
            &micros(now),
            &micros(now + lease),
        ],
    )
    .await?;
    row.map(|row| rows::number(&row, 0, "jobs.job_no"))
        .transpose()
}

pub(crate) async fn renew_claims(
    tx: &Tx<'_>,
    origin: u64,
    until: Timestamp,
) -> Result<(), StoreError> {
    execute(
        tx,
        "UPDATE jobs SET lease_until = $2 \
         WHERE claimed_by = $1 AND state IN ('queued', 'running')",
        &[
            &crate::counters::signed(origin, "the origin")?,
            &micros(until),
        ],
    )
    .await?;
    Ok(())
}

/// Inside a write: refuses to go on with a job another process has claimed.
pub(crate) async fn check_claim(tx: &Tx<'_>, job_no: u64, origin: u64) -> Result<(), StoreError> {
    let row = query_opt(
        tx,
        "SELECT claimed_by FROM jobs WHERE job_no = $1",
        &[&crate::counters::signed(job_no, "a job number")?],
    )
    .await?;
    let claimed_by: Option<i64> = match &row {
        Some(row) => rows::get(row, 0, "jobs.claimed_by")?,
        None => None,
    };
    match claimed_by {
        Some(holder) if holder != crate::counters::signed(origin, "the origin")? => {
            Err(StoreError::NotClaimed)
        }
        _ => Ok(()),
    }
}

pub(crate) async fn prune(tx: &Tx<'_>, before: Timestamp) -> Result<u64, StoreError> {
    // The newest change always stays, so that the feed's head is never pruned away.
    execute(
        tx,
        "DELETE FROM changes WHERE at < $1 AND seq < (SELECT MAX(seq) FROM changes)",
        &[&micros(before)],
    )
    .await
}

/// A new origin number, unique among every process that ever opened this database.
pub(crate) async fn new_origin(tx: &Tx<'_>) -> Result<u64, StoreError> {
    let row = query_opt(
        tx,
        "UPDATE counters SET value = value + 1 WHERE name = 'last_origin' RETURNING value",
        &[],
    )
    .await?
    .ok_or_else(|| StoreError::Corrupt("the last_origin counter is missing".into()))?;
    rows::number(&row, 0, "counters.value")
}

/// Listens for announced changes on a connection of its own and sends each newer number on
/// `sender`; once listening (at first and after reconnecting) it reads the head, so that what
/// was committed unheard is passed on too. Stops once the store (which owns `sender`) is gone.
pub(crate) async fn listen(config: tokio_postgres::Config, sender: Weak<watch::Sender<u64>>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if sender.strong_count() == 0 {
            return;
        }
        match listen_once(&config, &sender).await {
            Ok(()) => return,
            Err(error) => {
                // As the store reports errors: never the server's DETAIL, which may quote values.
                let error = error.map_or_else(
                    || "the connection closed".into(),
                    |e| crate::transaction::classify(e).to_string(),
                );
                tracing::warn!(%error, "change feed listener lost its connection; reconnecting");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Passes on a change number if it is newer than the last one passed on.
fn announce(sender: &Weak<watch::Sender<u64>>, seq: u64) {
    let Some(sender) = sender.upgrade() else {
        return;
    };
    sender.send_if_modified(|last| {
        let newer = seq > *last;
        if newer {
            *last = seq;
        }
        newer
    });
}

/// Listens until the store is gone (`Ok`) or the connection fails or closes (`Err`).
async fn listen_once(
    config: &tokio_postgres::Config,
    sender: &Weak<watch::Sender<u64>>,
) -> Result<(), Option<tokio_postgres::Error>> {
    let (client, mut connection) = config.connect(tokio_postgres::NoTls).await?;
    let (messages, mut received) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(message)) => {
                    if messages.send(Ok(message)).is_err() {
                        return;
                    }
                }
                Some(Err(error)) => {
                    let _ = messages.send(Err(error));
                    return;
                }
                None => return,
            }
        }
    });
    let listening = client.batch_execute(&format!("LISTEN {CHANNEL}")).await;
    if let Err(error) = listening {
        driver.abort();
        return Err(Some(error));
    }
    // Listening from here: what was committed before is the head, read now.
    match client
        .query_opt(
            "SELECT value FROM counters WHERE name = 'last_change_seq'",
            &[],
        )
        .await
    {
        Ok(row) => {
            let head = row
                .and_then(|row| row.try_get::<_, i64>(0).ok())
                .unwrap_or(0);
            announce(sender, u64::try_from(head).unwrap_or(0));
        }
        Err(error) => {
            driver.abort();
            return Err(Some(error));
        }
    }
    let outcome = loop {
        tokio::select! {
            message = received.recv() => match message {
                Some(Ok(AsyncMessage::Notification(note))) => {
                    if let Ok(seq) = note.payload().parse::<u64>() {
                        announce(sender, seq);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => break Err(Some(error)),
                None => break Err(None),
            },
            () = tokio::time::sleep(Duration::from_secs(5)) => {
                if sender.strong_count() == 0 {
                    break Ok(());
                }
            }
        }
    };
    driver.abort();
    drop(client);
    outcome
}
