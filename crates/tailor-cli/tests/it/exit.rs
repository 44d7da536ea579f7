//! Exit codes and messages: success with a summary naming every reason code, failure with one
//! clear message naming what went wrong.

use crate::support::{Scratch, arg, counts, summary, tailor};

#[test]
fn success_prints_a_summary_with_every_reason_code() {
    let list: &[u8] = b"\
email,phone,id
ann@example.com,(415) 555-0150,c1
ann.example.com,(415) 555-0151,c2
bob@example.com,(415) 555-0152,c3,extra
,,c4
carol@example.com,12,c5
dan@@example.com,+1 415 555 0153 ext. 9,c6
\"erin\xFF@example.com\",,c7
";
    let run = tailor(["hash", "--output", "-"], list);
    run.assert_success();
    assert_eq!(run.stdout.lines().count(), 1 + 7);
    assert_eq!(
        summary(&run.stderr),
        counts(
            7,
            2,
            2,
            &[
                ("email_missing_at", 1),
                ("email_multiple_at", 1),
                ("phone_too_short", 1),
                ("phone_has_extension", 1),
                ("invalid_utf8", 1),
                ("wrong_field_count", 1),
                ("no_identifier", 1),
            ]
        ),
        "{}",
        run.stderr
    );
    // Each reason comes with its explanation.
    assert!(run.stderr.contains("there is no '@'"), "{}", run.stderr);
}

#[test]
fn success_without_refusals_says_so() {
    let run = tailor(["hash"], b"email\nann@example.com\n");
    run.assert_success();
    assert_eq!(summary(&run.stderr), counts(1, 1, 0, &[]), "{}", run.stderr);
}

/// Runs `tailor hash` with `args` and checks that it fails with every piece of `message`.
#[track_caller]
fn fails_with(args: &[&str], stdin: &[u8], message: &[&str]) {
    let run = tailor(args, stdin);
    run.assert_failure();
    for piece in message {
        assert!(
            run.stderr.contains(piece),
            "{piece:?} missing from: {}",
            run.stderr
        );
    }
    // A failed run never prints a summary, and never hands out data on standard output.
    assert!(!run.stderr.contains("rows read"), "{}", run.stderr);
    assert_eq!(run.stdout, "");
}

#[test]
fn a_missing_input_file() {
    let dir = Scratch::new("missing");
    let path = dir.path("no-such-list.csv");
    fails_with(
        &["hash", "--input", arg(&path)],
        b"",
        &["tailor: error: cannot open", "no-such-list.csv"],
    );
}

#[test]
fn an_empty_input() {
    let dir = Scratch::new("empty");
    let path = dir.write("empty.csv", "");
    fails_with(
        &["hash", "--input", arg(&path)],
        b"",
        &["empty.csv", "the list is empty"],
    );
    fails_with(&["hash"], b"", &["standard input", "the list is empty"]);
    fails_with(&["hash"], b"\n\r\n\n", &["the list is empty"]);
}

#[test]
fn an_unknown_region() {
    fails_with(
        &["hash", "--region", "XX"],
        b"phone\n4155550154\n",
        &["XX", "region"],
    );
    fails_with(
        &["hash", "--region", "USA"],
        b"phone\n4155550154\n",
        &["USA"],
    );
}

#[test]
fn unknown_conventions() {
    fails_with(
        &["hash", "--phone-format", "plus"],
        b"phone\n4155550155\n",
        &["plus", "--phone-format"],
    );
    fails_with(
        &["hash", "--email-form", "dotless"],
        b"email\nann@example.com\n",
        &["dotless", "--email-form"],
    );
}

#[test]
fn header_problems() {
    fails_with(
        &["hash"],
        b"id,name\nc1,Ann\n",
        &["none of the 2 columns", "is an identifier column"],
    );
    fails_with(
        &["hash"],
        b"ann@example.com,Ann\n",
        &["looks like data, not a header"],
    );
    fails_with(
        &["hash"],
        b"email,mail\n",
        &["\"email\"", "\"mail\"", "keep one"],
    );
}

#[test]
fn keep_problems() {
    fails_with(
        &["hash", "--keep", "id,customer"],
        b"email,id\nann@example.com,c1\n",
        &["\"customer\"", "not in the header"],
    );
    fails_with(
        &["hash", "--keep", "Email"],
        b"email,id\nann@example.com,c1\n",
        &["\"Email\"", "cannot be kept"],
    );
}

#[test]
fn an_input_that_cannot_be_read() {
    // A directory opens but cannot be read.
    let dir = Scratch::new("unreadable");
    fails_with(
        &["hash", "--input", arg(&dir.path("."))],
        b"",
        &["tailor: error:", "line 1"],
    );
}

#[test]
fn an_output_that_cannot_be_created() {
    let dir = Scratch::new("uncreatable");
    let output = dir.path("no-such-dir/hashed.csv");
    fails_with(
        &["hash", "--output", arg(&output)],
        b"email\nann@example.com\n",
        &["cannot create", "hashed.csv"],
    );
    let rejects = dir.path("no-such-dir/rejects.csv");
    fails_with(
        &["hash", "--rejects", arg(&rejects)],
        b"email\nann@example.com\n",
        &["cannot create", "rejects.csv"],
    );
}
