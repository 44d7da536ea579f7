//! End to end: a real `tailor serve` on port 0, driven over HTTP; stopped with SIGTERM (exit
//! 0) and restarted on the same data directory with the same index and the same views.

use crate::server::{ADMIN, SERVING, Served, fixed_tokens};
use crate::support::{Scratch, arg, tailor};

const MARKETING: &str = "marketing.advertising.third_party.targeted";

/// Two synthetic accounts: one with an eligible email and an MFA phone, one opt-in with a
/// grant.
const ACCOUNTS: &str = concat!(
    r#"{"account_id":"e2e-ines","region":"US-CA","contacts":[{"kind":"email","value":"Ines.Sample@Example.com","context":"profile","verified":true},{"kind":"phone","value":"+1 415 555 0161","context":"mfa","verified":true}]}"#,
    "\n",
    r#"{"account_id":"e2e-jonas","region":"DE","contacts":[{"kind":"email","value":"jonas.sample@example.org","context":"profile","verified":true}],"consents":[{"purpose":"marketing.advertising.third_party.targeted","state":"granted","source":"tcf","at":"2026-01-05T10:00:00Z"}]}"#,
    "\n",
    "{this line is not json\n",
);

/// What must appear nowhere in the server's output.
const PERSONAL: &[&str] = &[
    "e2e-ines",
    "e2e-jonas",
    "ines.sample",
    "jonas.sample",
    "415 555 0161",
    "4155550161",
];

fn assert_clean(what: &str, text: &str) {
    let lower = text.to_lowercase();
    for value in PERSONAL {
        assert!(!lower.contains(value), "{what} holds {value:?}:\n{text}");
    }
}

/// Fails if a file under `dir` holds a fixture's contact value in a normalized form, or the
/// plain SHA-256 of one (hex or raw bytes).
fn assert_no_contact_values(dir: &std::path::Path) {
    let forms = [
        "ines.sample@example.com",
        "+14155550161",
        "14155550161",
        "jonas.sample@example.org",
    ];
    let mut needles: Vec<Vec<u8>> = Vec::new();
    for form in forms {
        let digest = tailor_core::Sha256Digest::of(form.as_bytes());
        needles.push(form.as_bytes().to_vec());
        needles.push(digest.to_hex().as_str().as_bytes().to_vec());
        needles.push(digest.as_bytes().to_vec());
    }
    let mut files = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        files += 1;
        for needle in &needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_slice()),
                "{} holds a contact value or its digest",
                path.display()
            );
        }
    }
    assert!(files >= 2, "no database in {}", dir.display());
}

#[test]
fn serve_imports_stops_on_sigterm_and_restarts_with_the_same_index() {
    let dir = Scratch::new("serve-e2e");
    let data = dir.path("data");
    let server = Served::start(&data, &dir.path("first.log"), &fixed_tokens(), &[]);

    let health = server.call("GET", "/healthz", None, b"");
    assert_eq!(health.status, 200);
    let import = server.admin("POST", "/v1/admin/accounts", ACCOUNTS.as_bytes());
    assert_eq!(import.status, 200, "{}", import.text());
    let summary = import.json();
    assert_eq!(summary["accounts"], 2, "{summary:#}");
    assert_eq!(summary["contact_points"], 3);
    assert_eq!(summary["rejected"]["malformed_json"], 1);

    let view = server.admin("GET", "/v1/admin/accounts/e2e-ines", b"");
    assert_eq!(view.status, 200, "{}", view.text());
    let ines = view.json();
    let contacts = ines["contact_points"].as_array().unwrap();
    let mfa = contacts.iter().find(|c| c["context"] == "mfa").unwrap();
    assert_eq!(mfa["purposes"][MARKETING]["reason"], "security_context");
    let profile = contacts.iter().find(|c| c["context"] == "profile").unwrap();
    assert_eq!(profile["purposes"][MARKETING]["eligible"], true);
    let jonas = server
        .admin("GET", "/v1/admin/accounts/e2e-jonas", b"")
        .json();

    let ready = server.call("GET", "/readyz", None, b"").json();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["index_entries"], 2, "{ready:#}");

    let forbidden = server.call("GET", "/v1/admin/accounts/e2e-ines", Some(SERVING), b"");
    assert_eq!(forbidden.status, 403);
    let unauthorized = server.call("GET", "/v1/admin/accounts/e2e-ines", None, b"");
    assert_eq!(unauthorized.status, 401);
    assert!(
        unauthorized
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer"))
    );
    let metrics = server.call("GET", "/metrics", None, b"");
    assert_eq!(metrics.status, 200);
    assert_clean("metrics", &metrics.text());

    // While the server runs (its WAL in place), no file of the data directory holds a contact
    // value or its plain SHA-256.
    assert_no_contact_values(&data);

    let first_stdout = server.stdout.join("\n");
    let first_log = server.log.clone();
    let status = server.stop();
    assert_eq!(status.code(), Some(0), "{status:?}");

    // The generated index key is private to its owner.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("secret.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Restart on the same data directory: the same index and the same views.
    let server = Served::start(&data, &dir.path("second.log"), &fixed_tokens(), &[]);
    let again = server.call("GET", "/readyz", None, b"").json();
    assert_eq!(again, ready);
    assert_eq!(
        server
            .admin("GET", "/v1/admin/accounts/e2e-ines", b"")
            .json(),
        ines
    );
    assert_eq!(
        server
            .admin("GET", "/v1/admin/accounts/e2e-jonas", b"")
            .json(),
        jonas
    );
    let second_stdout = server.stdout.join("\n");
    let second_log = server.log.clone();
    assert_eq!(server.stop().code(), Some(0));

    for (what, text) in [
        ("first stdout", first_stdout),
        ("second stdout", second_stdout),
        ("first log", std::fs::read_to_string(first_log).unwrap()),
        ("second log", std::fs::read_to_string(second_log).unwrap()),
    ] {
        assert_clean(what, &text);
        assert!(!text.contains(ADMIN), "{what} holds the admin token");
    }
}

#[test]
fn generated_tokens_are_shown_once_and_reset_replaces_them() {
    let dir = Scratch::new("serve-tokens");
    let data = dir.path("data");
    // Only the serving token is given; admin and compliance are generated.
    let env = [("TAILOR_SERVING_TOKEN", SERVING)];
    let server = Served::start(&data, &dir.path("first.log"), &env, &[]);
    let generated = |stdout: &[String], role: &str| -> Option<String> {
        let prefix = format!("{role} token (generated");
        stdout
            .iter()
            .find(|l| l.starts_with(&prefix))
            .map(|l| l.rsplit(' ').next().unwrap().to_owned())
    };
    let admin = generated(&server.stdout, "admin").expect("a generated admin token");
    assert_eq!(admin.len(), 64, "{admin}");
    assert!(generated(&server.stdout, "compliance").is_some());
    assert!(
        server
            .stdout
            .iter()
            .any(|l| l == "serving token: from TAILOR_SERVING_TOKEN"),
        "{:#?}",
        server.stdout
    );
    let view = server.call("GET", "/v1/admin/accounts/nobody", Some(&admin), b"");
    assert_eq!(view.status, 404, "{}", view.text());
    assert_eq!(server.stop().code(), Some(0));
    // Only the hash is stored.
    let db = std::fs::read(data.join("tailor.db")).unwrap();
    assert!(!db.windows(admin.len()).any(|w| w == admin.as_bytes()));

    // A second start shows no token, and the generated one still works.
    let server = Served::start(&data, &dir.path("second.log"), &env, &[]);
    assert_eq!(generated(&server.stdout, "admin"), None);
    assert!(
        server
            .stdout
            .iter()
            .any(|l| l.starts_with("admin token: set at an earlier start")),
        "{:#?}",
        server.stdout
    );
    assert!(!server.stdout.join("\n").contains(&admin));
    let view = server.call("GET", "/v1/admin/accounts/nobody", Some(&admin), b"");
    assert_eq!(view.status, 404);
    assert_eq!(server.stop().code(), Some(0));

    // Reset: a new token is printed once; after a restart it works and the old one does not.
    let reset = tailor(
        [
            "tokens",
            "reset",
            "--data-dir",
            arg(&data),
            "--role",
            "admin",
        ],
        b"",
    );
    reset.assert_success();
    let new_admin = reset.stdout.trim().to_owned();
    assert_eq!(new_admin.len(), 64, "{reset:#?}");
    assert_ne!(new_admin, admin);
    let server = Served::start(&data, &dir.path("third.log"), &env, &[]);
    assert_eq!(
        server
            .call("GET", "/v1/admin/accounts/nobody", Some(&admin), b"")
            .status,
        401
    );
    assert_eq!(
        server
            .call("GET", "/v1/admin/accounts/nobody", Some(&new_admin), b"")
            .status,
        404
    );
    assert_eq!(server.stop().code(), Some(0));

    let missing = tailor(
        [
            "tokens",
            "reset",
            "--data-dir",
            arg(&dir.path("nowhere")),
            "--role",
            "admin",
        ],
        b"",
    );
    missing.assert_failure();
    assert!(!dir.path("nowhere").exists());
}

#[test]
fn serve_refuses_to_start_with_a_policy_that_markets_security_contacts() {
    let dir = Scratch::new("serve-bad-policy");
    let policy = tailor_core::policy::DEFAULT_POLICY.replacen(
        "contexts = [\"profile\"]",
        "contexts = [\"profile\", \"recovery\"]",
        1,
    );
    let line = policy
        .lines()
        .position(|l| l.contains("\"recovery\"]"))
        .unwrap()
        + 1;
    let file = dir.write("bad.toml", &policy);
    let data = dir.path("data");
    let run = tailor(
        [
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            arg(&data),
            "--policy",
            arg(&file),
        ],
        b"",
    );
    run.assert_failure();
    assert!(
        run.stderr.contains(&format!("bad.toml:{line}: `recovery`")),
        "{run:#?}"
    );
    // Nothing was created.
    assert!(!data.exists());
}
