//! Keyed digests: how Tailor stores and indexes identifiers without storing them.
//!
//! A contact value is kept only as HMAC-SHA-256, under the platform's secret key, of the
//! SHA-256 of each of its matching variants (email basic and Gmail-canonical; phone with and
//! without `+`). An advertiser's upload, already SHA-256 hashed under either convention, is
//! keyed the same way and looked up. Without the key, the stored digests cannot be matched to
//! anything, not even to a list of known SHA-256 digests.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::identifier::{E164Phone, NormalizedEmail, PhoneFormat, Sha256Digest};

/// The platform secret under which identifiers are keyed.
#[derive(Clone)]
pub struct IndexKey {
    /// The MAC with the key already absorbed; cloned for each digest.
    mac: Hmac<Sha256>,
}

impl IndexKey {
    /// A key from its secret bytes (at least 32).
    pub fn from_secret(secret: &[u8]) -> Option<Self> {
        if secret.len() < 32 {
            return None;
        }
        let secret = Zeroizing::new(secret.to_vec());
        Hmac::<Sha256>::new_from_slice(&secret)
            .ok()
            .map(|mac| Self { mac })
    }

    /// A 32-byte key for another use, derived from the platform secret under `label`. The
    /// MAC's input is longer than 32 bytes, so that no derived key equals a keyed digest.
    pub fn derive(&self, label: &[u8]) -> Zeroizing<[u8; 32]> {
        let mut mac = self.mac.clone();
        // 33 bytes: with the label, always longer than the 32-byte inputs of `digest`.
        mac.update(b"tailor key derivation, version 1\0");
        mac.update(label);
        Zeroizing::new(mac.finalize().into_bytes().into())
    }

    /// The keyed digest of a SHA-256 digest.
    pub fn digest(&self, sha256: &Sha256Digest) -> KeyedDigest {
        let mut mac = self.mac.clone();
        mac.update(sha256.as_bytes());
        KeyedDigest(mac.finalize().into_bytes().into())
    }

    /// The keyed digests of every matching variant of an email address.
    pub fn email(&self, email: &NormalizedEmail) -> ContactDigests {
        let basic = self.digest(&email.sha256());
        let canonical = email.gmail_canonical().map(|c| self.digest(&c.sha256()));
        ContactDigests::new(basic, canonical)
    }

    /// The keyed digests of both conventions of a phone number.
    pub fn phone(&self, phone: &E164Phone) -> ContactDigests {
        let plus = self.digest(&phone.sha256(PhoneFormat::E164));
        let digits = self.digest(&phone.sha256(PhoneFormat::Digits));
        ContactDigests::new(plus, Some(digits))
    }
}

impl fmt::Debug for IndexKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IndexKey(<secret>)")
    }
}

/// HMAC-SHA-256 of an identifier's SHA-256 under the platform key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyedDigest(pub [u8; 32]);

impl KeyedDigest {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for KeyedDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyedDigest(<redacted>)")
    }
}

/// The keyed digests of one contact point: its primary form (email basic, phone with `+`)
/// and, when it differs, its other matching form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ContactDigests {
    primary: KeyedDigest,
    other: Option<KeyedDigest>,
}

impl ContactDigests {
    pub fn new(primary: KeyedDigest, other: Option<KeyedDigest>) -> Self {
        let other = other.filter(|o| *o != primary);
        Self { primary, other }
    }

    /// The primary form: the contact point's identity in the store.
    pub fn primary(&self) -> KeyedDigest {
        self.primary
    }

    /// Every form, primary first.
    pub fn iter(&self) -> impl Iterator<Item = KeyedDigest> + '_ {
        std::iter::once(self.primary).chain(self.other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identifier::Region;

    fn key(byte: u8) -> IndexKey {
        IndexKey::from_secret(&[byte; 32]).unwrap()
    }

    #[test]
    fn keyed_digests_depend_on_the_key_and_cover_every_variant() {
        assert!(IndexKey::from_secret(&[1; 31]).is_none());
        let email = NormalizedEmail::parse("Jane.Doe+x@gmail.com").unwrap();
        let a = key(1).email(&email);
        let b = key(2).email(&email);
        assert_ne!(a.primary(), b.primary());
        assert_eq!(a.iter().count(), 2);
        // The advertiser's SHA-256 of the canonical form reaches the same keyed digest.
        let canonical = Sha256Digest::of(b"janedoe@gmail.com");
        assert!(a.iter().any(|d| d == key(1).digest(&canonical)));
        let plain = NormalizedEmail::parse("jane@example.com").unwrap();
        assert_eq!(key(1).email(&plain).iter().count(), 1);

        let phone = E164Phone::parse("+1 800 555 0100", Region::US).unwrap();
        let digests = key(1).phone(&phone);
        let digits = Sha256Digest::of(b"18005550100");
        let plus = Sha256Digest::of(b"+18005550100");
        assert_eq!(digests.primary(), key(1).digest(&plus));
        assert!(digests.iter().any(|d| d == key(1).digest(&digits)));
    }

    #[test]
    fn debug_is_redacted() {
        let k = key(7);
        assert!(!format!("{k:?}").contains('7'));
        let d = k.digest(&Sha256Digest::of(b"x"));
        assert_eq!(format!("{d:?}"), "KeyedDigest(<redacted>)");
    }
}
