//! `POST /v1/admin/accounts` and `PUT /v1/admin/accounts/{id}`: good lines are kept, bad
//! lines and parts are counted by reason and named by line, and a body over the limit is cut
//! with 413 while what came before it stays imported.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use tailor_engine::Limits;

use crate::support::{ALICE, App, BRUNO, CHLOE, good_accounts};

/// The refusals of a summary as (line, field, reason), in order.
fn errors(summary: &Value) -> Vec<(u64, Option<String>, String)> {
    summary["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap(),
                e["field"].as_str().map(str::to_owned),
                e["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn good_lines_are_imported() {
    let app = App::new("import-good").await;
    let summary = app.import(&good_accounts()).await;
    assert_eq!(summary["accounts"], 3, "{summary:#}");
    assert_eq!(summary["contact_points"], 5);
    assert_eq!(summary["consents"], 1);
    assert_eq!(summary["rejected"], json!({}));
    assert_eq!(summary["errors"], json!([]));
    assert_eq!(summary["truncated"], false);
    assert!(app.indexed("alice.example@example.com"));
    assert!(app.indexed("bruno.sample@example.org"));
    // Chloe has given no consent in an opt-in region; Alice's phone is for MFA.
    assert!(!app.indexed("chloe.sample@example.com"));
    assert!(!app.indexed("+14155550101"));
    assert!(!app.indexed("14155550101"));
}

#[tokio::test]
async fn bad_lines_and_parts_are_counted_by_reason_and_good_ones_kept() {
    let app = App::new("import-bad").await;
    let body = [
        // 1: good.
        ALICE,
        // 2: not JSON.
        r#"{"account_id":"u-broken","region":"US""#,
        // 3: an unknown context and an unknown kind; the good email is kept.
        r#"{"account_id":"u-dora","region":"US-NY","contacts":[{"kind":"email","value":"dora.sample@example.com","context":"newsletter","verified":true},{"kind":"fax","value":"+1 212 555 0103","context":"profile"},{"kind":"email","value":"dora.other@example.com","context":"profile","verified":true}]}"#,
        // 4: an invalid email and an invalid phone.
        r#"{"account_id":"u-emil","region":"US","contacts":[{"kind":"email","value":"emil.example.com","context":"profile"},{"kind":"phone","value":"12","context":"profile"}]}"#,
        // 5: the same contact point twice.
        r#"{"account_id":"u-fay","region":"US","contacts":[{"kind":"email","value":"fay.sample@example.org","context":"profile","verified":true},{"kind":"email","value":" FAY.sample@example.org","context":"profile","verified":true}]}"#,
        // 6: an unknown purpose and a time in the future.
        r#"{"account_id":"u-gus","region":"DE","consents":[{"purpose":"marketing.spam","state":"granted","source":"settings","at":"2026-01-01T00:00:00Z"},{"purpose":"marketing.advertising.third_party.targeted","state":"granted","source":"settings","at":"2027-01-01T00:00:00Z"}]}"#,
        // 7: an invalid region: the whole line.
        r#"{"account_id":"u-hana","region":"Atlantis","contacts":[]}"#,
        // 8: good.
        BRUNO,
    ]
    .join("\n");
    let summary = app.import(&body).await;
    assert_eq!(summary["lines"], 8, "{summary:#}");
    // Lines 1, 3, 4, 5, 6 and 8 are accounts; 2 and 7 are refused whole.
    assert_eq!(summary["accounts"], 6, "{summary:#}");
    assert_eq!(
        summary["rejected"],
        json!({
            "malformed_json": 1,
            "unknown_context": 1,
            "unknown_kind": 1,
            "email_missing_at": 1,
            "phone_too_short": 1,
            "duplicate_contact": 1,
            "unknown_purpose": 1,
            "time_in_future": 1,
            "invalid_region": 1,
        }),
        "{summary:#}"
    );
    let field = |f: &str| Some(f.to_owned());
    assert_eq!(
        errors(&summary),
        vec![
            (2, None, "malformed_json".to_owned()),
            (
                3,
                field("contacts[0].context"),
                "unknown_context".to_owned()
            ),
            (3, field("contacts[1].kind"), "unknown_kind".to_owned()),
            (4, field("contacts[0].value"), "email_missing_at".to_owned()),
            (4, field("contacts[1].value"), "phone_too_short".to_owned()),
            (5, field("contacts[1]"), "duplicate_contact".to_owned()),
            (
                6,
                field("consents[0].purpose"),
                "unknown_purpose".to_owned()
            ),
            (6, field("consents[1].at"), "time_in_future".to_owned()),
            (7, None, "invalid_region".to_owned()),
        ]
    );
    // Nothing in a response repeats a submitted value.
    let text = summary.to_string();
    for value in [
        "dora",
        "emil",
        "fay.sample",
        "555 0103",
        "Atlantis",
        "marketing.spam",
    ] {
        assert!(!text.contains(value), "{value} in {text}");
    }
    // The good lines and the good parts of partly bad lines are kept.
    assert!(app.indexed("alice.example@example.com"));
    assert!(app.indexed("bruno.sample@example.org"));
    assert!(app.indexed("dora.other@example.com"));
    assert!(app.indexed("fay.sample@example.org"));
    let dora = app.view("u-dora").await;
    assert_eq!(dora["contact_points"].as_array().unwrap().len(), 1);
    let gus = app.view("u-gus").await;
    assert_eq!(
        gus["consent"]["marketing.advertising.third_party.targeted"]["state"],
        "none"
    );
    for missing in ["u-broken", "u-hana"] {
        let reply = app
            .admin(
                Method::GET,
                &format!("/v1/admin/accounts/{missing}"),
                Body::empty(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert_eq!(reply.error_code(), "account_not_found");
        assert!(!reply.text().contains(missing));
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_cut_with_413_and_earlier_lines_kept() {
    let first_two = format!("{ALICE}\n{BRUNO}\n");
    let limits = Limits {
        max_body_bytes: first_two.len() as u64,
        ..Limits::default()
    };
    let app = App::with_limits("import-limit", limits).await;
    let body = format!("{first_two}{CHLOE}\n{CHLOE}\n");
    let reply = app.admin(Method::POST, "/v1/admin/accounts", body).await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        reply.text()
    );
    let summary = reply.json();
    assert_eq!(summary["truncated"], true, "{summary:#}");
    assert_eq!(summary["accounts"], 2);
    assert_eq!(summary["rejected"], json!({"body_too_large": 1}));
    assert_eq!(
        errors(&summary),
        vec![(3, None, "body_too_large".to_owned())]
    );
    assert_eq!(summary["error"]["code"], "body_too_large");
    app.view("u-alice").await;
    app.view("u-bruno").await;
    let chloe = app
        .admin(Method::GET, "/v1/admin/accounts/u-chloe", Body::empty())
        .await;
    assert_eq!(chloe.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_body_of_many_lines_streams_through() {
    // More lines than one store batch, to cross batch boundaries within one body.
    let app = App::with_limits(
        "import-many",
        Limits {
            batch: 7,
            ..Limits::default()
        },
    )
    .await;
    let body: String = (0..50)
        .map(|i| {
            format!(
                r#"{{"account_id":"u-bulk-{i}","region":"US","contacts":[{{"kind":"email","value":"bulk{i}@example.com","context":"profile","verified":true}}]}}"#
            ) + "\n"
        })
        .collect();
    let summary = app.import(&body).await;
    assert_eq!(summary["accounts"], 50, "{summary:#}");
    assert_eq!(app.engine.index_len(), 50);
}

#[tokio::test]
async fn put_writes_one_account_and_refuses_a_line_for_another_id() {
    let app = App::new("put").await;
    let reply = app
        .admin(Method::PUT, "/v1/admin/accounts/u-alice", ALICE)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let summary = reply.json();
    assert_eq!(summary["accounts"], 1);
    assert_eq!(summary["contact_points"], 2);
    assert!(app.indexed("alice.example@example.com"));

    // The line names another account: refused whole.
    let reply = app
        .admin(Method::PUT, "/v1/admin/accounts/u-someone-else", ALICE)
        .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text()
    );
    let summary = reply.json();
    assert_eq!(summary["error"]["code"], "account_refused");
    assert_eq!(summary["accounts"], 0);
    assert_eq!(
        errors(&summary),
        vec![(1, None, "invalid_account_id".to_owned())]
    );

    // Malformed JSON: refused whole.
    let reply = app
        .admin(Method::PUT, "/v1/admin/accounts/u-alice", "{")
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.json()["rejected"], json!({"malformed_json": 1}));

    // Replacing the contact points with none takes the email out of the index.
    let reply = app
        .admin(
            Method::PUT,
            "/v1/admin/accounts/u-alice",
            r#"{"account_id":"u-alice","region":"US-CA","contacts":[]}"#,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(!app.indexed("alice.example@example.com"));
    let view = app.view("u-alice").await;
    assert_eq!(view["contact_points"], json!([]));
}

#[tokio::test]
async fn a_put_body_over_the_line_limit_is_413() {
    let app = App::with_limits(
        "put-limit",
        Limits {
            max_line_bytes: 64,
            ..Limits::default()
        },
    )
    .await;
    let reply = app
        .admin(Method::PUT, "/v1/admin/accounts/u-alice", ALICE)
        .await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        reply.text()
    );
    assert_eq!(reply.error_code(), "body_too_large");
}
