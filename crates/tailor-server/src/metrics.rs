//! Prometheus metrics, one registry per server (no process-global recorder), rendered in the
//! OpenMetrics text format on `GET /metrics`.
//!
//! Every label value is a `&'static str` or a number: a route template from [`crate::ROUTES`],
//! a method name, a status code, a reason code, an error class. No label can hold an account
//! id, a path or a contact value, because none of those is `'static`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tailor_engine::ImportSummary;

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    kind: &'static str,
}

type LatencyFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms to about 33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: LatencyFamily,
    import_lines: Family<ResultLabels, Counter>,
    rejected: Family<ReasonLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    index_entries: Gauge,
    index_build_seconds: Gauge<f64, AtomicU64>,
    forbidden_grants: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tailor");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route template, method and status",
            requests.clone(),
        );
        let latency: LatencyFamily = Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route template and method",
            latency.clone(),
        );
        let import_lines = Family::<ResultLabels, Counter>::default();
        registry.register(
            "import_lines",
            "Account lines read by imports, by result (accepted or refused)",
            import_lines.clone(),
        );
        let rejected = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "rejected",
            "Refused lines, contact points and consent events, by reason code",
            rejected.clone(),
        );
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "errors",
            "Failures of the store, the engine or a request body, by kind",
            errors.clone(),
        );
        let index_entries = Gauge::default();
        registry.register(
            "index_entries",
            "Entries in the eligible-identifier index",
            index_entries.clone(),
        );
        let forbidden_grants = Gauge::default();
        registry.register(
            "grants_forbidden_basis",
            "Grants applied since start whose basis is a security or address-book context \
             (the detective control: it must stay 0)",
            forbidden_grants.clone(),
        );
        let index_build_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "index_build_seconds",
            "How long the last index build at start took",
            index_build_seconds.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            import_lines,
            rejected,
            errors,
            index_entries,
            index_build_seconds,
            forbidden_grants,
        }
    }

    /// Counts one answered request.
    pub fn request(&self, route: &'static str, method: &'static str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels { route, method })
            .observe(seconds);
    }

    /// Counts what an import (or a single-account write) did.
    pub fn import(&self, summary: &ImportSummary) {
        let refused = summary.lines.saturating_sub(summary.accounts);
        self.import_lines
            .get_or_create(&ResultLabels { result: "accepted" })
            .inc_by(summary.accounts);
        self.import_lines
            .get_or_create(&ResultLabels { result: "refused" })
            .inc_by(refused);
        for (&reason, &n) in &summary.rejected {
            self.rejected
                .get_or_create(&ReasonLabels { reason })
                .inc_by(n);
        }
    }

    /// Counts one refusal outside an import (a consent event).
    pub fn rejected(&self, reason: &'static str) {
        self.rejected.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Counts one failure.
    pub fn error(&self, kind: &'static str) {
        self.errors.get_or_create(&ErrorLabels { kind }).inc();
    }

    pub fn set_index_entries(&self, entries: usize) {
        self.index_entries
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
    }

    pub fn set_forbidden_grants(&self, grants: u64) {
        self.forbidden_grants
            .set(i64::try_from(grants).unwrap_or(i64::MAX));
    }

    pub fn set_index_build_seconds(&self, seconds: f64) {
        self.index_build_seconds.set(seconds);
    }

    /// The OpenMetrics text of every metric.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail; an encoder error would leave a partial text,
        // which is still better than none for a scrape.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
