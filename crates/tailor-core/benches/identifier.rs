//! Per-identifier costs of normalize + hash: emails, phones (both formats), pre-hashed digests.
//!
//! Run with `cargo bench -p tailor-core --bench identifier`.

// The inputs are fixed and valid; an unwrap failing here is a bug in the benchmark.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tailor_core::{E164Phone, EmailForm, NormalizedEmail, PhoneFormat, Region, Sha256Digest};

const EMAILS: &[&str] = &[
    "Dana.Rivera4084@example.com",
    "  quinn.okafor+promo7@GMAIL.com ",
    "sashatanaka74426@example.net",
    "Kim.Novak52346@shop.example.com",
];

const PHONES: &[&str] = &[
    "(415) 555-0123",
    "+1 415 555 0123",
    "415.555.0123",
    "14155550123",
    "+44 7700 900123",
    "+33 6 12 34 56 78",
    "+49 151 12345678",
    "+81 90-1234-5678",
];

fn emails(c: &mut Criterion) {
    let mut group = c.benchmark_group("email");
    group.throughput(Throughput::Elements(EMAILS.len() as u64));
    group.bench_function("normalize+sha256", |b| {
        b.iter(|| {
            for raw in EMAILS {
                let email = NormalizedEmail::parse(black_box(raw)).unwrap();
                black_box(email.sha256().to_hex());
            }
        });
    });
    group.bench_function("normalize+gmail_canonical+sha256", |b| {
        b.iter(|| {
            for raw in EMAILS {
                let email = NormalizedEmail::parse(black_box(raw)).unwrap();
                black_box(email.in_form(EmailForm::GmailCanonical).sha256().to_hex());
            }
        });
    });
    group.finish();
}

fn phones(c: &mut Criterion) {
    let mut group = c.benchmark_group("phone");
    group.throughput(Throughput::Elements(PHONES.len() as u64));
    for (name, format) in [("e164", PhoneFormat::E164), ("digits", PhoneFormat::Digits)] {
        group.bench_function(format!("normalize+sha256/{name}"), |b| {
            b.iter(|| {
                for raw in PHONES {
                    let phone = E164Phone::parse(black_box(raw), Region::US).unwrap();
                    black_box(phone.sha256(format).to_hex());
                }
            });
        });
    }
    group.finish();
}

fn digests(c: &mut Criterion) {
    let hex: Vec<String> = EMAILS
        .iter()
        .map(|e| {
            NormalizedEmail::parse(e)
                .unwrap()
                .sha256()
                .to_hex()
                .as_str()
                .to_uppercase()
        })
        .collect();
    let mut group = c.benchmark_group("digest");
    group.throughput(Throughput::Elements(hex.len() as u64));
    group.bench_function("parse_hex+to_hex", |b| {
        b.iter(|| {
            for raw in &hex {
                black_box(Sha256Digest::parse(black_box(raw)).unwrap().to_hex());
            }
        });
    });
    group.finish();
}

criterion_group!(benches, emails, phones, digests);
criterion_main!(benches);
