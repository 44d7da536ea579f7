//! Measures the accountability side: log append throughput (accounts written, one entry each,
//! against the same writes' time), storage bytes per grant, incident analysis over every grant,
//! and `log verify` over the whole log.
//!
//! `cargo run --release -p tailor-engine --example accountability -- [ACCOUNTS] [AUDIENCES] [STRIDE]`
//!
//! ACCOUNTS (default 1,000,000) synthetic accounts (US-CA, one profile email each) are written
//! in batches of 10,000, then AUDIENCES (default 10) jobs each grant every account: ACCOUNTS ×
//! AUDIENCES grants; then every STRIDE-th (default 5) account's email is corrected to a
//! two-factor context from a day before the grants (the seed's scenario: a fifth of the
//! accounts), so that the analysis finds ACCOUNTS / STRIDE × AUDIENCES affected grants. The
//! digests are synthetic. It writes into a new temporary directory, removed at the end; it
//! must never be pointed at a data directory that matters. With `TAILOR_BENCH_DIR=DIR` the
//! data is written there and kept, and a later run with the same directory times only the
//! analysis (to compare changes on the same data). With `TAILOR_DATABASE_URL=postgres://…`
//! the data goes to that PostgreSQL database instead (create it first, and give it to nothing
//! else): it is always kept, and a run that finds accounts there times only the analysis.

// A measuring tool reports on stdout.
#![allow(clippy::print_stdout)]

use std::time::Instant;

// The allocator of the `tailor` binary: measured as it runs there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use jiff::Timestamp;
use tailor_core::release::{KeySetDigest, QueryDigest};
use tailor_core::{
    AccountNo, AccountRegion, ContactDigests, ContactKind, Context, KeyedDigest, Policy,
};
use tailor_postgres::{PostgresOptions, PostgresStore};
use tailor_store::{
    AccountWrite, Grant, JobCounts, JobOp, NewAdvertiser, NewAudience, NewContact, NewCorrection,
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

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The store under test: the PostgreSQL database at `url` if given, else SQLite in `dir`.
async fn open(url: Option<&str>, dir: &std::path::Path) -> Result<Box<dyn Store>, StoreError> {
    Ok(match url {
        Some(url) => Box::new(PostgresStore::connect(url, PostgresOptions::default()).await?),
        None => Box::new(SqliteStore::open(dir)?),
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The engine's phase logs (incident analysis) on stderr.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let accounts: u32 = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let audiences: u32 = args.next().map_or(Ok(10), |a| a.parse())?;
    // Every STRIDE-th account's email is corrected to a two-factor context (the seed's 20%).
    let stride: usize = args.next().map_or(Ok(5), |a| a.parse())?;
    // TAILOR_BENCH_DIR keeps the data (and reuses it when it exists) to rerun the analysis.
    let kept = std::env::var_os("TAILOR_BENCH_DIR").map(std::path::PathBuf::from);
    let dir = kept.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("tailor-accountability-{}", std::process::id()))
    });
    let url = std::env::var("TAILOR_DATABASE_URL").ok();
    let kept_sqlite = kept.is_some() && dir.join("tailor.db").exists();
    if url.is_none() && !kept_sqlite {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let store = open(url.as_deref(), &dir).await?;
    // PostgreSQL keeps its data: an earlier run's accounts there mean the data exists.
    let reuse = match url {
        Some(_) => store.counts().await?.accounts > 0,
        None => kept_sqlite,
    };
    let policy = Policy::shipped();
    let region = AccountRegion::parse("US-CA").ok_or("region")?;
    let now = Timestamp::from_second(1_800_000_000)?;

    let store = if reuse {
        store
    } else {
        let started = Instant::now();
        let mut written = 0u32;
        while written < accounts {
            let batch: Vec<AccountWrite> = (written..accounts.min(written + 10_000))
                .map(|n| AccountWrite {
                    account_id: format!("acc{n}"),
                    region: region.clone(),
                    contacts: vec![NewContact {
                        kind: ContactKind::Email,
                        context: Context::Profile,
                        verified: true,
                        notice_version: None,
                        digests: ContactDigests::new(digest(u64::from(n)), None),
                    }],
                    consents: Vec::new(),
                })
                .collect();
            written += batch.len() as u32;
            store.write_accounts(batch, now).await?;
        }
        let import = started.elapsed();
        let entries = store.log_size().await?;
        println!(
            "accounts written: {accounts} in {:.1} s ({:.0} accounts/s); log entries {entries} ({:.0} entries/s, appended in the same transactions)",
            import.as_secs_f64(),
            f64::from(accounts) / import.as_secs_f64(),
            entries as f64 / import.as_secs_f64()
        );

        let advertiser = store
            .create_advertiser(
                NewAdvertiser {
                    advertiser_id: "adv-bench".into(),
                    name: "Bench".into(),
                    entity: "Bench Ltd".into(),
                    key_id: "key-bench".into(),
                    key_sha256: [1; 32],
                },
                now,
            )
            .await?;
        let bytes_before = dir_bytes(&dir);
        let started = Instant::now();
        for a in 0..audiences {
            let audience = store
                .create_audience(
                    NewAudience {
                        audience_id: format!("aud-{a}"),
                        advertiser_no: advertiser.no,
                        name: format!("audience {a}"),
                        description: String::new(),
                        membership_ttl_days: 540,
                    },
                    now,
                )
                .await?;
            let session = store
                .create_session(
                    &format!("s-{a}"),
                    advertiser.no,
                    audience.no,
                    JobOp::Add,
                    now,
                    now,
                )
                .await?;
            store
                .put_session_part(
                    session.no,
                    SessionPart {
                        part_no: 1,
                        counts: JobCounts::default(),
                        keys: KeySetDigest::from_bytes([7; 32]),
                        matched: Vec::new(),
                    },
                    now,
                )
                .await?;
            let job = store
                .commit_session(
                    session.no,
                    NewJob {
                        job_id: format!("j-{a}"),
                        advertiser_no: advertiser.no,
                        audience_no: audience.no,
                        op: JobOp::Add,
                        counts: JobCounts::default(),
                        keys: KeySetDigest::from_bytes([7; 32]),
                    },
                    now,
                )
                .await?;
            let grants: Vec<Grant> = (0..accounts)
                .map(|n| Grant {
                    account: AccountNo(n + 1),
                    contact_digest: digest(u64::from(n)),
                    context: Context::Profile,
                    consent_seq: None,
                    policy_version: policy.version(),
                })
                .collect();
            store
                .apply_job(job.no, grants, Vec::new(), QueryDigest::EMPTY, now)
                .await?;
        }
        let grants = u64::from(accounts) * u64::from(audiences);
        let applied = started.elapsed();
        // Let the WAL fold into the database file before measuring it (SQLite; on
        // PostgreSQL the directory stays empty: measure `pg_database_size` instead).
        drop(store);
        let store = open(url.as_deref(), &dir).await?;
        let bytes = dir_bytes(&dir).saturating_sub(bytes_before);
        println!(
            "grants applied: {grants} in {:.1} s; storage {} bytes, {:.0} bytes per grant (membership, history row, indexes; SQLite only)",
            applied.as_secs_f64(),
            bytes,
            bytes as f64 / grants as f64
        );
        // The seed's scenario at scale: every fifth account's email turns out to have been
        // given for two-factor authentication, from before the grants.
        let started = Instant::now();
        let mut corrected = 0u32;
        for n in (0..accounts).step_by(stride.max(1)) {
            store
                .correct_contact(
                    NewCorrection {
                        account_id: format!("acc{n}"),
                        kind: ContactKind::Email,
                        digest: digest(u64::from(n)),
                        context: Context::Mfa,
                        effective_since: now - jiff::SignedDuration::from_hours(24),
                    },
                    now,
                )
                .await?
                .map_err(|refused| format!("correction refused: {refused:?}"))?;
            corrected += 1;
        }
        println!(
            "corrections: {corrected} in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        store
    };

    // With data kept from an earlier run, only the analysis is timed (to compare changes).
    if !reuse {
        let started = Instant::now();
        let history = store.membership_history(None, None).await?;
        println!(
            "reading the whole history: {} rows in {:.2} s",
            history.len(),
            started.elapsed().as_secs_f64()
        );
        drop(history);
        let started = Instant::now();
        let mut all = Vec::new();
        for chunk in (1..=accounts).collect::<Vec<u32>>().chunks(10_000) {
            let nos: Vec<AccountNo> = chunk.iter().map(|&n| AccountNo(n)).collect();
            all.extend(store.accounts_by_no(&nos).await?);
        }
        println!(
            "reading every account: {} in {:.2} s",
            all.len(),
            started.elapsed().as_secs_f64()
        );
        drop(all);
    }
    let started = Instant::now();
    let report = tailor_engine::incident::analyze(
        &*store,
        &policy,
        now,
        now,
        now + jiff::SignedDuration::from_hours(1),
    )
    .await?;
    println!(
        "incident analysis: {} grants examined, {} affected, in {:.2} s",
        report.grants_examined,
        report.affected.grants,
        started.elapsed().as_secs_f64()
    );

    if !reuse {
        let key = tailor_log::SigningKey::from_seed("bench-log", [3; 32])?;
        tailor_engine::audit::checkpoint(&*store, &key, now).await?;
        let started = Instant::now();
        let verification = tailor_engine::audit::verify(&*store, &key.verifier(), None).await?;
        println!(
            "log verify: {} entries, {} checkpoints, ok {}, in {:.2} s ({:.0} entries/s)",
            verification.entries,
            verification.checkpoints,
            verification.ok(),
            started.elapsed().as_secs_f64(),
            verification.entries as f64 / started.elapsed().as_secs_f64()
        );
    }
    drop(store);
    if kept.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
