//! Releasing audience sizes: the engine's side of `tailor_core::release`.
//!
//! A question about an audience is its canonical query (the key sets its jobs uploaded and
//! their operations) at its data epoch (moved by every change to its members). The answer to a
//! question is drawn once, from noise seeded by a keyed PRF of (entity, audience, query,
//! epoch), recorded in the store's ledger and charged to the legal entity's budget; asking
//! again reads the ledger for free. A question whose audience changed only by other people's
//! choices (consent, expiry, erasure) keeps its last answer for `refresh` before a fresh one
//! is drawn, so that neither churn nor polling spends an advertiser's budget. When the budget
//! is spent, the size reads `unavailable_until` and the audience keeps the targeting decision
//! of its latest answer to the same query (a new query is not targetable until answered).
//!
//! It must never hand out a number that did not come out of `tailor_core::release::release`,
//! and never log anything about an audience beyond its public id and the ε spent.

use tailor_core::release::{
    NoiseKey, QueryDigest, ReleaseConfig, ReleasedSize, noise_seed, release,
};
use tailor_store::{Audience, Charged, NewRelease, Release};

use crate::{EngineError, Inner};

/// The label the noise key is derived under from the platform secret.
const NOISE_KEY_LABEL: &[u8] = b"release noise";

/// The release settings and the key the noise is drawn under.
pub(crate) struct Releaser {
    pub(crate) config: ReleaseConfig,
    pub(crate) key: NoiseKey,
}

impl Releaser {
    pub(crate) fn new(index_key: &tailor_core::IndexKey, config: ReleaseConfig) -> Self {
        let secret = index_key.derive(NOISE_KEY_LABEL);
        Self {
            config,
            key: NoiseKey::from_secret(&*secret).expect("a derived key has 32 bytes"),
        }
    }
}

/// A size as its advertiser may see it, and whether the audience may be targeted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Released {
    pub(crate) size: ReleasedSize,
    pub(crate) targetable: bool,
}

impl Released {
    fn of(release: &Release) -> Self {
        Self {
            size: release.size,
            targetable: release.size.targetable(),
        }
    }
}

impl Inner {
    /// The released size of `audience` (as read from the store just now), drawing and
    /// charging a new answer when its question has none.
    pub(crate) async fn release(&self, audience: &Audience) -> Result<Released, EngineError> {
        // Nothing uploaded yet: there is nothing to say, and saying so reveals nothing.
        if audience.query == QueryDigest::EMPTY {
            return Ok(Released {
                size: ReleasedSize::BelowThreshold {
                    below_threshold: true,
                },
                targetable: false,
            });
        }
        let now = self.clock.now();
        let config = &self.releaser.config;
        if let Some(latest) = &audience.released
            && (latest.epoch == audience.epoch || now.duration_since(latest.at) < config.refresh())
        {
            return Ok(Released::of(latest));
        }
        // The audience by its number (never reused), not its random public id: the same
        // history gives the same noise, which keeps tests and replays reproducible.
        let seed = noise_seed(
            &self.releaser.key,
            &audience.entity,
            &audience.no.to_string(),
            &audience.query,
            audience.epoch,
        );
        let new = Release {
            audience_no: audience.no,
            query: audience.query,
            epoch: audience.epoch,
            size: release(audience.members, config, &seed),
            epsilon: config.epsilon,
            at: now,
        };
        let charged = self
            .store
            .charge_release(
                NewRelease {
                    entity: audience.entity.clone(),
                    advertiser_no: audience.advertiser_no,
                    release: new,
                },
                config,
            )
            .await?;
        Ok(match charged {
            Charged::Recorded(release) => {
                tracing::info!(
                    audience = %audience.audience_id,
                    epsilon = %release.epsilon,
                    "size released"
                );
                Released::of(&release)
            }
            Charged::Cached(release) => Released::of(&release),
            Charged::Refused { until } => {
                tracing::info!(
                    audience = %audience.audience_id,
                    until = %until,
                    "size not released: the entity's privacy budget is spent"
                );
                Released {
                    size: ReleasedSize::Unavailable {
                        unavailable_until: until,
                    },
                    targetable: audience.released.is_some_and(|r| r.size.targetable()),
                }
            }
        })
    }
}
