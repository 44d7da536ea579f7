//! An uploaded row that matches no eligible account leaves nothing behind: after the job, no
//! file in the data directory (the database, its `-wal` and `-shm` files, the key file), nor
//! the server's log, holds any identifier of such a row in any form a reader could match:
//! raw, normalized, E.164 with and without `+` or as a national number, nor its SHA-256 as
//! lowercase or uppercase hex, base64 or the raw 32 bytes, nor even its keyed digest (HMAC
//! under the data directory's own key). Matched identifiers are stored only as keyed digests.
//!
//! The scan is shown able to fail: it finds an account id that is stored, the keyed digest of
//! every identifier that matched, and every encoding of a value planted in a file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use tailor_core::{IndexKey, Sha256Digest};
use tailor_engine::secret::{SecretSource, load_index_key};

use crate::server::{Served, fixed_tokens};
use crate::store::{self, with_store};
use crate::support::Scratch;

/// One person's identifier as it reaches the server, with every form a copy of it could
/// take: as written in the list, normalized, and each matching convention.
struct Identifier {
    forms: &'static [&'static str],
}

/// Identifiers in the list that reach no account at all: raw and hashed, emails (one Gmail,
/// whose canonical form is another string) and phones (both hashing conventions, a UK number,
/// and a phone sharing a row with an email that matches).
const STRANGERS: &[Identifier] = &[
    Identifier {
        forms: &[
            "Quentin.Ashgrove@Example.org",
            "quentin.ashgrove@example.org",
        ],
    },
    Identifier {
        forms: &[
            "(628) 555-0147",
            "+16285550147",
            "16285550147",
            "6285550147",
            "628 555 0147",
        ],
    },
    Identifier {
        forms: &[
            "T.Hollowmere+promo@gmail.com",
            "t.hollowmere+promo@gmail.com",
            "thollowmere@gmail.com",
        ],
    },
    // Sent as lowercase hex of the SHA-256 of the first form.
    Identifier {
        forms: &["sable.winterbourne@example.net"],
    },
    // Sent as base64 of the SHA-256.
    Identifier {
        forms: &["corvin.ellsworth@example.com"],
    },
    // Sent as uppercase hex of the SHA-256 of the Gmail-canonical form.
    Identifier {
        forms: &["juniperquayle@gmail.com"],
    },
    // Sent as hex of the SHA-256 of `+E.164` (Google, UID2).
    Identifier {
        forms: &["+16285550158", "16285550158", "6285550158"],
    },
    // Sent as hex of the SHA-256 of the digits without `+` (Meta, Snap, X).
    Identifier {
        forms: &["16285550169", "+16285550169", "6285550169"],
    },
    // Sent as uppercase hex of the SHA-256 of `+E.164`.
    Identifier {
        forms: &["+442079460177", "442079460177", "2079460177"],
    },
    // Raw, in the same row as an email that matches.
    Identifier {
        forms: &[
            "(628) 555-0182",
            "+16285550182",
            "16285550182",
            "6285550182",
        ],
    },
];

/// An identifier of a user that matches nothing: the email was collected for MFA, so it is
/// not eligible. Its keyed digest is stored (the platform imported it); no other form is.
const INELIGIBLE: Identifier = Identifier {
    forms: &["Ines.Varga@example.org", "ines.varga@example.org"],
};

/// Identifiers in the list that match eligible accounts, with the form whose SHA-256 the
/// list's row reached them by. They are stored as keyed digests, and in no other form.
const MATCHED: &[(Identifier, &str)] = &[
    (
        Identifier {
            forms: &[
                "MARLOWE.FENWICK@example.com",
                "Marlowe.Fenwick@Example.com",
                "marlowe.fenwick@example.com",
            ],
        },
        "marlowe.fenwick@example.com",
    ),
    (
        Identifier {
            forms: &["+14155550133", "14155550133", "4155550133"],
        },
        "+14155550133",
    ),
    (
        Identifier {
            forms: &[
                "Orla.Brightwater+news@gmail.com",
                "orla.brightwater+news@gmail.com",
                "orlabrightwater@gmail.com",
            ],
        },
        "orlabrightwater@gmail.com",
    ),
    (
        Identifier {
            forms: &["+14155550131", "14155550131", "4155550131"],
        },
        "14155550131",
    ),
];

/// The population: four named users and twenty others, in opt-out regions.
fn accounts() -> String {
    let mut lines = vec![
        r#"{"account_id":"pu-marlowe","region":"US","contacts":[{"kind":"email","value":"Marlowe.Fenwick@Example.com","context":"profile","verified":true},{"kind":"phone","value":"+1 415 555 0131","context":"profile","verified":true}]}"#.to_owned(),
        r#"{"account_id":"pu-nettle","region":"US-CA","contacts":[{"kind":"phone","value":"+1 415 555 0133","context":"profile","verified":true}]}"#.to_owned(),
        r#"{"account_id":"pu-orla","region":"US","contacts":[{"kind":"email","value":"Orla.Brightwater+news@gmail.com","context":"profile","verified":true}]}"#.to_owned(),
        r#"{"account_id":"pu-ines","region":"US","contacts":[{"kind":"email","value":"Ines.Varga@example.org","context":"mfa","verified":true}]}"#.to_owned(),
    ];
    for i in 0..20 {
        lines.push(format!(
            r#"{{"account_id":"pu-filler-{i:02}","region":"US","contacts":[{{"kind":"email","value":"filler.{i}@example.com","context":"profile","verified":true}}]}}"#
        ));
    }
    lines.join("\n") + "\n"
}

fn sha256(text: &str) -> Sha256Digest {
    Sha256Digest::of(text.as_bytes())
}

fn hex(text: &str) -> String {
    sha256(text).to_hex().as_str().to_owned()
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The list, in NDJSON (where each row names its own fields, so that raw and hashed values
/// mix): every stranger, the ineligible user, and four matching rows.
fn mixed_list() -> String {
    use serde_json::json;
    let rows = [
        json!({"email": "MARLOWE.FENWICK@example.com", "phone": "(628) 555-0182"}),
        json!({"email": "Quentin.Ashgrove@Example.org"}),
        json!({"phone": "(628) 555-0147"}),
        json!({"email": "T.Hollowmere+promo@gmail.com"}),
        json!({"email_sha256": hex("sable.winterbourne@example.net")}),
        json!({"email_sha256": base64(sha256("corvin.ellsworth@example.com").as_bytes())}),
        json!({"email_sha256": hex("juniperquayle@gmail.com").to_uppercase()}),
        json!({"phone_sha256": hex("+16285550158")}),
        json!({"phone_sha256": hex("16285550169")}),
        json!({"phone_sha256": hex("+442079460177").to_uppercase()}),
        json!({"email": "Ines.Varga@example.org"}),
        json!({"phone_sha256": hex("+14155550133")}),
        json!({"email_sha256": hex("orlabrightwater@gmail.com").to_uppercase()}),
        json!({"phone_sha256": base64(sha256("14155550131").as_bytes())}),
    ];
    rows.iter().map(|row| format!("{row}\n")).collect()
}

/// The plain forms of an identifier: each form as text (and lowercased), and the SHA-256 of
/// each as lowercase hex, uppercase hex, base64 and raw bytes.
fn plain_needles(identifier: &Identifier) -> Vec<(String, Vec<u8>)> {
    let mut needles = Vec::new();
    for form in identifier.forms {
        needles.push((format!("{form:?}"), form.as_bytes().to_vec()));
        let lower = form.to_lowercase();
        if lower != *form {
            needles.push((format!("{lower:?}"), lower.into_bytes()));
        }
        let digest = sha256(form);
        let hex = digest.to_hex().as_str().to_owned();
        needles.push((format!("sha256 hex of {form:?}"), hex.clone().into_bytes()));
        needles.push((
            format!("SHA256 HEX of {form:?}"),
            hex.to_uppercase().into_bytes(),
        ));
        needles.push((
            format!("sha256 base64 of {form:?}"),
            base64(digest.as_bytes()).into_bytes(),
        ));
        needles.push((
            format!("sha256 bytes of {form:?}"),
            digest.as_bytes().to_vec(),
        ));
    }
    needles
}

/// The keyed digests (raw bytes, as stored) of the SHA-256 of each form of an identifier.
fn keyed_needles(key: &IndexKey, identifier: &Identifier) -> Vec<(String, Vec<u8>)> {
    identifier
        .forms
        .iter()
        .map(|form| {
            (
                format!("keyed digest of {form:?}"),
                key.digest(&sha256(form)).as_bytes().to_vec(),
            )
        })
        .collect()
}

/// Byte strings to look for, indexed by their first two bytes so that a file is read once
/// whatever their number.
struct Needles {
    needles: Vec<(String, Vec<u8>)>,
    by_prefix: Vec<Vec<usize>>,
}

impl Needles {
    fn new(needles: Vec<(String, Vec<u8>)>) -> Self {
        let mut by_prefix = vec![Vec::new(); 1 << 16];
        for (n, (name, bytes)) in needles.iter().enumerate() {
            assert!(bytes.len() >= 2, "{name} is too short to look for");
            by_prefix[usize::from(u16::from_be_bytes([bytes[0], bytes[1]]))].push(n);
        }
        Self { needles, by_prefix }
    }

    /// The names of the needles found in `haystack`.
    fn found_in(&self, haystack: &[u8]) -> BTreeSet<&str> {
        let mut found = BTreeSet::new();
        for at in 0..haystack.len().saturating_sub(1) {
            let prefix = u16::from_be_bytes([haystack[at], haystack[at + 1]]);
            for &n in &self.by_prefix[usize::from(prefix)] {
                let (name, needle) = &self.needles[n];
                if haystack[at..].starts_with(needle) {
                    found.insert(name.as_str());
                }
            }
        }
        found
    }

    /// Each needle found in one of `files`, with the file.
    fn found_in_files(&self, files: &[PathBuf]) -> Vec<(String, String)> {
        let mut found = Vec::new();
        for file in files {
            let bytes = std::fs::read(file).unwrap();
            let name = file.file_name().unwrap().to_string_lossy();
            for needle in self.found_in(&bytes) {
                found.push((name.clone().into_owned(), needle.to_owned()));
            }
        }
        found
    }
}

/// Every file under `dir`, at any depth.
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
    found.sort();
    found
}

fn names(files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// What must be found nowhere: the strangers' identifiers in every form including the keyed
/// digest, and the users' identifiers in every plain form.
fn forbidden(key: &IndexKey) -> Needles {
    let mut needles = Vec::new();
    for stranger in STRANGERS {
        needles.extend(plain_needles(stranger));
        needles.extend(keyed_needles(key, stranger));
    }
    needles.extend(plain_needles(&INELIGIBLE));
    for (matched, _) in MATCHED {
        needles.extend(plain_needles(matched));
    }
    Needles::new(needles)
}

/// What must be found in the data directory: an account id, stored as it is, and the keyed
/// digest through which each matching row reached its account.
fn expected(key: &IndexKey) -> Needles {
    let mut needles = vec![("account id pu-nettle".to_owned(), b"pu-nettle".to_vec())];
    for (_, reached_by) in MATCHED {
        needles.push((
            format!("keyed digest of {reached_by:?}"),
            key.digest(&sha256(reached_by)).as_bytes().to_vec(),
        ));
    }
    Needles::new(needles)
}

/// Scans the data directory: nothing forbidden, everything expected.
#[track_caller]
fn assert_scan(data: &Path, key: &IndexKey, when: &str) {
    let files = files(data);
    let leaks = forbidden(key).found_in_files(&files);
    assert_eq!(leaks, vec![], "{when}: found in the data directory");
    let expected = expected(key);
    let found: BTreeSet<String> = expected
        .found_in_files(&files)
        .into_iter()
        .map(|(_, needle)| needle)
        .collect();
    let missing: Vec<&str> = expected
        .needles
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| !found.contains(*name))
        .collect();
    assert!(
        missing.is_empty(),
        "{when}: the scan of {:?} misses {missing:?}, so it proves nothing",
        names(&files)
    );
}

#[test]
fn the_scan_finds_every_form_of_a_planted_value() {
    let dir = Scratch::new("uploads-scan");
    let nested = dir.path("nested");
    std::fs::create_dir(&nested).unwrap();
    let key = IndexKey::from_secret(&[7; 32]).unwrap();
    let needles = plain_needles(&STRANGERS[1]);
    // Each encoding planted amid other bytes, in a file of its own, some of them nested.
    for (n, (_, bytes)) in needles.iter().enumerate() {
        let mut planted = vec![0xa5; 100 + n];
        planted.extend_from_slice(bytes);
        planted.extend_from_slice(&[0x5a; 7]);
        let parent = if n % 2 == 0 {
            dir.path("")
        } else {
            nested.clone()
        };
        std::fs::write(parent.join(format!("planted-{n}")), planted).unwrap();
    }
    let keyed = key.digest(&sha256("(628) 555-0147"));
    std::fs::write(nested.join("keyed"), keyed.as_bytes()).unwrap();

    let leaks = forbidden(&key).found_in_files(&files(&dir.path("")));
    let found: BTreeSet<&str> = leaks.iter().map(|(_, needle)| needle.as_str()).collect();
    for (name, _) in &needles {
        assert!(found.contains(name.as_str()), "{name} not found: {found:?}");
    }
    assert!(
        found.contains("keyed digest of \"(628) 555-0147\""),
        "{found:?}"
    );
    // Nothing else: the padding around the planted values matches no needle.
    assert_eq!(found.len(), needles.len() + 1, "{found:?}");
}

#[test]
fn rows_that_match_nothing_leave_no_trace_in_the_data_directory() {
    let dir = Scratch::new("uploads-privacy");
    let data = dir.path("data");
    let log = dir.path("serve.log");
    let server = Served::start(&data, &log, &fixed_tokens(), &["--min-audience-size", "1"]);
    let import = server.admin("POST", "/v1/admin/accounts", accounts().as_bytes());
    assert_eq!(import.status, 200, "{}", import.text());
    assert_eq!(import.json()["accounts"], 24, "{}", import.text());
    let (advertiser_id, api_key) = server.create_advertiser("Acme");
    let audience_id = server.create_audience(&api_key, "Customers");

    // A first job, so that the population has members before the list of interest.
    let fillers: String = (0..10)
        .map(|i| format!("filler.{i}@example.com\n"))
        .collect();
    let first = server.upload_csv(
        &api_key,
        &audience_id,
        "add",
        format!("email\n{fillers}").as_bytes(),
    );
    assert_eq!(server.wait_for_job(&api_key, &first)["state"], "succeeded");

    let path = format!("/v1/audiences/{audience_id}/uploads?op=add");
    let upload = server.typed(
        "POST",
        &path,
        Some(&api_key),
        "application/x-ndjson",
        mixed_list().as_bytes(),
    );
    assert_eq!(upload.status, 202, "{}", upload.text());
    let job_id = upload.json()["job_id"].as_str().unwrap().to_owned();
    let job = server.wait_for_job(&api_key, &job_id);
    assert_eq!(job["state"], "succeeded", "{job:#}");
    // Every row was read and accepted: the strangers were looked up, not refused.
    assert_eq!(job["rows_received"], 14, "{job:#}");
    assert_eq!(job["rows_accepted"], 14, "{job:#}");
    assert_eq!(job["rejected"], serde_json::json!({}), "{job:#}");

    let (key, source) = load_index_key(&data, None).unwrap();
    assert_eq!(source, SecretSource::File);

    // While the server runs, with the database's WAL and shared-memory files in place.
    let running = names(&files(&data));
    for name in ["tailor.db", "tailor.db-wal", "tailor.db-shm", "secret.key"] {
        assert!(
            running.iter().any(|n| n == name),
            "no {name} in {running:?}"
        );
    }
    assert_scan(&data, &key, "while the server runs");

    assert_eq!(server.stop().code(), Some(0));
    assert_scan(&data, &key, "after the server stopped");

    // Nor is anything of the list in the log.
    let log_leaks = forbidden(&key).found_in_files(&[log]);
    assert_eq!(log_leaks, vec![], "found in the log");

    // The matching rows did match: the audience holds exactly the accounts they reach.
    let members = with_store(&data, async |store| {
        let audience = store::audience(store, &advertiser_id, &audience_id).await;
        store::members(store, &audience).await
    });
    let mut expected: BTreeSet<String> = (0..10).map(|i| format!("pu-filler-{i:02}")).collect();
    expected.extend(["pu-marlowe", "pu-nettle", "pu-orla"].map(String::from));
    assert_eq!(members, expected);
}
