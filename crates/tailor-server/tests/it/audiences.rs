//! The advertiser flow through the router: an advertiser, an audience, a raw CSV upload and a
//! hashed NDJSON upload, the jobs' exact counters, the audience's status and released size, the
//! serving lookup (only targetable audiences, consent re-checked), replace, remove and delete.
//!
//! Membership is asserted through the store (the exact set of account ids), never through the
//! released size. Jobs are awaited with the engine's `jobs_settled`, never by sleeping.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{
    ADMIN, App, Backend, MARKETING, SERVING, on_both_backends, population, sha256_hex,
};

/// Alice by her profile email in other case; her MFA phone alone; Chloe (no consent); a
/// non-user; a cell that is not an email (no `@`); Dora's unverified signup email.
const RAW_CSV: &str = "email,phone\n\
    ALICE.EXAMPLE@example.com,\n\
    ,+1 415 555 0101\n\
    chloe.sample@example.com,\n\
    nobody@example.net,+1 212 555 0199\n\
    no-at-sign.example.com,\n\
    dora.sample@example.com,\n";

/// Bruno by his hashed email; Dora by her phone hashed without `+` (Meta's convention); Emil
/// by his Gmail address in Google's canonical form, upper-case hex; Emil's address-book phone;
/// a plain email in a hashed field; a line that is not JSON.
fn hashed_ndjson() -> String {
    [
        json!({"email_sha256": sha256_hex("bruno.sample@example.org")}).to_string(),
        json!({"phone_sha256": sha256_hex("14155550104")}).to_string(),
        json!({"email_sha256": sha256_hex("emilsample@gmail.com").to_uppercase()}).to_string(),
        json!({"phone_sha256": sha256_hex("+4930901820")}).to_string(),
        json!({"email_sha256": "jane.doe@example.com"}).to_string(),
        "not json".to_owned(),
    ]
    .join("\n")
        + "\n"
}

fn rejected(job: &Value) -> Value {
    job["rejected"].clone()
}

async fn uploads_build_an_audience_that_serving_answers_only_when_targetable(backend: Backend) {
    let app = App::with_min_size_on(&backend, "flow", 2).await;
    app.import(&population()).await;
    let acme = app.advertiser("Acme").await;
    let audience_id = app.audience(&acme.key, "Newsletter").await;

    let fresh = app.audience_view(&acme.key, &audience_id).await;
    assert_eq!(fresh["status"], "empty", "{fresh:#}");
    assert_eq!(fresh["size"], json!({"below_threshold": true}));
    assert_eq!(fresh["targetable"], false);
    assert_eq!(fresh["membership_ttl_days"], 540);

    // Raw CSV: only Alice matches (through her profile email).
    let queued = app
        .upload(&acme.key, &audience_id, "add", "text/csv", RAW_CSV)
        .await;
    assert_eq!(queued["op"], "add");
    assert_eq!(queued["audience_id"], audience_id.as_str());
    let job_id = queued["job_id"].as_str().unwrap().to_owned();
    app.settle().await;
    let job = app.job(&acme.key, &job_id).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(job["progress"], 1.0);
    assert_eq!(job["rows_received"], 6);
    assert_eq!(job["rows_accepted"], 5);
    assert_eq!(rejected(&job), json!({"email_missing_at": 1}));
    // Nothing about how many rows matched.
    let text = job.to_string();
    assert!(!text.contains("match"), "{job:#}");
    assert_eq!(app.members(&acme.key, &audience_id).await, ["u-alice"]);

    // One member is under the minimum of two: too small, not targetable, not served.
    let small = app.audience_view(&acme.key, &audience_id).await;
    assert_eq!(small["status"], "too_small", "{small:#}");
    assert_eq!(small["size"], json!({"below_threshold": true}));
    assert_eq!(small["targetable"], false);
    assert!(app.serving("u-alice").await.is_empty());

    // Hashed NDJSON: Bruno, Dora (phone without `+`) and Emil (Gmail canonical) match; Emil's
    // address-book phone never does.
    let queued = app
        .upload(
            &acme.key,
            &audience_id,
            "add",
            "application/x-ndjson",
            hashed_ndjson(),
        )
        .await;
    app.settle().await;
    let job = app.job(&acme.key, queued["job_id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(job["rows_received"], 6);
    assert_eq!(job["rows_accepted"], 4);
    assert_eq!(
        rejected(&job),
        json!({"digest_looks_like_email": 1, "malformed_json": 1})
    );
    assert_eq!(
        app.members(&acme.key, &audience_id).await,
        ["u-alice", "u-bruno", "u-dora", "u-emil"]
    );
    let ready = app.audience_view(&acme.key, &audience_id).await;
    assert_eq!(ready["status"], "ready", "{ready:#}");
    assert_eq!(ready["size"], json!({"approximate": 4}));
    assert_eq!(ready["targetable"], true);

    for member in ["u-alice", "u-bruno", "u-dora", "u-emil"] {
        assert_eq!(
            app.serving(member).await,
            [audience_id.as_str()],
            "{member}"
        );
    }
    assert!(app.serving("u-chloe").await.is_empty());
    assert!(app.serving("u-nobody").await.is_empty());

    // The batch form answers in the order asked.
    let reply = app
        .call(
            Method::POST,
            "/v1/serving/audiences:batch",
            Some(SERVING),
            json!({"account_ids": ["u-chloe", "u-bruno", "u-nobody", "u-bruno"]}).to_string(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!({"results": [
            {"account_id": "u-chloe", "audiences": []},
            {"account_id": "u-bruno", "audiences": [audience_id]},
            {"account_id": "u-nobody", "audiences": []},
            {"account_id": "u-bruno", "audiences": [audience_id]},
        ]})
    );

    // Bruno withdraws: gone from the serving answer by the time the withdrawal returns.
    let withdrawal = json!({"purpose": MARKETING, "state": "withdrawn", "source": "settings", "at": "2026-02-01T00:00:00Z"});
    let reply = app
        .call(
            Method::POST,
            "/v1/admin/accounts/u-bruno/consents",
            Some(ADMIN),
            withdrawal.to_string(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(app.serving("u-bruno").await.is_empty());
    assert_eq!(
        app.members(&acme.key, &audience_id).await,
        ["u-alice", "u-dora", "u-emil"]
    );
    // The advertiser sees nothing of it: its question's answer stands until the refresh time
    // (docs/privacy.md), so a person's choice does not show in what the advertiser sees.
    let after = app.audience_view(&acme.key, &audience_id).await;
    assert_eq!(after["size"], json!({"approximate": 4}));
    // The others are still served.
    assert_eq!(app.serving("u-alice").await, [audience_id.as_str()]);
}

async fn replace_remove_and_delete(backend: Backend) {
    let app = App::with_min_size_on(&backend, "replace", 2).await;
    app.import(&population()).await;
    let acme = app.advertiser("Acme").await;
    let audience_id = app.audience(&acme.key, "Buyers").await;
    let add =
        "email,phone\nalice.example@example.com,\nbruno.sample@example.org,\n,(415) 555-0104\n";
    app.upload(&acme.key, &audience_id, "add", "text/csv", add)
        .await;
    app.settle().await;
    assert_eq!(
        app.members(&acme.key, &audience_id).await,
        ["u-alice", "u-bruno", "u-dora"]
    );

    // Remove Alice.
    let job = app
        .upload(
            &acme.key,
            &audience_id,
            "remove",
            "text/csv",
            "email\nalice.example@example.com\n",
        )
        .await;
    assert_eq!(job["op"], "remove");
    app.settle().await;
    assert_eq!(
        app.members(&acme.key, &audience_id).await,
        ["u-bruno", "u-dora"]
    );
    assert!(app.serving("u-alice").await.is_empty());
    assert_eq!(app.serving("u-dora").await, [audience_id.as_str()]);

    // Replace with Emil and Alice: exactly them afterwards.
    let replacement = format!(
        "{}\n{}\n",
        json!({"email": "emil.sample+news@gmail.com"}),
        json!({"email_sha256": sha256_hex("alice.example@example.com")})
    );
    app.upload(
        &acme.key,
        &audience_id,
        "replace",
        "application/x-ndjson",
        replacement,
    )
    .await;
    app.settle().await;
    assert_eq!(
        app.members(&acme.key, &audience_id).await,
        ["u-alice", "u-emil"]
    );
    assert!(app.serving("u-dora").await.is_empty());
    assert_eq!(app.serving("u-emil").await, [audience_id.as_str()]);

    // Delete: 204, then 404 everywhere, and serving forgets it at once.
    let uri = format!("/v1/audiences/{audience_id}");
    let reply = app
        .call(Method::DELETE, &uri, Some(&acme.key), Body::empty())
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
    assert!(reply.body.is_empty());
    assert!(app.serving("u-emil").await.is_empty());
    for method in [Method::GET, Method::DELETE] {
        let reply = app.call(method, &uri, Some(&acme.key), Body::empty()).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert_eq!(reply.error_code(), "audience_not_found");
    }
    let list = app
        .call(Method::GET, "/v1/audiences", Some(&acme.key), Body::empty())
        .await;
    assert_eq!(list.json(), json!({"audiences": []}));
}

#[tokio::test]
async fn audiences_are_created_and_listed_with_their_fields() {
    let app = App::new("audience-fields").await;
    let acme = app.advertiser("Acme").await;
    let body = json!({"name": "Lapsed buyers", "description": "No order in a year", "membership_ttl_days": 30});
    let reply = app
        .call(
            Method::POST,
            "/v1/audiences",
            Some(&acme.key),
            body.to_string(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let created = reply.json();
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        reply.headers["location"].to_str().unwrap(),
        format!("/v1/audiences/{id}")
    );
    assert_eq!(created["name"], "Lapsed buyers");
    assert_eq!(created["description"], "No order in a year");
    assert_eq!(created["membership_ttl_days"], 30);
    assert_eq!(created["status"], "empty");
    assert_eq!(created["created_at"], "2026-03-01T12:00:00Z");
    assert_eq!(created["updated_at"], "2026-03-01T12:00:00Z");
    let list = app
        .call(Method::GET, "/v1/audiences", Some(&acme.key), Body::empty())
        .await;
    assert_eq!(list.json(), json!({"audiences": [created]}));

    // Refusals name the field, never the value.
    let cases = [
        (json!({"name": ""}), "name"),
        (json!({"description": "no name"}), "name"),
        (json!({"name": "x".repeat(201)}), "name"),
        (json!({"name": 7}), "name"),
        (
            json!({"name": "ok", "membership_ttl_days": 0}),
            "membership_ttl_days",
        ),
        (
            json!({"name": "ok", "membership_ttl_days": 541}),
            "membership_ttl_days",
        ),
        (
            json!({"name": "ok", "membership_ttl_days": "jane@example.com"}),
            "membership_ttl_days",
        ),
        (
            json!({"name": "ok", "description": "d".repeat(2001)}),
            "description",
        ),
    ];
    for (body, field) in cases {
        let reply = app
            .call(
                Method::POST,
                "/v1/audiences",
                Some(&acme.key),
                body.to_string(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let json = reply.json();
        assert_eq!(json["error"]["code"], "invalid_field", "{body}");
        assert_eq!(json["field"], field, "{body}");
        assert!(!reply.text().contains("jane"), "{}", reply.text());
    }
    let reply = app
        .call(
            Method::POST,
            "/v1/audiences",
            Some(&acme.key),
            json!({"name": "ok", "jane@example.com": 1}).to_string(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.error_code(), "invalid_body");
    assert!(!reply.text().contains("jane"), "{}", reply.text());
    for body in [
        "{\"name\": jane@example.com",
        "{\"name\":\"a\"} trailing",
        "",
    ] {
        let reply = app
            .call(Method::POST, "/v1/audiences", Some(&acme.key), body)
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.error_code(), "invalid_json");
        assert!(!reply.text().contains("jane"), "{}", reply.text());
    }
    // Nothing of it was created.
    let list = app
        .call(Method::GET, "/v1/audiences", Some(&acme.key), Body::empty())
        .await;
    assert_eq!(list.json()["audiences"].as_array().unwrap().len(), 1);
}

on_both_backends!(
    uploads_build_an_audience_that_serving_answers_only_when_targetable,
    replace_remove_and_delete,
);
