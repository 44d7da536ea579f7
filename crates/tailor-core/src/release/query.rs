//! Canonical queries and the noise seed: what makes the same question get the same noise.
//!
//! An audience is defined by its uploads' key sets and the operations between them. Each is
//! reduced to a keyed digest: a key set is sorted and deduplicated before it is hashed, so that
//! reordering or repeating rows asks the same question, and the query chains those digests job
//! by job. The noise of a release is drawn from a seed derived from the entity, the audience,
//! its query and the data epoch, all under the platform's noise key, so that an advertiser who
//! repeats a question gets the same answer rather than a fresh draw to average away. Everything
//! here is keyed: without the noise key nobody can compute a digest or a seed, and so nobody can
//! predict or subtract the noise. This file must never print a key, a seed or a whole digest,
//! and never keep more of an identifier's digest than the 16 bytes a key set needs.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::identifier::Sha256Digest;

/// Every MAC here starts with one of these tags, each preceded by its length, so that no input
/// under one purpose can be read as an input under another.
const KEY_SET_DOMAIN: &[u8] = b"tailor/release/key-set/v1";
const KEY_SET_PARTS_DOMAIN: &[u8] = b"tailor/release/key-set-parts/v1";
const QUERY_DOMAIN: &[u8] = b"tailor/release/query/v1";
const SEED_DOMAIN: &[u8] = b"tailor/release/noise-seed/v1";

/// The secret the noise is keyed by, derived by the engine from the platform secret.
///
/// Whoever holds it can compute every seed and subtract the noise from every release: it is
/// never printed, and its bytes are wiped when it is dropped.
#[derive(Clone)]
pub struct NoiseKey {
    secret: Zeroizing<Vec<u8>>,
}

impl NoiseKey {
    /// A key from its secret bytes: at least 32 (`None` below that), all of which are used as
    /// the HMAC-SHA-256 key.
    pub fn from_secret(secret: &[u8]) -> Option<Self> {
        if secret.len() < 32 {
            return None;
        }
        Some(Self {
            secret: Zeroizing::new(secret.to_vec()),
        })
    }

    /// A MAC under this key, with `domain` already absorbed.
    fn mac(&self, domain: &[u8]) -> Hmac<Sha256> {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.secret) else {
            unreachable!("HMAC takes a key of any length");
        };
        update_field(&mut mac, domain);
        mac
    }
}

impl fmt::Debug for NoiseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NoiseKey(<secret>)")
    }
}

/// Absorbs a field with its length in front, so that consecutive fields cannot run together.
fn update_field(mac: &mut Hmac<Sha256>, field: &[u8]) {
    mac.update(&(field.len() as u64).to_be_bytes());
    mac.update(field);
}

fn finish(mac: Hmac<Sha256>) -> [u8; 32] {
    mac.finalize().into_bytes().into()
}

/// Collects the normalized keys of one upload (every SHA-256 digest a row is looked up by), for
/// the canonical query.
///
/// Only the first 16 bytes of each digest are kept, which bounds memory to 16 MB per million
/// keys. Two distinct identifiers of one upload share a 16-byte prefix with probability about
/// n²/2^129 (1e-27 for a million keys), and making a chosen identifier collide with another is
/// a 2^128 second-preimage search; a collision would only make two uploads count as one query.
#[derive(Default)]
pub struct UploadKeys {
    /// The prefixes as big-endian integers, which sort as the bytes do and faster.
    keys: Vec<u128>,
}

impl UploadKeys {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one key; repeating a key changes nothing.
    pub fn push(&mut self, sha256: &Sha256Digest) {
        let mut prefix = [0; 16];
        prefix.copy_from_slice(&sha256.as_bytes()[..16]);
        self.keys.push(u128::from_be_bytes(prefix));
    }

    /// How many keys were pushed, repetitions included.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Sorted, deduplicated, keyed (HMAC-SHA-256 under the [`NoiseKey`]): the same set of keys in
    /// any order and with any repetition gives the same digest.
    pub fn digest(mut self, key: &NoiseKey) -> KeySetDigest {
        self.keys.sort_unstable();
        self.keys.dedup();
        let mut mac = key.mac(KEY_SET_DOMAIN);
        mac.update(&(self.keys.len() as u64).to_be_bytes());
        // In blocks rather than one call per key: the MAC's per-call cost is most of the work.
        let mut block = [0u8; 16 * 256];
        for chunk in self.keys.chunks(256) {
            for (bytes, key) in block.chunks_exact_mut(16).zip(chunk) {
                bytes.copy_from_slice(&key.to_be_bytes());
            }
            mac.update(&block[..16 * chunk.len()]);
        }
        KeySetDigest(finish(mac))
    }
}

impl fmt::Debug for UploadKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadKeys")
            .field("len", &self.keys.len())
            .finish_non_exhaustive()
    }
}

/// The keyed digest of one upload's set of keys.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeySetDigest([u8; 32]);

impl KeySetDigest {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// One digest for several parts of an upload session: the part digests sorted and
    /// deduplicated, then keyed. The parts' order does not matter, and neither does a part
    /// repeated, as neither changes the union of the parts' keys.
    pub fn combine(parts: &[KeySetDigest], key: &NoiseKey) -> KeySetDigest {
        let mut parts: Vec<[u8; 32]> = parts.iter().map(|part| part.0).collect();
        parts.sort_unstable();
        parts.dedup();
        let mut mac = key.mac(KEY_SET_PARTS_DOMAIN);
        mac.update(&(parts.len() as u64).to_be_bytes());
        for part in &parts {
            mac.update(part);
        }
        KeySetDigest(finish(mac))
    }
}

impl fmt::Debug for KeySetDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeySetDigest({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

/// The canonical query that defines an audience: its uploads' key sets and the operations
/// between them.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct QueryDigest([u8; 32]);

/// How a job changes an audience's keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryOp {
    Add,
    Remove,
    Replace,
}

impl QueryDigest {
    /// An audience nothing was uploaded to: all zero bytes.
    pub const EMPTY: QueryDigest = QueryDigest([0; 32]);

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The query after one more job: `Replace` starts over from the job's keys alone; `Add` and
    /// `Remove` chain onto `self`. Keyed HMAC with domain separation.
    ///
    /// `Replace` is computed as `Add` onto [`QueryDigest::EMPTY`], because both leave the
    /// audience with exactly the job's keys: the same question gets the same digest.
    pub fn then(&self, op: QueryOp, keys: &KeySetDigest, key: &NoiseKey) -> QueryDigest {
        let (op, before) = match op {
            QueryOp::Add => (b'+', self),
            QueryOp::Remove => (b'-', self),
            QueryOp::Replace => (b'+', &Self::EMPTY),
        };
        let mut mac = key.mac(QUERY_DOMAIN);
        mac.update(&[op]);
        mac.update(&before.0);
        mac.update(&keys.0);
        QueryDigest(finish(mac))
    }
}

impl fmt::Debug for QueryDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QueryDigest({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

/// What the noise of one release is drawn from. Whoever knows it can subtract the noise, so it
/// is never printed and is wiped when dropped.
pub struct NoiseSeed([u8; 32]);

impl NoiseSeed {
    /// Only for tests inside the crate: outside, a seed comes from [`noise_seed`] alone, so that
    /// no caller can reuse one seed across different questions.
    #[cfg(test)]
    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl PartialEq for NoiseSeed {
    /// Without an early exit, as secrets are compared.
    fn eq(&self, other: &Self) -> bool {
        self.0
            .iter()
            .zip(&other.0)
            .fold(0u8, |difference, (a, b)| difference | (a ^ b))
            == 0
    }
}

impl Eq for NoiseSeed {}

impl Drop for NoiseSeed {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for NoiseSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NoiseSeed(<secret>)")
    }
}

/// The seed for one release: HMAC-SHA-256 under the noise key of the entity, the audience id,
/// its query and the data epoch, each field length-prefixed, domain-separated.
///
/// The same seed gives the same noise, which is what makes a repeated question harmless: but
/// only if the count is the same too. Two different counts released with one seed reveal their
/// exact difference, so `epoch` must change whenever the data an audience is counted against
/// may have changed.
pub fn noise_seed(
    key: &NoiseKey,
    entity: &str,
    audience_id: &str,
    query: &QueryDigest,
    epoch: u64,
) -> NoiseSeed {
    let mut mac = key.mac(SEED_DOMAIN);
    update_field(&mut mac, entity.as_bytes());
    update_field(&mut mac, audience_id.as_bytes());
    mac.update(&query.0);
    mac.update(&epoch.to_be_bytes());
    NoiseSeed(finish(mac))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_distinct() {
        let domains = [
            KEY_SET_DOMAIN,
            KEY_SET_PARTS_DOMAIN,
            QUERY_DOMAIN,
            SEED_DOMAIN,
        ];
        for (i, a) in domains.iter().enumerate() {
            for b in &domains[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn keys_longer_than_32_bytes_are_used_whole() {
        let mut long = [9u8; 40];
        let a = NoiseKey::from_secret(&long).unwrap();
        long[39] = 8;
        let b = NoiseKey::from_secret(&long).unwrap();
        let query = QueryDigest::EMPTY;
        assert!(noise_seed(&a, "e", "a", &query, 0) != noise_seed(&b, "e", "a", &query, 0));
    }

    #[test]
    fn a_digest_in_blocks_equals_one_key_at_a_time() {
        // 256 keys fill one block exactly; 257 spill one key into a second.
        let key = NoiseKey::from_secret(&[1; 32]).unwrap();
        for n in [0u32, 1, 255, 256, 257, 513] {
            let mut keys = UploadKeys::new();
            let mut prefixes = Vec::new();
            for i in 0..n {
                let digest = Sha256Digest::of(&i.to_be_bytes());
                keys.push(&digest);
                prefixes.push(<[u8; 16]>::try_from(&digest.as_bytes()[..16]).unwrap());
            }
            prefixes.sort_unstable();
            let mut mac = key.mac(KEY_SET_DOMAIN);
            mac.update(&u64::from(n).to_be_bytes());
            for prefix in &prefixes {
                mac.update(prefix);
            }
            assert_eq!(keys.digest(&key), KeySetDigest(finish(mac)), "{n}");
        }
    }
}
