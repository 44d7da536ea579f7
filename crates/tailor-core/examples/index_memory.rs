//! Measures the eligible index: resident memory per entry and random lookups per second.
//!
//! `cargo run --release -p tailor-core --example index_memory -- 10000000` builds an index of
//! that many contact points (each with two keyed digests, as phones have), reads the process's
//! resident set size before and after, then times random lookups on one core (half hits, half
//! misses). Not a test: numbers go to BENCHMARKS.md.

// A measuring tool: failing loudly on a malformed argument is what it should do.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::hint::black_box;
use std::time::Instant;

use jiff::Timestamp;
use tailor_core::{
    AccountFacts, AccountNo, AccountRegion, ContactDigests, ContactFacts, Context, EligibleIndex,
    KeyedDigest, Policy, Purpose,
};

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// A pseudo-random digest for contact point `n`, variant `v` (splitmix64 over the index).
fn digest(n: u64, v: u64) -> KeyedDigest {
    let mut bytes = [0u8; 32];
    let mut x = n
        .wrapping_mul(2)
        .wrapping_add(v)
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    for chunk in bytes.chunks_mut(8) {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        chunk.copy_from_slice(&z.to_le_bytes());
    }
    KeyedDigest(bytes)
}

fn main() {
    let contacts: u64 = std::env::args()
        .nth(1)
        .map_or(10_000_000, |a| a.parse().unwrap());
    let policy = Policy::shipped();
    let region = AccountRegion::parse("US").unwrap();
    let facts = ContactFacts {
        context: Context::Profile,
        verified: true,
        removed: false,
    };

    let before = rss_bytes();
    let started = Instant::now();
    let mut index = EligibleIndex::new();
    for n in 0..contacts {
        let account = AccountFacts {
            no: AccountNo((n / 2) as u32),
            region: &region,
            consents: &[],
        };
        let digests = ContactDigests::new(digest(n, 0), Some(digest(n, 1)));
        let eligible = policy
            .marketing(
                Purpose::MARKETING_TARGETED,
                &account,
                &facts,
                digests,
                Timestamp::UNIX_EPOCH,
            )
            .unwrap();
        index.insert(&eligible);
    }
    let built = started.elapsed();
    let after = rss_bytes();
    let entries = index.len() as f64;
    println!("contact points: {contacts}, entries: {}", index.len());
    println!(
        "build: {:.2} s ({:.2} M entries/s)",
        built.as_secs_f64(),
        entries / built.as_secs_f64() / 1e6
    );
    println!(
        "memory: RSS +{:.1} MB = {:.1} bytes/entry; table allocation {:.1} bytes/entry",
        (after - before) as f64 / 1e6,
        (after - before) as f64 / entries,
        index.allocated_bytes() as f64 / entries
    );

    let lookups = 20_000_000u64;
    let mut rng = 0x1234_5678_u64;
    let keys: Vec<KeyedDigest> = (0..1_000_000u64)
        .map(|i| {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let n = (rng >> 16) % contacts;
            // Half hits, half misses (digests of contact points beyond the index).
            if i % 2 == 0 {
                digest(n, i % 2)
            } else {
                digest(contacts + n, 0)
            }
        })
        .collect();
    let started = Instant::now();
    let mut hits = 0u64;
    for i in 0..lookups {
        let key = &keys[(i % keys.len() as u64) as usize];
        hits += black_box(index.lookup(black_box(key)).count()) as u64;
    }
    let elapsed = started.elapsed();
    println!(
        "lookups: {lookups} in {:.2} s = {:.2} M/s on one core ({hits} hits)",
        elapsed.as_secs_f64(),
        lookups as f64 / elapsed.as_secs_f64() / 1e6
    );
}
