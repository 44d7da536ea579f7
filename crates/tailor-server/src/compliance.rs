//! The compliance API (compliance token): the accountability log's signed checkpoint, its
//! entries, and inclusion and consistency proofs, so that an auditor can check, without
//! trusting this server, that the records it is shown were not rewritten.
//!
//! Entries hold no personal data (accounts appear as keyed commitments), so they are returned
//! as stored. Proof hashes and entry bytes are base64 (standard alphabet), as in C2SP.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tailor_engine::audit::{self, ProofRefused};

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// The most entries one request returns.
pub(crate) const MAX_ENTRIES: u64 = 1000;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn bad_query() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_query",
        "the query string cannot be read",
    )
}

fn refused(refusal: &ProofRefused) -> ApiError {
    let message = match refusal {
        ProofRefused::BeyondLog(_) => "the log does not hold that many entries",
        ProofRefused::Invalid(_) => "no such proof: the index or sizes are out of range",
    };
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_range", message)
}

/// The log's latest checkpoint: a C2SP signed note (text) over its size and root, signed with
/// the key in `log.pub`; it is stored, so `tailor log verify` checks it later.
#[utoipa::path(
    get,
    path = "/v1/compliance/log/checkpoint",
    tag = "compliance",
    responses(
        (status = 200, description = "The signed note", content_type = "text/plain", body = String),
        (status = 503, description = "The server cannot sign checkpoints", body = ErrorBody),
    )
)]
pub(crate) async fn checkpoint(State(state): State<AppState>) -> Result<Response, ApiError> {
    let engine = state.ready_engine()?;
    let note = engine
        .log_checkpoint()
        .await
        .map_err(|e| state.engine_failure(&e))?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_log_key",
                "this server has no key to sign checkpoints with",
            )
        })?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response())
}

/// `?index=N&size=M`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct InclusionQuery {
    /// The entry (from 0).
    index: u64,
    /// The tree size the proof is for (a checkpoint's size).
    size: u64,
}

/// A Merkle proof.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Proof {
    /// The hashes of the proof, base64, in RFC 6962 order.
    proof: Vec<String>,
}

/// The inclusion proof of entry `index` in the tree of the first `size` entries.
#[utoipa::path(
    get,
    path = "/v1/compliance/log/proof/inclusion",
    tag = "compliance",
    params(InclusionQuery),
    responses(
        (status = 200, description = "The proof", body = Proof),
        (status = 422, description = "The index or size is out of range", body = ErrorBody),
    )
)]
pub(crate) async fn inclusion(
    State(state): State<AppState>,
    query: Result<Query<InclusionQuery>, QueryRejection>,
) -> Result<Json<Proof>, ApiError> {
    let engine = state.ready_engine()?;
    let Query(query) = query.map_err(|_| bad_query())?;
    let proof = audit::inclusion_proof(engine.store().as_ref(), query.index, query.size)
        .await
        .map_err(|e| state.engine_failure(&e))?
        .map_err(|r| refused(&r))?;
    Ok(Json(Proof {
        proof: proof.iter().map(|h| b64(h)).collect(),
    }))
}

/// `?from=M&to=N`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ConsistencyQuery {
    /// The older tree size.
    from: u64,
    /// The newer tree size.
    to: u64,
}

/// The consistency proof between the trees of the first `from` and `to` entries.
#[utoipa::path(
    get,
    path = "/v1/compliance/log/proof/consistency",
    tag = "compliance",
    params(ConsistencyQuery),
    responses(
        (status = 200, description = "The proof", body = Proof),
        (status = 422, description = "The sizes are out of range", body = ErrorBody),
    )
)]
pub(crate) async fn consistency(
    State(state): State<AppState>,
    query: Result<Query<ConsistencyQuery>, QueryRejection>,
) -> Result<Json<Proof>, ApiError> {
    let engine = state.ready_engine()?;
    let Query(query) = query.map_err(|_| bad_query())?;
    let proof = audit::consistency_proof(engine.store().as_ref(), query.from, query.to)
        .await
        .map_err(|e| state.engine_failure(&e))?
        .map_err(|r| refused(&r))?;
    Ok(Json(Proof {
        proof: proof.iter().map(|h| b64(h)).collect(),
    }))
}

/// `?start=&end=`: entries `start..end`, at most 1,000.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct EntriesQuery {
    /// The first entry (from 0); 0 when absent.
    start: Option<u64>,
    /// One past the last entry; at most `start + 1000`, and the log's size when absent.
    end: Option<u64>,
}

/// One log entry.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Entry {
    index: u64,
    /// The entry's exact bytes, base64: the leaf data (`SHA-256(0x00 || data)` is its leaf).
    data: String,
    /// The same bytes read as the entry they are (JSON).
    #[schema(value_type = Object)]
    entry: serde_json::Value,
}

/// Entries of the log.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Entries {
    /// The log's size now.
    size: u64,
    entries: Vec<Entry>,
}

/// Entries `start..end` of the log, with their exact bytes.
#[utoipa::path(
    get,
    path = "/v1/compliance/log/entries",
    tag = "compliance",
    params(EntriesQuery),
    responses(
        (status = 200, description = "The entries", body = Entries),
        (status = 422, description = "The range is empty, reversed or too long", body = ErrorBody),
    )
)]
pub(crate) async fn entries(
    State(state): State<AppState>,
    query: Result<Query<EntriesQuery>, QueryRejection>,
) -> Result<Json<Entries>, ApiError> {
    let engine = state.ready_engine()?;
    let Query(query) = query.map_err(|_| bad_query())?;
    let size = engine
        .store()
        .log_size()
        .await
        .map_err(|e| ApiError::store(&e))?;
    let start = query.start.unwrap_or(0);
    let end = query
        .end
        .unwrap_or_else(|| size.min(start.saturating_add(MAX_ENTRIES)));
    if end < start || end - start > MAX_ENTRIES {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_range",
            "start..end must be at most 1000 entries, start first",
        ));
    }
    let stored = engine
        .store()
        .log_entries(start, end)
        .await
        .map_err(|e| ApiError::store(&e))?;
    let entries = stored
        .into_iter()
        .map(|e| Entry {
            index: e.index,
            entry: serde_json::from_slice(&e.data).unwrap_or(serde_json::Value::Null),
            data: b64(&e.data),
        })
        .collect();
    Ok(Json(Entries { size, entries }))
}
