//! Measures the SQLite backend's bulk import rate: synthetic accounts with two contact points
//! (an email and a phone) and one consent event each, written in calls of a fixed size into a
//! fresh data directory, then reports accounts per second.
//!
//! `cargo run --release -p tailor-store --example bulk_import -- [ACCOUNTS] [PER_CALL] [IDS]`
//!
//! `IDS` is `scattered` (the default: ids in no order, the worst case for the account-id
//! index) or `sequential` (ids in insertion order, like time-ordered platform ids). The
//! digests are synthetic: the store never looks inside them. It must never be pointed at a
//! data directory that matters: it writes into a new temporary directory, removed at the end.

// A measuring tool reports on stdout.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use jiff::Timestamp;
use tailor_core::{
    AccountRegion, ConsentSource, ConsentState, ContactDigests, ContactKind, Context, KeyedDigest,
    Purpose,
};
use tailor_store::{AccountWrite, NewConsent, NewContact, SqliteStore, Store};

fn digest(seed: u64, form: u8) -> KeyedDigest {
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        let mixed = (seed ^ (i as u64) << 56 ^ u64::from(form) << 48)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29);
        chunk.copy_from_slice(&mixed.to_le_bytes());
    }
    KeyedDigest(bytes)
}

fn account(n: u64, scattered: bool, region: &AccountRegion, at: Timestamp) -> AccountWrite {
    // A scattered id is still unique: multiplication by an odd constant permutes u64.
    let key = if scattered {
        n.wrapping_mul(0xD6E8_FEB8_6659_FD93)
    } else {
        n
    };
    let id = format!("u{key:016x}");
    AccountWrite {
        account_id: id,
        region: region.clone(),
        contacts: vec![
            NewContact {
                kind: ContactKind::Email,
                context: Context::Profile,
                verified: true,
                notice_version: Some("2026-01".into()),
                digests: ContactDigests::new(digest(2 * n, 1), None),
            },
            NewContact {
                kind: ContactKind::Phone,
                context: Context::Mfa,
                verified: true,
                notice_version: None,
                digests: ContactDigests::new(digest(2 * n + 1, 1), Some(digest(2 * n + 1, 2))),
            },
        ],
        consents: vec![NewConsent {
            purpose: Purpose::MARKETING_TARGETED,
            state: ConsentState::Granted,
            source: ConsentSource::Settings,
            at,
            notice_version: Some("2026-01".into()),
        }],
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let accounts: u64 = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let per_call: u64 = args.next().map_or(Ok(10_000), |a| a.parse())?;
    let scattered = match args.next().as_deref() {
        None | Some("scattered") => true,
        Some("sequential") => false,
        Some(other) => return Err(format!("ids: scattered or sequential, not {other}").into()),
    };
    let dir = std::env::temp_dir().join(format!("tailor-bulk-import-{}", std::process::id()));
    let runtime = tokio::runtime::Builder::new_multi_thread().build()?;
    let store = SqliteStore::open(&dir)?;
    let region = AccountRegion::parse("US-CA").ok_or("region")?;
    let at = Timestamp::from_second(1_767_600_000)?;

    let started = Instant::now();
    runtime.block_on(async {
        let mut next = 0;
        while next < accounts {
            let end = (next + per_call).min(accounts);
            let writes = (next..end)
                .map(|n| account(n, scattered, &region, at))
                .collect();
            store.write_accounts(writes, at).await?;
            next = end;
        }
        Ok::<_, tailor_store::StoreError>(())
    })?;
    let elapsed = started.elapsed();
    let counts = runtime.block_on(store.counts())?;
    let size: u64 = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "{accounts} accounts ({} contact points, {} ids) in calls of {per_call}: {:.2} s, \
         {:.0} accounts/s, {} MB on disk",
        counts.live_contact_points,
        if scattered { "scattered" } else { "sequential" },
        elapsed.as_secs_f64(),
        accounts as f64 / elapsed.as_secs_f64(),
        size / 1_000_000,
    );
    drop(store);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
