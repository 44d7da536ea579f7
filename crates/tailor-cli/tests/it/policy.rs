//! `tailor policy show` and `tailor policy check`: the shipped policy passes; a policy that
//! lists a security context for marketing fails, naming the file and the line.

use tailor_core::Policy;
use tailor_core::policy::DEFAULT_POLICY;

use crate::support::{Scratch, arg, tailor};

#[test]
fn the_shipped_policy_passes_its_check() {
    let dir = Scratch::new("policy-shipped");
    let show = tailor(["policy", "show"], b"");
    show.assert_success();
    assert_eq!(show.stdout, DEFAULT_POLICY);
    let file = dir.write("default.toml", &show.stdout);
    let check = tailor(["policy", "check", arg(&file)], b"");
    check.assert_success();
    assert_eq!(
        check.stdout.trim(),
        format!("ok: {}", Policy::shipped().version())
    );
}

#[test]
fn a_policy_listing_mfa_for_marketing_fails_naming_the_line() {
    let dir = Scratch::new("policy-mfa");
    let policy = DEFAULT_POLICY.replacen(
        "contexts = [\"profile\"]",
        "contexts = [\n  \"profile\",\n  \"mfa\",\n]",
        1,
    );
    assert_ne!(policy, DEFAULT_POLICY);
    let line = policy.lines().position(|l| l.trim() == "\"mfa\",").unwrap() + 1;
    let file = dir.write("mfa.toml", &policy);
    let check = tailor(["policy", "check", arg(&file)], b"");
    assert_eq!(check.code, Some(1), "{check:#?}");
    assert_eq!(check.stdout, "");
    let expected = format!("{}:{line}: `mfa` is a security context", arg(&file));
    assert!(check.stderr.starts_with(&expected), "{check:#?}");
    assert_eq!(check.stderr.lines().count(), 1, "{check:#?}");

    // Every problem is listed, each with its line.
    let several = policy.replacen("default = \"opt_out\"", "default = \"sometimes\"", 1);
    let file = dir.write("several.toml", &several);
    let check = tailor(["policy", "check", arg(&file)], b"");
    assert_eq!(check.code, Some(1));
    assert_eq!(check.stderr.lines().count(), 2, "{check:#?}");
    assert!(check.stderr.lines().all(|l| l.starts_with(arg(&file))));

    let missing = tailor(["policy", "check", arg(&dir.path("nowhere.toml"))], b"");
    missing.assert_failure();
}
