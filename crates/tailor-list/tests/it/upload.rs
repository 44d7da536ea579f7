//! `UploadReader`: CSV and NDJSON uploads read into the SHA-256 digests of every convention.
//!
//! The table gives, for each upload, every row's line and the plain strings whose SHA-256 the
//! row must yield (computed here with `sha2`, not with `tailor_core`), and the exact counts. The
//! property test checks the digests against what `tailor_core` computes for random rows, in
//! both formats; the privacy tests check that nothing a reader reports carries a value.

use std::io::{self, Read};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use proptest::prelude::*;
use sha2::{Digest as _, Sha256};
use tailor_core::RejectReason::{self, *};
use tailor_core::{E164Phone, NormalizedEmail, PhoneFormat, Region, Sha256Digest};
use tailor_list::{ListError, MAX_ROW_BYTES, UploadCounts, UploadFormat, UploadReader, UploadRow};

use crate::support::expand;

/// SHA-256 of `text`, computed without `tailor_core`.
fn sha(text: &str) -> Sha256Digest {
    Sha256Digest::from_bytes(Sha256::digest(text.as_bytes()).into())
}

/// Reads a whole upload that must not fail.
fn read_all(body: &[u8], format: UploadFormat, region: Region) -> (Vec<UploadRow>, UploadCounts) {
    let mut reader = UploadReader::new(body, format, region).unwrap();
    let mut rows = Vec::new();
    while let Some(row) = reader.next_row().unwrap() {
        rows.push(row);
    }
    // The end is sticky.
    assert!(reader.next_row().unwrap().is_none());
    (rows, reader.into_counts())
}

fn counts(received: u64, accepted: u64, rejected: &[(RejectReason, u64)]) -> UploadCounts {
    let mut counts = UploadCounts {
        rows_received: received,
        rows_accepted: accepted,
        ..UploadCounts::default()
    };
    for &(reason, n) in rejected {
        for _ in 0..n {
            counts.rejected.add(reason);
        }
    }
    counts
}

struct Case {
    name: &'static str,
    format: UploadFormat,
    /// With `support::expand` placeholders: `<x>` lowercase hex, `<HEX:x>`, `<B64:x>`.
    body: Vec<u8>,
    region: Region,
    /// Each row's line and the strings whose SHA-256 it yields, in order.
    rows: Vec<(u64, Vec<&'static str>)>,
    counts: UploadCounts,
}

fn csv(name: &'static str, body: &'static [u8]) -> Case {
    Case {
        name,
        format: UploadFormat::Csv,
        body: body.to_vec(),
        region: Region::US,
        rows: Vec::new(),
        counts: UploadCounts::default(),
    }
}

fn ndjson(name: &'static str, body: &'static [u8]) -> Case {
    Case {
        format: UploadFormat::Ndjson,
        ..csv(name, body)
    }
}

impl Case {
    fn region(mut self, code: &str) -> Self {
        self.region = Region::parse(code).unwrap();
        self
    }

    fn row(mut self, line: u64, digests: &[&'static str]) -> Self {
        self.rows.push((line, digests.to_vec()));
        self
    }

    /// A row with no digests.
    fn refused(self, line: u64) -> Self {
        self.row(line, &[])
    }

    fn counts(mut self, received: u64, accepted: u64, rejected: &[(RejectReason, u64)]) -> Self {
        self.counts = counts(received, accepted, rejected);
        self
    }
}

fn cases() -> Vec<Case> {
    const ANN: &[&str] = &["ann@example.com"];
    const ANN_PHONE: &[&str] = &["ann@example.com", "+14155550101", "14155550101"];
    vec![
        // CSV, raw.
        csv(
            "csv: raw email and phone, both phone conventions",
            b"email,phone\nAnn@Example.COM,(415) 555-0101\n",
        )
        .row(2, ANN_PHONE)
        .counts(1, 1, &[]),
        csv(
            "csv: both Gmail forms, once each",
            b"E-Mail,id\n\
              Jane.Doe+promo@GMail.com,1\n\
              janedoe@gmail.com,2\n\
              j.doe@googlemail.com,3\n\
              jane.doe@example.com,4\n",
        )
        .row(2, &["jane.doe+promo@gmail.com", "janedoe@gmail.com"])
        .row(3, &["janedoe@gmail.com"])
        .row(4, &["j.doe@googlemail.com", "jdoe@googlemail.com"])
        .row(5, &["jane.doe@example.com"])
        .counts(4, 4, &[]),
        csv(
            "csv: a national number read in the upload's region",
            b"mobile\n06 12 34 56 78\n+1 415 555 0101\n",
        )
        .region("FR")
        .row(2, &["+33612345678", "33612345678"])
        .row(3, &["+14155550101", "14155550101"])
        .counts(2, 2, &[]),
        // CSV, hashed.
        csv(
            "csv: hashed columns in lowercase hex, uppercase hex and base64, either convention",
            b"EMAIL_SHA256,phone_sha256\n\
              <ann@example.com>,<+14155550101>\n\
              <HEX:janedoe@gmail.com>,<HEX:14155550102>\n\
              <B64:bob@example.org>,<B64:+14155550103>\n",
        )
        .row(2, &["ann@example.com", "+14155550101"])
        .row(3, &["janedoe@gmail.com", "14155550102"])
        .row(4, &["bob@example.org", "+14155550103"])
        .counts(3, 3, &[]),
        csv(
            "csv: a plain value in a hashed column is refused, never hashed",
            b"hashed_email,phone\n\
              ann@example.com,4155550101\n\
              (415) 555-0102,\n\
              5d41402abc4b2a76b9719d911017c592,\n\
              <ann@example.com>,\n",
        )
        .row(2, &["+14155550101", "14155550101"])
        .refused(3)
        .refused(4)
        .row(5, ANN)
        .counts(
            4,
            2,
            &[(DigestLooksLikeEmail, 1), (DigestLooksLikePhone, 1), (DigestLooksLikeMd5, 1)],
        ),
        // CSV, bad rows.
        csv(
            "csv: bad rows and cells are counted with their reasons",
            b"email,phone,id\n\
              ann@example.com,4155550101,1\n\
              ann@example.com,4155550101\n\
              ann@example.com,4155550101,1,extra\n\
              ann\xFF@example.com,4155550101,1\n\
              ann@example.com,4155550101,\xFF\n\
              ,,3\n\
              not-an-email,4155550101,4\n\
              not-an-email,12,5\n",
        )
        .row(2, ANN_PHONE)
        .refused(3)
        .refused(4)
        .refused(5)
        .row(6, ANN_PHONE)
        .refused(7)
        .row(8, &["+14155550101", "14155550101"])
        .refused(9)
        .counts(
            8,
            3,
            &[
                (WrongFieldCount, 2),
                (InvalidUtf8, 1),
                (NoIdentifier, 1),
                (EmailMissingAt, 2),
                (PhoneTooShort, 1),
            ],
        ),
        csv(
            "csv: BOM, CRLF, blank lines, semicolons, a quoted line break",
            b"\xEF\xBB\xBFnote;email\r\n\r\n\"a\r\nb\";ann@example.com\r\n  \r\nx;\"Ann@Example.com \"\r\n",
        )
        .row(3, ANN)
        .row(6, ANN)
        .counts(2, 2, &[]),
        csv("csv: a header and no rows", b"email\n\n").counts(0, 0, &[]),
        // NDJSON, raw.
        ndjson(
            "ndjson: raw email and phone, other fields ignored",
            br#"{"email":"Ann@Example.COM","phone":"(415) 555-0101","customer_id":42,"tags":["a",{"b":null}]}"#,
        )
        .row(1, ANN_PHONE)
        .counts(1, 1, &[]),
        ndjson(
            "ndjson: aliases, both Gmail forms, null and blank values",
            b"{\"E-Mail\":\"Jane.Doe+promo@GMail.com\",\"mobile\":null}\n\
              {\"Email Address\":\"janedoe@gmail.com\",\"phone_number\":\"\"}\n\
              {\"email\":null,\"tel\":\"+1 415 555 0101\"}\n\
              {\"mail\":\"ann\\u0040example.com\"}\n",
        )
        .row(1, &["jane.doe+promo@gmail.com", "janedoe@gmail.com"])
        .row(2, &["janedoe@gmail.com"])
        .row(3, &["+14155550101", "14155550101"])
        .row(4, ANN)
        .counts(4, 4, &[]),
        ndjson(
            "ndjson: hashed fields in every encoding",
            b"{\"email_sha256\":\"<ann@example.com>\",\"phone_sha256\":\"<HEX:14155550101>\"}\n\
              {\"HASHED_EMAIL\":\"<B64:janedoe@gmail.com>\"}\n\
              {\"phone_hash\":\" <+14155550101>\\t\"}\n",
        )
        .row(1, &["ann@example.com", "14155550101"])
        .row(2, &["janedoe@gmail.com"])
        .row(3, &["+14155550101"])
        .counts(3, 3, &[]),
        ndjson(
            "ndjson: a plain value in a hashed field is refused, the other identifier kept",
            b"{\"email_sha256\":\"ann@example.com\",\"phone\":\"4155550101\"}\n\
              {\"phone_sha256\":\"+1 415 555 0101\"}\n",
        )
        .row(1, &["+14155550101", "14155550101"])
        .refused(2)
        .counts(2, 1, &[(DigestLooksLikeEmail, 1), (DigestLooksLikePhone, 1)]),
        ndjson(
            "ndjson: lines without identifiers",
            b"{\"customer_id\":1}\n{}\n{\"email\":null,\"phone\":\" \"}\n{\"emails\":\"ann@example.com\"}\n",
        )
        .refused(1)
        .refused(2)
        .refused(3)
        .refused(4)
        .counts(4, 0, &[(NoIdentifier, 4)]),
        ndjson(
            "ndjson: lines that are not upload objects",
            b"[{\"email\":\"ann@example.com\"}]\n\
              email,phone\n\
              \"ann@example.com\"\n\
              {\"email\":\"ann@example.com\"\n\
              {\"email\":\"ann@example.com\"} {}\n\
              {\"phone\":4155550101}\n\
              {\"email\":[\"ann@example.com\"]}\n\
              {\"email\":\"ann@example.com\",\"mail\":\"bob@example.com\"}\n\
              {\"email\":\"ann@example.com\",\"email_sha256\":\"<ann@example.com>\"}\n\
              {\"email\":\"ann@example.com\",\"email\":\"ann@example.com\"}\n\
              {\"email\":\"ann@example.com\"}\n",
        )
        .refused(1)
        .refused(2)
        .refused(3)
        .refused(4)
        .refused(5)
        .refused(6)
        .refused(7)
        .refused(8)
        .refused(9)
        .refused(10)
        .row(11, ANN)
        .counts(11, 1, &[(MalformedJson, 10)]),
        ndjson(
            "ndjson: invalid UTF-8 refuses the line, wherever it is",
            b"{\"email\":\"ann\xFF@example.com\"}\n{\"note\":\"\xC3\x28\",\"email\":\"ann@example.com\"}\n\
              {\"email\":\"ann@example.com\"}\n",
        )
        .refused(1)
        .refused(2)
        .row(3, ANN)
        .counts(3, 1, &[(InvalidUtf8, 2)]),
        ndjson(
            "ndjson: bad cells are counted, the row's other identifier kept",
            b"{\"email\":\"not-an-email\",\"phone\":\"4155550101\"}\n\
              {\"email\":\"ann@example.com\",\"phone\":\"12\"}\n\
              {\"email\":\"a@b@example.com\",\"phone\":\"555-0101\"}\n",
        )
        .row(1, &["+14155550101", "14155550101"])
        .row(2, ANN)
        .refused(3)
        .counts(
            3,
            2,
            &[
                (EmailMissingAt, 1),
                (PhoneTooShort, 1),
                (EmailMultipleAt, 1),
                (PhoneLocalOnly, 1),
            ],
        ),
        ndjson(
            "ndjson: BOM, CRLF, blank and whitespace-only lines, no final line end",
            b"\xEF\xBB\xBF{\"email\":\"ann@example.com\"}\r\n\r\n \t\n\n{\"phone\":\"4155550101\"}\r\n\
              {\"email\":\"Ann@Example.com\"}",
        )
        .row(1, ANN)
        .row(5, &["+14155550101", "14155550101"])
        .row(6, ANN)
        .counts(3, 3, &[]),
        ndjson("ndjson: an empty body", b"").counts(0, 0, &[]),
        ndjson("ndjson: only blank lines", b"\n\r\n  \n").counts(0, 0, &[]),
    ]
}

#[test]
fn table() {
    for case in cases() {
        let body = expand(&case.body);
        let (rows, counts) = read_all(&body, case.format, case.region);
        let got: Vec<(u64, Vec<Sha256Digest>)> = rows
            .iter()
            .map(|row| (row.line(), row.digests().to_vec()))
            .collect();
        let expected: Vec<(u64, Vec<Sha256Digest>)> = case
            .rows
            .iter()
            .map(|(line, texts)| (*line, texts.iter().map(|t| sha(t)).collect()))
            .collect();
        // Sha256Digest's Debug is redacted: compare hex for a readable failure.
        let hex = |rows: &[(u64, Vec<Sha256Digest>)]| -> Vec<(u64, Vec<String>)> {
            rows.iter()
                .map(|(line, ds)| {
                    (
                        *line,
                        ds.iter().map(|d| d.to_hex().as_str().to_owned()).collect(),
                    )
                })
                .collect()
        };
        assert_eq!(hex(&got), hex(&expected), "{}", case.name);
        assert_eq!(counts, case.counts, "{}", case.name);
        for row in &rows {
            assert_eq!(
                row.is_accepted(),
                !row.digests().is_empty(),
                "{}",
                case.name
            );
        }
    }
}

#[test]
fn ndjson_lines_longer_than_the_limit_are_refused_without_being_kept() {
    let mut body = b"{\"email\":\"ann@example.com\"}\n{\"note\":\"".to_vec();
    body.extend(std::iter::repeat_n(b'x', MAX_ROW_BYTES + 10));
    body.extend_from_slice(b"\",\"email\":\"bob@example.com\"}\r\n");
    // Exactly at the limit, with a CRLF line end: it fits.
    let at_limit = b"{\"email\":\"ann@example.com\",\"n\":\"\"}";
    let mut line = at_limit[..at_limit.len() - 2].to_vec();
    line.extend(std::iter::repeat_n(b' ', MAX_ROW_BYTES - at_limit.len()));
    line.extend_from_slice(b"\"}\r\n");
    body.extend_from_slice(&line);
    // One byte over.
    let mut over = line.clone();
    over.insert(5, b' ');
    body.extend_from_slice(&over);
    body.extend_from_slice(b"{\"email\":\"ann@example.com\"}");

    let (rows, counts) = read_all(&body, UploadFormat::Ndjson, Region::US);
    let lines: Vec<(u64, usize)> = rows.iter().map(|r| (r.line(), r.digests().len())).collect();
    assert_eq!(lines, [(1, 1), (2, 0), (3, 1), (4, 0), (5, 1)]);
    assert_eq!(counts, self::counts(5, 3, &[(LineTooLong, 2)]));
}

/// Hands out `data` in small pieces, then fails.
struct Failing(&'static [u8]);

impl Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.0.is_empty() {
            return Err(io::Error::new(io::ErrorKind::ConnectionReset, "body cut"));
        }
        let n = buf.len().min(self.0.len()).min(7);
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

/// Whether an error is the one a case expects.
type Expect = fn(&ListError) -> bool;

#[test]
fn errors_are_about_the_upload_as_a_whole() {
    let csv_errors: &[(&[u8], Expect)] = &[
        (b"", |e| matches!(e, ListError::Empty)),
        (b"id,name\n1,Ann\n", |e| {
            matches!(e, ListError::NoIdentifierColumn { columns: 2 })
        }),
        (b"ann@example.com\n", |e| {
            matches!(e, ListError::HeaderLooksLikeData)
        }),
        (b"email,email_sha256\n", |e| {
            matches!(e, ListError::DuplicateIdentifierColumn { .. })
        }),
    ];
    for (body, expected) in csv_errors {
        let err = UploadReader::new(*body, UploadFormat::Csv, Region::US).unwrap_err();
        assert!(expected(&err), "{err:?}");
    }

    // A body cut in the middle: the rows before it are read, then the error, then nothing.
    for format in [UploadFormat::Csv, UploadFormat::Ndjson] {
        let body: &'static [u8] = match format {
            UploadFormat::Csv => b"email\nann@example.com\nbob@exa",
            UploadFormat::Ndjson => b"{\"email\":\"ann@example.com\"}\n{\"email\":\"bob@exa",
        };
        let mut reader = UploadReader::new(Failing(body), format, Region::US).unwrap();
        assert!(reader.next_row().unwrap().is_some_and(|r| r.is_accepted()));
        let err = reader.next_row().unwrap_err();
        assert!(matches!(err, ListError::Read { .. }), "{format:?}: {err:?}");
        assert!(reader.next_row().unwrap().is_none(), "{format:?}");
        assert_eq!(reader.counts().rows_received, 1);
    }

    // An unclosed quote would swallow the rest of the body into one record.
    let mut body = b"email,note\nann@example.com,\"open\n".to_vec();
    for _ in 0..(MAX_ROW_BYTES / 8) {
        body.extend_from_slice(b"bob@example.com,x\n\n");
    }
    for crlf in [false, true] {
        let body = if crlf {
            String::from_utf8(body.clone())
                .unwrap()
                .replace('\n', "\r\n")
                .into_bytes()
        } else {
            body.clone()
        };
        let mut reader = UploadReader::new(&body[..], UploadFormat::Csv, Region::US).unwrap();
        let err = reader.next_row().unwrap_err();
        assert!(
            matches!(err, ListError::RecordTooLong { line: 2, .. }),
            "crlf {crlf}: {err:?}"
        );
    }
    // Rows before it are read.
    let mut body = b"email\nann@example.com\nbob@example.com\n\"".to_vec();
    body.extend(std::iter::repeat_n(b'x', 2 * MAX_ROW_BYTES));
    let mut reader = UploadReader::new(&body[..], UploadFormat::Csv, Region::US).unwrap();
    assert!(reader.next_row().unwrap().is_some());
    assert!(reader.next_row().unwrap().is_some());
    let err = reader.next_row().unwrap_err();
    assert!(
        matches!(err, ListError::RecordTooLong { line: 4, .. }),
        "{err:?}"
    );
}

#[test]
fn the_reader_can_move_to_a_blocking_thread() {
    fn send<T: Send + 'static>(_: &T) {}
    let body: &'static [u8] = b"email\nann@example.com\n";
    let reader = UploadReader::new(body, UploadFormat::Csv, Region::US).unwrap();
    send(&reader);
    let counts = std::thread::spawn(move || {
        let mut reader = reader;
        while reader.next_row().unwrap().is_some() {}
        reader.into_counts()
    })
    .join()
    .unwrap();
    assert_eq!(counts, self::counts(1, 1, &[]));
}

#[test]
fn the_reader_is_an_iterator() {
    let body = b"{\"email\":\"ann@example.com\"}\n[]\n";
    let reader = UploadReader::new(&body[..], UploadFormat::Ndjson, Region::US).unwrap();
    let rows: Vec<UploadRow> = reader.map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
}

/// Distinctive values: finding any of them in a message can only mean it leaked.
const SECRETS: &[&str] = &[
    "zorblax",
    "fennimore",
    "4155550187",
    "555-0187",
    "0187",
    "plumtree",
    "88c1d",
];

fn assert_clean(what: &str, text: &str) {
    let lower = text.to_lowercase();
    for secret in SECRETS {
        assert!(
            !lower.contains(secret),
            "{what} contains {secret:?}: {text}"
        );
    }
}

#[test]
fn nothing_reported_carries_a_value() {
    let ndjson: &[u8] = b"{\"email\":\"zorblax@@example.org\",\"phone\":\"555-0187\"}\n\
        {\"email_sha256\":\"zorblax.fennimore@example.org\"}\n\
        {\"email\":\"zorblax@example.org\",\"mail\":\"fennimore@example.org\"}\n\
        {\"phone\":4155550187}\n\
        [\"zorblax@example.org\",\"plumtree\"]\n\
        {\"email\":\"zorblax\xFF@example.org\"}\n\
        {\"customer\":\"plumtree-88c1d\"}\n\
        {\"email\":\"Zorblax@Example.org\",\"phone\":\"(415) 555-0187\"}\n";
    let csv: &[u8] = b"email,phone,customer\n\
        zorblax@@example.org,555-0187,plumtree\n\
        zorblax@example.org,(415) 555-0187\n\
        zorblax\xFF@example.org,4155550187,88c1d\n\
        ,,plumtree\n\
        Zorblax@Example.org,(415) 555-0187,88c1d\n";
    for (format, body) in [(UploadFormat::Ndjson, ndjson), (UploadFormat::Csv, csv)] {
        let mut reader = UploadReader::new(body, format, Region::US).unwrap();
        while let Some(row) = reader.next_row().unwrap() {
            assert_clean("a row's debug form", &format!("{row:?}"));
        }
        assert_clean("the reader's debug form", &format!("{reader:?}"));
        let counts = reader.into_counts();
        assert!(counts.rejected.total() >= 5, "{format:?}: {counts:?}");
        assert_clean("the counts", &format!("{counts:?}"));
        for (reason, _) in counts.rejected.iter() {
            assert_clean("a reason", reason.message());
        }
    }

    // Errors of the upload as a whole.
    let headerless = UploadReader::new(
        &b"zorblax@example.org,plumtree\n"[..],
        UploadFormat::Csv,
        Region::US,
    )
    .unwrap_err();
    let cut = {
        let mut reader = UploadReader::new(
            Failing(b"{\"email\":\"zorblax@example.org\",\"n\":\"plumtree-"),
            UploadFormat::Ndjson,
            Region::US,
        )
        .unwrap();
        reader.next_row().unwrap_err()
    };
    let mut open_quote = b"email\n\"zorblax@example.org".to_vec();
    open_quote.extend(std::iter::repeat_n(b'x', 2 * MAX_ROW_BYTES));
    let too_long = UploadReader::new(&open_quote[..], UploadFormat::Csv, Region::US)
        .unwrap()
        .next_row()
        .unwrap_err();
    for err in [headerless, cut, too_long] {
        assert_clean("an error", &err.to_string());
        assert_clean("an error's debug form", &format!("{err:?}"));
    }
}

// Random rows, checked against `tailor_core`.

/// What a cell holds, and how to write it.
#[derive(Clone, Debug)]
enum Cell {
    Blank(String),
    /// Text for a raw column.
    Raw(String),
    /// For a hashed column: the digest of `preimage` in an encoding, or a misfit as written.
    Hashed {
        preimage: String,
        encoding: u8,
    },
    Misfit(String),
}

fn raw_email() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (
            "[ ]{0,2}",
            "[a-zA-Z][a-zA-Z0-9._+-]{0,10}",
            prop_oneof![
                Just("example.com"),
                Just("Example.ORG"),
                Just("gmail.com"),
                Just("GMail.com"),
                Just("googlemail.com"),
            ],
            "[ \t]{0,2}",
        )
            .prop_map(|(lead, local, domain, trail)| format!("{lead}{local}@{domain}{trail}")),
        1 => prop_oneof![
            Just("ann.example.com".to_owned()),
            Just("ann@".to_owned()),
            Just("@gmail.com".to_owned()),
            Just(".+x@gmail.com".to_owned()),
            Just("a@b@example.com".to_owned()),
            Just("ann lee@example.com".to_owned()),
            Just("Ünïcode@Exämple.com".to_owned()),
        ],
    ]
}

fn raw_phone() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (0u32..100, prop_oneof![
            Just("+1 415 555 01"),
            Just("(415) 555-01"),
            Just("4155550"),
            Just("+44 20 7946 01"),
            Just("+33 6 12 34 56 "),
        ])
            .prop_map(|(n, prefix)| format!("{prefix}{n:02}")),
        1 => prop_oneof![
            Just("555-0100".to_owned()),
            Just("12".to_owned()),
            Just("call me".to_owned()),
            Just("+1 415 555 0100 ext. 12".to_owned()),
            "[0-9]{1,16}",
        ],
    ]
}

fn cell(raw: impl Strategy<Value = String> + 'static, hashed: bool) -> BoxedStrategy<Cell> {
    if hashed {
        prop_oneof![
            4 => (raw, 0u8..4).prop_map(|(preimage, encoding)| Cell::Hashed { preimage, encoding }),
            1 => prop_oneof![
                Just("ann@example.com".to_owned()),
                Just("+1 415 555 0100".to_owned()),
                "[0-9a-f]{32}",
                "[0-9a-f]{63}",
                "[0-9A-Za-z+/]{43}!",
            ].prop_map(Cell::Misfit),
            1 => prop_oneof![Just(String::new()), Just("  ".to_owned())].prop_map(Cell::Blank),
        ]
        .boxed()
    } else {
        prop_oneof![
            5 => raw.prop_map(Cell::Raw),
            1 => prop_oneof![Just(String::new()), Just(" \t".to_owned())].prop_map(Cell::Blank),
        ]
        .boxed()
    }
}

impl Cell {
    fn text(&self) -> String {
        match self {
            Self::Blank(text) | Self::Raw(text) | Self::Misfit(text) => text.clone(),
            Self::Hashed { preimage, encoding } => {
                let digest = Sha256::digest(preimage.as_bytes());
                match encoding {
                    0 => hex::encode(digest),
                    1 => hex::encode_upper(digest),
                    2 => STANDARD.encode(digest),
                    _ => URL_SAFE.encode(digest),
                }
            }
        }
    }

    /// The digests `tailor_core` implies, or the reason it refuses the cell; `None` if blank.
    fn expected(&self, email: bool) -> Option<Result<Vec<Sha256Digest>, RejectReason>> {
        let text = self.text();
        Some(match self {
            Self::Blank(_) => return None,
            Self::Hashed { .. } | Self::Misfit(_) => Sha256Digest::parse(&text).map(|d| vec![d]),
            Self::Raw(_) if email => NormalizedEmail::parse(&text).map(|e| {
                let mut ds = vec![e.sha256()];
                ds.extend(e.gmail_canonical().map(|c| c.sha256()));
                ds
            }),
            Self::Raw(_) => E164Phone::parse(&text, Region::US)
                .map(|p| vec![p.sha256(PhoneFormat::E164), p.sha256(PhoneFormat::Digits)]),
        })
    }
}

/// A random upload: which columns are hashed, and rows of (email, phone).
fn upload() -> impl Strategy<Value = (bool, bool, Vec<(Cell, Cell)>)> {
    (any::<bool>(), any::<bool>()).prop_flat_map(|(email_hashed, phone_hashed)| {
        let row = (
            cell(raw_email(), email_hashed),
            cell(raw_phone(), phone_hashed),
        );
        (
            Just(email_hashed),
            Just(phone_hashed),
            proptest::collection::vec(row, 0..30),
        )
    })
}

fn csv_body(email_hashed: bool, phone_hashed: bool, rows: &[(Cell, Cell)]) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let email = if email_hashed {
        "email_sha256"
    } else {
        "email"
    };
    let phone = if phone_hashed {
        "phone_sha256"
    } else {
        "phone"
    };
    writer.write_record(["id", email, phone]).unwrap();
    for (i, (e, p)) in rows.iter().enumerate() {
        writer
            .write_record([i.to_string(), e.text(), p.text()])
            .unwrap();
    }
    writer.into_inner().unwrap()
}

fn ndjson_body(email_hashed: bool, phone_hashed: bool, rows: &[(Cell, Cell)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, (e, p)) in rows.iter().enumerate() {
        let mut object = serde_json::Map::new();
        object.insert("customer_id".into(), i.into());
        // A blank cell is left out, written as null or written as it is, by turns.
        let mut put = |name: &str, cell: &Cell| match (cell, i % 3) {
            (Cell::Blank(_), 0) => {}
            (Cell::Blank(_), 1) => {
                object.insert(name.into(), serde_json::Value::Null);
            }
            _ => {
                object.insert(name.into(), cell.text().into());
            }
        };
        put(
            if email_hashed {
                "hashed_email"
            } else {
                "E-Mail"
            },
            e,
        );
        put(
            if phone_hashed {
                "PHONE_SHA256"
            } else {
                "mobile"
            },
            p,
        );
        body.extend_from_slice(serde_json::to_string(&object).unwrap().as_bytes());
        body.push(b'\n');
    }
    body
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn digests_and_counts_are_what_the_core_computes(
        (email_hashed, phone_hashed, rows) in upload()
    ) {
        let mut expected = counts(rows.len() as u64, 0, &[]);
        let mut digests = Vec::new();
        for (e, p) in &rows {
            let cells = [e.expected(true), p.expected(false)];
            let mut row = Vec::new();
            for cell in cells.iter().flatten() {
                match cell {
                    Ok(ds) => row.extend(ds.iter().copied()),
                    Err(reason) => expected.rejected.add(*reason),
                }
            }
            if cells.iter().all(Option::is_none) {
                expected.rejected.add(NoIdentifier);
            }
            expected.rows_accepted += u64::from(!row.is_empty());
            digests.push(row);
        }

        let bodies = [
            (UploadFormat::Csv, csv_body(email_hashed, phone_hashed, &rows)),
            (UploadFormat::Ndjson, ndjson_body(email_hashed, phone_hashed, &rows)),
        ];
        for (format, body) in bodies {
            let (got, counts) = read_all(&body, format, Region::US);
            prop_assert_eq!(got.len(), rows.len());
            for (i, (row, want)) in got.iter().zip(&digests).enumerate() {
                let line = match format {
                    UploadFormat::Csv => i as u64 + 2,
                    UploadFormat::Ndjson => i as u64 + 1,
                };
                prop_assert_eq!(row.line(), line);
                prop_assert!(
                    row.digests() == want.as_slice(),
                    "{:?} row {}: {:?}", format, i, rows[i]
                );
            }
            prop_assert_eq!(&counts, &expected, "{:?}", format);
        }
    }
}
