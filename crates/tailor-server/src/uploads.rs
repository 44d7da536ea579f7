//! The advertiser API for list uploads: one request (`POST .../uploads`), or an upload session
//! for lists too large for one (`POST .../upload-sessions`, `PUT` each part, `POST .../commit`).
//!
//! A list body is streamed: the connection's chunks go through a `StreamReader` and a
//! `SyncIoBridge` to the engine, which reads, normalizes and matches it on a blocking thread
//! as it arrives; nothing is buffered here and no row is kept that matched nothing. The
//! format comes from `Content-Type` (`text/csv` or `application/x-ndjson`; anything else is
//! 415, before the body is read). A list that cannot be read as a whole is 400 with a reason
//! code; refused rows and cells are counted in the job, not errors.
//!
//! As everywhere on the advertiser side, another advertiser's audience or session answers
//! exactly as one that does not exist.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use tailor_engine::{JobView, PartView, SessionView};

use crate::audiences::{located, refused_as, unknown_audience};
use crate::auth::AdvertiserCaller;
use crate::error::{ApiError, ErrorBody};
use crate::request::{self, PartQuery, UploadQuery};
use crate::state::AppState;

fn unknown_session() -> ApiError {
    ApiError::not_found("session_not_found", "no upload session has this id")
}

fn job_response(job: JobView) -> Response {
    let location = format!("/v1/jobs/{}", job.job_id);
    located(StatusCode::ACCEPTED, &location, job)
}

/// Upload a list to an audience in one request; the job is queued and applied in order.
///
/// The body is CSV with a header row naming `email`, `phone`, `email_sha256`, `phone_sha256`
/// (or their aliases), or NDJSON with the same field names; raw identifiers are normalized
/// here exactly as `tailor hash` does, hashed ones must be SHA-256 (hex or base64).
#[utoipa::path(
    post,
    path = "/v1/audiences/{audience_id}/uploads",
    tag = "uploads",
    params(
        ("audience_id" = String, Path, description = "The audience's id"),
        UploadQuery,
    ),
    request_body(
        description = "The list, streamed",
        content(
            (String = "text/csv", example = "email,phone\njane.doe@example.com,+1 415 555 0100\n"),
            (String = "application/x-ndjson", example = "{\"email_sha256\":\"…\"}\n"),
        )
    ),
    responses(
        (status = 202, description = "The queued job (`Location` names it)", body = JobView),
        (status = 400, description = "The list cannot be read as a whole (`reason` says why), or the body broke off", body = ErrorBody),
        (status = 404, description = "This advertiser has no audience with this id", body = ErrorBody),
        (status = 415, description = "The body is neither text/csv nor application/x-ndjson", body = ErrorBody),
        (status = 422, description = "`op` or `region` is missing or unknown (`field` names it)", body = ErrorBody),
    )
)]
pub(crate) async fn upload(
    State(state): State<AppState>,
    AdvertiserCaller(advertiser): AdvertiserCaller,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<UploadQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let engine = state.ready_engine()?;
    let audience_id = request::path_id(path)?;
    let (op, region) = request::upload_query(query)?;
    let format = request::upload_format(&headers)?;
    let job = engine
        .upload(
            &advertiser,
            &audience_id,
            op,
            format,
            region,
            request::blocking_reader(body),
        )
        .await
        .map_err(|e| state.engine_failure(&e))?
        .map_err(|r| refused_as(r, unknown_audience))?;
    Ok(job_response(job))
}

/// Open an upload session for a list sent in parts; nothing applies until it is committed.
/// An uncommitted session expires after 24 hours.
#[utoipa::path(
    post,
    path = "/v1/audiences/{audience_id}/upload-sessions",
    tag = "uploads",
    params(
        ("audience_id" = String, Path, description = "The audience's id"),
        ("op" = String, Query, description = "`add`, `remove` or `replace`, applied at commit"),
    ),
    responses(
        (status = 201, description = "The session (`Location` names it)", body = SessionView),
        (status = 404, description = "This advertiser has no audience with this id", body = ErrorBody),
        (status = 422, description = "`op` is missing or unknown", body = ErrorBody),
    )
)]
pub(crate) async fn create_session(
    State(state): State<AppState>,
    AdvertiserCaller(advertiser): AdvertiserCaller,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<UploadQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let engine = state.ready_engine()?;
    let audience_id = request::path_id(path)?;
    // A region, if given, is checked but belongs to each part.
    let (op, _) = request::upload_query(query)?;
    let session = engine
        .create_session(&advertiser, &audience_id, op)
        .await
        .map_err(|e| state.engine_failure(&e))?
        .map_err(|r| refused_as(r, unknown_audience))?;
    let location = format!("/v1/upload-sessions/{}", session.session_id);
    Ok(located(StatusCode::CREATED, &location, session))
}

/// Read an upload session and the counters of its parts.
#[utoipa::path(
    get,
    path = "/v1/upload-sessions/{session_id}",
    tag = "uploads",
    params(("session_id" = String, Path, description = "The session's id")),
    responses(
        (status = 200, description = "The session", body = SessionView),
        (status = 404, description = "This advertiser has no live session with this id", body = ErrorBody),
    )
)]
pub(crate) async fn session(
    State(state): State<AppState>,
    AdvertiserCaller(advertiser): AdvertiserCaller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<SessionView>, ApiError> {
    let engine = state.ready_engine()?;
    let session_id = request::path_id(path)?;
    engine
        .session(&advertiser, &session_id)
        .await
        .map_err(|e| state.engine_failure(&e))?
        .map(Json)
        .ok_or_else(unknown_session)
}

/// Send part `part` (1 to 10,000) of a session's list; sending a part again replaces it.
///
/// Same body rules as a one-request upload; each part is a list of its own, with its header
/// row if CSV.
#[utoipa::path(
    put,
    path = "/v1/upload-sessions/{session_id}/parts/{part}",
    tag = "uploads",
    params(
        ("session_id" = String, Path, description = "The session's id"),
        ("part" = u32, Path, description = "The part number, 1 to 10,000", minimum = 1, maximum = 10000),
        PartQuery,
    ),
    request_body(
        description = "One part of the list, streamed",
        content((String = "text/csv"), (String = "application/x-ndjson"))
    ),
    responses(
        (status = 200, description = "The part's counters", body = PartView),
        (status = 400, description = "The part cannot be read as a whole (`reason` says why)", body = ErrorBody),
        (status = 404, description = "This advertiser has no live session with this id", body = ErrorBody),
        (status = 409, description = "The session is committed", body = ErrorBody),
        (status = 415, description = "The body is neither text/csv nor application/x-ndjson", body = ErrorBody),
        (status = 422, description = "The part number or `region` is out of range", body = ErrorBody),
    )
)]
pub(crate) async fn put_part(
    State(state): State<AppState>,
    AdvertiserCaller(advertiser): AdvertiserCaller,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<PartQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<PartView>, ApiError> {
    let engine = state.ready_engine()?;
    let (session_id, part) = request::path_ids(path)?;
    let part: u32 = part.parse().map_err(|_| ApiError::invalid_field("part"))?;
    let region = request::part_query(query)?;
    let format = request::upload_format(&headers)?;
    engine
        .put_part(
            &advertiser,
            &session_id,
            part,
            format,
            region,
            request::blocking_reader(body),
        )
        .await
        .map_err(|e| state.engine_failure(&e))?
        .map(Json)
        .map_err(|r| refused_as(r, unknown_session))
}

/// Commit a session: its parts become one job, queued and applied in order.
#[utoipa::path(
    post,
    path = "/v1/upload-sessions/{session_id}/commit",
    tag = "uploads",
    params(("session_id" = String, Path, description = "The session's id")),
    responses(
        (status = 202, description = "The queued job (`Location` names it)", body = JobView),
        (status = 404, description = "This advertiser has no live session with this id", body = ErrorBody),
        (status = 409, description = "The session is committed already, or has no parts", body = ErrorBody),
    )
)]
pub(crate) async fn commit(
    State(state): State<AppState>,
    AdvertiserCaller(advertiser): AdvertiserCaller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let engine = state.ready_engine()?;
    let session_id = request::path_id(path)?;
    let job = engine
        .commit_session(&advertiser, &session_id)
        .await
        .map_err(|e| state.engine_failure(&e))?
        .map_err(|r| refused_as(r, unknown_session))?;
    Ok(job_response(job))
}
