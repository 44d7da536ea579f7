//! After an import through the API, no file in the data directory (the database, its WAL and
//! shared-memory files, the key file) holds a fixture's email or phone, in any form a reader
//! could match: raw, normalized, Gmail-canonical, E.164 with and without `+`, nor their plain
//! SHA-256 (hex in either case, base64, or the raw 32 bytes).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use tailor_core::Sha256Digest;

use crate::support::App;

/// Every value of the fixtures, as written in the body and in each normalized form.
const VALUES: &[&str] = &[
    "Quillon.Marsh@Example.com",
    "quillon.marsh@example.com",
    "Tamsin.Rook+ads@gmail.com",
    "tamsin.rook+ads@gmail.com",
    "tamsinrook@gmail.com",
    "+1 (415) 555-0142",
    "+14155550142",
    "14155550142",
    "4155550142",
    "415 555 0142",
    "020 7946 0143",
    "+442079460143",
    "442079460143",
    "2079460143",
];

fn body() -> String {
    [
        r#"{"account_id":"u-privacy-1","region":"US","contacts":[{"kind":"email","value":"Quillon.Marsh@Example.com","context":"profile","verified":true},{"kind":"phone","value":"+1 (415) 555-0142","context":"mfa","verified":true}]}"#,
        r#"{"account_id":"u-privacy-2","region":"GB","contacts":[{"kind":"email","value":"Tamsin.Rook+ads@gmail.com","context":"profile","verified":true},{"kind":"phone","value":"020 7946 0143","context":"profile","verified":true}],"consents":[{"purpose":"marketing.advertising.third_party.targeted","state":"granted","source":"settings","at":"2026-01-05T10:00:00Z"}]}"#,
    ]
    .join("\n")
}

/// The byte strings that must not appear.
fn needles() -> Vec<(String, Vec<u8>)> {
    let mut needles = Vec::new();
    for value in VALUES {
        needles.push((format!("{value:?}"), value.as_bytes().to_vec()));
        let lower = value.to_lowercase();
        needles.push((format!("{lower:?}"), lower.clone().into_bytes()));
        let digest = Sha256Digest::of(value.as_bytes());
        let hex = digest.to_hex().as_str().to_owned();
        needles.push((format!("sha256 hex of {value:?}"), hex.clone().into_bytes()));
        needles.push((
            format!("SHA256 HEX of {value:?}"),
            hex.to_uppercase().into_bytes(),
        ));
        needles.push((
            format!("sha256 base64 of {value:?}"),
            base64::engine::general_purpose::STANDARD
                .encode(digest.as_bytes())
                .into_bytes(),
        ));
        needles.push((
            format!("sha256 bytes of {value:?}"),
            digest.as_bytes().to_vec(),
        ));
    }
    needles
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files(&path));
        } else {
            found.push(path);
        }
    }
    found
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every needle found in a file of `dir`, as (file, needle).
fn leaks(dir: &Path) -> Vec<(PathBuf, String)> {
    let needles = needles();
    let mut leaks = Vec::new();
    for file in files(dir) {
        let bytes = std::fs::read(&file).unwrap();
        for (name, needle) in &needles {
            if contains(&bytes, needle) {
                leaks.push((file.clone(), name.clone()));
            }
        }
    }
    leaks
}

/// Whether any file of `dir` holds `text`.
fn anywhere(dir: &Path, text: &str) -> bool {
    files(dir)
        .iter()
        .any(|f| contains(&std::fs::read(f).unwrap(), text.as_bytes()))
}

#[test]
fn the_scan_finds_what_is_there() {
    // The scan itself must be able to fail: a planted value and digest are found.
    let app_dir = crate::support::Scratch::new("privacy-scan");
    let sub = app_dir.path().join("nested");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::write(sub.join("a"), b"xx tamsinrook@gmail.com xx").unwrap();
    std::fs::write(
        app_dir.path().join("b"),
        Sha256Digest::of(b"+14155550142").as_bytes(),
    )
    .unwrap();
    let found: Vec<String> = leaks(app_dir.path()).into_iter().map(|(_, n)| n).collect();
    assert!(
        found.contains(&"\"tamsinrook@gmail.com\"".to_owned()),
        "{found:?}"
    );
    assert!(
        found.contains(&"sha256 bytes of \"+14155550142\"".to_owned()),
        "{found:?}"
    );
}

#[tokio::test]
async fn no_file_in_the_data_directory_holds_a_contact_value_or_its_plain_digest() {
    let app = App::new("privacy").await;
    let summary = app.import(&body()).await;
    assert_eq!(summary["accounts"], 2, "{summary:#}");
    assert_eq!(summary["contact_points"], 4, "{summary:#}");
    assert!(app.indexed("tamsinrook@gmail.com"));
    assert!(app.indexed("+442079460143"));
    let dir = app.data_dir();

    // While the store is open, with its WAL and shared-memory files in place. The account ids
    // (the platform's opaque ids, stored as they are) are found: the scan reads the data.
    let names: Vec<String> = files(&dir)
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        anywhere(&dir, "u-privacy-2"),
        "the scan sees no data in {names:?}"
    );
    assert_eq!(leaks(&dir), vec![], "files: {names:?}");

    // And once it is closed.
    let scratch = app.close();
    assert!(anywhere(&dir, "u-privacy-1"));
    assert_eq!(leaks(&dir), vec![]);
    drop(scratch);
}
