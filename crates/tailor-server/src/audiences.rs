//! The advertiser API for audiences and jobs: create, list, read and delete audiences, and
//! follow a job.
//!
//! Every call is scoped to the authenticated advertiser ([`AdvertiserCaller`]): another
//! advertiser's audience or job answers exactly as an id that does not exist (same status,
//! same body), so its existence cannot be learned. Sizes come only from the engine's release
//! function (`size`, `targetable`, `status`); jobs report counters of the advertiser's own file,
//! never how many rows matched.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tailor_engine::{AudienceView, JobView, Refused};

use crate::auth::AdvertiserCaller;
use crate::error::{ApiError, ErrorBody};
use crate::request;
use crate::state::AppState;

/// `POST /v1/audiences`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewAudience {
    /// 1 to 200 characters.
    #[serde(default)]
    #[schema(example = "Newsletter subscribers")]
    name: String,
    /// Up to 2,000 bytes.
    #[serde(default)]
    description: String,
    /// How long a membership lasts after the upload that granted it (1 to 540; 540 when
    /// absent).
    #[schema(minimum = 1, maximum = 540, example = 540)]
    membership_ttl_days: Option<u32>,
}

/// The advertiser's audiences.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct AudienceList {
    audiences: Vec<AudienceView>,
}

pub(crate) fn unknown_audience() -> ApiError {
    ApiError::not_found("audience_not_found", "no audience has this id")
}

fn unknown_job() -> ApiError {
    ApiError::not_found("job_not_found", "no job has this id")
}

/// An advertiser-side refusal as the caller sees it; `NotFound` becomes `not_found`.
pub(crate) fn refused_as(refused: Refused, not_found: fn() -> ApiError) -> ApiError {
    match refused {
        Refused::NotFound => not_found(),
        Refused::Invalid(field) => ApiError::invalid_field(field),
        Refused::Conflict(message) => ApiError::conflict(message),
        Refused::BadList(reason) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_list",
            "the list cannot be read as a whole; `reason` says why",
        )
        .with("reason", json!(reason)),
    }
}

/// A refusal where nothing can be missing (creating an advertiser).
pub(crate) fn refused(refused: Refused) -> ApiError {
    refused_as(refused, ApiError::internal)
}

/// An answer with a `Location` header naming the resource (ids are Tailor's own, URL-safe).
pub(crate) fn located(status: StatusCode, location: &str, body: impl Serialize) -> Response {
    let mut response = (status, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// Create an audience.
#[utoipa::path(
    post,
    path = "/v1/audiences",
    tag = "audiences",
    request_body = NewAudience,
    responses(
        (status = 201, description = "The audience, `empty` until a job succeeds", body = AudienceView),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 422, description = "A field is missing or out of range (`field` names it)", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    AdvertiserCaller(advertiser): AdvertiserCaller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let engine = state.ready_engine()?;
    let new: NewAudience = request::json(
        &state,
        body,
        &["name", "description", "membership_ttl_days"],
    )?;
    let audience = engine
        .create_audience(
            &advertiser,
            &new.name,
            &new.description,
            new.membership_ttl_days,
        )
        .await
        .map_err(|e| state.engine_failure(&e))?
        .map_err(|r| refused_as(r, unknown_audience))?;
    let location = format!("/v1/audiences/{}", audience.id);
    Ok(located(StatusCode::CREATED, &location, audience))
}

/// List the advertiser's audiences.
#[utoipa::path(
    get,
    path = "/v1/audiences",
    tag = "audiences",
    responses((status = 200, description = "The advertiser's audiences (only its own)", body = AudienceList))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    AdvertiserCaller(advertiser): AdvertiserCaller,
) -> Result<Json<AudienceList>, ApiError> {
    let engine = state.ready_engine()?;
    let audiences = engine
        .audiences(&advertiser)
        .await
        .map_err(|e| state.engine_failure(&e))?;
    Ok(Json(AudienceList { audiences }))
}

/// Read one audience: its status and its released size.
///
/// `status` is `empty` (no job succeeded yet), `processing` (a job is queued or running),
/// `ready` (targetable), `too_small` (its released size is below the minimum), `unavailable`
/// (the legal entity's privacy budget is spent and this question has no answer yet) or
/// `expired`. `size` is `{"below_threshold":true}`, `{"approximate":N}` (noisy, two
/// significant digits) or `{"unavailable_until":"<time>"}`; see docs/privacy.md.
#[utoipa::path(
    get,
    path = "/v1/audiences/{audience_id}",
    tag = "audiences",
    params(("audience_id" = String, Path, description = "The audience's id")),
    responses(
        (status = 200, description = "The audience", body = AudienceView),
        (status = 404, description = "This advertiser has no audience with this id", body = ErrorBody),
    )
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    AdvertiserCaller(advertiser): AdvertiserCaller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<AudienceView>, ApiError> {
    let engine = state.ready_engine()?;
    let audience_id = request::path_id(path)?;
    engine
        .audience(&advertiser, &audience_id)
        .await
        .map_err(|e| state.engine_failure(&e))?
        .map(Json)
        .ok_or_else(unknown_audience)
}

/// Delete an audience: its memberships end at once (serving stops answering it), its queued
/// jobs fail and its upload sessions go.
#[utoipa::path(
    delete,
    path = "/v1/audiences/{audience_id}",
    tag = "audiences",
    params(("audience_id" = String, Path, description = "The audience's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "This advertiser has no audience with this id", body = ErrorBody),
    )
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    AdvertiserCaller(advertiser): AdvertiserCaller,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let engine = state.ready_engine()?;
    let audience_id = request::path_id(path)?;
    let deleted = engine
        .delete_audience(&advertiser, &audience_id)
        .await
        .map_err(|e| state.engine_failure(&e))?;
    if deleted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(unknown_audience())
    }
}

/// Follow a job: its state and the counters of the uploaded file.
///
/// `rows_received` and `rows_accepted` count the file's data rows and those with at least one
/// usable identifier; `rejected` counts refused rows and cells by reason code. How many rows
/// matched is never reported here, only through the audience's released `size`.
#[utoipa::path(
    get,
    path = "/v1/jobs/{job_id}",
    tag = "audiences",
    params(("job_id" = String, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job", body = JobView),
        (status = 404, description = "This advertiser has no job with this id", body = ErrorBody),
    )
)]
pub(crate) async fn job(
    State(state): State<AppState>,
    AdvertiserCaller(advertiser): AdvertiserCaller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<JobView>, ApiError> {
    let engine = state.ready_engine()?;
    let job_id = request::path_id(path)?;
    engine
        .job(&advertiser, &job_id)
        .await
        .map_err(|e| state.engine_failure(&e))?
        .map(Json)
        .ok_or_else(unknown_job)
}
