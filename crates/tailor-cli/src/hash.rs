//! `tailor hash`: the advertiser-side tool that normalizes and hashes a customer file locally,
//! so that raw identifiers never leave the advertiser.
//!
//! The work is done by `tailor_list::hash_list`; this module opens files, draws the progress
//! bar and prints the summary. An output file is written under a temporary name and renamed
//! when complete, so a failed run never leaves a truncated file that looks finished.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tailor_core::{EmailForm, PhoneFormat, Region};
use tailor_list::{HashOptions, HashSummary, hash_list};

/// Normalize and SHA-256 hash the email and phone columns of a CSV customer list.
///
/// Reads a CSV file with a header row (comma, semicolon or tab separated) whose identifier
/// columns are named email (or e-mail, email_address, mail), phone (or phone_number, mobile,
/// tel), email_sha256 or phone_sha256. Writes one row per input row: the digests, then the
/// columns named by --keep. A summary goes to stderr.
#[derive(Debug, Args)]
pub(crate) struct HashArgs {
    /// The customer list to read, or - for standard input.
    #[arg(long, short, default_value = "-")]
    input: PathBuf,

    /// Where to write the hashed list, or - for standard output.
    #[arg(long, short, default_value = "-")]
    output: PathBuf,

    /// Region for phone numbers written without + or an international prefix (two letters).
    #[arg(long, default_value = "US", value_parser = parse_region)]
    region: Region,

    /// Hash phone numbers with their + (Google, UID2) or as digits only (Meta, Snap, X).
    #[arg(long, value_enum, default_value_t = PhoneFormatArg::E164)]
    phone_format: PhoneFormatArg,

    /// Hash email addresses as they are, or with Gmail dots and +suffixes removed.
    #[arg(long, value_enum, default_value_t = EmailFormArg::Basic)]
    email_form: EmailFormArg,

    /// Columns to copy into the output after the digests (for example a customer id).
    #[arg(long, value_delimiter = ',', value_name = "COL,...")]
    keep: Vec<String>,

    /// Write line,column,reason for every refused cell or row to this file (no values).
    #[arg(long, value_name = "PATH")]
    rejects: Option<PathBuf>,

    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum PhoneFormatArg {
    /// +18005550100
    E164,
    /// 18005550100
    Digits,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum EmailFormArg {
    /// Trimmed and lowercased.
    Basic,
    /// Also without dots and +suffix in the local part of gmail.com and googlemail.com.
    GmailCanonical,
}

fn parse_region(text: &str) -> Result<Region, String> {
    Region::parse(text).ok_or_else(|| {
        format!("{text:?} is not a two-letter region code libphonenumber knows (e.g. US, GB)")
    })
}

pub(crate) fn run(args: HashArgs) -> Result<()> {
    let mut options = HashOptions {
        region: args.region,
        phone_format: match args.phone_format {
            PhoneFormatArg::E164 => PhoneFormat::E164,
            PhoneFormatArg::Digits => PhoneFormat::Digits,
        },
        email_form: match args.email_form {
            EmailFormArg::Basic => EmailForm::Basic,
            EmailFormArg::GmailCanonical => EmailForm::GmailCanonical,
        },
        keep: args.keep,
        ..HashOptions::default()
    };
    if let Some(threads) = args.threads {
        options.threads = threads.max(1);
    }

    let (input, size): (Box<dyn Read>, Option<u64>) = if is_stdio(&args.input) {
        (Box::new(io::stdin().lock()), None)
    } else {
        let file = File::open(&args.input)
            .with_context(|| format!("cannot open {}", args.input.display()))?;
        let size = file.metadata().ok().map(|m| m.len());
        (Box::new(file), size)
    };
    let bar = progress_bar(size);
    let input = Counting {
        inner: input,
        bar: bar.clone(),
    };

    let output = Output::create(&args.output);
    let rejects_file = match &args.rejects {
        Some(path) if is_stdio(path) => bail!("--rejects needs a file path, not -"),
        Some(path) => Some(Output::create(path)),
        None => None,
    };
    let outcome = (|| {
        let writer = output.writer()?;
        let rejects = rejects_file.as_ref().map(Output::writer).transpose()?;
        let started = Instant::now();
        let show_rows = |rows: u64| {
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!("{rows} rows, {}", rate(rows as f64 / secs)));
        };
        let summary = hash_list(input, writer, rejects, &options, &show_rows)
            .with_context(|| describe_input(&args.input))?;
        output.commit()?;
        rejects_file.iter().try_for_each(Output::commit)?;
        Ok((summary, started.elapsed()))
    })();
    bar.finish_and_clear();
    match outcome {
        Ok((summary, elapsed)) => {
            print_summary(&summary, elapsed);
            Ok(())
        }
        Err(error) => {
            output.abandon();
            rejects_file.iter().for_each(Output::abandon);
            Err(error)
        }
    }
}

fn is_stdio(path: &Path) -> bool {
    path.as_os_str() == "-"
}

fn describe_input(path: &Path) -> String {
    if is_stdio(path) {
        "while hashing standard input".to_owned()
    } else {
        format!("while hashing {}", path.display())
    }
}

/// A progress bar on stderr when it is a terminal, hidden otherwise.
fn progress_bar(size: Option<u64>) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match size {
        Some(size) => ProgressBar::new(size).with_style(
            ProgressStyle::with_template(
                "{bar:30} {bytes}/{total_bytes} ({bytes_per_sec}) {msg} [{elapsed}, eta {eta}]",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {bytes} ({bytes_per_sec}) {msg} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(5));
    bar
}

fn rate(per_sec: f64) -> String {
    if per_sec >= 1e6 {
        format!("{:.2} M rows/s", per_sec / 1e6)
    } else {
        format!("{:.0} rows/s", per_sec)
    }
}

fn print_summary(summary: &HashSummary, elapsed: Duration) {
    let secs = elapsed.as_secs_f64();
    eprintln!(
        "tailor hash: {} rows read in {secs:.2} s ({})",
        summary.rows,
        rate(summary.rows as f64 / secs.max(1e-9))
    );
    eprintln!("  emails hashed: {}", summary.emails);
    eprintln!("  phones hashed: {}", summary.phones);
    eprintln!("  rejected:      {}", summary.rejected.total());
    for (reason, count) in summary.rejected.iter() {
        eprintln!(
            "    {:<28} {count:>10}  {}",
            reason.code(),
            reason.message()
        );
    }
}

/// Counts bytes read for the progress bar.
struct Counting<R> {
    inner: R,
    bar: ProgressBar,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

/// Where an output goes: standard output; a device or pipe written in place (`/dev/null`, a
/// FIFO); or a regular file written under a temporary name and renamed when complete.
enum Output {
    Stdout,
    InPlace(PathBuf),
    File { partial: PathBuf, path: PathBuf },
}

impl Output {
    fn create(path: &Path) -> Self {
        if is_stdio(path) {
            return Self::Stdout;
        }
        match std::fs::metadata(path) {
            // Renaming over a device or a pipe would replace it with a regular file.
            Ok(meta) if !meta.is_file() => Self::InPlace(path.to_owned()),
            _ => {
                // Rename onto the file a symbolic link points to, not over the link.
                let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
                let mut partial = path.as_os_str().to_owned();
                partial.push(".partial");
                Self::File {
                    partial: partial.into(),
                    path,
                }
            }
        }
    }

    fn writer(&self) -> Result<Box<dyn Write + Send>> {
        let create = |target: &Path, shown: &Path| {
            File::create(target).with_context(|| format!("cannot create {}", shown.display()))
        };
        Ok(match self {
            Self::Stdout => Box::new(io::stdout()),
            Self::InPlace(path) => Box::new(
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .with_context(|| format!("cannot open {}", path.display()))?,
            ),
            Self::File { partial, path } => Box::new(create(partial, path)?),
        })
    }

    fn commit(&self) -> Result<()> {
        if let Self::File { partial, path } = self {
            std::fs::rename(partial, path)
                .with_context(|| format!("cannot rename the output to {}", path.display()))?;
        }
        Ok(())
    }

    fn abandon(&self) {
        if let Self::File { partial, .. } = self {
            // Best effort: the run is failing already and reports why.
            let _ = std::fs::remove_file(partial);
        }
    }
}
