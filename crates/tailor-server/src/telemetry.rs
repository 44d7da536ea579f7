//! Logs and per-request telemetry.
//!
//! Logs go to stderr through `tracing` (JSON lines when stderr is not a terminal, readable
//! text when it is; `RUST_LOG` filters, `info` by default); stdout is kept for the few lines
//! an operator or a script reads (tokens shown once, the bound address, readiness). A request
//! is logged and counted by its route *template*, method, status and latency only: never the
//! raw path (which holds an account id), the query, a header or a body. Serving lookups are
//! counted like every request but logged only at `debug`: at ad-serving rates a line each
//! would cost more than the answer.

use std::io::IsTerminal as _;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use tracing_subscriber::EnvFilter;

use crate::routes::{Access, Route};
use crate::state::AppState;

/// Installs the process's log subscriber; does nothing if one is installed already.
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // `try_init` fails only when a subscriber is already set (a second server in one process):
    // the first one keeps logging, which is what we want.
    let _ = if std::io::stderr().is_terminal() {
        builder.try_init()
    } else {
        builder.json().flatten_event(true).try_init()
    };
}

/// The route a request matched, from the fixed table.
fn route(request: &Request) -> Option<&'static Route> {
    crate::routes::find(request.extensions().get::<MatchedPath>()?.as_str())
}

fn method(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Counts and logs every request by route template, method, status and latency. Serving
/// lookups (the hot path, thousands a second) and the probes that orchestrators and scrapers
/// call every few seconds (`/healthz`, `/readyz`, `/metrics`) are logged at `debug` only;
/// every other request at `info`.
pub(crate) async fn observe(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let matched = route(&request);
    let route = matched.map_or("unmatched", |r| r.path);
    let quiet = matched.is_some_and(|r| {
        r.access == Access::Serving || matches!(r.path, "/healthz" | "/readyz" | "/metrics")
    });
    let method = method(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state
        .metrics()
        .request(route, method, status, elapsed.as_secs_f64());
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    if quiet {
        tracing::debug!(route, method, status, latency_ms, "request");
    } else {
        tracing::info!(route, method, status, latency_ms, "request");
    }
    response
}
