//! Two engines (two processes) on one PostgreSQL database: what one writes is in the other's
//! index once it has caught up, an erased account included (its contact points are gone from
//! the store, so the other engine cannot read which digests to remove).

use std::sync::Arc;

use tailor_core::release::{Epsilon, ReleaseConfig};
use tailor_core::{Policy, Region};
use tailor_engine::{Engine, Limits};
use tailor_list::UploadFormat;
use tailor_store::{JobOp, Store};
use tokio::sync::Notify;

use crate::cancel::GatedStore;
use crate::support::{Backend, TestClock, consent, contact, engine, key, line};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_through_one_engine_leaves_the_others_index() {
    let Some(backend) = Backend::postgres().await else {
        return;
    };
    let dir = backend.fresh("replica-erasure").await;
    let clock = TestClock::at(1_800_000_000);
    let one = engine(&dir, clock.clone(), Policy::shipped()).await;
    let two = engine(&dir, clock.clone(), Policy::shipped()).await;
    let accounts = [
        line(
            "r-ana",
            "US",
            &contact("email", "ana.replica@example.com", "profile", true),
            "",
        ),
        line(
            "r-ben",
            "US",
            &contact("email", "ben.replica@example.com", "profile", true),
            "",
        ),
    ]
    .join("\n");
    one.import(accounts.as_bytes()).await.unwrap();
    two.caught_up().await.unwrap();
    assert_eq!(two.index_len(), one.index_len());
    let both = two.index_len();
    assert!(both > 0);

    one.erase("r-ana").await.unwrap();
    two.caught_up().await.unwrap();
    assert_eq!(two.index_entries(), one.index_entries());
    assert!(
        two.index_len() < both,
        "the erased account left the other index"
    );

    // And the other way round, with an account rewritten without its contact point.
    two.import(line("r-ben", "US", "", "").as_bytes())
        .await
        .unwrap();
    one.caught_up().await.unwrap();
    assert_eq!(one.index_len(), 0);
    assert_eq!(two.index_len(), 0);
}

/// A withdrawal through another engine while a job is being applied here (the job lets its
/// writer lock go meanwhile): once the job is published, the withdrawn account's grant is
/// ended, in the store and in both engines' answers, and the others' are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_withdrawal_while_a_job_is_applied_ends_the_grant_it_took_away() {
    let Some(backend) = Backend::postgres().await else {
        return;
    };
    let dir = backend.fresh("replica-job-race").await;
    let clock = TestClock::at(1_800_000_000);
    let (entered, gate) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let gated: Arc<dyn Store> = Arc::new(GatedStore {
        inner: dir.store().await,
        entered: Arc::clone(&entered),
        gate: Arc::clone(&gate),
        jobs: true,
    });
    let release = ReleaseConfig {
        budget: Epsilon::from_micros(1_000_000_000),
        ..ReleaseConfig::dangerous_noise_free(1)
    };
    let open = |store: Arc<dyn Store>| {
        Engine::open_with(
            store,
            key(),
            Policy::shipped(),
            clock.clone(),
            Limits::default(),
            release,
        )
    };
    let one = open(gated).await.unwrap();
    let two = open(dir.store().await).await.unwrap();
    let people = ["r-ana", "r-ben", "r-cyd"];
    let lines: Vec<String> = people
        .iter()
        .map(|id| {
            let email = format!("{id}.race@example.com");
            line(id, "US", &contact("email", &email, "profile", true), "")
        })
        .collect();
    two.import(lines.join("\n").as_bytes()).await.unwrap();
    let created = one.create_advertiser("Acme", None).await.unwrap().unwrap();
    let advertiser = one.authenticate(&created.api_key).await.unwrap().unwrap();
    let audience = one
        .create_audience(&advertiser, "Race", "", None)
        .await
        .unwrap()
        .unwrap();
    let list: String = std::iter::once("email\n".to_owned())
        .chain(people.iter().map(|id| format!("{id}.race@example.com\n")))
        .collect();
    let job = one
        .upload(
            &advertiser,
            &audience.id,
            JobOp::Add,
            UploadFormat::Csv,
            Region::US,
            std::io::Cursor::new(list.into_bytes()),
        )
        .await
        .unwrap()
        .unwrap();

    // The job re-checked its matches (all three eligible) and waits to be applied.
    entered.notified().await;
    let withdrawal = consent("withdrawn", "settings", 1_800_000_000);
    let recorded = two
        .record_consent("r-ben", withdrawal.as_bytes())
        .await
        .unwrap();
    assert!(recorded.is_ok(), "the withdrawal is accepted");
    // The other engine's withdrawal is applied here while the job waits.
    one.caught_up().await.unwrap();
    gate.notify_one();
    one.jobs_settled().await.unwrap();
    let view = one.job(&advertiser, &job.job_id).await.unwrap().unwrap();
    assert_eq!(view.state, "succeeded");

    let store = one.store();
    let ben = store.account_no("r-ben").await.unwrap().unwrap();
    assert!(
        store.memberships_of(ben).await.unwrap().is_empty(),
        "the withdrawn account's grant ended"
    );
    two.caught_up().await.unwrap();
    for engine in [&one, &two] {
        assert!(engine.serving_audiences("r-ben").await.unwrap().is_empty());
        assert_eq!(
            engine.serving_audiences("r-ana").await.unwrap(),
            vec![audience.id.clone()]
        );
    }
}
