//! Two engines (two processes) on one PostgreSQL database: what one writes is in the other's
//! index once it has caught up, an erased account included (its contact points are gone from
//! the store, so the other engine cannot read which digests to remove).

use tailor_core::Policy;

use crate::support::{Backend, TestClock, contact, engine, line};

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
