//! Liveness, readiness and metrics: the endpoints an orchestrator and a scraper call, without
//! a token. None of them says anything about a person.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::metrics::CONTENT_TYPE;
use crate::state::AppState;

/// The liveness answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    /// Always `ok`.
    status: &'static str,
}

/// The readiness answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Readiness {
    ready: bool,
    /// Entries in the eligible-identifier index (when ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    index_entries: Option<usize>,
    /// The policy in force, `sha256:...` (when ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    policy_version: Option<String>,
}

/// The process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses((status = 200, description = "Alive", body = Health))
)]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Whether the index is built: 200 with its size and the policy in force, 503 before.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Still building the index (`{\"ready\":false}`)", body = Readiness),
    )
)]
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    match state.engine() {
        Some(engine) => Json(Readiness {
            ready: true,
            index_entries: Some(engine.index_len()),
            policy_version: Some(engine.policy().version().to_hex()),
        })
        .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Readiness {
                ready: false,
                index_entries: None,
                policy_version: None,
            }),
        )
            .into_response(),
    }
}

/// The Prometheus metrics, in the OpenMetrics text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses((status = 200, description = "Requests by route template and status, latency, import and upload counters, refusals by reason code, index entries, errors by kind", content_type = "application/openmetrics-text", body = String))
)]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    state.index_changed();
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        state.metrics().render(),
    )
        .into_response()
}
