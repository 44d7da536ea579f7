//! The streaming normalize-and-hash pipeline behind `tailor hash`.
//!
//! One thread reads and splits the CSV into batches of records, worker threads normalize and
//! hash them, and one thread writes the results in input order. Channels between the stages
//! are bounded and record buffers are recycled, so memory stays bounded whatever the size of
//! the list. Nothing here logs; the output holds digests only, and the rejects file holds line
//! numbers, column names and reason codes only.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::thread;

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use csv::ByteRecord;
use tailor_core::{EmailForm, IdentifierKind, PhoneFormat, Region, RejectCounts, RejectReason};

use crate::columns::{ColumnMap, digest_column_name};
use crate::error::ListError;
use crate::reader::ListReader;
use crate::row::{Identifier, RowReject, identifier_cells, text_cell};

/// Rows per batch handed to a worker.
const BATCH_ROWS: usize = 4096;

/// How `tailor hash` normalizes and hashes.
#[derive(Clone, Debug)]
pub struct HashOptions {
    /// Reads phone numbers written without `+`.
    pub region: Region,
    /// With or without the `+`.
    pub phone_format: PhoneFormat,
    /// Basic or Gmail-canonical.
    pub email_form: EmailForm,
    /// Columns copied from input to output after the digests, by header name.
    pub keep: Vec<String>,
    /// Worker threads; at least one.
    pub threads: usize,
}

impl Default for HashOptions {
    fn default() -> Self {
        Self {
            region: Region::US,
            phone_format: PhoneFormat::E164,
            email_form: EmailForm::Basic,
            keep: Vec::new(),
            threads: thread::available_parallelism().map_or(1, usize::from),
        }
    }
}

/// What a hashing run did: every count is exact.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HashSummary {
    /// Data rows read (the header and blank lines not counted).
    pub rows: u64,
    /// Email identifiers hashed (or validated, from a hashed column).
    pub emails: u64,
    /// Phone identifiers hashed (or validated, from a hashed column).
    pub phones: u64,
    /// Refused cells and rows, by reason.
    pub rejected: RejectCounts,
}

impl HashSummary {
    fn merge(&mut self, other: &HashSummary) {
        self.rows += other.rows;
        self.emails += other.emails;
        self.phones += other.phones;
        self.rejected.merge(&other.rejected);
    }

    fn hashed(&mut self, kind: IdentifierKind) {
        match kind {
            IdentifierKind::Email => self.emails += 1,
            IdentifierKind::Phone => self.phones += 1,
        }
    }
}

/// A batch of records on its way to a worker.
struct Batch {
    seq: u64,
    records: Vec<ByteRecord>,
    len: usize,
}

/// A batch's results on their way to the writer.
struct Done {
    seq: u64,
    output: Vec<u8>,
    rejects: Vec<u8>,
    summary: HashSummary,
}

/// What every worker needs to know about the list.
struct Plan {
    columns: ColumnMap,
    /// Output digest columns, in output order.
    outputs: Vec<IdentifierKind>,
    /// Input indices of the kept columns.
    kept: Vec<usize>,
    options: HashOptions,
}

/// Normalizes and hashes a customer list.
///
/// Writes one output row per input data row, in input order: the digest columns the input has
/// (`email_sha256`, `phone_sha256`), then the kept columns. A refused identifier leaves its cell
/// empty and, when `rejects` is given, writes `line,column,reason` there. `progress` is called
/// with the number of rows after each batch is written.
///
/// Fails only when the list cannot be read as a whole (no header, no identifier column, a read
/// error) or an output cannot be written.
pub fn hash_list<R, W>(
    input: R,
    output: W,
    rejects: Option<Box<dyn Write + Send + '_>>,
    options: &HashOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<HashSummary, ListError>
where
    R: Read,
    W: Write + Send,
{
    let mut reader = ListReader::new(input)?;
    let plan = plan(reader.columns().clone(), options)?;
    let threads = options.threads.max(1);

    let (work_tx, work_rx) = bounded::<Batch>(threads * 2);
    let (done_tx, done_rx) = bounded::<Done>(threads * 2);
    let (free_tx, free_rx) = unbounded::<Vec<ByteRecord>>();

    thread::scope(|scope| {
        let plan = &plan;
        for _ in 0..threads {
            let work_rx = work_rx.clone();
            let done_tx = done_tx.clone();
            let free_tx = free_tx.clone();
            scope.spawn(move || worker(plan, &work_rx, &done_tx, &free_tx));
        }
        drop((work_rx, done_tx, free_tx));

        let writer = scope.spawn(move || write_in_order(plan, output, rejects, &done_rx, progress));
        let read = read_batches(&mut reader, &work_tx, &free_rx);
        drop(work_tx);
        // A writer that stopped early (an output error) makes the reader stop too; its error
        // is the one to report.
        let written = writer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let summary = written?;
        read?;
        Ok(summary)
    })
}

fn plan(columns: ColumnMap, options: &HashOptions) -> Result<Plan, ListError> {
    let outputs = columns.identifiers().map(|(_, c)| c.kind()).collect();
    let mut kept = Vec::with_capacity(options.keep.len());
    for name in &options.keep {
        let index = columns
            .find(name)
            .ok_or_else(|| ListError::KeepColumnMissing { name: name.clone() })?;
        if columns.identifiers().any(|(i, _)| i == index) {
            return Err(ListError::KeepIdentifierColumn { name: name.clone() });
        }
        kept.push(index);
    }
    Ok(Plan {
        columns,
        outputs,
        kept,
        options: options.clone(),
    })
}

fn read_batches<R: Read>(
    reader: &mut ListReader<R>,
    work: &Sender<Batch>,
    free: &Receiver<Vec<ByteRecord>>,
) -> Result<(), ListError> {
    for seq in 0.. {
        let mut records = free.try_recv().unwrap_or_default();
        let mut len = 0;
        while len < BATCH_ROWS {
            if len == records.len() {
                records.push(ByteRecord::new());
            }
            if !reader.read_record(&mut records[len])? {
                break;
            }
            len += 1;
        }
        let last = len < BATCH_ROWS;
        if len > 0 && work.send(Batch { seq, records, len }).is_err() {
            // The writer has stopped; it reports why.
            return Ok(());
        }
        if last {
            break;
        }
    }
    Ok(())
}

fn worker(
    plan: &Plan,
    work: &Receiver<Batch>,
    done: &Sender<Done>,
    free: &Sender<Vec<ByteRecord>>,
) {
    for batch in work {
        let result = hash_batch(plan, &batch);
        // The reader may have finished; a lost buffer is fine.
        let _ = free.send(batch.records);
        if done.send(result).is_err() {
            return;
        }
    }
}

fn hash_batch(plan: &Plan, batch: &Batch) -> Done {
    let records = &batch.records[..batch.len];
    let mut output = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::with_capacity(
            records.len() * (plan.outputs.len() * 65 + 16),
        ));
    let mut rejects = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    let mut summary = HashSummary::default();
    let mut hex: Vec<Option<tailor_core::identifier::Sha256Hex>> = vec![None; plan.outputs.len()];
    let mut kept: Vec<&[u8]> = Vec::with_capacity(plan.kept.len());

    for record in records {
        summary.rows += 1;
        let line = record.position().map_or(0, csv::Position::line);
        hex.iter_mut().for_each(|h| *h = None);
        kept.clear();
        match hash_row(
            plan,
            record,
            line,
            &mut hex,
            &mut kept,
            &mut summary,
            &mut rejects,
        ) {
            Ok(()) => {}
            Err(reject) => {
                summary.rejected.add(reject.reason);
                let column = reject.column.map_or("", |i| plan.columns.name(i));
                write_reject(&mut rejects, line, column, reject.reason);
                hex.iter_mut().for_each(|h| *h = None);
                kept.clear();
                kept.resize(plan.kept.len(), b"");
            }
        }
        let digests = hex
            .iter()
            .map(|h| h.as_ref().map_or(&b""[..], |h| &h.as_bytes()[..]));
        // Writing to a `Vec` cannot fail.
        let _ = output.write_record(digests.chain(kept.iter().copied()));
    }
    Done {
        seq: batch.seq,
        output: output.into_inner().unwrap_or_default(),
        rejects: rejects.into_inner().unwrap_or_default(),
        summary,
    }
}

/// Hashes one row into `hex` and `kept`; a row-level refusal is returned.
fn hash_row<'r>(
    plan: &Plan,
    record: &'r ByteRecord,
    line: u64,
    hex: &mut [Option<tailor_core::identifier::Sha256Hex>],
    kept: &mut Vec<&'r [u8]>,
    summary: &mut HashSummary,
    rejects: &mut csv::Writer<Vec<u8>>,
) -> Result<(), RowReject> {
    let cells = identifier_cells(record, &plan.columns)?;
    for &index in &plan.kept {
        kept.push(text_cell(record, index)?.as_bytes());
    }
    let mut any = false;
    for (column, text) in cells.into_iter().flatten() {
        any = true;
        let kind = column.kind();
        let slot = plan.outputs.iter().position(|&k| k == kind);
        match Identifier::parse(column, text, plan.options.region) {
            Ok(identifier) => {
                summary.hashed(kind);
                let digest = identifier.digest(plan.options.email_form, plan.options.phone_format);
                if let Some(slot) = slot {
                    hex[slot] = Some(digest.to_hex());
                }
            }
            Err(reason) => {
                summary.rejected.add(reason);
                let name = plan
                    .columns
                    .identifier(kind)
                    .map_or("", |(i, _)| plan.columns.name(i));
                write_reject(rejects, line, name, reason);
            }
        }
    }
    if !any {
        // The row is kept (its kept columns still identify it to the advertiser), but it has
        // nothing to hash.
        summary.rejected.add(RejectReason::NoIdentifier);
        write_reject(rejects, line, "", RejectReason::NoIdentifier);
    }
    Ok(())
}

fn write_reject(rejects: &mut csv::Writer<Vec<u8>>, line: u64, column: &str, reason: RejectReason) {
    let line = line.to_string();
    // Writing to a `Vec` cannot fail.
    let _ = rejects.write_record([line.as_str(), column, reason.code()]);
}

fn write_in_order<W: Write>(
    plan: &Plan,
    output: W,
    rejects: Option<Box<dyn Write + Send + '_>>,
    done: &Receiver<Done>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<HashSummary, ListError> {
    let out_err = |source| ListError::Write {
        what: "output",
        source,
    };
    let rej_err = |source| ListError::Write {
        what: "rejects file",
        source,
    };
    let mut output = std::io::BufWriter::with_capacity(256 * 1024, output);
    let mut rejects = rejects.map(|r| std::io::BufWriter::with_capacity(64 * 1024, r));

    let mut header = csv::WriterBuilder::new().from_writer(Vec::new());
    let names = plan
        .outputs
        .iter()
        .map(|&kind| digest_column_name(kind))
        .chain(plan.kept.iter().map(|&i| plan.columns.name(i)));
    let _ = header.write_record(names);
    output
        .write_all(&header.into_inner().unwrap_or_default())
        .map_err(out_err)?;
    if let Some(rejects) = rejects.as_mut() {
        rejects
            .write_all(b"line,column,reason\n")
            .map_err(rej_err)?;
    }

    let mut summary = HashSummary::default();
    let mut pending = BTreeMap::new();
    let mut next = 0;
    for batch in done {
        pending.insert(batch.seq, batch);
        while let Some(batch) = pending.remove(&next) {
            output.write_all(&batch.output).map_err(out_err)?;
            if let Some(rejects) = rejects.as_mut() {
                rejects.write_all(&batch.rejects).map_err(rej_err)?;
            }
            summary.merge(&batch.summary);
            progress(summary.rows);
            next += 1;
        }
    }
    output.flush().map_err(out_err)?;
    if let Some(rejects) = rejects.as_mut() {
        rejects.flush().map_err(rej_err)?;
    }
    Ok(summary)
}
