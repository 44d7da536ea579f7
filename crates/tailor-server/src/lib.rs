//! `tailor serve`: Tailor's HTTP API, with its configuration, authentication, metrics and logs.
//!
//! [`router`] builds the axum application over an [`AppState`] (the engine once its index is
//! built, the callers' token hashes, the metrics registry); [`serve`] opens the data directory,
//! binds, builds the index in the background and serves until SIGTERM or ctrl-c. Handlers are
//! thin: every rule lives in `tailor-engine` and `tailor-core`.
//!
//! Nothing here may put a personal value into a response error, a log line or a metric: logs
//! and metrics name the route *template* (never the raw path, which holds an account id),
//! the method, the status and reason codes; error bodies carry fixed messages.

mod admin;
mod auth;
pub mod config;
mod error;
mod health;
pub mod metrics;
mod server;
mod state;
pub mod telemetry;
pub mod tokens;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};

pub use config::Config;
pub use error::{ApiError, ServerError};
pub use server::{ReadyInfo, Server, serve, shutdown_signal};
pub use state::AppState;
pub use tokens::{Role, TokenOrigin, Tokens};

/// The largest policy file accepted by `PUT /v1/admin/policy`.
pub const MAX_POLICY_BYTES: usize = 1024 * 1024;

/// Every route template, as metrics and logs name routes. A request that matched none of them
/// is reported as `unmatched`, so that no raw path ever becomes a label.
pub const ROUTES: &[&str] = &[
    "/healthz",
    "/readyz",
    "/metrics",
    "/v1/admin/accounts",
    "/v1/admin/accounts/{account_id}",
    "/v1/admin/accounts/{account_id}/consents",
    "/v1/admin/policy",
];

/// The HTTP application over `state`.
pub fn router(state: AppState) -> Router {
    let line = state.limits().max_line_bytes;
    let admin = Router::new()
        // The import body is streamed into the engine, which enforces its own limit
        // (`Limits::max_body_bytes`) and reports what it kept; axum's buffering limit would
        // refuse a large body before the engine could count anything.
        .route(
            "/v1/admin/accounts",
            post(admin::import).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/v1/admin/accounts/{account_id}",
            put(admin::put_account)
                .get(admin::view)
                .delete(admin::erase)
                .layer(DefaultBodyLimit::max(line)),
        )
        .route(
            "/v1/admin/accounts/{account_id}/consents",
            post(admin::record_consent).layer(DefaultBodyLimit::max(line)),
        )
        .route(
            "/v1/admin/policy",
            put(admin::set_policy).layer(DefaultBodyLimit::max(MAX_POLICY_BYTES)),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_admin,
        ));
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .merge(admin)
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            telemetry::observe,
        ))
        .with_state(state)
}
