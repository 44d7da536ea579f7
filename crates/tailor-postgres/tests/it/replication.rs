//! The change feed and job claims of two stores (two processes) on one database.

use jiff::{SignedDuration, Timestamp};
use tailor_core::AccountNo;
use tailor_core::release::{KeySetDigest, QueryDigest};
use tailor_postgres::{PostgresOptions, PostgresStore};
use tailor_store::replication::{Changed, Replication};
use tailor_store::{
    Audience, Grant, Job, JobCounts, JobOp, NewAdvertiser, NewAudience, NewJob, RevokeReason,
    Store, StoreError,
};

use crate::backend::account;
use tailor_postgres::testing::{Databases, Server};

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + second).unwrap()
}

const LEASE: SignedDuration = SignedDuration::from_secs(30);

/// Two stores on one fresh database.
async fn pair(server: &Server, databases: &Databases) -> (PostgresStore, PostgresStore) {
    let url = server.url(&databases.create().await);
    let one = PostgresStore::connect(&url, PostgresOptions::default())
        .await
        .unwrap();
    let two = PostgresStore::connect(&url, PostgresOptions::default())
        .await
        .unwrap();
    (one, two)
}

fn feed(store: &PostgresStore) -> &dyn Replication {
    store.replication().expect("PostgreSQL has a change feed")
}

/// An advertiser (made once) and a new audience.
async fn new_audience(store: &PostgresStore, name: &str, now: Timestamp) -> Audience {
    let advertiser = match store.advertiser("adv").await.unwrap() {
        Some(advertiser) => advertiser,
        None => store
            .create_advertiser(
                NewAdvertiser {
                    advertiser_id: "adv".into(),
                    name: "Acme".into(),
                    entity: "Acme".into(),
                    key_id: "key".into(),
                    key_sha256: [7; 32],
                },
                now,
            )
            .await
            .unwrap(),
    };
    store
        .create_audience(
            NewAudience {
                audience_id: format!("aud-{name}"),
                advertiser_no: advertiser.no,
                name: name.into(),
                description: String::new(),
                membership_ttl_days: 30,
            },
            now,
        )
        .await
        .unwrap()
}

/// A committed upload's job on `audience`.
async fn job_on(store: &PostgresStore, audience: &Audience, name: &str, now: Timestamp) -> Job {
    let session = store
        .create_session(
            &format!("s-{name}"),
            audience.advertiser_no,
            audience.no,
            JobOp::Add,
            now,
            now + SignedDuration::from_hours(24),
        )
        .await
        .unwrap();
    let new = NewJob {
        job_id: format!("j-{name}"),
        advertiser_no: audience.advertiser_no,
        audience_no: audience.no,
        op: JobOp::Add,
        counts: JobCounts {
            rows_received: 0,
            rows_accepted: 0,
            rejected: Default::default(),
        },
        keys: KeySetDigest::from_bytes([1; 32]),
    };
    store.commit_session(session.no, new, now).await.unwrap()
}

/// An advertiser, a new audience, and a committed upload's job.
async fn queued_job(store: &PostgresStore, name: &str, now: Timestamp) -> Job {
    let audience = new_audience(store, name, now).await;
    job_on(store, &audience, name, now).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_is_in_the_feed_in_commit_order_and_announced() {
    let Some(server) = Server::find().await else {
        return;
    };
    let databases = Databases::new(&server);
    let (one, two) = pair(&server, &databases).await;
    assert_ne!(feed(&one).origin(), feed(&two).origin());
    let mut announced = feed(&two).subscribe();
    let start = feed(&two).head().await.unwrap();

    let written = one
        .write_accounts(vec![account(1), account(2)], at(0))
        .await
        .unwrap();
    let nos: Vec<AccountNo> = written.iter().map(|c| c.after.no).collect();
    two.append_consent(
        "acct-2",
        tailor_store::NewConsent {
            purpose: tailor_core::Purpose::MARKETING_TARGETED,
            state: tailor_core::ConsentState::Withdrawn,
            source: tailor_core::ConsentSource::Settings,
            at: at(1),
            notice_version: None,
        },
        at(1),
    )
    .await
    .unwrap();
    let job = queued_job(&one, "feed", at(2)).await;
    one.revoke(
        vec![(job.audience_no, nos[0])],
        RevokeReason::Ineligible,
        at(3),
    )
    .await
    .unwrap();
    two.erase_account("acct-1", at(4)).await.unwrap();
    one.log_policy(tailor_core::Policy::shipped().version(), at(5))
        .await
        .unwrap();

    let changes = feed(&two).changes_since(start, 100).await.unwrap();
    let seqs: Vec<u64> = changes.iter().map(|c| c.seq).collect();
    let expected_seqs: Vec<u64> = (start + 1..=start + changes.len() as u64).collect();
    assert_eq!(seqs, expected_seqs, "numbered without gaps");
    let whats: Vec<(u64, Changed)> = changes
        .iter()
        .map(|c| (c.origin, c.what))
        .filter(|(_, what)| !matches!(what, Changed::Audience(_)))
        .collect();
    let (o1, o2) = (feed(&one).origin(), feed(&two).origin());
    assert_eq!(
        whats,
        vec![
            (o1, Changed::Account(nos[0])),
            (o1, Changed::Account(nos[1])),
            (o2, Changed::Account(nos[1])),
            (o1, Changed::Account(nos[0])),
            (o2, Changed::Account(nos[0])),
            (o1, Changed::Policy),
        ]
    );
    assert!(
        changes
            .iter()
            .any(|c| c.what == Changed::Audience(job.audience_no)),
        "the new audience is in the feed"
    );
    // The head is the last change of another process: two's is one's policy, the last of all;
    // one's is two's erasure.
    let head = feed(&two).head().await.unwrap();
    assert_eq!(head, *seqs.last().unwrap());
    let erasure = changes.iter().rev().find(|c| c.origin == o2).map(|c| c.seq);
    assert_eq!(Some(feed(&one).head().await.unwrap()), erasure);
    // The listener hears the last number (NOTIFY is delivered at commit).
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        announced.wait_for(|&seq| seq >= head),
    )
    .await
    .expect("the last change is announced")
    .unwrap();

    // Pruning keeps the newest change, so the head stays readable.
    let pruned = feed(&one)
        .prune_changes(SignedDuration::from_hours(-1))
        .await
        .unwrap();
    assert_eq!(pruned, changes.len() as u64 - 1);
    assert_eq!(feed(&two).head().await.unwrap(), head);
    let left = feed(&two).changes_since(start, 100).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].seq, head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_claimed_by_one_store_and_taken_over_once_its_claim_lapses() {
    let Some(server) = Server::find().await else {
        return;
    };
    let databases = Databases::new(&server);
    let (one, two) = pair(&server, &databases).await;
    let job = queued_job(&one, "claims", at(0)).await;

    // One claims it; two cannot, nor find it orphaned while the claim lives.
    assert!(feed(&one).claim_job(job.no, at(1), LEASE).await.unwrap());
    assert!(
        feed(&one).claim_job(job.no, at(2), LEASE).await.unwrap(),
        "again: its own"
    );
    assert!(!feed(&two).claim_job(job.no, at(3), LEASE).await.unwrap());
    assert_eq!(feed(&two).claim_orphan(at(3), LEASE).await.unwrap(), None);
    // Renewed, it outlives its first lease.
    feed(&one).renew_claims(at(20), LEASE).await.unwrap();
    assert_eq!(feed(&two).claim_orphan(at(40), LEASE).await.unwrap(), None);

    // Its claim lapsed (its process died): two takes it over, and one may no longer apply
    // it or fail it.
    assert_eq!(
        feed(&two).claim_orphan(at(51), LEASE).await.unwrap(),
        Some(job.no)
    );
    assert_eq!(feed(&two).claim_orphan(at(51), LEASE).await.unwrap(), None);
    let refused = one
        .apply_job(job.no, Vec::new(), Vec::new(), QueryDigest::EMPTY, at(52))
        .await;
    assert!(
        matches!(refused, Err(StoreError::NotClaimed)),
        "{refused:?}"
    );
    let refused = one.fail_job(job.no, "stop", at(52)).await;
    assert!(
        matches!(refused, Err(StoreError::NotClaimed)),
        "{refused:?}"
    );
    two.apply_job(job.no, Vec::new(), Vec::new(), QueryDigest::EMPTY, at(53))
        .await
        .unwrap();
    // A finished job is nobody's to claim.
    assert!(!feed(&one).claim_job(job.no, at(200), LEASE).await.unwrap());
    assert_eq!(feed(&one).claim_orphan(at(200), LEASE).await.unwrap(), None);

    // A job nobody claimed is anyone's at once.
    let unclaimed = queued_job(&one, "unclaimed", at(300)).await;
    assert_eq!(
        feed(&two).claim_orphan(at(301), LEASE).await.unwrap(),
        Some(unclaimed.no)
    );
    two.apply_job(
        unclaimed.no,
        Vec::new(),
        Vec::new(),
        QueryDigest::EMPTY,
        at(302),
    )
    .await
    .unwrap();

    // An audience's jobs run in the order they were made: the second waits for the first.
    let audience = new_audience(&one, "ordered", at(400)).await;
    let first = job_on(&one, &audience, "first", at(400)).await;
    let second = job_on(&one, &audience, "second", at(401)).await;
    assert!(
        !feed(&two)
            .claim_job(second.no, at(402), LEASE)
            .await
            .unwrap()
    );
    assert_eq!(
        feed(&two).claim_orphan(at(402), LEASE).await.unwrap(),
        Some(first.no)
    );
    assert_eq!(feed(&one).claim_orphan(at(402), LEASE).await.unwrap(), None);
    two.apply_job(
        first.no,
        Vec::new(),
        Vec::new(),
        QueryDigest::EMPTY,
        at(403),
    )
    .await
    .unwrap();
    assert_eq!(
        feed(&one).claim_orphan(at(404), LEASE).await.unwrap(),
        Some(second.no)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_grants_nothing_to_an_account_erased_since_it_rechecked_its_matches() {
    let Some(server) = Server::find().await else {
        return;
    };
    let databases = Databases::new(&server);
    let (one, two) = pair(&server, &databases).await;
    let written = one
        .write_accounts(vec![account(1), account(2)], at(0))
        .await
        .unwrap();
    let job = queued_job(&one, "erased", at(1)).await;
    let grant = |n: usize| Grant {
        account: written[n].after.no,
        contact_digest: written[n].after.contacts[0].digests.primary(),
        context: tailor_core::Context::Profile,
        consent_seq: None,
        policy_version: tailor_core::Policy::shipped().version(),
    };
    // One re-checked both accounts; two erased one of them before one applied the job.
    two.erase_account("acct-1", at(2)).await.unwrap();
    let applied = one
        .apply_job(
            job.no,
            vec![grant(0), grant(1)],
            Vec::new(),
            QueryDigest::EMPTY,
            at(3),
        )
        .await
        .unwrap();
    let granted: Vec<AccountNo> = applied.granted.iter().map(|m| m.account).collect();
    assert_eq!(granted, vec![written[1].after.no]);
    assert!(
        one.memberships_of(written[0].after.no)
            .await
            .unwrap()
            .is_empty()
    );
    let history = one
        .membership_history(None, Some(written[0].after.no))
        .await
        .unwrap();
    assert!(history.is_empty(), "{history:?}");
    assert_eq!(
        one.memberships_of(written[1].after.no).await.unwrap().len(),
        1
    );
}
