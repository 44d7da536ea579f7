//! No error message and no rejects file ever carries a value from a data cell.
//!
//! Every cell below is distinctive enough that finding any piece of it (raw or normalized) in a
//! message can only mean it leaked.

use std::io::{self, Read};

use tailor_list::{HashOptions, ListError, hash_list};

use crate::support::{options, run, run_err};

/// Distinctive values, each with the pieces that must never appear.
const SECRETS: &[&str] = &[
    "zorblax.quimby@example.org",
    "Zorblax.Quimby@Example.ORG",
    "qwxv-fennimore@example.com",
    "QWXV-Fennimore",
    "fennimore",
    "zorblax",
    "4155550187",
    "415 555 0187",
    "(415) 555-0187",
    "+14155550187",
    "555-0187",
    "0187",
    "7946 0193",
    "Wexford-Plumtree",
    "plumtree",
    "88c1d",
];

fn assert_clean(what: &str, text: &str) {
    let lower = text.to_lowercase();
    for secret in SECRETS {
        assert!(
            !lower.contains(&secret.to_lowercase()),
            "{what} contains {secret:?}: {text}"
        );
    }
}

/// A list with every kind of refusal, each made of the distinctive values.
fn refusals() -> Vec<u8> {
    [
        &b"customer,email,phone,note\n"[..],
        // Invalid email and phone cells.
        b"Wexford-Plumtree,zorblax.quimby@@example.org,(415) 555-0187 ext 88,x\n",
        b"Wexford-Plumtree,QWXV-Fennimore,555-0187,x\n",
        b"Wexford-Plumtree,qwxv fennimore@example.com,7946 0193,x\n",
        // Wrong field counts.
        b"Wexford-Plumtree,zorblax.quimby@example.org,(415) 555-0187,x,88c1d\n",
        b"Wexford-Plumtree,zorblax.quimby@example.org\n",
        // Invalid UTF-8 in an identifier and in a kept cell.
        b"Wexford-Plumtree,zorblax.quimby\xFF@example.org,(415) 555-0187,x\n",
        b"Wexford-Plumtree\xFF,zorblax.quimby@example.org,(415) 555-0187,x\n",
        // No identifier.
        b"Wexford-Plumtree,,,88c1d\n",
        // Accepted.
        b"Wexford-Plumtree,Zorblax.Quimby@Example.ORG,+1 415 555 0187,88c1d\n",
    ]
    .concat()
}

#[test]
fn the_rejects_file_holds_no_cell_value() {
    let options = HashOptions {
        keep: vec!["customer".to_owned()],
        ..options(2)
    };
    let result = run(&refusals(), &options).unwrap();
    assert_eq!(result.summary.rows, 9);
    assert_eq!(result.rejects.lines().count(), 1 + 11, "{}", result.rejects);
    assert_clean("the rejects file", &result.rejects);
    // The output holds digests and the kept column only.
    let without_kept = result.output.replace("Wexford-Plumtree", "");
    assert_clean("the output", &without_kept);
    // And the summary's debug form, which a caller might log.
    assert_clean("the summary", &format!("{:?}", result.summary));
}

#[test]
fn hashed_columns_refuse_without_echoing() {
    let input = b"email_sha256,phone_sha256\n\
                  zorblax.quimby@example.org,(415) 555-0187\n\
                  QWXV-Fennimore,4155550187\n";
    let result = run(input, &options(1)).unwrap();
    assert_eq!(result.rejects.lines().count(), 1 + 4, "{}", result.rejects);
    assert_clean("the rejects file", &result.rejects);
    assert_clean("the output", &result.output);
}

#[test]
fn header_errors_hold_no_cell_value() {
    let inputs: &[&[u8]] = &[
        // Lists without a header row, whose first row is data.
        b"zorblax.quimby@example.org,Wexford-Plumtree\n",
        b"Wexford-Plumtree;(415) 555-0187\n",
        b"Wexford-Plumtree\t+14155550187\tqwxv-fennimore@example.com\n",
        // A duplicated identifier column: the message names the columns, not the data.
        b"email,mail\nzorblax.quimby@example.org,qwxv-fennimore@example.com\n",
    ];
    for input in inputs {
        let err = run_err(input, &options(2));
        assert_clean("the error", &err.to_string());
        assert_clean("the error's debug form", &format!("{err:?}"));
    }
}

#[test]
fn keep_errors_hold_no_cell_value() {
    let input = b"email,customer\nzorblax.quimby@example.org,Wexford-Plumtree\n";
    for keep in ["missing", "email"] {
        let options = HashOptions {
            keep: vec![keep.to_owned()],
            ..options(1)
        };
        let err = run_err(input, &options);
        assert_clean("the error", &err.to_string());
    }
}

/// Hands out `data`, then fails.
struct Failing(&'static [u8]);

impl Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.0.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "stream cut"));
        }
        let n = buf.len().min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

#[test]
fn read_errors_hold_no_cell_value() {
    // The stream breaks in the middle of a quoted cell.
    let input = Failing(
        b"email,customer\nzorblax.quimby@example.org,Wexford-Plumtree\n\
          qwxv-fennimore@example.com,\"Wexford-Plumtree, 88c1d",
    );
    let err = hash_list(input, Vec::new(), None, &options(2), &|_| {}).unwrap_err();
    assert!(matches!(err, ListError::Read { .. }), "{err:?}");
    assert_clean("the error", &err.to_string());
    assert_clean("the error's debug form", &format!("{err:?}"));
}
