//! Every admin endpoint: 401 with a bearer challenge for no token, a malformed header or an
//! unknown token; 403 for the serving and compliance tokens; nothing is applied either way.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use tower::ServiceExt as _;

use crate::support::{ALICE, App, COMPLIANCE, SERVING};

/// Every admin endpoint, with a body it would accept from an admin.
fn endpoints() -> Vec<(Method, &'static str, String)> {
    let consent = r#"{"purpose":"marketing","state":"withdrawn","source":"settings","at":"2026-01-01T00:00:00Z"}"#;
    vec![
        (Method::POST, "/v1/admin/accounts", format!("{ALICE}\n")),
        (Method::PUT, "/v1/admin/accounts/u-alice", ALICE.to_owned()),
        (Method::GET, "/v1/admin/accounts/u-alice", String::new()),
        (
            Method::POST,
            "/v1/admin/accounts/u-alice/consents",
            consent.to_owned(),
        ),
        (Method::DELETE, "/v1/admin/accounts/u-alice", String::new()),
        (
            Method::PUT,
            "/v1/admin/policy",
            tailor_core::policy::DEFAULT_POLICY.to_owned(),
        ),
    ]
}

async fn send(
    router: &Router,
    method: &Method,
    uri: &str,
    authorization: Option<&str>,
    body: &str,
) -> (StatusCode, Option<String>, String) {
    let mut request = Request::builder().method(method.clone()).uri(uri);
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, challenge, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn admin_endpoints_refuse_other_callers() {
    let app = App::new("auth").await;
    let router = tailor_server::router(app.state.clone());
    let serving = format!("Bearer {SERVING}");
    let compliance = format!("Bearer {COMPLIANCE}");
    let unauthenticated: [Option<&str>; 5] = [
        None,
        Some("Bearer not-a-token-anyone-was-given"),
        Some("Bearer "),
        Some("Basic YWRtaW46YWRtaW4="),
        Some(crate::support::ADMIN),
    ];
    for (method, uri, body) in endpoints() {
        for authorization in unauthenticated {
            let (status, challenge, text) = send(&router, &method, uri, authorization, &body).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {uri} with {authorization:?}: {text}"
            );
            assert!(
                challenge
                    .as_deref()
                    .is_some_and(|c| c.starts_with("Bearer")),
                "{method} {uri}: {challenge:?}"
            );
            let json: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(json["error"]["code"], "unauthorized");
        }
        for authorization in [&serving, &compliance] {
            let (status, challenge, text) =
                send(&router, &method, uri, Some(authorization), &body).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} {uri}: {text}");
            assert_eq!(challenge, None);
            let json: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(json["error"]["code"], "forbidden");
        }
    }
    // None of it was applied.
    assert_eq!(app.engine.index_len(), 0);
    let reply = app
        .admin(Method::GET, "/v1/admin/accounts/u-alice", Body::empty())
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    // And the admin token passes on every one of them.
    for (method, uri, body) in endpoints() {
        let reply = app.admin(method.clone(), uri, body).await;
        assert!(
            reply.status.is_success(),
            "{method} {uri}: {} {}",
            reply.status,
            reply.text()
        );
    }
}
