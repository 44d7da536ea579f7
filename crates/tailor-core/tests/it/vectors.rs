//! The public normalization vectors from the platforms' own guides, as a data-driven test.
//!
//! The vectors live in `tests/data/normalization.json`, a copy of
//! `../shared/vectors/normalization.json`; when the shared file is present (on developer
//! machines and in CI) the copy must be identical, so the two cannot drift apart.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use tailor_core::{E164Phone, EmailForm, NormalizedEmail, PhoneFormat, Region};

#[derive(Debug, Deserialize)]
struct File {
    vectors: Vec<Vector>,
}

#[derive(Debug, Deserialize)]
struct Vector {
    kind: String,
    raw: String,
    normalized_e164_or_email: String,
    sha256: String,
    digits_only: Option<String>,
    sha256_digits_only: Option<String>,
    gmail_canonical: Option<String>,
    sha256_gmail_canonical: Option<String>,
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn vectors() -> Vec<Vector> {
    let text = std::fs::read_to_string(data_dir().join("normalization.json")).unwrap();
    let file: File = serde_json::from_str(&text).unwrap();
    assert!(file.vectors.len() >= 15, "the vector file lost entries");
    file.vectors
}

#[test]
fn copy_matches_the_shared_vectors() {
    let shared =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors/normalization.json");
    let Ok(shared) = std::fs::read(&shared) else {
        // A user's clone has no `../shared`; the copy in the repository is then the reference.
        return;
    };
    let copy = std::fs::read(data_dir().join("normalization.json")).unwrap();
    assert!(
        shared == copy,
        "tests/data/normalization.json differs from ../shared/vectors; copy it again"
    );
}

#[test]
fn emails_reproduce_the_vectors() {
    let mut seen = 0;
    for v in vectors().iter().filter(|v| v.kind == "email") {
        let email = NormalizedEmail::parse(&v.raw).unwrap();
        assert_eq!(email.as_str(), v.normalized_e164_or_email, "{}", v.raw);
        assert_eq!(email.sha256().to_hex().as_str(), v.sha256, "{}", v.raw);
        let canonical = email.in_form(EmailForm::GmailCanonical);
        match (&v.gmail_canonical, &v.sha256_gmail_canonical) {
            (Some(form), Some(hash)) => {
                assert_eq!(canonical.as_str(), form, "{}", v.raw);
                assert_eq!(canonical.sha256().to_hex().as_str(), hash, "{}", v.raw);
            }
            _ => assert_eq!(canonical.as_str(), email.as_str(), "{}", v.raw),
        }
        seen += 1;
    }
    assert!(seen >= 10);
}

#[test]
fn phones_reproduce_the_vectors() {
    let mut seen = 0;
    for v in vectors().iter().filter(|v| v.kind == "phone") {
        let phone = E164Phone::parse(&v.raw, Region::US).unwrap();
        assert_eq!(phone.e164(), v.normalized_e164_or_email, "{}", v.raw);
        assert_eq!(phone.sha256(PhoneFormat::E164).to_hex().as_str(), v.sha256);
        let digits = v.digits_only.as_deref().unwrap();
        assert_eq!(phone.digits(), digits);
        let hash = v.sha256_digits_only.as_deref().unwrap();
        assert_eq!(phone.sha256(PhoneFormat::Digits).to_hex().as_str(), hash);
        seen += 1;
    }
    assert!(seen >= 5);
}
