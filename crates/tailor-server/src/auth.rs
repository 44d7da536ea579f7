//! Bearer authentication: who is calling, and whether that caller may use the route.
//!
//! A presented token is first compared with the three role tokens (admin, serving,
//! compliance; hashes compared in constant time, no store read), then, if it is none of them,
//! looked up as an advertiser API key through the engine (its SHA-256 against the live keys).
//! The answers:
//!
//! - no token, a malformed header, an unknown or revoked key: 401 with
//!   `WWW-Authenticate: Bearer`;
//! - a valid credential of the wrong kind (a role token on another role's or the advertiser
//!   routes, an advertiser key on admin or serving routes): 403;
//! - a token that is no role's while the engine is still opening: 503 `not_ready` (it may be
//!   a valid advertiser key, which cannot be checked yet).
//!
//! The check runs before the handler, so before any body is read: an unauthenticated caller
//! cannot make the server read or store anything. Tokens and keys are never logged.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tailor_store::Advertiser;

use crate::error::ApiError;
use crate::routes::Access;
use crate::state::AppState;
use crate::tokens::Role;

/// The token of an `Authorization: Bearer <token>` header (scheme in any case).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Who presented the request's token.
enum Caller {
    Role(Role),
    Advertiser(Advertiser),
    Unknown,
}

async fn identify(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let Some(token) = bearer(headers) else {
        return Ok(Caller::Unknown);
    };
    if let Some(role) = state.tokens().role_of(token) {
        return Ok(Caller::Role(role));
    }
    let engine = state.ready_engine()?;
    match engine.authenticate(token).await {
        Ok(Some(advertiser)) => Ok(Caller::Advertiser(advertiser)),
        Ok(None) => Ok(Caller::Unknown),
        Err(error) => Err(state.engine_failure(&error)),
    }
}

/// The state of one group's check: the application state and the access its routes ask for.
#[derive(Clone, Debug)]
pub(crate) struct Gate {
    state: AppState,
    access: Access,
}

impl Gate {
    pub(crate) fn new(state: AppState, access: Access) -> Self {
        Self { state, access }
    }
}

/// Lets through the callers the route's [`Access`] allows; an advertiser goes on as an
/// [`AdvertiserCaller`] for the handler.
pub(crate) async fn require(
    State(gate): State<Gate>,
    mut request: Request,
    next: Next,
) -> Response {
    let caller = match identify(&gate.state, request.headers()).await {
        Ok(caller) => caller,
        Err(error) => return error.into_response(),
    };
    match (gate.access, caller) {
        (Access::Public, _)
        | (Access::Admin, Caller::Role(Role::Admin))
        | (Access::Serving, Caller::Role(Role::Serving))
        | (Access::Compliance, Caller::Role(Role::Compliance)) => next.run(request).await,
        (Access::Advertiser, Caller::Advertiser(advertiser)) => {
            request
                .extensions_mut()
                .insert(AdvertiserCaller(advertiser));
            next.run(request).await
        }
        (_, Caller::Role(role)) => ApiError::forbidden(role.as_str()).into_response(),
        (_, Caller::Advertiser(_)) => ApiError::forbidden_advertiser().into_response(),
        (_, Caller::Unknown) => ApiError::unauthorized().into_response(),
    }
}

/// The advertiser a request was authenticated as; only [`require`] puts it there, so a
/// handler taking it cannot run unauthenticated (without it the request fails closed, 500).
#[derive(Clone, Debug)]
pub(crate) struct AdvertiserCaller(pub(crate) Advertiser);

impl<S: Send + Sync> FromRequestParts<S> for AdvertiserCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .remove::<AdvertiserCaller>()
            .ok_or_else(ApiError::internal)
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn bearer_header_shapes() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
            bearer(&headers).map(str::to_owned)
        };
        assert_eq!(with("Bearer abc"), Some("abc".to_owned()));
        assert_eq!(with("bearer abc"), Some("abc".to_owned()));
        assert_eq!(with("Basic abc"), None);
        assert_eq!(with("Bearer "), None);
        assert_eq!(with("Bearer"), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
