//! Released sizes through the engine, with the default (noisy) release settings: a repeated
//! question is answered from the ledger for free and identically; any change to the question
//! or, after the refresh time, to the audience's data draws fresh noise and is charged; a
//! spent budget makes sizes unavailable while targeting keeps its last decision.

use tailor_core::release::{ReleaseConfig, ReleasedSize};
use tailor_engine::Engine;
use tailor_list::UploadFormat;
use tailor_store::{Advertiser, JobOp};

use crate::support::{TestClock, contact, engine, line, sqlite};

const START: i64 = 1_800_000_000;

/// `n` opt-out (US-CA) accounts with a verified profile email each: all eligible.
async fn platform(engine: &Engine, n: usize) {
    let body: Vec<String> = (0..n)
        .map(|i| {
            line(
                &format!("r{i}"),
                "US-CA",
                &contact("email", &format!("r{i}@example.com"), "profile", true),
                "",
            )
        })
        .collect();
    engine.import(body.join("\n").as_bytes()).await.unwrap();
}

/// A list of the emails of accounts `members` and of `junk` addresses of nobody.
fn list(members: std::ops::Range<usize>, junk: std::ops::Range<usize>) -> String {
    let mut csv = String::from("email\n");
    for i in members {
        csv.push_str(&format!("r{i}@example.com\n"));
    }
    for j in junk {
        csv.push_str(&format!("nobody{j}@example.net\n"));
    }
    csv
}

async fn replace(engine: &Engine, advertiser: &Advertiser, audience_id: &str, csv: String) {
    engine
        .upload(
            advertiser,
            audience_id,
            JobOp::Replace,
            UploadFormat::Csv,
            tailor_core::Region::US,
            std::io::Cursor::new(csv.into_bytes()),
        )
        .await
        .unwrap()
        .unwrap();
    engine.jobs_settled().await.unwrap();
}

async fn size(engine: &Engine, advertiser: &Advertiser, audience_id: &str) -> ReleasedSize {
    engine
        .audience(advertiser, audience_id)
        .await
        .unwrap()
        .unwrap()
        .size
}

async fn spent(engine: &Engine, advertiser: &Advertiser) -> usize {
    engine
        .store()
        .entity_charges(&advertiser.entity, jiff::Timestamp::UNIX_EPOCH)
        .await
        .unwrap()
        .len()
}

async fn advertiser(engine: &Engine, name: &str) -> Advertiser {
    let created = engine.create_advertiser(name, None).await.unwrap().unwrap();
    engine
        .authenticate(&created.api_key)
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn repeats_are_free_and_identical_and_changes_draw_fresh_noise() {
    let dir = sqlite("releases");
    let clock = TestClock::at(START);
    let engine = engine(&dir, clock.clone(), tailor_core::Policy::shipped()).await;
    platform(&engine, 400).await;
    let acme = advertiser(&engine, "Acme").await;
    let audience = engine
        .create_audience(&acme, "Customers", "", None)
        .await
        .unwrap()
        .unwrap();
    // Nothing uploaded: nothing released, nothing spent.
    assert_eq!(
        size(&engine, &acme, &audience.id).await,
        ReleasedSize::BelowThreshold {
            below_threshold: true
        }
    );
    assert_eq!(spent(&engine, &acme).await, 0);

    replace(&engine, &acme, &audience.id, list(0..300, 0..0)).await;
    let first = size(&engine, &acme, &audience.id).await;
    assert!(first.targetable(), "{first:?}");
    assert_eq!(
        spent(&engine, &acme).await,
        1,
        "the job's answer is charged"
    );
    // Asking again, and uploading the very same list again, is the same question: the same
    // answer, for free.
    assert_eq!(size(&engine, &acme, &audience.id).await, first);
    replace(&engine, &acme, &audience.id, list(0..300, 0..0)).await;
    assert_eq!(size(&engine, &acme, &audience.id).await, first);
    assert_eq!(spent(&engine, &acme).await, 1, "a repeat costs nothing");

    // One junk row more is a new question: fresh noise, charged. Over several such questions
    // the answers move although the true size does not.
    let mut answers = vec![first];
    for junk in 1..=5 {
        replace(&engine, &acme, &audience.id, list(0..300, 0..junk)).await;
        let answer = size(&engine, &acme, &audience.id).await;
        if !answers.contains(&answer) {
            answers.push(answer);
        }
    }
    assert_eq!(spent(&engine, &acme).await, 6);
    assert!(
        answers.len() > 1,
        "six questions about 300 members all answered alike: {answers:?}"
    );

    // People leaving change nothing the advertiser sees before the refresh time...
    let before = size(&engine, &acme, &audience.id).await;
    for i in 0..20 {
        engine.erase(&format!("r{i}")).await.unwrap().unwrap();
    }
    assert_eq!(size(&engine, &acme, &audience.id).await, before);
    assert_eq!(spent(&engine, &acme).await, 6);
    // ...after it, the new data epoch draws fresh noise (and is charged).
    clock.advance(3600 * i64::from(ReleaseConfig::default().refresh_hours));
    let _after = size(&engine, &acme, &audience.id).await;
    assert_eq!(
        spent(&engine, &acme).await,
        7,
        "a new epoch is a new question"
    );
    // Asked again in the same epoch: free.
    let _ = size(&engine, &acme, &audience.id).await;
    assert_eq!(spent(&engine, &acme).await, 7);
}

#[tokio::test]
async fn a_spent_budget_makes_sizes_unavailable_and_keeps_targeting() {
    let dir = sqlite("budget");
    let clock = TestClock::at(START);
    let engine = engine(&dir, clock.clone(), tailor_core::Policy::shipped()).await;
    platform(&engine, 300).await;
    let acme = advertiser(&engine, "Acme").await;
    let config = ReleaseConfig::default();
    let per_period = (config.budget.micros() / config.epsilon.micros()) as usize;
    let audience = engine
        .create_audience(&acme, "Customers", "", None)
        .await
        .unwrap()
        .unwrap();
    for junk in 0..per_period {
        replace(&engine, &acme, &audience.id, list(0..250, 0..junk)).await;
    }
    assert_eq!(spent(&engine, &acme).await, per_period);
    let last = engine.audience(&acme, &audience.id).await.unwrap().unwrap();
    assert!(last.targetable, "{last:?}");
    assert_eq!(
        engine.serving_audiences("r1").await.unwrap(),
        std::slice::from_ref(&audience.id)
    );

    // One question too many: unavailable until the first charge leaves the window.
    replace(&engine, &acme, &audience.id, list(0..250, 0..100)).await;
    let view = engine.audience(&acme, &audience.id).await.unwrap().unwrap();
    let ReleasedSize::Unavailable { unavailable_until } = view.size else {
        panic!("expected unavailable, got {:?}", view.size);
    };
    assert_eq!(
        unavailable_until,
        jiff::Timestamp::from_second(START).unwrap() + config.period()
    );
    assert_eq!(view.status, "unavailable");
    // A new question is not targetable until answered...
    assert!(!view.targetable);
    assert!(engine.serving_audiences("r1").await.unwrap().is_empty());
    assert_eq!(spent(&engine, &acme).await, per_period);

    // ...but an audience whose question was answered keeps its decision through churn.
    let other = advertiser(&engine, "Other").await;
    let kept = engine
        .create_audience(&other, "Kept", "", None)
        .await
        .unwrap()
        .unwrap();
    for junk in 0..per_period {
        replace(&engine, &other, &kept.id, list(0..250, 0..junk)).await;
    }
    engine.erase("r2").await.unwrap().unwrap();
    clock.advance(3600 * i64::from(config.refresh_hours));
    let view = engine.audience(&other, &kept.id).await.unwrap().unwrap();
    assert!(
        matches!(view.size, ReleasedSize::Unavailable { .. }),
        "{view:?}"
    );
    assert!(view.targetable, "targeting keeps the last decision");
    assert_eq!(
        engine.serving_audiences("r3").await.unwrap(),
        std::slice::from_ref(&kept.id)
    );

    // Once the window has moved past the first charges, sizes come back.
    clock.advance(config.period().as_secs());
    let view = engine.audience(&acme, &audience.id).await.unwrap().unwrap();
    assert!(view.size.targetable(), "{view:?}");
}
