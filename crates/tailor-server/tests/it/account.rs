//! Reading an account back, consent events and erasure, through the admin API; each write
//! shows in the index before its response.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::{App, Backend, MARKETING, SECURITY, contact, good_accounts, on_both_backends};

async fn the_view_shows_eligibility_per_purpose_and_why_not(backend: Backend) {
    let app = App::on(&backend, "view").await;
    app.import(&good_accounts()).await;

    let alice = app.view("u-alice").await;
    assert_eq!(alice["account_id"], "u-alice");
    assert_eq!(alice["region"], "US-CA");
    let email = contact(&alice, "profile");
    assert_eq!(email["kind"], "email");
    assert_eq!(email["verified"], true);
    assert_eq!(
        email["purposes"][MARKETING],
        json!({"eligible": true, "basis": "opt_out_regime"})
    );
    let phone = contact(&alice, "mfa");
    assert_eq!(phone["kind"], "phone");
    assert_eq!(
        phone["purposes"][MARKETING],
        json!({"eligible": false, "reason": "security_context"})
    );
    assert_eq!(
        phone["purposes"][SECURITY],
        json!({"eligible": true, "basis": "not_required"})
    );
    assert_eq!(alice["consent"][MARKETING]["state"], "none");

    let bruno = app.view("u-bruno").await;
    let email = contact(&bruno, "profile");
    assert_eq!(email["purposes"][MARKETING]["eligible"], true);
    assert_eq!(email["purposes"][MARKETING]["basis"], "consent");
    assert_eq!(bruno["consent"][MARKETING]["state"], "granted");
    assert_eq!(bruno["consent"][MARKETING]["source"], "settings");
    assert_eq!(bruno["consent"][MARKETING]["notice_version"], "n-2026-01");

    let chloe = app.view("u-chloe").await;
    assert_eq!(
        contact(&chloe, "profile")["purposes"][MARKETING],
        json!({"eligible": false, "reason": "no_consent"})
    );
    assert_eq!(
        contact(&chloe, "recovery")["purposes"][MARKETING]["reason"],
        "security_context"
    );

    // No view carries a contact value, in any form.
    for view in [&alice, &bruno, &chloe] {
        let text = view.to_string().to_lowercase();
        for value in [
            "alice.example",
            "bruno.sample",
            "chloe.sample",
            "555",
            "7946",
        ] {
            assert!(!text.contains(value), "{value} in {text}");
        }
    }
}

async fn a_withdrawal_makes_the_contact_ineligible_and_leaves_the_index_before_the_answer(
    backend: Backend,
) {
    let app = App::on(&backend, "withdraw").await;
    app.import(&good_accounts()).await;
    assert!(app.indexed("bruno.sample@example.org"));
    let before = app.engine.index_len();

    let withdrawal = json!({
        "purpose": MARKETING,
        "state": "withdrawn",
        "source": "settings",
        "at": "2026-02-01T09:30:00Z",
        "notice_version": "n-2026-01",
    });
    let reply = app
        .admin(
            Method::POST,
            "/v1/admin/accounts/u-bruno/consents",
            withdrawal.to_string(),
        )
        .await;
    // Checked right after the response: the index already changed.
    assert!(!app.indexed("bruno.sample@example.org"));
    assert_eq!(app.engine.index_len(), before - 1);
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let view = reply.json();
    assert_eq!(
        contact(&view, "profile")["purposes"][MARKETING]["reason"],
        "withdrawn"
    );
    assert_eq!(view["consent"][MARKETING]["state"], "withdrawn");
    assert_eq!(app.view("u-bruno").await, view);

    // A GPC signal withdraws an opt-out account too.
    assert!(app.indexed("alice.example@example.com"));
    let gpc = json!({"purpose": "marketing", "state": "granted", "source": "gpc", "at": "2026-02-02T00:00:00Z"});
    let reply = app
        .admin(
            Method::POST,
            "/v1/admin/accounts/u-alice/consents",
            gpc.to_string(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(!app.indexed("alice.example@example.com"));

    // A new grant brings Bruno back.
    let grant = json!({"purpose": MARKETING, "state": "granted", "source": "tcf", "at": "2026-02-03T00:00:00Z"});
    let reply = app
        .admin(
            Method::POST,
            "/v1/admin/accounts/u-bruno/consents",
            grant.to_string(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(app.indexed("bruno.sample@example.org"));
}

#[tokio::test]
async fn refused_consent_events_name_the_field_and_unknown_accounts_are_404() {
    let app = App::new("consent-refused").await;
    app.import(&good_accounts()).await;
    let cases = [
        (
            json!({"purpose": MARKETING, "state": "withdrawn", "source": "settings", "at": "2030-01-01T00:00:00Z"}),
            Some("at"),
            "time_in_future",
        ),
        (
            json!({"purpose": "marketing.spam", "state": "withdrawn", "source": "settings", "at": "2026-01-01T00:00:00Z"}),
            Some("purpose"),
            "unknown_purpose",
        ),
        (
            json!({"purpose": MARKETING, "state": "maybe", "source": "settings", "at": "2026-01-01T00:00:00Z"}),
            Some("state"),
            "unknown_consent_state",
        ),
        (json!({"purpose": MARKETING}), None, "malformed_json"),
    ];
    for (event, field, reason) in cases {
        let reply = app
            .admin(
                Method::POST,
                "/v1/admin/accounts/u-bruno/consents",
                event.to_string(),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{event}: {}",
            reply.text()
        );
        let body = reply.json();
        assert_eq!(body["line"], 1);
        assert_eq!(body["field"].as_str(), field);
        assert_eq!(body["reason"], reason);
        assert_eq!(body["error"]["code"], "consent_refused");
    }
    // Nothing was recorded: Bruno's grant still stands.
    assert!(app.indexed("bruno.sample@example.org"));

    let event = json!({"purpose": MARKETING, "state": "withdrawn", "source": "settings", "at": "2026-01-01T00:00:00Z"});
    let reply = app
        .admin(
            Method::POST,
            "/v1/admin/accounts/u-nobody/consents",
            event.to_string(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text());
    assert_eq!(reply.error_code(), "account_not_found");
}

async fn erasure_reports_counts_and_empties_the_index_of_the_account(backend: Backend) {
    let app = App::on(&backend, "erase").await;
    app.import(&good_accounts()).await;
    let before = app.engine.index_len();
    assert!(app.indexed("bruno.sample@example.org"));

    let reply = app
        .admin(Method::DELETE, "/v1/admin/accounts/u-bruno", Body::empty())
        .await;
    assert!(!app.indexed("bruno.sample@example.org"));
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!({
            "erased": true,
            "contact_points": 1,
            "consent_events": 1,
            "index_entries": 1,
            "memberships": 0,
        })
    );
    assert_eq!(app.engine.index_len(), before - 1);
    // Alice is untouched.
    assert!(app.indexed("alice.example@example.com"));

    let view = app
        .admin(Method::GET, "/v1/admin/accounts/u-bruno", Body::empty())
        .await;
    assert_eq!(view.status, StatusCode::NOT_FOUND);
    let again = app
        .admin(Method::DELETE, "/v1/admin/accounts/u-bruno", Body::empty())
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(again.error_code(), "account_not_found");

    // Erasing Alice removes her email's entry; her MFA phone never had one.
    let reply = app
        .admin(Method::DELETE, "/v1/admin/accounts/u-alice", Body::empty())
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let report = reply.json();
    assert_eq!(report["contact_points"], 2);
    assert_eq!(report["index_entries"], 1);
    assert_eq!(app.engine.index_len(), 0);
}

on_both_backends!(
    the_view_shows_eligibility_per_purpose_and_why_not,
    a_withdrawal_makes_the_contact_ineligible_and_leaves_the_index_before_the_answer,
    erasure_reports_counts_and_empties_the_index_of_the_account,
);
