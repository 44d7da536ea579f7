//! Fuzzes `Sha256Digest::parse` with arbitrary text.
//!
//! Checks that parsing never panics, that an accepted digest survives a round trip through its
//! lowercase hex form, and that nothing containing an `@` is ever accepted as a digest.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tailor_core::Sha256Digest;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(digest) = Sha256Digest::parse(raw) else {
        return;
    };
    assert!(
        !raw.contains('@'),
        "a value with '@' was accepted as a digest"
    );

    let hex = digest.to_hex();
    let hex = hex.as_str();
    assert_eq!(hex.len(), 64);
    assert!(hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    assert_eq!(Sha256Digest::from_hex(hex), Ok(digest));
    assert_eq!(Sha256Digest::parse(hex), Ok(digest));
    let trimmed = raw.trim_ascii();
    if trimmed.len() == 64 {
        // Accepted as hex: the rendering is the input, lowercased.
        assert_eq!(hex, trimmed.to_ascii_lowercase());
    }
});
