//! Importing account lines: what is kept, what is refused and why, and what the index holds.

use tailor_core::{E164Phone, NormalizedEmail, PhoneFormat, Policy, Region, Sha256Digest};

use crate::support::{
    Backend, TestClock, consent, contact, engine, key, line, on_both_backends, sqlite,
};

fn email_digest(value: &str) -> tailor_core::KeyedDigest {
    key().digest(&NormalizedEmail::parse(value).unwrap().sha256())
}

fn phone_digest(value: &str, format: PhoneFormat) -> tailor_core::KeyedDigest {
    key().digest(&E164Phone::parse(value, Region::US).unwrap().sha256(format))
}

async fn only_eligible_contact_points_enter_the_index(backend: Backend) {
    let dir = backend.fresh("eligible").await;
    let engine = engine(&dir, TestClock::at(1_800_000_000), Policy::shipped()).await;
    let body = [
        line(
            "u1",
            "US-CA",
            &[
                contact("email", "Jane.Doe@Example.com", "profile", true),
                contact("phone", "+1 415 555 0100", "mfa", true),
            ]
            .join(","),
            "",
        ),
        line(
            "u2",
            "FR",
            &contact("email", "marie@example.fr", "profile", true),
            "",
        ),
        line(
            "u3",
            "FR",
            &contact("email", "luc@example.fr", "profile", true),
            &consent("granted", "settings", 1_700_000_000),
        ),
        line(
            "u4",
            "US",
            &contact("email", "unverified@example.com", "profile", false),
            "",
        ),
        line(
            "u5",
            "US",
            &contact("email", "book@example.com", "address_book", true),
            "",
        ),
    ]
    .join("\n");
    let summary = engine.import(body.as_bytes()).await.unwrap();
    assert_eq!(summary.accounts, 5, "{summary:?}");
    assert_eq!(summary.contact_points, 6);
    assert_eq!(summary.rejected_total(), 0);

    // u1's profile email (opt-out region) is in; its mfa phone is not, in either convention.
    assert_eq!(
        engine.lookup(&email_digest("jane.doe@example.com")).len(),
        1
    );
    assert!(
        engine
            .lookup(&phone_digest("+14155550100", PhoneFormat::E164))
            .is_empty()
    );
    assert!(
        engine
            .lookup(&phone_digest("+14155550100", PhoneFormat::Digits))
            .is_empty()
    );
    // u2 is in an opt-in region without consent; u3 granted.
    assert!(engine.lookup(&email_digest("marie@example.fr")).is_empty());
    assert_eq!(engine.lookup(&email_digest("luc@example.fr")).len(), 1);
    // Unverified and address-book contact points never enter.
    assert!(
        engine
            .lookup(&email_digest("unverified@example.com"))
            .is_empty()
    );
    assert!(engine.lookup(&email_digest("book@example.com")).is_empty());
    assert_eq!(engine.index_len(), 2);

    let view = engine.view("u1").await.unwrap().unwrap();
    let phone = view
        .contact_points
        .iter()
        .find(|c| c.kind == "phone")
        .unwrap();
    let marketing = &phone.purposes["marketing.advertising.third_party.targeted"];
    assert!(!marketing.eligible);
    assert_eq!(marketing.reason, Some("security_context"));
    assert!(phone.purposes["essential.service.security"].eligible);
    let text = serde_json::to_string(&view).unwrap();
    assert!(!text.contains("555") && !text.contains("jane"), "{text}");
}

on_both_backends!(only_eligible_contact_points_enter_the_index);

#[tokio::test]
async fn refusals_are_counted_by_reason_with_their_lines_and_good_lines_are_kept() {
    let dir = sqlite("refusals");
    let engine = engine(&dir, TestClock::at(1_800_000_000), Policy::shipped()).await;
    let lines = [
        line("ok1", "US", &contact("email", "ok1@example.com", "profile", true), ""),
        "{not json".to_owned(),
        line("", "US", "", ""),
        line("bad-region", "USA", "", ""),
        line(
            "parts",
            "US",
            &[
                contact("email", "not-an-email", "profile", true),
                contact("phone", "555-0100", "profile", true),
                contact("fax", "x", "profile", true),
                contact("email", "p@example.com", "dinner", true),
                contact("email", "dup@example.com", "profile", true),
                contact("email", "DUP@example.com", "profile", true),
            ]
            .join(","),
            &[
                consent("granted", "settings", 1_900_000_000),
                consent("maybe", "settings", 1_700_000_000),
                consent("granted", "carrier_pigeon", 1_700_000_000),
                "{\"purpose\":\"marketing.spam\",\"state\":\"granted\",\"source\":\"settings\",\"at\":\"2020-01-01T00:00:00Z\"}".to_owned(),
                "{\"purpose\":\"marketing\",\"state\":\"granted\",\"source\":\"settings\",\"at\":\"yesterday\"}".to_owned(),
            ]
            .join(","),
        ),
        "".to_owned(),
        line("ok2", "US", &contact("email", "ok2@example.com", "profile", true), ""),
    ];
    let summary = engine.import(lines.join("\n").as_bytes()).await.unwrap();
    assert_eq!(summary.lines, 6);
    assert_eq!(summary.accounts, 3, "{summary:?}");
    let expected = [
        ("duplicate_contact", 1),
        ("email_missing_at", 1),
        ("invalid_account_id", 1),
        ("invalid_region", 1),
        ("invalid_time", 1),
        ("malformed_json", 1),
        ("phone_local_only", 1),
        ("time_in_future", 1),
        ("unknown_consent_source", 1),
        ("unknown_consent_state", 1),
        ("unknown_context", 1),
        ("unknown_kind", 1),
        ("unknown_purpose", 1),
    ];
    let got: Vec<(&str, u64)> = summary.rejected.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(got, expected);
    let lines_named: Vec<(u64, Option<&str>)> = summary
        .errors
        .iter()
        .map(|e| (e.line, e.field.as_deref()))
        .collect();
    assert!(lines_named.contains(&(2, None)));
    assert!(lines_named.contains(&(5, Some("contacts[0].value"))));
    assert!(lines_named.contains(&(5, Some("contacts[5]"))));
    assert!(lines_named.contains(&(5, Some("consents[0].at"))));
    let text = serde_json::to_string(&summary).unwrap();
    assert!(
        !text.contains("not-an-email") && !text.contains("dup@"),
        "{text}"
    );
    // The refused parts of line 5 are gone; its good contact point is kept.
    let view = engine.view("parts").await.unwrap().unwrap();
    assert_eq!(view.contact_points.len(), 1);
    assert_eq!(engine.lookup(&email_digest("ok2@example.com")).len(), 1);
}

#[tokio::test]
async fn line_and_body_limits() {
    let dir = sqlite("limits");
    let clock = TestClock::at(1_800_000_000);
    let limits = tailor_engine::Limits {
        max_line_bytes: 200,
        max_body_bytes: 800,
        batch: 2,
        ..tailor_engine::Limits::default()
    };
    let engine =
        tailor_engine::Engine::open(dir.store().await, key(), Policy::shipped(), clock, limits)
            .await
            .unwrap();
    let long = line(
        "long",
        "US",
        &contact(
            "email",
            &format!("{}@example.com", "a".repeat(300)),
            "profile",
            true,
        ),
        "",
    );
    let body = [
        line(
            "a",
            "US",
            &contact("email", "a@example.com", "profile", true),
            "",
        ),
        long,
        line(
            "b",
            "US",
            &contact("email", "b@example.com", "profile", true),
            "",
        ),
        line(
            "c",
            "US",
            &contact("email", "c@example.com", "profile", true),
            "",
        ),
        line(
            "d",
            "US",
            &contact("email", "d@example.com", "profile", true),
            "",
        ),
    ]
    .join("\n");
    let summary = engine.import(body.as_bytes()).await.unwrap();
    assert!(summary.truncated);
    assert_eq!(
        summary.rejected.get("line_too_long"),
        Some(&1),
        "{summary:?}"
    );
    assert_eq!(summary.rejected.get("body_too_large"), Some(&1));
    // What was read before the limit is kept.
    assert!(engine.view("a").await.unwrap().is_some());
    assert_eq!(summary.accounts, 2, "{summary:?}");
}

async fn withdrawal_and_erasure_leave_the_index_before_returning(backend: Backend) {
    let dir = backend.fresh("withdraw").await;
    let clock = TestClock::at(1_800_000_000);
    let engine = engine(&dir, clock.clone(), Policy::shipped()).await;
    let body = line(
        "u1",
        "US",
        &contact("email", "w@example.com", "profile", true),
        "",
    );
    engine.import(body.as_bytes()).await.unwrap();
    let digest = email_digest("w@example.com");
    assert_eq!(engine.lookup(&digest).len(), 1);

    clock.advance(10);
    let gpc = consent("granted", "gpc", 1_800_000_005);
    let view = engine
        .record_consent("u1", gpc.as_bytes())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        view.consent["marketing.advertising.third_party.targeted"].state,
        "withdrawn"
    );
    assert!(engine.lookup(&digest).is_empty());

    // A later grant makes it eligible again (matching memberships are a separate matter).
    clock.advance(10);
    let grant = consent("granted", "settings", 1_800_000_015);
    engine
        .record_consent("u1", grant.as_bytes())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(engine.lookup(&digest).len(), 1);

    let refused = engine
        .record_consent("nobody", grant.as_bytes())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(refused.reason, "unknown_account");
    let refused = engine
        .record_consent("u1", b"{}")
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(refused.reason, "malformed_json");

    let report = engine.erase("u1").await.unwrap().unwrap();
    assert_eq!(report.contact_points, 1);
    assert_eq!(report.consent_events, 2);
    assert_eq!(report.index_entries, 1);
    assert!(engine.lookup(&digest).is_empty());
    assert!(engine.view("u1").await.unwrap().is_none());
    assert!(engine.erase("u1").await.unwrap().is_none());
}

on_both_backends!(withdrawal_and_erasure_leave_the_index_before_returning);

#[tokio::test]
async fn both_conventions_of_a_phone_and_both_gmail_forms_reach_the_account() {
    let dir = sqlite("conventions");
    let engine = engine(&dir, TestClock::at(1_800_000_000), Policy::shipped()).await;
    let body = line(
        "u1",
        "US",
        &[
            contact("phone", "(415) 555-0199", "profile", true),
            contact("email", "Jane.Doe+ads@gmail.com", "profile", true),
        ]
        .join(","),
        "",
    );
    engine.import(body.as_bytes()).await.unwrap();
    for digest in [
        phone_digest("+14155550199", PhoneFormat::E164),
        phone_digest("+14155550199", PhoneFormat::Digits),
        email_digest("jane.doe+ads@gmail.com"),
        key().digest(&Sha256Digest::of(b"janedoe@gmail.com")),
    ] {
        assert_eq!(engine.lookup(&digest).len(), 1);
    }
}
