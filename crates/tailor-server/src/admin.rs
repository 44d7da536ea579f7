//! The admin API: the account system streams accounts, consent events and erasures in, reads
//! back what Tailor holds about an account, and swaps the policy.
//!
//! Handlers only translate between HTTP and the engine: every write has updated the eligible
//! index before its response is sent, because the engine returns only then. Refusals are
//! reported by line, field path and reason code; no response repeats a submitted value.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt as _;
use serde_json::{Value, json};
use tailor_core::Policy;
use tailor_engine::import::{AccountLineSchema, ConsentLine};
use tailor_engine::{AccountView, ErasureReport, ImportReject, ImportSummary};
use tokio_util::io::StreamReader;

use crate::error::{ApiError, ErrorBody};
use crate::request;
use crate::state::AppState;

/// A summary as the answer, with an `error` beside it when the status is not 200.
fn summary_response(
    status: StatusCode,
    summary: &ImportSummary,
    error: Option<ApiError>,
) -> Response {
    let Some(error) = error else {
        return (status, Json(summary)).into_response();
    };
    let fields = match serde_json::to_value(summary) {
        Ok(Value::Object(fields)) => fields,
        _ => serde_json::Map::new(),
    };
    fields
        .into_iter()
        .fold(error, |error, (name, value)| error.with(&name, value))
        .into_response()
}

/// Import accounts: NDJSON, one account line per line, streamed into the engine.
///
/// Each line's `contacts` replace the account's contact points (omit it to keep them); its
/// `consents` are appended to the history. Every write has updated the eligible index (and
/// ended the memberships it no longer supports) before the answer.
#[utoipa::path(
    post,
    path = "/v1/admin/accounts",
    tag = "admin",
    request_body(content = AccountLineSchema, content_type = "application/x-ndjson", description = "One account line per line"),
    responses(
        (status = 200, description = "What was imported and refused, by line and reason", body = ImportSummary),
        (status = 400, description = "The body broke off", body = ErrorBody),
        (status = 413, description = "The body went over the size limit; the summary of what was imported before it stands beside `error`", body = ErrorBody),
    )
)]
pub(crate) async fn import(
    State(state): State<AppState>,
    body: Body,
) -> Result<Response, ApiError> {
    let engine = state.ready_engine()?;
    // The body is read chunk by chunk as the engine asks for it: memory stays bounded by the
    // engine's line limit and batch size, whatever the body's size.
    let reader = StreamReader::new(body.into_data_stream().map_err(std::io::Error::other));
    let result = engine.import(reader).await;
    state.index_changed();
    let summary = match result {
        Ok(summary) => summary,
        Err(error) => {
            if let tailor_engine::EngineError::ImportInterrupted { summary, .. } = &error {
                state.metrics().import(summary);
            }
            return Err(state.engine_failure(&error));
        }
    };
    state.metrics().import(&summary);
    if summary.truncated {
        let error = ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the body went over the size limit; the lines before it were imported",
        );
        Ok(summary_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            &summary,
            Some(error),
        ))
    } else {
        Ok(summary_response(StatusCode::OK, &summary, None))
    }
}

/// Write one account: an account line naming the same id.
#[utoipa::path(
    put,
    path = "/v1/admin/accounts/{account_id}",
    tag = "admin",
    params(("account_id" = String, Path, description = "The platform's account id")),
    request_body(content = AccountLineSchema, content_type = "application/json"),
    responses(
        (status = 200, description = "The summary", body = ImportSummary),
        (status = 422, description = "The line was refused; the summary's `errors` say why", body = ErrorBody),
    )
)]
pub(crate) async fn put_account(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let engine = state.ready_engine()?;
    let id = request::path_id(path)?;
    let bytes = request::buffered(&state, bytes)?;
    let summary = engine
        .put_account(&id, &bytes)
        .await
        .map_err(|e| state.engine_failure(&e))?;
    state.index_changed();
    state.metrics().import(&summary);
    if summary.accounts == 0 {
        let error = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "account_refused",
            "the account line was refused; `errors` says why",
        );
        Ok(summary_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            &summary,
            Some(error),
        ))
    } else {
        Ok(summary_response(StatusCode::OK, &summary, None))
    }
}

/// Read an account: its contact points without values, what each is eligible for and why
/// not, and its consent standing.
#[utoipa::path(
    get,
    path = "/v1/admin/accounts/{account_id}",
    tag = "admin",
    params(("account_id" = String, Path, description = "The platform's account id")),
    responses(
        (status = 200, description = "The account", body = AccountView),
        (status = 404, description = "No account has this id", body = ErrorBody),
    )
)]
pub(crate) async fn view(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let engine = state.ready_engine()?;
    let id = request::path_id(path)?;
    match engine
        .view(&id)
        .await
        .map_err(|e| state.engine_failure(&e))?
    {
        Some(view) => Ok(Json(view).into_response()),
        None => Err(unknown_account()),
    }
}

/// The answer to a policy change.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct PolicyChanged {
    /// `sha256:` and the hex digest of the policy file.
    policy_version: String,
    index_entries: usize,
}

fn unknown_account() -> ApiError {
    ApiError::not_found("account_not_found", "no account has this id")
}

/// Record one consent event; the answer is the account as it stands after it.
///
/// A withdrawal, objection, GPC signal or opt-out has removed the account from every audience
/// and from the serving answers before this returns.
#[utoipa::path(
    post,
    path = "/v1/admin/accounts/{account_id}/consents",
    tag = "admin",
    params(("account_id" = String, Path, description = "The platform's account id")),
    request_body = ConsentLine,
    responses(
        (status = 200, description = "The account after the event", body = AccountView),
        (status = 404, description = "No account has this id", body = ErrorBody),
        (status = 422, description = "The event was refused (`field`, `reason`)", body = ErrorBody),
    )
)]
pub(crate) async fn record_consent(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let engine = state.ready_engine()?;
    let id = request::path_id(path)?;
    let bytes = request::buffered(&state, bytes)?;
    let outcome = engine
        .record_consent(&id, &bytes)
        .await
        .map_err(|e| state.engine_failure(&e))?;
    state.index_changed();
    match outcome {
        Ok(view) => Ok(Json(view).into_response()),
        Err(refusal) if refusal.reason == ImportReject::UnknownAccount.code() => {
            Err(unknown_account())
        }
        Err(refusal) => {
            state.metrics().rejected(refusal.reason);
            let error = ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "consent_refused",
                "the consent event was refused; `field` and `reason` say why",
            )
            .with("line", json!(refusal.line))
            .with("reason", json!(refusal.reason));
            Err(match refusal.field {
                Some(field) => error.with("field", json!(field)),
                None => error,
            })
        }
    }
}

/// Erase an account; the answer says what went.
#[utoipa::path(
    delete,
    path = "/v1/admin/accounts/{account_id}",
    tag = "admin",
    params(("account_id" = String, Path, description = "The platform's account id")),
    responses(
        (status = 200, description = "What the erasure removed", body = ErasureReport),
        (status = 404, description = "No account has this id", body = ErrorBody),
    )
)]
pub(crate) async fn erase(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let engine = state.ready_engine()?;
    let id = request::path_id(path)?;
    let report = engine
        .erase(&id)
        .await
        .map_err(|e| state.engine_failure(&e))?;
    state.index_changed();
    match report {
        Some(report) => Ok(Json(report).into_response()),
        None => Err(unknown_account()),
    }
}

/// Put a new policy (TOML) in force, with the index rebuilt under it before the answer.
#[utoipa::path(
    put,
    path = "/v1/admin/policy",
    tag = "admin",
    request_body(content = String, content_type = "application/toml", description = "A policy file (`tailor policy show` prints the shipped one)"),
    responses(
        (status = 200, description = "The policy in force", body = PolicyChanged),
        (status = 422, description = "The policy was refused; `problems` lists each with its line", body = ErrorBody),
    )
)]
///
/// The new policy lasts until the server stops: a restart enforces the policy given at start
/// (`--policy`, or the shipped one). To keep a policy, change that file too.
pub(crate) async fn set_policy(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let engine = state.ready_engine()?;
    let bytes = request::buffered(&state, bytes)?;
    let invalid = |problems: Value| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_policy",
            "the policy was refused; `problems` lists what is wrong, by line",
        )
        .with("problems", problems)
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return Err(invalid(
            json!([{"line": 1, "message": "the policy is not UTF-8"}]),
        ));
    };
    let policy = Policy::parse(text).map_err(|error| {
        let problems = error
            .problems
            .iter()
            .map(|p| json!({"line": p.line, "message": p.message}))
            .collect();
        invalid(Value::Array(problems))
    })?;
    let version = policy.version().to_hex();
    engine
        .set_policy(policy)
        .await
        .map_err(|e| state.engine_failure(&e))?;
    state.index_changed();
    let entries = engine.index_len();
    tracing::info!(policy_version = %version, index_entries = entries, "policy changed");
    Ok(Json(PolicyChanged {
        policy_version: version,
        index_entries: entries,
    })
    .into_response())
}

/// Correct the context contact points were collected in (NDJSON, one correction per line:
/// `{"account_id","kind","value","context","effective_since"}`), for example phones the account
/// system sent as `profile` that were in fact given for two-factor authentication. Each
/// corrected contact point takes its new context from `effective_since` on (incident analysis
/// replays earlier grants under it); the memberships that relied on it end before the answer.
#[utoipa::path(
    post,
    path = "/v1/admin/contact-corrections",
    tag = "admin",
    request_body(content = String, content_type = "application/x-ndjson", description = "One correction per line"),
    responses(
        (status = 200, description = "What was corrected and refused (by line and reason)", body = tailor_engine::incident::CorrectionSummary),
    )
)]
pub(crate) async fn correct_contacts(
    State(state): State<AppState>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<tailor_engine::incident::CorrectionSummary>, ApiError> {
    let engine = state.ready_engine()?;
    let bytes = request::buffered(&state, bytes)?;
    let summary = engine
        .correct_contacts(&bytes)
        .await
        .map_err(|e| state.engine_failure(&e))?;
    state.index_changed();
    tracing::info!(
        corrected = summary.corrected,
        memberships_ended = summary.memberships_ended,
        "contact points corrected"
    );
    Ok(Json(summary))
}
