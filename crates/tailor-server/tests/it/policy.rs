//! `PUT /v1/admin/policy`: a valid policy is put in force with the index rebuilt under it
//! before the answer; an invalid one is refused with its problems by line, and nothing
//! changes.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::Value;
use tailor_core::Policy;
use tailor_core::policy::DEFAULT_POLICY;

use crate::support::{App, MARKETING, contact, good_accounts};

/// The shipped policy with marketing opt-in everywhere (no opt-out default).
fn opt_in_everywhere() -> String {
    let policy = DEFAULT_POLICY.replacen("default = \"opt_out\"", "default = \"opt_in\"", 1);
    assert_ne!(policy, DEFAULT_POLICY);
    policy
}

async fn readyz(app: &App) -> Value {
    let reply = app.call(Method::GET, "/readyz", None, Body::empty()).await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.json()
}

#[tokio::test]
async fn a_new_policy_rebuilds_the_index_before_the_answer() {
    let app = App::new("policy-swap").await;
    app.import(&good_accounts()).await;
    assert!(app.indexed("alice.example@example.com"));
    assert!(app.indexed("bruno.sample@example.org"));
    let shipped = Policy::shipped().version().to_hex();
    assert_eq!(readyz(&app).await["policy_version"], shipped);

    let text = opt_in_everywhere();
    let expected = Policy::parse(&text).unwrap().version().to_hex();
    let reply = app.admin(Method::PUT, "/v1/admin/policy", text).await;
    // Alice (US-CA, no consent) is no longer eligible; Bruno (granted) still is.
    assert!(!app.indexed("alice.example@example.com"));
    assert!(app.indexed("bruno.sample@example.org"));
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["policy_version"], expected);
    assert_eq!(body["index_entries"], 1);
    assert_eq!(app.engine.index_len(), 1);

    let ready = readyz(&app).await;
    assert_eq!(ready["policy_version"], expected);
    assert_eq!(ready["index_entries"], 1);
    let alice = app.view("u-alice").await;
    assert_eq!(alice["policy_version"], expected);
    assert_eq!(
        contact(&alice, "profile")["purposes"][MARKETING]["reason"],
        "no_consent"
    );
}

#[tokio::test]
async fn a_policy_making_mfa_eligible_for_marketing_is_refused_with_its_line() {
    let app = App::new("policy-refused").await;
    app.import(&good_accounts()).await;
    let entries = app.engine.index_len();
    let text = DEFAULT_POLICY.replacen(
        "contexts = [\"profile\"]",
        "contexts = [\"profile\", \"mfa\"]",
        1,
    );
    assert_ne!(text, DEFAULT_POLICY);
    let line = text.lines().position(|l| l.contains("\"mfa\"]")).unwrap() + 1;
    let reply = app.admin(Method::PUT, "/v1/admin/policy", text).await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text()
    );
    let body = reply.json();
    assert_eq!(body["error"]["code"], "invalid_policy");
    let problems = body["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{body:#}");
    assert_eq!(problems[0]["line"], line);
    assert!(
        problems[0]["message"].as_str().unwrap().contains("mfa"),
        "{body:#}"
    );
    // Nothing changed.
    assert_eq!(app.engine.index_len(), entries);
    assert_eq!(
        readyz(&app).await["policy_version"],
        Policy::shipped().version().to_hex()
    );

    for bad in [&b"not = [toml"[..], &b"\xff\xfe"[..]] {
        let reply = app
            .admin(Method::PUT, "/v1/admin/policy", bad.to_vec())
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(reply.json()["problems"][0]["line"].as_u64().is_some());
    }
}
