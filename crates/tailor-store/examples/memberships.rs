//! Measures the SQLite backend's advertiser side: applying jobs (an `add` of half a million
//! grants into an empty audience, a `replace` of that audience by a list that overlaps it by
//! half, an `add` of a million grants), listing an advertiser's audiences with a million
//! members, an account's memberships, reading matched accounts back, and staging parts.
//!
//! `cargo run --release -p tailor-store --example memberships -- [ACCOUNTS]`
//!
//! ACCOUNTS (default 2,000,000) synthetic accounts are written first, each with one contact
//! point and one consent event. The digests are synthetic: the store never looks inside
//! them. It writes into a new temporary directory, removed at the end; it must never be
//! pointed at a data directory that matters.

// A measuring tool reports on stdout.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};
use tailor_core::release::{KeySetDigest, QueryDigest};

use jiff::Timestamp;
use tailor_core::{
    AccountNo, AccountRegion, ConsentSource, ConsentState, ContactDigests, ContactKind, Context,
    KeyedDigest, PolicyVersion, Purpose,
};
use tailor_store::{
    AccountWrite, Grant, JobCounts, JobOp, NewAdvertiser, NewAudience, NewConsent, NewContact,
    NewJob, SessionPart, SqliteStore, Store, StoreError,
};

fn digest(seed: u64) -> KeyedDigest {
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        let mixed = (seed ^ (i as u64) << 56)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29);
        chunk.copy_from_slice(&mixed.to_le_bytes());
    }
    KeyedDigest(bytes)
}

fn account(n: u64, region: &AccountRegion, at: Timestamp) -> AccountWrite {
    AccountWrite {
        account_id: format!("u{:016x}", n.wrapping_mul(0xD6E8_FEB8_6659_FD93)),
        region: region.clone(),
        contacts: vec![NewContact {
            kind: ContactKind::Email,
            context: Context::Profile,
            verified: true,
            notice_version: None,
            digests: ContactDigests::new(digest(n), None),
        }],
        consents: vec![NewConsent {
            purpose: Purpose::MARKETING_TARGETED,
            state: ConsentState::Granted,
            source: ConsentSource::Settings,
            at,
            notice_version: None,
        }],
    }
}

fn grant(account: u32) -> Grant {
    Grant {
        account: AccountNo(account),
        contact_digest: digest(u64::from(account)),
        context: Context::Profile,
        consent_seq: Some(1),
        policy_version: PolicyVersion([7; 32]),
    }
}

/// Stages `accounts` as one part of a new session, commits it and returns the job.
async fn job(
    store: &SqliteStore,
    advertiser_no: u32,
    audience_no: u32,
    op: JobOp,
    name: &str,
    accounts: &[u32],
    now: Timestamp,
) -> Result<(u64, Duration), StoreError> {
    let session = store
        .create_session(
            &format!("s-{name}"),
            advertiser_no,
            audience_no,
            op,
            now,
            now,
        )
        .await?;
    let matched: Vec<(AccountNo, KeyedDigest)> = accounts
        .iter()
        .map(|&a| (AccountNo(a), digest(u64::from(a))))
        .collect();
    let counts = JobCounts {
        rows_received: accounts.len() as u64 * 2,
        rows_accepted: accounts.len() as u64 * 2,
        ..JobCounts::default()
    };
    let started = Instant::now();
    store
        .put_session_part(
            session.no,
            SessionPart {
                part_no: 1,
                keys: KeySetDigest::from_bytes([7; 32]),
                counts: counts.clone(),
                matched,
            },
            now,
        )
        .await?;
    let staged = started.elapsed();
    let job = store
        .commit_session(
            session.no,
            NewJob {
                job_id: format!("j-{name}"),
                keys: KeySetDigest::from_bytes([7; 32]),
                advertiser_no,
                audience_no,
                op,
                counts,
            },
            now,
        )
        .await?;
    Ok((job.no, staged))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The process's CPU time so far (user and system), from `/proc/self/stat` (Linux; zero
/// elsewhere). It tells apart a slow call from a busy machine.
fn cpu() -> Duration {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // Fields after the command name, which is in parentheses and may hold spaces.
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let user: u64 = fields.get(11)?.parse().ok()?;
            let system: u64 = fields.get(12)?.parse().ok()?;
            Some(user + system)
        })
        .unwrap_or(0);
    // The kernel's clock ticks are 100 per second on every common configuration.
    Duration::from_millis(ticks * 10)
}

/// Runs `f`, returning its output, wall time and CPU time.
async fn timed<T, F: std::future::Future<Output = T>>(f: F) -> (T, Duration, Duration) {
    let (wall, cpu0) = (Instant::now(), cpu());
    let out = f.await;
    (out, wall.elapsed(), cpu() - cpu0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let accounts: u32 = std::env::args()
        .nth(1)
        .map_or(Ok(2_000_000), |a| a.parse())?;
    let dir = std::env::temp_dir().join(format!("tailor-memberships-{}", std::process::id()));
    let runtime = tokio::runtime::Builder::new_multi_thread().build()?;
    let store = SqliteStore::open(&dir)?;
    let region = AccountRegion::parse("US-CA").ok_or("region")?;
    let t0 = Timestamp::from_second(1_767_600_000)?;
    let result = runtime.block_on(measure(&store, accounts, &region, t0));
    drop(store);
    std::fs::remove_dir_all(&dir)?;
    result
}

async fn measure(
    store: &SqliteStore,
    accounts: u32,
    region: &AccountRegion,
    t0: Timestamp,
) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let mut next = 0u64;
    while next < u64::from(accounts) {
        let end = (next + 20_000).min(u64::from(accounts));
        let writes = (next..end).map(|n| account(n, region, t0)).collect();
        store.write_accounts(writes, t0).await?;
        next = end;
    }
    let wal = store.path().with_extension("db-wal");
    println!(
        "setup: {accounts} accounts in {:.1} s (WAL {} MB)",
        started.elapsed().as_secs_f64(),
        std::fs::metadata(&wal).map_or(0, |m| m.len()) / 1_000_000
    );

    let advertiser = store
        .create_advertiser(
            NewAdvertiser {
                advertiser_id: "adv".into(),
                name: "Bench".into(),
                entity: "Bench Ltd".into(),
                key_id: "k1".into(),
                key_sha256: [1; 32],
            },
            t0,
        )
        .await?;
    let audience = |id: &str| NewAudience {
        audience_id: id.into(),
        advertiser_no: advertiser.no,
        name: id.into(),
        description: String::new(),
        membership_ttl_days: 540,
    };
    let half = store.create_audience(audience("half"), t0).await?;
    let big = store.create_audience(audience("big"), t0).await?;
    // A few small audiences besides, as an advertiser would have.
    for n in 0..20 {
        store
            .create_audience(audience(&format!("small-{n}")), t0)
            .await?;
    }

    // add: 500k grants into an empty audience (every other account of the first million).
    let first: Vec<u32> = (1..=1_000_000u32).step_by(2).collect();
    let (job_no, staged) =
        job(store, advertiser.no, half.no, JobOp::Add, "add", &first, t0).await?;
    let started = Instant::now();
    let matches = store.staged_matches(job_no).await?;
    let read = started.elapsed();
    let grants: Vec<Grant> = matches.iter().map(|(a, _)| grant(a.0)).collect();
    let (applied, add, add_cpu) =
        timed(store.apply_job(job_no, grants, Vec::new(), QueryDigest::EMPTY, t0)).await;
    let applied = applied?;
    println!(
        "put_session_part of {} matches: {}; staged_matches: {}",
        matches.len(),
        ms(staged),
        ms(read)
    );
    println!(
        "apply_job add, {} grants into an empty audience: {} (CPU {})",
        applied.granted.len(),
        ms(add),
        ms(add_cpu)
    );

    // replace: 500k grants, half of them current members.
    let second: Vec<u32> = (500_001..=1_000_000u32)
        .step_by(2)
        .chain((1_000_002..=1_500_000u32).step_by(2))
        .collect();
    let (job_no, _) = job(
        store,
        advertiser.no,
        half.no,
        JobOp::Replace,
        "replace",
        &second,
        t0,
    )
    .await?;
    let grants: Vec<Grant> = second.iter().map(|&a| grant(a)).collect();
    let t1 = t0 + Duration::from_secs(60);
    let (applied, wall, cpu) =
        timed(store.apply_job(job_no, grants, Vec::new(), QueryDigest::EMPTY, t1)).await;
    let applied = applied?;
    println!(
        "apply_job replace, {} grants over 500,000 members ({} ended): {} (CPU {})",
        applied.granted.len(),
        applied.revoked.len(),
        ms(wall),
        ms(cpu)
    );

    // add: a million grants, for the audience list below.
    let million: Vec<u32> = (1..=accounts.min(1_000_000)).collect();
    let (job_no, _) = job(
        store,
        advertiser.no,
        big.no,
        JobOp::Add,
        "big",
        &million,
        t1,
    )
    .await?;
    let grants: Vec<Grant> = million.iter().map(|&a| grant(a)).collect();
    let (applied, wall, cpu) =
        timed(store.apply_job(job_no, grants, Vec::new(), QueryDigest::EMPTY, t1)).await;
    let applied = applied?;
    println!(
        "apply_job add, {} grants into an empty audience: {} (CPU {})",
        applied.granted.len(),
        ms(wall),
        ms(cpu)
    );

    // The same million again: every grant renews a membership.
    let (job_no, _) = job(
        store,
        advertiser.no,
        big.no,
        JobOp::Add,
        "renew",
        &million,
        t1,
    )
    .await?;
    let grants: Vec<Grant> = million.iter().map(|&a| grant(a)).collect();
    let (applied, wall, cpu) =
        timed(store.apply_job(job_no, grants, Vec::new(), QueryDigest::EMPTY, t1)).await;
    let applied = applied?;
    println!(
        "apply_job add, {} grants renewing current members: {} (CPU {})",
        applied.granted.len(),
        ms(wall),
        ms(cpu)
    );

    // Listing the advertiser's audiences (22, one of a million members).
    let mut times = Vec::new();
    let mut listed = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        listed = store.audiences(advertiser.no, t1).await?;
        times.push(started.elapsed());
    }
    times.sort();
    let sizes: Vec<u64> = listed.iter().map(|a| a.members).take(2).collect();
    println!(
        "audiences() of {} audiences (sizes {sizes:?}): median {}, max {}",
        listed.len(),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    );

    // What counting would cost instead of the counters.
    let conn = rusqlite::Connection::open(store.path())?;
    let started = Instant::now();
    let counted: i64 = conn.query_row(
        "SELECT COUNT(*) FROM memberships WHERE audience_no = ?1 AND expires_at > ?2",
        (big.no, t1.as_microsecond()),
        |row| row.get(0),
    )?;
    println!(
        "for comparison, COUNT(*) of the million-member audience over its index: {} ({counted})",
        ms(started.elapsed())
    );

    // An account's memberships, for accounts in two, one or no audiences.
    let probes = 20_000u32;
    let started = Instant::now();
    let mut found = 0;
    for n in 0..probes {
        let account = AccountNo(1 + n.wrapping_mul(7919) % 1_500_000);
        found += store.memberships_of(account).await?.len();
    }
    let each = started.elapsed() / probes;
    println!(
        "memberships_of: {:.1} µs per call ({probes} calls, {found} memberships)",
        each.as_secs_f64() * 1e6
    );

    // The floor of any read through the trait: a blocking-pool hop and a read transaction.
    let started = Instant::now();
    for n in 0..probes {
        store
            .account_no(&format!(
                "u{:016x}",
                u64::from(n).wrapping_mul(0xD6E8_FEB8_6659_FD93)
            ))
            .await?;
    }
    let each = started.elapsed() / probes;
    println!(
        "for comparison, account_no: {:.1} µs per call",
        each.as_secs_f64() * 1e6
    );

    // Reading matched accounts back, as the job worker does (chunks of 10,000).
    let wanted: Vec<AccountNo> = first.iter().map(|&a| AccountNo(a)).collect();
    let started = Instant::now();
    let mut states = 0;
    for chunk in wanted.chunks(10_000) {
        states += store.accounts_by_no(chunk).await?.len();
    }
    println!(
        "accounts_by_no of {states} accounts in chunks of 10,000: {}",
        ms(started.elapsed())
    );

    let counts = store.counts().await?;
    let size = |path: &std::path::Path| std::fs::metadata(path).map_or(0, |m| m.len());
    let wal = store.path().with_extension("db-wal");
    println!(
        "{} memberships; database {} MB, WAL {} MB",
        counts.memberships,
        size(store.path()) / 1_000_000,
        size(&wal) / 1_000_000
    );
    Ok(())
}
