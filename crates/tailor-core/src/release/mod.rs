//! The one release function: every number about an audience that an advertiser can see is
//! produced here, by [`release`], and nowhere else.
//!
//! A member count is released with ε-differential privacy. Discrete Laplace noise
//! ([`sample_discrete_laplace`]) is drawn from a seed that the caller derives, with the platform's
//! noise key, from the audience's canonical query and data epoch ([`noise_seed`]), so that asking
//! the same question of the same data gives the same answer instead of a fresh draw to average
//! away. The minimum-size threshold is applied to the noisy value and the result is rounded to two
//! significant digits; both are post-processing and cost no privacy. Each release spends ε from the
//! legal entity's budget over a rolling window, which [`budget_admits`] checks before a number is
//! released. This module must never read a clock, draw ambient randomness or use floating point on
//! the noise path (the seed and the time are passed in), and no other code may turn a member count
//! into something an advertiser sees.

mod budget;
mod query;
mod sampler;

use std::fmt;
use std::str::FromStr;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng as _;
use serde::Serialize;

pub use budget::budget_admits;
pub use query::{KeySetDigest, NoiseKey, NoiseSeed, QueryDigest, QueryOp, UploadKeys, noise_seed};
pub use sampler::sample_discrete_laplace;

const MICROS_PER_UNIT: u64 = 1_000_000;
const MAX_MICROS: u64 = 1_000 * MICROS_PER_UNIT;
const MAX_DECIMALS: usize = 6;

/// ε, or a budget of ε, in millionths so that sums and comparisons are exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Epsilon(u64);

impl Epsilon {
    /// ε from millionths: `from_micros(50_000)` is 0.05. Zero is a valid budget amount; as the ε
    /// of a release it means infinite noise, and nothing is released.
    pub const fn from_micros(micros: u64) -> Self {
        Self(micros)
    }

    /// ε in millionths.
    pub const fn micros(self) -> u64 {
        self.0
    }

    /// Parses a decimal such as "0.05", "1", "0.000001": > 0, at most 6 decimals, at most 1000.
    ///
    /// Only digits with an optional single `.` between digits are accepted: no sign, exponent,
    /// surrounding space, or a seventh decimal even when it is zero.
    pub fn parse(text: &str) -> Result<Self, EpsilonError> {
        if text.is_empty() {
            return Err(EpsilonError::new(EpsilonErrorKind::Empty));
        }
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let has_point = whole.len() < text.len();
        let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || (has_point && !digits(fraction)) {
            return Err(EpsilonError::new(EpsilonErrorKind::Malformed));
        }
        if fraction.len() > MAX_DECIMALS {
            return Err(EpsilonError::new(EpsilonErrorKind::TooPrecise));
        }
        let too_large = EpsilonError::new(EpsilonErrorKind::TooLarge);
        let mut micros = 0u64;
        for b in whole.bytes() {
            micros = micros * 10 + u64::from(b - b'0');
            // Stopping here keeps an arbitrarily long run of digits from overflowing.
            if micros > MAX_MICROS / MICROS_PER_UNIT {
                return Err(too_large);
            }
        }
        micros *= MICROS_PER_UNIT;
        let mut scale = MICROS_PER_UNIT;
        for b in fraction.bytes() {
            scale /= 10;
            micros += u64::from(b - b'0') * scale;
        }
        if micros == 0 {
            return Err(EpsilonError::new(EpsilonErrorKind::Zero));
        }
        if micros > MAX_MICROS {
            return Err(too_large);
        }
        Ok(Self(micros))
    }

    /// The sum, or `None` on overflow.
    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(Self)
    }
}

impl fmt::Display for Epsilon {
    /// The shortest decimal: "0.05", "0.5", "1".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / MICROS_PER_UNIT;
        let mut fraction = self.0 % MICROS_PER_UNIT;
        if fraction == 0 {
            return write!(f, "{whole}");
        }
        let mut width = MAX_DECIMALS;
        while fraction.is_multiple_of(10) {
            fraction /= 10;
            width -= 1;
        }
        write!(f, "{whole}.{fraction:0width$}")
    }
}

impl FromStr for Epsilon {
    type Err = EpsilonError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// Why a text is not an ε.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpsilonError {
    kind: EpsilonErrorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EpsilonErrorKind {
    Empty,
    Malformed,
    TooPrecise,
    Zero,
    TooLarge,
}

impl EpsilonError {
    fn new(kind: EpsilonErrorKind) -> Self {
        Self { kind }
    }
}

impl fmt::Display for EpsilonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            EpsilonErrorKind::Empty => "epsilon is empty",
            EpsilonErrorKind::Malformed => "epsilon must be a plain decimal number such as 0.05",
            EpsilonErrorKind::TooPrecise => "epsilon has more than 6 decimal places",
            EpsilonErrorKind::Zero => "epsilon must be greater than 0",
            EpsilonErrorKind::TooLarge => "epsilon must be at most 1000",
        })
    }
}

impl std::error::Error for EpsilonError {}

/// How noise is added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Noise {
    /// Discrete Laplace noise with scale 1/ε: each release is ε-differentially private.
    DiscreteLaplace,
    /// No noise: threshold and rounding only, which protects nobody against an advertiser who
    /// compares two audiences that differ by one person. Only for tests and demonstrations.
    DangerousOff,
}

/// How sizes are released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReleaseConfig {
    /// Below this many members, counted after noise, the answer is only "below threshold".
    pub min_size: u64,
    /// The ε one release spends.
    pub epsilon: Epsilon,
    /// The ε a legal entity may spend within one rolling period.
    pub budget: Epsilon,
    /// The length of the rolling window, in days of 24 hours.
    pub period_days: u32,
    /// How noise is added.
    pub noise: Noise,
    /// How long the answer to a question stands after the audience changed only by other
    /// people's choices (consent, expiry, erasure), before a fresh one is drawn and charged.
    pub refresh_hours: u32,
}

impl Default for ReleaseConfig {
    fn default() -> Self {
        Self {
            min_size: 100,
            epsilon: Epsilon::from_micros(50_000),
            budget: Epsilon::from_micros(500_000),
            period_days: 30,
            noise: Noise::DiscreteLaplace,
            refresh_hours: 24,
        }
    }
}

impl ReleaseConfig {
    /// No noise: only for tests and demonstrations that show why noise is needed.
    pub fn dangerous_noise_free(min_size: u64) -> Self {
        Self {
            min_size,
            noise: Noise::DangerousOff,
            ..Self::default()
        }
    }

    /// The rolling window: `period_days` times 24 hours.
    pub fn period(&self) -> jiff::SignedDuration {
        jiff::SignedDuration::from_hours(i64::from(self.period_days) * 24)
    }

    /// How long an answer stands against changes no advertiser made: `refresh_hours`.
    pub fn refresh(&self) -> jiff::SignedDuration {
        jiff::SignedDuration::from_hours(i64::from(self.refresh_hours))
    }
}

/// A size as an advertiser may see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum ReleasedSize {
    /// Too few members, after noise, to say anything more.
    BelowThreshold { below_threshold: bool },
    /// The noisy size, rounded to two significant digits.
    Approximate { approximate: u64 },
    /// The entity's privacy budget is spent until then; no new number can be released.
    Unavailable {
        #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
        unavailable_until: jiff::Timestamp,
    },
}

impl ReleasedSize {
    const BELOW_THRESHOLD: Self = Self::BelowThreshold {
        below_threshold: true,
    };

    /// Whether an audience of this released size can be targeted.
    pub fn targetable(self) -> bool {
        matches!(self, Self::Approximate { .. })
    }
}

/// Releases an audience's member count (distinct accounts, the true value).
///
/// Draws Z from the discrete Laplace distribution with scale 1/ε (exact integer sampling, see
/// [`sample_discrete_laplace`]) from a ChaCha20 generator seeded with `seed`, and forms the
/// noisy count `count + Z`, saturating at `u64::MAX`. The rest is post-processing: a noisy
/// count below `min_size` (at least 1) is only "below threshold", any other is rounded to two
/// significant digits, half up. With [`Noise::DangerousOff`], Z is 0. With ε = 0, the limit of
/// infinite noise, the answer is always "below threshold": it says nothing about the count.
///
/// The budget is not checked here: callers ask [`budget_admits`] first and record the charge.
pub fn release(count: u64, config: &ReleaseConfig, seed: &NoiseSeed) -> ReleasedSize {
    let noise = match config.noise {
        Noise::DangerousOff => 0,
        Noise::DiscreteLaplace if config.epsilon.micros() == 0 => {
            return ReleasedSize::BELOW_THRESHOLD;
        }
        Noise::DiscreteLaplace => {
            let mut rng = ChaCha20Rng::from_seed(*seed.as_bytes());
            sample_discrete_laplace(config.epsilon, &mut rng)
        }
    };
    let noisy = i128::from(count) + i128::from(noise);
    if noisy < i128::from(config.min_size.max(1)) {
        return ReleasedSize::BELOW_THRESHOLD;
    }
    ReleasedSize::Approximate {
        approximate: round_two_significant(u64::try_from(noisy).unwrap_or(u64::MAX)),
    }
}

/// Rounds half up to two significant digits; values below 100 are kept as they are.
fn round_two_significant(value: u64) -> u64 {
    // In u128, because `value + scale / 2` can pass `u64::MAX`; the rounded result cannot
    // (u64::MAX is 1.8e19, which rounds down to 18e18), so the conversion back never saturates.
    let value = u128::from(value);
    let mut scale = 1u128;
    while value / scale >= 100 {
        scale *= 10;
    }
    let rounded = (value + scale / 2) / scale * scale;
    u64::try_from(rounded.max(scale)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_and_rounding_without_noise() {
        let config = ReleaseConfig::dangerous_noise_free(100);
        let seed = NoiseSeed::from_bytes([0; 32]);
        assert!(!release(0, &config, &seed).targetable());
        assert!(!release(99, &config, &seed).targetable());
        let cases = [
            (100, 100),
            (104, 100),
            (105, 110),
            (149, 150),
            (999, 1000),
            (1234, 1200),
            (1250, 1300),
            (98_765, 99_000),
            (1_234_567, 1_200_000),
        ];
        for (members, approximate) in cases {
            assert_eq!(
                release(members, &config, &seed),
                ReleasedSize::Approximate { approximate },
                "{members}"
            );
        }
        let tiny = ReleaseConfig::dangerous_noise_free(1);
        assert_eq!(
            release(7, &tiny, &seed),
            ReleasedSize::Approximate { approximate: 7 }
        );
        let zero = ReleaseConfig::dangerous_noise_free(0);
        assert!(!release(0, &zero, &seed).targetable());
        assert_eq!(
            serde_json::to_string(&release(5, &config, &seed)).unwrap(),
            r#"{"below_threshold":true}"#
        );
    }

    #[test]
    fn rounding_near_the_top_of_u64_does_not_overflow() {
        assert_eq!(round_two_significant(u64::MAX), 18_000_000_000_000_000_000);
        assert_eq!(
            round_two_significant(17_500_000_000_000_000_000),
            18_000_000_000_000_000_000
        );
        assert_eq!(round_two_significant(1), 1);
    }

    #[test]
    fn zero_epsilon_releases_nothing() {
        let config = ReleaseConfig {
            epsilon: Epsilon::from_micros(0),
            ..ReleaseConfig::default()
        };
        for count in [0, 100, 1_000_000, u64::MAX] {
            assert!(!release(count, &config, &NoiseSeed::from_bytes([3; 32])).targetable());
        }
    }

    #[test]
    fn noisy_counts_saturate() {
        let config = ReleaseConfig {
            epsilon: Epsilon::from_micros(1),
            ..ReleaseConfig::default()
        };
        for byte in 0..32 {
            let size = release(u64::MAX, &config, &NoiseSeed::from_bytes([byte; 32]));
            assert!(matches!(size, ReleasedSize::Approximate { .. }), "{size:?}");
        }
    }
}
