//! The one release function: every number about an audience that an advertiser can see goes
//! through [`release_size`].
//!
//! Today it applies a minimum-size threshold and rounds to two significant digits. The
//! differential-privacy issue replaces its inside with noise, a threshold on the noisy value and
//! a budget; callers do not change, because no other code turns a member count into something
//! an advertiser sees.

use serde::Serialize;

/// How sizes are released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReleaseConfig {
    /// Below this many members, the answer is only "below threshold".
    pub min_size: u64,
}

impl Default for ReleaseConfig {
    fn default() -> Self {
        Self { min_size: 100 }
    }
}

/// A size as an advertiser may see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum ReleasedSize {
    /// Too few members to say anything more.
    BelowThreshold { below_threshold: bool },
    /// The size, rounded.
    Approximate { approximate: u64 },
}

impl ReleasedSize {
    /// Whether an audience of this released size can be targeted.
    pub fn targetable(self) -> bool {
        matches!(self, Self::Approximate { .. })
    }
}

/// Releases an audience's member count: below the threshold nothing but that fact, otherwise
/// the count rounded to two significant digits.
pub fn release_size(members: u64, config: &ReleaseConfig) -> ReleasedSize {
    if members < config.min_size.max(1) {
        return ReleasedSize::BelowThreshold {
            below_threshold: true,
        };
    }
    ReleasedSize::Approximate {
        approximate: round_two_significant(members),
    }
}

fn round_two_significant(value: u64) -> u64 {
    let mut scale = 1u64;
    while value / scale >= 100 {
        scale *= 10;
    }
    // Round half up to the nearest multiple of `scale`.
    let rounded = (value + scale / 2) / scale * scale;
    rounded.max(scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_and_rounding() {
        let config = ReleaseConfig::default();
        assert!(!release_size(0, &config).targetable());
        assert!(!release_size(99, &config).targetable());
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
                release_size(members, &config),
                ReleasedSize::Approximate { approximate },
                "{members}"
            );
        }
        let tiny = ReleaseConfig { min_size: 1 };
        assert_eq!(
            release_size(7, &tiny),
            ReleasedSize::Approximate { approximate: 7 }
        );
        assert_eq!(
            serde_json::to_string(&release_size(5, &config)).unwrap(),
            r#"{"below_threshold":true}"#
        );
    }
}
