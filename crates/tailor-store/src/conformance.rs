//! The conformance suite every [`Store`] backend passes.
//!
//! [`run`] runs each check on a fresh, empty store from the caller's factory and panics with
//! the check's name and what differed on the first failure. It is test-support code compiled
//! into the library so that every backend's tests (here and in sibling crates) run the same
//! checks; it depends on nothing beyond this crate's own dependencies and must never be
//! called outside tests. Its contact points are synthetic keyed digests: no identifier is
//! needed to check a store. The advertiser side's checks (audiences, jobs, memberships and
//! their history) are in the `audiences` submodule.

mod advertisers_by_no;
mod audiences;
mod log;
mod releases;

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use jiff::Timestamp;
use tailor_core::{
    AccountNo, AccountRegion, ConsentEvent, ConsentSource, ConsentState, ContactDigests,
    ContactKind, Context, KeyedDigest, Purpose,
};

use crate::{
    AccountChange, AccountState, AccountWrite, NewConsent, NewContact, Store, StoreCounts,
    StoredContact,
};

/// Runs every check, each on a fresh store made by `fresh`.
pub async fn run<S, F, Fut>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
    S: Store,
{
    empty_store(fresh().await).await;
    round_trip(fresh().await).await;
    replace_contacts(fresh().await).await;
    duplicate_contacts(fresh().await).await;
    consent_history(fresh().await).await;
    missing_accounts(fresh().await).await;
    erasure(fresh().await).await;
    scan_order_and_batches(fresh().await).await;
    meta_values(fresh().await).await;
    counts_follow_every_write(fresh().await).await;
    time_precision(fresh().await).await;
    big_write_is_whole(fresh().await).await;
    same_account_twice_in_one_call(fresh().await).await;
    concurrent_writers(Arc::new(fresh().await)).await;
    audiences::run(&fresh).await;
    releases::run(&fresh).await;
    log::run(&fresh).await;
    advertisers_by_no::run(&fresh).await;
}

// ---------------------------------------------------------------------------------------------
// Fixtures

/// A time `us` microseconds after the epoch.
fn t(us: i64) -> Timestamp {
    Timestamp::from_microsecond(us).expect("fixture time in range")
}

/// A base time with a microsecond part (2026-01-05T08:00:00.123456Z).
const T0: i64 = 1_767_600_000_123_456;

/// One second, in microseconds.
const SECOND: i64 = 1_000_000;

fn region(code: &str) -> AccountRegion {
    AccountRegion::parse(code).expect("fixture region")
}

fn purpose(key: &str) -> Purpose {
    Purpose::parse(key).expect("fixture purpose")
}

/// A synthetic keyed digest, distinct for each (seed, form).
fn digest(seed: u64, form: u8) -> KeyedDigest {
    let mut bytes = [0x5a; 32];
    bytes[..8].copy_from_slice(&seed.to_be_bytes());
    bytes[8] = form;
    KeyedDigest(bytes)
}

fn digests(seed: u64, both_forms: bool) -> ContactDigests {
    ContactDigests::new(digest(seed, 1), both_forms.then(|| digest(seed, 2)))
}

fn contact(seed: u64, kind: ContactKind, context: Context, verified: bool) -> NewContact {
    NewContact {
        kind,
        context,
        verified,
        notice_version: None,
        digests: digests(seed, kind == ContactKind::Phone),
    }
}

fn consent(key: &str, state: ConsentState, source: ConsentSource, at: i64) -> NewConsent {
    NewConsent {
        purpose: purpose(key),
        state,
        source,
        at: t(at),
        notice_version: None,
    }
}

fn grant(at: i64) -> NewConsent {
    consent(
        tailor_core::purpose::MARKETING_TARGETED,
        ConsentState::Granted,
        ConsentSource::Settings,
        at,
    )
}

fn write(
    account_id: &str,
    region_code: &str,
    contacts: Vec<NewContact>,
    consents: Vec<NewConsent>,
) -> AccountWrite {
    AccountWrite {
        account_id: account_id.to_owned(),
        region: region(region_code),
        contacts,
        consents,
    }
}

/// The stored form of a new contact point.
fn stored(contact_no: u32, new: &NewContact, added_at: Timestamp) -> StoredContact {
    StoredContact {
        contact_no,
        kind: new.kind,
        context: new.context,
        verified: new.verified,
        notice_version: new.notice_version.clone(),
        digests: new.digests,
        added_at,
    }
}

/// The recorded form of a new consent event.
fn recorded(seq: u64, new: &NewConsent) -> ConsentEvent {
    ConsentEvent {
        purpose: new.purpose,
        state: new.state,
        source: new.source,
        at: new.at,
        notice_version: new.notice_version.clone(),
        seq,
    }
}

async fn write_one<S: Store>(store: &S, check: &str, w: AccountWrite, now: i64) -> AccountChange {
    let mut changes = store
        .write_accounts(vec![w], t(now))
        .await
        .unwrap_or_else(|e| panic!("{check}: write_accounts failed: {e}"));
    assert_eq!(changes.len(), 1, "{check}: one write gives one change");
    changes.remove(0)
}

async fn read<S: Store>(store: &S, check: &str, account_id: &str) -> Option<AccountState> {
    store
        .account(account_id)
        .await
        .unwrap_or_else(|e| panic!("{check}: account() failed: {e}"))
}

async fn counts<S: Store>(store: &S, check: &str) -> StoreCounts {
    store
        .counts()
        .await
        .unwrap_or_else(|e| panic!("{check}: counts() failed: {e}"))
}

/// Every batch of a scan, checking that none is empty, none exceeds `batch` and no error
/// arrives.
async fn scan<S: Store>(store: &S, check: &str, batch: usize) -> Vec<AccountState> {
    let mut receiver = store.scan_accounts(batch);
    let mut all = Vec::new();
    while let Some(item) = receiver.recv().await {
        let states = item.unwrap_or_else(|e| panic!("{check}: scan (batch {batch}) failed: {e}"));
        assert!(
            !states.is_empty() && states.len() <= batch.max(1),
            "{check}: scan (batch {batch}) sent a batch of {}",
            states.len()
        );
        all.extend(states);
    }
    all
}

// ---------------------------------------------------------------------------------------------
// Checks

/// A new store holds nothing, and an empty write changes nothing.
async fn empty_store<S: Store>(store: S) {
    const CHECK: &str = "empty store";
    assert_eq!(
        counts(&store, CHECK).await,
        StoreCounts::default(),
        "{CHECK}: counts"
    );
    assert_eq!(
        read(&store, CHECK, "nobody").await,
        None,
        "{CHECK}: account"
    );
    assert!(scan(&store, CHECK, 10).await.is_empty(), "{CHECK}: scan");
    let changes = store
        .write_accounts(Vec::new(), t(T0))
        .await
        .unwrap_or_else(|e| panic!("{CHECK}: empty write failed: {e}"));
    assert!(changes.is_empty(), "{CHECK}: empty write gave changes");
    assert_eq!(
        counts(&store, CHECK).await,
        StoreCounts::default(),
        "{CHECK}: counts after"
    );
}

/// Accounts with contact points of every kind and context, both digest forms, both verified
/// flags, with and without notice versions, and consents of every state and source, read
/// back exactly as written.
async fn round_trip<S: Store>(store: S) {
    const CHECK: &str = "round trip";
    let mut contacts = Vec::new();
    let mut seed = 0;
    for kind in [ContactKind::Email, ContactKind::Phone] {
        for context in Context::ALL {
            seed += 1;
            contacts.push(NewContact {
                kind,
                context,
                verified: seed % 2 == 0,
                notice_version: (seed % 3 != 0).then(|| format!("notice-{seed}")),
                // Both digest forms for every other contact point, whatever its kind.
                digests: digests(seed, seed % 2 == 1),
            });
        }
    }
    let purposes = [
        tailor_core::purpose::MARKETING_TARGETED,
        "marketing",
        "essential.service.security",
        "analytics.reporting",
    ];
    let sources = [
        ConsentSource::Settings,
        ConsentSource::Tcf,
        ConsentSource::Gpc,
        ConsentSource::CcpaOptOut,
        ConsentSource::GoogleConsent,
    ];
    let states = [
        ConsentState::Granted,
        ConsentState::Withdrawn,
        ConsentState::Objected,
    ];
    let mut consents = Vec::new();
    for (i, source) in sources.into_iter().enumerate() {
        for (j, state) in states.into_iter().enumerate() {
            let n = i * states.len() + j;
            // Times out of recording order, some equal.
            let at = T0 - (n as i64 % 4) * SECOND;
            let mut c = consent(purposes[n % purposes.len()], state, source, at);
            c.notice_version = n.is_multiple_of(2).then(|| format!("v{n}"));
            consents.push(c);
        }
    }
    let now = T0 + 7;
    let writes = vec![
        write("acct-full", "US-CA", contacts.clone(), consents.clone()),
        write("acct-bare", "FR", Vec::new(), Vec::new()),
    ];
    let changes = store
        .write_accounts(writes, t(now))
        .await
        .unwrap_or_else(|e| panic!("{CHECK}: write failed: {e}"));
    assert_eq!(changes.len(), 2, "{CHECK}: one change per write");

    let full = &changes[0];
    assert_eq!(
        full.before, None,
        "{CHECK}: a new account has no before state"
    );
    let expected = AccountState {
        no: full.after.no,
        account_id: "acct-full".into(),
        region: region("US-CA"),
        contacts: contacts
            .iter()
            .enumerate()
            .map(|(i, c)| stored(i as u32 + 1, c, t(now)))
            .collect(),
        consents: consents
            .iter()
            .enumerate()
            .map(|(i, c)| recorded(i as u64 + 1, c))
            .collect(),
        created_at: t(now),
        updated_at: t(now),
    };
    assert_eq!(
        full.after, expected,
        "{CHECK}: after state of the full account"
    );
    assert_eq!(
        read(&store, CHECK, "acct-full").await.as_ref(),
        Some(&expected),
        "{CHECK}: account() of the full account"
    );

    let bare = &changes[1];
    assert_eq!(bare.before, None, "{CHECK}: bare before");
    assert_eq!(
        (
            bare.after.region.as_str(),
            bare.after.contacts.len(),
            bare.after.consents.len()
        ),
        ("FR", 0, 0),
        "{CHECK}: bare after"
    );
    assert_ne!(
        bare.after.no, full.after.no,
        "{CHECK}: account numbers are distinct"
    );
    assert_eq!(
        read(&store, CHECK, "acct-bare").await.as_ref(),
        Some(&bare.after),
        "{CHECK}: account() of the bare account"
    );
    assert_eq!(
        counts(&store, CHECK).await,
        StoreCounts {
            accounts: 2,
            live_contact_points: contacts.len() as u64,
            consent_events: consents.len() as u64,
            erasures: 0,
            ..StoreCounts::default()
        },
        "{CHECK}: counts"
    );
    // Ids are exact: no case folding, no trimming.
    assert_eq!(
        read(&store, CHECK, "ACCT-FULL").await,
        None,
        "{CHECK}: ids are exact"
    );
    assert_eq!(
        read(&store, CHECK, "acct-full ").await,
        None,
        "{CHECK}: ids are exact"
    );
}

/// Replacing contact points keeps the ones listed again (number, added time), removes the
/// others, numbers new ones after every number ever used, and reports exact states.
async fn replace_contacts<S: Store>(store: S) {
    const CHECK: &str = "replace contacts";
    let email = contact(1, ContactKind::Email, Context::Profile, true);
    let phone = contact(2, ContactKind::Phone, Context::Mfa, true);
    let recovery = contact(3, ContactKind::Email, Context::Recovery, false);
    let t1 = T0;
    let first = write_one(
        &store,
        CHECK,
        write(
            "a",
            "GB",
            vec![email.clone(), phone.clone(), recovery.clone()],
            Vec::new(),
        ),
        t1,
    )
    .await;
    let no = first.after.no;

    // Second write: the phone again with new flags, the recovery email's digest in another
    // context (another contact point), the same digest as another kind (another contact
    // point), a new email; the profile email is gone.
    let mut phone_again = phone.clone();
    phone_again.verified = false;
    phone_again.notice_version = Some("n2".into());
    let recovery_as_profile = NewContact {
        context: Context::Profile,
        ..recovery.clone()
    };
    let as_phone = NewContact {
        kind: ContactKind::Phone,
        ..recovery.clone()
    };
    let signup = contact(4, ContactKind::Email, Context::Signup, true);
    let t2 = T0 + 60 * SECOND;
    let second = write_one(
        &store,
        CHECK,
        write(
            "a",
            "FR",
            vec![
                signup.clone(),
                recovery.clone(),
                phone_again.clone(),
                recovery_as_profile.clone(),
                as_phone.clone(),
            ],
            Vec::new(),
        ),
        t2,
    )
    .await;
    assert_eq!(
        second.before.as_ref(),
        Some(&first.after),
        "{CHECK}: before is the last after"
    );
    let expected = AccountState {
        no,
        account_id: "a".into(),
        region: region("FR"),
        contacts: vec![
            stored(2, &phone_again, t(t1)),
            stored(3, &recovery, t(t1)),
            stored(4, &signup, t(t2)),
            stored(5, &recovery_as_profile, t(t2)),
            stored(6, &as_phone, t(t2)),
        ],
        consents: Vec::new(),
        created_at: t(t1),
        updated_at: t(t2),
    };
    assert_eq!(second.after, expected, "{CHECK}: after the replace");
    assert_eq!(
        read(&store, CHECK, "a").await.as_ref(),
        Some(&expected),
        "{CHECK}: account()"
    );
    assert_eq!(
        counts(&store, CHECK).await.live_contact_points,
        5,
        "{CHECK}: live count"
    );

    // The removed email comes back: a new number, never its old one.
    let t3 = T0 + 120 * SECOND;
    let third = write_one(
        &store,
        CHECK,
        write("a", "FR", vec![email.clone()], Vec::new()),
        t3,
    )
    .await;
    assert_eq!(
        third.before.as_ref(),
        Some(&expected),
        "{CHECK}: before of the third write"
    );
    assert_eq!(
        third.after.contacts,
        vec![stored(7, &email, t(t3))],
        "{CHECK}: a contact point added again gets a new number"
    );
    assert_eq!(third.after.no, no, "{CHECK}: the account keeps its number");
    assert_eq!(
        counts(&store, CHECK).await.live_contact_points,
        1,
        "{CHECK}: live count"
    );

    // The same set again: nothing changes but the update time.
    let t4 = T0 + 180 * SECOND;
    let fourth = write_one(
        &store,
        CHECK,
        write("a", "FR", vec![email.clone()], Vec::new()),
        t4,
    )
    .await;
    assert_eq!(
        fourth.after.contacts, third.after.contacts,
        "{CHECK}: same set kept"
    );
    assert_eq!(fourth.after.updated_at, t(t4), "{CHECK}: update time");
    assert_eq!(fourth.after.created_at, t(t1), "{CHECK}: creation time");

    // An empty list removes every contact point.
    let fifth = write_one(
        &store,
        CHECK,
        write("a", "FR", Vec::new(), Vec::new()),
        t4 + 1,
    )
    .await;
    assert!(
        fifth.after.contacts.is_empty(),
        "{CHECK}: empty list removes all"
    );
    assert_eq!(
        read(&store, CHECK, "a").await.as_ref(),
        Some(&fifth.after),
        "{CHECK}: account()"
    );
    assert_eq!(
        counts(&store, CHECK).await.live_contact_points,
        0,
        "{CHECK}: live count"
    );

    // Numbering goes on after every number used, even when none is live.
    let sixth = write_one(
        &store,
        CHECK,
        write("a", "FR", vec![phone.clone()], Vec::new()),
        t4 + 2,
    )
    .await;
    assert_eq!(
        sixth.after.contacts,
        vec![stored(8, &phone, t(t4 + 2))],
        "{CHECK}: numbers are not reused after all contact points were removed"
    );
    assert_eq!(
        counts(&store, CHECK).await.accounts,
        1,
        "{CHECK}: account count"
    );
}

/// A contact point listed twice in one write is kept once, as its last listing says.
async fn duplicate_contacts<S: Store>(store: S) {
    const CHECK: &str = "duplicate contacts";
    let first = contact(1, ContactKind::Email, Context::Profile, false);
    let other = contact(2, ContactKind::Phone, Context::Profile, true);
    let last = NewContact {
        verified: true,
        notice_version: Some("last".into()),
        ..first.clone()
    };
    let change = write_one(
        &store,
        CHECK,
        write(
            "d",
            "US",
            vec![first.clone(), other.clone(), last.clone()],
            Vec::new(),
        ),
        T0,
    )
    .await;
    assert_eq!(
        change.after.contacts,
        vec![stored(1, &other, t(T0)), stored(2, &last, t(T0))],
        "{CHECK}: kept once, as last listed"
    );
    assert_eq!(
        read(&store, CHECK, "d").await.as_ref(),
        Some(&change.after),
        "{CHECK}: account()"
    );
    assert_eq!(
        counts(&store, CHECK).await.live_contact_points,
        2,
        "{CHECK}: live count"
    );
}

/// Consent events are appended in recording order, numbered from 1, whatever their times,
/// through both writes and `append_consent`.
async fn consent_history<S: Store>(store: S) {
    const CHECK: &str = "consent history";
    let c1 = grant(T0);
    let c2 = consent(
        "marketing",
        ConsentState::Withdrawn,
        ConsentSource::Gpc,
        T0 - SECOND,
    );
    let first = write_one(
        &store,
        CHECK,
        write("c", "DE", Vec::new(), vec![c1.clone(), c2.clone()]),
        T0,
    )
    .await;
    assert_eq!(
        first.after.consents,
        vec![recorded(1, &c1), recorded(2, &c2)],
        "{CHECK}: first events"
    );

    let c3 = consent(
        tailor_core::purpose::MARKETING_TARGETED,
        ConsentState::Objected,
        ConsentSource::Tcf,
        T0 - 100 * SECOND,
    );
    let now = T0 + 5 * SECOND;
    let appended = store
        .append_consent("c", c3.clone(), t(now))
        .await
        .unwrap_or_else(|e| panic!("{CHECK}: append_consent failed: {e}"))
        .unwrap_or_else(|| panic!("{CHECK}: append_consent found no account"));
    assert_eq!(
        appended.before.as_ref(),
        Some(&first.after),
        "{CHECK}: before of the append"
    );
    let mut expected = first.after.clone();
    expected.consents.push(recorded(3, &c3));
    expected.updated_at = t(now);
    assert_eq!(appended.after, expected, "{CHECK}: after the append");

    let c4 = grant(T0 + 50 * SECOND);
    let c5 = consent(
        "marketing",
        ConsentState::Granted,
        ConsentSource::GoogleConsent,
        T0,
    );
    let later = write_one(
        &store,
        CHECK,
        write("c", "DE", Vec::new(), vec![c4.clone(), c5.clone()]),
        now + 1,
    )
    .await;
    expected.consents.push(recorded(4, &c4));
    expected.consents.push(recorded(5, &c5));
    expected.updated_at = t(now + 1);
    assert_eq!(later.after, expected, "{CHECK}: after the second write");
    assert_eq!(
        read(&store, CHECK, "c").await.as_ref(),
        Some(&expected),
        "{CHECK}: account()"
    );
    assert_eq!(
        counts(&store, CHECK).await.consent_events,
        5,
        "{CHECK}: consent count"
    );

    // Another account's history is numbered on its own.
    let other = write_one(
        &store,
        CHECK,
        write("c2", "DE", Vec::new(), vec![c1.clone()]),
        now + 2,
    )
    .await;
    assert_eq!(
        other.after.consents,
        vec![recorded(1, &c1)],
        "{CHECK}: per-account numbering"
    );
}

/// Operations on an account that does not exist find nothing and change nothing.
async fn missing_accounts<S: Store>(store: S) {
    const CHECK: &str = "missing accounts";
    write_one(
        &store,
        CHECK,
        write("present", "US", Vec::new(), vec![grant(T0)]),
        T0,
    )
    .await;
    let before = counts(&store, CHECK).await;
    let appended = store
        .append_consent("absent", grant(T0), t(T0 + 1))
        .await
        .unwrap_or_else(|e| panic!("{CHECK}: append_consent failed: {e}"));
    assert_eq!(
        appended, None,
        "{CHECK}: append_consent on a missing account"
    );
    let erased = store
        .erase_account("absent", t(T0 + 2))
        .await
        .unwrap_or_else(|e| panic!("{CHECK}: erase_account failed: {e}"));
    assert_eq!(erased, None, "{CHECK}: erase_account on a missing account");
    assert_eq!(
        read(&store, CHECK, "absent").await,
        None,
        "{CHECK}: still absent"
    );
    assert_eq!(
        counts(&store, CHECK).await,
        before,
        "{CHECK}: counts unchanged"
    );
}

/// Erasure removes the account, its contact points (live and history) and its consents,
/// says how many, leaves other accounts alone; the same id can start afresh, under a new
/// account number.
async fn erasure<S: Store>(store: S) {
    const CHECK: &str = "erasure";
    let keep = write_one(
        &store,
        CHECK,
        write(
            "keep",
            "US",
            vec![contact(9, ContactKind::Email, Context::Profile, true)],
            vec![grant(T0)],
        ),
        T0,
    )
    .await;
    let a = contact(1, ContactKind::Email, Context::Profile, true);
    let b = contact(2, ContactKind::Phone, Context::Mfa, true);
    let c = contact(3, ContactKind::Phone, Context::Signup, false);
    write_one(
        &store,
        CHECK,
        write("gone", "FR", vec![a.clone(), b.clone()], vec![grant(T0)]),
        T0,
    )
    .await;
    // `a` becomes history; `c` is added.
    let last = write_one(
        &store,
        CHECK,
        write(
            "gone",
            "FR",
            vec![b.clone(), c.clone()],
            vec![grant(T0 + 1), grant(T0 + 2)],
        ),
        T0 + SECOND,
    )
    .await;
    store
        .set_meta("unrelated", b"kept")
        .await
        .unwrap_or_else(|e| panic!("{CHECK}: set_meta failed: {e}"));

    let erasure = store
        .erase_account("gone", t(T0 + 2 * SECOND))
        .await
        .unwrap_or_else(|e| panic!("{CHECK}: erase_account failed: {e}"))
        .unwrap_or_else(|| panic!("{CHECK}: erase_account found no account"));
    assert_eq!(erasure.erased, last.after, "{CHECK}: the erased state");
    assert_eq!(
        erasure.contact_points, 3,
        "{CHECK}: contact point rows, history included"
    );
    assert_eq!(erasure.consent_events, 3, "{CHECK}: consent events");
    assert_eq!(read(&store, CHECK, "gone").await, None, "{CHECK}: gone");
    assert_eq!(
        read(&store, CHECK, "keep").await.as_ref(),
        Some(&keep.after),
        "{CHECK}: another account is untouched"
    );
    assert_eq!(
        counts(&store, CHECK).await,
        StoreCounts {
            accounts: 1,
            live_contact_points: 1,
            consent_events: 1,
            erasures: 1,
            ..StoreCounts::default()
        },
        "{CHECK}: counts after erasure"
    );
    let again = store
        .erase_account("gone", t(T0 + 3 * SECOND))
        .await
        .unwrap_or_else(|e| panic!("{CHECK}: second erase_account failed: {e}"));
    assert_eq!(
        again, None,
        "{CHECK}: erasing twice finds nothing the second time"
    );
    let scanned = scan(&store, CHECK, 10).await;
    assert_eq!(
        scanned,
        vec![keep.after.clone()],
        "{CHECK}: scan after erasure"
    );

    // The same id again: a new account, with fresh history and numbering.
    let t4 = T0 + 4 * SECOND;
    let reborn = write_one(
        &store,
        CHECK,
        write("gone", "FR", vec![a.clone()], vec![grant(t4)]),
        t4,
    )
    .await;
    assert_eq!(
        reborn.before, None,
        "{CHECK}: re-created account has no before state"
    );
    assert_eq!(
        reborn.after.contacts,
        vec![stored(1, &a, t(t4))],
        "{CHECK}: fresh contacts"
    );
    assert_eq!(
        reborn.after.consents,
        vec![recorded(1, &grant(t4))],
        "{CHECK}: fresh consents"
    );
    assert_eq!(
        reborn.after.created_at,
        t(t4),
        "{CHECK}: fresh creation time"
    );
    assert!(
        reborn.after.no != last.after.no && reborn.after.no != keep.after.no,
        "{CHECK}: account numbers are never reused"
    );
    assert_eq!(
        read(&store, CHECK, "gone").await.as_ref(),
        Some(&reborn.after),
        "{CHECK}: account()"
    );
    assert_eq!(
        counts(&store, CHECK).await,
        StoreCounts {
            accounts: 2,
            live_contact_points: 2,
            consent_events: 2,
            erasures: 1,
            ..StoreCounts::default()
        },
        "{CHECK}: counts after re-creation"
    );
    assert_eq!(
        store.meta("unrelated").await.ok().flatten().as_deref(),
        Some(&b"kept"[..]),
        "{CHECK}: meta untouched"
    );
}

/// A scan returns every account exactly once, in account-number order, in batches of the
/// size asked, each equal to what `account()` returns; removed contact points and erased
/// accounts are not in it.
async fn scan_order_and_batches<S: Store>(store: S) {
    const CHECK: &str = "scan";
    const ACCOUNTS: u64 = 1_003;
    let mut ids = Vec::new();
    for chunk in (0..ACCOUNTS).collect::<Vec<_>>().chunks(250) {
        let writes = chunk
            .iter()
            .map(|&n| {
                let contacts = (0..n % 4)
                    .map(|k| {
                        let context = Context::ALL[(n + k) as usize % Context::ALL.len()];
                        let kind = if k % 2 == 0 {
                            ContactKind::Email
                        } else {
                            ContactKind::Phone
                        };
                        contact(n * 10 + k, kind, context, k % 2 == 0)
                    })
                    .collect();
                let consents = (0..n % 3).map(|k| grant(T0 + k as i64)).collect();
                write(&format!("scan-{n:05}"), "US", contacts, consents)
            })
            .collect();
        store
            .write_accounts(writes, t(T0))
            .await
            .unwrap_or_else(|e| panic!("{CHECK}: write failed: {e}"));
        ids.extend(chunk.iter().map(|n| format!("scan-{n:05}")));
    }
    // Later changes to early accounts, so that the newest rows are not the last accounts':
    // contact points removed (kept as history) and consents appended.
    for n in (0..ACCOUNTS).step_by(7) {
        let id = format!("scan-{n:05}");
        let keep = contact(n * 10 + 1, ContactKind::Phone, Context::Profile, true);
        write_one(
            &store,
            CHECK,
            write(&id, "CA", vec![keep], vec![grant(T0 + 9)]),
            T0 + SECOND,
        )
        .await;
        store
            .append_consent(&id, grant(T0 + 10), t(T0 + 2 * SECOND))
            .await
            .unwrap_or_else(|e| panic!("{CHECK}: append_consent failed: {e}"));
    }
    for n in (5..ACCOUNTS).step_by(97) {
        let id = format!("scan-{n:05}");
        store
            .erase_account(&id, t(T0 + 3 * SECOND))
            .await
            .unwrap_or_else(|e| panic!("{CHECK}: erase_account failed: {e}"));
        ids.retain(|i| *i != id);
    }

    let reference = scan(&store, CHECK, 1000).await;
    let scanned_ids: Vec<&str> = reference.iter().map(|s| s.account_id.as_str()).collect();
    let unique: BTreeSet<&str> = scanned_ids.iter().copied().collect();
    assert_eq!(
        unique.len(),
        scanned_ids.len(),
        "{CHECK}: an account scanned twice"
    );
    let expected_ids: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(
        unique, expected_ids,
        "{CHECK}: the scanned accounts are every live account"
    );
    assert!(
        reference.windows(2).all(|w| w[0].no < w[1].no),
        "{CHECK}: scan is in account-number order"
    );
    for state in &reference {
        let direct = read(&store, CHECK, &state.account_id).await;
        assert_eq!(
            direct.as_ref(),
            Some(state),
            "{CHECK}: scan differs from account()"
        );
    }
    for batch in [1, 2, 7, 0] {
        let other = scan(&store, CHECK, batch).await;
        assert!(
            other == reference,
            "{CHECK}: scan with batch {batch} differs from batch 1000"
        );
    }

    // A consumer that stops early does not hang the store.
    let mut receiver = store.scan_accounts(1);
    let first = receiver.recv().await;
    assert!(
        matches!(first, Some(Ok(ref b)) if b.len() == 1),
        "{CHECK}: first batch of 1"
    );
    drop(receiver);
    write_one(
        &store,
        CHECK,
        write("after-scan", "US", Vec::new(), Vec::new()),
        T0 + 4 * SECOND,
    )
    .await;
}

/// Meta values: unset, set, overwritten, empty, binary, independent names.
async fn meta_values<S: Store>(store: S) {
    const CHECK: &str = "meta";
    let get = |name: &'static str| {
        let store = &store;
        async move {
            store
                .meta(name)
                .await
                .unwrap_or_else(|e| panic!("{CHECK}: meta({name}) failed: {e}"))
        }
    };
    let set = |name: &'static str, value: &'static [u8]| {
        let store = &store;
        async move {
            store
                .set_meta(name, value)
                .await
                .unwrap_or_else(|e| panic!("{CHECK}: set_meta({name}) failed: {e}"));
        }
    };
    assert_eq!(get("token.admin").await, None, "{CHECK}: unset");
    set("token.admin", b"first").await;
    assert_eq!(
        get("token.admin").await.as_deref(),
        Some(&b"first"[..]),
        "{CHECK}: set"
    );
    set("token.admin", b"second").await;
    assert_eq!(
        get("token.admin").await.as_deref(),
        Some(&b"second"[..]),
        "{CHECK}: overwrite"
    );
    set("binary", &[0, 255, 0, 1]).await;
    assert_eq!(
        get("binary").await.as_deref(),
        Some(&[0, 255, 0, 1][..]),
        "{CHECK}: binary"
    );
    set("empty", b"").await;
    assert_eq!(
        get("empty").await.as_deref(),
        Some(&b""[..]),
        "{CHECK}: empty is not unset"
    );
    assert_eq!(
        get("token.admin").await.as_deref(),
        Some(&b"second"[..]),
        "{CHECK}: independent"
    );
    assert_eq!(get("token").await, None, "{CHECK}: names are exact");
    assert_eq!(
        counts(&store, CHECK).await,
        StoreCounts::default(),
        "{CHECK}: meta is not data"
    );
}

/// Counts follow creations, contact replacement, appends and erasures.
async fn counts_follow_every_write<S: Store>(store: S) {
    const CHECK: &str = "counts";
    let expect = |accounts, live_contact_points, consent_events, erasures| StoreCounts {
        accounts,
        live_contact_points,
        consent_events,
        erasures,
        ..StoreCounts::default()
    };
    let email = |seed| contact(seed, ContactKind::Email, Context::Profile, true);
    let writes = vec![
        write("x", "US", vec![email(1), email(2)], vec![grant(T0)]),
        write("y", "US", vec![email(3)], Vec::new()),
    ];
    store
        .write_accounts(writes, t(T0))
        .await
        .unwrap_or_else(|e| panic!("{CHECK}: write failed: {e}"));
    assert_eq!(
        counts(&store, CHECK).await,
        expect(2, 3, 1, 0),
        "{CHECK}: after creation"
    );
    write_one(
        &store,
        CHECK,
        write("x", "US", vec![email(2), email(4), email(5)], Vec::new()),
        T0 + 1,
    )
    .await;
    assert_eq!(
        counts(&store, CHECK).await,
        expect(2, 4, 1, 0),
        "{CHECK}: after replace"
    );
    store
        .append_consent("y", grant(T0), t(T0 + 2))
        .await
        .unwrap_or_else(|e| panic!("{CHECK}: append_consent failed: {e}"));
    assert_eq!(
        counts(&store, CHECK).await,
        expect(2, 4, 2, 0),
        "{CHECK}: after append"
    );
    store
        .erase_account("x", t(T0 + 3))
        .await
        .unwrap_or_else(|e| panic!("{CHECK}: erase failed: {e}"));
    assert_eq!(
        counts(&store, CHECK).await,
        expect(1, 1, 1, 1),
        "{CHECK}: after erasure"
    );
    store
        .erase_account("y", t(T0 + 4))
        .await
        .unwrap_or_else(|e| panic!("{CHECK}: erase failed: {e}"));
    assert_eq!(
        counts(&store, CHECK).await,
        expect(0, 0, 0, 2),
        "{CHECK}: after erasing all"
    );
}

/// Times keep their microseconds, before the epoch and far ahead too; a sub-microsecond
/// part is cut off, and the returned states already show that.
async fn time_precision<S: Store>(store: S) {
    const CHECK: &str = "time precision";
    let now = Timestamp::from_nanosecond(i128::from(T0) * 1000 + 789).expect("fixture time");
    let times = [
        T0,
        -86_400 * SECOND - 1,
        1,
        0,
        4_102_444_800 * SECOND + 999_999,
    ];
    let consents: Vec<NewConsent> = times.iter().map(|&at| grant(at)).collect();
    let mut nanos = grant(0);
    nanos.at = Timestamp::from_nanosecond(i128::from(T0) * 1000 + 999).expect("fixture time");
    let mut all = consents.clone();
    all.push(nanos);
    let change = store
        .write_accounts(
            vec![write(
                "time",
                "US",
                vec![contact(1, ContactKind::Email, Context::Profile, true)],
                all,
            )],
            now,
        )
        .await
        .unwrap_or_else(|e| panic!("{CHECK}: write failed: {e}"))
        .remove(0);
    let after = change.after;
    assert_eq!(
        after.created_at,
        t(T0),
        "{CHECK}: created_at cut to the microsecond"
    );
    assert_eq!(
        after.updated_at,
        t(T0),
        "{CHECK}: updated_at cut to the microsecond"
    );
    assert_eq!(
        after.contacts[0].added_at,
        t(T0),
        "{CHECK}: added_at cut to the microsecond"
    );
    let ats: Vec<Timestamp> = after.consents.iter().map(|e| e.at).collect();
    let mut expected: Vec<Timestamp> = times.iter().map(|&us| t(us)).collect();
    expected.push(t(T0));
    assert_eq!(ats, expected, "{CHECK}: consent times");
    assert_eq!(
        read(&store, CHECK, "time").await.as_ref(),
        Some(&after),
        "{CHECK}: account()"
    );
}

/// A write of 5,000 accounts in one call is wholly visible, in order, with distinct numbers.
async fn big_write_is_whole<S: Store>(store: S) {
    const CHECK: &str = "big write";
    const ACCOUNTS: u64 = 5_000;
    let writes: Vec<AccountWrite> = (0..ACCOUNTS)
        .map(|n| {
            write(
                &format!("big-{n}"),
                if n % 2 == 0 { "US" } else { "DE" },
                vec![
                    contact(2 * n, ContactKind::Email, Context::Profile, true),
                    contact(2 * n + 1, ContactKind::Phone, Context::Mfa, true),
                ],
                vec![grant(T0)],
            )
        })
        .collect();
    let changes = store
        .write_accounts(writes.clone(), t(T0))
        .await
        .unwrap_or_else(|e| panic!("{CHECK}: write failed: {e}"));
    assert_eq!(changes.len(), writes.len(), "{CHECK}: one change per write");
    for (w, change) in writes.iter().zip(&changes) {
        assert_eq!(
            change.after.account_id, w.account_id,
            "{CHECK}: changes in write order"
        );
        assert_eq!(change.before, None, "{CHECK}: new accounts");
    }
    let numbers: BTreeSet<AccountNo> = changes.iter().map(|c| c.after.no).collect();
    assert_eq!(
        numbers.len(),
        changes.len(),
        "{CHECK}: distinct account numbers"
    );
    assert_eq!(
        counts(&store, CHECK).await,
        StoreCounts {
            accounts: ACCOUNTS,
            live_contact_points: 2 * ACCOUNTS,
            consent_events: ACCOUNTS,
            erasures: 0,
            ..StoreCounts::default()
        },
        "{CHECK}: counts"
    );
    let mut afters: Vec<AccountState> = changes.into_iter().map(|c| c.after).collect();
    afters.sort_by_key(|s| s.no);
    assert!(
        scan(&store, CHECK, 1000).await == afters,
        "{CHECK}: the scan equals the changes"
    );
}

/// The same account twice in one call: the second write sees the first.
async fn same_account_twice_in_one_call<S: Store>(store: S) {
    const CHECK: &str = "same account twice";
    let a = contact(1, ContactKind::Email, Context::Profile, true);
    let b = contact(2, ContactKind::Email, Context::Signup, true);
    let changes = store
        .write_accounts(
            vec![
                write("twice", "US", vec![a.clone()], vec![grant(T0)]),
                write("twice", "GB", vec![b.clone()], vec![grant(T0 + 1)]),
            ],
            t(T0),
        )
        .await
        .unwrap_or_else(|e| panic!("{CHECK}: write failed: {e}"));
    assert_eq!(changes.len(), 2, "{CHECK}: two changes");
    assert_eq!(
        changes[1].before.as_ref(),
        Some(&changes[0].after),
        "{CHECK}: second sees first"
    );
    assert_eq!(
        changes[1].after.contacts,
        vec![stored(2, &b, t(T0))],
        "{CHECK}: contacts"
    );
    assert_eq!(
        changes[1].after.consents,
        vec![recorded(1, &grant(T0)), recorded(2, &grant(T0 + 1))],
        "{CHECK}: consents"
    );
    assert_eq!(changes[1].after.region, region("GB"), "{CHECK}: region");
    assert_eq!(
        read(&store, CHECK, "twice").await.as_ref(),
        Some(&changes[1].after),
        "{CHECK}: account()"
    );
    assert_eq!(
        counts(&store, CHECK).await,
        StoreCounts {
            accounts: 1,
            live_contact_points: 1,
            consent_events: 2,
            erasures: 0,
            ..StoreCounts::default()
        },
        "{CHECK}: counts"
    );
}

/// Several tasks writing different accounts at once all succeed, each reads its own writes
/// back at once, and everything is visible at the end.
async fn concurrent_writers<S: Store>(store: Arc<S>) {
    const CHECK: &str = "concurrent writers";
    const TASKS: u64 = 8;
    const CALLS: u64 = 20;
    const PER_CALL: u64 = 5;
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for call in 0..CALLS {
                let writes: Vec<AccountWrite> = (0..PER_CALL)
                    .map(|k| {
                        let n = (task * CALLS + call) * PER_CALL + k;
                        write(
                            &format!("w{task}-{n}"),
                            "US",
                            vec![contact(n, ContactKind::Email, Context::Profile, true)],
                            vec![grant(T0)],
                        )
                    })
                    .collect();
                let changes = store
                    .write_accounts(writes, t(T0 + call as i64))
                    .await
                    .unwrap_or_else(|e| panic!("{CHECK}: write failed: {e}"));
                for change in changes {
                    let read = store
                        .account(&change.after.account_id)
                        .await
                        .unwrap_or_else(|e| panic!("{CHECK}: account() failed: {e}"));
                    assert_eq!(
                        read.as_ref(),
                        Some(&change.after),
                        "{CHECK}: read your writes"
                    );
                }
                store
                    .append_consent(
                        &format!("w{task}-{}", task * CALLS * PER_CALL),
                        grant(T0),
                        t(T0),
                    )
                    .await
                    .unwrap_or_else(|e| panic!("{CHECK}: append_consent failed: {e}"));
            }
        }));
    }
    for task in tasks {
        match task.await {
            Ok(()) => {}
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("{CHECK}: a writer task failed: {e}"),
        }
    }
    let total = TASKS * CALLS * PER_CALL;
    assert_eq!(
        counts(&*store, CHECK).await,
        StoreCounts {
            accounts: total,
            live_contact_points: total,
            consent_events: total + TASKS * CALLS,
            erasures: 0,
            ..StoreCounts::default()
        },
        "{CHECK}: counts"
    );
    let scanned = scan(&*store, CHECK, 64).await;
    assert_eq!(
        scanned.len() as u64,
        total,
        "{CHECK}: every account scanned"
    );
    let numbers: BTreeSet<AccountNo> = scanned.iter().map(|s| s.no).collect();
    assert_eq!(
        numbers.len() as u64,
        total,
        "{CHECK}: distinct account numbers"
    );
}
