//! The admin API for advertisers: create one (with its first API key), add keys, list them,
//! revoke one. Rotation is add, switch the client over, then revoke the old key.
//!
//! An API key is in a response exactly once, when it is made (with `Cache-Control: no-store`);
//! the store keeps only its SHA-256. Key ids and dates may be listed and logged; keys never.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tailor_engine::{AdvertiserCreated, KeyCreated};
use tailor_store::ApiKeyRecord;

use crate::error::{ApiError, ErrorBody};
use crate::request;
use crate::state::AppState;

/// `POST /v1/admin/advertisers`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewAdvertiser {
    /// The advertiser's display name (1 to 200 characters).
    #[serde(default)]
    #[schema(example = "Acme")]
    name: String,
    /// The legal entity privacy budgets are counted against; the name when absent.
    #[schema(example = "Acme Corp")]
    entity: Option<String>,
}

/// One API key, without the key.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct KeyView {
    key_id: String,
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    /// When it was revoked; absent while it is live.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    revoked_at: Option<Timestamp>,
}

impl From<ApiKeyRecord> for KeyView {
    fn from(record: ApiKeyRecord) -> Self {
        Self {
            key_id: record.key_id,
            created_at: record.created_at,
            revoked_at: record.revoked_at,
        }
    }
}

/// An advertiser's keys, oldest first (ties by key id).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct KeyList {
    keys: Vec<KeyView>,
}

fn unknown_advertiser() -> ApiError {
    ApiError::not_found("advertiser_not_found", "no advertiser has this id")
}

/// A response carrying a secret shown once: no cache may keep it.
fn secret_response(body: impl Serialize) -> Response {
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Create an advertiser and its first API key.
///
/// The key (`api_key`) is shown in this response only; keep it. Only its SHA-256 is stored.
#[utoipa::path(
    post,
    path = "/v1/admin/advertisers",
    tag = "admin",
    request_body = NewAdvertiser,
    responses(
        (status = 201, description = "The advertiser, its first key id and the key", body = AdvertiserCreated),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 422, description = "A field is missing or out of range (`field` names it)", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let engine = state.ready_engine()?;
    let new: NewAdvertiser = request::json(&state, body, &["name", "entity"])?;
    let created = engine
        .create_advertiser(&new.name, new.entity.as_deref())
        .await
        .map_err(|e| state.engine_failure(&e))?
        .map_err(crate::audiences::refused)?;
    tracing::info!(
        advertiser_id = %created.advertiser_id,
        key_id = %created.key_id,
        "advertiser created"
    );
    Ok(secret_response(created))
}

/// Add an API key to an advertiser (rotation: add, switch, then revoke the old one).
#[utoipa::path(
    post,
    path = "/v1/admin/advertisers/{advertiser_id}/keys",
    tag = "admin",
    params(("advertiser_id" = String, Path, description = "The advertiser's id")),
    responses(
        (status = 201, description = "The new key id and the key, shown only here", body = KeyCreated),
        (status = 404, description = "No advertiser has this id", body = ErrorBody),
    )
)]
pub(crate) async fn add_key(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let engine = state.ready_engine()?;
    let advertiser_id = request::path_id(path)?;
    let created = engine
        .add_key(&advertiser_id)
        .await
        .map_err(|e| state.engine_failure(&e))?
        .ok_or_else(unknown_advertiser)?;
    tracing::info!(key_id = %created.key_id, "advertiser key added");
    Ok(secret_response(created))
}

/// List an advertiser's API keys (ids and dates; never the keys).
#[utoipa::path(
    get,
    path = "/v1/admin/advertisers/{advertiser_id}/keys",
    tag = "admin",
    params(("advertiser_id" = String, Path, description = "The advertiser's id")),
    responses(
        (status = 200, description = "Every key of the advertiser, live and revoked", body = KeyList),
        (status = 404, description = "No advertiser has this id", body = ErrorBody),
    )
)]
pub(crate) async fn keys(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<KeyList>, ApiError> {
    let engine = state.ready_engine()?;
    let advertiser_id = request::path_id(path)?;
    let mut keys = engine
        .keys(&advertiser_id)
        .await
        .map_err(|e| state.engine_failure(&e))?
        .ok_or_else(unknown_advertiser)?;
    keys.sort_by(|a, b| (a.created_at, &a.key_id).cmp(&(b.created_at, &b.key_id)));
    Ok(Json(KeyList {
        keys: keys.into_iter().map(KeyView::from).collect(),
    }))
}

/// Revoke an API key: from this answer on, it authenticates nothing (401).
#[utoipa::path(
    delete,
    path = "/v1/admin/advertisers/{advertiser_id}/keys/{key_id}",
    tag = "admin",
    params(
        ("advertiser_id" = String, Path, description = "The advertiser's id"),
        ("key_id" = String, Path, description = "The key's id"),
    ),
    responses(
        (status = 200, description = "The key, with its `revoked_at`", body = KeyView),
        (status = 404, description = "The advertiser has no key with this id", body = ErrorBody),
    )
)]
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<KeyView>, ApiError> {
    let engine = state.ready_engine()?;
    let (advertiser_id, key_id) = request::path_ids(path)?;
    let revoked = engine
        .revoke_key(&advertiser_id, &key_id)
        .await
        .map_err(|e| state.engine_failure(&e))?
        .ok_or_else(|| {
            ApiError::not_found("key_not_found", "this advertiser has no key with this id")
        })?;
    tracing::info!(key_id = %revoked.key_id, "advertiser key revoked");
    Ok(Json(KeyView::from(revoked)))
}
