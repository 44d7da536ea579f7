//! Liveness, readiness and metrics; metrics name route templates and reason codes, never an
//! account id or a contact value.

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use serde_json::json;
use tailor_core::{Policy, Sha256Digest};
use tailor_engine::Limits;
use tailor_server::{AppState, Tokens, router};

use crate::support::{ADMIN, App, COMPLIANCE, SERVING, call, good_accounts};

#[tokio::test]
async fn health_and_readiness() {
    let app = App::new("health").await;
    let reply = app.call(Method::GET, "/healthz", None, Body::empty()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({"status": "ok"}));

    app.import(&good_accounts()).await;
    let reply = app.call(Method::GET, "/readyz", None, Body::empty()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json(),
        json!({
            "ready": true,
            "index_entries": app.engine.index_len(),
            "policy_version": Policy::shipped().version().to_hex(),
        })
    );
    assert_eq!(app.engine.index_len(), 2);

    let reply = app.call(Method::GET, "/nowhere", None, Body::empty()).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.error_code(), "no_route");
    let reply = app
        .call(Method::PATCH, "/healthz", None, Body::empty())
        .await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.error_code(), "method_not_allowed");
}

#[tokio::test]
async fn before_the_index_is_built_only_health_answers() {
    let tokens = Tokens::from_plain(ADMIN, SERVING, COMPLIANCE).unwrap();
    let state = AppState::starting(tokens, Limits::default());
    let router = router(state);
    let reply = call(&router, Method::GET, "/healthz", None, Body::empty()).await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = call(&router, Method::GET, "/readyz", None, Body::empty()).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.json(), json!({"ready": false}));
    let reply = call(
        &router,
        Method::GET,
        "/v1/admin/accounts/u-alice",
        Some(ADMIN),
        Body::empty(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.error_code(), "not_ready");
    // Authentication still comes first.
    let reply = call(
        &router,
        Method::GET,
        "/v1/admin/accounts/u-alice",
        None,
        Body::empty(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

/// Every form of the fixtures' values and ids that must never reach the metrics.
fn personal() -> Vec<String> {
    let mut values: Vec<String> = [
        "u-alice",
        "u-bruno",
        "u-chloe",
        "Alice.Example@Example.com",
        "alice.example@example.com",
        "bruno.sample@example.org",
        "chloe.sample@example.com",
        "+1 415 555 0101",
        "+14155550101",
        "14155550101",
        "4155550101",
        "+44 20 7946 0102",
        "+442079460102",
        "442079460102",
    ]
    .map(str::to_owned)
    .to_vec();
    let hashes: Vec<String> = values
        .iter()
        .map(|v| Sha256Digest::of(v.as_bytes()).to_hex().as_str().to_owned())
        .collect();
    values.extend(hashes);
    values
}

#[tokio::test]
async fn metrics_count_by_route_template_and_reason_without_personal_data() {
    let app = App::new("metrics").await;
    app.import(&good_accounts()).await;
    app.import("{not json\n").await;
    app.view("u-alice").await;
    let reply = app
        .admin(Method::GET, "/v1/admin/accounts/u-nobody", Body::empty())
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    app.call(
        Method::GET,
        "/v1/admin/accounts/u-alice/elsewhere",
        None,
        Body::empty(),
    )
    .await;
    app.call(
        Method::GET,
        "/v1/admin/accounts/u-bruno",
        Some(SERVING),
        Body::empty(),
    )
    .await;

    let reply = app.call(Method::GET, "/metrics", None, Body::empty()).await;
    assert_eq!(reply.status, StatusCode::OK);
    let content_type = reply.headers[header::CONTENT_TYPE].to_str().unwrap();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = reply.text();
    for expected in [
        r#"tailor_http_requests_total{route="/v1/admin/accounts",method="POST",status="200"} 2"#,
        r#"tailor_http_requests_total{route="/v1/admin/accounts/{account_id}",method="GET",status="200"} 1"#,
        r#"tailor_http_requests_total{route="/v1/admin/accounts/{account_id}",method="GET",status="404"} 1"#,
        r#"tailor_http_requests_total{route="/v1/admin/accounts/{account_id}",method="GET",status="403"} 1"#,
        r#"tailor_http_requests_total{route="unmatched",method="GET",status="404"} 1"#,
        r#"tailor_import_lines_total{result="accepted"} 3"#,
        r#"tailor_import_lines_total{result="refused"} 1"#,
        r#"tailor_rejected_total{reason="malformed_json"} 1"#,
        "tailor_index_entries 2",
        "tailor_http_request_duration_seconds_bucket",
        "# EOF",
    ] {
        assert!(text.contains(expected), "no {expected:?} in:\n{text}");
    }
    let lower = text.to_lowercase();
    for value in personal() {
        assert!(
            !lower.contains(&value.to_lowercase()),
            "{value:?} in the metrics:\n{text}"
        );
    }
}
