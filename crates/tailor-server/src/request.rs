//! Reading what a client sends: buffered bodies, JSON bodies, ids in the path, and the upload
//! parameters (operation, region, format).
//!
//! Every refusal is an [`ApiError`] with a fixed message. None repeats what was sent: a serde
//! message would ("invalid type: string \"jane@example.com\""), so it is never shown, and a
//! field is named only when it is one of the names the caller passes in, which are this
//! server's own `&'static str`s.

use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode, header};
use futures_util::TryStreamExt as _;
use serde::de::DeserializeOwned;
use tailor_core::Region;
use tailor_list::UploadFormat;
use tailor_store::JobOp;
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::error::ApiError;
use crate::state::AppState;

/// One id from the path.
pub(crate) fn path_id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(id)| id).map_err(|_| invalid_path())
}

/// Two ids from the path.
pub(crate) fn path_ids(
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(String, String), ApiError> {
    path.map(|Path(ids)| ids).map_err(|_| invalid_path())
}

fn invalid_path() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_path",
        "an id in the path is not valid percent-encoded UTF-8",
    )
}

/// A buffered body, within the route's limit.
pub(crate) fn buffered(
    state: &AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the request body is larger than this endpoint accepts",
            )
        } else {
            state.metrics().error("body");
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "body_unreadable",
                "the request body could not be read to its end",
            )
        }
    })
}

/// A JSON body of type `T`, whose field names are `fields`.
///
/// Not JSON at all: 400 `invalid_json`. A field of the wrong type, or a required one missing:
/// 422 `invalid_field` naming it. Any other mismatch (an unknown field, not an object): 422
/// `invalid_body`, naming nothing.
pub(crate) fn json<T: DeserializeOwned>(
    state: &AppState,
    body: Result<Bytes, BytesRejection>,
    fields: &[&'static str],
) -> Result<T, ApiError> {
    let bytes = buffered(state, body)?;
    let mut reader = serde_json::Deserializer::from_slice(&bytes);
    let value = serde_path_to_error::deserialize(&mut reader).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if !inner.is_data() {
            return invalid_json();
        }
        match known_field(&path, &inner.to_string(), fields) {
            Some(field) => ApiError::invalid_field(field),
            None => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                "the request body is not an object of the documented fields",
            ),
        }
    })?;
    // Anything after the document (a second document, garbage) is refused too.
    reader.end().map_err(|_| invalid_json())?;
    Ok(value)
}

fn invalid_json() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_json",
        "the request body is not one JSON document",
    )
}

/// The known field a deserialization error is about: the first segment of its path
/// (`account_ids[3]` is about `account_ids`), or the field a "missing field" message names.
fn known_field(path: &str, message: &str, fields: &[&'static str]) -> Option<&'static str> {
    let first = path
        .split(['.', '['])
        .next()
        .filter(|segment| !segment.is_empty())
        .or_else(|| {
            message
                .strip_prefix("missing field `")
                .and_then(|rest| rest.split('`').next())
        })?;
    fields.iter().copied().find(|field| *field == first)
}

/// The query of the upload endpoints: `op=add|remove|replace` and an optional `region`, the
/// region in which phone numbers without a country code are read.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct UploadQuery {
    /// `add` grants membership to the accounts the list matches, `remove` ends theirs,
    /// `replace` makes the audience exactly the accounts matched (atomically).
    #[param(required = true, value_type = String, example = "add")]
    op: Option<String>,
    /// A CLDR region code (`US`, `FR`, ...) for reading phone numbers written without `+`
    /// and a country code; `US` when absent.
    #[param(value_type = Option<String>, example = "US")]
    region: Option<String>,
}

/// The query of a session part: only the region.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PartQuery {
    /// A CLDR region code for reading phone numbers written without `+` and a country code;
    /// `US` when absent.
    #[param(value_type = Option<String>, example = "US")]
    region: Option<String>,
}

/// The region used when an upload names none.
pub(crate) const DEFAULT_REGION: Region = Region::US;

fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query.map(|Query(query)| query).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "the query string cannot be read",
        )
    })
}

fn region(code: Option<&str>) -> Result<Region, ApiError> {
    match code {
        None => Ok(DEFAULT_REGION),
        Some(code) => Region::parse(code).ok_or_else(|| ApiError::invalid_field("region")),
    }
}

/// The operation and region of an upload.
pub(crate) fn upload_query(
    upload: Result<Query<UploadQuery>, QueryRejection>,
) -> Result<(JobOp, Region), ApiError> {
    let upload = query(upload)?;
    let op = upload
        .op
        .as_deref()
        .and_then(JobOp::parse)
        .ok_or_else(|| ApiError::invalid_field("op"))?;
    Ok((op, region(upload.region.as_deref())?))
}

/// The region of a session part.
pub(crate) fn part_query(
    part: Result<Query<PartQuery>, QueryRejection>,
) -> Result<Region, ApiError> {
    region(query(part)?.region.as_deref())
}

/// The list format a `Content-Type` names; 415 for anything else (or none).
pub(crate) fn upload_format(headers: &HeaderMap) -> Result<UploadFormat, ApiError> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(UploadFormat::from_content_type)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "a list is sent as text/csv or application/x-ndjson",
            )
        })
}

/// A streamed body as a blocking reader, for the engine to read on a blocking thread: chunks
/// are pulled from the connection as the reader asks for them, so nothing is buffered beyond
/// the chunk being read. Must be called inside the runtime.
pub(crate) fn blocking_reader(body: Body) -> impl std::io::Read + Send + 'static {
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    SyncIoBridge::new(StreamReader::new(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_fields_are_named() {
        let fields = ["name", "account_ids"];
        assert_eq!(known_field("name", "", &fields), Some("name"));
        assert_eq!(
            known_field("account_ids[3]", "", &fields),
            Some("account_ids")
        );
        assert_eq!(
            known_field(".", "missing field `name`", &fields),
            Some("name")
        );
        // A field the client made up is never repeated.
        assert_eq!(known_field("jane@example.com", "", &fields), None);
        assert_eq!(
            known_field(
                ".",
                "unknown field `jane@example.com`, expected `name`",
                &fields
            ),
            None
        );
        assert_eq!(known_field(".", "invalid type: string", &fields), None);
    }
}
