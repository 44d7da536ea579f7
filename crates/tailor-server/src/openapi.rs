//! The OpenAPI 3.1 document of the HTTP API, generated from the code and served at
//! `GET /v1/openapi.json`.
//!
//! Each handler carries a `#[utoipa::path]` annotation (its path, method, parameters, bodies
//! and answers); the request and response types derive `utoipa::ToSchema` (the engine's views
//! through its `openapi` feature, so the schemas are those of the types actually serialized).
//! [`openapi`] gathers the same handler groups the router is built from
//! (`routes::groups`) and, per group, adds what its access implies: the bearer
//! security scheme of the callers allowed, and the 401, 403 and 503 answers of the
//! authentication check. The tests check the document against [`crate::ROUTES`] and the
//! router, both ways.
//!
//! The document describes shapes and fixed texts only: no example holds a real identifier.

use std::sync::LazyLock;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tailor_engine::Limits;
use utoipa::OpenApi as _;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

use crate::error::ApiError;
use crate::routes::{self, Access};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Tailor",
        description = "Customer-list audiences that cannot misuse security data. Errors are \
                       `{\"error\":{\"code\",\"message\"}}` with fixed messages that never \
                       repeat a submitted value; some carry more fields beside `error` \
                       (`field`, `reason`, a summary)."
    ),
    tags(
        (name = "health", description = "Liveness, readiness, metrics and this document; no token"),
        (name = "admin", description = "The platform's account system: accounts, consent, erasure, policy, advertisers and their keys (admin token)"),
        (name = "audiences", description = "An advertiser's audiences and jobs (advertiser API key)"),
        (name = "uploads", description = "An advertiser's list uploads, in one request or an upload session (advertiser API key)"),
        (name = "serving", description = "Ad serving: the audiences of an account (serving token)"),
        (name = "compliance", description = "Accountability: the log's checkpoints, entries and proofs, incident analysis, data-use reports (compliance token)"),
    )
)]
struct ApiDoc;

/// What each kind of bearer credential is, for the security schemes.
fn scheme_description(access: Access) -> &'static str {
    match access {
        Access::Admin => {
            "The admin token (`TAILOR_ADMIN_TOKEN`, or generated at first start and shown once)"
        }
        Access::Advertiser => {
            "An advertiser's API key (`POST /v1/admin/advertisers` or `tailor advertisers \
             create`; shown once)"
        }
        Access::Serving => {
            "The serving token (`TAILOR_SERVING_TOKEN`, or generated at first start and shown \
             once)"
        }
        Access::Compliance => {
            "The compliance token (`TAILOR_COMPLIANCE_TOKEN`, or generated at first start and \
             shown once)"
        }
        Access::Public => "",
    }
}

/// The answers of the authentication check, shared by every protected operation.
const CHECK_RESPONSES: [(&str, &str, &str); 3] = [
    (
        "401",
        "Unauthorized",
        "No bearer token, or one that is unknown or revoked (`WWW-Authenticate: Bearer`)",
    ),
    (
        "403",
        "Forbidden",
        "A valid credential of another kind (a role token or an advertiser key this endpoint \
         does not take)",
    ),
    (
        "503",
        "NotReady",
        "The server is still building its index; retry when /readyz reports ready",
    ),
];

fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// The whole document: every route of `routes::groups`, with the security and the
/// authentication answers of its group.
pub fn openapi() -> OpenApi {
    let mut doc = ApiDoc::openapi();
    let components = doc.components.get_or_insert_with(Default::default);
    for (_, name, description) in CHECK_RESPONSES {
        let content = ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build();
        let response = ResponseBuilder::new()
            .description(description)
            .content("application/json", content)
            .build();
        components
            .responses
            .insert(name.to_owned(), RefOr::T(response));
    }
    for (access, group) in routes::groups(Limits::default()) {
        let mut part = group.into_openapi();
        if let Some(scheme) = access.scheme() {
            let components = doc.components.get_or_insert_with(Default::default);
            let http = HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(scheme_description(access)))
                .build();
            components.add_security_scheme(scheme, SecurityScheme::Http(http));
            for item in part.paths.paths.values_mut() {
                for operation in operations_mut(item) {
                    operation.security =
                        Some(vec![SecurityRequirement::new(scheme, Vec::<String>::new())]);
                    for (status, name, _) in CHECK_RESPONSES {
                        operation
                            .responses
                            .responses
                            .entry(status.to_owned())
                            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
                    }
                }
            }
        }
        doc.merge(part);
    }
    doc
}

/// The document as served, built once.
static DOCUMENT: LazyLock<Option<String>> = LazyLock::new(|| openapi().to_json().ok());

/// This document (OpenAPI 3.1, JSON).
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "health",
    responses((status = 200, description = "The OpenAPI document of every endpoint", content_type = "application/json", body = Object))
)]
pub(crate) async fn document() -> Response {
    match DOCUMENT.as_deref() {
        Some(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        None => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the OpenAPI document could not be rendered",
        )
        .into_response(),
    }
}
