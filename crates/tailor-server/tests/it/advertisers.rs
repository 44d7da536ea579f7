//! The admin endpoints for advertisers and their keys: creation (the key shown once), rotation
//! (add a key, both work, revoke the old one: 401 from then on), listing without key material,
//! and refusals that name the field and never the value.

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use serde_json::json;

use crate::support::App;

async fn can_list(app: &App, key: &str) -> StatusCode {
    app.call(Method::GET, "/v1/audiences", Some(key), Body::empty())
        .await
        .status
}

#[tokio::test]
async fn create_rotate_and_revoke() {
    let app = App::new("advertisers").await;
    let reply = app
        .admin(
            Method::POST,
            "/v1/admin/advertisers",
            json!({"name": "Acme", "entity": "Acme Corp"}).to_string(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store");
    let created = reply.json();
    let fields: Vec<&str> = created
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        ["advertiser_id", "api_key", "entity", "key_id", "name"]
    );
    assert_eq!(created["name"], "Acme");
    assert_eq!(created["entity"], "Acme Corp");
    let advertiser_id = created["advertiser_id"].as_str().unwrap();
    let first_key = created["api_key"].as_str().unwrap();
    let first_id = created["key_id"].as_str().unwrap();
    assert!(first_key.len() >= 32, "a short key");
    assert_eq!(can_list(&app, first_key).await, StatusCode::OK);

    // The entity defaults to the name.
    let solo = app
        .admin(
            Method::POST,
            "/v1/admin/advertisers",
            json!({"name": "Solo"}).to_string(),
        )
        .await
        .json();
    assert_eq!(solo["entity"], "Solo");

    // Rotation: a second key; both work.
    let keys_uri = format!("/v1/admin/advertisers/{advertiser_id}/keys");
    let reply = app.admin(Method::POST, &keys_uri, Body::empty()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store");
    let second = reply.json();
    let second_key = second["api_key"].as_str().unwrap();
    let second_id = second["key_id"].as_str().unwrap();
    assert_ne!(second_key, first_key);
    assert_eq!(can_list(&app, first_key).await, StatusCode::OK);
    assert_eq!(can_list(&app, second_key).await, StatusCode::OK);

    // Listing shows ids and dates, never a key.
    let reply = app.admin(Method::GET, &keys_uri, Body::empty()).await;
    assert_eq!(reply.status, StatusCode::OK);
    let text = reply.text();
    assert!(!text.contains(first_key) && !text.contains(second_key));
    // Both made at the test clock's one instant: ordered by key id.
    let mut expected = [first_id, second_id];
    expected.sort_unstable();
    assert_eq!(
        reply.json(),
        json!({"keys": [
            {"key_id": expected[0], "created_at": "2026-03-01T12:00:00Z"},
            {"key_id": expected[1], "created_at": "2026-03-01T12:00:00Z"},
        ]})
    );

    // Revoke the first: it authenticates nothing any more; the second goes on.
    let reply = app
        .admin(
            Method::DELETE,
            &format!("{keys_uri}/{first_id}"),
            Body::empty(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!({"key_id": first_id, "created_at": "2026-03-01T12:00:00Z", "revoked_at": "2026-03-01T12:00:00Z"})
    );
    assert_eq!(can_list(&app, first_key).await, StatusCode::UNAUTHORIZED);
    assert_eq!(can_list(&app, second_key).await, StatusCode::OK);
    let listed = app
        .admin(Method::GET, &keys_uri, Body::empty())
        .await
        .json();
    for key in listed["keys"].as_array().unwrap() {
        if key["key_id"] == first_id {
            assert_eq!(key["revoked_at"], "2026-03-01T12:00:00Z");
        } else {
            assert!(key.get("revoked_at").is_none(), "{key}");
        }
    }

    // Unknown advertisers and keys.
    for (method, uri) in [
        (
            Method::POST,
            "/v1/admin/advertisers/adv_nope/keys".to_owned(),
        ),
        (
            Method::GET,
            "/v1/admin/advertisers/adv_nope/keys".to_owned(),
        ),
    ] {
        let reply = app.admin(method, &uri, Body::empty()).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(reply.error_code(), "advertiser_not_found");
    }
    for uri in [
        format!("{keys_uri}/key_nope"),
        format!("/v1/admin/advertisers/adv_nope/keys/{second_id}"),
    ] {
        let reply = app.admin(Method::DELETE, &uri, Body::empty()).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(reply.error_code(), "key_not_found");
    }
    assert_eq!(can_list(&app, second_key).await, StatusCode::OK);
}

#[tokio::test]
async fn refusals_name_the_field_and_never_the_value() {
    let app = App::new("advertisers-refusals").await;
    for (body, field) in [
        (json!({}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"name": "   "}), "name"),
        (json!({"name": "n".repeat(201)}), "name"),
        (json!({"name": ["jane@example.com"]}), "name"),
        (json!({"name": "Acme", "entity": ""}), "entity"),
        (json!({"name": "Acme", "entity": "line\nbreak"}), "entity"),
        (
            json!({"name": "Acme", "entity": {"jane@example.com": 1}}),
            "entity",
        ),
    ] {
        let reply = app
            .admin(Method::POST, "/v1/admin/advertisers", body.to_string())
            .await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let json = reply.json();
        assert_eq!(json["error"]["code"], "invalid_field", "{body}");
        assert_eq!(json["field"], field, "{body}");
        assert!(!reply.text().contains("jane"), "{}", reply.text());
    }
    let reply = app
        .admin(
            Method::POST,
            "/v1/admin/advertisers",
            json!({"name": "Acme", "jane@example.com": true}).to_string(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.error_code(), "invalid_body");
    assert!(!reply.text().contains("jane"), "{}", reply.text());
    let reply = app
        .admin(Method::POST, "/v1/admin/advertisers", "jane@example.com")
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "invalid_json");
    assert!(!reply.text().contains("jane"), "{}", reply.text());
}
