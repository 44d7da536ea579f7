//! Data-driven tests of `hash_list`: one table of inputs, each with the exact output, rejects
//! file and summary expected.
//!
//! Expected digests are written as `<normalized value>` (see `support::expand`), so each case
//! also says what the value must normalize to.

use tailor_core::RejectReason::{self, *};
use tailor_core::{EmailForm, PhoneFormat, Region};
use tailor_list::{HashOptions, HashSummary};

use crate::support::{expand, expand_str, options, run, summary};

struct Case {
    name: &'static str,
    input: &'static [u8],
    keep: &'static [&'static str],
    region: Region,
    phone_format: PhoneFormat,
    email_form: EmailForm,
    output: &'static str,
    rejects: &'static str,
    summary: HashSummary,
}

fn case(name: &'static str, input: &'static [u8]) -> Case {
    Case {
        name,
        input,
        keep: &[],
        region: Region::US,
        phone_format: PhoneFormat::E164,
        email_form: EmailForm::Basic,
        output: "",
        rejects: "",
        summary: HashSummary::default(),
    }
}

impl Case {
    fn keep(mut self, keep: &'static [&'static str]) -> Self {
        self.keep = keep;
        self
    }

    fn region(mut self, code: &str) -> Self {
        self.region = Region::parse(code).expect("a known region");
        self
    }

    fn phone_format(mut self, format: PhoneFormat) -> Self {
        self.phone_format = format;
        self
    }

    fn email_form(mut self, form: EmailForm) -> Self {
        self.email_form = form;
        self
    }

    /// The expected output, placeholders and all.
    fn output(mut self, output: &'static str) -> Self {
        self.output = output;
        self
    }

    /// The expected rejects file after its header line.
    fn rejects(mut self, rejects: &'static str) -> Self {
        self.rejects = rejects;
        self
    }

    fn summary(
        mut self,
        rows: u64,
        emails: u64,
        phones: u64,
        rejected: &[(RejectReason, u64)],
    ) -> Self {
        self.summary = summary(rows, emails, phones, rejected);
        self
    }

    fn options(&self, threads: usize) -> HashOptions {
        HashOptions {
            region: self.region,
            phone_format: self.phone_format,
            email_form: self.email_form,
            keep: self.keep.iter().map(|&k| k.to_owned()).collect(),
            ..options(threads)
        }
    }
}

fn cases() -> Vec<Case> {
    vec![
        // Delimiters, detected from the header row.
        case(
            "comma",
            b"email,phone,id\nAnn@Example.COM,(415) 555-0101,c1\n",
        )
        .keep(&["id"])
        .output("email_sha256,phone_sha256,id\n<ann@example.com>,<+14155550101>,c1\n")
        .summary(1, 1, 1, &[]),
        case(
            "semicolon, with commas inside cells",
            b"email;phone;name\nann@example.com;415.555.0102;Doe, Ann\n",
        )
        .keep(&["name"])
        .output("email_sha256,phone_sha256,name\n<ann@example.com>,<+14155550102>,\"Doe, Ann\"\n")
        .summary(1, 1, 1, &[]),
        case(
            "tab, with commas and semicolons inside cells",
            b"id\temail\tphone\nc1;x,y\tann@example.com\t+1 415 555 0103\n",
        )
        .keep(&["id"])
        .output("email_sha256,phone_sha256,id\n<ann@example.com>,<+14155550103>,\"c1;x,y\"\n")
        .summary(1, 1, 1, &[]),
        case(
            "a single column, no delimiter at all",
            b"Email\nann@example.com\nbob@example.org\n",
        )
        .output("email_sha256\n<ann@example.com>\n<bob@example.org>\n")
        .summary(2, 2, 0, &[]),
        // Byte-order mark.
        case(
            "UTF-8 BOM before a comma header",
            b"\xEF\xBB\xBFemail,id\nann@example.com,c1\n",
        )
        .keep(&["id"])
        .output("email_sha256,id\n<ann@example.com>,c1\n")
        .summary(1, 1, 0, &[]),
        case(
            "UTF-8 BOM before a semicolon header naming the first column",
            b"\xEF\xBB\xBFphone;id\n4155550104;c1\n",
        )
        .keep(&["id"])
        .output("phone_sha256,id\n<+14155550104>,c1\n")
        .summary(1, 0, 1, &[]),
        // Quoting.
        case(
            "quoted fields with embedded commas, quotes and newlines",
            b"id,email,note,phone\n\
              c1,\"ann@example.com\",\"has, comma\",4155550105\n\
              c2,bob@example.com,\"two\nlines, \"\"quoted\"\"\",4155550106\n\
              c3,not-an-email,x,4155550107\n\
              \"c4\",\"carol@example.com\",\"three\n\nlines\",\"555\"\n\
              c5,dan@example.org,,(415) 555-0108\n",
        )
        .keep(&["id", "note"])
        .output(
            "email_sha256,phone_sha256,id,note\n\
             <ann@example.com>,<+14155550105>,c1,\"has, comma\"\n\
             <bob@example.com>,<+14155550106>,c2,\"two\nlines, \"\"quoted\"\"\"\n\
             ,<+14155550107>,c3,x\n\
             <carol@example.com>,,c4,\"three\n\nlines\"\n\
             <dan@example.org>,<+14155550108>,c5,\n",
        )
        .rejects("5,email,email_missing_at\n6,phone,phone_too_short\n")
        .summary(5, 4, 4, &[(EmailMissingAt, 1), (PhoneTooShort, 1)]),
        case(
            "a rejected cell inside a multi-line record names the record's first line",
            b"note,email\n\"a\nb\nc\",bad-1\n\"d\ne\",bad-2\n",
        )
        // A record of one empty field is written `""`: an empty line would be read back as no
        // row at all.
        .output("email_sha256\n\"\"\n\"\"\n")
        .rejects("2,email,email_missing_at\n5,email,email_missing_at\n")
        .summary(2, 0, 0, &[(EmailMissingAt, 2)]),
        // Line ends.
        case(
            "CRLF line ends",
            b"email,phone,id\r\nann@example.com,4155550109,c1\r\nbad,4155550110,c2\r\n\
              bob@example.com,12,c3\r\n",
        )
        .keep(&["id"])
        .output(
            "email_sha256,phone_sha256,id\n\
             <ann@example.com>,<+14155550109>,c1\n\
             ,<+14155550110>,c2\n\
             <bob@example.com>,,c3\n",
        )
        .rejects("3,email,email_missing_at\n4,phone,phone_too_short\n")
        .summary(3, 2, 2, &[(EmailMissingAt, 1), (PhoneTooShort, 1)]),
        case(
            "CRLF inside a quoted field",
            b"email,note\r\nann@example.com,\"a\r\nb\"\r\nbad,c\r\n",
        )
        .keep(&["note"])
        .output("email_sha256,note\n<ann@example.com>,\"a\r\nb\"\n,c\n")
        .rejects("4,email,email_missing_at\n")
        .summary(2, 1, 0, &[(EmailMissingAt, 1)]),
        case("no line end after the last row", b"email\nann@example.com")
            .output("email_sha256\n<ann@example.com>\n")
            .summary(1, 1, 0, &[]),
        // Blank lines: skipped, not rows, but still lines.
        case(
            "blank lines between rows",
            b"email,id\n\nann@example.com,c1\n\n\nbad,c2\n\n",
        )
        .keep(&["id"])
        .output("email_sha256,id\n<ann@example.com>,c1\n,c2\n")
        .rejects("6,email,email_missing_at\n")
        .summary(2, 1, 0, &[(EmailMissingAt, 1)]),
        case("blank lines before the header", b"\n\nemail,id\nbad,c1\n")
            .keep(&["id"])
            .output("email_sha256,id\n,c1\n")
            .rejects("4,email,email_missing_at\n")
            .summary(1, 0, 0, &[(EmailMissingAt, 1)]),
        case(
            "whitespace-only lines are blank lines",
            b"email,id\n   \nbad,c1\n\t \r\nworse,c2\n",
        )
        .keep(&["id"])
        .output("email_sha256,id\n,c1\n,c2\n")
        .rejects("3,email,email_missing_at\n5,email,email_missing_at\n")
        .summary(2, 0, 0, &[(EmailMissingAt, 2)]),
        case(
            "blank CRLF lines",
            b"email,id\r\n\r\nbad,c1\r\n\r\n\r\nworse,c2\r\n",
        )
        .keep(&["id"])
        .output("email_sha256,id\n,c1\n,c2\n")
        .rejects("3,email,email_missing_at\n6,email,email_missing_at\n")
        .summary(2, 0, 0, &[(EmailMissingAt, 2)]),
        // Field counts.
        case(
            "rows with more and fewer fields than the header",
            b"email,phone,id\n\
              ann@example.com,4155550111,c1\n\
              bob@example.com,4155550112,c2,extra\n\
              carol@example.com,4155550113\n\
              dan@example.com,4155550114,c4\n",
        )
        .keep(&["id"])
        .output(
            "email_sha256,phone_sha256,id\n\
             <ann@example.com>,<+14155550111>,c1\n\
             ,,\n\
             ,,\n\
             <dan@example.com>,<+14155550114>,c4\n",
        )
        .rejects("3,,wrong_field_count\n4,,wrong_field_count\n")
        .summary(4, 2, 2, &[(WrongFieldCount, 2)]),
        // Invalid UTF-8.
        case(
            "invalid UTF-8 in an identifier cell refuses the row",
            b"email,phone,id\nann\xFF@example.com,4155550115,c1\nbob@example.com,4155550116,c2\n",
        )
        .keep(&["id"])
        .output(
            "email_sha256,phone_sha256,id\n\
             ,,\n\
             <bob@example.com>,<+14155550116>,c2\n",
        )
        .rejects("2,email,invalid_utf8\n")
        .summary(2, 1, 1, &[(InvalidUtf8, 1)]),
        case(
            "invalid UTF-8 in a kept cell refuses the row",
            b"email,id\nann@example.com,c\xC3\x281\nbob@example.com,c2\n",
        )
        .keep(&["id"])
        .output("email_sha256,id\n,\n<bob@example.com>,c2\n")
        .rejects("2,id,invalid_utf8\n")
        .summary(2, 1, 0, &[(InvalidUtf8, 1)]),
        case(
            "invalid UTF-8 in a column that is not used is fine",
            b"email,note,id\nann@example.com,\xFE\xFF,c1\n",
        )
        .keep(&["id"])
        .output("email_sha256,id\n<ann@example.com>,c1\n")
        .summary(1, 1, 0, &[]),
        // Empty cells.
        case(
            "empty identifier cells are skipped; a row with none is refused but kept",
            b"email,phone,id\nann@example.com,,c1\n,4155550117,c2\n  , \t,c3\n,,c4\n\"\",\"\",c5\n",
        )
        .keep(&["id"])
        .output(
            "email_sha256,phone_sha256,id\n\
             <ann@example.com>,,c1\n\
             ,<+14155550117>,c2\n\
             ,,c3\n\
             ,,c4\n\
             ,,c5\n",
        )
        .rejects("4,,no_identifier\n5,,no_identifier\n6,,no_identifier\n")
        .summary(5, 1, 1, &[(NoIdentifier, 3)]),
        case(
            "a row whose only identifiers are invalid is not a no_identifier row",
            b"email,phone\nbad,12\n",
        )
        .output("email_sha256,phone_sha256\n,\n")
        .rejects("2,email,email_missing_at\n2,phone,phone_too_short\n")
        .summary(1, 0, 0, &[(EmailMissingAt, 1), (PhoneTooShort, 1)]),
        // Already-hashed columns.
        case(
            "hashed columns: uppercase hex and base64 come out as lowercase hex",
            b"email_sha256,phone_sha256\n\
              <HEX:ann@example.com>,<B64:+14155550118>\n\
              <B64:bob@example.com>,<HEX:+14155550119>\n\
              \x20<carol@example.com>\t,\n",
        )
        .output(
            "email_sha256,phone_sha256\n\
             <ann@example.com>,<+14155550118>\n\
             <bob@example.com>,<+14155550119>\n\
             <carol@example.com>,\n",
        )
        .summary(3, 3, 2, &[]),
        case(
            "a plain value in a hashed column is refused, never hashed",
            b"Hashed_Email,phone_sha256\n\
              ann@example.com,4155550120\n\
              5d41402abc4b2a76b9719d911017c592,<HEX:+14155550121>\n",
        )
        .output("email_sha256,phone_sha256\n,\n,<+14155550121>\n")
        .rejects(
            "2,Hashed_Email,digest_looks_like_email\n\
             2,phone_sha256,digest_looks_like_phone\n\
             3,Hashed_Email,digest_looks_like_md5\n",
        )
        .summary(
            2,
            0,
            1,
            &[
                (DigestLooksLikeEmail, 1),
                (DigestLooksLikePhone, 1),
                (DigestLooksLikeMd5, 1),
            ],
        ),
        case(
            "a hashed email column beside a plain phone column",
            b"phone,email_sha256\n4155550122,<HEX:ann@example.com>\n",
        )
        .output("email_sha256,phone_sha256\n<ann@example.com>,<+14155550122>\n")
        .summary(1, 1, 1, &[]),
        // Conventions.
        case(
            "phone format e164",
            b"phone\n+1 415 555 0123\n(415) 555-0124\n",
        )
        .output("phone_sha256\n<+14155550123>\n<+14155550124>\n")
        .summary(2, 0, 2, &[]),
        case(
            "phone format digits",
            b"phone\n+1 415 555 0123\n(415) 555-0124\n",
        )
        .phone_format(PhoneFormat::Digits)
        .output("phone_sha256\n<14155550123>\n<14155550124>\n")
        .summary(2, 0, 2, &[]),
        case(
            "region reads national numbers",
            b"phone\n020 7946 0125\n+1 415 555 0126\n",
        )
        .region("GB")
        .output("phone_sha256\n<+442079460125>\n<+14155550126>\n")
        .summary(2, 0, 2, &[]),
        case(
            "email form basic",
            b"email\nAnn.Lee+promo@GMail.com\nann.lee+promo@example.com\n",
        )
        .output("email_sha256\n<ann.lee+promo@gmail.com>\n<ann.lee+promo@example.com>\n")
        .summary(2, 2, 0, &[]),
        case(
            "email form gmail-canonical",
            b"email\nAnn.Lee+promo@GMail.com\nann.lee+promo@example.com\nA.nn@googlemail.com\n",
        )
        .email_form(EmailForm::GmailCanonical)
        .output(
            "email_sha256\n\
             <annlee@gmail.com>\n\
             <ann.lee+promo@example.com>\n\
             <ann@googlemail.com>\n",
        )
        .summary(3, 3, 0, &[]),
        // Header only.
        case("a header and no rows", b"id,email,phone\n")
            .keep(&["ID"])
            .output("email_sha256,phone_sha256,id\n")
            .summary(0, 0, 0, &[]),
    ]
}

#[test]
fn table() {
    let mut failures = Vec::new();
    for case in cases() {
        let input = expand(case.input);
        let expected_output = expand_str(case.output);
        let expected_rejects = format!("line,column,reason\n{}", case.rejects);
        let mut previous: Option<String> = None;
        for threads in [1, 3] {
            let run = match crate::support::run(&input, &case.options(threads)) {
                Ok(run) => run,
                Err(err) => {
                    failures.push(format!("{} (threads {threads}): error: {err}", case.name));
                    continue;
                }
            };
            if run.output != expected_output {
                failures.push(format!(
                    "{} (threads {threads}): output\n  got:  {:?}\n  want: {:?}",
                    case.name, run.output, expected_output
                ));
            }
            if run.rejects != expected_rejects {
                failures.push(format!(
                    "{} (threads {threads}): rejects\n  got:  {:?}\n  want: {:?}",
                    case.name, run.rejects, expected_rejects
                ));
            }
            if run.summary != case.summary {
                failures.push(format!(
                    "{} (threads {threads}): summary\n  got:  {:?}\n  want: {:?}",
                    case.name, run.summary, case.summary
                ));
            }
            if let Some(previous) = &previous {
                assert_eq!(
                    previous, &run.output,
                    "{}: threads change the output",
                    case.name
                );
            }
            previous = Some(run.output);
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn no_rejects_sink_gives_the_same_output() {
    for case in cases() {
        let input = expand(case.input);
        let with = run(&input, &case.options(2)).unwrap();
        let mut output = Vec::new();
        let summary =
            tailor_list::hash_list(&input[..], &mut output, None, &case.options(2), &|_| {})
                .unwrap();
        assert_eq!(
            String::from_utf8(output).unwrap(),
            with.output,
            "{}",
            case.name
        );
        assert_eq!(summary, with.summary, "{}", case.name);
    }
}

#[test]
fn delimiter_is_detected() {
    let cases: [(&[u8], u8); 6] = [
        (b"email,phone\n", b','),
        (b"email;phone;id\n", b';'),
        (b"email\tphone\n", b'\t'),
        (b"\xEF\xBB\xBFemail;phone\r\n", b';'),
        (b"\"a,b\";email;phone\n", b';'),
        (b"email\n", b','),
    ];
    for (input, delimiter) in cases {
        let reader = tailor_list::ListReader::new(input).unwrap();
        assert_eq!(
            reader.delimiter(),
            delimiter,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}
