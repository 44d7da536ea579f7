//! Rows per second of `UploadReader` on one core: hashed CSV (the common upload), hashed
//! NDJSON, and raw emails and phones (normalized and hashed in every convention).
//!
//! Run with `cargo bench -p tailor-list --bench upload`. Inputs are built in memory, so the
//! figures are the reader's alone, without disk or network.

// The inputs are generated here and valid; an unwrap failing is a bug in the benchmark.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tailor_core::{Region, Sha256Digest};
use tailor_list::{UploadFormat, UploadReader};

const HASHED_ROWS: usize = 1_000_000;
const RAW_ROWS: usize = 100_000;

fn hex(i: usize) -> String {
    Sha256Digest::of(format!("person{i}@example.com").as_bytes())
        .to_hex()
        .as_str()
        .to_owned()
}

fn hashed_csv() -> Vec<u8> {
    let mut body = String::from("email_sha256\n");
    for i in 0..HASHED_ROWS {
        body.push_str(&hex(i));
        body.push('\n');
    }
    body.into_bytes()
}

fn hashed_ndjson() -> Vec<u8> {
    let mut body = String::new();
    for i in 0..HASHED_ROWS {
        body.push_str(&format!("{{\"email_sha256\":\"{}\"}}\n", hex(i)));
    }
    body.into_bytes()
}

fn raw_csv() -> Vec<u8> {
    let mut body = String::from("email,phone\n");
    for i in 0..RAW_ROWS {
        let email = if i % 4 == 0 {
            format!("Person.{i}+ads@GMail.com")
        } else {
            format!("Person{i}@Example.com")
        };
        body.push_str(&format!("{email},(415) 555-{:04}\n", i % 10_000));
    }
    body.into_bytes()
}

/// Reads a whole upload; returns the digests seen so that nothing is optimized away.
fn read(body: &[u8], format: UploadFormat) -> usize {
    let mut reader = UploadReader::new(body, format, Region::US).unwrap();
    let mut digests = 0;
    while let Some(row) = reader.next_row().unwrap() {
        digests += black_box(row.digests()).len();
    }
    digests
}

fn upload(c: &mut Criterion) {
    let mut group = c.benchmark_group("upload");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));

    group.throughput(Throughput::Elements(HASHED_ROWS as u64));
    let csv = hashed_csv();
    assert_eq!(read(&csv, UploadFormat::Csv), HASHED_ROWS);
    group.bench_function("csv/email_sha256", |b| {
        b.iter(|| read(black_box(&csv), UploadFormat::Csv));
    });
    let ndjson = hashed_ndjson();
    assert_eq!(read(&ndjson, UploadFormat::Ndjson), HASHED_ROWS);
    group.bench_function("ndjson/email_sha256", |b| {
        b.iter(|| read(black_box(&ndjson), UploadFormat::Ndjson));
    });

    group.throughput(Throughput::Elements(RAW_ROWS as u64));
    let raw = raw_csv();
    group.bench_function("csv/raw_email_phone", |b| {
        b.iter(|| read(black_box(&raw), UploadFormat::Csv));
    });
    group.finish();
}

criterion_group!(benches, upload);
criterion_main!(benches);
