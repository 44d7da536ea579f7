//! The release mechanism: ε parsing, the sampler's distribution, the threshold on noisy counts,
//! seeds and canonical queries, the budget, and the JSON an advertiser sees.

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use tailor_core::Sha256Digest;
use tailor_core::release::{
    Epsilon, KeySetDigest, Noise, NoiseKey, QueryDigest, QueryOp, ReleaseConfig, ReleasedSize,
    UploadKeys, budget_admits, noise_seed, release, sample_discrete_laplace,
};

fn key(byte: u8) -> NoiseKey {
    NoiseKey::from_secret(&[byte; 32]).unwrap()
}

fn eps(text: &str) -> Epsilon {
    Epsilon::parse(text).unwrap()
}

fn keys_of(values: &[u32]) -> UploadKeys {
    let mut keys = UploadKeys::new();
    for value in values {
        keys.push(&Sha256Digest::of(&value.to_be_bytes()));
    }
    keys
}

fn query_of(values: &[u32], key: &NoiseKey) -> QueryDigest {
    QueryDigest::EMPTY.then(QueryOp::Add, &keys_of(values).digest(key), key)
}

#[test]
fn epsilon_parse_table() {
    let good = [
        ("0.05", 50_000, "0.05"),
        ("0.5", 500_000, "0.5"),
        ("1", 1_000_000, "1"),
        ("1.0", 1_000_000, "1"),
        ("0.000001", 1, "0.000001"),
        ("0.100000", 100_000, "0.1"),
        ("2.25", 2_250_000, "2.25"),
        ("007", 7_000_000, "7"),
        ("1000", 1_000_000_000, "1000"),
        ("1000.000000", 1_000_000_000, "1000"),
        ("999.999999", 999_999_999, "999.999999"),
    ];
    for (text, micros, display) in good {
        let epsilon = Epsilon::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(epsilon.micros(), micros, "{text}");
        assert_eq!(epsilon.to_string(), display, "{text}");
        assert_eq!(text.parse::<Epsilon>(), Ok(epsilon), "{text}");
        assert_eq!(Epsilon::parse(display), Ok(epsilon), "{display}");
    }
    let bad = [
        ("", "epsilon is empty"),
        ("0", "epsilon must be greater than 0"),
        ("0.000000", "epsilon must be greater than 0"),
        ("0.0000001", "epsilon has more than 6 decimal places"),
        ("0.0500000", "epsilon has more than 6 decimal places"),
        ("1000.000001", "epsilon must be at most 1000"),
        ("1001", "epsilon must be at most 1000"),
        ("99999999999999999999999999", "epsilon must be at most 1000"),
        (
            "-0.05",
            "epsilon must be a plain decimal number such as 0.05",
        ),
        (
            "+0.05",
            "epsilon must be a plain decimal number such as 0.05",
        ),
        (".05", "epsilon must be a plain decimal number such as 0.05"),
        ("1.", "epsilon must be a plain decimal number such as 0.05"),
        (
            " 0.05",
            "epsilon must be a plain decimal number such as 0.05",
        ),
        (
            "0.05 ",
            "epsilon must be a plain decimal number such as 0.05",
        ),
        (
            "0,05",
            "epsilon must be a plain decimal number such as 0.05",
        ),
        (
            "1e-2",
            "epsilon must be a plain decimal number such as 0.05",
        ),
        (
            "1.2.3",
            "epsilon must be a plain decimal number such as 0.05",
        ),
        (
            "０.５",
            "epsilon must be a plain decimal number such as 0.05",
        ),
        ("NaN", "epsilon must be a plain decimal number such as 0.05"),
    ];
    for (text, message) in bad {
        let error = Epsilon::parse(text).unwrap_err();
        assert_eq!(error.to_string(), message, "{text:?}");
        assert_eq!(text.parse::<Epsilon>(), Err(error), "{text:?}");
    }
}

#[test]
fn epsilon_arithmetic_is_exact() {
    let tenth = eps("0.1");
    let mut sum = Epsilon::default();
    for _ in 0..10 {
        sum = sum.checked_add(tenth).unwrap();
    }
    assert_eq!(sum, eps("1"));
    assert!(eps("0.05") < eps("0.5"));
    assert_eq!(
        Epsilon::from_micros(u64::MAX).checked_add(Epsilon::from_micros(1)),
        None
    );
    let config = ReleaseConfig::default();
    assert_eq!(config.epsilon, eps("0.05"));
    assert_eq!(config.budget, eps("0.5"));
    assert_eq!(config.period(), SignedDuration::from_hours(30 * 24));
    let free = ReleaseConfig::dangerous_noise_free(7);
    assert_eq!((free.min_size, free.noise), (7, Noise::DangerousOff));
    assert_eq!((free.epsilon, free.budget), (config.epsilon, config.budget));
}

/// The discrete Laplace pmf P(z) = (1 - q)/(1 + q) q^|z| with q = e^-ε.
fn pmf(epsilon: f64, z: i64) -> f64 {
    let q = (-epsilon).exp();
    (1.0 - q) / (1.0 + q) * q.powf(z.unsigned_abs() as f64)
}

/// P(Z > m) = q^(m+1) / (1 + q).
fn upper_tail(epsilon: f64, m: i64) -> f64 {
    let q = (-epsilon).exp();
    q.powf((m + 1) as f64) / (1.0 + q)
}

/// Pearson's statistic of `draws` against the discrete Laplace pmf at `epsilon`, with every
/// bin expected to hold at least 5: z in -m..=m one bin each, plus one bin per tail. Returns
/// the statistic and its degrees of freedom.
fn chi_square(draws: &[i64], epsilon: f64) -> (f64, f64) {
    let n = draws.len() as f64;
    let mut m = 0;
    while n * pmf(epsilon, m + 1) >= 5.0 && n * upper_tail(epsilon, m + 1) >= 5.0 {
        m += 1;
    }
    // Bin 0 is z < -m, bin 2m + 2 is z > m.
    let mut observed = vec![0u64; 2 * m as usize + 3];
    for &z in draws {
        observed[(z.clamp(-m - 1, m + 1) + m + 1) as usize] += 1;
    }
    let mut statistic = 0.0;
    for (bin, &count) in observed.iter().enumerate() {
        let z = bin as i64 - m - 1;
        let p = if z.abs() > m {
            upper_tail(epsilon, m)
        } else {
            pmf(epsilon, z)
        };
        let expected = n * p;
        assert!(expected >= 5.0, "bin {z} expects {expected}");
        statistic += (count as f64 - expected).powi(2) / expected;
    }
    (statistic, (observed.len() - 1) as f64)
}

/// The 0.999 quantile of the chi-square distribution (Wilson–Hilferty approximation).
fn chi_square_999(degrees: f64) -> f64 {
    const Z_999: f64 = 3.090_232_306;
    let h = 2.0 / (9.0 * degrees);
    degrees * (1.0 - h + Z_999 * h.sqrt()).powi(3)
}

fn draws(epsilon: Epsilon, seed: u64, n: usize) -> Vec<i64> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| sample_discrete_laplace(epsilon, &mut rng))
        .collect()
}

#[test]
fn wilson_hilferty_is_close_to_the_tabulated_quantiles() {
    // From standard tables.
    for (degrees, quantile) in [(10.0, 29.588), (50.0, 86.661), (100.0, 149.449)] {
        let approximate = chi_square_999(degrees);
        assert!(
            (approximate - quantile).abs() / quantile < 0.01,
            "{degrees}: {approximate}"
        );
    }
}

#[test]
fn sampler_fits_the_discrete_laplace_pmf() {
    for (text, seed) in [("0.05", 1), ("0.5", 2), ("1", 3), ("2", 4)] {
        let epsilon = eps(text);
        let e = epsilon.micros() as f64 / 1e6;
        let draws = draws(epsilon, seed, 200_000);
        let (statistic, degrees) = chi_square(&draws, e);
        let critical = chi_square_999(degrees);
        assert!(
            statistic < critical,
            "ε = {text}: χ² = {statistic:.1} on {degrees} degrees, critical {critical:.1}"
        );

        let n = draws.len() as f64;
        let q = (-e).exp();
        let variance = 2.0 * q / (1.0 - q).powi(2);
        let mean = draws.iter().map(|&z| z as f64).sum::<f64>() / n;
        let sample_variance = draws
            .iter()
            .map(|&z| (z as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        // Five standard errors of the mean; the variance to 3% (about six standard errors, as
        // the kurtosis of a Laplace distribution is 6).
        assert!(
            mean.abs() < 5.0 * (variance / n).sqrt(),
            "ε = {text}: mean {mean}"
        );
        assert!(
            (sample_variance / variance - 1.0).abs() < 0.03,
            "ε = {text}: variance {sample_variance}, expected {variance}"
        );
    }
}

#[test]
fn chi_square_rejects_draws_at_the_wrong_epsilon() {
    // Noise drawn at 2ε is half as wide: a test that passed it would not be testing anything.
    // A tenth of the draws already fails it by a factor of ten or more.
    for (text, doubled) in [("0.05", "0.1"), ("0.5", "1"), ("1", "2"), ("2", "4")] {
        let e = eps(text).micros() as f64 / 1e6;
        let (statistic, degrees) = chi_square(&draws(eps(doubled), 5, 20_000), e);
        let critical = chi_square_999(degrees);
        assert!(
            statistic > critical,
            "ε = {text}: χ² = {statistic:.1} on {degrees} degrees, critical {critical:.1}"
        );
    }
}

/// The share of `rounds` releases of `count`, each with its own seed, that are below threshold.
fn below_threshold_rate(count: u64, config: &ReleaseConfig, rounds: u64) -> f64 {
    let key = key(4);
    let query = query_of(&[1, 2, 3], &key);
    let below = (0..rounds)
        .filter(|round| {
            let seed = noise_seed(&key, "entity", "audience", &query, count << 32 | round);
            !release(count, config, &seed).targetable()
        })
        .count();
    below as f64 / rounds as f64
}

#[test]
fn the_threshold_on_noisy_counts_has_no_cliff() {
    let config = ReleaseConfig::default();
    let rates: Vec<(u64, f64)> = (80..=120)
        .map(|count| (count, below_threshold_rate(count, &config, 4000)))
        .collect();
    for pair in rates.windows(2) {
        let ((_, before), (count, rate)) = (pair[0], pair[1]);
        assert!(rate <= before + 0.03, "{count}: {rate} after {before}");
    }
    let rate = |count: u64| rates.iter().find(|(c, _)| *c == count).unwrap().1;
    assert!(
        (rate(100) - rate(99)).abs() < 0.05,
        "{} → {}",
        rate(99),
        rate(100)
    );
    // Noise at ε = 0.05 has a standard deviation of about 28: 20 members either side of the
    // threshold are still often on the other side.
    assert!(
        rate(80) < 0.9 && rate(120) > 0.1,
        "{} … {}",
        rate(80),
        rate(120)
    );
}

#[test]
fn without_noise_the_threshold_is_a_cliff() {
    let config = ReleaseConfig::dangerous_noise_free(100);
    for count in 80..=120 {
        let expected = if count < 100 { 1.0 } else { 0.0 };
        assert_eq!(
            below_threshold_rate(count, &config, 50),
            expected,
            "{count}"
        );
    }
}

#[test]
fn the_same_seed_gives_the_same_answer() {
    let key = key(5);
    let query = query_of(&[1, 2], &key);
    let config = ReleaseConfig::default();
    let answers: Vec<ReleasedSize> = (0..200)
        .map(|epoch| {
            let first = release(5000, &config, &noise_seed(&key, "e", "a", &query, epoch));
            let again = release(5000, &config, &noise_seed(&key, "e", "a", &query, epoch));
            assert_eq!(first, again, "{epoch}");
            first
        })
        .collect();
    // And the noise is real: 200 epochs do not all give one answer.
    assert!(answers.iter().any(|a| *a != answers[0]));
}

#[test]
fn seeds_differ_in_every_field() {
    let key = key(6);
    let query = query_of(&[1], &key);
    let base = noise_seed(&key, "entity", "audience", &query, 7);
    let others = [
        noise_seed(&key, "entity2", "audience", &query, 7),
        noise_seed(&key, "entity", "audience2", &query, 7),
        noise_seed(&key, "entity", "audience", &query_of(&[2], &key), 7),
        noise_seed(&key, "entity", "audience", &QueryDigest::EMPTY, 7),
        noise_seed(&key, "entity", "audience", &query, 8),
        noise_seed(&self::key(7), "entity", "audience", &query, 7),
        // The fields are length-prefixed: moving a character between them is a change.
        noise_seed(&key, "entit", "yaudience", &query, 7),
    ];
    for (i, other) in others.iter().enumerate() {
        assert!(*other != base, "{i}");
    }
    assert!(noise_seed(&key, "entity", "audience", &query, 7) == base);
}

#[test]
fn upload_keys_are_a_set() {
    let key = key(8);
    let digest = keys_of(&[1, 2, 3]).digest(&key);
    assert_eq!(keys_of(&[3, 1, 2]).digest(&key), digest);
    assert_eq!(keys_of(&[2, 2, 1, 3, 3, 3, 1]).digest(&key), digest);
    assert_ne!(keys_of(&[1, 2, 3, 4]).digest(&key), digest);
    assert_ne!(keys_of(&[1, 2]).digest(&key), digest);
    assert_ne!(keys_of(&[1, 2, 3]).digest(&self::key(9)), digest);
    assert_ne!(UploadKeys::new().digest(&key), digest);

    let mut keys = keys_of(&[1, 1]);
    assert_eq!(keys.len(), 2);
    assert!(!keys.is_empty() && UploadKeys::new().is_empty());
    keys.push(&Sha256Digest::of(b"x"));
    assert_eq!(format!("{keys:?}"), "UploadKeys { len: 3, .. }");
}

#[test]
fn key_set_parts_combine_as_a_set() {
    let key = key(10);
    let a = keys_of(&[1]).digest(&key);
    let b = keys_of(&[2]).digest(&key);
    let c = keys_of(&[3]).digest(&key);
    let combined = KeySetDigest::combine(&[a, b], &key);
    assert_eq!(KeySetDigest::combine(&[b, a], &key), combined);
    assert_eq!(KeySetDigest::combine(&[b, a, b], &key), combined);
    assert_ne!(KeySetDigest::combine(&[a, b, c], &key), combined);
    assert_ne!(KeySetDigest::combine(&[a], &key), a);
    assert_ne!(KeySetDigest::combine(&[a, b], &self::key(11)), combined);
    assert_eq!(KeySetDigest::from_bytes(*combined.as_bytes()), combined);
}

#[test]
fn queries_chain_jobs() {
    let key = key(12);
    let a = keys_of(&[1, 2]).digest(&key);
    let b = keys_of(&[3]).digest(&key);
    let empty = QueryDigest::EMPTY;
    assert_eq!(empty.as_bytes(), &[0; 32]);

    let then_a = empty.then(QueryOp::Add, &a, &key);
    // Replace ignores history, and is the same question as adding to an empty audience.
    assert_eq!(
        then_a.then(QueryOp::Replace, &b, &key),
        empty.then(QueryOp::Replace, &b, &key)
    );
    assert_eq!(
        empty.then(QueryOp::Replace, &b, &key),
        empty.then(QueryOp::Add, &b, &key)
    );
    // Adding and removing differ; order matters.
    assert_ne!(
        then_a.then(QueryOp::Add, &b, &key),
        then_a.then(QueryOp::Remove, &b, &key)
    );
    let a_then_b = then_a.then(QueryOp::Add, &b, &key);
    let b_then_a = empty
        .then(QueryOp::Add, &b, &key)
        .then(QueryOp::Add, &a, &key);
    assert_ne!(a_then_b, b_then_a);
    assert_ne!(then_a.then(QueryOp::Add, &b, &self::key(13)), a_then_b);
    assert_eq!(QueryDigest::from_bytes(*a_then_b.as_bytes()), a_then_b);
}

#[test]
fn debug_output_reveals_no_secret() {
    let key = key(0xab);
    assert_eq!(format!("{key:?}"), "NoiseKey(<secret>)");
    assert!(NoiseKey::from_secret(&[1; 31]).is_none());
    let query = QueryDigest::from_bytes([0x3f; 32]);
    assert_eq!(format!("{query:?}"), "QueryDigest(3f3f…)");
    let keys = KeySetDigest::from_bytes([0xa2; 32]);
    assert_eq!(format!("{keys:?}"), "KeySetDigest(a2a2…)");
    let seed = noise_seed(&key, "e", "a", &query, 0);
    assert_eq!(format!("{seed:?}"), "NoiseSeed(<secret>)");
}

type Charges = Vec<(Timestamp, Epsilon)>;

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

#[test]
fn budget_table() {
    let now = at("2026-06-01T00:00:00Z");
    let days = |n: i64| SignedDuration::from_hours(24 * n);
    let ago = |n: i64| now - days(n);
    let config = ReleaseConfig::default();
    // (what, the entity's charges, the configuration, the answer)
    type Case = (&'static str, Charges, ReleaseConfig, Result<(), Timestamp>);
    let cases: Vec<Case> = vec![
        ("no history", vec![], config, Ok(())),
        ("fits exactly", vec![(ago(1), eps("0.45"))], config, Ok(())),
        (
            "at the budget",
            vec![(ago(1), eps("0.45")), (ago(2), eps("0.05"))],
            config,
            Err(ago(2) + days(30)),
        ),
        (
            "ten small charges",
            (1..=10).map(|n| (ago(n), eps("0.05"))).collect(),
            config,
            Err(ago(10) + days(30)),
        ),
        (
            "aged out exactly a period ago",
            vec![(ago(30), eps("0.5"))],
            config,
            Ok(()),
        ),
        (
            "one second short of aging out",
            vec![(ago(30) + SignedDuration::from_secs(1), eps("0.5"))],
            config,
            Err(now + SignedDuration::from_secs(1)),
        ),
        (
            "old charges are ignored",
            vec![
                (ago(31), eps("0.5")),
                (ago(400), eps("1000")),
                (ago(3), eps("0.4")),
            ],
            config,
            Ok(()),
        ),
        (
            "the oldest charge is enough",
            vec![
                (ago(5), eps("0.05")),
                (ago(20), eps("0.3")),
                (ago(10), eps("0.2")),
            ],
            config,
            Err(ago(20) + days(30)),
        ),
        (
            "several charges must age out",
            vec![
                (ago(1), eps("0.35")),
                (ago(25), eps("0.1")),
                (ago(20), eps("0.1")),
            ],
            ReleaseConfig {
                epsilon: eps("0.2"),
                ..config
            },
            Err(ago(1) + days(30)),
        ),
        (
            "charges at the same instant",
            vec![
                (ago(9), eps("0.25")),
                (ago(9), eps("0.25")),
                (ago(2), eps("0.05")),
            ],
            config,
            Err(ago(9) + days(30)),
        ),
        (
            "a charge dated in the future counts",
            vec![(now + days(1), eps("0.5"))],
            config,
            Err(now + days(31)),
        ),
        (
            "ε above the budget never fits",
            vec![],
            ReleaseConfig {
                epsilon: eps("0.6"),
                ..config
            },
            Err(now + days(30)),
        ),
        (
            "a zero-day window forgets at once",
            vec![
                (ago(0), eps("0.5")),
                (now - SignedDuration::from_secs(1), eps("0.5")),
            ],
            ReleaseConfig {
                period_days: 0,
                ..config
            },
            Ok(()),
        ),
    ];
    for (name, charges, config, expected) in cases {
        assert_eq!(budget_admits(&charges, now, &config), expected, "{name}");
        let mut reversed = charges.clone();
        reversed.reverse();
        assert_eq!(
            budget_admits(&reversed, now, &config),
            expected,
            "{name}, reversed"
        );
        // The refusal holds until `until` and lifts exactly then.
        if let Err(until) = expected
            && config.epsilon <= config.budget
        {
            let before = until - SignedDuration::from_secs(1);
            assert!(budget_admits(&charges, before, &config).is_err(), "{name}");
            assert_eq!(budget_admits(&charges, until, &config), Ok(()), "{name}");
        }
    }
}

#[test]
fn released_sizes_serialize_untagged() {
    let cases = [
        (
            ReleasedSize::BelowThreshold {
                below_threshold: true,
            },
            r#"{"below_threshold":true}"#,
            false,
        ),
        (
            ReleasedSize::Approximate { approximate: 1200 },
            r#"{"approximate":1200}"#,
            true,
        ),
        (
            ReleasedSize::Unavailable {
                unavailable_until: at("2026-12-01T00:00:00Z"),
            },
            r#"{"unavailable_until":"2026-12-01T00:00:00Z"}"#,
            false,
        ),
    ];
    for (size, json, targetable) in cases {
        assert_eq!(serde_json::to_string(&size).unwrap(), json);
        assert_eq!(size.targetable(), targetable, "{json}");
    }
}

#[test]
fn rounding_table_without_noise() {
    let config = ReleaseConfig::dangerous_noise_free(100);
    let seed = noise_seed(&key(14), "e", "a", &QueryDigest::EMPTY, 0);
    let below = ReleasedSize::BelowThreshold {
        below_threshold: true,
    };
    assert_eq!(release(0, &config, &seed), below);
    assert_eq!(release(99, &config, &seed), below);
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
        (u64::MAX, 18_000_000_000_000_000_000),
    ];
    for (members, approximate) in cases {
        assert_eq!(
            release(members, &config, &seed),
            ReleasedSize::Approximate { approximate },
            "{members}"
        );
    }
    assert_eq!(
        release(7, &ReleaseConfig::dangerous_noise_free(1), &seed),
        ReleasedSize::Approximate { approximate: 7 }
    );
}

/// Whether `value` has at most two significant digits.
fn two_significant(mut value: u64) -> bool {
    while value >= 100 {
        if !value.is_multiple_of(10) {
            return false;
        }
        value /= 10;
    }
    true
}

proptest! {
    #[test]
    fn release_never_panics(
        count in any::<u64>(),
        micros in 1u64..=1_000_000_000,
        min_size in any::<u64>(),
        secret in any::<[u8; 32]>(),
        epoch in any::<u64>(),
    ) {
        let config = ReleaseConfig {
            min_size,
            epsilon: Epsilon::from_micros(micros),
            ..ReleaseConfig::default()
        };
        let key = NoiseKey::from_secret(&secret).unwrap();
        let seed = noise_seed(&key, "e", "a", &QueryDigest::EMPTY, epoch);
        match release(count, &config, &seed) {
            ReleasedSize::Approximate { approximate } => {
                prop_assert!(approximate >= min_size.max(1) / 100 * 95);
                prop_assert!(two_significant(approximate), "{approximate}");
            }
            ReleasedSize::BelowThreshold { below_threshold } => prop_assert!(below_threshold),
            ReleasedSize::Unavailable { .. } => prop_assert!(false, "release never refuses"),
        }
    }

    #[test]
    fn without_noise_releases_are_within_five_percent(
        count in any::<u64>(),
        min_size in 1u64..=1_000_000,
    ) {
        let config = ReleaseConfig::dangerous_noise_free(min_size);
        let seed = noise_seed(&key(15), "e", "a", &QueryDigest::EMPTY, count);
        let size = release(count, &config, &seed);
        if count < min_size {
            prop_assert!(!size.targetable());
        } else {
            let ReleasedSize::Approximate { approximate } = size else {
                return Err(TestCaseError::fail(format!("{count}: {size:?}")));
            };
            prop_assert!(20 * u128::from(approximate.abs_diff(count)) <= u128::from(count));
        }
    }

    #[test]
    fn epsilon_display_parses_back(micros in 1u64..=1_000_000_000) {
        let epsilon = Epsilon::from_micros(micros);
        prop_assert_eq!(Epsilon::parse(&epsilon.to_string()), Ok(epsilon));
    }

    #[test]
    fn epsilon_parse_never_panics(text in "\\PC{0,20}|[0-9.]{0,20}") {
        if let Ok(epsilon) = Epsilon::parse(&text) {
            prop_assert!((1..=1_000_000_000).contains(&epsilon.micros()));
        }
    }
}
