//! The PostgreSQL backend's own promises: its schema is migrated once and reopened as it is,
//! a schema newer than this build is refused, and a large account import (written through
//! `COPY`) reads back whole and can be written again row by row.

use jiff::Timestamp;
use tailor_core::{AccountRegion, ContactDigests, ContactKind, Context, KeyedDigest};
use tailor_postgres::{PostgresOptions, PostgresStore};
use tailor_store::{AccountWrite, NewContact, Store, StoreError};

use tailor_postgres::testing::{Databases, Server};

fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap()
}

/// A synthetic account with one email contact point (a synthetic keyed digest).
pub(crate) fn account(n: u64) -> AccountWrite {
    let mut digest = [0x5a; 32];
    digest[..8].copy_from_slice(&n.to_be_bytes());
    AccountWrite {
        account_id: format!("acct-{n}"),
        region: AccountRegion::parse("US").unwrap(),
        contacts: vec![NewContact {
            kind: ContactKind::Email,
            context: Context::Profile,
            verified: true,
            notice_version: None,
            digests: ContactDigests::new(KeyedDigest(digest), None),
        }],
        consents: Vec::new(),
    }
}

async fn versions(server: &Server, name: &str) -> Vec<i64> {
    server
        .client(name)
        .await
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test]
async fn migrations_run_once_and_a_reopened_store_keeps_its_rows() {
    let Some(server) = Server::find().await else {
        return;
    };
    let databases = Databases::new(&server);
    let name = databases.create().await;
    let url = server.url(&name);
    let first = PostgresStore::connect(&url, PostgresOptions::default())
        .await
        .unwrap();
    first.write_accounts(vec![account(1)], now()).await.unwrap();
    let expected: Vec<i64> = (1..=PostgresStore::schema_version()).collect();
    assert_eq!(versions(&server, &name).await, expected);

    // Two more stores on the same database, one while the first is open.
    let second = PostgresStore::connect(&url, PostgresOptions::default())
        .await
        .unwrap();
    drop(first);
    let third = PostgresStore::connect(&url, PostgresOptions::default())
        .await
        .unwrap();
    assert_eq!(versions(&server, &name).await, expected, "migrated once");
    for store in [&second, &third] {
        let read = store.account("acct-1").await.unwrap().unwrap();
        assert_eq!(read.account_id, "acct-1");
        assert_eq!(store.counts().await.unwrap().accounts, 1);
        assert_eq!(store.log_size().await.unwrap(), 1);
    }
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let Some(server) = Server::find().await else {
        return;
    };
    let databases = Databases::new(&server);
    let name = databases.create().await;
    let url = server.url(&name);
    let store = PostgresStore::connect(&url, PostgresOptions::default())
        .await
        .unwrap();
    drop(store);
    let newer = PostgresStore::schema_version() + 1;
    server
        .client(&name)
        .await
        .execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, 0)",
            &[&newer],
        )
        .await
        .unwrap();
    match PostgresStore::connect(&url, PostgresOptions::default()).await {
        Err(StoreError::SchemaTooNew { found, known }) => {
            assert_eq!((found, known), (newer, PostgresStore::schema_version()));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[tokio::test]
async fn a_bulk_import_through_copy_reads_back_and_is_written_again() {
    let Some(server) = Server::find().await else {
        return;
    };
    let databases = Databases::new(&server);
    let store = databases.store().await;
    // Above the batch size from which rows are copied rather than inserted.
    const ACCOUNTS: u64 = 2_500;
    let writes: Vec<AccountWrite> = (0..ACCOUNTS).map(account).collect();
    let created = store.write_accounts(writes.clone(), now()).await.unwrap();
    assert!(created.iter().all(|c| c.before.is_none()));
    let counts = store.counts().await.unwrap();
    assert_eq!(
        (counts.accounts, counts.live_contact_points),
        (ACCOUNTS, ACCOUNTS)
    );
    assert_eq!(store.log_size().await.unwrap(), ACCOUNTS);
    for change in created.iter().step_by(97) {
        let read = store.account(&change.after.account_id).await.unwrap();
        assert_eq!(read.as_ref(), Some(&change.after));
    }
    // The same accounts again, each now an update: nothing changes but the update time.
    let later = now() + jiff::SignedDuration::from_secs(60);
    let updated = store.write_accounts(writes, later).await.unwrap();
    for (before, change) in created.iter().zip(&updated) {
        assert_eq!(change.before.as_ref(), Some(&before.after));
        assert_eq!(change.after.contacts, before.after.contacts);
        assert_eq!(change.after.updated_at, later);
    }
    assert_eq!(store.counts().await.unwrap(), counts);
    assert_eq!(store.log_size().await.unwrap(), 2 * ACCOUNTS);

    // A third call that changes most of them at once: verified flags turn, contact points
    // are added and removed, and one account is written twice.
    let mut changed: Vec<AccountWrite> = (0..ACCOUNTS)
        .map(|n| {
            let mut w = account(n);
            if n % 2 == 0 {
                w.contacts[0].verified = false;
            }
            if n % 3 == 0 {
                let mut extra = account(ACCOUNTS + n).contacts.remove(0);
                extra.context = Context::Signup;
                w.contacts.push(extra);
            }
            if n % 5 == 0 {
                w.contacts.clear();
            }
            w
        })
        .collect();
    // Account 6's first write flipped its flag and added a contact point; this one takes both
    // back, within the same call.
    changed.push(account(6));
    let latest = later + jiff::SignedDuration::from_secs(60);
    let results = store.write_accounts(changed, latest).await.unwrap();
    let last = results.last().unwrap();
    assert_eq!(
        last.before.as_ref(),
        Some(&results[6].after),
        "sees the earlier write"
    );
    assert_eq!(results[6].after.contacts.len(), 2);
    assert_eq!(last.after.contacts.len(), 1);
    assert!(last.after.contacts[0].verified);
    let mut live = 0;
    let mut finals = std::collections::BTreeMap::new();
    for change in &results {
        finals.insert(change.after.account_id.clone(), change.after.clone());
    }
    for (id, after) in &finals {
        live += after.contacts.len() as u64;
        let read = store.account(id).await.unwrap();
        assert_eq!(read.as_ref(), Some(after), "{id}");
    }
    assert_eq!(store.counts().await.unwrap().live_contact_points, live);
}

#[tokio::test]
async fn debug_never_shows_the_connection_string() {
    let Some(server) = Server::find().await else {
        return;
    };
    let databases = Databases::new(&server);
    let store = databases.store().await;
    let shown = format!("{store:?}");
    assert!(shown.starts_with("PostgresStore"), "{shown}");
    assert!(!shown.contains("tailor_t_"), "{shown}");
    assert!(!shown.contains("127.0.0.1"), "{shown}");
}

/// Two stores on one database (as two processes would be) writing at once: every write
/// lands, account numbers are distinct and gapless, and the log is one chain whose stored
/// roots are those of its prefixes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_database_keep_one_log_chain() {
    let Some(server) = Server::find().await else {
        return;
    };
    let databases = Databases::new(&server);
    let name = databases.create().await;
    let url = server.url(&name);
    let mut stores = Vec::new();
    for _ in 0..2 {
        stores.push(
            PostgresStore::connect(&url, PostgresOptions::default())
                .await
                .unwrap(),
        );
    }
    const TASKS: u64 = 6;
    const CALLS: u64 = 10;
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = stores[(task % 2) as usize].clone();
        tasks.push(tokio::spawn(async move {
            for call in 0..CALLS {
                let n = task * CALLS + call;
                store
                    .write_accounts(vec![account(2 * n), account(2 * n + 1)], now())
                    .await
                    .unwrap();
                store
                    .append_consent(
                        &format!("acct-{}", 2 * n),
                        tailor_store::NewConsent {
                            purpose: tailor_core::Purpose::parse(
                                tailor_core::purpose::MARKETING_TARGETED,
                            )
                            .unwrap(),
                            state: tailor_core::ConsentState::Granted,
                            source: tailor_core::ConsentSource::Settings,
                            at: now(),
                            notice_version: None,
                        },
                        now(),
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let store = &stores[0];
    let accounts = 2 * TASKS * CALLS;
    assert_eq!(store.counts().await.unwrap().accounts, accounts);
    let mut numbers: Vec<u32> = Vec::new();
    let mut scan = store.scan_accounts(50);
    while let Some(batch) = scan.recv().await {
        numbers.extend(batch.unwrap().iter().map(|s| s.no.0));
    }
    let gapless: Vec<u32> = (1..=u32::try_from(accounts).unwrap()).collect();
    assert_eq!(numbers, gapless, "account numbers");

    let size = store.log_size().await.unwrap();
    assert_eq!(
        size,
        accounts + TASKS * CALLS,
        "one entry per account write"
    );
    let entries = store.log_entries(0, size).await.unwrap();
    let mut frontier = tailor_log::Frontier::new();
    for (index, entry) in entries.iter().enumerate() {
        assert_eq!(entry.index, index as u64);
        let parsed = tailor_store::log::LogEntry::parse(&entry.data).unwrap();
        assert_eq!(parsed.index, entry.index, "the entry names its place");
        frontier.push(tailor_log::leaf_hash(&entry.data));
        assert_eq!(entry.root, frontier.root(), "root after entry {index}");
    }
}
