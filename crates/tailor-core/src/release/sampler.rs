//! Exact sampling from the discrete Laplace distribution, with integers only.
//!
//! This follows Canonne, Kamath and Steinke, "The Discrete Gaussian for Differential Privacy"
//! (2020): Algorithm 1 draws Bernoulli(exp(-γ)) for a rational γ from Bernoulli(n/d) draws, and
//! Algorithm 2 builds the discrete Laplace distribution from it. Every probability is a ratio of
//! integers and every draw is a uniform integer by rejection, so the output has exactly the
//! intended distribution. This file must never use floating point, draw from anything but the
//! generator it is handed, reduce a random number modulo a bound without rejection, or cap a
//! value silently.

use rand_core::RngCore;

use super::Epsilon;

const MICROS_PER_UNIT: u64 = 1_000_000;

/// Draws Z with P(Z = z) ∝ exp(-ε|z|), for ε = `epsilon.micros()` / 1 000 000 taken as an exact
/// fraction (reduced by their gcd).
///
/// Adding Z to a count, which one person changes by at most 1, makes it ε-differentially
/// private. The variance is 2e^-ε / (1 - e^-ε)², about 2/ε² for small ε (800 at ε = 0.05).
///
/// # Panics
///
/// If ε is zero: there is no such distribution. [`release`](super::release) never asks for one.
pub fn sample_discrete_laplace<R: RngCore + ?Sized>(epsilon: Epsilon, rng: &mut R) -> i64 {
    let micros = epsilon.micros();
    assert!(micros > 0, "the discrete Laplace distribution needs ε > 0");
    let divisor = gcd(micros, MICROS_PER_UNIT);
    // ε = s / t, so the scale is t / s (CKS Algorithm 2's parameters).
    let s = micros / divisor;
    let t = MICROS_PER_UNIT / divisor;
    loop {
        // X = U + t·V is geometric with parameter exp(-1/t): U is its remainder modulo t,
        // accepted with probability exp(-U/t), and V its quotient.
        let u = uniform_below(rng, t);
        if !bernoulli_exp(rng, u, t) {
            continue;
        }
        let mut v = 0u64;
        // Each step continues with probability 1/e, so `v` stays tiny; overflowing it would
        // take 2^64 iterations, far longer than any process lives.
        while bernoulli_exp(rng, 1, 1) {
            v += 1;
        }
        let x = u128::from(u) + u128::from(t) * u128::from(v);
        // Y = ⌊X / s⌋ is geometric with parameter exp(-s/t) = exp(-ε).
        let y = x / u128::from(s);
        let negative = rng.next_u64() & 1 == 1;
        // Without this rejection, 0 would be drawn twice as often as it should.
        if negative && y == 0 {
            continue;
        }
        // |Z| > i64::MAX needs V > 9e12, which happens with probability below exp(-9e12);
        // saturating in that case cannot be observed.
        let y = i64::try_from(y).unwrap_or(i64::MAX);
        return if negative { -y } else { y };
    }
}

/// Bernoulli(exp(-num/den)) (CKS Algorithm 1). `den` must be positive.
fn bernoulli_exp<R: RngCore + ?Sized>(rng: &mut R, num: u64, den: u64) -> bool {
    // exp(-γ) = exp(-1)^⌊γ⌋ · exp(-(γ - ⌊γ⌋)), each factor at most 1.
    for _ in 0..num / den {
        if !bernoulli_exp_at_most_one(rng, 1, 1) {
            return false;
        }
    }
    bernoulli_exp_at_most_one(rng, num % den, den)
}

/// Bernoulli(exp(-γ)) for γ = num/den in [0, 1]: draw A_k ~ Bernoulli(γ/k) for k = 1, 2, ...
/// until one is 0, and return whether that k is odd.
fn bernoulli_exp_at_most_one<R: RngCore + ?Sized>(rng: &mut R, num: u64, den: u64) -> bool {
    debug_assert!(num <= den && den > 0);
    let mut k = 1u64;
    // den·k in u128 cannot overflow; k itself passes 20 with probability below 1/20!.
    while bernoulli_ratio(rng, num, u128::from(den) * u128::from(k)) {
        k += 1;
    }
    k % 2 == 1
}

/// Bernoulli(num/den) for 0 <= num <= den, den > 0.
fn bernoulli_ratio<R: RngCore + ?Sized>(rng: &mut R, num: u64, den: u128) -> bool {
    if num == 0 {
        return false;
    }
    match u64::try_from(den) {
        Ok(den) => uniform_below(rng, den) < num,
        Err(_) => uniform_below_u128(rng, den) < u128::from(num),
    }
}

/// A uniform integer in [0, n), n > 0, by Lemire's multiply-and-reject: of the 2^64 values of
/// a draw, the 2^64 mod n that would favour some outputs are rejected.
fn uniform_below<R: RngCore + ?Sized>(rng: &mut R, n: u64) -> u64 {
    debug_assert!(n > 0);
    let rejected = n.wrapping_neg() % n;
    loop {
        let product = u128::from(rng.next_u64()) * u128::from(n);
        // The low half decides acceptance and the high half is the result: both truncations
        // are the method.
        let (low, high) = (product as u64, (product >> 64) as u64);
        if low >= rejected {
            return high;
        }
    }
}

/// A uniform integer in [0, n), n > 0, from 128-bit draws, rejecting the top 2^128 mod n values.
fn uniform_below_u128<R: RngCore + ?Sized>(rng: &mut R, n: u128) -> u128 {
    debug_assert!(n > 0);
    let rejected = (u128::MAX % n + 1) % n;
    let last_accepted = u128::MAX - rejected;
    loop {
        let draw = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
        if draw <= last_accepted {
            return draw % n;
        }
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;

    fn rng() -> ChaCha20Rng {
        ChaCha20Rng::seed_from_u64(0x7a11)
    }

    /// Asserts that `hits` out of `n` is within 5 standard deviations of `n·p`.
    fn assert_frequency(hits: u64, n: u64, p: f64, what: &str) {
        let (n, hits) = (n as f64, hits as f64);
        let sd = (n * p * (1.0 - p)).sqrt();
        assert!(
            (hits - n * p).abs() <= 5.0 * sd.max(1.0),
            "{what}: {hits} hits, expected {}",
            n * p
        );
    }

    #[test]
    fn bernoulli_exp_matches_exp() {
        let mut rng = rng();
        let n = 100_000;
        for (num, den) in [(0, 1), (1, 2), (1, 1), (3, 2), (5, 1), (999_999, 1_000_000)] {
            let hits = (0..n).filter(|_| bernoulli_exp(&mut rng, num, den)).count() as u64;
            let p = (-(num as f64) / den as f64).exp();
            assert_frequency(hits, n, p, &format!("exp(-{num}/{den})"));
        }
    }

    #[test]
    fn bernoulli_ratio_is_exact_at_the_ends_and_fair_between() {
        let mut rng = rng();
        assert!((0..1000).all(|_| bernoulli_ratio(&mut rng, 7, 7)));
        assert!((0..1000).all(|_| !bernoulli_ratio(&mut rng, 0, 7)));
        let big = u128::from(u64::MAX) * 3;
        let n = 100_000;
        let hits = (0..n)
            .filter(|_| bernoulli_ratio(&mut rng, u64::MAX, big))
            .count() as u64;
        assert_frequency(hits, n, 1.0 / 3.0, "u64::MAX / (3·u64::MAX)");
    }

    #[test]
    fn uniform_draws_cover_their_range_evenly() {
        let mut rng = rng();
        let n = 60_000u64;
        for bound in [1u64, 2, 3, 7, 20] {
            let mut counts = vec![0u64; bound as usize];
            for _ in 0..n {
                counts[uniform_below(&mut rng, bound) as usize] += 1;
            }
            for (value, &count) in counts.iter().enumerate() {
                assert_frequency(count, n, 1.0 / bound as f64, &format!("{value} of {bound}"));
            }
        }
        // A bound just above half the range rejects almost half the draws: the upper half of
        // results must still be as frequent as the lower.
        let bound = u64::MAX / 2 + 2;
        let upper = (0..n)
            .filter(|_| uniform_below(&mut rng, bound) >= bound / 2)
            .count() as u64;
        assert_frequency(upper, n, 0.5, "upper half of u64::MAX / 2 + 2");
        let bound = u128::MAX / 3 * 2;
        let upper = (0..n)
            .filter(|_| uniform_below_u128(&mut rng, bound) >= bound / 2)
            .count() as u64;
        assert_frequency(upper, n, 0.5, "upper half of 2·u128::MAX/3");
    }

    #[test]
    fn epsilon_is_reduced_exactly() {
        assert_eq!(gcd(50_000, MICROS_PER_UNIT), 50_000);
        assert_eq!(gcd(1, MICROS_PER_UNIT), 1);
        assert_eq!(gcd(3_000_000, MICROS_PER_UNIT), MICROS_PER_UNIT);
    }

    #[test]
    fn extreme_epsilons_sample() {
        let mut rng = rng();
        // A huge ε leaves essentially no noise; the smallest has a standard deviation of 1.4e6.
        for _ in 0..1000 {
            assert_eq!(
                sample_discrete_laplace(Epsilon::from_micros(u64::MAX), &mut rng),
                0
            );
        }
        let draws: Vec<i64> = (0..1000)
            .map(|_| sample_discrete_laplace(Epsilon::from_micros(1), &mut rng))
            .collect();
        assert!(draws.iter().any(|z| z.abs() > 100_000));
    }

    #[test]
    #[should_panic(expected = "ε > 0")]
    fn zero_epsilon_has_no_distribution() {
        sample_discrete_laplace(Epsilon::from_micros(0), &mut rng());
    }
}
