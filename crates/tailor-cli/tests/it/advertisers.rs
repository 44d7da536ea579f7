//! `tailor advertisers create`, and the README's advertiser walk-through against a real
//! `tailor serve`: an advertiser, an audience, a CSV upload with a `Content-Type`, the job
//! watched until it finishes, the audience ready, the serving lookup.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::server::{Served, fixed_tokens};
use crate::support::{Scratch, arg, tailor};

/// Two accounts eligible by their profile email (US, opt-out), one reachable only through an
/// MFA phone.
const ACCOUNTS: &str = concat!(
    r#"{"account_id":"w-ana","region":"US","contacts":[{"kind":"email","value":"ana.walk@example.com","context":"profile","verified":true}]}"#,
    "\n",
    r#"{"account_id":"w-ben","region":"US-CA","contacts":[{"kind":"email","value":"ben.walk@example.com","context":"profile","verified":true}]}"#,
    "\n",
    r#"{"account_id":"w-cyd","region":"US","contacts":[{"kind":"phone","value":"+1 415 555 0177","context":"mfa","verified":true}]}"#,
    "\n",
);

const LIST: &str = "email,phone\nAna.Walk@example.com,\nben.walk@example.com,\n,+1 415 555 0177\nnobody@example.net,\n";

#[test]
fn create_prints_the_admin_json_and_refuses_while_a_server_runs() {
    let dir = Scratch::new("advertisers-create");
    let data = dir.path("data");
    std::fs::create_dir(&data).unwrap();
    let run = tailor(
        [
            "advertisers",
            "create",
            "--data-dir",
            arg(&data),
            "--name",
            "Acme",
            "--entity",
            "Acme Corp",
        ],
        b"",
    );
    run.assert_success();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{run:#?}");
    let created: Value = serde_json::from_str(lines[0]).unwrap();
    let fields: Vec<&str> = created
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        ["advertiser_id", "api_key", "entity", "key_id", "name"]
    );
    assert_eq!(created["name"], "Acme");
    assert_eq!(created["entity"], "Acme Corp");
    let key = created["api_key"].as_str().unwrap();
    assert!(run.stderr.contains("shown only this once"), "{run:#?}");

    // The server started on the directory knows the advertiser by its key.
    let server = Served::start(&data, &dir.path("serve.log"), &fixed_tokens(), &[]);
    let reply = server.call("GET", "/v1/audiences", Some(key), b"");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json(), json!({"audiences": []}));

    // While it runs, the data directory is its own.
    let refused = tailor(
        [
            "advertisers",
            "create",
            "--data-dir",
            arg(&data),
            "--name",
            "Bolt",
        ],
        b"",
    );
    refused.assert_failure();
    assert!(
        refused.stderr.contains("in use by another tailor process"),
        "{refused:#?}"
    );
    assert!(refused.stdout.is_empty());
    assert_eq!(server.stop().code(), Some(0));

    let missing = tailor(
        [
            "advertisers",
            "create",
            "--data-dir",
            arg(&dir.path("nowhere")),
            "--name",
            "Acme",
        ],
        b"",
    );
    missing.assert_failure();
    assert!(missing.stderr.contains("no data directory"), "{missing:#?}");
    assert!(!dir.path("nowhere").exists());

    let empty = tailor(
        [
            "advertisers",
            "create",
            "--data-dir",
            arg(&data),
            "--name",
            " ",
        ],
        b"",
    );
    empty.assert_failure();
    assert!(empty.stderr.contains("--name"), "{empty:#?}");
}

#[test]
fn the_readme_walk_through() {
    let dir = Scratch::new("advertisers-walk");
    let data = dir.path("data");
    let server = Served::start(
        &data,
        &dir.path("serve.log"),
        &fixed_tokens(),
        // A tiny fixture: so much ε that the noise is nil (below e^-1000), and room for it.
        &[
            "--min-audience-size",
            "2",
            "--release-epsilon",
            "1000",
            "--release-budget",
            "1000",
        ],
    );
    let import = server.admin("POST", "/v1/admin/accounts", ACCOUNTS.as_bytes());
    assert_eq!(import.status, 200, "{}", import.text());

    let created = server.admin(
        "POST",
        "/v1/admin/advertisers",
        br#"{"name":"Acme","entity":"Acme Corp"}"#,
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let key = created.json()["api_key"].as_str().unwrap().to_owned();

    let audience = server.call(
        "POST",
        "/v1/audiences",
        Some(&key),
        br#"{"name":"Newsletter"}"#,
    );
    assert_eq!(audience.status, 201, "{}", audience.text());
    let audience_id = audience.json()["id"].as_str().unwrap().to_owned();

    let upload = server.typed(
        "POST",
        &format!("/v1/audiences/{audience_id}/uploads?op=add"),
        Some(&key),
        "text/csv",
        LIST.as_bytes(),
    );
    assert_eq!(upload.status, 202, "{}", upload.text());
    let job_id = upload.json()["job_id"].as_str().unwrap().to_owned();

    // Watch the job, as a user would, until it is done (bounded).
    let deadline = Instant::now() + Duration::from_secs(120);
    let job = loop {
        let job = server
            .call("GET", &format!("/v1/jobs/{job_id}"), Some(&key), b"")
            .json();
        if job["state"] != "queued" && job["state"] != "running" {
            break job;
        }
        assert!(Instant::now() < deadline, "the job never finished: {job:#}");
    };
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(job["rows_received"], 4);
    assert_eq!(job["rows_accepted"], 4);

    let view = server
        .call(
            "GET",
            &format!("/v1/audiences/{audience_id}"),
            Some(&key),
            b"",
        )
        .json();
    assert_eq!(view["status"], "ready", "{view:#}");
    assert_eq!(view["size"], json!({"approximate": 2}));

    for (account, expected) in [
        ("w-ana", json!([audience_id])),
        ("w-ben", json!([audience_id])),
        ("w-cyd", json!([])),
    ] {
        assert_eq!(server.audiences(account), expected, "{account}");
    }
    let doc = server.call("GET", "/v1/openapi.json", None, b"");
    assert_eq!(doc.status, 200);
    assert!(doc.json()["paths"]["/v1/audiences/{audience_id}/uploads"].is_object());

    let log_path = server.log.clone();
    assert_eq!(server.stop().code(), Some(0));
    let log = std::fs::read_to_string(log_path).unwrap();
    // Requests are logged at info by template, except serving lookups (counted, not logged).
    assert!(log.contains("/v1/audiences/{audience_id}/uploads"), "{log}");
    assert!(!log.contains("/v1/serving/"), "{log}");
    for value in [
        "walk@example.com",
        "Walk@example.com",
        "555 0177",
        "w-ana",
        &key,
    ] {
        assert!(!log.contains(value), "the log holds {value}");
    }
}
