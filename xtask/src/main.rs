//! Repository automation: synthetic customer lists and whole-process benchmarks.
//!
//! `cargo xtask gen-list` writes synthetic customer lists (no real person is in them: names are
//! drawn from short lists, numbers are random). `cargo xtask bench-hash` runs `tailor hash` and
//! the Python script an advertiser would otherwise write on the same files, side by side, and
//! reports medians, ratios and peak memory. Nothing here is part of the product.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Write a synthetic customer list.
    GenList {
        #[arg(long, value_enum)]
        kind: ListKind,
        #[arg(long)]
        rows: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Write synthetic platform accounts as NDJSON for `tailor accounts import`.
    ///
    /// Account `n` has the email `user{n}@example.com` and the phone `+1 (200000000 + n)`, so
    /// that lists matching known accounts can be generated later.
    GenAccounts {
        #[arg(long)]
        accounts: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Compare `tailor hash` with the Python reference script on synthetic lists.
    BenchHash {
        /// Rows per list.
        #[arg(long, default_value_t = 10_000_000)]
        rows: u64,
        /// Runs of each tool on each list; medians are reported.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Runs of the Python script (it is slow; one run is usually enough).
        #[arg(long, default_value_t = 1)]
        python_runs: usize,
        /// Where the generated lists are kept between runs.
        #[arg(long, default_value = "bench/data")]
        data_dir: PathBuf,
        /// Skip the Python reference (when `phonenumbers` is not installed).
        #[arg(long)]
        no_python: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ListKind {
    Email,
    Phone,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Task::GenList {
            kind,
            rows,
            seed,
            out,
        } => gen_list(kind, rows, seed, &out),
        Task::GenAccounts {
            accounts,
            seed,
            out,
        } => gen_accounts(accounts, seed, &out),
        Task::BenchHash {
            rows,
            runs,
            python_runs,
            data_dir,
            no_python,
        } => bench_hash(rows, runs, python_runs, &data_dir, no_python),
    }
}

const FIRST: &[&str] = &[
    "Dana", "Alex", "Quinn", "Robin", "Sam", "Jordan", "Casey", "Riley", "Avery", "Morgan",
    "Taylor", "Jamie", "Noor", "Kim", "Lee", "Ash", "Rowan", "Sasha", "Kai", "Emery",
];
const LAST: &[&str] = &[
    "Rivera", "Nguyen", "Smith", "Okafor", "Muller", "Rossi", "Tanaka", "Silva", "Kowalski",
    "Dubois", "Haddad", "Larsen", "Moreau", "Novak", "Ortega", "Park", "Quist", "Berg",
];
const DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "example.net",
    "gmail.com",
    "googlemail.com",
    "mail.example",
    "shop.example.com",
    "EXAMPLE.COM",
];

fn gen_list(kind: ListKind, rows: u64, seed: u64, out: &Path) -> Result<()> {
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut rng = fastrand::Rng::with_seed(seed);
    match kind {
        ListKind::Email => {
            writeln!(w, "email")?;
            for _ in 0..rows {
                write_email(&mut w, &mut rng)?;
            }
        }
        ListKind::Phone => {
            writeln!(w, "phone")?;
            for _ in 0..rows {
                write_phone(&mut w, &mut rng)?;
            }
        }
    }
    w.flush()?;
    Ok(())
}

fn pick<'a>(rng: &mut fastrand::Rng, items: &[&'a str]) -> &'a str {
    items[rng.usize(..items.len())]
}

/// An email address, sometimes with mixed case, padding, Gmail dots and tags, or broken.
fn write_email(w: &mut impl Write, rng: &mut fastrand::Rng) -> Result<()> {
    let first = pick(rng, FIRST);
    let last = pick(rng, LAST);
    let n = rng.u32(..100_000);
    let domain = pick(rng, DOMAINS);
    let pad = if rng.u8(..100) == 0 { "  " } else { "" };
    match rng.u8(..200) {
        0 => writeln!(w, "{first}.{last}{n}.{domain}")?,
        1 => writeln!(w, "{first}{n}@{last}")?,
        2..=9 => writeln!(w, "{pad}{first}.{last}+promo{n}@{domain}{pad}")?,
        10..=99 => writeln!(w, "{pad}{first}.{last}{n}@{domain}{pad}")?,
        _ => writeln!(
            w,
            "{}{}{n}@{domain}",
            first.to_ascii_lowercase(),
            last.to_ascii_lowercase()
        )?,
    }
    Ok(())
}

fn digits(rng: &mut fastrand::Rng, count: usize) -> String {
    (0..count)
        .map(|_| char::from(b'0' + rng.u8(..10)))
        .collect()
}

/// A phone number in one of the national or international formats people write.
fn write_phone(w: &mut impl Write, rng: &mut fastrand::Rng) -> Result<()> {
    let area = rng.u16(201..990);
    let exchange = rng.u16(200..1000);
    let line = rng.u16(..10_000);
    match rng.u8(..100) {
        0..=11 => writeln!(w, "({area}) {exchange}-{line:04}")?,
        12..=23 => writeln!(w, "{area}-{exchange}-{line:04}")?,
        24..=31 => writeln!(w, "{area}.{exchange}.{line:04}")?,
        32..=39 => writeln!(w, "{area}{exchange}{line:04}")?,
        40..=49 => writeln!(w, "+1 {area} {exchange} {line:04}")?,
        50..=57 => writeln!(w, "+1-{area}-{exchange}-{line:04}")?,
        58..=63 => writeln!(w, "1{area}{exchange}{line:04}")?,
        64..=69 => writeln!(w, "+44 7700 {}", digits(rng, 6))?,
        70..=75 => writeln!(
            w,
            "+33 6 {} {} {} {}",
            digits(rng, 2),
            digits(rng, 2),
            digits(rng, 2),
            digits(rng, 2)
        )?,
        76..=81 => writeln!(w, "+49 151 {}", digits(rng, 8))?,
        82..=87 => writeln!(w, "+91 9{} {}", digits(rng, 4), digits(rng, 5))?,
        88..=92 => writeln!(
            w,
            "+61 4{} {} {}",
            digits(rng, 2),
            digits(rng, 3),
            digits(rng, 3)
        )?,
        93..=97 => writeln!(w, "+81 90-{}-{}", digits(rng, 4), digits(rng, 4))?,
        // Broken: too short, or a local number without area code.
        98 => writeln!(w, "{exchange}-{line:04}")?,
        _ => writeln!(w, "+1 {area} {exchange}")?,
    }
    Ok(())
}

const REGIONS: &[&str] = &[
    "US-CA", "US-NY", "US-TX", "US-WA", "US", "US", "US", "BR", "MX", "CA", "FR", "DE", "GB", "IT",
    "ES", "NL", "JP", "IN",
];
const CONSENTS: &[&str] = &["granted", "granted", "granted", "withdrawn"];

fn gen_accounts(accounts: u64, seed: u64, out: &Path) -> Result<()> {
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut rng = fastrand::Rng::with_seed(seed);
    for n in 0..accounts {
        let region = pick(&mut rng, REGIONS);
        let email_context = if rng.u8(..100) < 80 {
            "profile"
        } else {
            "signup"
        };
        let phone_context = match rng.u8(..100) {
            0..50 => "profile",
            50..90 => "mfa",
            _ => "recovery",
        };
        let verified = rng.u8(..100) < 95;
        write!(
            w,
            "{{\"account_id\":\"acct-{n}\",\"region\":\"{region}\",\"contacts\":[\
             {{\"kind\":\"email\",\"value\":\"user{n}@example.com\",\"context\":\"{email_context}\",\"verified\":{verified}}},\
             {{\"kind\":\"phone\",\"value\":\"+1{}\",\"context\":\"{phone_context}\",\"verified\":true}}]",
            2_000_000_000 + n
        )?;
        if rng.bool() {
            let state = pick(&mut rng, CONSENTS);
            let day = rng.u8(1..29);
            write!(
                w,
                ",\"consents\":[{{\"purpose\":\"marketing.advertising.third_party.targeted\",\"state\":\"{state}\",\"source\":\"settings\",\"at\":\"2026-01-{day:02}T10:00:00Z\"}}]"
            )?;
        }
        writeln!(w, "}}")?;
    }
    w.flush()?;
    Ok(())
}

/// One timed run of a command: wall seconds and peak resident memory.
#[derive(Debug, Clone, Copy)]
struct Run {
    secs: f64,
    max_rss_kb: u64,
}

fn timed(program: &str, args: &[&str]) -> Result<Run> {
    let report = std::env::temp_dir().join(format!("xtask-time-{}", std::process::id()));
    let status = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%e %M")
        .arg("-o")
        .arg(&report)
        .arg(program)
        .args(args)
        .stderr(std::process::Stdio::null())
        .status()
        .context("cannot run /usr/bin/time (apt-get install time)")?;
    ensure!(status.success(), "{program} {args:?} failed: {status}");
    let text = std::fs::read_to_string(&report)?;
    let mut fields = text.split_whitespace();
    let secs: f64 = fields.next().context("no time")?.parse()?;
    let max_rss_kb: u64 = fields.next().context("no rss")?.parse()?;
    Ok(Run { secs, max_rss_kb })
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

struct Measured {
    secs: f64,
    max_rss_mb: f64,
}

fn measure(program: &str, args: &[&str], runs: usize) -> Result<Measured> {
    let mut secs = Vec::new();
    let mut rss = 0;
    for _ in 0..runs.max(1) {
        let run = timed(program, args)?;
        secs.push(run.secs);
        rss = rss.max(run.max_rss_kb);
    }
    Ok(Measured {
        secs: median(&mut secs),
        max_rss_mb: rss as f64 / 1024.0,
    })
}

/// The fraction of rows on which two hashed outputs agree (both empty or equal digests).
fn agreement(a: &Path, b: &Path) -> Result<f64> {
    let a = std::fs::read_to_string(a)?;
    let b = std::fs::read_to_string(b)?;
    let (mut same, mut total) = (0u64, 0u64);
    for (x, y) in a.lines().skip(1).zip(b.lines().skip(1)) {
        total += 1;
        same += u64::from(x == y);
    }
    ensure!(total > 0, "no rows to compare");
    Ok(same as f64 / total as f64)
}

fn bench_hash(
    rows: u64,
    runs: usize,
    python_runs: usize,
    data_dir: &Path,
    no_python: bool,
) -> Result<()> {
    let status = Command::new("cargo")
        .args(["build", "--release", "--quiet", "-p", "tailor-cli"])
        .status()?;
    ensure!(status.success(), "cannot build tailor");
    let tailor = Path::new("target/release/tailor");
    if !tailor.exists() {
        bail!("run from the repository root");
    }
    let tailor = tailor.to_str().context("path")?;
    let mut table = String::from(
        "| list | rows | tailor hash (s) | rows/s | peak RSS (MB) | Python (s) | rows/s | peak RSS (MB) | ratio | agreement |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for kind in [ListKind::Email, ListKind::Phone] {
        let name = match kind {
            ListKind::Email => "email",
            ListKind::Phone => "phone",
        };
        let input = data_dir.join(format!("{name}-{rows}.csv"));
        if !input.exists() {
            eprintln!("generating {}", input.display());
            gen_list(kind, rows, 42, &input)?;
        }
        let input_s = input.to_str().context("path")?;
        let out_tailor = data_dir.join(format!("{name}-{rows}.tailor.csv"));
        let out_python = data_dir.join(format!("{name}-{rows}.python.csv"));
        eprintln!("tailor hash on {name} ({runs} runs)");
        let t = measure(
            tailor,
            &[
                "hash",
                "--input",
                input_s,
                "--output",
                out_tailor.to_str().context("path")?,
            ],
            runs,
        )?;
        let t_rate = rows as f64 / t.secs;
        let python_cols = if no_python {
            "| - | - | - | - | - |".to_owned()
        } else {
            eprintln!("python reference on {name} ({python_runs} runs)");
            let p = measure(
                "python3",
                &[
                    "bench/reference_hash.py",
                    input_s,
                    out_python.to_str().context("path")?,
                ],
                python_runs,
            )?;
            let agree = agreement(&out_tailor, &out_python)?;
            format!(
                "| {:.2} | {:.0} | {:.0} | {:.1}x | {:.4}% |",
                p.secs,
                rows as f64 / p.secs,
                p.max_rss_mb,
                p.secs / t.secs,
                agree * 100.0
            )
        };
        table.push_str(&format!(
            "| {name} | {rows} | {:.2} | {:.0} | {:.0} {python_cols}\n",
            t.secs, t_rate, t.max_rss_mb
        ));
    }
    let out = std::io::stdout();
    let mut out = out.lock();
    out.write_all(table.as_bytes())?;
    Ok(())
}
