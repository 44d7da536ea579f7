//! What `tailor serve` is told: where its data lives, where it listens, which policy it
//! enforces, its limits, how audience sizes are released, and the secrets it may take from the
//! environment.
//!
//! Secrets (the index key, the callers' tokens) are held in zeroizing strings and never
//! printed: `Debug` says whether each is set, not what it is.

use std::fmt;
use std::path::{Path, PathBuf};

use tailor_core::Policy;
use tailor_core::release::ReleaseConfig;
use tailor_engine::Limits;
use zeroize::Zeroizing;

use crate::database::DatabaseUrl;
use crate::error::ServerError;
use crate::tokens::Role;

/// The data directory when none is given.
pub const DEFAULT_DATA_DIR: &str = "tailor-data";

/// The listen address when none is given.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The environment variable holding the index key.
pub const SECRET_KEY_ENV: &str = "TAILOR_SECRET_KEY";

/// How `tailor serve` runs.
#[derive(Clone)]
pub struct Config {
    /// The data directory (created on first start).
    pub data_dir: PathBuf,
    /// The PostgreSQL database holding the store; `None` for the SQLite database in the data
    /// directory. The keys stay in the data directory either way.
    pub database: Option<DatabaseUrl>,
    /// `HOST:PORT` to listen on; port 0 picks a free port.
    pub listen: String,
    /// A policy file; `None` for the shipped policy.
    pub policy: Option<PathBuf>,
    pub limits: Limits,
    /// How advertiser-visible numbers are released: noise, threshold, budget.
    pub release: ReleaseConfig,
    /// The index key (`TAILOR_SECRET_KEY`); `None` to use or create `secret.key` in the data
    /// directory.
    pub secret_key: Option<Zeroizing<String>>,
    /// Tokens given by the environment, per role; a role without one uses its stored hash or
    /// gets a generated token on first start.
    pub tokens: EnvTokens,
}

/// Tokens taken from `TAILOR_ADMIN_TOKEN`, `TAILOR_SERVING_TOKEN`, `TAILOR_COMPLIANCE_TOKEN`.
#[derive(Clone, Default)]
pub struct EnvTokens {
    pub admin: Option<Zeroizing<String>>,
    pub serving: Option<Zeroizing<String>>,
    pub compliance: Option<Zeroizing<String>>,
}

impl EnvTokens {
    /// Reads the three variables; an empty variable counts as unset.
    pub fn from_env() -> Self {
        let read = |role: Role| {
            std::env::var(role.env_var())
                .ok()
                .filter(|v| !v.is_empty())
                .map(Zeroizing::new)
        };
        Self {
            admin: read(Role::Admin),
            serving: read(Role::Serving),
            compliance: read(Role::Compliance),
        }
    }

    pub fn get(&self, role: Role) -> Option<&str> {
        match role {
            Role::Admin => self.admin.as_deref().map(String::as_str),
            Role::Serving => self.serving.as_deref().map(String::as_str),
            Role::Compliance => self.compliance.as_deref().map(String::as_str),
        }
    }
}

impl fmt::Debug for EnvTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvTokens")
            .field("admin", &self.admin.as_ref().map(|_| "<set>"))
            .field("serving", &self.serving.as_ref().map(|_| "<set>"))
            .field("compliance", &self.compliance.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            database: None,
            listen: DEFAULT_LISTEN.to_owned(),
            policy: None,
            limits: Limits::default(),
            release: ReleaseConfig::default(),
            secret_key: None,
            tokens: EnvTokens::default(),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field("database", &self.database)
            .field("listen", &self.listen)
            .field("policy", &self.policy)
            .field("limits", &self.limits)
            .field("release", &self.release)
            .field("secret_key", &self.secret_key.as_ref().map(|_| "<set>"))
            .field("tokens", &self.tokens)
            .finish()
    }
}

impl Config {
    /// Takes the index key and the tokens from the environment.
    pub fn with_env(mut self) -> Self {
        self.secret_key = std::env::var(SECRET_KEY_ENV)
            .ok()
            .filter(|v| !v.is_empty())
            .map(Zeroizing::new);
        self.tokens = EnvTokens::from_env();
        self
    }

    /// The policy to enforce: the file's, checked, or the shipped one.
    pub fn load_policy(&self) -> Result<Policy, ServerError> {
        match &self.policy {
            None => Ok(Policy::shipped()),
            Some(path) => load_policy_file(path),
        }
    }
}

/// Reads and checks a policy file; every problem is reported with its line.
pub fn load_policy_file(path: &Path) -> Result<Policy, ServerError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| ServerError::PolicyFile {
        path: shown.clone(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| ServerError::PolicyFile {
        path: shown.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"),
    })?;
    Policy::parse(&text).map_err(|error| ServerError::Policy {
        path: shown,
        problems: error.problems,
    })
}
