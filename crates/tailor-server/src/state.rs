//! What every handler shares: the engine (once its index is built), the token hashes, the
//! metrics and the limits.

use std::sync::{Arc, OnceLock};

use tailor_engine::{Engine, EngineError, Limits};

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::tokens::Tokens;

/// The application state behind [`crate::router`]. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    engine: OnceLock<Arc<Engine>>,
    tokens: Tokens,
    limits: Limits,
    metrics: Metrics,
}

impl AppState {
    /// A ready state over an engine whose index is built.
    pub fn new(engine: Arc<Engine>, tokens: Tokens) -> Self {
        let state = Self::starting(tokens, engine.limits());
        state.set_ready(engine);
        state
    }

    /// A state whose engine is still opening: only health, readiness and metrics answer.
    pub fn starting(tokens: Tokens, limits: Limits) -> Self {
        Self {
            inner: Arc::new(Inner {
                engine: OnceLock::new(),
                tokens,
                limits,
                metrics: Metrics::new(),
            }),
        }
    }

    /// Puts the engine in place; `false` if one already was.
    pub fn set_ready(&self, engine: Arc<Engine>) -> bool {
        self.inner.metrics.set_index_entries(engine.index_len());
        self.inner.engine.set(engine).is_ok()
    }

    /// The engine, once the index is built.
    pub fn engine(&self) -> Option<&Arc<Engine>> {
        self.inner.engine.get()
    }

    pub(crate) fn ready_engine(&self) -> Result<&Arc<Engine>, ApiError> {
        self.engine().ok_or_else(ApiError::not_ready)
    }

    pub fn tokens(&self) -> &Tokens {
        &self.inner.tokens
    }

    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Logs and counts an engine failure, and turns it into the caller's error.
    pub(crate) fn engine_failure(&self, error: &EngineError) -> ApiError {
        let kind = match error {
            EngineError::Store(_) | EngineError::ImportInterrupted { .. } => "store",
            EngineError::Body(_) => "body",
            _ => "engine",
        };
        self.metrics().error(kind);
        // Engine and store errors carry no contact value or account id (their types say so),
        // so their messages may be logged.
        if kind == "body" {
            tracing::info!(error = %error, "request body unreadable");
        } else {
            tracing::error!(error = %error, "request failed");
        }
        ApiError::engine(error)
    }

    /// Refreshes the index size gauge after a write.
    pub(crate) fn index_changed(&self) {
        if let Some(engine) = self.engine() {
            self.metrics().set_index_entries(engine.index_len());
            self.metrics()
                .set_forbidden_grants(engine.forbidden_grants());
        }
    }
}
