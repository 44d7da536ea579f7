//! Conformance of `E164Phone::parse` with libphonenumber, on synthetic numbers.
//!
//! `tests/data/phone_conformance.json` holds a few thousand generated phone strings with what
//! Python's `phonenumbers` makes of them (see `gen_phone_conformance.py` beside it for how to
//! regenerate it). Every case must match, except the few listed in `KNOWN_DIFFERENCES`, which
//! must still come out exactly as listed: a known difference that starts matching (or changes)
//! fails the test, so the list cannot go stale. All mismatches are collected and reported
//! together.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;
use tailor_core::{E164Phone, Region};

#[derive(Debug, Deserialize)]
struct File {
    phonenumbers_version: String,
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
struct Case {
    form: String,
    raw: String,
    region: String,
    e164: Option<String>,
    reason: Option<String>,
}

/// Cases where `E164Phone::parse` differs from libphonenumber, on purpose or because the
/// `phonenumber` crate cannot be corrected from outside: `(raw, region, what E164Phone::parse
/// returns)`. Each must still come out exactly so; one that starts to match (or to differ in
/// another way) fails the test until it is removed or updated here.
const KNOWN_DIFFERENCES: &[(&str, &str, &str)] = &[
    // Deliberate: libphonenumber's result is not stable (its own E.164 form reads as another
    // number, here the one on the right); Tailor returns that second reading so that every
    // E.164 form it produces reads back as itself. A national prefix written twice:
    ("+49 0 030 1234567", "US", "+49301234567"),
    // Invalid numbers that start with a national prefix (`8` in Belarus, `0` on the Isle of
    // Man, the carrier code `1831` for the Cocos Islands, read with Australia's rules):
    ("8 847 830 5015", "BY", "+375478305015"),
    ("0551 276878", "IM", "+44551276878"),
    ("1831 828 055", "CC", "+61828055"),
    // The crate cannot hold a national number made only of zeros (it parses the digits after
    // the leading zeros as an integer), so it is not a number; libphonenumber judges its
    // length.
    ("000", "US", "rejected: phone_not_a_number"),
    ("000", "GB", "rejected: phone_not_a_number"),
    ("000", "FR", "rejected: phone_not_a_number"),
    ("000", "DE", "rejected: phone_not_a_number"),
];

/// What a parse gave, in the JSON's terms: the E.164 string or the reason's code.
fn outcome(e164: Option<&str>, reason: Option<&str>) -> String {
    match (e164, reason) {
        (Some(e164), None) => e164.to_owned(),
        (None, Some(reason)) => format!("rejected: {reason}"),
        _ => "malformed case".to_owned(),
    }
}

fn cases() -> File {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/phone_conformance.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    let file: File = serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("malformed {}: {error}", path.display()));
    assert!(file.cases.len() >= 2500, "the conformance file lost cases");
    file
}

#[test]
fn parse_agrees_with_libphonenumber() {
    let file = cases();
    let known: HashMap<(&str, &str), &str> = KNOWN_DIFFERENCES
        .iter()
        .map(|&(raw, region, ours)| ((raw, region), ours))
        .collect();
    assert_eq!(
        known.len(),
        KNOWN_DIFFERENCES.len(),
        "duplicate known differences"
    );
    let mut mismatches = Vec::new();
    let mut stale = Vec::new();
    let mut known_seen = HashSet::new();
    for case in &file.cases {
        let region = Region::parse(&case.region)
            .unwrap_or_else(|| panic!("region {} unknown to the phonenumber crate", case.region));
        let want = outcome(case.e164.as_deref(), case.reason.as_deref());
        let got = match E164Phone::parse(&case.raw, region) {
            Ok(phone) => outcome(Some(phone.e164()), None),
            Err(reason) => outcome(None, Some(reason.code())),
        };
        let key = (case.raw.as_str(), case.region.as_str());
        match known.get(&key) {
            Some(&ours) => {
                known_seen.insert(key);
                if got == want || got != ours {
                    stale.push(format!(
                        "{:?} in {}: libphonenumber {want}, listed {ours}, now {got}",
                        case.raw, case.region
                    ));
                }
            }
            None if got != want => mismatches.push(format!(
                "{:<20} {:?} in {}: want {want}, got {got}",
                case.form, case.raw, case.region
            )),
            None => {}
        }
    }
    let missing: Vec<_> = known
        .keys()
        .filter(|key| !known_seen.contains(*key))
        .collect();

    let mut report = String::new();
    if !mismatches.is_empty() {
        let _ = writeln!(
            report,
            "{} of {} cases differ from phonenumbers {}; the first {}:",
            mismatches.len(),
            file.cases.len(),
            file.phonenumbers_version,
            mismatches.len().min(30)
        );
        for line in mismatches.iter().take(30) {
            let _ = writeln!(report, "  {line}");
        }
    }
    if !stale.is_empty() {
        let _ = writeln!(
            report,
            "{} known differences no longer come out as listed; update KNOWN_DIFFERENCES:",
            stale.len()
        );
        for line in &stale {
            let _ = writeln!(report, "  {line}");
        }
    }
    if !missing.is_empty() {
        let _ = writeln!(
            report,
            "known differences not in the data file: {missing:?}"
        );
    }
    assert!(report.is_empty(), "\n{report}");
}
