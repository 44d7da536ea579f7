//! SHA-256 digests: computed from normalized identifiers, or read from a hashed column.
//!
//! A hashed column must hold a digest, in hex (either case) or base64. A value that is not one
//! is refused with the most helpful reason we can give (it looks like a plain email, an MD5
//! digest, ...). It is never hashed on the advertiser's behalf: a plain value in a hashed
//! column usually means the columns were mislabelled, and guessing would hide that.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use sha2::{Digest as _, Sha256};

use crate::reject::RejectReason;

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Digest([u8; 32]);

impl Sha256Digest {
    /// SHA-256 of `data`.
    pub fn of(data: &[u8]) -> Self {
        Self(Sha256::digest(data).into())
    }

    /// A digest from its 32 bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Exactly 64 hex characters, in either case.
    pub fn from_hex(hex: &str) -> Result<Self, RejectReason> {
        if hex.len() != 64 {
            return Err(RejectReason::DigestWrongLength);
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex, &mut bytes).map_err(|_| RejectReason::DigestInvalidCharacters)?;
        Ok(Self(bytes))
    }

    /// Exactly 44 base64 characters with padding, in the standard or URL-safe alphabet.
    pub fn from_base64(text: &str) -> Result<Self, RejectReason> {
        if text.len() != 44 {
            return Err(RejectReason::DigestWrongLength);
        }
        let mut bytes = [0u8; 32];
        let decoded = STANDARD
            .decode_slice(text, &mut bytes)
            .or_else(|_| URL_SAFE.decode_slice(text, &mut bytes))
            .map_err(|_| RejectReason::DigestInvalidCharacters)?;
        if decoded != 32 {
            return Err(RejectReason::DigestInvalidCharacters);
        }
        Ok(Self(bytes))
    }

    /// Reads the value of a hashed column: trims ASCII whitespace, then accepts hex or base64
    /// and refuses anything else with a reason that says what it looks like instead.
    pub fn parse(raw: &str) -> Result<Self, RejectReason> {
        let value = raw.trim_ascii();
        match value.len() {
            64 if is_hex(value) => Self::from_hex(value),
            44 if !looks_like_plain(value) => Self::from_base64(value),
            _ => Err(misfit(value)),
        }
    }

    /// Lowercase hex, the form every platform exchanges.
    pub fn to_hex(&self) -> Sha256Hex {
        let mut out = [0u8; 64];
        // The output buffer is exactly twice the input length, so this cannot fail.
        let _ = hex::encode_to_slice(self.0, &mut out);
        Sha256Hex(out)
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A digest of an identifier identifies the person as well as the identifier does.
        f.write_str("Sha256Digest(<redacted>)")
    }
}

/// The lowercase hex rendering of a [`Sha256Digest`], without allocating.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Sha256Hex([u8; 64]);

impl Sha256Hex {
    pub fn as_str(&self) -> &str {
        // Only lowercase hex digits are ever written into the buffer.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }
}

impl fmt::Debug for Sha256Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sha256Hex(<redacted>)")
    }
}

fn is_hex(value: &str) -> bool {
    value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Characters that a written phone number is made of.
fn is_phone_char(c: char) -> bool {
    c.is_ascii_digit() || matches!(c, '+' | '-' | '(' | ')' | '.' | ' ' | '/')
}

fn looks_like_plain(value: &str) -> bool {
    value.contains('@') || looks_like_phone(value)
}

fn looks_like_phone(value: &str) -> bool {
    let digits = value.bytes().filter(u8::is_ascii_digit).count();
    value.chars().all(is_phone_char) && (7..=20).contains(&digits)
}

/// The reason a trimmed value that is not a SHA-256 digest is refused.
fn misfit(value: &str) -> RejectReason {
    if value.contains('@') {
        RejectReason::DigestLooksLikeEmail
    } else if looks_like_phone(value) {
        RejectReason::DigestLooksLikePhone
    } else if value.len() == 32 && is_hex(value) {
        RejectReason::DigestLooksLikeMd5
    } else if value.len() == 40 && is_hex(value) {
        RejectReason::DigestLooksLikeSha1
    } else if value.len() == 64 || value.len() == 44 {
        RejectReason::DigestInvalidCharacters
    } else {
        RejectReason::DigestWrongLength
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO_HEX: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    const HELLO_B64: &str = "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=";

    #[test]
    fn hex_and_base64_read_the_same_digest() {
        let of = Sha256Digest::of(b"hello");
        assert_eq!(of.to_hex().as_str(), HELLO_HEX);
        assert_eq!(Sha256Digest::parse(HELLO_HEX), Ok(of));
        assert_eq!(Sha256Digest::parse(&HELLO_HEX.to_uppercase()), Ok(of));
        assert_eq!(Sha256Digest::parse(&format!("  {HELLO_HEX}\t")), Ok(of));
        assert_eq!(Sha256Digest::parse(HELLO_B64), Ok(of));
        let url_safe = HELLO_B64.replace('+', "-").replace('/', "_");
        assert_eq!(Sha256Digest::parse(&url_safe), Ok(of));
    }

    #[test]
    fn misfits_name_what_they_look_like() {
        let cases = [
            ("jane@example.com", RejectReason::DigestLooksLikeEmail),
            ("+1 (800) 555-0100", RejectReason::DigestLooksLikePhone),
            ("18005550100", RejectReason::DigestLooksLikePhone),
            (
                "5d41402abc4b2a76b9719d911017c592",
                RejectReason::DigestLooksLikeMd5,
            ),
            (
                "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d",
                RejectReason::DigestLooksLikeSha1,
            ),
            ("", RejectReason::DigestWrongLength),
            ("abc", RejectReason::DigestWrongLength),
            (&HELLO_HEX[1..], RejectReason::DigestWrongLength),
            (
                "zcf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
                RejectReason::DigestInvalidCharacters,
            ),
            (
                "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLm!Q=",
                RejectReason::DigestInvalidCharacters,
            ),
            // 44 characters of base64 alphabet but decoding to 33 bytes.
            (
                "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQA",
                RejectReason::DigestInvalidCharacters,
            ),
        ];
        for (raw, reason) in cases {
            assert_eq!(Sha256Digest::parse(raw), Err(reason), "{raw:?}");
        }
    }

    #[test]
    fn debug_is_redacted() {
        let of = Sha256Digest::of(b"hello");
        assert!(!format!("{of:?}").contains("2cf2"));
        assert!(!format!("{:?}", of.to_hex()).contains("2cf2"));
    }
}
