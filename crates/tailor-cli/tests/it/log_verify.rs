//! `tailor log verify` against a real data directory: a log written by `tailor serve` verifies;
//! editing, deleting, reordering or inserting a stored entry, rewriting entries and their
//! recorded roots together, breaking a checkpoint's signature, or presenting another signed
//! checkpoint of the same size is each detected, with the position named. After an erasure the
//! account's key is gone and the log still verifies.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::server::{COMPLIANCE, Served, fixed_tokens};
use crate::support::{Scratch, arg, tailor};

const ACCOUNTS: &str = concat!(
    r#"{"account_id":"lv-ana","region":"US","contacts":[{"kind":"email","value":"ana.logtest@example.com","context":"profile","verified":true}]}"#,
    "\n",
    r#"{"account_id":"lv-ben","region":"US","contacts":[{"kind":"email","value":"ben.logtest@example.com","context":"profile","verified":true},{"kind":"phone","value":"+1 415 555 0142","context":"mfa","verified":true}]}"#,
    "\n",
    r#"{"account_id":"lv-cyd","region":"US","contacts":[{"kind":"email","value":"cyd.logtest@example.com","context":"profile","verified":true}]}"#,
    "\n",
);

/// A data directory whose log has two stored checkpoints; returns the first one's note (an
/// auditor's copy) and its size.
fn data_dir(dir: &Scratch) -> (PathBuf, String, u64) {
    let data = dir.path("data");
    let server = Served::start(&data, &dir.path("serve.log"), &fixed_tokens(), &[]);
    let import = server.admin("POST", "/v1/admin/accounts", ACCOUNTS.as_bytes());
    assert_eq!(import.status, 200, "{}", import.text());
    let (_, key) = server.create_advertiser("Acme");
    let audience = server.create_audience(&key, "All");
    let job = server.upload_csv(
        &key,
        &audience,
        "add",
        b"email\nana.logtest@example.com\nben.logtest@example.com\n",
    );
    server.wait_for_job(&key, &job);
    let first = server.call(
        "GET",
        "/v1/compliance/log/checkpoint",
        Some(COMPLIANCE),
        b"",
    );
    assert_eq!(first.status, 200, "{}", first.text());
    let note = first.text();
    let size: u64 = note.lines().nth(1).unwrap().parse().unwrap();
    let erased = server.admin("DELETE", "/v1/admin/accounts/lv-cyd", b"");
    assert_eq!(erased.status, 200, "{}", erased.text());
    let second = server.call(
        "GET",
        "/v1/compliance/log/checkpoint",
        Some(COMPLIANCE),
        b"",
    );
    assert_eq!(second.status, 200, "{}", second.text());
    assert_eq!(server.stop().code(), Some(0));
    (data, note, size)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

fn verify(data: &Path, extra: &[&str]) -> crate::support::Run {
    let mut args = vec!["log", "verify", "--data-dir", arg(data)];
    args.extend_from_slice(extra);
    tailor(args, b"")
}

/// Runs `tamper` on a copy of `data` and returns what `tailor log verify` says about it.
fn tampered(dir: &Scratch, data: &Path, name: &str, tamper: impl FnOnce(&Connection)) -> String {
    let copy = dir.path(name);
    copy_dir(data, &copy);
    {
        let conn = Connection::open(copy.join("tailor.db")).unwrap();
        tamper(&conn);
    }
    let run = verify(&copy, &[]);
    assert_eq!(run.code, Some(1), "{name} went unnoticed: {run:#?}");
    assert!(run.stdout.contains("FAILED"), "{run:#?}");
    run.stdout
}

fn data_of(conn: &Connection, seq: i64) -> Vec<u8> {
    conn.query_row("SELECT data FROM log_entries WHERE seq = ?1", [seq], |r| {
        r.get(0)
    })
    .unwrap()
}

#[test]
fn every_kind_of_tampering_is_found_where_it_was_done() {
    let dir = Scratch::new("log-verify");
    let (data, note, size) = data_dir(&dir);
    assert!(size >= 5, "{size}");
    let clean = verify(&data, &[]);
    clean.assert_success();
    assert!(clean.stdout.starts_with("ok: "), "{clean:#?}");
    let kept = dir.write("kept.note", &note);
    verify(&data, &["--checkpoint", arg(&kept)]).assert_success();

    // An entry's bytes edited (an account's region changed from US to FR).
    let edited = tampered(&dir, &data, "edited", |conn| {
        let text = String::from_utf8(data_of(conn, 1)).unwrap();
        let changed = text.replace("\"US\"", "\"FR\"");
        assert_ne!(text, changed);
        conn.execute(
            "UPDATE log_entries SET data = ?1 WHERE seq = 1",
            [changed.as_bytes()],
        )
        .unwrap();
    });
    assert!(edited.contains("entry 1: the root recorded"), "{edited}");

    // An entry deleted.
    let deleted = tampered(&dir, &data, "deleted", |conn| {
        conn.execute("DELETE FROM log_entries WHERE seq = 2", [])
            .unwrap();
    });
    assert!(deleted.contains("entry 2: missing"), "{deleted}");

    // Two entries swapped.
    let reordered = tampered(&dir, &data, "reordered", |conn| {
        let (a, b) = (data_of(conn, 1), data_of(conn, 2));
        conn.execute("UPDATE log_entries SET data = ?1 WHERE seq = 1", [&b])
            .unwrap();
        conn.execute("UPDATE log_entries SET data = ?1 WHERE seq = 2", [&a])
            .unwrap();
    });
    assert!(
        reordered.contains("entry 1: it says it is entry 2"),
        "{reordered}"
    );

    // An entry inserted: the later ones moved up by one.
    let inserted = tampered(&dir, &data, "inserted", |conn| {
        conn.execute("UPDATE log_entries SET seq = -seq - 1 WHERE seq >= 3", [])
            .unwrap();
        conn.execute("UPDATE log_entries SET seq = -seq WHERE seq < 0", [])
            .unwrap();
        let forged =
            br#"{"index":3,"at":"2026-01-01T00:00:00Z","type":"policy_changed","version":"00"}"#;
        let root = [0u8; 32];
        conn.execute(
            "INSERT INTO log_entries (seq, data, root) VALUES (3, ?1, ?2)",
            (forged.as_slice(), root.as_slice()),
        )
        .unwrap();
    });
    assert!(
        inserted.contains("entry 3: the root recorded"),
        "{inserted}"
    );

    // An entry edited and every recorded root after it recomputed: the signed checkpoint
    // that covers it catches it.
    let rewritten = tampered(&dir, &data, "rewritten", |conn| {
        let text = String::from_utf8(data_of(conn, 1)).unwrap();
        let changed = text.replace("\"US\"", "\"FR\"");
        conn.execute(
            "UPDATE log_entries SET data = ?1 WHERE seq = 1",
            [changed.as_bytes()],
        )
        .unwrap();
        let mut frontier = tailor_log::Frontier::new();
        let rows: Vec<(i64, Vec<u8>)> = conn
            .prepare("SELECT seq, data FROM log_entries ORDER BY seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for (seq, data) in rows {
            frontier.push(tailor_log::leaf_hash(&data));
            conn.execute(
                "UPDATE log_entries SET root = ?1 WHERE seq = ?2",
                (frontier.root().as_slice(), seq),
            )
            .unwrap();
        }
    });
    assert!(
        rewritten.contains(&format!("checkpoint of size {size}: its root is not")),
        "{rewritten}"
    );
    assert!(!rewritten.contains("entry 1:"), "{rewritten}");

    // A stored checkpoint's signature broken.
    let stored_size = i64::try_from(size).unwrap();
    let forged = tampered(&dir, &data, "forged", |conn| {
        let note: String = conn
            .query_row(
                "SELECT note FROM log_checkpoints WHERE size = ?1",
                [stored_size],
                |r| r.get(0),
            )
            .unwrap();
        let mut lines: Vec<&str> = note.lines().collect();
        let root = lines[2].replace(|c: char| c.is_ascii_alphabetic(), "A");
        lines[2] = &root;
        let forged = lines.join("\n") + "\n";
        conn.execute(
            "UPDATE log_checkpoints SET note = ?1 WHERE size = ?2",
            (forged, stored_size),
        )
        .unwrap();
    });
    assert!(
        forged.contains(&format!(
            "checkpoint of size {size}: its signature does not verify"
        )),
        "{forged}"
    );

    // Another checkpoint of the same size, properly signed with the log's own key: one of the
    // two does not match the entries.
    let key = tailor_log::SigningKey::from_private_text(
        std::fs::read_to_string(data.join("log.key"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    let other = tailor_log::Checkpoint::new(key.name(), size, [9; 32]).unwrap();
    let other = dir.write("other.note", key.sign(&other));
    let run = verify(&data, &["--checkpoint", arg(&other)]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(
        run.stdout
            .contains(&format!("given checkpoint of size {size}: its root is not")),
        "{run:#?}"
    );
}

#[test]
fn after_an_erasure_the_key_is_gone_and_the_log_still_verifies() {
    let dir = Scratch::new("log-shred");
    let (data, _, _) = data_dir(&dir);
    verify(&data, &[]).assert_success();
    let conn = Connection::open(data.join("tailor.db")).unwrap();
    let keys: i64 = conn
        .query_row("SELECT COUNT(*) FROM account_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(keys, 2, "three accounts, one erased: two keys left");
    // The erasure entry is there, and nothing in the log names the account or its email.
    let entries: Vec<Vec<u8>> = conn
        .prepare("SELECT data FROM log_entries ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let text: Vec<String> = entries
        .into_iter()
        .map(|d| String::from_utf8(d).unwrap())
        .collect();
    assert!(text.iter().any(|t| t.contains("\"type\":\"erasure\"")));
    for t in &text {
        for needle in [
            "lv-cyd",
            "cyd.logtest",
            &crate::support::sha256_hex("cyd.logtest@example.com"),
        ] {
            assert!(!t.contains(needle), "an entry names the erased account");
        }
    }
}
