//! Costs of the log's cryptography at the scale `tailor log verify` runs at: the streaming root
//! of 10 million leaf hashes, leaf hashing, an inclusion proof over 1 million leaves, and
//! signing and verifying a checkpoint.
//!
//! Run with `cargo bench -p tailor-log --bench log`.

// The inputs are fixed and valid; an unwrap failing here is a bug in the benchmark.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tailor_log::{Checkpoint, Frontier, Hash, SigningKey, inclusion_proof, leaf_hash, root_of};

fn leaves(n: u64) -> Vec<Hash> {
    (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
}

fn frontier(c: &mut Criterion) {
    const N: u64 = 10_000_000;
    let leaves = leaves(N);
    let mut group = c.benchmark_group("frontier");
    group.sample_size(10);
    group.throughput(Throughput::Elements(N));
    group.bench_function("push 10M leaf hashes + root", |b| {
        b.iter(|| {
            let mut frontier = Frontier::new();
            for leaf in &leaves {
                frontier.push(*leaf);
            }
            black_box(frontier.root())
        });
    });
    group.finish();
}

fn hashing(c: &mut Criterion) {
    // A log entry is a few hundred bytes of canonical JSON; 256 is typical.
    let entry = vec![0x5a_u8; 256];
    let mut group = c.benchmark_group("leaf_hash");
    group.throughput(Throughput::Elements(1));
    group.bench_function("256-byte entry", |b| {
        b.iter(|| leaf_hash(black_box(&entry)))
    });
    group.throughput(Throughput::Bytes(entry.len() as u64));
    group.bench_function("256-byte entry (bytes)", |b| {
        b.iter(|| leaf_hash(black_box(&entry)));
    });
    group.finish();
}

fn proofs(c: &mut Criterion) {
    const N: u64 = 1_000_000;
    let leaves = leaves(N);
    let mut group = c.benchmark_group("proof");
    group.sample_size(10);
    group.bench_function("inclusion over 1M leaves", |b| {
        let mut index = 0;
        b.iter(|| {
            index = (index + 7919) % N;
            black_box(inclusion_proof(&leaves, index, N).unwrap())
        });
    });
    group.bench_function("root_of 1M leaves", |b| {
        b.iter(|| root_of(black_box(&leaves)))
    });
    group.finish();
}

fn notes(c: &mut Criterion) {
    let signer = SigningKey::from_seed("tailor.example/log", [7; 32]).unwrap();
    let verifier = signer.verifier();
    let checkpoint = Checkpoint::new("tailor.example/log", 10_000_000, [9; 32]).unwrap();
    let note = signer.sign(&checkpoint);
    let mut group = c.benchmark_group("checkpoint");
    group.bench_function("sign", |b| b.iter(|| signer.sign(black_box(&checkpoint))));
    group.bench_function("verify", |b| {
        b.iter_batched(
            || note.clone(),
            |note| verifier.verify(&note).unwrap(),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, hashing, frontier, proofs, notes);
criterion_main!(benches);
