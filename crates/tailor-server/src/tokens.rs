//! The callers' bearer tokens: three roles, each with its own token, known to the server only
//! by its SHA-256.
//!
//! A role's token comes from its environment variable (`TAILOR_ADMIN_TOKEN`, ...) or, when
//! that is unset, from the store's meta table, where only the token's SHA-256 is kept. On
//! first start a role with neither gets a random token: its hash is stored and the token is
//! handed back once, for the operator to keep; it cannot be recovered afterwards, only
//! replaced ([`reset`], behind `tailor tokens reset`). Tokens are 256-bit random values, so an
//! unsalted SHA-256 is enough to make the stored hash useless to a reader of the database.
//!
//! A presented token is hashed and compared against every role's hash in constant time.

use std::fmt;

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;
use tailor_engine::secret::random_token;
use tailor_store::Store;
use zeroize::Zeroizing;

use crate::config::EnvTokens;
use crate::error::ServerError;

/// The shortest token accepted from the environment.
pub const MIN_TOKEN_LEN: usize = 16;

/// Who is calling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The platform's account system: imports, consents, erasures, policy.
    Admin,
    /// Ad serving: asks which audiences an account is in.
    Serving,
    /// Privacy and compliance: audits and reports.
    Compliance,
}

impl Role {
    pub const ALL: [Role; 3] = [Self::Admin, Self::Serving, Self::Compliance];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Serving => "serving",
            Self::Compliance => "compliance",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// The environment variable that gives this role's token.
    pub const fn env_var(self) -> &'static str {
        match self {
            Self::Admin => "TAILOR_ADMIN_TOKEN",
            Self::Serving => "TAILOR_SERVING_TOKEN",
            Self::Compliance => "TAILOR_COMPLIANCE_TOKEN",
        }
    }

    /// The meta entry holding the SHA-256 of this role's token.
    pub const fn meta_name(self) -> &'static str {
        match self {
            Self::Admin => "token.admin.sha256",
            Self::Serving => "token.serving.sha256",
            Self::Compliance => "token.compliance.sha256",
        }
    }

    const fn slot(self) -> usize {
        match self {
            Self::Admin => 0,
            Self::Serving => 1,
            Self::Compliance => 2,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The SHA-256 of every role's token.
#[derive(Clone)]
pub struct Tokens {
    hashes: [[u8; 32]; 3],
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tokens(<hashes>)")
    }
}

fn sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    /// Tokens from their plain values (admin, serving, compliance).
    pub fn from_plain(admin: &str, serving: &str, compliance: &str) -> Result<Self, ServerError> {
        let tokens = Self {
            hashes: [sha256(admin), sha256(serving), sha256(compliance)],
        };
        tokens.check_distinct()?;
        Ok(tokens)
    }

    fn check_distinct(&self) -> Result<(), ServerError> {
        for (i, first) in Role::ALL.iter().enumerate() {
            for second in &Role::ALL[i + 1..] {
                if bool::from(self.hashes[first.slot()].ct_eq(&self.hashes[second.slot()])) {
                    return Err(ServerError::SharedToken {
                        first: first.as_str(),
                        second: second.as_str(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The role of a presented token, if it is one of the three.
    pub fn role_of(&self, presented: &str) -> Option<Role> {
        let presented = sha256(presented);
        // Every role is compared, whatever matched first, so the time taken does not depend
        // on which (if any) hash is equal.
        let matches = Role::ALL.map(|role| bool::from(self.hashes[role.slot()].ct_eq(&presented)));
        Role::ALL
            .into_iter()
            .zip(matches)
            .find(|(_, m)| *m)
            .map(|(role, _)| role)
    }
}

/// Where a role's token came from at start.
#[derive(Clone)]
pub enum TokenOrigin {
    /// Its environment variable.
    Environment,
    /// Its hash was already in the store.
    Stored,
    /// Generated now: the token, to show once.
    Generated(Zeroizing<String>),
}

impl fmt::Debug for TokenOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Environment => "Environment",
            Self::Stored => "Stored",
            Self::Generated(_) => "Generated(<token>)",
        })
    }
}

/// Resolves every role's token: from the environment, else the stored hash, else a new one
/// (whose hash is stored before it is returned).
pub async fn bootstrap(
    store: &dyn Store,
    env: &EnvTokens,
) -> Result<(Tokens, Vec<(Role, TokenOrigin)>), ServerError> {
    let mut hashes = [[0u8; 32]; 3];
    let mut origins = Vec::with_capacity(3);
    for role in Role::ALL {
        let (hash, origin) = match env.get(role) {
            Some(token) if token.len() < MIN_TOKEN_LEN => {
                return Err(ServerError::WeakToken {
                    var: role.env_var(),
                });
            }
            Some(token) => (sha256(token), TokenOrigin::Environment),
            None => match store.meta(role.meta_name()).await? {
                Some(stored) => {
                    let hash = <[u8; 32]>::try_from(stored.as_slice()).map_err(|_| {
                        ServerError::CorruptTokenHash {
                            role: role.as_str(),
                        }
                    })?;
                    (hash, TokenOrigin::Stored)
                }
                None => {
                    let token = random_token()?;
                    let hash = sha256(&token);
                    store.set_meta(role.meta_name(), &hash).await?;
                    (hash, TokenOrigin::Generated(token))
                }
            },
        };
        hashes[role.slot()] = hash;
        origins.push((role, origin));
    }
    let tokens = Tokens { hashes };
    tokens.check_distinct()?;
    Ok((tokens, origins))
}

/// Replaces a role's stored token with a new random one and returns it (to show once). A
/// running server keeps the token it read at start until it is restarted; a role whose token
/// is set in the environment keeps using that one.
pub async fn reset(store: &dyn Store, role: Role) -> Result<Zeroizing<String>, ServerError> {
    let token = random_token()?;
    store.set_meta(role.meta_name(), &sha256(&token)).await?;
    Ok(token)
}
