//! Nothing `tailor hash` prints on stderr, nor anything in its rejects file, contains a value
//! from the list, whether the run succeeds or fails.
//!
//! The values are distinctive so that finding any piece of one can only mean it leaked.

use crate::support::{Scratch, arg, tailor};

const SECRETS: &[&str] = &[
    "vendelmoor",
    "Vendelmoor.Okapi@Example.org",
    "okapi",
    "xqj-lindqvist",
    "lindqvist",
    "4155550177",
    "555-0177",
    "555 0177",
    "0177",
    "+14155550177",
    "7946 0911",
    "Harrowgate-Tamsin",
    "tamsin",
];

#[track_caller]
fn assert_clean(what: &str, text: &str) {
    let lower = text.to_lowercase();
    for secret in SECRETS {
        assert!(
            !lower.contains(&secret.to_lowercase()),
            "{what} contains {secret:?}:\n{text}"
        );
    }
}

/// Every kind of refusal, made of the distinctive values.
const LIST: &[u8] = b"\
customer,email,phone
Harrowgate-Tamsin,Vendelmoor.Okapi@Example.org,(415) 555-0177
Harrowgate-Tamsin,vendelmoor.okapi.example.org,555-0177
Harrowgate-Tamsin,xqj-lindqvist@@example.com,+1 415 555 0177 ext. 4
Harrowgate-Tamsin,xqj lindqvist@example.com,7946 0911
Harrowgate-Tamsin,Vendelmoor.Okapi@Example.org,(415) 555-0177,tamsin
Harrowgate-Tamsin,Vendelmoor.Okapi@Example.org
Harrowgate-Tamsin,vendelmoor\xFF@example.org,4155550177
Harrowgate-Tamsin,,
";

#[test]
fn a_successful_run_prints_no_value() {
    let dir = Scratch::new("privacy");
    let input = dir.write("list.csv", LIST);
    let rejects = dir.path("rejects.csv");
    for extra in [&[][..], &["--keep", "customer"]] {
        let mut args = vec!["hash", "-i", arg(&input), "--rejects", arg(&rejects)];
        args.extend_from_slice(extra);
        let run = tailor(&args, b"");
        run.assert_success();
        assert_clean("stderr", &run.stderr);
        let rejects = std::fs::read_to_string(&rejects).unwrap();
        assert!(rejects.lines().count() > 8, "{rejects}");
        assert_clean("the rejects file", &rejects);
        if extra.is_empty() {
            assert_clean("stdout", &run.stdout);
        }
    }
}

#[test]
fn hashed_columns_refuse_plain_values_without_printing_them() {
    let list = b"email_sha256,phone_sha256\n\
                 Vendelmoor.Okapi@Example.org,(415) 555-0177\n\
                 xqj-lindqvist,4155550177\n";
    let dir = Scratch::new("privacy-hashed");
    let rejects = dir.path("rejects.csv");
    let run = tailor(["hash", "--rejects", arg(&rejects)], list);
    run.assert_success();
    assert_clean("stderr", &run.stderr);
    assert_clean("stdout", &run.stdout);
    assert_clean(
        "the rejects file",
        &std::fs::read_to_string(&rejects).unwrap(),
    );
}

#[test]
fn a_failed_run_prints_no_value() {
    let failing: &[(&[u8], &[&str])] = &[
        // No header row: the first row is data.
        (b"Vendelmoor.Okapi@Example.org,Harrowgate-Tamsin\n", &[]),
        (b"Harrowgate-Tamsin;(415) 555-0177\n", &[]),
        (
            b"Harrowgate-Tamsin\t+14155550177\txqj-lindqvist@example.com\n",
            &[],
        ),
        // Header problems after which data follows.
        (
            b"email,mail\nVendelmoor.Okapi@Example.org,xqj-lindqvist@example.com\n",
            &[],
        ),
        (b"name,id\nHarrowgate-Tamsin,4155550177\n", &[]),
        (
            b"email,customer\nVendelmoor.Okapi@Example.org,Harrowgate-Tamsin\n",
            &["--keep", "id"],
        ),
        (
            b"email,customer\nVendelmoor.Okapi@Example.org,Harrowgate-Tamsin\n",
            &["--keep", "email"],
        ),
    ];
    for (input, extra) in failing {
        let mut args = vec!["hash"];
        args.extend_from_slice(extra);
        let run = tailor(&args, input);
        run.assert_failure();
        assert_clean("stderr", &run.stderr);
        assert_eq!(run.stdout, "");
    }
}
