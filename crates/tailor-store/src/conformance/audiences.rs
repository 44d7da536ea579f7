//! The advertiser side of the conformance suite: advertisers and keys, audiences, upload
//! sessions, jobs, memberships and their history, and what an erasure or a deleted audience
//! does to them.
//!
//! Like the rest of the suite, every check runs on a fresh store, panics with its name on the
//! first difference, and states exact expectations (whole `Applied` values, whole member
//! lists, whole history) rather than sizes.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use tailor_core::release::{KeySetDigest, QueryDigest};
use tailor_core::{AccountNo, ContactKind, Context, KeyedDigest, PolicyVersion};

use super::{SECOND, T0, contact, digest, grant as consent_grant, t, write};
use crate::{
    Advertiser, Applied, Audience, Grant, Job, JobCounts, JobOp, JobState, Membership,
    MembershipChange, MembershipEvent, NewAdvertiser, NewAudience, NewJob, RevokeReason,
    ScannedEvent, SessionPart, StagedPart, Store, StoreError, UploadSession,
};

/// One day, in microseconds.
pub(super) const DAY: i64 = 86_400 * SECOND;

/// Runs every advertiser-side check, each on a fresh store made by `fresh`.
pub(super) async fn run<S, F, Fut>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = S>,
    S: Store,
{
    accounts_by_number(fresh().await).await;
    advertisers_and_keys(fresh().await).await;
    audiences_are_scoped(fresh().await).await;
    sessions_parts_and_commit(fresh().await).await;
    expired_sessions(fresh().await).await;
    job_states(fresh().await).await;
    add_remove_replace(fresh().await).await;
    membership_expiry(fresh().await).await;
    revocation(fresh().await).await;
    erasure_ends_memberships(fresh().await).await;
    audience_deletion(fresh().await).await;
    membership_scan(fresh().await).await;
    history_scan(fresh().await).await;
    big_apply_is_whole(Arc::new(fresh().await)).await;
}

// ---------------------------------------------------------------------------------------------
// Fixtures

/// Unwraps a store result, naming the check and the call.
pub(super) fn ok<T>(check: &str, what: &str, result: Result<T, StoreError>) -> T {
    result.unwrap_or_else(|e| panic!("{check}: {what} failed: {e}"))
}

/// Checks that a call failed with a conflict.
fn conflict<T: std::fmt::Debug>(check: &str, what: &str, result: Result<T, StoreError>) {
    assert!(
        matches!(result, Err(StoreError::Conflict(_))),
        "{check}: {what} should be a conflict, got {result:?}"
    );
}

fn key_hash(seed: u8) -> [u8; 32] {
    [seed; 32]
}

pub(super) async fn advertiser<S: Store>(
    store: &S,
    check: &str,
    id: &str,
    key: u8,
    now: i64,
) -> Advertiser {
    let new = NewAdvertiser {
        advertiser_id: id.to_owned(),
        name: format!("{id} name"),
        entity: format!("{id} entity"),
        key_id: format!("{id}-key-{key}"),
        key_sha256: key_hash(key),
    };
    ok(
        check,
        "create_advertiser",
        store.create_advertiser(new, t(now)).await,
    )
}

pub(super) async fn audience<S: Store>(
    store: &S,
    check: &str,
    advertiser_no: u32,
    id: &str,
    ttl_days: u32,
    now: i64,
) -> Audience {
    let new = NewAudience {
        audience_id: id.to_owned(),
        advertiser_no,
        name: format!("{id} name"),
        description: format!("{id} description"),
        membership_ttl_days: ttl_days,
    };
    ok(
        check,
        "create_audience",
        store.create_audience(new, t(now)).await,
    )
}

pub(super) fn counts(received: u64, accepted: u64, rejected: &[(&str, u64)]) -> JobCounts {
    JobCounts {
        rows_received: received,
        rows_accepted: accepted,
        rejected: rejected
            .iter()
            .map(|(code, n)| ((*code).to_owned(), *n))
            .collect(),
    }
}

/// A matched pair of account `n`, by one of its synthetic digests.
fn matched(n: u32, form: u8) -> (AccountNo, KeyedDigest) {
    (AccountNo(n), digest(u64::from(n), form))
}

async fn session<S: Store>(
    store: &S,
    check: &str,
    id: &str,
    audience: &Audience,
    op: JobOp,
    now: i64,
) -> UploadSession {
    ok(
        check,
        "create_session",
        store
            .create_session(
                id,
                audience.advertiser_no,
                audience.no,
                op,
                t(now),
                t(now + DAY),
            )
            .await,
    )
}

/// Creates a session, stages `parts` (numbered from 1), commits it, and returns the job.
pub(super) async fn upload<S: Store>(
    store: &S,
    check: &str,
    name: &str,
    audience: &Audience,
    op: JobOp,
    parts: Vec<Vec<(AccountNo, KeyedDigest)>>,
    now: i64,
) -> Job {
    let session = session(store, check, &format!("s-{name}"), audience, op, now).await;
    for (i, matched) in parts.into_iter().enumerate() {
        let part = SessionPart {
            part_no: i as u32 + 1,
            keys: part_keys(i as u32 + 1),
            counts: counts(matched.len() as u64, matched.len() as u64, &[]),
            matched,
        };
        ok(
            check,
            "put_session_part",
            store.put_session_part(session.no, part, t(now)).await,
        );
    }
    commit(store, check, &session, name, now).await
}

async fn commit<S: Store>(
    store: &S,
    check: &str,
    session: &UploadSession,
    name: &str,
    now: i64,
) -> Job {
    let job = NewJob {
        job_id: format!("j-{name}"),
        advertiser_no: session.advertiser_no,
        audience_no: session.audience_no,
        op: session.op,
        counts: counts(10, 9, &[("email_invalid", 1)]),
        keys: part_keys(session.no as u32),
    };
    ok(
        check,
        "commit_session",
        store.commit_session(session.no, job, t(now)).await,
    )
}

/// The key set of a part (or job): made from a number.
fn part_keys(n: u32) -> KeySetDigest {
    let mut bytes = [0xA5; 32];
    bytes[..4].copy_from_slice(&n.to_be_bytes());
    KeySetDigest::from_bytes(bytes)
}

/// A staged part as listed, with the key set [`part_keys`] gives its number.
fn staged(part_no: u32, counts: JobCounts) -> StagedPart {
    StagedPart {
        part_no,
        counts,
        keys: part_keys(part_no),
    }
}

/// The canonical query a test job leaves on its audience: made from the job's number.
pub(super) fn query_of(job_no: u64) -> QueryDigest {
    let mut bytes = [0x5A; 32];
    bytes[..8].copy_from_slice(&job_no.to_be_bytes());
    QueryDigest::from_bytes(bytes)
}

/// A grant of account `n` whose basis is made from `seed`.
pub(super) fn grant(n: u32, seed: u64) -> Grant {
    Grant {
        account: AccountNo(n),
        contact_digest: digest(u64::from(n), (seed % 7) as u8 + 1),
        context: if seed.is_multiple_of(2) {
            Context::Profile
        } else {
            Context::Signup
        },
        consent_seq: (!seed.is_multiple_of(3)).then_some(seed),
        policy_version: PolicyVersion([seed as u8; 32]),
    }
}

/// The membership a grant becomes.
fn membership(audience: &Audience, g: &Grant, job: &Job, now: i64) -> Membership {
    Membership {
        audience_no: audience.no,
        account: g.account,
        contact_digest: g.contact_digest,
        context: g.context,
        consent_seq: g.consent_seq,
        policy_version: g.policy_version,
        job_no: job.no,
        granted_at: t(now),
        expires_at: t(now + i64::from(audience.membership_ttl_days) * DAY),
    }
}

/// A job of `op` on `audience` with nothing staged, applied at once with `grants`.
async fn applied_job<S: Store>(
    store: &S,
    check: &str,
    name: &str,
    audience: &Audience,
    op: JobOp,
    grants: Vec<Grant>,
    now: i64,
) -> Applied {
    let job = upload(store, check, name, audience, op, Vec::new(), now).await;
    apply(store, check, &job, grants, Vec::new(), now).await
}

pub(super) async fn apply<S: Store>(
    store: &S,
    check: &str,
    job: &Job,
    grants: Vec<Grant>,
    removals: Vec<AccountNo>,
    now: i64,
) -> Applied {
    ok(
        check,
        "apply_job",
        store
            .apply_job(job.no, grants, removals, query_of(job.no), t(now))
            .await,
    )
}

pub(super) async fn members<S: Store>(
    store: &S,
    check: &str,
    audience_no: u32,
    now: i64,
) -> Vec<u32> {
    ok(
        check,
        "audience_members",
        store.audience_members(audience_no, t(now)).await,
    )
    .into_iter()
    .map(|a| a.0)
    .collect()
}

async fn history<S: Store>(
    store: &S,
    check: &str,
    audience_no: Option<u32>,
    account: Option<u32>,
) -> Vec<MembershipEvent> {
    ok(
        check,
        "membership_history",
        store
            .membership_history(audience_no, account.map(AccountNo))
            .await,
    )
}

/// A history row without its number, for comparing with an expectation.
type EventFacts = (
    u32,
    u32,
    MembershipChange,
    Option<u64>,
    KeyedDigest,
    Context,
    Option<u64>,
    PolicyVersion,
    Timestamp,
);

fn facts(events: &[MembershipEvent]) -> Vec<EventFacts> {
    events
        .iter()
        .map(|e| {
            (
                e.audience_no,
                e.account.0,
                e.change,
                e.job_no,
                e.contact_digest,
                e.context,
                e.consent_seq,
                e.policy_version,
                e.at,
            )
        })
        .collect()
}

fn granted_event(m: &Membership) -> EventFacts {
    (
        m.audience_no,
        m.account.0,
        MembershipChange::Granted,
        Some(m.job_no),
        m.contact_digest,
        m.context,
        m.consent_seq,
        m.policy_version,
        m.granted_at,
    )
}

fn revoked_event(
    m: &Membership,
    reason: RevokeReason,
    job_no: Option<u64>,
    at: Timestamp,
) -> EventFacts {
    (
        m.audience_no,
        m.account.0,
        MembershipChange::Revoked(reason),
        job_no,
        m.contact_digest,
        m.context,
        m.consent_seq,
        m.policy_version,
        at,
    )
}

async fn the_audience<S: Store>(
    store: &S,
    check: &str,
    audience: &Audience,
    now: i64,
) -> Option<Audience> {
    ok(
        check,
        "audience",
        store
            .audience(audience.advertiser_no, &audience.audience_id, t(now))
            .await,
    )
}

async fn job_now<S: Store>(store: &S, check: &str, job: &Job) -> Job {
    ok(check, "job_by_no", store.job_by_no(job.no).await)
        .unwrap_or_else(|| panic!("{check}: job {} is gone", job.job_id))
}

// ---------------------------------------------------------------------------------------------
// Checks

/// Accounts by number and an account's number from its id: exact states, missing ones
/// skipped, duplicates once, account-number order, across many accounts.
async fn accounts_by_number<S: Store>(store: S) {
    const CHECK: &str = "accounts by number";
    let writes = (0..1_200u64)
        .map(|n| {
            write(
                &format!("n-{n}"),
                "US",
                vec![contact(n, ContactKind::Email, Context::Profile, true)],
                (0..n % 3).map(|k| consent_grant(T0 + k as i64)).collect(),
            )
        })
        .collect();
    let changes = ok(
        CHECK,
        "write_accounts",
        store.write_accounts(writes, t(T0)).await,
    );
    ok(
        CHECK,
        "erase_account",
        store.erase_account("n-7", t(T0 + 1)).await,
    );
    let erased = changes[7].after.no;
    assert_eq!(
        ok(CHECK, "account_no", store.account_no("n-3").await),
        Some(changes[3].after.no),
        "{CHECK}: account_no"
    );
    assert_eq!(
        ok(CHECK, "account_no", store.account_no("n-7").await),
        None,
        "{CHECK}: account_no of an erased account"
    );
    assert_eq!(
        ok(CHECK, "account_no", store.account_no("nobody").await),
        None,
        "{CHECK}: account_no of no account"
    );

    // Every other account, backwards, some twice, the erased one and one never given.
    let mut wanted: Vec<AccountNo> = changes
        .iter()
        .rev()
        .step_by(2)
        .map(|c| c.after.no)
        .collect();
    wanted.push(changes[11].after.no);
    wanted.push(erased);
    wanted.push(AccountNo(u32::MAX));
    let mut expected: Vec<_> = changes
        .iter()
        .rev()
        .step_by(2)
        .map(|c| c.after.clone())
        .filter(|s| s.no != erased)
        .collect();
    expected.sort_by_key(|s| s.no);
    let states = ok(CHECK, "accounts_by_no", store.accounts_by_no(&wanted).await);
    assert!(
        states == expected,
        "{CHECK}: accounts_by_no gave {} states, expected {}",
        states.len(),
        expected.len()
    );
    assert!(
        ok(CHECK, "accounts_by_no", store.accounts_by_no(&[]).await).is_empty(),
        "{CHECK}: no accounts"
    );
    let ids = ok(CHECK, "account_ids", store.account_ids(&wanted).await);
    let expected_ids: Vec<_> = expected
        .iter()
        .map(|s| (s.no, s.account_id.clone()))
        .collect();
    assert!(ids == expected_ids, "{CHECK}: account_ids");
    assert!(
        ok(CHECK, "account_ids", store.account_ids(&[]).await).is_empty(),
        "{CHECK}: no ids"
    );
}

/// Advertisers and keys: lookup by id and by key hash, a second key, revocation (only
/// unrevoked keys find their advertiser; revoking twice keeps the first time), rotation,
/// another advertiser's key untouchable, taken ids and keys refused.
async fn advertisers_and_keys<S: Store>(store: S) {
    const CHECK: &str = "advertisers and keys";
    let a = advertiser(&store, CHECK, "adv-a", 1, T0).await;
    assert_eq!(
        (
            a.advertiser_id.as_str(),
            a.name.as_str(),
            a.entity.as_str(),
            a.created_at
        ),
        ("adv-a", "adv-a name", "adv-a entity", t(T0)),
        "{CHECK}: created advertiser"
    );
    let b = advertiser(&store, CHECK, "adv-b", 2, T0 + 1).await;
    assert_ne!(a.no, b.no, "{CHECK}: advertiser numbers are distinct");
    assert_eq!(
        ok(CHECK, "advertiser", store.advertiser("adv-a").await),
        Some(a.clone()),
        "{CHECK}: advertiser()"
    );
    assert_eq!(
        ok(CHECK, "advertiser", store.advertiser("ADV-A").await),
        None,
        "{CHECK}: ids are exact"
    );
    let by_key = |seed: u8| {
        let store = &store;
        async move {
            ok(
                CHECK,
                "advertiser_by_key",
                store.advertiser_by_key(&key_hash(seed)).await,
            )
        }
    };
    assert_eq!(by_key(1).await, Some(a.clone()), "{CHECK}: first key");
    assert_eq!(by_key(2).await, Some(b.clone()), "{CHECK}: b's key");
    assert_eq!(by_key(3).await, None, "{CHECK}: unknown key");

    // Rotation: a second key, then the first revoked.
    let second = ok(
        CHECK,
        "add_api_key",
        store
            .add_api_key(a.no, "adv-a-key-3", key_hash(3), t(T0 + 10))
            .await,
    );
    assert_eq!(
        (
            second.key_id.as_str(),
            second.advertiser_no,
            second.created_at,
            second.revoked_at
        ),
        ("adv-a-key-3", a.no, t(T0 + 10), None),
        "{CHECK}: added key"
    );
    assert_eq!(by_key(3).await, Some(a.clone()), "{CHECK}: second key");
    // Another advertiser cannot revoke a's key.
    assert_eq!(
        ok(
            CHECK,
            "revoke_api_key",
            store.revoke_api_key(b.no, "adv-a-key-1", t(T0 + 20)).await
        ),
        None,
        "{CHECK}: revoking another advertiser's key"
    );
    assert_eq!(by_key(1).await, Some(a.clone()), "{CHECK}: still valid");
    let revoked = ok(
        CHECK,
        "revoke_api_key",
        store.revoke_api_key(a.no, "adv-a-key-1", t(T0 + 30)).await,
    );
    assert_eq!(
        revoked.as_ref().map(|k| (k.key_id.as_str(), k.revoked_at)),
        Some(("adv-a-key-1", Some(t(T0 + 30)))),
        "{CHECK}: revoked key"
    );
    assert_eq!(by_key(1).await, None, "{CHECK}: a revoked key finds nobody");
    assert_eq!(
        by_key(3).await,
        Some(a.clone()),
        "{CHECK}: the new key works"
    );
    let again = ok(
        CHECK,
        "revoke_api_key",
        store.revoke_api_key(a.no, "adv-a-key-1", t(T0 + 40)).await,
    );
    assert_eq!(
        again.and_then(|k| k.revoked_at),
        Some(t(T0 + 30)),
        "{CHECK}: revoking twice keeps the first time"
    );
    assert_eq!(
        ok(
            CHECK,
            "revoke_api_key",
            store.revoke_api_key(a.no, "no-such-key", t(T0 + 40)).await
        ),
        None,
        "{CHECK}: revoking no key"
    );
    let keys = ok(CHECK, "api_keys", store.api_keys(a.no).await);
    let listed: Vec<(&str, Option<Timestamp>)> = keys
        .iter()
        .map(|k| (k.key_id.as_str(), k.revoked_at))
        .collect();
    assert_eq!(
        listed,
        vec![("adv-a-key-1", Some(t(T0 + 30))), ("adv-a-key-3", None)],
        "{CHECK}: a's keys, oldest first"
    );
    let b_keys = ok(CHECK, "api_keys", store.api_keys(b.no).await);
    assert_eq!(
        b_keys.iter().map(|k| k.key_id.as_str()).collect::<Vec<_>>(),
        vec!["adv-b-key-2"],
        "{CHECK}: b's keys"
    );

    // Taken ids and keys.
    let mut duplicate = NewAdvertiser {
        advertiser_id: "adv-a".into(),
        name: "x".into(),
        entity: "x".into(),
        key_id: "fresh-key".into(),
        key_sha256: key_hash(9),
    };
    conflict(
        CHECK,
        "a taken advertiser id",
        store.create_advertiser(duplicate.clone(), t(T0)).await,
    );
    duplicate.advertiser_id = "adv-c".into();
    duplicate.key_sha256 = key_hash(3);
    conflict(
        CHECK,
        "a taken key",
        store.create_advertiser(duplicate, t(T0)).await,
    );
    assert_eq!(
        ok(CHECK, "advertiser", store.advertiser("adv-c").await),
        None,
        "{CHECK}: a refused advertiser is not created"
    );
    conflict(
        CHECK,
        "a taken key id",
        store
            .add_api_key(b.no, "adv-a-key-3", key_hash(10), t(T0))
            .await,
    );
    conflict(
        CHECK,
        "a key for no advertiser",
        store
            .add_api_key(a.no.max(b.no) + 100, "k", key_hash(11), t(T0))
            .await,
    );
    assert_eq!(
        ok(CHECK, "counts", store.counts().await).advertisers,
        2,
        "{CHECK}: advertiser count"
    );
}

/// An advertiser sees, lists, deletes, uploads to and reads only its own audiences, jobs
/// and sessions; another advertiser's ids are not found.
async fn audiences_are_scoped<S: Store>(store: S) {
    const CHECK: &str = "audiences are scoped";
    let a = advertiser(&store, CHECK, "a", 1, T0).await;
    let b = advertiser(&store, CHECK, "b", 2, T0).await;
    let a1 = audience(&store, CHECK, a.no, "a1", 540, T0 + 1).await;
    let a2 = audience(&store, CHECK, a.no, "a2", 30, T0 + 2).await;
    let b1 = audience(&store, CHECK, b.no, "b1", 540, T0 + 3).await;
    assert_eq!(
        a1,
        Audience {
            no: a1.no,
            audience_id: "a1".into(),
            advertiser_no: a.no,
            entity: a.entity.clone(),
            name: "a1 name".into(),
            description: "a1 description".into(),
            membership_ttl_days: 540,
            created_at: t(T0 + 1),
            updated_at: t(T0 + 1),
            members: 0,
            pending_jobs: 0,
            succeeded_jobs: 0,
            query: QueryDigest::EMPTY,
            epoch: 0,
            released: None,
        },
        "{CHECK}: created audience"
    );
    assert_eq!(
        ok(CHECK, "audiences", store.audiences(a.no, t(T0 + 5)).await),
        vec![a1.clone(), a2.clone()],
        "{CHECK}: a's audiences"
    );
    assert_eq!(
        ok(CHECK, "audiences", store.audiences(b.no, t(T0 + 5)).await),
        vec![b1.clone()],
        "{CHECK}: b's audiences"
    );
    assert_eq!(
        ok(CHECK, "all_audiences", store.all_audiences(t(T0 + 5)).await),
        vec![a1.clone(), a2.clone(), b1.clone()],
        "{CHECK}: every audience"
    );
    assert_eq!(
        ok(
            CHECK,
            "audience",
            store.audience(a.no, "a2", t(T0 + 5)).await
        ),
        Some(a2.clone()),
        "{CHECK}: own audience"
    );
    assert_eq!(
        ok(
            CHECK,
            "audience",
            store.audience(a.no, "b1", t(T0 + 5)).await
        ),
        None,
        "{CHECK}: another advertiser's audience"
    );
    assert_eq!(
        ok(
            CHECK,
            "delete_audience",
            store.delete_audience(a.no, "b1", t(T0 + 6)).await
        ),
        None,
        "{CHECK}: deleting another advertiser's audience"
    );
    assert_eq!(
        the_audience(&store, CHECK, &b1, T0 + 7).await,
        Some(b1.clone()),
        "{CHECK}: b1 is still there"
    );

    // Sessions and jobs.
    conflict(
        CHECK,
        "a session on another advertiser's audience",
        store
            .create_session("s-x", a.no, b1.no, JobOp::Add, t(T0), t(T0 + DAY))
            .await,
    );
    let job = upload(
        &store,
        CHECK,
        "b-job",
        &b1,
        JobOp::Add,
        vec![vec![matched(1, 1)]],
        T0 + 8,
    )
    .await;
    assert_eq!(
        ok(CHECK, "job", store.job(a.no, "j-b-job").await),
        None,
        "{CHECK}: another advertiser's job"
    );
    assert_eq!(
        ok(CHECK, "job", store.job(b.no, "j-b-job").await),
        Some(job.clone()),
        "{CHECK}: own job"
    );
    assert_eq!(
        ok(CHECK, "session", store.session(a.no, "s-b-job").await),
        None,
        "{CHECK}: another advertiser's session"
    );
    assert!(
        ok(CHECK, "session", store.session(b.no, "s-b-job").await).is_some(),
        "{CHECK}: own session"
    );

    // Taken ids, missing advertisers.
    let taken = NewAudience {
        audience_id: "a1".into(),
        advertiser_no: b.no,
        name: String::new(),
        description: String::new(),
        membership_ttl_days: 1,
    };
    conflict(
        CHECK,
        "a taken audience id",
        store.create_audience(taken, t(T0)).await,
    );
    let orphan = NewAudience {
        audience_id: "orphan".into(),
        advertiser_no: a.no.max(b.no) + 100,
        name: String::new(),
        description: String::new(),
        membership_ttl_days: 1,
    };
    conflict(
        CHECK,
        "an audience of no advertiser",
        store.create_audience(orphan, t(T0)).await,
    );
    conflict(
        CHECK,
        "a taken session id",
        store
            .create_session("s-b-job", b.no, b1.no, JobOp::Add, t(T0), t(T0 + DAY))
            .await,
    );
    assert_eq!(
        ok(CHECK, "counts", store.counts().await).audiences,
        3,
        "{CHECK}: audience count"
    );
}

/// Parts are staged by number (a part sent again replaces the first), counters round-trip,
/// a commit creates the queued job once, a committed session takes no more parts, and the
/// staged matches are the sorted union of the parts.
async fn sessions_parts_and_commit<S: Store>(store: S) {
    const CHECK: &str = "sessions, parts and commit";
    let a = advertiser(&store, CHECK, "a", 1, T0).await;
    let aud = audience(&store, CHECK, a.no, "aud", 540, T0).await;
    let s = session(&store, CHECK, "sess", &aud, JobOp::Replace, T0 + 1).await;
    assert_eq!(
        s,
        UploadSession {
            no: s.no,
            session_id: "sess".into(),
            advertiser_no: a.no,
            audience_no: aud.no,
            op: JobOp::Replace,
            created_at: t(T0 + 1),
            expires_at: t(T0 + 1 + DAY),
            job_no: None,
        },
        "{CHECK}: created session"
    );
    let odd = counts(5, 2, &[("phone_invalid", 2), ("odd;code=with%", 1)]);
    let put = |part_no: u32, c: JobCounts, pairs: Vec<(AccountNo, KeyedDigest)>| {
        let store = &store;
        async move {
            ok(
                CHECK,
                "put_session_part",
                store
                    .put_session_part(
                        s.no,
                        SessionPart {
                            part_no,
                            keys: part_keys(part_no),
                            counts: c,
                            matched: pairs,
                        },
                        t(T0 + 2),
                    )
                    .await,
            );
        }
    };
    put(2, counts(1, 1, &[]), vec![matched(9, 1)]).await;
    put(
        1,
        odd.clone(),
        vec![matched(5, 1), matched(3, 2), matched(5, 1), matched(3, 1)],
    )
    .await;
    // Part 2 again: it replaces the first part 2 (whose match of 9 goes).
    put(
        2,
        counts(4, 3, &[("email_invalid", 1)]),
        vec![matched(7, 1), matched(3, 1), matched(1, 2)],
    )
    .await;
    put(u32::MAX, counts(0, 0, &[]), Vec::new()).await;
    assert_eq!(
        ok(CHECK, "session_parts", store.session_parts(s.no).await),
        vec![
            staged(1, odd.clone()),
            staged(2, counts(4, 3, &[("email_invalid", 1)])),
            staged(u32::MAX, counts(0, 0, &[])),
        ],
        "{CHECK}: parts by number"
    );

    let new = NewJob {
        job_id: "job-1".into(),
        advertiser_no: a.no,
        audience_no: aud.no,
        op: JobOp::Replace,
        counts: counts(9, 5, &[("phone_invalid", 2), ("email_invalid", 2)]),
        keys: part_keys(77),
    };
    let mismatched = NewJob {
        op: JobOp::Add,
        ..new.clone()
    };
    conflict(
        CHECK,
        "a job that does not match its session",
        store.commit_session(s.no, mismatched, t(T0 + 3)).await,
    );
    let job = ok(
        CHECK,
        "commit_session",
        store.commit_session(s.no, new.clone(), t(T0 + 3)).await,
    );
    assert_eq!(
        job,
        Job {
            no: job.no,
            job_id: "job-1".into(),
            advertiser_no: a.no,
            audience_no: aud.no,
            op: JobOp::Replace,
            state: JobState::Queued,
            counts: new.counts.clone(),
            error: None,
            created_at: t(T0 + 3),
            finished_at: None,
            keys: part_keys(77),
        },
        "{CHECK}: committed job"
    );
    assert_eq!(
        ok(CHECK, "job", store.job(a.no, "job-1").await),
        Some(job.clone()),
        "{CHECK}: job()"
    );
    assert_eq!(
        ok(CHECK, "job_by_no", store.job_by_no(job.no).await),
        Some(job.clone()),
        "{CHECK}: job_by_no()"
    );
    assert_eq!(
        ok(CHECK, "session", store.session(a.no, "sess").await).and_then(|s| s.job_no),
        Some(job.no),
        "{CHECK}: the session names its job"
    );
    assert_eq!(
        ok(
            CHECK,
            "audience",
            store.audience(a.no, "aud", t(T0 + 4)).await
        )
        .map(|a| (a.pending_jobs, a.succeeded_jobs)),
        Some((1, 0)),
        "{CHECK}: a pending job"
    );

    conflict(
        CHECK,
        "committing twice",
        store.commit_session(s.no, new.clone(), t(T0 + 4)).await,
    );
    conflict(
        CHECK,
        "a part after the commit",
        store
            .put_session_part(
                s.no,
                SessionPart {
                    part_no: 3,
                    keys: part_keys(3),
                    counts: JobCounts::default(),
                    matched: Vec::new(),
                },
                t(T0 + 4),
            )
            .await,
    );
    let other = session(&store, CHECK, "sess-2", &aud, JobOp::Replace, T0 + 5).await;
    conflict(
        CHECK,
        "a taken job id",
        store.commit_session(other.no, new, t(T0 + 5)).await,
    );
    assert_eq!(
        ok(CHECK, "session", store.session(a.no, "sess-2").await).and_then(|s| s.job_no),
        None,
        "{CHECK}: a refused commit links nothing"
    );

    let mut expected = vec![
        matched(1, 2),
        matched(3, 1),
        matched(3, 2),
        matched(5, 1),
        matched(7, 1),
    ];
    expected.sort();
    assert_eq!(
        ok(CHECK, "staged_matches", store.staged_matches(job.no).await),
        expected,
        "{CHECK}: the union of the parts, sorted, once each"
    );
    conflict(
        CHECK,
        "staged matches of no job",
        store.staged_matches(job.no + 1000).await,
    );
    assert_eq!(
        ok(CHECK, "unfinished_jobs", store.unfinished_jobs().await),
        vec![job],
        "{CHECK}: unfinished jobs"
    );
}

/// Uncommitted sessions past their expiry go, with their parts; committed ones and those
/// still open stay.
async fn expired_sessions<S: Store>(store: S) {
    const CHECK: &str = "expired sessions";
    let a = advertiser(&store, CHECK, "a", 1, T0).await;
    let aud = audience(&store, CHECK, a.no, "aud", 540, T0).await;
    let make = |id: &'static str, expires: i64| {
        let store = &store;
        let aud = &aud;
        async move {
            ok(
                CHECK,
                "create_session",
                store
                    .create_session(id, aud.advertiser_no, aud.no, JobOp::Add, t(T0), t(expires))
                    .await,
            )
        }
    };
    let early = make("early", T0 + 10).await;
    let at_now = make("at-now", T0 + 20).await;
    let late = make("late", T0 + 21).await;
    let committed = make("committed", T0 + 5).await;
    for s in [&early, &at_now, &late, &committed] {
        ok(
            CHECK,
            "put_session_part",
            store
                .put_session_part(
                    s.no,
                    SessionPart {
                        part_no: 1,
                        keys: part_keys(1),
                        counts: counts(1, 1, &[]),
                        matched: vec![matched(1, 1)],
                    },
                    t(T0),
                )
                .await,
        );
    }
    let job = commit(&store, CHECK, &committed, "committed", T0 + 1).await;
    assert_eq!(
        ok(
            CHECK,
            "expire_sessions",
            store.expire_sessions(t(T0 + 20)).await
        ),
        2,
        "{CHECK}: sessions expired at or before now"
    );
    for (id, present) in [
        ("early", false),
        ("at-now", false),
        ("late", true),
        ("committed", true),
    ] {
        assert_eq!(
            ok(CHECK, "session", store.session(a.no, id).await).is_some(),
            present,
            "{CHECK}: session {id}"
        );
    }
    assert!(
        ok(CHECK, "session_parts", store.session_parts(early.no).await).is_empty(),
        "{CHECK}: an expired session's parts go"
    );
    assert_eq!(
        ok(CHECK, "staged_matches", store.staged_matches(job.no).await),
        vec![matched(1, 1)],
        "{CHECK}: a committed session keeps its parts"
    );
    conflict(
        CHECK,
        "a part for an expired session",
        store
            .put_session_part(
                early.no,
                SessionPart {
                    part_no: 2,
                    keys: part_keys(2),
                    counts: JobCounts::default(),
                    matched: Vec::new(),
                },
                t(T0 + 30),
            )
            .await,
    );
    assert_eq!(
        ok(
            CHECK,
            "expire_sessions",
            store.expire_sessions(t(T0 + 20)).await
        ),
        0,
        "{CHECK}: nothing left to expire"
    );
}

/// Job states: queued, running (twice is fine), failed with its message and without its
/// parts, and no change after a job finished; unfinished jobs oldest first.
async fn job_states<S: Store>(store: S) {
    const CHECK: &str = "job states";
    let a = advertiser(&store, CHECK, "a", 1, T0).await;
    let aud = audience(&store, CHECK, a.no, "aud", 540, T0).await;
    let first = upload(
        &store,
        CHECK,
        "first",
        &aud,
        JobOp::Add,
        vec![vec![matched(1, 1)]],
        T0 + 1,
    )
    .await;
    let second = upload(
        &store,
        CHECK,
        "second",
        &aud,
        JobOp::Remove,
        vec![vec![matched(2, 1)]],
        T0 + 2,
    )
    .await;
    let third = upload(
        &store,
        CHECK,
        "third",
        &aud,
        JobOp::Add,
        vec![vec![matched(3, 1)]],
        T0 + 3,
    )
    .await;

    ok(
        CHECK,
        "set_job_running",
        store.set_job_running(second.no, t(T0 + 10)).await,
    );
    ok(
        CHECK,
        "set_job_running",
        store.set_job_running(second.no, t(T0 + 11)).await,
    );
    assert_eq!(
        job_now(&store, CHECK, &second).await.state,
        JobState::Running,
        "{CHECK}: running"
    );
    let unfinished: Vec<(String, JobState)> =
        ok(CHECK, "unfinished_jobs", store.unfinished_jobs().await)
            .into_iter()
            .map(|j| (j.job_id, j.state))
            .collect();
    assert_eq!(
        unfinished,
        vec![
            ("j-first".to_owned(), JobState::Queued),
            ("j-second".to_owned(), JobState::Running),
            ("j-third".to_owned(), JobState::Queued),
        ],
        "{CHECK}: unfinished jobs, oldest first"
    );

    ok(
        CHECK,
        "fail_job",
        store
            .fail_job(second.no, "could not read the list", t(T0 + 12))
            .await,
    );
    let failed = job_now(&store, CHECK, &second).await;
    assert_eq!(
        (failed.state, failed.error.as_deref(), failed.finished_at),
        (
            JobState::Failed,
            Some("could not read the list"),
            Some(t(T0 + 12))
        ),
        "{CHECK}: failed job"
    );
    assert!(
        ok(
            CHECK,
            "staged_matches",
            store.staged_matches(second.no).await
        )
        .is_empty(),
        "{CHECK}: a failed job's parts go"
    );
    conflict(
        CHECK,
        "failing twice",
        store.fail_job(second.no, "again", t(T0 + 13)).await,
    );
    conflict(
        CHECK,
        "running a failed job",
        store.set_job_running(second.no, t(T0 + 13)).await,
    );
    conflict(
        CHECK,
        "applying a failed job",
        store
            .apply_job(
                second.no,
                Vec::new(),
                vec![AccountNo(2)],
                query_of(second.no),
                t(T0 + 13),
            )
            .await,
    );
    assert_eq!(
        job_now(&store, CHECK, &second).await,
        failed,
        "{CHECK}: a finished job does not change"
    );

    apply(
        &store,
        CHECK,
        &first,
        vec![grant(1, 1)],
        Vec::new(),
        T0 + 14,
    )
    .await;
    let done = job_now(&store, CHECK, &first).await;
    assert_eq!(
        (done.state, done.error.as_deref(), done.finished_at),
        (JobState::Succeeded, None, Some(t(T0 + 14))),
        "{CHECK}: succeeded job"
    );
    conflict(
        CHECK,
        "failing a succeeded job",
        store.fail_job(first.no, "x", t(T0 + 15)).await,
    );
    conflict(
        CHECK,
        "applying twice",
        store
            .apply_job(
                first.no,
                vec![grant(1, 2)],
                Vec::new(),
                query_of(first.no),
                t(T0 + 15),
            )
            .await,
    );
    conflict(
        CHECK,
        "running no job",
        store.set_job_running(third.no + 1000, t(T0 + 15)).await,
    );
    conflict(
        CHECK,
        "failing no job",
        store.fail_job(third.no + 1000, "x", t(T0 + 15)).await,
    );
    let unfinished: Vec<String> = ok(CHECK, "unfinished_jobs", store.unfinished_jobs().await)
        .into_iter()
        .map(|j| j.job_id)
        .collect();
    assert_eq!(
        unfinished,
        vec!["j-third".to_owned()],
        "{CHECK}: unfinished jobs at the end"
    );
    assert_eq!(
        the_audience(&store, CHECK, &aud, T0 + 16).await.map(|a| (
            a.members,
            a.pending_jobs,
            a.succeeded_jobs
        )),
        Some((1, 1, 1)),
        "{CHECK}: audience counts"
    );
}

/// `add` grants and renews, `remove` ends listed members, `replace` swaps the set; each
/// returns exactly what changed, the members and memberships read back exactly, every grant
/// and end is in the history with its basis, and other audiences are untouched.
async fn add_remove_replace<S: Store>(store: S) {
    const CHECK: &str = "add, remove, replace";
    let a = advertiser(&store, CHECK, "a", 1, T0).await;
    let aud = audience(&store, CHECK, a.no, "aud", 30, T0).await;
    let other = audience(&store, CHECK, a.no, "other", 540, T0).await;

    // Another audience with account 1, which nothing below may touch.
    let t_other = T0 + SECOND;
    let other_job = upload(
        &store,
        CHECK,
        "other",
        &other,
        JobOp::Add,
        Vec::new(),
        t_other,
    )
    .await;
    let other_grant = grant(1, 40);
    let other_applied = apply(
        &store,
        CHECK,
        &other_job,
        vec![other_grant],
        Vec::new(),
        t_other,
    )
    .await;
    let other_membership = membership(&other, &other_grant, &other_job, t_other);
    assert_eq!(
        other_applied,
        Applied {
            granted: vec![other_membership],
            revoked: Vec::new(),
        },
        "{CHECK}: the other audience's grant"
    );

    // add 1, 2, 3 (2 listed twice: the first listing counts), out of order.
    let t1 = T0 + 2 * SECOND;
    let job1 = upload(
        &store,
        CHECK,
        "job1",
        &aud,
        JobOp::Add,
        vec![vec![matched(1, 1), matched(2, 1), matched(3, 1)]],
        t1,
    )
    .await;
    let (g1, g2, g3) = (grant(1, 1), grant(2, 2), grant(3, 3));
    let applied = apply(
        &store,
        CHECK,
        &job1,
        vec![g3, g2, g1, grant(2, 9)],
        Vec::new(),
        t1,
    )
    .await;
    let m1 = [
        membership(&aud, &g1, &job1, t1),
        membership(&aud, &g2, &job1, t1),
        membership(&aud, &g3, &job1, t1),
    ];
    assert_eq!(
        applied,
        Applied {
            granted: m1.to_vec(),
            revoked: Vec::new(),
        },
        "{CHECK}: first add"
    );
    assert_eq!(
        members(&store, CHECK, aud.no, t1).await,
        vec![1, 2, 3],
        "{CHECK}: members after add"
    );
    assert!(
        ok(CHECK, "staged_matches", store.staged_matches(job1.no).await).is_empty(),
        "{CHECK}: an applied job's parts go"
    );
    let done = job_now(&store, CHECK, &job1).await;
    assert_eq!(
        (done.state, done.finished_at),
        (JobState::Succeeded, Some(t(t1))),
        "{CHECK}: job1 succeeded"
    );

    // add 3 again (renewed: new basis, job, times) and 4.
    let t2 = T0 + 3 * SECOND;
    let job2 = upload(&store, CHECK, "job2", &aud, JobOp::Add, Vec::new(), t2).await;
    let (g3b, g4) = (grant(3, 4), grant(4, 5));
    let applied = apply(&store, CHECK, &job2, vec![g4, g3b], Vec::new(), t2).await;
    let m2 = [
        membership(&aud, &g3b, &job2, t2),
        membership(&aud, &g4, &job2, t2),
    ];
    assert_eq!(
        applied,
        Applied {
            granted: m2.to_vec(),
            revoked: Vec::new(),
        },
        "{CHECK}: add renewing a member"
    );
    assert_eq!(
        ok(
            CHECK,
            "memberships_of",
            store.memberships_of(AccountNo(3)).await
        ),
        vec![m2[0]],
        "{CHECK}: the renewed membership"
    );
    assert_eq!(
        the_audience(&store, CHECK, &aud, t2)
            .await
            .map(|a| (a.members, a.updated_at)),
        Some((4, t(t2))),
        "{CHECK}: size and update time after the renewal"
    );

    // remove 2, a non-member and 2 again.
    let t3 = T0 + 4 * SECOND;
    let job3 = upload(&store, CHECK, "job3", &aud, JobOp::Remove, Vec::new(), t3).await;
    conflict(
        CHECK,
        "grants for a remove job",
        store
            .apply_job(
                job3.no,
                vec![grant(9, 1)],
                Vec::new(),
                query_of(job3.no),
                t(t3),
            )
            .await,
    );
    let applied = apply(
        &store,
        CHECK,
        &job3,
        Vec::new(),
        vec![AccountNo(2), AccountNo(99), AccountNo(2)],
        t3,
    )
    .await;
    assert_eq!(
        applied,
        Applied {
            granted: Vec::new(),
            revoked: vec![(aud.no, AccountNo(2))],
        },
        "{CHECK}: remove"
    );
    assert_eq!(
        members(&store, CHECK, aud.no, t3).await,
        vec![1, 3, 4],
        "{CHECK}: members after remove"
    );

    // replace by 3 and 5: 1 and 4 end.
    let t4 = T0 + 5 * SECOND;
    let job4 = upload(&store, CHECK, "job4", &aud, JobOp::Replace, Vec::new(), t4).await;
    conflict(
        CHECK,
        "removals for a replace job",
        store
            .apply_job(
                job4.no,
                Vec::new(),
                vec![AccountNo(1)],
                query_of(job4.no),
                t(t4),
            )
            .await,
    );
    let (g3c, g5) = (grant(3, 6), grant(5, 7));
    let applied = apply(&store, CHECK, &job4, vec![g5, g3c], Vec::new(), t4).await;
    let m4 = [
        membership(&aud, &g3c, &job4, t4),
        membership(&aud, &g5, &job4, t4),
    ];
    assert_eq!(
        applied,
        Applied {
            granted: m4.to_vec(),
            revoked: vec![(aud.no, AccountNo(1)), (aud.no, AccountNo(4))],
        },
        "{CHECK}: replace"
    );
    assert_eq!(
        members(&store, CHECK, aud.no, t4).await,
        vec![3, 5],
        "{CHECK}: members after replace"
    );
    assert_eq!(
        ok(
            CHECK,
            "memberships_of",
            store.memberships_of(AccountNo(1)).await
        ),
        vec![other_membership],
        "{CHECK}: the other audience keeps account 1"
    );
    assert_eq!(
        members(&store, CHECK, other.no, t4).await,
        vec![1],
        "{CHECK}: the other audience is untouched"
    );

    // replace by nothing: every member ends.
    let t5 = T0 + 6 * SECOND;
    let job5 = upload(&store, CHECK, "job5", &aud, JobOp::Replace, Vec::new(), t5).await;
    let applied = apply(&store, CHECK, &job5, Vec::new(), Vec::new(), t5).await;
    assert_eq!(
        applied,
        Applied {
            granted: Vec::new(),
            revoked: vec![(aud.no, AccountNo(3)), (aud.no, AccountNo(5))],
        },
        "{CHECK}: replace by an empty list"
    );
    assert!(
        members(&store, CHECK, aud.no, t5).await.is_empty(),
        "{CHECK}: empty after"
    );
    assert_eq!(
        the_audience(&store, CHECK, &aud, t5).await.map(|a| (
            a.members,
            a.pending_jobs,
            a.succeeded_jobs
        )),
        Some((0, 0, 5)),
        "{CHECK}: audience counts at the end"
    );

    // The whole history of the audience, in order.
    let ended = |m: &Membership, reason, job: Option<&Job>, at| {
        revoked_event(m, reason, job.map(|j| j.no), t(at))
    };
    let expected = vec![
        granted_event(&m1[0]),
        granted_event(&m1[1]),
        granted_event(&m1[2]),
        granted_event(&m2[0]),
        granted_event(&m2[1]),
        ended(&m1[1], RevokeReason::Removed, Some(&job3), t3),
        granted_event(&m4[0]),
        granted_event(&m4[1]),
        ended(&m1[0], RevokeReason::Replaced, Some(&job4), t4),
        ended(&m2[1], RevokeReason::Replaced, Some(&job4), t4),
        ended(&m4[0], RevokeReason::Replaced, Some(&job5), t5),
        ended(&m4[1], RevokeReason::Replaced, Some(&job5), t5),
    ];
    let events = history(&store, CHECK, Some(aud.no), None).await;
    assert_eq!(facts(&events), expected, "{CHECK}: the audience's history");
    assert!(
        events.windows(2).all(|w| w[0].no < w[1].no),
        "{CHECK}: history numbers increase"
    );
    let of_three: Vec<EventFacts> = expected.iter().filter(|e| e.1 == 3).cloned().collect();
    assert_eq!(
        facts(&history(&store, CHECK, Some(aud.no), Some(3)).await),
        of_three,
        "{CHECK}: one account's history in the audience"
    );
    let mut of_one = vec![granted_event(&other_membership)];
    of_one.extend(expected.iter().filter(|e| e.1 == 1).cloned());
    assert_eq!(
        facts(&history(&store, CHECK, None, Some(1)).await),
        of_one,
        "{CHECK}: one account's history everywhere"
    );
    assert_eq!(
        history(&store, CHECK, None, None).await.len(),
        expected.len() + 1,
        "{CHECK}: the whole history"
    );
    assert_eq!(
        ok(CHECK, "counts", store.counts().await).memberships,
        1,
        "{CHECK}: membership count"
    );
}

/// Memberships expire at their time to live: not members from that instant, ended (with
/// history) by the expiry sweep, and other audiences' memberships stay.
async fn membership_expiry<S: Store>(store: S) {
    const CHECK: &str = "membership expiry";
    let a = advertiser(&store, CHECK, "a", 1, T0).await;
    let short = audience(&store, CHECK, a.no, "short", 1, T0).await;
    let long = audience(&store, CHECK, a.no, "long", 540, T0).await;
    let job = upload(&store, CHECK, "short", &short, JobOp::Add, Vec::new(), T0).await;
    let grants = vec![grant(1, 1), grant(2, 2)];
    let applied = apply(&store, CHECK, &job, grants.clone(), Vec::new(), T0).await;
    let long_job = upload(&store, CHECK, "long", &long, JobOp::Add, Vec::new(), T0).await;
    apply(&store, CHECK, &long_job, vec![grant(1, 3)], Vec::new(), T0).await;
    let expiry = T0 + DAY;
    assert_eq!(applied.granted[0].expires_at, t(expiry), "{CHECK}: expiry");

    let size = |at: i64| {
        let store = &store;
        let short = &short;
        async move {
            the_audience(store, CHECK, short, at)
                .await
                .map(|a| a.members)
        }
    };
    assert_eq!(
        size(expiry - 1).await,
        Some(2),
        "{CHECK}: members just before expiry"
    );
    assert_eq!(size(expiry).await, Some(0), "{CHECK}: no members at expiry");
    assert_eq!(
        members(&store, CHECK, short.no, expiry - 1).await,
        vec![1, 2],
        "{CHECK}: members just before"
    );
    assert!(
        members(&store, CHECK, short.no, expiry).await.is_empty(),
        "{CHECK}: members at expiry"
    );
    assert!(
        ok(
            CHECK,
            "expire_memberships",
            store.expire_memberships(t(expiry - 1)).await
        )
        .is_empty(),
        "{CHECK}: nothing expired before"
    );
    assert_eq!(
        ok(CHECK, "counts", store.counts().await).memberships,
        3,
        "{CHECK}: expired memberships count until swept"
    );
    assert_eq!(
        ok(
            CHECK,
            "expire_memberships",
            store.expire_memberships(t(expiry)).await
        ),
        vec![(short.no, AccountNo(1)), (short.no, AccountNo(2))],
        "{CHECK}: the sweep"
    );
    assert_eq!(size(expiry).await, Some(0), "{CHECK}: still none");
    assert_eq!(
        ok(CHECK, "counts", store.counts().await).memberships,
        1,
        "{CHECK}: count after the sweep"
    );
    assert_eq!(
        members(&store, CHECK, long.no, expiry).await,
        vec![1],
        "{CHECK}: the long audience keeps its member"
    );
    let expected: Vec<EventFacts> = applied
        .granted
        .iter()
        .map(granted_event)
        .chain(
            applied
                .granted
                .iter()
                .map(|m| revoked_event(m, RevokeReason::Expired, None, t(expiry))),
        )
        .collect();
    assert_eq!(
        facts(&history(&store, CHECK, Some(short.no), None).await),
        expected,
        "{CHECK}: history"
    );
    assert!(
        ok(
            CHECK,
            "expire_memberships",
            store.expire_memberships(t(expiry + DAY)).await
        )
        .is_empty(),
        "{CHECK}: swept once"
    );
}

/// Revocation ends the listed memberships that exist (once each), writes the reason, and
/// reports how many existed.
async fn revocation<S: Store>(store: S) {
    const CHECK: &str = "revocation";
    let a = advertiser(&store, CHECK, "a", 1, T0).await;
    let x = audience(&store, CHECK, a.no, "x", 540, T0).await;
    let y = audience(&store, CHECK, a.no, "y", 540, T0).await;
    let jx = upload(&store, CHECK, "x", &x, JobOp::Add, Vec::new(), T0).await;
    let ax = apply(
        &store,
        CHECK,
        &jx,
        vec![grant(1, 1), grant(2, 2)],
        Vec::new(),
        T0,
    )
    .await;
    let jy = upload(&store, CHECK, "y", &y, JobOp::Add, Vec::new(), T0).await;
    let ay = apply(&store, CHECK, &jy, vec![grant(1, 3)], Vec::new(), T0).await;
    let now = T0 + SECOND;
    let revoked = ok(
        CHECK,
        "revoke",
        store
            .revoke(
                vec![
                    (y.no, AccountNo(1)),
                    (x.no, AccountNo(1)),
                    (x.no, AccountNo(1)),
                    (x.no, AccountNo(99)),
                    (x.no + y.no + 100, AccountNo(1)),
                ],
                RevokeReason::Ineligible,
                t(now),
            )
            .await,
    );
    assert_eq!(revoked, 2, "{CHECK}: memberships that existed");
    assert!(
        ok(
            CHECK,
            "memberships_of",
            store.memberships_of(AccountNo(1)).await
        )
        .is_empty(),
        "{CHECK}: account 1 is in no audience"
    );
    assert_eq!(
        members(&store, CHECK, x.no, now).await,
        vec![2],
        "{CHECK}: x keeps 2"
    );
    assert_eq!(
        facts(&history(&store, CHECK, None, Some(1)).await),
        vec![
            granted_event(&ax.granted[0]),
            granted_event(&ay.granted[0]),
            revoked_event(&ax.granted[0], RevokeReason::Ineligible, None, t(now)),
            revoked_event(&ay.granted[0], RevokeReason::Ineligible, None, t(now)),
        ],
        "{CHECK}: history with the reason"
    );
    assert_eq!(
        ok(
            CHECK,
            "revoke",
            store.revoke(Vec::new(), RevokeReason::Erased, t(now)).await
        ),
        0,
        "{CHECK}: revoking nothing"
    );
    assert_eq!(
        ok(CHECK, "counts", store.counts().await).memberships,
        1,
        "{CHECK}: membership count"
    );
}

/// Erasing an account deletes its memberships (counting the live ones), its membership
/// history and its staged matches; other accounts' rows stay.
async fn erasure_ends_memberships<S: Store>(store: S) {
    const CHECK: &str = "erasure ends memberships";
    let changes = ok(
        CHECK,
        "write_accounts",
        store
            .write_accounts(
                vec![
                    write(
                        "gone",
                        "US",
                        vec![contact(1, ContactKind::Email, Context::Profile, true)],
                        vec![consent_grant(T0)],
                    ),
                    write(
                        "kept",
                        "US",
                        vec![contact(2, ContactKind::Email, Context::Profile, true)],
                        vec![consent_grant(T0)],
                    ),
                ],
                t(T0),
            )
            .await,
    );
    let (gone, kept) = (changes[0].after.no, changes[1].after.no);
    let a = advertiser(&store, CHECK, "a", 1, T0).await;
    let live = audience(&store, CHECK, a.no, "live", 540, T0).await;
    let other = audience(&store, CHECK, a.no, "other", 540, T0).await;
    let short = audience(&store, CHECK, a.no, "short", 1, T0).await;
    let ended = audience(&store, CHECK, a.no, "ended", 540, T0).await;
    let both = |seed| vec![grant(gone.0, seed), grant(kept.0, seed + 1)];
    for (aud, seed) in [(&live, 1), (&other, 3), (&short, 5), (&ended, 7)] {
        let job = upload(
            &store,
            CHECK,
            &aud.audience_id,
            aud,
            JobOp::Add,
            Vec::new(),
            T0,
        )
        .await;
        apply(&store, CHECK, &job, both(seed), Vec::new(), T0).await;
    }
    ok(
        CHECK,
        "revoke",
        store
            .revoke(vec![(ended.no, gone)], RevokeReason::Ineligible, t(T0 + 1))
            .await,
    );
    // Staged, not yet applied: a session with a part naming both accounts.
    let pending = session(&store, CHECK, "pending", &live, JobOp::Add, T0).await;
    ok(
        CHECK,
        "put_session_part",
        store
            .put_session_part(
                pending.no,
                SessionPart {
                    part_no: 1,
                    keys: part_keys(1),
                    counts: counts(2, 2, &[]),
                    matched: vec![matched(gone.0, 1), matched(kept.0, 1), matched(gone.0, 2)],
                },
                t(T0),
            )
            .await,
    );
    let before = ok(CHECK, "counts", store.counts().await);

    // Past the short audience's expiry: its membership is not live any more.
    let now = T0 + 2 * DAY;
    let erasure = ok(
        CHECK,
        "erase_account",
        store.erase_account("gone", t(now)).await,
    )
    .unwrap_or_else(|| panic!("{CHECK}: no erasure"));
    assert_eq!(erasure.memberships, 2, "{CHECK}: live memberships ended");
    assert!(
        ok(CHECK, "memberships_of", store.memberships_of(gone).await).is_empty(),
        "{CHECK}: no membership left"
    );
    assert!(
        history(&store, CHECK, None, Some(gone.0)).await.is_empty(),
        "{CHECK}: no history left"
    );
    assert_eq!(
        history(&store, CHECK, None, Some(kept.0)).await.len(),
        4,
        "{CHECK}: the other account's history stays"
    );
    assert_eq!(
        ok(CHECK, "memberships_of", store.memberships_of(kept).await).len(),
        4,
        "{CHECK}: the other account's memberships stay"
    );
    for aud in [&live, &other] {
        assert_eq!(
            the_audience(&store, CHECK, aud, now)
                .await
                .map(|a| a.members),
            Some(1),
            "{CHECK}: size of {}",
            aud.audience_id
        );
    }
    assert_eq!(
        ok(CHECK, "counts", store.counts().await).memberships,
        before.memberships - 3,
        "{CHECK}: every membership row of the account goes, expired ones too"
    );
    let job = commit(&store, CHECK, &pending, "pending", now).await;
    assert_eq!(
        ok(CHECK, "staged_matches", store.staged_matches(job.no).await),
        vec![matched(kept.0, 1)],
        "{CHECK}: the erased account's staged matches go"
    );
}

/// Deleting an audience ends its memberships (with history), fails its unfinished jobs,
/// removes its sessions, and is scoped to its advertiser; finished jobs stay as they were.
async fn audience_deletion<S: Store>(store: S) {
    const CHECK: &str = "audience deletion";
    let a = advertiser(&store, CHECK, "a", 1, T0).await;
    let aud = audience(&store, CHECK, a.no, "doomed", 540, T0).await;
    let kept = audience(&store, CHECK, a.no, "kept", 540, T0).await;
    let done = upload(&store, CHECK, "done", &aud, JobOp::Add, Vec::new(), T0).await;
    let applied = apply(
        &store,
        CHECK,
        &done,
        vec![grant(2, 1), grant(1, 2)],
        Vec::new(),
        T0,
    )
    .await;
    let kept_job = upload(&store, CHECK, "kept", &kept, JobOp::Add, Vec::new(), T0).await;
    apply(&store, CHECK, &kept_job, vec![grant(1, 3)], Vec::new(), T0).await;
    let queued = upload(
        &store,
        CHECK,
        "queued",
        &aud,
        JobOp::Add,
        vec![vec![matched(3, 1)]],
        T0 + 1,
    )
    .await;
    let running = upload(
        &store,
        CHECK,
        "running",
        &aud,
        JobOp::Remove,
        vec![vec![matched(1, 1)]],
        T0 + 2,
    )
    .await;
    ok(
        CHECK,
        "set_job_running",
        store.set_job_running(running.no, t(T0 + 3)).await,
    );
    let open = session(&store, CHECK, "open", &aud, JobOp::Add, T0 + 4).await;
    ok(
        CHECK,
        "put_session_part",
        store
            .put_session_part(
                open.no,
                SessionPart {
                    part_no: 1,
                    keys: part_keys(1),
                    counts: counts(1, 1, &[]),
                    matched: vec![matched(4, 1)],
                },
                t(T0 + 4),
            )
            .await,
    );

    let b = advertiser(&store, CHECK, "b", 2, T0).await;
    assert_eq!(
        ok(
            CHECK,
            "delete_audience",
            store.delete_audience(b.no, "doomed", t(T0 + 5)).await
        ),
        None,
        "{CHECK}: another advertiser cannot delete it"
    );
    let now = T0 + 6;
    let deleted = ok(
        CHECK,
        "delete_audience",
        store.delete_audience(a.no, "doomed", t(now)).await,
    );
    assert_eq!(
        deleted,
        Some(Applied {
            granted: Vec::new(),
            revoked: vec![(aud.no, AccountNo(1)), (aud.no, AccountNo(2))],
        }),
        "{CHECK}: what the deletion ended"
    );
    assert_eq!(
        the_audience(&store, CHECK, &aud, now).await,
        None,
        "{CHECK}: gone"
    );
    assert_eq!(
        ok(CHECK, "audiences", store.audiences(a.no, t(now)).await)
            .into_iter()
            .map(|a| a.audience_id)
            .collect::<Vec<_>>(),
        vec!["kept".to_owned()],
        "{CHECK}: the advertiser's audiences"
    );
    for job in [&queued, &running] {
        let failed = job_now(&store, CHECK, job).await;
        assert_eq!(
            (failed.state, failed.error.as_deref(), failed.finished_at),
            (JobState::Failed, Some("audience deleted"), Some(t(now))),
            "{CHECK}: unfinished job {}",
            job.job_id
        );
        assert!(
            ok(CHECK, "staged_matches", store.staged_matches(job.no).await).is_empty(),
            "{CHECK}: parts of {}",
            job.job_id
        );
    }
    assert_eq!(
        job_now(&store, CHECK, &done).await.state,
        JobState::Succeeded,
        "{CHECK}: a finished job stays"
    );
    assert!(
        ok(CHECK, "unfinished_jobs", store.unfinished_jobs().await).is_empty(),
        "{CHECK}: no unfinished job"
    );
    assert_eq!(
        ok(CHECK, "session", store.session(a.no, "open").await),
        None,
        "{CHECK}: its sessions go"
    );
    assert!(
        ok(CHECK, "session_parts", store.session_parts(open.no).await).is_empty(),
        "{CHECK}: with their parts"
    );
    conflict(
        CHECK,
        "applying a job of a deleted audience",
        store
            .apply_job(
                queued.no,
                vec![grant(3, 1)],
                Vec::new(),
                query_of(queued.no),
                t(now),
            )
            .await,
    );
    assert_eq!(
        facts(&history(&store, CHECK, Some(aud.no), None).await),
        vec![
            granted_event(&applied.granted[0]),
            granted_event(&applied.granted[1]),
            revoked_event(
                &applied.granted[0],
                RevokeReason::AudienceDeleted,
                None,
                t(now)
            ),
            revoked_event(
                &applied.granted[1],
                RevokeReason::AudienceDeleted,
                None,
                t(now)
            ),
        ],
        "{CHECK}: history kept, with the deletion"
    );
    assert_eq!(
        members(&store, CHECK, kept.no, now).await,
        vec![1],
        "{CHECK}: kept audience"
    );
    let counts = ok(CHECK, "counts", store.counts().await);
    assert_eq!(
        (counts.audiences, counts.memberships),
        (1, 1),
        "{CHECK}: counts"
    );
    assert_eq!(
        ok(
            CHECK,
            "delete_audience",
            store.delete_audience(a.no, "doomed", t(now + 1)).await
        ),
        None,
        "{CHECK}: deleting twice"
    );
    // Its id is free again; the new audience has a new number.
    let again = audience(&store, CHECK, a.no, "doomed", 540, now + 2).await;
    assert!(
        again.no != aud.no && again.no != kept.no,
        "{CHECK}: numbers are not reused"
    );
    assert!(
        members(&store, CHECK, again.no, now + 2).await.is_empty(),
        "{CHECK}: starts empty"
    );
}

/// The membership scan: every membership once, by audience and account, in batches of the
/// size asked, from one snapshot; a consumer that stops early does not hang the store.
async fn membership_scan<S: Store>(store: S) {
    const CHECK: &str = "membership scan";
    let a = advertiser(&store, CHECK, "a", 1, T0).await;
    let mut expected = Vec::new();
    for (i, size) in [(0u32, 1_500u32), (1, 1), (2, 700)] {
        let aud = audience(&store, CHECK, a.no, &format!("aud-{i}"), 540, T0).await;
        let grants: Vec<Grant> = (0..size).map(|n| grant(n * 3 + i, u64::from(n))).collect();
        let name = format!("job-{i}");
        expected.extend(
            applied_job(&store, CHECK, &name, &aud, JobOp::Add, grants, T0)
                .await
                .granted,
        );
    }
    expected.sort_by_key(|m| (m.audience_no, m.account));
    for batch in [1000, 1, 7, 0, 10_000] {
        let mut receiver = store.scan_memberships(batch);
        let mut all = Vec::new();
        while let Some(item) = receiver.recv().await {
            let memberships = ok(CHECK, "scan_memberships", item);
            assert!(
                !memberships.is_empty() && memberships.len() <= batch.max(1),
                "{CHECK}: a batch of {} (batch {batch})",
                memberships.len()
            );
            all.extend(memberships);
        }
        assert!(all == expected, "{CHECK}: scan with batch {batch} differs");
    }
    let mut receiver = store.scan_memberships(1);
    assert!(
        matches!(receiver.recv().await, Some(Ok(ref b)) if b.len() == 1),
        "{CHECK}: first batch"
    );
    drop(receiver);
    let empty_audience = audience(&store, CHECK, a.no, "after", 540, T0).await;
    assert_eq!(empty_audience.members, 0, "{CHECK}: the store goes on");
}

/// The history scan of a window holds exactly the grants recorded in it and the ends recorded
/// from its start on, in recording order, whatever the batch size.
async fn history_scan<S: Store>(store: S) {
    const CHECK: &str = "history scan";
    let a = advertiser(&store, CHECK, "a", 1, T0).await;
    let x = audience(&store, CHECK, a.no, "x", 540, T0).await;
    let y = audience(&store, CHECK, a.no, "y", 540, T0).await;
    // Day 0: x gets 1..=5; day 1: y gets 4..=8; day 2: 2 and 5 leave x; day 3: x takes 2
    // back and `replace` on y keeps only 8.
    let g0: Vec<Grant> = (1..=5).map(|n| grant(n, u64::from(n))).collect();
    applied_job(&store, CHECK, "j0", &x, JobOp::Add, g0, T0).await;
    let g1: Vec<Grant> = (4..=8).map(|n| grant(n, u64::from(n) + 1)).collect();
    applied_job(&store, CHECK, "j1", &y, JobOp::Add, g1, T0 + DAY).await;
    ok(
        CHECK,
        "revoke",
        store
            .revoke(
                vec![(x.no, AccountNo(2)), (x.no, AccountNo(5))],
                RevokeReason::Ineligible,
                t(T0 + 2 * DAY),
            )
            .await,
    );
    applied_job(
        &store,
        CHECK,
        "j2",
        &x,
        JobOp::Add,
        vec![grant(2, 9)],
        T0 + 3 * DAY,
    )
    .await;
    applied_job(
        &store,
        CHECK,
        "j3",
        &y,
        JobOp::Replace,
        vec![grant(8, 4)],
        T0 + 3 * DAY,
    )
    .await;

    let all = history(&store, CHECK, None, None).await;
    let windows = [
        (T0, T0),
        (T0, T0 + 10 * DAY),
        (T0 + DAY, T0 + DAY),
        (T0 + DAY, T0 + 2 * DAY),
        (T0 + 2 * DAY, T0 + 3 * DAY),
        (T0 + 3 * DAY, T0 + 3 * DAY),
        (T0 - DAY, T0 - 1),
        (T0 + 4 * DAY, T0 + 5 * DAY),
    ];
    let mut seen_ends = 0;
    for (from, to) in windows {
        let expected: Vec<ScannedEvent> = all
            .iter()
            .filter(|e| match e.change {
                MembershipChange::Granted => e.at >= t(from) && e.at <= t(to),
                MembershipChange::Revoked(_) => e.at >= t(from),
            })
            .map(ScannedEvent::from)
            .collect();
        seen_ends += expected.iter().filter(|e| e.ended).count();
        for batch in [1, 3, 0, 1000] {
            let mut receiver = store.scan_history(t(from), t(to), batch);
            let mut scanned = Vec::new();
            while let Some(item) = receiver.recv().await {
                let events = ok(CHECK, "scan_history", item);
                assert!(
                    !events.is_empty() && events.len() <= batch.max(1),
                    "{CHECK}: a batch of {} (batch {batch})",
                    events.len()
                );
                scanned.extend(events);
            }
            assert_eq!(
                scanned, expected,
                "{CHECK}: window {from}..={to}, batch {batch}"
            );
        }
    }
    assert!(seen_ends > 0, "{CHECK}: the windows cover ends");
    assert_eq!(
        all.iter()
            .filter(|e| e.change == MembershipChange::Granted)
            .count(),
        5 + 5 + 1 + 1,
        "{CHECK}: every grant is in the history"
    );
}

/// A job of 100,000 grants is applied whole in one call: readers see none of it or all of
/// it, and then every membership and history row; a replace of half of it then swaps
/// exactly.
async fn big_apply_is_whole<S: Store>(store: Arc<S>) {
    const CHECK: &str = "big apply";
    const GRANTS: u32 = 100_000;
    let a = advertiser(&*store, CHECK, "a", 1, T0).await;
    let aud = audience(&*store, CHECK, a.no, "big", 540, T0).await;
    let job = upload(&*store, CHECK, "big", &aud, JobOp::Add, Vec::new(), T0).await;
    let grants: Vec<Grant> = (1..=GRANTS).rev().map(|n| grant(n, u64::from(n))).collect();

    // A reader polls the size while the job applies.
    let applying = {
        let store = Arc::clone(&store);
        let grants = grants.clone();
        let job = job.clone();
        tokio::spawn(async move {
            store
                .apply_job(job.no, grants, Vec::new(), query_of(job.no), t(T0 + 1))
                .await
        })
    };
    let mut seen = BTreeMap::new();
    loop {
        let finished = applying.is_finished();
        let size = the_audience(&*store, CHECK, &aud, T0 + 2)
            .await
            .map_or(0, |a| a.members);
        *seen.entry(size).or_insert(0) += 1;
        if finished {
            break;
        }
        tokio::task::yield_now().await;
    }
    let applied = match applying.await {
        Ok(result) => ok(CHECK, "apply_job", result),
        Err(e) => panic!("{CHECK}: the apply task failed: {e}"),
    };
    assert!(
        seen.keys()
            .all(|&size| size == 0 || size == u64::from(GRANTS)),
        "{CHECK}: a reader saw a partial job: sizes {seen:?}"
    );
    assert_eq!(applied.granted.len(), GRANTS as usize, "{CHECK}: granted");
    assert!(
        applied
            .granted
            .iter()
            .zip(1..)
            .all(|(m, n)| m.account == AccountNo(n) && m.job_no == job.no),
        "{CHECK}: granted, by account"
    );
    assert_eq!(
        members(&*store, CHECK, aud.no, T0 + 2).await,
        (1..=GRANTS).collect::<Vec<_>>(),
        "{CHECK}: members"
    );
    assert_eq!(
        history(&*store, CHECK, Some(aud.no), None).await.len(),
        GRANTS as usize,
        "{CHECK}: a history row per grant"
    );

    // Replace by the upper half and as many new accounts.
    let job2 = upload(
        &*store,
        CHECK,
        "big-2",
        &aud,
        JobOp::Replace,
        Vec::new(),
        T0 + 3,
    )
    .await;
    let grants2: Vec<Grant> = (GRANTS / 2 + 1..=GRANTS + GRANTS / 2)
        .map(|n| grant(n, u64::from(n) + 1))
        .collect();
    let applied = apply(&*store, CHECK, &job2, grants2, Vec::new(), T0 + 3).await;
    assert_eq!(
        applied.revoked,
        (1..=GRANTS / 2)
            .map(|n| (aud.no, AccountNo(n)))
            .collect::<Vec<_>>(),
        "{CHECK}: replace ended the lower half"
    );
    assert_eq!(
        applied.granted.len(),
        GRANTS as usize,
        "{CHECK}: replace granted"
    );
    assert_eq!(
        members(&*store, CHECK, aud.no, T0 + 3).await,
        (GRANTS / 2 + 1..=GRANTS + GRANTS / 2).collect::<Vec<_>>(),
        "{CHECK}: members after the replace"
    );
    assert_eq!(
        the_audience(&*store, CHECK, &aud, T0 + 3)
            .await
            .map(|a| a.members),
        Some(u64::from(GRANTS)),
        "{CHECK}: size after the replace"
    );
    assert_eq!(
        history(&*store, CHECK, Some(aud.no), None).await.len(),
        (GRANTS * 2 + GRANTS / 2) as usize,
        "{CHECK}: history after the replace"
    );
}
