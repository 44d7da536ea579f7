//! `tailor serve`: Tailor's HTTP API, with its configuration, authentication, metrics and logs.
//!
//! [`router`] builds the axum application over an [`AppState`] (the engine once its index is
//! built, the callers' token hashes, the metrics registry); [`serve`] opens the data directory,
//! binds, builds the index in the background and serves until SIGTERM or ctrl-c. Handlers are
//! thin: every rule lives in `tailor-engine` and `tailor-core`.
//!
//! The routes are listed in [`routes`] (one table for the router, the metrics labels and the
//! OpenAPI document served at `/v1/openapi.json`, see [`openapi`]). Callers are the three
//! platform roles (admin, serving, compliance; bearer tokens) and advertisers (bearer API keys,
//! checked through the engine); an advertiser sees only its own audiences, sessions and jobs.
//!
//! Nothing here may put a personal value into a response error, a log line or a metric: logs
//! and metrics name the route *template* (never the raw path, which holds an account id),
//! the method, the status and reason codes; error bodies carry fixed messages.

mod admin;
mod advertisers;
mod audiences;
mod auth;
mod compliance;
pub mod config;
pub mod database;
mod error;
mod health;
pub mod metrics;
pub mod openapi;
mod request;
pub mod routes;
mod server;
mod serving;
mod state;
pub mod telemetry;
pub mod tokens;
mod uploads;

use axum::Router;
use utoipa_axum::router::OpenApiRouter;

pub use config::Config;
pub use error::{ApiError, ServerError};
pub use routes::{Access, MAX_POLICY_BYTES, ROUTES, Route};
pub use server::{ReadyInfo, Server, serve, shutdown_signal};
pub use state::AppState;
pub use tokens::{Role, TokenOrigin, Tokens};

/// The HTTP application over `state`: every route of [`ROUTES`], each group behind the
/// authentication its [`Access`] asks for, and the telemetry around all of them.
pub fn router(state: AppState) -> Router {
    let mut app = OpenApiRouter::new();
    for (access, group) in routes::groups(state.limits()) {
        let group = match access {
            Access::Public => group,
            // The check runs before the handler, so before any body is read.
            gated => group.route_layer(axum::middleware::from_fn_with_state(
                auth::Gate::new(state.clone(), gated),
                auth::require,
            )),
        };
        app = app.merge(group);
    }
    let (app, _) = app.split_for_parts();
    app.fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            telemetry::observe,
        ))
        .with_state(state)
}
