//! The seed's scenario, end to end through the engine: an account system sends 10,000 accounts,
//! 2,000 of whose phone numbers were given for two-factor authentication but sent as
//! `profile`; advertisers upload lists over several days; then the corrections arrive. The
//! incident analysis must count exactly the accounts matched through a mislabelled phone (known
//! from the fixture), name exactly the advertisers and audiences, and after it none of them is
//! in an affected audience or a serving answer. A second scenario replays a policy correction
//! (a region wrongly treated as opt-out) and remediates.

use std::collections::BTreeSet;

use jiff::Timestamp;
use tailor_core::Policy;
use tailor_engine::Engine;
use tailor_engine::incident::IncidentQuestion;
use tailor_list::UploadFormat;
use tailor_store::{Advertiser, JobOp};

use crate::support::{Backend, Storage, TestClock, consent, contact, line, on_both_backends};

const DAY: i64 = 86_400;
const START: i64 = 1_800_000_000;
const ACCOUNTS: u32 = 10_000;
/// Accounts `0..MISLABELLED` gave their phone for 2FA; the account system sent it as `profile`.
const MISLABELLED: u32 = 2_000;

fn phone(i: u32) -> String {
    format!("+1{}", 2_000_000_000 + u64::from(i))
}

fn email(i: u32) -> String {
    format!("seed{i}@example.com")
}

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(second).unwrap()
}

async fn advertiser(engine: &Engine, name: &str) -> Advertiser {
    let created = engine.create_advertiser(name, None).await.unwrap().unwrap();
    engine
        .authenticate(&created.api_key)
        .await
        .unwrap()
        .unwrap()
}

async fn audience(engine: &Engine, advertiser: &Advertiser, name: &str) -> String {
    engine
        .create_audience(advertiser, name, "", None)
        .await
        .unwrap()
        .unwrap()
        .id
}

async fn add(engine: &Engine, advertiser: &Advertiser, audience_id: &str, csv: String) {
    engine
        .upload(
            advertiser,
            audience_id,
            JobOp::Add,
            UploadFormat::Csv,
            tailor_core::Region::US,
            std::io::Cursor::new(csv.into_bytes()),
        )
        .await
        .unwrap()
        .unwrap();
    engine.jobs_settled().await.unwrap();
}

fn phones(ranges: &[std::ops::Range<u32>]) -> String {
    let mut csv = String::from("phone\n");
    for i in ranges.iter().flat_map(|r| r.clone()) {
        csv.push_str(&phone(i));
        csv.push('\n');
    }
    csv
}

fn emails(range: std::ops::Range<u32>) -> String {
    let mut csv = String::from("email\n");
    for i in range {
        csv.push_str(&email(i));
        csv.push('\n');
    }
    csv
}

/// The mechanics release settings: exact sizes, so that audiences are targetable.
async fn open(dir: &Storage, clock: std::sync::Arc<TestClock>, policy: Policy) -> Engine {
    use tailor_core::release::{Epsilon, ReleaseConfig};
    Engine::open_with(
        dir.store().await,
        crate::support::key(),
        policy,
        clock,
        tailor_engine::Limits::default(),
        ReleaseConfig {
            budget: Epsilon::from_micros(1_000_000_000),
            ..ReleaseConfig::dangerous_noise_free(1)
        },
    )
    .await
    .unwrap()
}

async fn the_seed_scenario_counts_exactly_the_accounts_matched_through_mislabelled_phones(
    backend: Backend,
) {
    let dir = backend.fresh("incident-seed").await;
    let clock = TestClock::at(START);
    let engine = open(&dir, clock.clone(), Policy::shipped()).await;
    let body: Vec<String> = (0..ACCOUNTS)
        .map(|i| {
            line(
                &format!("s{i}"),
                "US-CA",
                &[
                    contact("email", &email(i), "profile", true),
                    contact("phone", &phone(i), "profile", true),
                ]
                .join(","),
                "",
            )
        })
        .collect();
    let summary = engine.import(body.join("\n").as_bytes()).await.unwrap();
    assert_eq!(summary.accounts, u64::from(ACCOUNTS));

    let a1 = advertiser(&engine, "Alpha").await;
    let a2 = advertiser(&engine, "Beta").await;
    let a3 = advertiser(&engine, "Gamma").await;
    let a1_phones = audience(&engine, &a1, "phones").await;
    let a1_more = audience(&engine, &a1, "more").await;
    let a2_phones = audience(&engine, &a2, "phones").await;
    let a3_emails = audience(&engine, &a3, "emails").await;
    // Day 1..4: lists arrive.
    clock.advance(DAY);
    add(&engine, &a1, &a1_phones, phones(&[0..1200, 2000..3000])).await;
    clock.advance(DAY);
    add(&engine, &a2, &a2_phones, phones(&[1500..1800, 5000..5500])).await;
    clock.advance(DAY);
    add(&engine, &a3, &a3_emails, emails(0..5000)).await;
    clock.advance(DAY);
    add(&engine, &a1, &a1_more, phones(&[1100..1300, 9000..9100])).await;
    // What the fixture says: accounts matched through a mislabelled phone.
    let expected: BTreeSet<u32> = (0..1200).chain(1500..1800).chain(1100..1300).collect();
    assert_eq!(expected.len(), 1600);
    // Before the corrections, some are served the phone audiences.
    assert!(
        engine
            .serving_audiences("s0")
            .await
            .unwrap()
            .contains(&a1_phones)
    );

    // Day 5: the corrections (the phones were always 2FA).
    clock.advance(DAY);
    let corrections: Vec<String> = (0..MISLABELLED)
        .map(|i| {
            serde_json::json!({
                "account_id": format!("s{i}"),
                "kind": "phone",
                "value": phone(i),
                "context": "mfa",
                "effective_since": at(START - DAY).to_string(),
            })
            .to_string()
        })
        .collect();
    let corrected = engine
        .correct_contacts(corrections.join("\n").as_bytes())
        .await
        .unwrap();
    assert_eq!(corrected.corrected, u64::from(MISLABELLED), "{corrected:?}");
    assert!(corrected.rejected.is_empty(), "{corrected:?}");
    // Every membership that rested on a mislabelled phone ended at once.
    assert_eq!(corrected.memberships_ended, 1700);

    let report = engine
        .analyze_incident(
            IncidentQuestion {
                from: at(START),
                to: at(START + 5 * DAY),
                policy: None,
            },
            true,
        )
        .await
        .unwrap();
    assert_eq!(report.affected.accounts, 1600, "{:?}", report.affected);
    assert_eq!(report.affected.grants, 1700);
    assert_eq!(report.affected.jobs, 3);
    assert_eq!(report.affected.audiences, 3);
    assert_eq!(report.affected.advertisers, 2);
    assert_eq!(report.by_reason["security_context"].accounts, 1600);
    assert_eq!(report.by_reason.len(), 1, "{:?}", report.by_reason);
    let advertisers: BTreeSet<&str> = report
        .advertisers
        .iter()
        .map(|a| a.advertiser_id.as_str())
        .collect();
    assert_eq!(
        advertisers,
        BTreeSet::from([a1.advertiser_id.as_str(), a2.advertiser_id.as_str()])
    );
    let audiences: BTreeSet<&str> = report.grants.iter().map(|g| &*g.audience_id).collect();
    assert_eq!(
        audiences,
        BTreeSet::from([a1_phones.as_str(), a1_more.as_str(), a2_phones.as_str()])
    );
    // The corrections had ended them all already: nothing live to remediate.
    assert_eq!(report.still_live, 0);
    assert_eq!(report.remediated, Some(0));
    assert_eq!(report.live_from, Some(at(START + DAY)));
    assert_eq!(report.live_until, Some(at(START + 5 * DAY)));
    // Accounts appear as commitments only.
    assert!(
        report
            .grants
            .iter()
            .all(|g| g.account.as_ref().is_some_and(|c| c.len() == 64))
    );
    let csv = report.to_csv();
    assert_eq!(csv.lines().count(), 1 + 1700);
    assert!(
        !csv.contains("s1") && !csv.contains("+1"),
        "the CSV names people"
    );

    // None of them is in an affected audience or a serving answer; legitimate email
    // memberships stay.
    for i in &expected {
        let answer = engine.serving_audiences(&format!("s{i}")).await.unwrap();
        for affected in [&a1_phones, &a1_more, &a2_phones] {
            assert!(
                !answer.contains(affected),
                "s{i} is still served {affected}"
            );
        }
    }
    assert!(
        engine
            .serving_audiences("s10")
            .await
            .unwrap()
            .contains(&a3_emails)
    );
    // Genuine profile phones are untouched.
    assert!(
        engine
            .serving_audiences("s2500")
            .await
            .unwrap()
            .contains(&a1_phones)
    );
    // The detective control: under the corrected facts, no grant made from now on rests on
    // a security context.
    clock.advance(DAY);
    add(&engine, &a1, &a1_more, phones(&[0..1000, 1000..2000])).await;
    let after = engine
        .analyze_incident(
            IncidentQuestion {
                from: at(START + 6 * DAY),
                to: at(START + 7 * DAY),
                policy: None,
            },
            false,
        )
        .await
        .unwrap();
    assert_eq!(after.grants_examined, 0, "corrected phones matched again");

    // The detective control stayed at zero: in the engine's counter and in every job's entry.
    assert_eq!(engine.forbidden_grants(), 0);
    let store = engine.store();
    let entries = store.log_entries(0, u64::MAX).await.unwrap();
    let jobs: Vec<u64> = entries
        .iter()
        .filter_map(
            |e| match tailor_store::log::LogEntry::parse(&e.data).unwrap().event {
                tailor_store::log::LogEvent::JobCompleted {
                    forbidden_basis, ..
                } => Some(forbidden_basis),
                _ => None,
            },
        )
        .collect();
    assert_eq!(jobs.len(), 5, "one entry per job");
    assert!(jobs.iter().all(|&n| n == 0), "{jobs:?}");
    // The corrections are in the log too.
    let reclassified = entries
        .iter()
        .filter(|e| {
            matches!(
                tailor_store::log::LogEntry::parse(&e.data).unwrap().event,
                tailor_store::log::LogEvent::ContactReclassified { .. }
            )
        })
        .count();
    assert_eq!(reclassified, MISLABELLED as usize);
}

async fn a_region_wrongly_treated_as_opt_out_is_counted_and_remediated(backend: Backend) {
    let dir = backend.fresh("incident-policy").await;
    let clock = TestClock::at(START);
    // The policy in force treats DE as opt-out: wrong, DE is opt-in.
    let shipped = tailor_core::policy::DEFAULT_POLICY;
    let wrong = shipped.replace("\"FR\", \"DE\",", "\"FR\",");
    assert_ne!(wrong, shipped);
    let engine = open(&dir, clock.clone(), Policy::parse(&wrong).unwrap()).await;
    // 300 DE accounts: 100 with a consent grant, 200 without; 200 US accounts.
    let mut body = Vec::new();
    for i in 0..300u32 {
        let consents = if i < 100 {
            consent("granted", "settings", START - 100)
        } else {
            String::new()
        };
        body.push(line(
            &format!("de{i}"),
            "DE",
            &contact("email", &format!("de{i}@example.com"), "profile", true),
            &consents,
        ));
    }
    for i in 0..200u32 {
        body.push(line(
            &format!("us{i}"),
            "US",
            &contact("email", &format!("us{i}@example.com"), "profile", true),
            "",
        ));
    }
    engine.import(body.join("\n").as_bytes()).await.unwrap();
    let acme = advertiser(&engine, "Acme").await;
    let everyone = audience(&engine, &acme, "everyone").await;
    clock.advance(DAY);
    let mut csv = String::from("email\n");
    for i in 0..300 {
        csv.push_str(&format!("de{i}@example.com\n"));
    }
    for i in 0..200 {
        csv.push_str(&format!("us{i}@example.com\n"));
    }
    add(&engine, &acme, &everyone, csv).await;
    assert!(
        engine
            .serving_audiences("de250")
            .await
            .unwrap()
            .contains(&everyone)
    );

    clock.advance(DAY);
    let report = engine
        .analyze_incident(
            IncidentQuestion {
                from: at(START),
                to: at(START + 2 * DAY),
                policy: Some(std::sync::Arc::new(Policy::shipped())),
            },
            true,
        )
        .await
        .unwrap();
    assert_eq!(report.grants_examined, 500);
    assert_eq!(report.affected.accounts, 200, "{:?}", report.by_reason);
    assert_eq!(report.by_reason["region_regime"].accounts, 200);
    assert_eq!(report.affected.advertisers, 1);
    assert_eq!(report.affected.audiences, 1);
    assert_eq!(report.remediated, Some(200));
    assert_eq!(report.still_live, 0);
    for i in 100..300 {
        assert!(
            !engine
                .serving_audiences(&format!("de{i}"))
                .await
                .unwrap()
                .contains(&everyone),
            "de{i} still served"
        );
    }
    for id in ["de5", "us5"] {
        assert!(
            engine
                .serving_audiences(id)
                .await
                .unwrap()
                .contains(&everyone),
            "{id}"
        );
    }
}

on_both_backends!(
    the_seed_scenario_counts_exactly_the_accounts_matched_through_mislabelled_phones,
    a_region_wrongly_treated_as_opt_out_is_counted_and_remediated,
);
