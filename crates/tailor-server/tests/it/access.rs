//! Authorization of every endpoint, driven by the route table so that a new route is covered
//! without being listed here:
//!
//! - no token, an unknown token and a revoked advertiser key get 401 (with a bearer challenge)
//!   on every protected route;
//! - a valid credential of another kind gets 403: the serving and compliance tokens on admin
//!   and advertiser routes, the admin token on advertiser and serving routes, an advertiser key
//!   on admin and serving routes;
//! - advertiser A cannot read, list, upload to, delete or learn of B's audiences, sessions or
//!   jobs: every advertiser route with B's ids answers A exactly (status and body) as it does
//!   with ids that do not exist, and B's objects are untouched afterwards.

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use serde_json::json;
use tailor_server::{Access, ROUTES};

use crate::openapi::concrete;
use crate::support::{ADMIN, App, COMPLIANCE, SERVING, call_typed, population};

/// The ids one advertiser owns.
struct Owned {
    audience: String,
    session: String,
    job: String,
}

/// A request to a route with ids filled in, shaped so that it would pass every check but the
/// one under test (an operation, a list body and its content type for uploads).
fn request_for(
    template: &str,
    method: &str,
    ids: &Owned,
) -> (String, Option<&'static str>, String) {
    let mut uri = template
        .replace("{audience_id}", &ids.audience)
        .replace("{session_id}", &ids.session)
        .replace("{job_id}", &ids.job)
        .replace("{part}", "1");
    let mut content_type = None;
    let mut body = String::new();
    if template.ends_with("/uploads") || template.ends_with("/upload-sessions") {
        uri.push_str("?op=add");
    }
    if template.ends_with("/uploads") || template.contains("/parts/") {
        content_type = Some("text/csv");
        body = "email\nalice.example@example.com\n".to_owned();
    }
    if template == "/v1/audiences" && method == "POST" {
        body = json!({"name": "Probe"}).to_string();
    }
    (concrete(&uri), content_type, body)
}

async fn send(
    app: &App,
    method: &str,
    uri: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: String,
) -> crate::support::Reply {
    call_typed(
        app.router(),
        Method::from_bytes(method.as_bytes()).unwrap(),
        uri,
        token,
        content_type,
        body,
    )
    .await
}

#[tokio::test]
async fn every_protected_route_refuses_the_wrong_callers() {
    let app = App::with_min_size("access-matrix", 1).await;
    app.import(&population()).await;
    let acme = app.advertiser("Acme").await;
    // A second key, revoked: it authenticates nothing.
    let reply = app
        .admin(
            Method::POST,
            &format!("/v1/admin/advertisers/{}/keys", acme.id),
            Body::empty(),
        )
        .await;
    let revoked = reply.json()["api_key"].as_str().unwrap().to_owned();
    let revoked_id = reply.json()["key_id"].as_str().unwrap().to_owned();
    let reply = app
        .admin(
            Method::DELETE,
            &format!("/v1/admin/advertisers/{}/keys/{revoked_id}", acme.id),
            Body::empty(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());

    let unauthenticated: [(&str, Option<String>); 4] = [
        ("no token", None),
        (
            "an unknown token",
            Some("not-a-token-anyone-was-given".to_owned()),
        ),
        ("a revoked key", Some(revoked)),
        // A token's hash is not the token.
        ("a key's id", Some(acme.key_id.clone())),
    ];
    let callers: [(&str, &str, &[Access]); 4] = [
        ("admin", ADMIN, &[Access::Admin]),
        ("serving", SERVING, &[Access::Serving]),
        ("compliance", COMPLIANCE, &[Access::Compliance]),
        ("advertiser", &acme.key, &[Access::Advertiser]),
    ];
    let ids = Owned {
        audience: "aud_000000000000000000000000".to_owned(),
        session: "ses_000000000000000000000000".to_owned(),
        job: "job_000000000000000000000000".to_owned(),
    };
    let mut checked = 0;
    for route in ROUTES.iter().filter(|r| r.access != Access::Public) {
        for method in route.methods {
            let (uri, content_type, body) = request_for(route.path, method, &ids);
            for (what, token) in &unauthenticated {
                let reply = send(
                    &app,
                    method,
                    &uri,
                    token.as_deref(),
                    content_type,
                    body.clone(),
                )
                .await;
                assert_eq!(
                    reply.status,
                    StatusCode::UNAUTHORIZED,
                    "{method} {uri} with {what}: {}",
                    reply.text()
                );
                assert!(
                    reply.headers[header::WWW_AUTHENTICATE]
                        .to_str()
                        .unwrap()
                        .starts_with("Bearer"),
                    "{method} {uri}"
                );
                assert_eq!(reply.error_code(), "unauthorized");
            }
            for (role, token, allowed) in &callers {
                if allowed.contains(&route.access) {
                    continue;
                }
                let reply = send(&app, method, &uri, Some(token), content_type, body.clone()).await;
                assert_eq!(
                    reply.status,
                    StatusCode::FORBIDDEN,
                    "{method} {uri} with the {role} credential: {}",
                    reply.text()
                );
                assert_eq!(reply.error_code(), "forbidden");
                assert!(reply.headers.get(header::WWW_AUTHENTICATE).is_none());
                checked += 1;
            }
        }
    }
    assert!(checked > 40, "{checked}");
    // Nothing was applied: no audience, no account gone.
    let list = app
        .call(Method::GET, "/v1/audiences", Some(&acme.key), Body::empty())
        .await;
    assert_eq!(list.json(), json!({"audiences": []}));
    assert_eq!(app.view("u-alice").await["account_id"], "u-alice");
}

#[tokio::test]
async fn an_advertiser_cannot_reach_or_detect_another_advertisers_objects() {
    let app = App::with_min_size("access-isolation", 1).await;
    app.import(&population()).await;
    let a = app.advertiser("Acme").await;
    let b = app.advertiser("Bolt").await;

    // B's objects: an audience with a job, and an open session with one part.
    let b_audience = app.audience(&b.key, "Bolt buyers").await;
    let job = app
        .upload(
            &b.key,
            &b_audience,
            "add",
            "text/csv",
            "email\nbruno.sample@example.org\n",
        )
        .await;
    app.settle().await;
    let reply = app
        .call(
            Method::POST,
            &format!("/v1/audiences/{b_audience}/upload-sessions?op=replace"),
            Some(&b.key),
            Body::empty(),
        )
        .await;
    let b_session = reply.json()["session_id"].as_str().unwrap().to_owned();
    let reply = app
        .typed(
            Method::PUT,
            &format!("/v1/upload-sessions/{b_session}/parts/1"),
            Some(&b.key),
            "text/csv",
            "email\nalice.example@example.com\n",
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let b_ids = Owned {
        audience: b_audience.clone(),
        session: b_session.clone(),
        job: job["job_id"].as_str().unwrap().to_owned(),
    };
    let session_before = app
        .call(
            Method::GET,
            &format!("/v1/upload-sessions/{b_session}"),
            Some(&b.key),
            Body::empty(),
        )
        .await
        .json();
    let audience_before = app.audience_view(&b.key, &b_audience).await;
    // Unknown ids of the same shape.
    let unknown = Owned {
        audience: format!("aud_{}", "0".repeat(24)),
        session: format!("ses_{}", "0".repeat(24)),
        job: format!("job_{}", "0".repeat(24)),
    };

    let mut checked = 0;
    for route in ROUTES.iter().filter(|r| r.access == Access::Advertiser) {
        let has_id = route.path.contains('{');
        for method in route.methods {
            if !has_id {
                // `GET /v1/audiences` and `POST /v1/audiences` name no id: checked below.
                assert_eq!(
                    route.path, "/v1/audiences",
                    "an advertiser route without ids"
                );
                continue;
            }
            let (theirs, content_type, body) = request_for(route.path, method, &b_ids);
            let (nowhere, _, _) = request_for(route.path, method, &unknown);
            let to_theirs = send(
                &app,
                method,
                &theirs,
                Some(&a.key),
                content_type,
                body.clone(),
            )
            .await;
            let to_nowhere = send(&app, method, &nowhere, Some(&a.key), content_type, body).await;
            assert_eq!(
                to_theirs.status,
                StatusCode::NOT_FOUND,
                "{method} {theirs}: {}",
                to_theirs.text()
            );
            assert_eq!(
                to_theirs.status, to_nowhere.status,
                "{method} {}",
                route.path
            );
            assert_eq!(
                to_theirs.body, to_nowhere.body,
                "{method} {}: the answers differ",
                route.path
            );
            assert_eq!(
                to_theirs.headers.get(header::CONTENT_TYPE),
                to_nowhere.headers.get(header::CONTENT_TYPE)
            );
            checked += 1;
        }
    }
    assert!(checked >= 8, "{checked}");

    // A's list holds only its own.
    let a_audience = app.audience(&a.key, "Acme buyers").await;
    let list = app
        .call(Method::GET, "/v1/audiences", Some(&a.key), Body::empty())
        .await
        .json();
    let ids: Vec<&str> = list["audiences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [a_audience.as_str()]);

    // B's objects are as they were: nothing uploaded, committed, deleted or replaced.
    app.settle().await;
    assert_eq!(
        app.audience_view(&b.key, &b_audience).await,
        audience_before
    );
    assert_eq!(app.members(&b.key, &b_audience).await, ["u-bruno"]);
    let session_after = app
        .call(
            Method::GET,
            &format!("/v1/upload-sessions/{b_session}"),
            Some(&b.key),
            Body::empty(),
        )
        .await
        .json();
    assert_eq!(session_after, session_before);
    assert!(session_after.get("job_id").is_none());
}
