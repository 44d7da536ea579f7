//! Costs of the release mechanism: one release at the defaults (seed derivation included), one
//! discrete Laplace draw, and the canonical-query digest of a 1-million-row list.
//!
//! Run with `cargo bench -p tailor-core --bench release`.

// The inputs are fixed and valid; an unwrap failing here is a bug in the benchmark.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use tailor_core::Sha256Digest;
use tailor_core::release::{
    Epsilon, NoiseKey, QueryDigest, QueryOp, ReleaseConfig, UploadKeys, noise_seed, release,
    sample_discrete_laplace,
};

fn release_one(c: &mut Criterion) {
    let key = NoiseKey::from_secret(&[7; 32]).unwrap();
    let mut keys = UploadKeys::new();
    keys.push(&Sha256Digest::of(b"one"));
    let query = QueryDigest::EMPTY.then(QueryOp::Add, &keys.digest(&key), &key);
    let config = ReleaseConfig::default();
    let mut epoch = 0u64;
    c.bench_function("release/noise_seed+release", |b| {
        b.iter(|| {
            epoch += 1;
            let seed = noise_seed(&key, "entity-1", "audience-1", &query, black_box(epoch));
            black_box(release(black_box(12_345), &config, &seed))
        });
    });
}

fn sampler(c: &mut Criterion) {
    let epsilon = Epsilon::from_micros(50_000);
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    c.bench_function("sample_discrete_laplace/ε=0.05", |b| {
        b.iter(|| black_box(sample_discrete_laplace(black_box(epsilon), &mut rng)));
    });
}

fn upload_keys(c: &mut Criterion) {
    const ROWS: u32 = 1_000_000;
    let key = NoiseKey::from_secret(&[7; 32]).unwrap();
    let digests: Vec<Sha256Digest> = (0..ROWS)
        .map(|i| Sha256Digest::of(&i.to_le_bytes()))
        .collect();
    let mut group = c.benchmark_group("upload_keys");
    group.sample_size(10);
    group.throughput(Throughput::Elements(u64::from(ROWS)));
    group.bench_function("push+digest/1M", |b| {
        b.iter(|| {
            let mut keys = UploadKeys::new();
            for digest in &digests {
                keys.push(digest);
            }
            black_box(keys.digest(&key))
        });
    });
    group.finish();
}

criterion_group!(benches, release_one, sampler, upload_keys);
criterion_main!(benches);
