//! The SQLite backend's own promises, beyond the conformance suite: durability across a
//! restart, schema versioning, a private data directory, no contact value or plain hash in
//! any file, no trace of an erased account once the store is closed, exact row counts,
//! whole-call atomicity, history kept for removed contact points, and errors that say what
//! is wrong.

use jiff::Timestamp;
use rusqlite::Connection;
use tailor_core::{
    ContactKind, Context, E164Phone, IndexKey, NormalizedEmail, PhoneFormat, Purpose, Region,
    Sha256Digest,
};
use tailor_store::{
    AccountWrite, NewConsent, NewContact, SqliteStore, Store, StoreCounts, StoreError,
};

use crate::support::{TempDir, contains, files_under};

fn t(second: i64) -> Timestamp {
    Timestamp::from_second(second).unwrap()
}

fn key() -> IndexKey {
    IndexKey::from_secret(&[42; 32]).unwrap()
}

fn email(context: Context, raw: &str) -> NewContact {
    NewContact {
        kind: ContactKind::Email,
        context,
        verified: true,
        notice_version: Some("notice-2026-01".into()),
        digests: key().email(&NormalizedEmail::parse(raw).unwrap()),
    }
}

fn phone(context: Context, raw: &str) -> NewContact {
    NewContact {
        kind: ContactKind::Phone,
        context,
        verified: false,
        notice_version: None,
        digests: key().phone(&E164Phone::parse(raw, Region::US).unwrap()),
    }
}

fn grant(at: i64) -> NewConsent {
    NewConsent {
        purpose: Purpose::MARKETING_TARGETED,
        state: tailor_core::ConsentState::Granted,
        source: tailor_core::ConsentSource::Settings,
        at: t(at),
        notice_version: Some("notice-2026-01".into()),
    }
}

fn account(id: &str, contacts: Vec<NewContact>, consents: Vec<NewConsent>) -> AccountWrite {
    AccountWrite {
        account_id: id.into(),
        region: tailor_core::AccountRegion::parse("US-CA").unwrap(),
        contacts,
        consents,
    }
}

/// A raw connection to a store's database, for looking behind the trait.
fn raw(dir: &TempDir) -> Connection {
    Connection::open(dir.data_dir().join("tailor.db")).unwrap()
}

async fn scan_all(store: &SqliteStore) -> Vec<tailor_store::AccountState> {
    let mut receiver = store.scan_accounts(100);
    let mut all = Vec::new();
    while let Some(batch) = receiver.recv().await {
        all.extend(batch.unwrap());
    }
    all
}

#[tokio::test]
async fn reopening_keeps_everything() {
    let dir = TempDir::new("reopen");
    let store = dir.open();
    store
        .write_accounts(
            vec![
                account(
                    "u1",
                    vec![email(Context::Profile, "jane@example.com")],
                    vec![grant(1_000)],
                ),
                account(
                    "u2",
                    vec![phone(Context::Mfa, "+1 415 555 0100")],
                    Vec::new(),
                ),
            ],
            t(2_000),
        )
        .await
        .unwrap();
    store
        .write_accounts(vec![account("u2", Vec::new(), Vec::new())], t(3_000))
        .await
        .unwrap();
    store
        .append_consent("u1", grant(4_000), t(4_000))
        .await
        .unwrap()
        .unwrap();
    store
        .write_accounts(vec![account("u3", Vec::new(), Vec::new())], t(5_000))
        .await
        .unwrap();
    store.erase_account("u3", t(6_000)).await.unwrap().unwrap();
    store.set_meta("setting", b"value").await.unwrap();
    let u1 = store.account("u1").await.unwrap();
    let u2 = store.account("u2").await.unwrap();
    let counts = store.counts().await.unwrap();
    let scanned = scan_all(&store).await;
    drop(store);

    let store = dir.open();
    assert_eq!(store.account("u1").await.unwrap(), u1);
    assert_eq!(store.account("u2").await.unwrap(), u2);
    assert_eq!(store.account("u3").await.unwrap(), None);
    assert_eq!(store.counts().await.unwrap(), counts);
    assert_eq!(
        counts,
        StoreCounts {
            accounts: 2,
            live_contact_points: 1,
            consent_events: 2,
            erasures: 1,
            ..StoreCounts::default()
        }
    );
    assert_eq!(
        store.meta("setting").await.unwrap().as_deref(),
        Some(&b"value"[..])
    );
    assert_eq!(scan_all(&store).await, scanned);
    // A new account after the restart does not take the erased account's number.
    let erased_no = scanned.iter().map(|s| s.no).max().unwrap().0 + 1;
    let change = store
        .write_accounts(vec![account("u4", Vec::new(), Vec::new())], t(7_000))
        .await
        .unwrap()
        .remove(0);
    assert!(change.after.no.0 > erased_no);
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = TempDir::new("schema");
    drop(dir.open());
    let known = SqliteStore::schema_version();
    raw(&dir)
        .execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, 0)",
            [known + 1],
        )
        .unwrap();
    let error = SqliteStore::open(&dir.data_dir()).unwrap_err();
    assert!(
        matches!(error, StoreError::SchemaTooNew { found, known: k } if found == known + 1 && k == known),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("newer"), "{message}");
    assert!(message.contains(&(known + 1).to_string()), "{message}");
}

#[tokio::test]
async fn migrations_are_recorded_once() {
    let dir = TempDir::new("migrations");
    drop(dir.open());
    drop(dir.open());
    let rows: Vec<(i64, i64)> = raw(&dir)
        .prepare("SELECT version, applied_at FROM schema_migrations ORDER BY version")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let versions: Vec<i64> = rows.iter().map(|r| r.0).collect();
    assert_eq!(
        versions,
        (1..=SqliteStore::schema_version()).collect::<Vec<_>>()
    );
    assert!(
        rows.iter().all(|r| r.1 > 1_700_000_000_000_000),
        "applied_at in microseconds"
    );
    let mode: String = raw(&dir)
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("private");
    // Parents are created too.
    let nested = dir.data_dir().join("deeper");
    let store = SqliteStore::open(&nested).unwrap();
    store.set_meta("x", b"y").await.unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&nested), 0o700);
    assert_eq!(mode(&dir.data_dir()), 0o700);
    for file in crate::support::files_under(&nested) {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
}

#[tokio::test]
async fn no_contact_value_or_plain_hash_reaches_any_file() {
    let dir = TempDir::new("privacy");
    let emails = ["Jane.Doe+ads@gmail.com", "fixture.person@example.org"];
    let phones = ["+1 415 555 0100", "+44 20 7946 0958"];
    let store = dir.open();
    let contacts: Vec<NewContact> = emails
        .iter()
        .map(|e| email(Context::Profile, e))
        .chain(phones.iter().map(|p| phone(Context::Mfa, p)))
        .collect();
    let writes = (0..50)
        .map(|n| {
            account(
                &format!("account-{n}"),
                contacts.clone(),
                vec![grant(1_000)],
            )
        })
        .collect();
    store.write_accounts(writes, t(2_000)).await.unwrap();

    // Every form of every fixture identifier, raw and plainly hashed (hex and bytes).
    let mut forbidden: Vec<Vec<u8>> = Vec::new();
    let mut plain_hash = |d: Sha256Digest| {
        forbidden.push(d.as_bytes().to_vec());
        forbidden.push(d.to_hex().as_str().as_bytes().to_vec());
        forbidden.push(d.to_hex().as_str().to_ascii_uppercase().into_bytes());
    };
    let mut raw_values: Vec<String> = Vec::new();
    for e in emails {
        let normalized = NormalizedEmail::parse(e).unwrap();
        plain_hash(normalized.sha256());
        raw_values.push(e.to_owned());
        raw_values.push(normalized.as_str().to_owned());
        if let Some(canonical) = normalized.gmail_canonical() {
            plain_hash(canonical.sha256());
            raw_values.push(canonical.as_str().to_owned());
        }
        raw_values.push(normalized.local_part().to_owned());
    }
    for p in phones {
        let parsed = E164Phone::parse(p, Region::US).unwrap();
        plain_hash(parsed.sha256(PhoneFormat::E164));
        plain_hash(parsed.sha256(PhoneFormat::Digits));
        raw_values.push(p.to_owned());
        raw_values.push(parsed.e164().to_owned());
        raw_values.push(parsed.digits().to_owned());
    }
    forbidden.extend(raw_values.into_iter().map(String::into_bytes));

    let check = |when: &str| {
        let files = files_under(&dir.data_dir());
        assert!(!files.is_empty());
        let mut all = Vec::new();
        for file in &files {
            let bytes = std::fs::read(file).unwrap();
            for needle in &forbidden {
                assert!(
                    !contains(&bytes, needle),
                    "{when}: {} holds a fixture identifier or its plain hash",
                    file.display()
                );
            }
            all.extend(bytes);
        }
        // The scan sees the stored data: the account ids and the keyed digests are there.
        assert!(
            contains(&all, b"account-49"),
            "{when}: the scan read no data"
        );
        let keyed = key()
            .email(&NormalizedEmail::parse(emails[1]).unwrap())
            .primary();
        assert!(
            contains(&all, keyed.as_bytes()),
            "{when}: no keyed digest found"
        );
    };
    // While open (database, WAL and shared memory), then after closing.
    check("open");
    drop(store);
    check("closed");
}

#[tokio::test]
async fn row_counts_match_the_rows() {
    let dir = TempDir::new("counts");
    let store = dir.open();
    let writes = (0..20)
        .map(|n| {
            account(
                &format!("c{n}"),
                vec![
                    email(Context::Profile, &format!("person{n}@example.com")),
                    phone(Context::Recovery, "+1 415 555 0100"),
                ],
                vec![grant(n)],
            )
        })
        .collect();
    store.write_accounts(writes, t(100)).await.unwrap();
    for n in 0..10 {
        let id = format!("c{n}");
        store
            .write_accounts(
                vec![account(
                    &id,
                    vec![phone(Context::Recovery, "+1 415 555 0100")],
                    Vec::new(),
                )],
                t(200),
            )
            .await
            .unwrap();
        store.append_consent(&id, grant(300), t(300)).await.unwrap();
    }
    for n in (0..20).step_by(3) {
        store.erase_account(&format!("c{n}"), t(400)).await.unwrap();
    }
    let conn = raw(&dir);
    let count =
        |sql: &str| -> u64 { conn.query_row(sql, [], |row| row.get::<_, i64>(0)).unwrap() as u64 };
    let expected = StoreCounts {
        accounts: count("SELECT COUNT(*) FROM accounts"),
        live_contact_points: count("SELECT COUNT(*) FROM contact_points WHERE removed_at IS NULL"),
        consent_events: count("SELECT COUNT(*) FROM consent_events"),
        erasures: count("SELECT COUNT(*) FROM erasures"),
        advertisers: count("SELECT COUNT(*) FROM advertisers"),
        audiences: count("SELECT COUNT(*) FROM audiences"),
        memberships: count("SELECT COUNT(*) FROM memberships"),
    };
    assert_eq!(store.counts().await.unwrap(), expected);
    assert_eq!(expected.accounts, 13);
    assert_eq!(expected.erasures, 7);
}

#[tokio::test]
async fn removed_contact_points_are_kept_as_history() {
    let dir = TempDir::new("history");
    let store = dir.open();
    let old = email(Context::Profile, "old@example.com");
    let new = email(Context::Profile, "new@example.com");
    store
        .write_accounts(vec![account("h", vec![old.clone()], Vec::new())], t(100))
        .await
        .unwrap();
    store
        .write_accounts(vec![account("h", vec![new.clone()], Vec::new())], t(200))
        .await
        .unwrap();
    let rows: Vec<(i64, Vec<u8>, i64, Option<i64>)> = raw(&dir)
        .prepare("SELECT contact_no, primary_digest, added_at, removed_at FROM contact_points ORDER BY contact_no")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        vec![
            (
                1,
                old.digests.primary().0.to_vec(),
                100_000_000,
                Some(200_000_000)
            ),
            (2, new.digests.primary().0.to_vec(), 200_000_000, None),
        ]
    );
}

#[tokio::test]
async fn account_number_overflow_fails_the_whole_call() {
    let dir = TempDir::new("overflow");
    let store = dir.open();
    store
        .write_accounts(vec![account("first", Vec::new(), Vec::new())], t(100))
        .await
        .unwrap();
    let before = store.account("first").await.unwrap().unwrap();
    // The next account number would be 2^32.
    raw(&dir)
        .execute(
            "UPDATE counters SET value = 4294967295 WHERE name = 'last_account_no'",
            [],
        )
        .unwrap();
    let result = store
        .write_accounts(
            vec![
                account(
                    "first",
                    vec![email(Context::Profile, "a@example.com")],
                    vec![grant(1)],
                ),
                account("second", Vec::new(), Vec::new()),
            ],
            t(200),
        )
        .await;
    assert!(
        matches!(result, Err(StoreError::TooManyAccounts)),
        "{result:?}"
    );
    // Nothing of the call is visible, not even the write before the failing one.
    assert_eq!(store.account("first").await.unwrap(), Some(before));
    assert_eq!(store.account("second").await.unwrap(), None);
    assert_eq!(
        store.counts().await.unwrap(),
        StoreCounts {
            accounts: 1,
            ..StoreCounts::default()
        }
    );
    // The largest number that fits is still usable.
    raw(&dir)
        .execute(
            "UPDATE counters SET value = 4294967294 WHERE name = 'last_account_no'",
            [],
        )
        .unwrap();
    let change = store
        .write_accounts(vec![account("last", Vec::new(), Vec::new())], t(300))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(change.after.no.0, u32::MAX);
    // With every number given, existing accounts can still be written.
    let updated = store
        .write_accounts(vec![account("first", Vec::new(), vec![grant(2)])], t(400))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(updated.after.consents.len(), 1);
    let refused = store
        .write_accounts(vec![account("beyond", Vec::new(), Vec::new())], t(500))
        .await;
    assert!(
        matches!(refused, Err(StoreError::TooManyAccounts)),
        "{refused:?}"
    );
}

#[tokio::test]
async fn an_unreadable_row_is_reported_as_corrupt() {
    let dir = TempDir::new("corrupt-row");
    let store = dir.open();
    let writes = (0..5)
        .map(|n| {
            account(
                &format!("r{n}"),
                vec![email(Context::Profile, "x@example.com")],
                Vec::new(),
            )
        })
        .collect();
    store.write_accounts(writes, t(100)).await.unwrap();
    raw(&dir)
        .execute(
            "UPDATE contact_points SET kind = 'fax' WHERE account_no = \
             (SELECT account_no FROM accounts WHERE account_id = 'r3')",
            [],
        )
        .unwrap();
    let error = store.account("r3").await.unwrap_err();
    assert!(matches!(error, StoreError::Corrupt(_)), "{error:?}");
    assert!(error.to_string().contains("contact_points.kind"), "{error}");
    assert!(
        !error.to_string().contains("fax"),
        "the message names the column, not the value"
    );
    // The scan sends batches read before the bad row (the cursors read one row ahead, so
    // perhaps not all of them), then the failure as the last item.
    let mut receiver = store.scan_accounts(1);
    let mut items = Vec::new();
    while let Some(item) = receiver.recv().await {
        items.push(item);
    }
    let (last, before) = items.split_last().unwrap();
    assert!(matches!(last, Err(StoreError::Corrupt(_))), "{last:?}");
    assert!(before.len() <= 3, "{items:?}");
    for (n, item) in before.iter().enumerate() {
        let batch = item.as_ref().unwrap();
        assert_eq!(batch[0].account_id, format!("r{n}"));
    }
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused() {
    let dir = TempDir::new("not-a-db");
    std::fs::create_dir_all(dir.data_dir()).unwrap();
    std::fs::write(dir.data_dir().join("tailor.db"), vec![0x42; 8192]).unwrap();
    let error = SqliteStore::open(&dir.data_dir()).unwrap_err();
    assert!(matches!(error, StoreError::Corrupt(_)), "{error:?}");
}

#[tokio::test]
async fn a_data_directory_that_is_a_file_is_refused() {
    let dir = TempDir::new("dir-is-file");
    std::fs::create_dir_all(dir.path()).unwrap();
    std::fs::write(dir.data_dir(), b"not a directory").unwrap();
    let error = SqliteStore::open(&dir.data_dir()).unwrap_err();
    assert!(matches!(error, StoreError::DataDir { .. }), "{error:?}");
    assert!(error.to_string().contains("not a directory"), "{error}");
}

#[tokio::test]
async fn an_erased_account_leaves_no_trace_in_the_files() {
    let dir = TempDir::new("erased-bytes");
    let store = dir.open();
    let writes = (0..200)
        .map(|n| {
            account(
                &format!("erasable-account-{n:03}"),
                vec![email(Context::Profile, &format!("p{n}@example.com"))],
                vec![grant(n)],
            )
        })
        .collect();
    store.write_accounts(writes, t(100)).await.unwrap();
    let erased = store
        .erase_account("erasable-account-123", t(200))
        .await
        .unwrap()
        .unwrap();
    let digest = erased.erased.contacts[0].digests.primary();
    drop(store);
    let mut all = Vec::new();
    for file in files_under(&dir.data_dir()) {
        all.extend(std::fs::read(file).unwrap());
    }
    assert!(
        contains(&all, b"erasable-account-122"),
        "the scan reads the data"
    );
    assert!(
        !contains(&all, b"erasable-account-123"),
        "the erased id is still in a file"
    );
    assert!(
        !contains(&all, digest.as_bytes()),
        "the erased digest is still in a file"
    );
}

#[tokio::test]
async fn one_process_at_a_time_per_data_directory() {
    let dir = TempDir::new("lock");
    let first = SqliteStore::open(&dir.data_dir()).unwrap();
    let err = SqliteStore::open(&dir.data_dir()).unwrap_err();
    assert!(
        err.to_string().contains("in use by another tailor process"),
        "{err}"
    );
    // Clones share the lock; dropping the last one releases it.
    let clone = first.clone();
    drop(first);
    assert!(SqliteStore::open(&dir.data_dir()).is_err());
    drop(clone);
    let again = SqliteStore::open(&dir.data_dir()).unwrap();
    again.set_meta("x", b"y").await.unwrap();
}
