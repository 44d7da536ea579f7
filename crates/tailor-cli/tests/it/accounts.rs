//! `tailor accounts import`: the admin API's import from a file or stdin into a data
//! directory, with the same summary on stdout; refusals are not failures, a store that cannot
//! be opened is.

use serde_json::Value;

use crate::server::{Served, fixed_tokens};
use crate::support::{Scratch, arg, tailor};

const LINES: &str = concat!(
    r#"{"account_id":"cli-kira","region":"US","contacts":[{"kind":"email","value":"kira.sample@example.com","context":"profile","verified":true},{"kind":"phone","value":"(212) 555-0171","context":"recovery","verified":true}]}"#,
    "\n",
    r#"{"account_id":"cli-lev","region":"US","contacts":[{"kind":"email","value":"lev.sample.example.com","context":"profile"}]}"#,
    "\n",
    "not json\n",
);

fn summary(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[test]
fn import_from_a_file_prints_the_summary_and_the_server_serves_it() {
    let dir = Scratch::new("accounts-file");
    let data = dir.path("data");
    let file = dir.write("accounts.ndjson", LINES);
    let run = tailor(
        ["accounts", "import", "--data-dir", arg(&data), arg(&file)],
        b"",
    );
    run.assert_success();
    let summary = summary(&run.stdout);
    assert_eq!(summary["accounts"], 2, "{summary:#}");
    assert_eq!(summary["contact_points"], 2);
    assert_eq!(summary["rejected"]["malformed_json"], 1);
    assert_eq!(summary["rejected"]["email_missing_at"], 1);
    assert_eq!(summary["errors"][0]["line"], 2);
    assert!(!run.stdout.contains("lev.sample"), "{run:#?}");

    // A server on the same directory has them in its index from the start.
    let server = Served::start(&data, &dir.path("serve.log"), &fixed_tokens(), &[]);
    let ready = server.call("GET", "/readyz", None, b"").json();
    assert_eq!(ready["index_entries"], 1, "{ready:#}");
    let view = server.admin("GET", "/v1/admin/accounts/cli-kira", b"");
    assert_eq!(view.status, 200, "{}", view.text());
    assert_eq!(view.json()["contact_points"].as_array().unwrap().len(), 2);
    assert_eq!(server.stop().code(), Some(0));
}

#[test]
fn import_from_stdin() {
    let dir = Scratch::new("accounts-stdin");
    let data = dir.path("data");
    let run = tailor(
        ["accounts", "import", "--data-dir", arg(&data), "-"],
        LINES.as_bytes(),
    );
    run.assert_success();
    assert_eq!(summary(&run.stdout)["accounts"], 2);
    // Importing again updates the same accounts.
    let again = tailor(
        ["accounts", "import", "--data-dir", arg(&data), "-"],
        LINES.as_bytes(),
    );
    again.assert_success();
    assert_eq!(summary(&again.stdout)["accounts"], 2);
}

#[test]
fn an_unusable_data_directory_fails() {
    let dir = Scratch::new("accounts-bad-dir");
    let not_a_dir = dir.write("file", "x");
    let input = dir.write("accounts.ndjson", LINES);
    let run = tailor(
        [
            "accounts",
            "import",
            "--data-dir",
            arg(&not_a_dir),
            arg(&input),
        ],
        b"",
    );
    run.assert_failure();
    let missing = tailor(
        [
            "accounts",
            "import",
            "--data-dir",
            arg(&dir.path("data")),
            arg(&dir.path("none")),
        ],
        b"",
    );
    missing.assert_failure();
}
