//! Arbitrary bytes as an upload body, read by `UploadReader` as NDJSON and as CSV.
//!
//! Checks that no input makes the reader panic; that every data row comes out, so that
//! `rows_received` is the number of rows handed out and `rows_accepted` the number with digests;
//! that a row holds at most four distinct digests and lines never go back; that reading the body
//! in small pieces gives the same rows and counts as reading it whole (the line reader's and the
//! CSV parser's buffer boundaries); that an in-memory body fails, if at all, only at the CSV
//! header; and that the CSV counts equal `tailor hash`'s on the same bytes.

#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use tailor_core::{Region, Sha256Digest};
use tailor_list::{
    HashOptions, ListError, UploadCounts, UploadFormat, UploadReader, UploadRow, hash_list,
};

/// Hands out `data` a few bytes at a time.
struct Pieces<'a> {
    data: &'a [u8],
    size: usize,
}

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.data.len()).min(self.size);
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

type Rows = Vec<(u64, Vec<Sha256Digest>)>;

/// Reads a whole upload; `Err` only if the reader could not start.
fn read(input: impl Read, format: UploadFormat) -> Result<(Rows, UploadCounts), ListError> {
    let mut reader = UploadReader::new(input, format, Region::US)?;
    let mut rows = Vec::new();
    let mut accepted = 0;
    let mut last_line = 0;
    loop {
        let row: UploadRow = match reader.next_row() {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(e) => panic!("an in-memory {format:?} body failed after its start: {e}"),
        };
        let digests = row.digests();
        assert!(digests.len() <= UploadRow::MAX_DIGESTS);
        assert_eq!(row.is_accepted(), !digests.is_empty());
        for (i, d) in digests.iter().enumerate() {
            assert!(!digests[i + 1..].contains(d), "a digest twice in one row");
        }
        // An NDJSON row is one line. CSV lines are counted by `\n`, and a lone `\r` also ends
        // a record, so two CSV rows can share a line.
        match format {
            UploadFormat::Ndjson => assert!(row.line() > last_line, "lines must increase"),
            UploadFormat::Csv => assert!(row.line() >= last_line.max(1), "lines went back"),
        }
        last_line = row.line();
        accepted += u64::from(row.is_accepted());
        rows.push((row.line(), digests.to_vec()));
    }
    let counts = reader.into_counts();
    assert_eq!(counts.rows_received, rows.len() as u64);
    assert_eq!(counts.rows_accepted, accepted);
    // Every row that is not accepted was refused for at least one reason.
    assert!(counts.rejected.total() >= counts.rows_received - counts.rows_accepted);
    Ok((rows, counts))
}

fuzz_target!(|data: &[u8]| {
    let size = 1 + usize::from(data.first().copied().unwrap_or(0) % 13);
    for format in [UploadFormat::Ndjson, UploadFormat::Csv] {
        let whole = read(data, format);
        let pieces = read(Pieces { data, size }, format);
        match (whole, pieces) {
            (Ok((rows, counts)), Ok((rows2, counts2))) => {
                assert!(rows == rows2, "{format:?}: rows differ when read in pieces");
                assert_eq!(
                    counts, counts2,
                    "{format:?}: counts differ when read in pieces"
                );
                if format == UploadFormat::Csv {
                    let options = HashOptions {
                        threads: 1,
                        ..HashOptions::default()
                    };
                    let summary = hash_list(data, std::io::sink(), None, &options, &|_| {})
                        .expect("tailor hash reads what the upload reader reads");
                    assert_eq!(summary.rows, counts.rows_received);
                    assert_eq!(summary.rejected, counts.rejected);
                }
            }
            (Err(e), Err(e2)) => {
                assert_eq!(format, UploadFormat::Csv, "an NDJSON body cannot fail: {e}");
                assert_eq!(e.to_string(), e2.to_string());
            }
            (a, b) => panic!("{format:?}: whole {:?}, in pieces {:?}", a.err(), b.err()),
        }
    }
});
