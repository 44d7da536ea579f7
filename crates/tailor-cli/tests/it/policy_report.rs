//! `tailor policy report`: the record of processing of the shipped policy is the checked-in
//! Markdown (so that a change to it shows in review), its JSON carries the policy's version
//! and every purpose, a custom policy gets its own record, and a policy with problems fails
//! exactly as `tailor policy check` does.

use serde_json::Value;
use tailor_core::Policy;
use tailor_core::policy::DEFAULT_POLICY;
use tailor_engine::advertising::MAX_TTL_DAYS;

use crate::support::{Scratch, arg, tailor};

const EXPECTED: &str = include_str!("data/policy_report_default.md");

#[test]
fn the_shipped_policy_s_record_is_the_checked_in_markdown() {
    let dir = Scratch::new("policy-report-md");
    let report = tailor(["policy", "report"], b"");
    report.assert_success();
    assert_eq!(report.stderr, "");
    assert!(
        report.stdout == EXPECTED,
        "the record changed; if that is intended, run\n  cargo run -q --bin tailor -- policy \
         report > crates/tailor-cli/tests/it/data/policy_report_default.md\nand review the \
         diff.\n{}",
        report.stdout
    );

    // The shipped policy as a file gives the same record, and `--format markdown` is the
    // default.
    let file = dir.write("default.toml", DEFAULT_POLICY);
    let from_file = tailor(
        ["policy", "report", arg(&file), "--format", "markdown"],
        b"",
    );
    from_file.assert_success();
    assert_eq!(from_file.stdout, report.stdout);

    assert!(
        report
            .stdout
            .contains(&format!("`{}`", Policy::shipped().version()))
    );
    assert!(report.stdout.contains(&format!(
        "1 to {MAX_TTL_DAYS} days, {MAX_TTL_DAYS} by default"
    )));
}

#[test]
fn the_json_record_carries_the_version_and_every_purpose() {
    let report = tailor(["policy", "report", "--format", "json"], b"");
    report.assert_success();
    let json: Value = serde_json::from_str(&report.stdout).unwrap();
    let policy = Policy::shipped();
    assert_eq!(json["policy_version"], policy.version().to_hex());

    let purposes = json["purposes"].as_array().unwrap();
    let keys: Vec<&str> = purposes
        .iter()
        .map(|p| p["purpose"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = policy.purposes().map(|(p, _)| p.as_str()).collect();
    assert_eq!(keys, expected);
    for (purpose, rule) in policy.purposes() {
        let entry = purposes
            .iter()
            .find(|p| p["purpose"] == purpose.as_str())
            .unwrap();
        assert_eq!(entry["description"], rule.description.as_str());
        let contexts: Vec<&str> = rule.contexts.iter().map(|c| c.as_str()).collect();
        assert_eq!(entry["contexts"], serde_json::json!(contexts));
    }
    let targeted = purposes
        .iter()
        .find(|p| p["purpose"] == "marketing.advertising.third_party.targeted")
        .unwrap();
    assert_eq!(targeted["audience_matching"], true);
    assert_eq!(targeted["legal_bases"][0]["regime"], "opt_in");
    assert_eq!(targeted["legal_bases"][0]["basis"], "consent");
    assert!(
        targeted["legal_bases"][0]["regions"]
            .as_array()
            .unwrap()
            .contains(&Value::from("DE"))
    );
    assert_eq!(targeted["legal_bases"][1]["regime"], "opt_out");
    assert_eq!(targeted["legal_bases"][1]["every_other_region"], true);

    let keys = |section: &str| -> Vec<String> {
        json[section]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["key"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        keys("recipients"),
        ["platform", "ad_serving", "advertisers"]
    );
    assert_eq!(keys("transfers"), ["none"]);
    assert!(keys("safeguards").contains(&"security_contexts".to_owned()));
    let retention = json["retention"].as_array().unwrap();
    let memberships = retention
        .iter()
        .find(|item| item["key"] == "memberships")
        .unwrap();
    assert!(
        memberships["text"]
            .as_str()
            .unwrap()
            .contains(&format!("{MAX_TTL_DAYS} by default"))
    );
    assert!(
        memberships["enforced_by"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["item"] == "MAX_TTL_DAYS")
    );
}

#[test]
fn a_custom_policy_gets_its_own_record() {
    let dir = Scratch::new("policy-report-custom");
    let text = "[purposes.\"essential.service.security\"]\n\
                description = \"Two-factor authentication only.\"\n\
                contexts = [\"mfa\"]\n\
                consent = { default = \"not_required\" }\n";
    let file = dir.write("security.toml", text);
    let report = tailor(["policy", "report", arg(&file), "--format", "json"], b"");
    report.assert_success();
    let json: Value = serde_json::from_str(&report.stdout).unwrap();
    assert_eq!(
        json["policy_version"],
        Policy::parse(text).unwrap().version().to_hex()
    );
    assert_eq!(json["purposes"].as_array().unwrap().len(), 1);
    assert_eq!(
        json["purposes"][0]["description"],
        "Two-factor authentication only."
    );
    // Nothing is matched under this policy, so advertisers and ad serving receive nothing.
    let recipients: Vec<&str> = json["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["key"].as_str().unwrap())
        .collect();
    assert_eq!(recipients, ["platform"]);

    let markdown = tailor(["policy", "report", arg(&file)], b"");
    markdown.assert_success();
    assert!(markdown.stdout.contains("### `essential.service.security`"));
    assert!(!markdown.stdout.contains("marketing.advertising"));
}

#[test]
fn a_policy_with_problems_fails_the_report_as_check_does() {
    let dir = Scratch::new("policy-report-bad");
    let policy = DEFAULT_POLICY.replacen(
        "contexts = [\"profile\"]",
        "contexts = [\n  \"profile\",\n  \"mfa\",\n]",
        1,
    );
    assert_ne!(policy, DEFAULT_POLICY);
    let line = policy.lines().position(|l| l.trim() == "\"mfa\",").unwrap() + 1;
    let file = dir.write("mfa.toml", &policy);
    for format in ["markdown", "json"] {
        let report = tailor(["policy", "report", arg(&file), "--format", format], b"");
        assert_eq!(report.code, Some(1), "{report:#?}");
        assert_eq!(report.stdout, "", "no record for a refused policy");
        let expected = format!("{}:{line}: `mfa` is a security context", arg(&file));
        assert!(report.stderr.starts_with(&expected), "{report:#?}");
        let check = tailor(["policy", "check", arg(&file)], b"");
        assert_eq!(report.stderr, check.stderr);
    }

    let missing = tailor(["policy", "report", arg(&dir.path("nowhere.toml"))], b"");
    missing.assert_failure();
    assert_eq!(missing.stdout, "");

    let unknown = tailor(["policy", "report", "--format", "xml"], b"");
    assert_eq!(unknown.code, Some(2), "{unknown:#?}");
}
