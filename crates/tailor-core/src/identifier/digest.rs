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
        decode_hex(hex.as_bytes()).ok_or(RejectReason::DigestInvalidCharacters)
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
        // The common cell of a hashed list first: 64 hex digits, decoded through a table
        // without classifying the value (hashed lists are millions of such cells).
        if let Some(digest) = decode_hex(value.as_bytes()) {
            return Ok(digest);
        }
        match value.len() {
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

/// The value of each byte as a hex digit (either case); [`NOT_HEX`] for any other byte.
const HEX_VALUES: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

const NOT_HEX: u8 = 0xFF;

/// Exactly 64 hex digits (either case) as a digest; `None` for anything else.
fn decode_hex(text: &[u8]) -> Option<Sha256Digest> {
    let text: &[u8; 64] = text.try_into().ok()?;
    let mut bytes = [0u8; 32];
    // Valid digits are below 16: one check after the loop instead of a branch per digit.
    let mut seen = 0u8;
    for (byte, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
        let high = HEX_VALUES[usize::from(pair[0])];
        let low = HEX_VALUES[usize::from(pair[1])];
        seen |= high | low;
        *byte = (high << 4) | (low & 0x0F);
    }
    (seen < 16).then_some(Sha256Digest(bytes))
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
    #[test]
    fn the_hex_table_reads_exactly_what_the_hex_crate_reads() {
        let digest = super::Sha256Digest::of(b"hello");
        let lower = digest.to_hex().as_str().to_owned();
        for text in [lower.clone(), lower.to_uppercase(), format!(" {lower}\t")] {
            assert_eq!(super::Sha256Digest::parse(&text), Ok(digest));
        }
        // Every byte in every position: the table takes exactly what `hex` decodes.
        for position in [0, 1, 31, 62, 63] {
            for byte in 0..=255u8 {
                let mut text = *b"00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
                text[position] = byte;
                let mut expected = [0u8; 32];
                let reference = hex::decode_to_slice(text, &mut expected)
                    .ok()
                    .map(|()| super::Sha256Digest(expected));
                assert_eq!(super::decode_hex(&text), reference, "{byte:#x}");
            }
        }
        for text in ["", "00", &"0".repeat(63), &"0".repeat(65)] {
            assert_eq!(super::decode_hex(text.as_bytes()), None, "{text:?}");
        }
    }

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
