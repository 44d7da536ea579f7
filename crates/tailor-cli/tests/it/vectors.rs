//! `tailor hash` reproduces every public vector exactly, under each convention.
//!
//! The vectors are the platforms' own examples, kept in `tailor-core/tests/data`; here they go
//! through the whole program: a CSV file in, the digest columns out.

use std::path::Path;

use serde::Deserialize;

use crate::support::{Scratch, arg, tailor};

#[derive(Debug, Deserialize)]
struct File {
    vectors: Vec<Vector>,
}

#[derive(Debug, Deserialize)]
struct Vector {
    kind: String,
    raw: String,
    sha256: String,
    sha256_digits_only: Option<String>,
    sha256_gmail_canonical: Option<String>,
}

fn vectors() -> Vec<Vector> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tailor-core/tests/data/normalization.json");
    let text = std::fs::read_to_string(path).expect("the vector file");
    let file: File = serde_json::from_str(&text).expect("the vector file is JSON");
    assert!(file.vectors.iter().filter(|v| v.kind == "email").count() >= 8);
    assert!(file.vectors.iter().filter(|v| v.kind == "phone").count() >= 5);
    assert!(
        file.vectors
            .iter()
            .all(|v| v.kind == "email" || v.kind == "phone")
    );
    file.vectors
}

fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// One row per vector: its index, then the raw value in the email or the phone column.
fn list(vectors: &[Vector]) -> String {
    let mut csv = String::from("n,email,phone\n");
    for (n, v) in vectors.iter().enumerate() {
        let (email, phone) = if v.kind == "email" {
            (quoted(&v.raw), String::new())
        } else {
            (String::new(), quoted(&v.raw))
        };
        csv.push_str(&format!("{n},{email},{phone}\n"));
    }
    csv
}

/// Runs `tailor hash` on the vectors with `extra` options and checks every digest against
/// `expected(vector)`.
fn check(extra: &[&str], expected: impl Fn(&Vector) -> &str) {
    let vectors = vectors();
    let dir = Scratch::new("vectors");
    let input = dir.write("vectors.csv", list(&vectors));
    let output = dir.path("hashed.csv");
    let mut args = vec![
        "hash",
        "--input",
        arg(&input),
        "--output",
        arg(&output),
        "--keep",
        "n",
    ];
    args.extend_from_slice(extra);
    let run = tailor(&args, b"");
    run.assert_success();
    assert!(run.stdout.is_empty());

    let text = std::fs::read_to_string(&output).expect("the output file");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("email_sha256,phone_sha256,n"));
    let rows: Vec<Vec<&str>> = lines.map(|line| line.split(',').collect()).collect();
    assert_eq!(rows.len(), vectors.len());
    for (n, (v, row)) in vectors.iter().zip(&rows).enumerate() {
        let (got, empty) = if v.kind == "email" {
            (row[0], row[1])
        } else {
            (row[1], row[0])
        };
        assert_eq!(row[2], n.to_string());
        assert_eq!(got, expected(v), "{extra:?}: {:?}", v.raw);
        assert_eq!(empty, "", "{:?}", v.raw);
    }
    assert!(run.stderr.contains("rejected:      0"), "{}", run.stderr);
}

#[test]
fn default_options_reproduce_the_vectors() {
    check(&[], |v| &v.sha256);
}

#[test]
fn explicit_defaults_reproduce_the_vectors() {
    check(
        &[
            "--phone-format",
            "e164",
            "--email-form",
            "basic",
            "--region",
            "US",
        ],
        |v| &v.sha256,
    );
}

#[test]
fn digits_only_phones_reproduce_the_vectors() {
    let vectors = vectors();
    assert!(
        vectors
            .iter()
            .filter(|v| v.kind == "phone")
            .all(|v| v.sha256_digits_only.is_some())
    );
    check(&["--phone-format", "digits"], |v| match v.kind.as_str() {
        "phone" => v.sha256_digits_only.as_deref().unwrap(),
        _ => &v.sha256,
    });
}

#[test]
fn gmail_canonical_emails_reproduce_the_vectors() {
    assert!(vectors().iter().any(|v| v.sha256_gmail_canonical.is_some()));
    check(&["--email-form", "gmail-canonical"], |v| {
        v.sha256_gmail_canonical.as_deref().unwrap_or(&v.sha256)
    });
}
