//! Fuzzes the whole `hash_list` pipeline with arbitrary bytes as a CSV file.
//!
//! Checks that no input makes the pipeline panic, that a successful run writes a header and one
//! output row per data row, and that one and two worker threads produce byte-identical output,
//! rejects and summary.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tailor_list::{HashOptions, HashSummary, ListError, hash_list};

struct Run {
    result: Result<HashSummary, ListError>,
    output: Vec<u8>,
    rejects: Vec<u8>,
}

fn run(data: &[u8], threads: usize) -> Run {
    let options = HashOptions {
        threads,
        ..HashOptions::default()
    };
    let mut output = Vec::new();
    let mut rejects = Vec::new();
    let result = hash_list(
        data,
        &mut output,
        Some(Box::new(&mut rejects)),
        &options,
        &|_| {},
    );
    Run {
        result,
        output,
        rejects,
    }
}

/// The number of CSV records in `output`, header included; every record must have the width of
/// the header.
fn records(output: &[u8]) -> u64 {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(output);
    let mut record = csv::ByteRecord::new();
    let mut count = 0;
    while reader
        .read_byte_record(&mut record)
        .unwrap_or_else(|e| panic!("output is not well-formed CSV: {e}"))
    {
        count += 1;
    }
    count
}

fuzz_target!(|data: &[u8]| {
    let one = run(data, 1);
    let two = run(data, 2);
    match (&one.result, &two.result) {
        (Ok(summary), Ok(summary2)) => {
            assert_eq!(
                records(&one.output),
                summary.rows + 1,
                "output rows != rows + header"
            );
            assert_eq!(summary, summary2, "summary differs between 1 and 2 threads");
            assert!(
                one.output == two.output,
                "output differs between 1 and 2 threads"
            );
            assert!(
                one.rejects == two.rejects,
                "rejects differ between 1 and 2 threads"
            );
        }
        (Err(e1), Err(e2)) => assert_eq!(e1.to_string(), e2.to_string()),
        (r1, r2) => panic!("1 thread: {r1:?}, 2 threads: {r2:?}"),
    }
});
