//! The route table: every endpoint, with its methods and who may call it.
//!
//! [`ROUTES`] is the one list of route templates: metrics and logs name a request by the entry
//! it matched (anything else is `unmatched`), and the tests check it against both the router
//! and the OpenAPI document. The handlers themselves are gathered in `groups`, one group per
//! [`Access`], each handler carrying its `#[utoipa::path]` annotation: the router and the
//! document are both built from those groups, so a handler cannot be served without being
//! described, and the group decides both its authentication and its documented security.
//!
//! Nothing here may route by anything but a fixed template: no route is built from input.

use axum::extract::DefaultBodyLimit;
use tailor_engine::Limits;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

use crate::state::AppState;
use crate::{admin, advertisers, audiences, compliance, health, openapi, serving, uploads};

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Anyone: liveness, readiness, metrics, the OpenAPI document.
    Public,
    /// The platform's account system, with the admin token.
    Admin,
    /// An advertiser, with one of its live API keys; it sees only its own objects.
    Advertiser,
    /// Ad serving, with the serving token.
    Serving,
    /// Privacy and compliance (audits, the accountability log), with the compliance token.
    Compliance,
}

impl Access {
    /// The OpenAPI security scheme of the callers allowed; `None` for public routes.
    pub const fn scheme(self) -> Option<&'static str> {
        match self {
            Self::Public => None,
            Self::Admin => Some("admin_token"),
            Self::Advertiser => Some("advertiser_key"),
            Self::Serving => Some("serving_token"),
            Self::Compliance => Some("compliance_token"),
        }
    }
}

/// One route template, its methods and who may call it.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    /// The template, as axum matches it and the OpenAPI document names it.
    pub path: &'static str,
    /// Upper-case method names (`HEAD` is implied by `GET`).
    pub methods: &'static [&'static str],
    pub access: Access,
}

const fn route(path: &'static str, methods: &'static [&'static str], access: Access) -> Route {
    Route {
        path,
        methods,
        access,
    }
}

/// Every route the server answers.
pub const ROUTES: &[Route] = &[
    route("/healthz", &["GET"], Access::Public),
    route("/readyz", &["GET"], Access::Public),
    route("/metrics", &["GET"], Access::Public),
    route("/v1/openapi.json", &["GET"], Access::Public),
    route("/v1/admin/accounts", &["POST"], Access::Admin),
    route(
        "/v1/admin/accounts/{account_id}",
        &["GET", "PUT", "DELETE"],
        Access::Admin,
    ),
    route(
        "/v1/admin/accounts/{account_id}/consents",
        &["POST"],
        Access::Admin,
    ),
    route("/v1/admin/policy", &["PUT"], Access::Admin),
    route("/v1/admin/contact-corrections", &["POST"], Access::Admin),
    route("/v1/admin/advertisers", &["POST"], Access::Admin),
    route(
        "/v1/admin/advertisers/{advertiser_id}/keys",
        &["GET", "POST"],
        Access::Admin,
    ),
    route(
        "/v1/admin/advertisers/{advertiser_id}/keys/{key_id}",
        &["DELETE"],
        Access::Admin,
    ),
    route("/v1/audiences", &["GET", "POST"], Access::Advertiser),
    route(
        "/v1/audiences/{audience_id}",
        &["GET", "DELETE"],
        Access::Advertiser,
    ),
    route(
        "/v1/audiences/{audience_id}/uploads",
        &["POST"],
        Access::Advertiser,
    ),
    route(
        "/v1/audiences/{audience_id}/upload-sessions",
        &["POST"],
        Access::Advertiser,
    ),
    route(
        "/v1/upload-sessions/{session_id}",
        &["GET"],
        Access::Advertiser,
    ),
    route(
        "/v1/upload-sessions/{session_id}/parts/{part}",
        &["PUT"],
        Access::Advertiser,
    ),
    route(
        "/v1/upload-sessions/{session_id}/commit",
        &["POST"],
        Access::Advertiser,
    ),
    route("/v1/jobs/{job_id}", &["GET"], Access::Advertiser),
    route(
        "/v1/serving/accounts/{account_id}/audiences",
        &["GET"],
        Access::Serving,
    ),
    route("/v1/serving/audiences:batch", &["POST"], Access::Serving),
    route(
        "/v1/compliance/log/checkpoint",
        &["GET"],
        Access::Compliance,
    ),
    route(
        "/v1/compliance/log/proof/inclusion",
        &["GET"],
        Access::Compliance,
    ),
    route(
        "/v1/compliance/log/proof/consistency",
        &["GET"],
        Access::Compliance,
    ),
    route("/v1/compliance/log/entries", &["GET"], Access::Compliance),
    route("/v1/compliance/incidents", &["POST"], Access::Compliance),
    route(
        "/v1/compliance/accounts/{account_id}/data-use",
        &["GET"],
        Access::Compliance,
    ),
];

/// The entry of a matched template.
pub fn find(template: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|route| route.path == template)
}

/// The largest body of contact corrections (one request holds many lines; a larger set is
/// sent in several).
pub const MAX_CORRECTIONS_BYTES: usize = 64 * 1024 * 1024;

/// The largest policy file accepted by `PUT /v1/admin/policy`.
pub const MAX_POLICY_BYTES: usize = 1024 * 1024;

/// The largest JSON body of the advertiser and advertiser-admin endpoints (names and
/// descriptions are a few hundred bytes at most).
pub(crate) const MAX_JSON_BYTES: usize = 64 * 1024;

/// The largest batch serving body: 1,000 ids of up to 128 bytes, escaped, with room to spare.
pub(crate) const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// Puts a body limit on a group of handlers.
fn limited(
    (schemas, paths, router): UtoipaMethodRouter<AppState>,
    limit: DefaultBodyLimit,
) -> UtoipaMethodRouter<AppState> {
    (schemas, paths, router.layer(limit))
}

/// Every documented handler, grouped by who may call it. `limits` sizes the body limits (the
/// OpenAPI document does not depend on it).
pub(crate) fn groups(limits: Limits) -> Vec<(Access, OpenApiRouter<AppState>)> {
    let line = DefaultBodyLimit::max(limits.max_line_bytes);
    let json = DefaultBodyLimit::max(MAX_JSON_BYTES);
    // Streamed bodies: the engine reads them as it goes, with its own limits, so axum's
    // buffering limit would only refuse a large body before anything could be counted.
    let streamed = DefaultBodyLimit::disable;
    let public = OpenApiRouter::new()
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .routes(routes!(openapi::document));
    let admin = OpenApiRouter::new()
        .routes(limited(routes!(admin::import), streamed()))
        .routes(limited(
            routes!(admin::put_account, admin::view, admin::erase),
            line,
        ))
        .routes(limited(routes!(admin::record_consent), line))
        .routes(limited(
            routes!(admin::correct_contacts),
            DefaultBodyLimit::max(MAX_CORRECTIONS_BYTES),
        ))
        .routes(limited(
            routes!(admin::set_policy),
            DefaultBodyLimit::max(MAX_POLICY_BYTES),
        ))
        .routes(limited(routes!(advertisers::create), json))
        .routes(limited(
            routes!(advertisers::add_key, advertisers::keys),
            json,
        ))
        .routes(limited(routes!(advertisers::revoke_key), json));
    let advertiser = OpenApiRouter::new()
        .routes(limited(routes!(audiences::create, audiences::list), json))
        .routes(limited(routes!(audiences::show, audiences::delete), json))
        .routes(limited(routes!(uploads::upload), streamed()))
        .routes(limited(routes!(uploads::create_session), json))
        .routes(limited(routes!(uploads::session), json))
        .routes(limited(routes!(uploads::put_part), streamed()))
        .routes(limited(routes!(uploads::commit), json))
        .routes(limited(routes!(audiences::job), json));
    let serving = OpenApiRouter::new()
        .routes(routes!(serving::audiences))
        .routes(limited(
            routes!(serving::batch),
            DefaultBodyLimit::max(MAX_BATCH_BYTES),
        ));
    let compliance = OpenApiRouter::new()
        .routes(routes!(compliance::checkpoint))
        .routes(routes!(compliance::inclusion))
        .routes(routes!(compliance::consistency))
        .routes(routes!(compliance::entries))
        .routes(limited(
            routes!(compliance::incident),
            DefaultBodyLimit::max(MAX_POLICY_BYTES + MAX_JSON_BYTES),
        ))
        .routes(routes!(compliance::data_use));
    vec![
        (Access::Public, public),
        (Access::Admin, admin),
        (Access::Advertiser, advertiser),
        (Access::Serving, serving),
        (Access::Compliance, compliance),
    ]
}
