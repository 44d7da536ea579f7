//! The SQLite backend's own promises on the advertiser side, beyond the conformance suite:
//! the membership counters equal the rows after every kind of change, a job that fails half
//! way leaves nothing behind, an erased account's memberships, history and staged matches
//! leave no trace in the files, and a store closed after a large job leaves no WAL behind
//! (its checkpoint thread has stopped first).

use jiff::Timestamp;
use rusqlite::Connection;
use tailor_core::release::{KeySetDigest, QueryDigest};
use tailor_core::{AccountNo, Context, KeyedDigest, PolicyVersion};

/// The canonical query the jobs here leave on their audience (its value matters to no check).
const QUERY: QueryDigest = QueryDigest::EMPTY;
use tailor_store::{
    Audience, Grant, Job, JobCounts, JobOp, JobState, NewAdvertiser, NewAudience, NewJob,
    RevokeReason, SessionPart, SqliteStore, Store, StoreError,
};

use crate::support::{TempDir, contains, files_under};

fn t(second: i64) -> Timestamp {
    Timestamp::from_second(second).unwrap()
}

fn raw(dir: &TempDir) -> Connection {
    Connection::open(dir.data_dir().join("tailor.db")).unwrap()
}

fn digest(n: u32) -> KeyedDigest {
    let mut bytes = [0xa5; 32];
    bytes[..4].copy_from_slice(&n.to_be_bytes());
    bytes[4..8].copy_from_slice(&n.wrapping_mul(2_654_435_761).to_le_bytes());
    KeyedDigest(bytes)
}

fn grant(n: u32) -> Grant {
    Grant {
        account: AccountNo(n),
        contact_digest: digest(n),
        context: Context::Profile,
        consent_seq: Some(1),
        policy_version: PolicyVersion([3; 32]),
    }
}

async fn audience(store: &SqliteStore, advertiser_no: u32, id: &str, ttl_days: u32) -> Audience {
    store
        .create_audience(
            NewAudience {
                audience_id: id.into(),
                advertiser_no,
                name: id.into(),
                description: String::new(),
                membership_ttl_days: ttl_days,
            },
            t(100),
        )
        .await
        .unwrap()
}

async fn advertiser(store: &SqliteStore, id: &str, key: u8) -> u32 {
    store
        .create_advertiser(
            NewAdvertiser {
                advertiser_id: id.into(),
                name: id.into(),
                entity: id.into(),
                key_id: format!("{id}-key"),
                key_sha256: [key; 32],
            },
            t(100),
        )
        .await
        .unwrap()
        .no
}

/// A committed job over `matched` staged as one part.
async fn job(
    store: &SqliteStore,
    name: &str,
    audience: &Audience,
    op: JobOp,
    matched: &[u32],
) -> Job {
    let session = store
        .create_session(
            &format!("s-{name}"),
            audience.advertiser_no,
            audience.no,
            op,
            t(100),
            t(100_000),
        )
        .await
        .unwrap();
    store
        .put_session_part(
            session.no,
            SessionPart {
                part_no: 1,
                counts: JobCounts::default(),
                keys: KeySetDigest::from_bytes([7; 32]),
                matched: matched.iter().map(|&n| (AccountNo(n), digest(n))).collect(),
            },
            t(100),
        )
        .await
        .unwrap();
    store
        .commit_session(
            session.no,
            NewJob {
                job_id: format!("j-{name}"),
                advertiser_no: audience.advertiser_no,
                audience_no: audience.no,
                op,
                counts: JobCounts::default(),
                keys: KeySetDigest::from_bytes([7; 32]),
            },
            t(100),
        )
        .await
        .unwrap()
}

/// Every counter kept beside the rows equals a count of the rows.
fn assert_counters_match(dir: &TempDir) {
    let conn = raw(dir);
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |row| row.get(0)).unwrap() };
    for (counter, rows) in [
        ("memberships", "SELECT COUNT(*) FROM memberships"),
        ("audiences", "SELECT COUNT(*) FROM audiences"),
        ("advertisers", "SELECT COUNT(*) FROM advertisers"),
    ] {
        assert_eq!(
            count(&format!(
                "SELECT value FROM counters WHERE name = '{counter}'"
            )),
            count(rows),
            "{counter}"
        );
    }
    let mismatched = count(
        "SELECT COUNT(*) FROM audiences a WHERE a.membership_rows <> \
         (SELECT COUNT(*) FROM memberships m WHERE m.audience_no = a.audience_no)",
    );
    assert_eq!(mismatched, 0, "audiences whose membership_rows is wrong");
    for (sequence, table, column) in [
        ("last_event_no", "membership_events", "event_no"),
        ("last_job_no", "jobs", "job_no"),
        ("last_audience_no", "audiences", "audience_no"),
    ] {
        let last = count(&format!(
            "SELECT value FROM counters WHERE name = '{sequence}'"
        ));
        let largest = count(&format!("SELECT COALESCE(MAX({column}), 0) FROM {table}"));
        assert!(
            last >= largest,
            "{sequence} {last} is behind {table} ({largest})"
        );
    }
}

#[tokio::test]
async fn membership_counters_follow_every_change() {
    let dir = TempDir::new("membership-counters");
    let store = dir.open();
    let adv = advertiser(&store, "a", 1).await;
    let x = audience(&store, adv, "x", 540).await;
    let y = audience(&store, adv, "y", 1).await;
    let z = audience(&store, adv, "z", 540).await;
    store
        .write_accounts(
            (0..30)
                .map(|n| tailor_store::AccountWrite {
                    account_id: format!("u{n}"),
                    region: tailor_core::AccountRegion::parse("US").unwrap(),
                    contacts: Vec::new(),
                    consents: Vec::new(),
                })
                .collect(),
            t(100),
        )
        .await
        .unwrap();
    let all: Vec<u32> = (1..=30).collect();
    for aud in [&x, &y, &z] {
        let j = job(&store, &aud.audience_id, aud, JobOp::Add, &all).await;
        let grants = all.iter().map(|&n| grant(n)).collect();
        store
            .apply_job(j.no, grants, Vec::new(), QUERY, t(200))
            .await
            .unwrap();
        assert_counters_match(&dir);
    }
    // Renewals, a replace, a remove.
    let j = job(&store, "x-renew", &x, JobOp::Add, &[]).await;
    store
        .apply_job(
            j.no,
            (20..=40).map(grant).collect(),
            Vec::new(),
            QUERY,
            t(300),
        )
        .await
        .unwrap();
    assert_counters_match(&dir);
    let j = job(&store, "x-replace", &x, JobOp::Replace, &[]).await;
    store
        .apply_job(
            j.no,
            (10..=25).map(grant).collect(),
            Vec::new(),
            QUERY,
            t(400),
        )
        .await
        .unwrap();
    assert_counters_match(&dir);
    let j = job(&store, "z-remove", &z, JobOp::Remove, &[]).await;
    store
        .apply_job(
            j.no,
            Vec::new(),
            (1..=5).map(AccountNo).collect(),
            QUERY,
            t(500),
        )
        .await
        .unwrap();
    assert_counters_match(&dir);
    store
        .revoke(
            vec![(x.no, AccountNo(12)), (z.no, AccountNo(12))],
            RevokeReason::Ineligible,
            t(600),
        )
        .await
        .unwrap();
    assert_counters_match(&dir);
    // y's memberships expire; an account in all three is erased; z goes.
    let expired = store.expire_memberships(t(200 + 86_400)).await.unwrap();
    assert_eq!(expired.len(), 30);
    assert_counters_match(&dir);
    store.erase_account("u20", t(700)).await.unwrap().unwrap();
    assert_counters_match(&dir);
    store
        .delete_audience(adv, "z", t(800))
        .await
        .unwrap()
        .unwrap();
    assert_counters_match(&dir);
    let listed = store.audiences(adv, t(900)).await.unwrap();
    let sizes: Vec<(String, u64)> = listed
        .into_iter()
        .map(|a| (a.audience_id, a.members))
        .collect();
    // x: 10..=25 after the replace, less 12 (revoked) and 21 (erased: accounts are numbered
    // from 1, so "u20" is account 21).
    assert_eq!(sizes, vec![("x".to_owned(), 14), ("y".to_owned(), 0)]);
}

#[tokio::test]
async fn a_job_that_fails_half_way_leaves_nothing() {
    let dir = TempDir::new("failed-apply");
    let store = dir.open();
    let adv = advertiser(&store, "a", 1).await;
    let aud = audience(&store, adv, "aud", 540).await;
    let first = job(&store, "first", &aud, JobOp::Add, &[1, 2, 3]).await;
    store
        .apply_job(
            first.no,
            vec![grant(1), grant(2), grant(3)],
            Vec::new(),
            QUERY,
            t(200),
        )
        .await
        .unwrap();
    let replace = job(&store, "replace", &aud, JobOp::Replace, &[2, 50_000]).await;
    let last_event = |conn: &Connection| -> i64 {
        conn.query_row(
            "SELECT value FROM counters WHERE name = 'last_event_no'",
            [],
            |row| row.get(0),
        )
        .unwrap()
    };
    let events_before = last_event(&raw(&dir));
    let history_before = store.membership_history(Some(aud.no), None).await.unwrap();

    // The history write of the 40,000th grant fails, after every membership row was written.
    raw(&dir)
        .execute_batch(
            "CREATE TRIGGER fail_late BEFORE INSERT ON membership_events \
             WHEN NEW.account_no = 40000 BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
        )
        .unwrap();
    let grants: Vec<Grant> = (2..=50_000).map(grant).collect();
    let result = store
        .apply_job(replace.no, grants.clone(), Vec::new(), QUERY, t(300))
        .await;
    assert!(matches!(result, Err(StoreError::Database(_))), "{result:?}");

    assert_eq!(
        store.audience_members(aud.no, t(300)).await.unwrap(),
        vec![AccountNo(1), AccountNo(2), AccountNo(3)]
    );
    assert_eq!(
        store.memberships_of(AccountNo(2)).await.unwrap()[0].job_no,
        first.no,
        "account 2 keeps its first basis"
    );
    assert_eq!(
        store.membership_history(Some(aud.no), None).await.unwrap(),
        history_before
    );
    assert_eq!(last_event(&raw(&dir)), events_before);
    assert_eq!(
        store
            .audience(adv, "aud", t(300))
            .await
            .unwrap()
            .unwrap()
            .members,
        3
    );
    assert_eq!(store.counts().await.unwrap().memberships, 3);
    let after = store.job_by_no(replace.no).await.unwrap().unwrap();
    assert_eq!(after.state, JobState::Queued);
    assert_eq!(
        store.staged_matches(replace.no).await.unwrap().len(),
        2,
        "the staged parts stay"
    );
    assert_counters_match(&dir);

    // Without the fault, the same job applies.
    raw(&dir).execute_batch("DROP TRIGGER fail_late").unwrap();
    let applied = store
        .apply_job(replace.no, grants, Vec::new(), QUERY, t(300))
        .await
        .unwrap();
    assert_eq!(applied.revoked, vec![(aud.no, AccountNo(1))]);
    assert_eq!(
        store.audience_members(aud.no, t(300)).await.unwrap().len(),
        49_999
    );
    assert_counters_match(&dir);
}

#[tokio::test]
async fn an_erased_account_leaves_no_membership_trace_in_the_files() {
    let dir = TempDir::new("erased-memberships");
    let store = dir.open();
    store
        .write_accounts(
            (0..50)
                .map(|n| tailor_store::AccountWrite {
                    account_id: format!("member-{n:02}"),
                    region: tailor_core::AccountRegion::parse("US").unwrap(),
                    contacts: Vec::new(),
                    consents: Vec::new(),
                })
                .collect(),
            t(100),
        )
        .await
        .unwrap();
    let erased_no = store.account_no("member-17").await.unwrap().unwrap();
    let kept_no = store.account_no("member-18").await.unwrap().unwrap();
    let adv = advertiser(&store, "a", 1).await;
    let aud = audience(&store, adv, "aud", 540).await;
    let numbers: Vec<u32> = (1..=50).collect();
    let applied_job = job(&store, "applied", &aud, JobOp::Add, &numbers).await;
    store
        .apply_job(
            applied_job.no,
            numbers.iter().map(|&n| grant(n)).collect(),
            Vec::new(),
            QUERY,
            t(200),
        )
        .await
        .unwrap();
    store
        .revoke(vec![(aud.no, kept_no)], RevokeReason::Ineligible, t(250))
        .await
        .unwrap();
    // Staged in a session not yet committed, and in a committed job not yet applied.
    job(&store, "pending", &aud, JobOp::Add, &numbers).await;
    let open = store
        .create_session("open", adv, aud.no, JobOp::Add, t(260), t(100_000))
        .await
        .unwrap();
    store
        .put_session_part(
            open.no,
            SessionPart {
                part_no: 1,
                counts: JobCounts::default(),
                keys: KeySetDigest::from_bytes([7; 32]),
                matched: numbers.iter().map(|&n| (AccountNo(n), digest(n))).collect(),
            },
            t(260),
        )
        .await
        .unwrap();

    let erasure = store
        .erase_account("member-17", t(300))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(erasure.memberships, 1);
    drop(store);

    let mut all = Vec::new();
    for file in files_under(&dir.data_dir()) {
        all.extend(std::fs::read(file).unwrap());
    }
    assert!(
        contains(&all, digest(kept_no.0).as_bytes()),
        "the scan reads the data"
    );
    assert!(
        !contains(&all, digest(erased_no.0).as_bytes()),
        "the erased account's digest is still in a file"
    );
}

#[tokio::test]
async fn closing_after_a_large_job_leaves_no_wal() {
    let dir = TempDir::new("close-wal");
    let store = dir.open();
    let adv = advertiser(&store, "a", 1).await;
    let aud = audience(&store, adv, "aud", 540).await;
    // Enough pages to pass the checkpoint threshold several times over.
    let numbers: Vec<u32> = (1..=200_000).collect();
    let j = job(&store, "big", &aud, JobOp::Add, &numbers).await;
    store
        .apply_job(
            j.no,
            numbers.iter().map(|&n| grant(n)).collect(),
            Vec::new(),
            QUERY,
            t(200),
        )
        .await
        .unwrap();
    assert!(dir.data_dir().join("tailor.db-wal").exists());
    drop(store);
    assert!(
        !dir.data_dir().join("tailor.db-wal").exists(),
        "the last connection to close removes the WAL"
    );
    let again = dir.open();
    assert_eq!(again.counts().await.unwrap().memberships, 200_000);
}
