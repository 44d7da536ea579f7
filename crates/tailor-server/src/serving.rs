//! The serving lookup: which targetable audiences an account is in, asked at ad-serving time
//! with the serving token, one account per request or up to [`MAX_BATCH`] in one.
//!
//! This is the hot path. The engine answers from memory, re-checking at answer time that each
//! membership is unexpired, that the contact point it rests on is still eligible (consent as
//! it stands now) and that the audience is targetable through the release function; a consent
//! withdrawal has removed the account from these answers before the withdrawal call returned.
//! Handlers here add nothing per request but the response: no log line at `info` (requests
//! are counted in the metrics and logged at `debug`), no intermediate JSON value. An unknown
//! account is in no audience: the answer is an empty list, not 404.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorBody};
use crate::request;
use crate::state::AppState;

/// The most accounts one batch request may ask about.
pub(crate) const MAX_BATCH: usize = 1000;

/// The audiences of one account.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ServingAnswer {
    /// Ids of the targetable audiences the account is in, in no particular order.
    #[schema(example = json!(["aud_5f0c9d7e2b1a4c3d8e9f0a1b"]))]
    audiences: Vec<String>,
}

/// `POST /v1/serving/audiences:batch`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchQuestion {
    /// At most 1,000 account ids.
    #[schema(max_items = 1000, example = json!(["u123", "u456"]))]
    account_ids: Vec<String>,
}

/// The answer for each account asked about, in the order asked.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct BatchAnswer {
    results: Vec<AccountAudiences>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct AccountAudiences {
    account_id: String,
    audiences: Vec<String>,
}

/// The targetable audiences an account is in.
#[utoipa::path(
    get,
    path = "/v1/serving/accounts/{account_id}/audiences",
    tag = "serving",
    params(("account_id" = String, Path, description = "The platform's account id")),
    responses(
        (status = 200, description = "The audiences (empty for an unknown account)", body = ServingAnswer),
    )
)]
pub(crate) async fn audiences(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<ServingAnswer>, ApiError> {
    let engine = state.ready_engine()?;
    let account_id = request::path_id(path)?;
    let audiences = engine
        .serving_audiences(&account_id)
        .await
        .map_err(|e| state.engine_failure(&e))?;
    Ok(Json(ServingAnswer { audiences }))
}

/// The targetable audiences of up to 1,000 accounts in one request.
#[utoipa::path(
    post,
    path = "/v1/serving/audiences:batch",
    tag = "serving",
    request_body = BatchQuestion,
    responses(
        (status = 200, description = "One result per account id asked about, in order", body = BatchAnswer),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 422, description = "`account_ids` is missing, not a list of strings, or longer than 1,000", body = ErrorBody),
    )
)]
pub(crate) async fn batch(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<BatchAnswer>, ApiError> {
    let engine = state.ready_engine()?;
    let question: BatchQuestion = request::json(&state, body, &["account_ids"])?;
    if question.account_ids.len() > MAX_BATCH {
        return Err(ApiError::invalid_field("account_ids"));
    }
    let mut results = Vec::with_capacity(question.account_ids.len());
    for account_id in question.account_ids {
        let audiences = engine
            .serving_audiences(&account_id)
            .await
            .map_err(|e| state.engine_failure(&e))?;
        results.push(AccountAudiences {
            account_id,
            audiences,
        });
    }
    Ok(Json(BatchAnswer { results }))
}
