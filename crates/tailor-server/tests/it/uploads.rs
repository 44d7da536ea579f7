//! List uploads through the router: the body rules (content types, operation and region,
//! lists that cannot be read), a body streamed past any buffering limit, and upload sessions
//! (parts replaced idempotently, nothing applied before commit, commit once).

use axum::body::{Body, Bytes};
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{App, Backend, Reply, on_both_backends, population, sha256_hex};

async fn upload_reply(
    app: &App,
    key: &str,
    uri: &str,
    content_type: Option<&str>,
    body: &str,
) -> Reply {
    match content_type {
        Some(content_type) => {
            app.typed(Method::POST, uri, Some(key), content_type, body.to_owned())
                .await
        }
        None => {
            app.call(Method::POST, uri, Some(key), body.to_owned())
                .await
        }
    }
}

async fn upload_refusals_name_the_problem_and_apply_nothing(backend: Backend) {
    let app = App::with_min_size_on(&backend, "upload-refusals", 1).await;
    app.import(&population()).await;
    let acme = app.advertiser("Acme").await;
    let audience_id = app.audience(&acme.key, "Buyers").await;
    let uri = |query: &str| format!("/v1/audiences/{audience_id}/uploads{query}");
    let list = "email\nalice.example@example.com\n";

    for content_type in [None, Some("application/json"), Some("text/plain")] {
        let reply = upload_reply(&app, &acme.key, &uri("?op=add"), content_type, list).await;
        assert_eq!(
            reply.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}"
        );
        assert_eq!(reply.error_code(), "unsupported_media_type");
    }
    // Parameters and case of the media type do not matter.
    for content_type in ["text/csv; charset=utf-8", "TEXT/CSV"] {
        let reply = upload_reply(&app, &acme.key, &uri("?op=add"), Some(content_type), list).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{content_type}");
    }
    for (query, field) in [
        ("", "op"),
        ("?op=merge", "op"),
        ("?op=add&region=ZZZ", "region"),
    ] {
        let reply = upload_reply(&app, &acme.key, &uri(query), Some("text/csv"), list).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert_eq!(reply.json()["field"], field, "{query}");
    }
    // Lists that cannot be read as a whole: 400 with a reason code, and no value echoed.
    for (body, content_type, reason) in [
        (
            "name,city\njane.doe@example.com,Paris\n",
            "text/csv",
            "no_identifier_column",
        ),
        ("", "text/csv", "empty_list"),
        (
            "jane.doe@example.com\n",
            "text/csv",
            "header_looks_like_data",
        ),
    ] {
        let reply = upload_reply(&app, &acme.key, &uri("?op=add"), Some(content_type), body).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body:?}: {}",
            reply.text()
        );
        let json = reply.json();
        assert_eq!(json["error"]["code"], "bad_list");
        assert_eq!(json["reason"], reason, "{body:?}");
        assert!(!reply.text().contains("jane"), "{}", reply.text());
    }
    app.settle().await;
    // Only the two accepted uploads ran, each adding Alice.
    assert_eq!(app.members(&acme.key, &audience_id).await, ["u-alice"]);
}

#[tokio::test]
async fn phones_without_a_country_code_are_read_in_the_upload_region() {
    let app = App::with_min_size("upload-region", 1).await;
    app.import(&population()).await;
    let acme = app.advertiser("Acme").await;
    let us = app.audience(&acme.key, "US by default").await;
    let fr = app.audience(&acme.key, "Read as French").await;
    let list = "phone\n(415) 555-0104\n";
    app.upload(&acme.key, &us, "add", "text/csv", list).await;
    let uri = format!("/v1/audiences/{fr}/uploads?op=add&region=FR");
    let reply = app
        .typed(Method::POST, &uri, Some(&acme.key), "text/csv", list)
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    app.settle().await;
    assert_eq!(app.members(&acme.key, &us).await, ["u-dora"]);
    assert!(app.members(&acme.key, &fr).await.is_empty());
}

/// A body of several megabytes, sent in small chunks, is read as a stream: no buffering limit
/// refuses it and every row is counted.
#[tokio::test]
async fn a_large_body_is_streamed() {
    let app = App::with_min_size("upload-stream", 1).await;
    app.import(&population()).await;
    let acme = app.advertiser("Acme").await;
    let audience_id = app.audience(&acme.key, "Big list").await;
    const ROWS: usize = 100_000;
    let chunks = std::iter::once(Bytes::from_static(b"email_sha256\n"))
        .chain((0..ROWS).map(|i| {
            let value = if i == ROWS / 2 {
                "bruno.sample@example.org".to_owned()
            } else {
                format!("customer{i}@example.net")
            };
            Bytes::from(format!("{}\n", sha256_hex(&value)))
        }))
        .map(Ok::<_, std::io::Error>);
    let body = Body::from_stream(futures_util::stream::iter(chunks));
    let uri = format!("/v1/audiences/{audience_id}/uploads?op=add");
    let reply = app
        .typed(Method::POST, &uri, Some(&acme.key), "text/csv", body)
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    app.settle().await;
    let job = app
        .job(&acme.key, reply.json()["job_id"].as_str().unwrap())
        .await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(job["rows_received"], ROWS);
    assert_eq!(job["rows_accepted"], ROWS);
    assert_eq!(job["rejected"], json!({}));
    assert_eq!(app.members(&acme.key, &audience_id).await, ["u-bruno"]);
}

fn part_uri(session_id: &str, part: &str) -> String {
    format!("/v1/upload-sessions/{session_id}/parts/{part}")
}

async fn sessions_stage_parts_until_commit(backend: Backend) {
    let app = App::with_min_size_on(&backend, "sessions", 1).await;
    app.import(&population()).await;
    let acme = app.advertiser("Acme").await;
    let audience_id = app.audience(&acme.key, "In parts").await;

    let uri = format!("/v1/audiences/{audience_id}/upload-sessions?op=add");
    let reply = app
        .call(Method::POST, &uri, Some(&acme.key), Body::empty())
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    let session = reply.json();
    let sid = session["session_id"].as_str().unwrap().to_owned();
    assert_eq!(
        reply.headers["location"].to_str().unwrap(),
        format!("/v1/upload-sessions/{sid}")
    );
    assert_eq!(session["op"], "add");
    assert_eq!(session["audience_id"], audience_id.as_str());
    assert_eq!(session["parts"], json!([]));
    assert!(session.get("job_id").is_none());

    let put = |part: &'static str, content_type: &'static str, body: String| {
        let uri = part_uri(&sid, part);
        let key = acme.key.clone();
        let app = &app;
        async move {
            app.typed(Method::PUT, &uri, Some(&key), content_type, body)
                .await
        }
    };
    // Part 1: Alice, with a refused row.
    let reply = put(
        "1",
        "text/csv",
        "email\nalice.example@example.com\nno-at-sign.example.com\n".to_owned(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!({"part": 1, "rows_received": 2, "rows_accepted": 1, "rejected": {"email_missing_at": 1}})
    );
    // Part 2: Bruno, hashed, as NDJSON.
    let bruno = json!({"email_sha256": sha256_hex("bruno.sample@example.org")}).to_string();
    let reply = put("2", "application/x-ndjson", format!("{bruno}\n")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    // Part 1 again, now Dora: it replaces the first part 1 (twice, to the same effect).
    for _ in 0..2 {
        let reply = put("1", "text/csv", "phone\n+1 415 555 0104\n".to_owned()).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(
            reply.json(),
            json!({"part": 1, "rows_received": 1, "rows_accepted": 1, "rejected": {}})
        );
    }
    let reply = app
        .call(
            Method::GET,
            &format!("/v1/upload-sessions/{sid}"),
            Some(&acme.key),
            Body::empty(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let parts: Vec<Value> = reply.json()["parts"].as_array().unwrap().clone();
    assert_eq!(
        parts.iter().map(|p| p["part"].clone()).collect::<Vec<_>>(),
        [json!(1), json!(2)]
    );

    // Nothing is applied before the commit.
    app.settle().await;
    assert!(app.members(&acme.key, &audience_id).await.is_empty());
    assert!(app.serving("u-dora").await.is_empty());
    assert_eq!(
        app.audience_view(&acme.key, &audience_id).await["status"],
        "empty"
    );

    let commit = format!("/v1/upload-sessions/{sid}/commit");
    let reply = app
        .call(Method::POST, &commit, Some(&acme.key), Body::empty())
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    let job = reply.json();
    assert_eq!(job["rows_received"], 2);
    assert_eq!(job["rows_accepted"], 2);
    let job_id = job["job_id"].as_str().unwrap().to_owned();
    assert_eq!(
        reply.headers["location"].to_str().unwrap(),
        format!("/v1/jobs/{job_id}")
    );
    app.settle().await;
    assert_eq!(app.job(&acme.key, &job_id).await["state"], "succeeded");
    // Dora (the replacing part 1) and Bruno; never Alice, whose part was replaced.
    assert_eq!(
        app.members(&acme.key, &audience_id).await,
        ["u-bruno", "u-dora"]
    );
    let session = app
        .call(
            Method::GET,
            &format!("/v1/upload-sessions/{sid}"),
            Some(&acme.key),
            Body::empty(),
        )
        .await
        .json();
    assert_eq!(session["job_id"], job_id.as_str());

    // Once committed: no second commit, no more parts.
    let reply = app
        .call(Method::POST, &commit, Some(&acme.key), Body::empty())
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text());
    assert_eq!(reply.error_code(), "conflict");
    let reply = put("3", "text/csv", "email\nx@example.com\n".to_owned()).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text());
}

#[tokio::test]
async fn session_refusals() {
    let app = App::new("session-refusals").await;
    let acme = app.advertiser("Acme").await;
    let audience_id = app.audience(&acme.key, "In parts").await;
    let uri = format!("/v1/audiences/{audience_id}/upload-sessions");
    for query in ["", "?op=upsert"] {
        let reply = app
            .call(
                Method::POST,
                &format!("{uri}{query}"),
                Some(&acme.key),
                Body::empty(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert_eq!(reply.json()["field"], "op");
    }
    let reply = app
        .call(
            Method::POST,
            &format!("{uri}?op=replace"),
            Some(&acme.key),
            Body::empty(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let sid = reply.json()["session_id"].as_str().unwrap().to_owned();

    // A commit without parts is a conflict, and leaves the session open.
    let commit = format!("/v1/upload-sessions/{sid}/commit");
    let reply = app
        .call(Method::POST, &commit, Some(&acme.key), Body::empty())
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text());

    for part in ["0", "10001", "x", "-1"] {
        let reply = app
            .typed(
                Method::PUT,
                &part_uri(&sid, part),
                Some(&acme.key),
                "text/csv",
                "email\nx@example.com\n",
            )
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{part}");
        assert_eq!(reply.json()["field"], "part", "{part}");
    }
    let reply = app
        .typed(
            Method::PUT,
            &part_uri(&sid, "1"),
            Some(&acme.key),
            "application/json",
            "[]",
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let reply = app
        .typed(
            Method::PUT,
            &part_uri(&sid, "1"),
            Some(&acme.key),
            "text/csv",
            "name\nx\n",
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["reason"], "no_identifier_column");
    let session = app
        .call(
            Method::GET,
            &format!("/v1/upload-sessions/{sid}"),
            Some(&acme.key),
            Body::empty(),
        )
        .await
        .json();
    assert_eq!(session["parts"], json!([]), "{session:#}");
}

on_both_backends!(
    upload_refusals_name_the_problem_and_apply_nothing,
    sessions_stage_parts_until_commit,
);
