//! `--database-url`: Tailor on PostgreSQL, end to end. The operator commands and a real
//! `tailor serve` share one fresh database (and one data directory, for the keys); the state
//! survives a restart; a bad or unreachable URL is a clear error, never a panic, and never
//! shows the password.
//!
//! The tests that need a server find it through `TAILOR_TEST_POSTGRES`, as the
//! `tailor-postgres` tests do (the same helper): skipped with a loud line when none answers,
//! failed under `CI=true`.

use std::path::Path;

use serde_json::{Value, json};
use tailor_postgres::testing::{Databases, Server};

use crate::server::{Served, fixed_tokens};
use crate::support::{Scratch, arg, runtime, tailor};

/// Two accounts eligible by their profile email (US, opt-out), one reachable only through an
/// MFA phone. Synthetic.
const ACCOUNTS: &str = concat!(
    r#"{"account_id":"pg-ana","region":"US","contacts":[{"kind":"email","value":"ana.pg@example.com","context":"profile","verified":true}]}"#,
    "\n",
    r#"{"account_id":"pg-ben","region":"US-CA","contacts":[{"kind":"email","value":"ben.pg@example.com","context":"profile","verified":true}]}"#,
    "\n",
    r#"{"account_id":"pg-cyd","region":"US","contacts":[{"kind":"phone","value":"+1 415 555 0188","context":"mfa","verified":true}]}"#,
    "\n",
);

const LIST: &str = "email,phone\nAna.PG@example.com,\nben.pg@example.com,\n,+1 415 555 0188\nnobody@example.net,\n";

/// A tiny fixture: so much ε that the noise is nil, and a threshold it clears.
const RELEASE: &[&str] = &[
    "--min-audience-size",
    "2",
    "--release-epsilon",
    "1000",
    "--release-budget",
    "1000",
];

/// Asks the serving API for each account's audiences and compares.
fn assert_served(server: &Served, expected: &[(&str, Value)]) {
    for (account, audiences) in expected {
        assert_eq!(server.audiences(account), *audiences, "{account}");
    }
}

/// `tailor accounts import` of `accounts` into the database at `url` (the keys go to `data`),
/// then `tailor advertisers create`: the import's summary and the advertiser's API key.
pub(crate) fn import_and_create_advertiser(
    data: &Path,
    url: &str,
    accounts: &Path,
) -> (Value, String) {
    let import = tailor(
        [
            "accounts",
            "import",
            "--data-dir",
            arg(data),
            "--database-url",
            url,
            arg(accounts),
        ],
        b"",
    );
    import.assert_success();
    let summary: Value = serde_json::from_str(&import.stdout).unwrap();
    let created = tailor(
        [
            "advertisers",
            "create",
            "--data-dir",
            arg(data),
            "--database-url",
            url,
            "--name",
            "Acme",
        ],
        b"",
    );
    created.assert_success();
    let created: Value = serde_json::from_str(created.stdout.trim()).unwrap();
    (summary, created["api_key"].as_str().unwrap().to_owned())
}

#[test]
fn serve_on_postgres_keeps_its_state_across_a_restart() {
    let runtime = runtime();
    let Some(pg) = runtime.block_on(Server::find()) else {
        return;
    };
    let databases = Databases::new(&pg);
    let url = pg.url(&runtime.block_on(databases.create()));
    let dir = Scratch::new("postgres-e2e");
    let data = dir.path("data");
    let accounts = dir.write("accounts.ndjson", ACCOUNTS);

    // The operator commands write into the database; the data directory gets the keys.
    let (summary, key) = import_and_create_advertiser(&data, &url, &accounts);
    assert_eq!(summary["accounts"], 3, "{summary:#}");

    let mut extra = vec!["--database-url", url.as_str()];
    extra.extend_from_slice(RELEASE);
    let server = Served::start(&data, &dir.path("first.log"), &fixed_tokens(), &extra);
    let ready = server.call("GET", "/readyz", None, b"").json();
    assert_eq!(ready["index_entries"], 2, "{ready:#}");
    let audience_id = server.create_audience(&key, "Newsletter");
    let job_id = server.upload_csv(&key, &audience_id, "add", LIST.as_bytes());
    let job = server.wait_for_job(&key, &job_id);
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let view = server.wait_for_audience(&key, &audience_id);
    assert_eq!(view["status"], "ready", "{view:#}");
    assert_eq!(view["size"], json!({"approximate": 2}));
    let expected = [
        ("pg-ana", json!([audience_id])),
        ("pg-ben", json!([audience_id])),
        ("pg-cyd", json!([])),
    ];
    assert_served(&server, &expected);
    let first_log = server.log.clone();
    assert_eq!(server.stop().code(), Some(0));

    // Nothing went to an SQLite database; the keys are in the data directory.
    assert!(!data.join("tailor.db").exists());
    assert!(data.join("secret.key").exists());

    // The accountability log in the database checks out against the key beside the data.
    let verified = tailor(
        [
            "log",
            "verify",
            "--data-dir",
            arg(&data),
            "--database-url",
            &url,
        ],
        b"",
    );
    verified.assert_success();
    assert!(verified.stdout.starts_with("ok: "), "{verified:#?}");

    // Restarted on the same database (the URL from the environment this time): the same
    // index, the same memberships served.
    let mut env = fixed_tokens();
    env.push(("TAILOR_DATABASE_URL", url.as_str()));
    let server = Served::start(&data, &dir.path("second.log"), &env, RELEASE);
    assert_eq!(server.call("GET", "/readyz", None, b"").json(), ready);
    assert_served(&server, &expected);
    let again = server.wait_for_audience(&key, &audience_id);
    assert_eq!(again["status"], "ready", "{again:#}");
    let second_log = server.log.clone();
    assert_eq!(server.stop().code(), Some(0));

    // The logs name the database by place only, and no synthetic identifier.
    for log in [first_log, second_log] {
        let log = std::fs::read_to_string(log).unwrap();
        assert!(log.contains("store: PostgreSQL"), "{log}");
        for value in ["pg@example.com", "555 0188", "pg-ana", "password", &key] {
            assert!(!log.contains(value), "the log holds {value}");
        }
    }
}

#[test]
fn a_bad_database_url_is_a_clear_error() {
    let dir = Scratch::new("postgres-bad-url");
    let data = dir.path("data");
    for (url, message) in [
        (
            "mysql://root:hunter2@localhost/tailor",
            "not a PostgreSQL connection string",
        ),
        ("postgres://tailor:hunter2@", "names no host"),
        // Port 1: nothing listens there, so the connection is refused at once.
        (
            "postgres://tailor:hunter2@127.0.0.1:1/tailor",
            "cannot open the PostgreSQL database 127.0.0.1:1/tailor: ",
        ),
    ] {
        for command in [
            &["serve", "--listen", "127.0.0.1:0"][..],
            &["accounts", "import", "-"][..],
        ] {
            let mut args: Vec<&str> = command.to_vec();
            args.extend(["--data-dir", arg(&data), "--database-url", url]);
            let run = tailor(&args, b"");
            run.assert_failure();
            assert!(run.stderr.contains(message), "{url}: {run:#?}");
            assert!(!run.stderr.contains("hunter2"), "{run:#?}");
            assert!(!run.stderr.contains("panicked"), "{run:#?}");
            assert!(!run.stdout.contains("listening"), "{run:#?}");
        }
    }
    // The variable is read too, and its value is not shown in the help.
    let help = tailor(["serve", "--help"], b"");
    help.assert_success();
    assert!(help.stdout.contains("TAILOR_DATABASE_URL"), "{help:#?}");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_tailor"))
        .args(["serve", "--help"])
        .env(
            "TAILOR_DATABASE_URL",
            "postgres://tailor:hunter2@127.0.0.1:1/t",
        )
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&run.stdout).contains("hunter2"));
}
