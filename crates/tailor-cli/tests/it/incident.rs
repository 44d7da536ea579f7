//! `tailor incident analyze` and `POST /v1/compliance/incidents` give the same answer on the
//! same data: a compliance officer can answer "how many people, by whom, when" with one command
//! and from the API alike.

use crate::server::{COMPLIANCE, Served, fixed_tokens};
use crate::support::{Scratch, arg, tailor};

fn accounts() -> String {
    (0..40)
        .map(|i| {
            serde_json::json!({
                "account_id": format!("inc-{i}"),
                "region": "US",
                "contacts": [
                    {"kind": "phone", "value": format!("+1{}", 2_000_000_000u64 + i), "context": "profile", "verified": true},
                ],
            })
            .to_string()
                + "\n"
        })
        .collect()
}

#[test]
fn the_command_and_the_api_count_the_same_people() {
    let dir = Scratch::new("incident-cli");
    let data = dir.path("data");
    let server = Served::start(
        &data,
        &dir.path("serve.log"),
        &fixed_tokens(),
        &["--min-audience-size", "1"],
    );
    let import = server.admin("POST", "/v1/admin/accounts", accounts().as_bytes());
    assert_eq!(import.status, 200, "{}", import.text());
    let (_, key) = server.create_advertiser("Acme");
    let audience = server.create_audience(&key, "Phones");
    let list: String = std::iter::once("phone\n".to_owned())
        .chain((0..30).map(|i| format!("+1{}\n", 2_000_000_000u64 + i)))
        .collect();
    let job = server.upload_csv(&key, &audience, "add", list.as_bytes());
    server.wait_for_job(&key, &job);
    // Accounts 0..10 gave their phone for 2FA.
    let corrections: String = (0..10)
        .map(|i| {
            serde_json::json!({
                "account_id": format!("inc-{i}"),
                "kind": "phone",
                "value": format!("+1{}", 2_000_000_000u64 + i),
                "context": "mfa",
                "effective_since": "2020-01-01T00:00:00Z",
            })
            .to_string()
                + "\n"
        })
        .collect();
    let corrected = server.admin(
        "POST",
        "/v1/admin/contact-corrections",
        corrections.as_bytes(),
    );
    assert_eq!(corrected.status, 200, "{}", corrected.text());
    assert_eq!(corrected.json()["corrected"], 10);
    assert_eq!(corrected.json()["memberships_ended"], 10);
    let question = br#"{"from":"2020-01-01T00:00:00Z","to":"2100-01-01T00:00:00Z"}"#;
    let api = server.call(
        "POST",
        "/v1/compliance/incidents",
        Some(COMPLIANCE),
        question,
    );
    assert_eq!(api.status, 200, "{}", api.text());
    let api = api.json();
    assert_eq!(api["affected"]["accounts"], 10, "{api:#}");
    assert_eq!(api["by_reason"]["security_context"]["grants"], 10);
    let csv = server.call(
        "POST",
        "/v1/compliance/incidents?format=csv",
        Some(COMPLIANCE),
        question,
    );
    assert_eq!(csv.status, 200);
    assert_eq!(csv.text().lines().count(), 11);
    assert!(!csv.text().contains("inc-"), "the CSV names accounts");
    assert_eq!(server.stop().code(), Some(0));

    let run = tailor(
        [
            "incident",
            "analyze",
            "--data-dir",
            arg(&data),
            "--from",
            "2020-01-01T00:00:00Z",
            "--to",
            "2100-01-01T00:00:00Z",
        ],
        b"",
    );
    run.assert_success();
    let cli: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    for field in [
        "affected",
        "by_reason",
        "advertisers",
        "grants",
        "grants_examined",
        "policy_version",
        "live_from",
        "live_until",
    ] {
        assert_eq!(cli[field], api[field], "{field}");
    }
    assert!(run.stderr.contains("affected: 10 accounts"), "{run:#?}");
}
