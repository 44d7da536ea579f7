//! The compliance API (compliance token): the accountability log's signed checkpoint, its
//! entries, and inclusion and consistency proofs, so that an auditor can check, without
//! trusting this server, that the records it is shown were not rewritten; incident analysis
//! (who was affected, by whom, when, and remediation); and a person's data-use report.
//!
//! Entries hold no personal data (accounts appear as keyed commitments), so they are returned
//! as stored. Proof hashes and entry bytes are base64 (standard alphabet), as in C2SP.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tailor_engine::audit::{self, ProofRefused};
use tailor_engine::data_use::DataUse;

use crate::error::{ApiError, ErrorBody};
use crate::request;
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

/// A proof as answered: the hashes in base64, or why there is none.
fn answer(
    state: &AppState,
    proof: Result<Result<Vec<tailor_log::Hash>, ProofRefused>, tailor_engine::EngineError>,
) -> Result<Json<Proof>, ApiError> {
    let proof = proof
        .map_err(|e| state.engine_failure(&e))?
        .map_err(|r| refused(&r))?;
    Ok(Json(Proof {
        proof: proof.iter().map(|h| b64(h)).collect(),
    }))
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
    answer(
        &state,
        audit::inclusion_proof(engine.store().as_ref(), query.index, query.size).await,
    )
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
    answer(
        &state,
        audit::consistency_proof(engine.store().as_ref(), query.from, query.to).await,
    )
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

/// Every audience membership an account has had, past and present: the advertiser whose list
/// matched, when it was granted and ended and why, through which kind and context of contact
/// point, under which consent record and policy version, by which job. Never a contact value
/// or a digest of one. For the platform's settings page and data-subject access requests.
#[utoipa::path(
    get,
    path = "/v1/compliance/accounts/{account_id}/data-use",
    tag = "compliance",
    params(("account_id" = String, Path, description = "The platform's account id")),
    responses(
        (status = 200, description = "The account's memberships, by grant time", body = DataUse),
        (status = 404, description = "No account has this id", body = ErrorBody),
    )
)]
pub(crate) async fn data_use(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<DataUse>, ApiError> {
    let engine = state.ready_engine()?;
    let account_id = request::path_id(path)?;
    tailor_engine::data_use::data_use(engine, &account_id)
        .await
        .map_err(|e| state.engine_failure(&e))?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("account_not_found", "no account has this id"))
}

/// `POST /v1/compliance/incidents`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct IncidentRequest {
    /// The window's start (RFC 3339): grants made from then on.
    #[schema(value_type = String, format = DateTime)]
    from: jiff::Timestamp,
    /// The window's end (RFC 3339), inclusive.
    #[schema(value_type = String, format = DateTime)]
    to: jiff::Timestamp,
    /// A policy (TOML) to replay under, such as a corrected one; the policy in force when
    /// absent.
    policy: Option<String>,
    /// End the affected memberships that are still live (and log it).
    #[serde(default)]
    remediate: bool,
}

/// `?format=csv` for the affected grants as CSV.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct IncidentFormat {
    /// `json` (the default) or `csv`.
    format: Option<String>,
}

/// Replay every grant made in a window under a policy and the current (corrected) facts, and
/// say exactly who was affected: distinct accounts, advertisers, audiences, jobs and grants,
/// per reason, and when the affected memberships were live. Accounts appear as log
/// commitments only.
#[utoipa::path(
    post,
    path = "/v1/compliance/incidents",
    tag = "compliance",
    params(IncidentFormat),
    request_body = IncidentRequest,
    responses(
        (status = 200, description = "The report (JSON, or CSV of the affected grants)", body = tailor_engine::incident::IncidentReport),
        (status = 422, description = "A field is invalid (`field` names it), or the policy was refused", body = ErrorBody),
    )
)]
pub(crate) async fn incident(
    State(state): State<AppState>,
    format: Result<Query<IncidentFormat>, QueryRejection>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let engine = state.ready_engine()?;
    let Query(format) = format.map_err(|_| bad_query())?;
    let csv = match format.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::invalid_field("format")),
    };
    let request: IncidentRequest =
        crate::request::json(&state, body, &["from", "to", "policy", "remediate"])?;
    if request.to < request.from {
        return Err(ApiError::invalid_field("to"));
    }
    let policy = match &request.policy {
        None => None,
        Some(text) => Some(std::sync::Arc::new(
            tailor_core::Policy::parse(text).map_err(|_| ApiError::invalid_field("policy"))?,
        )),
    };
    let report = engine
        .analyze_incident(
            tailor_engine::incident::IncidentQuestion {
                from: request.from,
                to: request.to,
                policy,
            },
            request.remediate,
        )
        .await
        .map_err(|e| state.engine_failure(&e))?;
    if request.remediate {
        state.index_changed();
    }
    tracing::info!(
        affected_accounts = report.affected.accounts,
        affected_grants = report.affected.grants,
        remediated = report.remediated,
        "incident analyzed"
    );
    Ok(if csv {
        (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            report.to_csv(),
        )
            .into_response()
    } else {
        Json(report).into_response()
    })
}
