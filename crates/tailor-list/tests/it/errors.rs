//! Lists that cannot be hashed at all: header problems, `--keep` mistakes, failing readers and
//! writers. Each fails before writing a single output byte, or says which output failed.

use std::io::{self, Read, Write};

use tailor_list::{HashOptions, ListError, hash_list};

use crate::support::{options, run_err};

/// Whether an error is the one a case expects.
type Expect = fn(&ListError) -> bool;

#[test]
fn header_errors() {
    let cases: &[(&str, &[u8], Expect)] = &[
        ("empty input", b"", |e| matches!(e, ListError::Empty)),
        ("only blank lines", b"\n\r\n  \n", |e| {
            matches!(e, ListError::Empty)
        }),
        ("only a BOM", b"\xEF\xBB\xBF", |e| {
            matches!(e, ListError::Empty)
        }),
        ("no identifier column", b"id,name\nc1,Ann\n", |e| {
            matches!(e, ListError::NoIdentifierColumn { .. })
        }),
        (
            "a header that is data (email)",
            b"ann@example.com,Ann\n",
            |e| matches!(e, ListError::HeaderLooksLikeData),
        ),
        (
            "a header that is data (phone)",
            b"c1;(415) 555-0130\n",
            |e| matches!(e, ListError::HeaderLooksLikeData),
        ),
        (
            "a header that is data (digest)",
            b"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\n",
            |e| matches!(e, ListError::HeaderLooksLikeData),
        ),
        ("two email columns", b"email,E-Mail\n", |e| {
            matches!(
                e,
                ListError::DuplicateIdentifierColumn { kind: "email", .. }
            )
        }),
        (
            "an email column and a hashed one",
            b"email_sha256,phone,mail\n",
            |e| {
                matches!(
                    e,
                    ListError::DuplicateIdentifierColumn { kind: "email", .. }
                )
            },
        ),
        ("two phone columns", b"mobile\ttel\n", |e| {
            matches!(
                e,
                ListError::DuplicateIdentifierColumn { kind: "phone", .. }
            )
        }),
        (
            "a header that is not UTF-8",
            b"email,n\xFFme\nann@example.com,x\n",
            |e| matches!(e, ListError::HeaderNotUtf8),
        ),
    ];
    for (name, input, expected) in cases {
        let err = run_err(input, &options(2));
        assert!(expected(&err), "{name}: {err:?}");
        let message = err.to_string();
        assert!(
            !message.is_empty() && message.starts_with(char::is_lowercase),
            "{name}: {message}"
        );
    }
}

#[test]
fn header_errors_name_columns_only_when_they_are_identifier_names() {
    // Without an identifier column the header may be a row of data: nothing of it is echoed.
    let err = run_err(b"id,name\nc1,Ann\n", &options(1));
    let message = err.to_string();
    assert!(
        matches!(err, ListError::NoIdentifierColumn { columns: 2 }),
        "{err:?}"
    );
    assert!(message.contains("2 columns"), "{message}");
    assert!(
        !message.contains("\"id\"") && !message.contains("name\""),
        "{message}"
    );
    // Duplicates are recognized aliases, safe to name.
    let err = run_err(b"email,E-Mail\n", &options(1));
    let message = err.to_string();
    assert!(
        message.contains("\"email\"") && message.contains("\"E-Mail\""),
        "{message}"
    );
}

#[test]
fn a_header_too_long_is_refused() {
    let mut input = b"email,".to_vec();
    input.extend(std::iter::repeat_n(b'x', 100 * 1024));
    input.extend_from_slice(b"\nann@example.com,x\n");
    let err = run_err(&input, &options(1));
    assert!(matches!(err, ListError::HeaderTooLong { .. }), "{err:?}");
}

#[test]
fn keep_errors() {
    let input = b"email,Phone_Number,id\nann@example.com,4155550131,c1\n";
    let cases: &[(&[&str], Expect)] = &[
        (
            &["missing"],
            |e| matches!(e, ListError::KeepColumnMissing { name } if name == "missing"),
        ),
        (
            &["id", "idx"],
            |e| matches!(e, ListError::KeepColumnMissing { name } if name == "idx"),
        ),
        (
            &["EMAIL"],
            |e| matches!(e, ListError::KeepIdentifierColumn { name } if name == "EMAIL"),
        ),
        (&["phone_number"], |e| {
            matches!(e, ListError::KeepIdentifierColumn { .. })
        }),
    ];
    for (keep, expected) in cases {
        let options = HashOptions {
            keep: keep.iter().map(|&k| k.to_owned()).collect(),
            ..options(2)
        };
        let err = run_err(input, &options);
        assert!(expected(&err), "{keep:?}: {err:?}");
    }
}

#[test]
fn keep_finds_columns_ignoring_case_and_spaces_and_keeps_their_order() {
    let input = b"Customer ID,email,Country\nc1,ann@example.com,FR\n";
    let options = HashOptions {
        keep: vec![" country ".to_owned(), "customer id".to_owned()],
        ..options(2)
    };
    let run = crate::support::run(input, &options).unwrap();
    assert_eq!(
        run.output,
        crate::support::expand_str("email_sha256,Country,Customer ID\n<ann@example.com>,FR,c1\n")
    );
}

/// A reader that fails after handing out some bytes.
struct FailingReader {
    data: &'static [u8],
}

impl Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.data.is_empty() {
            return Err(io::Error::other("the disk went away"));
        }
        let n = buf.len().min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn a_read_error_fails_the_run_and_names_a_line() {
    for threads in [1, 4] {
        let input = FailingReader {
            data: b"email,id\nann@example.com,c1\nbob@example.com,c2\n",
        };
        let mut output = Vec::new();
        let err = hash_list(input, &mut output, None, &options(threads), &|_| {}).unwrap_err();
        let ListError::Read { line, source } = &err else {
            panic!("{err:?}");
        };
        assert!(*line >= 1, "{err}");
        assert_eq!(source.to_string(), "the disk went away");
        assert!(err.to_string().contains(&format!("line {line}")), "{err}");
    }
}

#[test]
fn a_read_error_in_the_header_names_line_one() {
    let err = hash_list(
        FailingReader { data: b"" },
        Vec::new(),
        None,
        &options(1),
        &|_| {},
    )
    .unwrap_err();
    assert!(matches!(err, ListError::Read { line: 1, .. }), "{err:?}");
}

/// A writer that accepts `room` bytes and then fails.
struct FullDisk {
    room: usize,
}

impl Write for FullDisk {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.room == 0 {
            return Err(io::Error::other("no space left"));
        }
        let n = buf.len().min(self.room);
        self.room -= n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A list long enough for several batches, so that the reader is still busy when the writer
/// fails.
fn long_list() -> Vec<u8> {
    let mut input = b"email,id\n".to_vec();
    for i in 0..20_000 {
        input.extend_from_slice(format!("user{i}@example.com,c{i}\n").as_bytes());
    }
    input
}

#[test]
fn an_output_write_error_stops_the_run() {
    let input = long_list();
    for (room, threads) in [(0, 1), (10, 2), (300 * 1024, 4)] {
        let err = hash_list(
            &input[..],
            FullDisk { room },
            None,
            &options(threads),
            &|_| {},
        )
        .unwrap_err();
        assert!(
            matches!(err, ListError::Write { what: "output", .. }),
            "{room}: {err:?}"
        );
        assert!(err.to_string().contains("no space left"), "{err}");
    }
}

#[test]
fn a_rejects_write_error_stops_the_run() {
    let mut input = b"email,id\n".to_vec();
    for i in 0..20_000 {
        input.extend_from_slice(format!("not-an-email-{i},c{i}\n").as_bytes());
    }
    for room in [0, 100] {
        let err = hash_list(
            &input[..],
            Vec::new(),
            Some(Box::new(FullDisk { room })),
            &options(2),
            &|_| {},
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                ListError::Write {
                    what: "rejects file",
                    ..
                }
            ),
            "{room}: {err:?}"
        );
    }
}
