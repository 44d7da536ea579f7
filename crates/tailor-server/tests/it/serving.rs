//! The serving lookup's edges: the batch form's limits and refusals, and its requests counted
//! by route template (never by account id) in the metrics.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::{App, SERVING, population};

async fn batch(app: &App, body: String) -> crate::support::Reply {
    app.call(
        Method::POST,
        "/v1/serving/audiences:batch",
        Some(SERVING),
        body,
    )
    .await
}

#[tokio::test]
async fn batch_limits_and_refusals() {
    let app = App::new("serving-batch").await;
    app.import(&population()).await;

    let ids: Vec<String> = (0..1000).map(|i| format!("u-{i}")).collect();
    let reply = batch(&app, json!({"account_ids": ids}).to_string()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["results"].as_array().unwrap().len(), 1000);

    let reply = batch(&app, json!({"account_ids": []}).to_string()).await;
    assert_eq!(reply.json(), json!({"results": []}));

    let too_many: Vec<String> = (0..1001).map(|i| format!("u-{i}")).collect();
    for body in [
        json!({"account_ids": too_many}),
        json!({}),
        json!({"account_ids": "u-alice"}),
        json!({"account_ids": ["u-alice", 7]}),
    ] {
        let reply = batch(&app, body.to_string()).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(reply.json()["field"], "account_ids", "{body}");
    }
    let reply = batch(&app, json!({"account_ids": [], "u-alice": 1}).to_string()).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!reply.text().contains("u-alice"), "{}", reply.text());
    let reply = batch(&app, "u-alice".to_owned()).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(!reply.text().contains("u-alice"), "{}", reply.text());
}

#[tokio::test]
async fn lookups_are_counted_by_template() {
    let app = App::new("serving-metrics").await;
    app.import(&population()).await;
    for _ in 0..3 {
        assert!(app.serving("u-alice").await.is_empty());
    }
    let metrics = app
        .call(Method::GET, "/metrics", None, Body::empty())
        .await
        .text();
    let line = metrics
        .lines()
        .find(|line| {
            line.starts_with("tailor_http_requests_total{")
                && line.contains(r#"route="/v1/serving/accounts/{account_id}/audiences""#)
                && line.contains(r#"status="200""#)
        })
        .unwrap_or_else(|| panic!("no serving counter in:\n{metrics}"));
    assert!(line.ends_with(" 3"), "{line}");
    assert!(!metrics.contains("u-alice"));
}
