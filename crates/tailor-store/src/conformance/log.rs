//! The log side of the conformance suite: every kind of change appends its entry in its own
//! transaction, entries are numbered from 0 with the tree's root beside each, a job's entry
//! carries the root of its grants as the membership history holds them, erasure leaves its
//! entries in place under a commitment nobody can recompute, and checkpoints are one per size.

use tailor_core::{AccountNo, ContactKind, Context, PolicyVersion};
use tailor_log::Frontier;

use super::audiences::{advertiser, apply, audience, grant, ok, upload};
use super::{T0, contact, grant as consent_grant, t, write};
use crate::log::{LogEntry, LogEvent, StoredCheckpoint, grant_leaf};
use crate::{JobOp, MembershipChange, RevokeReason, Store, StoreError};

/// Runs every log check, each on a fresh store made by `fresh`.
pub(super) async fn run<S, F, Fut>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = S>,
    S: Store,
{
    every_change_is_logged(fresh().await).await;
    checkpoints_are_one_per_size(fresh().await).await;
    history_is_pruned_but_live_bases_kept(fresh().await).await;
}

async fn entries<S: Store>(store: &S, check: &str) -> Vec<LogEntry> {
    let size = ok(check, "log_size", store.log_size().await);
    let stored = ok(check, "log_entries", store.log_entries(0, size).await);
    assert_eq!(stored.len() as u64, size, "{check}: every entry is there");
    let mut frontier = Frontier::new();
    stored
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            assert_eq!(
                entry.index, i as u64,
                "{check}: entries are numbered from 0"
            );
            frontier.push(tailor_log::leaf_hash(&entry.data));
            assert_eq!(
                entry.root,
                frontier.root(),
                "{check}: the root beside entry {i}"
            );
            let parsed = LogEntry::parse(&entry.data)
                .unwrap_or_else(|e| panic!("{check}: entry {i} does not parse: {e}"));
            assert_eq!(parsed.index, i as u64, "{check}: entry {i} knows its place");
            parsed
        })
        .collect()
}

async fn every_change_is_logged<S: Store>(store: S) {
    const CHECK: &str = "every change is logged";
    assert_eq!(ok(CHECK, "log_size", store.log_size().await), 0);
    let changes = ok(
        CHECK,
        "write_accounts",
        store
            .write_accounts(
                vec![
                    write(
                        "kept",
                        "US",
                        vec![contact(1, ContactKind::Email, Context::Profile, true)],
                        vec![consent_grant(T0)],
                    ),
                    write(
                        "erased",
                        "US",
                        vec![
                            contact(2, ContactKind::Email, Context::Profile, true),
                            contact(3, ContactKind::Phone, Context::Mfa, true),
                        ],
                        Vec::new(),
                    ),
                ],
                t(T0),
            )
            .await,
    );
    let (kept, erased) = (changes[0].after.no, changes[1].after.no);
    let log = entries(&store, CHECK).await;
    assert_eq!(log.len(), 2, "{CHECK}: one entry per account written");
    let LogEvent::AccountChanged {
        account: erased_commitment,
        created: true,
        collected,
        ..
    } = &log[1].event
    else {
        panic!("{CHECK}: entry 1 is {:?}", log[1].event);
    };
    assert_eq!(collected.len(), 2, "{CHECK}: both contact points collected");
    assert_eq!(collected[1].context, "mfa", "{CHECK}: with their context");
    let erased_commitment = erased_commitment.clone();

    // The same account written again without its phone: the phone's removal is logged.
    ok(
        CHECK,
        "write_accounts",
        store
            .write_accounts(
                vec![write(
                    "erased",
                    "US",
                    vec![contact(2, ContactKind::Email, Context::Profile, true)],
                    vec![consent_grant(T0 + 1)],
                )],
                t(T0 + 1),
            )
            .await,
    );
    let log = entries(&store, CHECK).await;
    let LogEvent::AccountChanged {
        account,
        created: false,
        collected,
        removed,
        consents,
        ..
    } = &log[2].event
    else {
        panic!("{CHECK}: entry 2 is {:?}", log[2].event);
    };
    assert_eq!(
        account, &erased_commitment,
        "{CHECK}: one account, one commitment"
    );
    assert!(collected.is_empty(), "{CHECK}: nothing new collected");
    assert_eq!(removed.len(), 1, "{CHECK}: the phone removed");
    assert_eq!(consents.len(), 1, "{CHECK}: the consent appended");

    // Advertiser, job, revocation, policy, erasure.
    let a = advertiser(&store, CHECK, "a", 1, T0 + 2).await;
    let aud = audience(&store, CHECK, a.no, "aud", 540, T0 + 2).await;
    let job = upload(&store, CHECK, "j", &aud, JobOp::Add, Vec::new(), T0 + 3).await;
    let grants = vec![grant(kept.0, 1), grant(erased.0, 2)];
    apply(&store, CHECK, &job, grants, Vec::new(), T0 + 4).await;
    ok(
        CHECK,
        "revoke",
        store
            .revoke(vec![(aud.no, kept)], RevokeReason::Ineligible, t(T0 + 5))
            .await,
    );
    let policy = PolicyVersion([7; 32]);
    ok(
        CHECK,
        "log_policy",
        store.log_policy(policy, t(T0 + 6)).await,
    );
    ok(
        CHECK,
        "log_policy",
        store.log_policy(policy, t(T0 + 7)).await,
    );
    ok(
        CHECK,
        "erase_account",
        store.erase_account("erased", t(T0 + 8)).await,
    );

    let log = entries(&store, CHECK).await;
    let kinds: Vec<&str> = log[3..]
        .iter()
        .map(|e| match &e.event {
            LogEvent::AdvertiserCreated { .. } => "advertiser",
            LogEvent::JobCompleted { .. } => "job",
            LogEvent::MembershipsEnded { .. } => "ended",
            LogEvent::PolicyChanged { .. } => "policy",
            LogEvent::Erasure { .. } => "erasure",
            other => panic!("{CHECK}: unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        ["advertiser", "job", "ended", "policy", "erasure"],
        "{CHECK}: one entry per change, the same policy logged once"
    );
    let LogEvent::JobCompleted {
        job_id,
        granted,
        revoked,
        root,
        ..
    } = &log[4].event
    else {
        unreachable!()
    };
    assert_eq!(
        (job_id.as_str(), *granted, *revoked),
        (job.job_id.as_str(), 2, 0)
    );
    // The job's root is that of its grants as the membership history keeps them.
    let history = ok(
        CHECK,
        "membership_history",
        store.membership_history(Some(aud.no), None).await,
    );
    let leaves: Vec<tailor_log::Hash> = history
        .iter()
        .filter(|e| e.job_no == Some(job.no) && e.change == MembershipChange::Granted)
        .map(|e| {
            grant_leaf(
                true,
                aud.no,
                e.account.0,
                &e.contact_digest.0,
                e.context.as_str(),
                e.consent_seq,
                &e.policy_version.0,
            )
        })
        .collect();
    // The erased account's history is gone with it: only the kept account's grant is left,
    // so the root is recomputed from the grants the job was given.
    assert_eq!(leaves.len(), 1, "{CHECK}: the kept account's grant");
    let given: Vec<tailor_log::Hash> = [grant(kept.0, 1), grant(erased.0, 2)]
        .iter()
        .map(|g| {
            grant_leaf(
                true,
                aud.no,
                g.account.0,
                &g.contact_digest.0,
                g.context.as_str(),
                g.consent_seq,
                &g.policy_version.0,
            )
        })
        .collect();
    assert_eq!(
        leaves[0], given[0],
        "{CHECK}: history and grant give one leaf"
    );
    assert_eq!(root, &hex_root(&given), "{CHECK}: the job's root");
    let LogEvent::MembershipsEnded {
        reason,
        audience_ids,
        ..
    } = &log[5].event
    else {
        unreachable!()
    };
    assert_eq!(reason, "ineligible");
    assert_eq!(audience_ids, std::slice::from_ref(&aud.audience_id));
    let LogEvent::Erasure {
        account,
        memberships_ended,
    } = &log[7].event
    else {
        unreachable!()
    };
    assert_eq!(
        account, &erased_commitment,
        "{CHECK}: the erasure names the account"
    );
    assert_eq!(*memberships_ended, 1);

    // Nothing identifying in any entry: no account id, no digest of a contact point.
    for entry in ok(CHECK, "log_entries", store.log_entries(0, u64::MAX).await) {
        let text = String::from_utf8(entry.data).expect("entries are JSON");
        for needle in ["kept", "erased"] {
            assert!(
                !text.contains(&format!("\"{needle}\"")),
                "{CHECK}: entry {} names an account",
                entry.index
            );
        }
        for seed in 1..=3 {
            for form in 1..=2 {
                let digest = super::digest(seed, form);
                assert!(
                    !text.contains(&hex::encode(digest.0)),
                    "{CHECK}: entry {} holds a contact digest",
                    entry.index
                );
            }
        }
    }
    // The erased account's entries stay, so the log still verifies (checked above by
    // `entries`), and a later account written under the same id has another commitment.
    ok(
        CHECK,
        "write_accounts",
        store
            .write_accounts(
                vec![write("erased", "US", Vec::new(), Vec::new())],
                t(T0 + 9),
            )
            .await,
    );
    let log = entries(&store, CHECK).await;
    let LogEvent::AccountChanged { account, .. } = &log[8].event else {
        panic!("{CHECK}: entry 8 is {:?}", log[8].event);
    };
    assert_ne!(
        account, &erased_commitment,
        "{CHECK}: an erased account's commitment is not made again"
    );
    let _ = AccountNo(0);
}

fn hex_root(leaves: &[tailor_log::Hash]) -> String {
    hex::encode(tailor_log::root_of(leaves))
}

async fn checkpoints_are_one_per_size<S: Store>(store: S) {
    const CHECK: &str = "checkpoints are one per size";
    let checkpoint = |size: u64, note: &str| StoredCheckpoint {
        size,
        note: note.to_owned(),
        at: t(T0 + size as i64),
    };
    ok(
        CHECK,
        "add_checkpoint",
        store.add_checkpoint(checkpoint(3, "three")).await,
    );
    ok(
        CHECK,
        "add_checkpoint",
        store.add_checkpoint(checkpoint(1, "one")).await,
    );
    ok(
        CHECK,
        "add_checkpoint",
        store.add_checkpoint(checkpoint(3, "three")).await,
    );
    assert!(
        matches!(
            store.add_checkpoint(checkpoint(3, "another three")).await,
            Err(StoreError::Conflict(_))
        ),
        "{CHECK}: a second note for one size"
    );
    assert_eq!(
        ok(CHECK, "checkpoints", store.checkpoints().await),
        vec![checkpoint(1, "one"), checkpoint(3, "three")],
        "{CHECK}: by size"
    );
}

/// Pruning the history deletes what was recorded before the cutoff, except the grant each live
/// membership rests on, and logs how much went.
async fn history_is_pruned_but_live_bases_kept<S: Store>(store: S) {
    const CHECK: &str = "history is pruned but live bases kept";
    let a = advertiser(&store, CHECK, "a", 1, T0).await;
    let aud = audience(&store, CHECK, a.no, "aud", 540, T0).await;
    let job = upload(&store, CHECK, "j1", &aud, JobOp::Add, Vec::new(), T0).await;
    apply(
        &store,
        CHECK,
        &job,
        vec![grant(1, 1), grant(2, 2), grant(3, 3)],
        Vec::new(),
        T0,
    )
    .await;
    ok(
        CHECK,
        "revoke",
        store
            .revoke(
                vec![(aud.no, AccountNo(2))],
                RevokeReason::Ineligible,
                t(T0 + 10),
            )
            .await,
    );
    // Account 3 is granted again later: its first grant is no longer its basis.
    let job2 = upload(&store, CHECK, "j2", &aud, JobOp::Add, Vec::new(), T0 + 20).await;
    apply(&store, CHECK, &job2, vec![grant(3, 4)], Vec::new(), T0 + 20).await;
    let before = ok(CHECK, "log_size", store.log_size().await);
    let pruned = ok(
        CHECK,
        "prune_history",
        store.prune_history(t(T0 + 15), t(T0 + 30)).await,
    );
    // Account 2's grant and end, account 3's first grant.
    assert_eq!(pruned, 3, "{CHECK}: rows pruned");
    let left: Vec<(u32, MembershipChange)> = ok(
        CHECK,
        "membership_history",
        store.membership_history(Some(aud.no), None).await,
    )
    .iter()
    .map(|e| (e.account.0, e.change))
    .collect();
    assert_eq!(
        left,
        [
            (1, MembershipChange::Granted),
            (3, MembershipChange::Granted)
        ],
        "{CHECK}: the live bases stay"
    );
    let log = entries(&store, CHECK).await;
    assert_eq!(
        log.len() as u64,
        before + 1,
        "{CHECK}: the pruning is logged"
    );
    assert!(matches!(
        log.last().map(|e| &e.event),
        Some(LogEvent::HistoryPruned { rows: 3, .. })
    ));
    assert_eq!(
        ok(
            CHECK,
            "prune_history",
            store.prune_history(t(T0 + 15), t(T0 + 31)).await
        ),
        0,
        "{CHECK}: nothing left to prune, nothing logged"
    );
    assert_eq!(ok(CHECK, "log_size", store.log_size().await), before + 1);
}
