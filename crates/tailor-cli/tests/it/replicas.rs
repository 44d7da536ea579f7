//! Several `tailor serve` replicas on one PostgreSQL database.
//!
//! - Every write acknowledged by one replica is in the other's answers from then on: a consent
//!   withdrawal, an erasure, a job's new members, a policy (the reader catches up to the
//!   change feed's head before it answers); jobs of one audience made through both apply in
//!   the order they were made.
//! - A replica killed with SIGKILL while a `replace` job of its own is queued or running
//!   leaves the audience with its old members or its new ones, never a mix, and the other
//!   replica takes the job over once its claim lapses and finishes it.
//!
//! Both replicas share one data directory (the index key and the log's signing key: replicas
//! must share them) and the database. Synthetic people only.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::postgres::import_and_create_advertiser;
use crate::server::{Served, fixed_tokens};
use crate::support::{Scratch, arg, runtime, tailor};
use tailor_postgres::testing::{Databases, Server};

const MARKETING: &str = "marketing.advertising.third_party.targeted";

/// Sizes without noise to speak of, ten releases' budget, a threshold of 2; claims lapse
/// after 2 s.
const SETTINGS: &[&str] = &[
    "--min-audience-size",
    "2",
    "--release-epsilon",
    "100",
    "--release-budget",
    "1000",
    "--job-lease-seconds",
    "2",
];

fn id(n: usize) -> String {
    format!("rep-{n:04}")
}

fn email(n: usize) -> String {
    format!("replica.person.{n}@example.com")
}

/// `n` US accounts, each eligible by a verified profile email (the opt-out regime).
fn accounts(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"account_id":"{}","region":"US","contacts":[{{"kind":"email","value":"{}","context":"profile","verified":true}}]}}"#,
                id(i),
                email(i)
            ) + "\n"
        })
        .collect()
}

fn list(people: impl Iterator<Item = usize>) -> String {
    let mut csv = String::from("email\n");
    for i in people {
        csv.push_str(&email(i));
        csv.push('\n');
    }
    csv
}

/// A fresh database with `n` accounts and an advertiser: (its name, its URL, the
/// advertiser's key).
fn prepared(
    runtime: &tokio::runtime::Runtime,
    pg: &Server,
    databases: &Databases,
    dir: &Scratch,
    n: usize,
) -> (String, String, String) {
    let name = runtime.block_on(databases.create());
    let url = pg.url(&name);
    let file = dir.write("accounts.ndjson", accounts(n));
    let (_, key) = import_and_create_advertiser(&dir.path("data"), &url, &file);
    (name, url, key)
}

fn start(dir: &Scratch, url: &str, name: &str) -> Served {
    let mut extra = vec!["--database-url", url];
    extra.extend_from_slice(SETTINGS);
    Served::start(
        &dir.path("data"),
        &dir.path(&format!("{name}.log")),
        &fixed_tokens(),
        &extra,
    )
}

/// Waits (bounded) until `server` serves `account` with `expected`: a new audience's first
/// members are served on the other replicas once its first size is released there, a moment
/// after the job reads `succeeded`.
fn served_soon(server: &Served, account: &str, expected: &Value) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let now = server.audiences(account);
        if now == *expected {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{account}: {now} instead of {expected}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn withdraw(server: &Served, account: &str) {
    let body = json!({"purpose": MARKETING, "state": "withdrawn", "source": "settings", "at": "2026-02-01T09:30:00Z"});
    let reply = server.admin(
        "POST",
        &format!("/v1/admin/accounts/{account}/consents"),
        body.to_string().as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
}

#[test]
fn two_replicas_answer_every_write_the_other_acknowledged() {
    let runtime = runtime();
    let Some(pg) = runtime.block_on(Server::find()) else {
        return;
    };
    let databases = Databases::new(&pg);
    let dir = Scratch::new("replicas");
    let (_, url, key) = prepared(&runtime, &pg, &databases, &dir, 16);
    let one = start(&dir, &url, "one");
    let two = start(&dir, &url, "two");

    // An audience created through two, filled through one: both serve the new members.
    let audience = two.create_audience(&key, "Shared");
    let job = one.upload_csv(&key, &audience, "add", list(0..16).as_bytes());
    assert_eq!(one.wait_for_job(&key, &job)["state"], "succeeded");
    for i in 0..16 {
        served_soon(&two, &id(i), &json!([audience]));
        assert_eq!(one.audiences(&id(i)), json!([audience]), "{}", id(i));
    }

    // A withdrawal through either replica is out of the other's answers by the time the
    // call that made it returns.
    for i in 0..6 {
        let (writer, reader) = if i % 2 == 0 {
            (&one, &two)
        } else {
            (&two, &one)
        };
        withdraw(writer, &id(i));
        assert_eq!(
            reader.audiences(&id(i)),
            json!([]),
            "{} on the other replica",
            id(i)
        );
        assert_eq!(
            writer.audiences(&id(i)),
            json!([]),
            "{} on its own replica",
            id(i)
        );
    }

    // An erasure through two: one no longer serves the account.
    let erased = two.admin("DELETE", &format!("/v1/admin/accounts/{}", id(6)), b"");
    assert_eq!(erased.status, 200, "{}", erased.text());
    assert_eq!(one.audiences(&id(6)), json!([]));

    // A replace through two: one answers with the new set as soon as two reports the job
    // done (the audience keeps its decision until a size of its new question is released).
    let job = two.upload_csv(&key, &audience, "replace", list(7..12).as_bytes());
    assert_eq!(two.wait_for_job(&key, &job)["state"], "succeeded");
    for i in 7..16 {
        let expected = if i < 12 { json!([audience]) } else { json!([]) };
        assert_eq!(one.audiences(&id(i)), expected, "{}", id(i));
    }

    // Jobs of one audience made through both replicas at once apply in the order they were
    // made, whichever replica runs them: the replace, then the add.
    let replace = one.upload_csv(&key, &audience, "replace", list(12..14).as_bytes());
    let add = two.upload_csv(&key, &audience, "add", list(14..16).as_bytes());
    assert_eq!(one.wait_for_job(&key, &replace)["state"], "succeeded");
    assert_eq!(two.wait_for_job(&key, &add)["state"], "succeeded");
    assert_eq!(one.wait_for_job(&key, &add)["state"], "succeeded");
    for i in 7..16 {
        let expected = if i >= 12 {
            json!([audience])
        } else {
            json!([])
        };
        assert_eq!(one.audiences(&id(i)), expected, "{}", id(i));
        assert_eq!(two.audiences(&id(i)), expected, "{}", id(i));
    }

    // A policy put in force through one (consent required everywhere): two applies it
    // before its next answer, so accounts without a grant are no longer served there.
    let policy = tailor_core::Policy::shipped().source().replacen(
        "default = \"opt_out\"",
        "default = \"opt_in\"",
        1,
    );
    let reply = one.admin("PUT", "/v1/admin/policy", policy.as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.text());
    for i in 7..12 {
        assert_eq!(
            two.audiences(&id(i)),
            json!([]),
            "{} under the new policy",
            id(i)
        );
    }
    let ready = two.call("GET", "/readyz", None, b"").json();
    assert_eq!(ready["index_entries"], 0, "{ready:#}");

    let logs = [one.log.clone(), two.log.clone()];
    assert_eq!(one.stop().code(), Some(0));
    assert_eq!(two.stop().code(), Some(0));
    // Two writers, one log chain: it verifies.
    let verified = tailor(
        [
            "log",
            "verify",
            "--data-dir",
            arg(&dir.path("data")),
            "--database-url",
            &url,
        ],
        b"",
    );
    verified.assert_success();
    for log in logs {
        let log = std::fs::read_to_string(log).unwrap();
        for value in ["example.com", "rep-00"] {
            assert!(!log.contains(value), "the log holds {value}");
        }
    }
}

/// The accounts that are members of the audience, read from the database.
fn members(runtime: &tokio::runtime::Runtime, client: &tokio_postgres::Client) -> BTreeSet<i64> {
    runtime
        .block_on(client.query("SELECT account_no FROM memberships", &[]))
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

fn job_state(
    runtime: &tokio::runtime::Runtime,
    client: &tokio_postgres::Client,
    job_id: &str,
) -> String {
    runtime
        .block_on(client.query_one("SELECT state FROM jobs WHERE job_id = $1", &[&job_id]))
        .unwrap()
        .get(0)
}

#[test]
fn a_replica_killed_mid_job_leaves_the_old_members_or_the_new_and_the_other_finishes_it() {
    let runtime = runtime();
    let Some(pg) = runtime.block_on(Server::find()) else {
        return;
    };
    let databases = Databases::new(&pg);
    let dir = Scratch::new("replica-kill");
    let people = 400;
    let (name, url, key) = prepared(&runtime, &pg, &databases, &dir, people);
    let client = runtime.block_on(pg.client(&name));
    // Account numbers follow the import order: person i is account i + 1.
    let set =
        |range: std::ops::Range<usize>| -> BTreeSet<i64> { range.map(|i| i as i64 + 1).collect() };
    let lists = [(0..250, list(0..250)), (150..400, list(150..400))];

    let survivor = start(&dir, &url, "survivor");
    let audience = survivor.create_audience(&key, "Replaced");
    let mut before = BTreeSet::new();
    let mut taken_over = 0;
    // Killed right after the 202, then after more and more job polls.
    for (round, polls) in [0, 0, 1, 3].into_iter().enumerate() {
        let victim = start(&dir, &url, &format!("victim-{round}"));
        let (range, csv) = &lists[round % 2];
        let job = victim.upload_csv(&key, &audience, "replace", csv.as_bytes());
        for _ in 0..polls {
            let reply = victim.call("GET", &format!("/v1/jobs/{job}"), Some(&key), b"");
            assert_eq!(reply.status, 200, "{}", reply.text());
        }
        victim.kill();
        let after = set(range.clone());

        // As the kill left it: the old members or the new, nothing in between.
        let now = members(&runtime, &client);
        assert!(
            now == before || now == after,
            "round {round}: a mix of old and new members"
        );
        if job_state(&runtime, &client, &job) != "succeeded" {
            taken_over += 1;
        }

        // The survivor takes the job over once the dead replica's claim lapses, and ends it.
        let done = survivor.wait_for_job(&key, &job);
        assert_eq!(done["state"], "succeeded", "round {round}: {done:#}");
        assert_eq!(members(&runtime, &client), after, "round {round}");
        for i in [range.start, range.end - 1] {
            assert_eq!(
                survivor.audiences(&id(i)),
                json!([audience]),
                "round {round}"
            );
        }
        before = after;
    }
    // The first kill comes within a millisecond of the 202: that job cannot have been done.
    assert!(taken_over >= 1, "no job was left to the survivor");
    let log = std::fs::read_to_string(&survivor.log).unwrap();
    assert!(
        log.contains("claimed a job no running process holds"),
        "{log}"
    );
    assert_eq!(survivor.stop().code(), Some(0));
}
