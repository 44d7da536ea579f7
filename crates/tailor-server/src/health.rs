//! Liveness, readiness and metrics: the endpoints an orchestrator and a scraper call, without
//! a token. None of them says anything about a person.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::metrics::CONTENT_TYPE;
use crate::state::AppState;

/// `GET /healthz`: the process answers.
pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: 200 once the index is built, with its size and the policy in force.
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    match state.engine() {
        Some(engine) => Json(json!({
            "ready": true,
            "index_entries": engine.index_len(),
            "policy_version": engine.policy().version().to_hex(),
        }))
        .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false})),
        )
            .into_response(),
    }
}

/// `GET /metrics`: the OpenMetrics text.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    state.index_changed();
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        state.metrics().render(),
    )
        .into_response()
}
