//! The server's errors: [`ServerError`] for what stops `tailor serve` (at start or while
//! serving), and [`ApiError`], the JSON error a request gets.
//!
//! An API error body is `{"error":{"code":"...","message":"..."}}`, sometimes with more
//! fields beside `error` (an import summary, policy problems, a refusal). Messages are fixed
//! strings: they never repeat a value from the request, and a store failure is reported
//! without its internals (those go to the log, which carries no personal data either: store
//! errors name tables and columns, never values).

use std::borrow::Cow;
use std::fmt;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};
use tailor_core::policy::PolicyProblem;
use tailor_engine::EngineError;
use tailor_store::StoreError;

/// What stops the server, or a server-side command such as `tailor tokens reset`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The store could not be opened or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The PostgreSQL database could not be opened (unreachable, refused, newer schema).
    #[error("cannot open the PostgreSQL database {place}")]
    Database {
        /// `HOST:PORT/DATABASE`, never the user or the password.
        place: String,
        #[source]
        source: StoreError,
    },
    /// The engine failed (index key, index build).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The policy file has problems; each is printed as `FILE:LINE: message`.
    #[error("{}", ProblemList { path, problems })]
    Policy {
        path: String,
        problems: Vec<PolicyProblem>,
    },
    /// The policy file cannot be read.
    #[error("policy file {path}: {source}")]
    PolicyFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving: {0}")]
    Serve(#[source] std::io::Error),
    /// A token given by the environment is too short to be a secret.
    #[error("{var} must be at least {min} characters long", min = crate::tokens::MIN_TOKEN_LEN)]
    WeakToken { var: &'static str },
    /// Two roles were given the same token, which would make the role of a caller ambiguous.
    #[error("the {first} and {second} tokens are the same; every role needs its own token")]
    SharedToken {
        first: &'static str,
        second: &'static str,
    },
    /// The stored hash of a role's token is not a SHA-256 digest.
    #[error(
        "the stored hash of the {role} token is unreadable; run `tailor tokens reset --role {role}`"
    )]
    CorruptTokenHash { role: &'static str },
    /// The data directory does not exist (for commands that must not create it).
    #[error("no data directory at {0}")]
    NoDataDir(String),
    /// The background task building the index stopped without an answer.
    #[error("the index build task failed")]
    IndexTask,
}

struct ProblemList<'a> {
    path: &'a str,
    problems: &'a [PolicyProblem],
}

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}:{}: {}", self.path, problem.line, problem.message)?;
        }
        Ok(())
    }
}

/// The body of every error answer (other fields may stand beside `error`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"error": {"code": "audience_not_found", "message": "no audience has this id"}}))]
pub(crate) struct ErrorBody<'a> {
    #[serde(borrow)]
    pub(crate) error: ErrorDetail<'a>,
}

/// What went wrong: a stable code and a fixed message, never a submitted value.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorDetail<'a> {
    /// A stable, machine-readable code such as `unauthorized` or `invalid_field`.
    pub(crate) code: &'static str,
    /// A fixed English sentence for people.
    pub(crate) message: &'a str,
}

/// An error answer to an HTTP request.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: Cow<'static, str>,
    /// Fields beside `error` in the body.
    extra: Map<String, Value>,
    /// Whether to ask for a bearer token (401).
    challenge: bool,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            extra: Map::new(),
            challenge: false,
        }
    }

    /// Adds a field beside `error` in the body.
    pub fn with(mut self, name: &str, value: Value) -> Self {
        self.extra.insert(name.to_owned(), value);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    /// No token, an unknown token, or a malformed `Authorization` header.
    pub fn unauthorized() -> Self {
        Self {
            challenge: true,
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid bearer token is required",
            )
        }
    }

    /// A valid token whose role may not use the endpoint.
    pub fn forbidden(role: &'static str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("the {role} token may not use this endpoint"),
        )
    }

    pub fn not_found(code: &'static str, message: &'static str) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// A field of the request that is missing, of the wrong type or out of range; `field` is
    /// a name this server knows (never one taken from the request).
    pub fn invalid_field(field: &'static str) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "a field is missing, of the wrong type or out of range; `field` names it",
        )
        .with("field", Value::from(field))
    }

    /// The request does not fit the state of what it names (a session committed already).
    pub fn conflict(message: &'static str) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// A bug: the request reached a handler without what the route guarantees.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed; the request may not have been applied",
        )
    }

    /// The index is still being built.
    pub fn not_ready() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the server is building its index; retry when /readyz reports ready",
        )
    }

    /// An advertiser's API key on an endpoint of the platform's roles.
    pub fn forbidden_advertiser() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "an advertiser key may not use this endpoint",
        )
    }

    /// The store failed; `kind` is the metrics label.
    pub(crate) fn store(error: &StoreError) -> Self {
        match error {
            StoreError::Database(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the store is unavailable; the request was not applied",
            ),
            _ => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "store_failed",
                "the store failed; the request was not applied",
            ),
        }
    }

    /// An engine failure as the caller sees it.
    pub(crate) fn engine(error: &EngineError) -> Self {
        match error {
            EngineError::Store(store) => Self::store(store),
            EngineError::ImportInterrupted { summary, source } => {
                let base = Self::store(source);
                let summary = serde_json::to_value(summary.as_ref()).unwrap_or(Value::Null);
                Self {
                    message: "the import stopped on a store failure; the accounts counted in \
                              `summary` were written"
                        .into(),
                    ..base
                }
                .with("summary", summary)
            }
            EngineError::Behind => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "behind",
                "this replica has not yet applied writes made through the others; try again",
            ),
            EngineError::Body(_) => Self::new(
                StatusCode::BAD_REQUEST,
                "body_unreadable",
                "the request body could not be read to its end",
            ),
            _ => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the server failed; the request may not have been applied",
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = self.extra;
        let detail = ErrorDetail {
            code: self.code,
            message: &self.message,
        };
        body.insert(
            "error".to_owned(),
            serde_json::to_value(detail).unwrap_or(Value::Null),
        );
        let mut response = (self.status, axum::Json(Value::Object(body))).into_response();
        if self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tailor\""),
            );
        }
        response
    }
}

/// The answer for a path no route matches.
pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("no_route", "no endpoint at this path")
}

/// The answer for a method a route does not have.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept this method",
    )
}
