//! Lists of many batches: output in input order, identical whatever the number of threads, and
//! the progress callback and summary agree with the input.

use std::sync::Mutex;

use tailor_core::RejectReason;
use tailor_list::{HashOptions, hash_list};

use crate::support::{options, run, sha256_hex, summary};

/// More than three batches of 4096 rows, and not a multiple of the batch size.
const ROWS: usize = 3 * 4096 + 1234;

/// Row `i`: every 7th email is invalid, only every 4th row has a phone (phone parsing is slow
/// in debug builds), every 13th row has one field too many; some rows are quoted, some span two lines, and blank lines are scattered.
fn list() -> Vec<u8> {
    let mut input = b"id,email,phone,note\n".to_vec();
    for i in 0..ROWS {
        let email = if i.is_multiple_of(7) {
            format!("user{i}.example.com")
        } else {
            format!("User{i}@Example.com")
        };
        let phone = if i % 4 == 1 {
            format!("+1 415 555 {:04}", i % 10_000)
        } else {
            String::new()
        };
        let note = match i % 5 {
            0 => "\"two\nlines\"".to_owned(),
            1 => "\"a, b\"".to_owned(),
            _ => format!("n{i}"),
        };
        let extra = if i % 13 == 0 { ",extra" } else { "" };
        let end = if i % 3 == 0 { "\r\n" } else { "\n" };
        input.extend_from_slice(format!("c{i},{email},{phone},{note}{extra}{end}").as_bytes());
        if i % 1000 == 999 {
            input.push(b'\n');
        }
    }
    input
}

/// What row `i` must come out as, with `keep = ["id"]`.
fn expected_row(i: usize) -> String {
    if i.is_multiple_of(13) {
        return ",,".to_owned();
    }
    let email = if i.is_multiple_of(7) {
        String::new()
    } else {
        sha256_hex(&format!("user{i}@example.com"))
    };
    let phone = if i % 4 == 1 {
        sha256_hex(&format!("+1415555{:04}", i % 10_000))
    } else {
        String::new()
    };
    format!("{email},{phone},c{i}")
}

fn keep_id(threads: usize) -> HashOptions {
    HashOptions {
        keep: vec!["id".to_owned()],
        ..options(threads)
    }
}

#[test]
fn many_batches_keep_input_order_with_any_number_of_threads() {
    let input = list();
    let runs: Vec<_> = [1, 2, 4]
        .into_iter()
        .map(|threads| run(&input, &keep_id(threads)).unwrap())
        .collect();

    let lines: Vec<&str> = runs[0].output.lines().collect();
    assert_eq!(lines.len(), ROWS + 1);
    assert_eq!(lines[0], "email_sha256,phone_sha256,id");
    for (i, line) in lines[1..].iter().enumerate() {
        assert_eq!(*line, expected_row(i), "row {i}");
    }

    for other in &runs[1..] {
        assert!(other.output == runs[0].output, "threads change the output");
        assert!(
            other.rejects == runs[0].rejects,
            "threads change the rejects"
        );
        assert_eq!(other.summary, runs[0].summary);
    }
}

#[test]
fn many_batches_count_exactly_and_reject_on_the_right_lines() {
    let input = list();
    let result = run(&input, &keep_id(3)).unwrap();

    let mut line = 2;
    let mut rejects = vec!["line,column,reason".to_owned()];
    let (mut emails, mut phones, mut wrong, mut bad_email) = (0, 0, 0, 0);
    for i in 0..ROWS {
        if i.is_multiple_of(13) {
            rejects.push(format!("{line},,wrong_field_count"));
            wrong += 1;
        } else {
            if i % 7 == 0 {
                rejects.push(format!("{line},email,email_missing_at"));
                bad_email += 1;
            } else {
                emails += 1;
            }
            if i % 4 == 1 {
                phones += 1;
            }
        }
        line += if i % 5 == 0 { 2 } else { 1 };
        if i % 1000 == 999 {
            line += 1;
        }
    }
    let got: Vec<&str> = result.rejects.lines().collect();
    assert_eq!(got.len(), rejects.len());
    for (got, want) in got.iter().zip(&rejects) {
        assert_eq!(got, want);
    }
    assert_eq!(
        result.summary,
        summary(
            ROWS as u64,
            emails,
            phones,
            &[
                (RejectReason::WrongFieldCount, wrong),
                (RejectReason::EmailMissingAt, bad_email),
            ],
        )
    );
}

#[test]
fn progress_reports_rows_written_up_to_the_total() {
    let input = list();
    let seen = Mutex::new(Vec::new());
    let record = |rows: u64| seen.lock().unwrap().push(rows);
    let summary = hash_list(&input[..], Vec::new(), None, &options(2), &record).unwrap();
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.len(), ROWS.div_ceil(4096), "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    assert_eq!(seen.last().copied(), Some(summary.rows));
    assert_eq!(summary.rows, ROWS as u64);
}

#[test]
fn zero_threads_means_one() {
    let input = list();
    let one = run(&input, &keep_id(1)).unwrap();
    let zero = run(&input, &keep_id(0)).unwrap();
    assert!(one.output == zero.output);
}
