//! The release side of the conformance suite: an audience's canonical query and data epoch,
//! and the ledger of released sizes that privacy budgets are counted from.

use tailor_core::release::{Epsilon, QueryDigest, ReleaseConfig, ReleasedSize};
use tailor_core::{AccountNo, ContactKind, Context};

use super::audiences::{DAY, advertiser, apply, audience, grant, ok, query_of, upload};
use super::{SECOND, T0, contact, grant as consent_grant, t, write};
use crate::{Audience, Charged, JobOp, NewAdvertiser, NewRelease, Release, RevokeReason, Store};

/// Runs every release check, each on a fresh store made by `fresh`.
pub(super) async fn run<S, F, Fut>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = S>,
    S: Store,
{
    queries_and_epochs(fresh().await).await;
    release_ledger(fresh().await).await;
}

async fn reread<S: Store>(store: &S, check: &str, aud: &Audience, now: i64) -> Audience {
    ok(
        check,
        "audience",
        store
            .audience(aud.advertiser_no, &aud.audience_id, t(now))
            .await,
    )
    .unwrap_or_else(|| panic!("{check}: audience {} is gone", aud.audience_id))
}

/// A job sets its audience's query; every change to the members moves the epoch (jobs,
/// consent revocation, expiry, erasure); nothing else does, and other audiences keep theirs.
async fn queries_and_epochs<S: Store>(store: S) {
    const CHECK: &str = "queries and epochs";
    let changes = ok(
        CHECK,
        "write_accounts",
        store
            .write_accounts(
                vec![write(
                    "erased",
                    "US",
                    vec![contact(1, ContactKind::Email, Context::Profile, true)],
                    vec![consent_grant(T0)],
                )],
                t(T0),
            )
            .await,
    );
    let erased = changes[0].after.no;
    let a = advertiser(&store, CHECK, "a", 1, T0).await;
    let aud = audience(&store, CHECK, a.no, "aud", 1, T0).await;
    let other = audience(&store, CHECK, a.no, "other", 540, T0).await;
    assert_eq!(
        (aud.query, aud.epoch, aud.released),
        (QueryDigest::EMPTY, 0, None),
        "{CHECK}: a new audience"
    );

    let job = upload(&store, CHECK, "j1", &aud, JobOp::Add, Vec::new(), T0 + 1).await;
    let grants = vec![grant(erased.0, 1), grant(20, 2), grant(21, 3), grant(22, 4)];
    apply(&store, CHECK, &job, grants, Vec::new(), T0 + 2).await;
    let after_job = reread(&store, CHECK, &aud, T0 + 3).await;
    assert_eq!(
        after_job.query,
        query_of(job.no),
        "{CHECK}: the job's query"
    );
    assert!(
        after_job.epoch > 0,
        "{CHECK}: a job that grants moves the epoch"
    );
    let other_before = reread(&store, CHECK, &other, T0 + 3).await;
    assert_eq!(other_before.epoch, 0, "{CHECK}: another audience's epoch");

    // Reading and an empty revocation change nothing.
    ok(
        CHECK,
        "revoke",
        store
            .revoke(
                vec![(other.no, AccountNo(20))],
                RevokeReason::Ineligible,
                t(T0 + 4),
            )
            .await,
    );
    assert_eq!(
        reread(&store, CHECK, &aud, T0 + 4).await.epoch,
        after_job.epoch,
        "{CHECK}: nothing changed for the audience"
    );

    // Consent.
    ok(
        CHECK,
        "revoke",
        store
            .revoke(
                vec![(aud.no, AccountNo(20))],
                RevokeReason::Ineligible,
                t(T0 + 5),
            )
            .await,
    );
    let after_revoke = reread(&store, CHECK, &aud, T0 + 5).await;
    assert!(
        after_revoke.epoch > after_job.epoch,
        "{CHECK}: a revocation moves the epoch"
    );
    assert_eq!(
        after_revoke.query, after_job.query,
        "{CHECK}: and keeps the query"
    );

    // Erasure.
    ok(
        CHECK,
        "erase_account",
        store.erase_account("erased", t(T0 + 6)).await,
    );
    let after_erasure = reread(&store, CHECK, &aud, T0 + 6).await;
    assert!(
        after_erasure.epoch > after_revoke.epoch,
        "{CHECK}: an erasure moves the epoch"
    );

    // Expiry (the audience keeps members one day).
    let later = T0 + 2 + DAY;
    let expired = ok(
        CHECK,
        "expire_memberships",
        store.expire_memberships(t(later)).await,
    );
    assert_eq!(expired.len(), 2, "{CHECK}: the two members left expire");
    let after_expiry = reread(&store, CHECK, &aud, later).await;
    assert!(
        after_expiry.epoch > after_erasure.epoch,
        "{CHECK}: expiry moves the epoch"
    );
    assert_eq!(
        reread(&store, CHECK, &other, later).await.epoch,
        0,
        "{CHECK}: the other audience was never touched"
    );
}

fn release(aud: &Audience, query: QueryDigest, epoch: u64, size: u64, at: i64) -> Release {
    Release {
        audience_no: aud.no,
        query,
        epoch,
        size: ReleasedSize::Approximate { approximate: size },
        epsilon: ReleaseConfig::default().epsilon,
        at: t(at),
    }
}

fn charge_of(entity: &str, advertiser_no: u32, release: Release) -> NewRelease {
    NewRelease {
        entity: entity.to_owned(),
        advertiser_no,
        release,
    }
}

/// Releases: one answer per (audience, query, epoch), the repeat free; an entity's releases
/// within the period are bounded by its budget, shared by all its advertisers, counted from a
/// ledger that outlives the audience; another entity is not affected; time frees the budget.
async fn release_ledger<S: Store>(store: S) {
    const CHECK: &str = "release ledger";
    let config = ReleaseConfig::default();
    let per_period = config.budget.micros() / config.epsilon.micros();
    assert_eq!(per_period, 10, "{CHECK}: the defaults allow ten releases");
    let a = advertiser(&store, CHECK, "a", 1, T0).await;
    let twin = ok(
        CHECK,
        "create_advertiser",
        store
            .create_advertiser(
                NewAdvertiser {
                    advertiser_id: "twin".into(),
                    name: "twin name".into(),
                    entity: a.entity.clone(),
                    key_id: "twin-key".into(),
                    key_sha256: [9; 32],
                },
                t(T0),
            )
            .await,
    );
    let b = advertiser(&store, CHECK, "b", 2, T0).await;
    let aud = audience(&store, CHECK, a.no, "aud", 540, T0).await;
    let twin_aud = audience(&store, CHECK, twin.no, "twin-aud", 540, T0).await;
    let b_aud = audience(&store, CHECK, b.no, "b-aud", 540, T0).await;
    let job = upload(&store, CHECK, "j1", &aud, JobOp::Add, Vec::new(), T0 + 1).await;
    apply(&store, CHECK, &job, vec![grant(1, 1)], Vec::new(), T0 + 2).await;
    let aud = reread(&store, CHECK, &aud, T0 + 3).await;

    let first = release(&aud, aud.query, aud.epoch, 1200, T0 + 10 * SECOND);
    let charged = ok(
        CHECK,
        "charge_release",
        store
            .charge_release(charge_of(&a.entity, a.no, first), &config)
            .await,
    );
    assert_eq!(
        charged,
        Charged::Recorded(first),
        "{CHECK}: the first release"
    );
    assert_eq!(
        reread(&store, CHECK, &aud, T0 + 11 * SECOND).await.released,
        Some(first),
        "{CHECK}: the audience shows its latest release"
    );
    // The same question again, even with another answer offered: the first answer, free.
    let again = Release {
        size: ReleasedSize::BelowThreshold {
            below_threshold: true,
        },
        at: t(T0 + 20 * SECOND),
        ..first
    };
    let charged = ok(
        CHECK,
        "charge_release",
        store
            .charge_release(charge_of(&a.entity, a.no, again), &config)
            .await,
    );
    assert_eq!(charged, Charged::Cached(first), "{CHECK}: a repeat");
    let charges = ok(
        CHECK,
        "entity_charges",
        store.entity_charges(&a.entity, t(T0)).await,
    );
    assert_eq!(
        charges,
        vec![(first.at, config.epsilon)],
        "{CHECK}: one charge after a repeat"
    );

    // Nine more questions (new epochs) of the same entity, one through its twin advertiser.
    for i in 1..per_period {
        let (who, on) = if i == 5 {
            (&twin, &twin_aud)
        } else {
            (&a, &aud)
        };
        let next = release(
            on,
            aud.query,
            aud.epoch + i,
            1000 + i,
            T0 + (20 + i as i64) * SECOND,
        );
        let charged = ok(
            CHECK,
            "charge_release",
            store
                .charge_release(charge_of(&who.entity, who.no, next), &config)
                .await,
        );
        assert_eq!(charged, Charged::Recorded(next), "{CHECK}: release {i}");
    }
    // The eleventh is refused until the first leaves the window, whichever advertiser asks.
    let until = first.at + config.period();
    for (who, on) in [(&a, &aud), (&twin, &twin_aud)] {
        let over = release(on, aud.query, 999, 5000, T0 + 100 * SECOND);
        let charged = ok(
            CHECK,
            "charge_release",
            store
                .charge_release(charge_of(&who.entity, who.no, over), &config)
                .await,
        );
        assert_eq!(charged, Charged::Refused { until }, "{CHECK}: over budget");
    }
    // A repeat is still free when the budget is spent.
    let charged = ok(
        CHECK,
        "charge_release",
        store
            .charge_release(charge_of(&a.entity, a.no, again), &config)
            .await,
    );
    assert_eq!(
        charged,
        Charged::Cached(first),
        "{CHECK}: a repeat when spent"
    );
    // Another entity has its own budget.
    let theirs = release(&b_aud, QueryDigest::EMPTY, 0, 300, T0 + 100 * SECOND);
    let charged = ok(
        CHECK,
        "charge_release",
        store
            .charge_release(charge_of(&b.entity, b.no, theirs), &config)
            .await,
    );
    assert_eq!(
        charged,
        Charged::Recorded(theirs),
        "{CHECK}: another entity"
    );

    // Deleting the audience gives nothing back.
    ok(
        CHECK,
        "delete_audience",
        store
            .delete_audience(a.no, &aud.audience_id, t(T0 + 200 * SECOND))
            .await,
    );
    let charges = ok(
        CHECK,
        "entity_charges",
        store.entity_charges(&a.entity, t(T0)).await,
    );
    assert_eq!(
        charges.len() as u64,
        per_period,
        "{CHECK}: the ledger outlives the audience"
    );
    let total: u64 = charges.iter().map(|(_, e)| e.micros()).sum();
    assert_eq!(Epsilon::from_micros(total), config.budget, "{CHECK}: spent");

    // Once the first release leaves the window, one more fits.
    let later = release(
        &twin_aud,
        QueryDigest::EMPTY,
        0,
        700,
        until.as_microsecond() + 1,
    );
    let charged = ok(
        CHECK,
        "charge_release",
        store
            .charge_release(charge_of(&twin.entity, twin.no, later), &config)
            .await,
    );
    assert_eq!(
        charged,
        Charged::Recorded(later),
        "{CHECK}: after the window"
    );

    // An unavailable size is not a release.
    let unavailable = Release {
        size: ReleasedSize::Unavailable {
            unavailable_until: until,
        },
        epoch: 12_345,
        ..later
    };
    assert!(
        store
            .charge_release(charge_of(&twin.entity, twin.no, unavailable), &config)
            .await
            .is_err(),
        "{CHECK}: an unavailable size refused"
    );
}
