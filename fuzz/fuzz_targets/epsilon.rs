//! Fuzzes `Epsilon::parse`, the reader of the operator's `--release-epsilon` and
//! `--release-budget`.
//!
//! Checks that parsing never panics, that an accepted ε is positive and at most 1000, and that
//! it reads back as itself from its own display.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tailor_core::release::Epsilon;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(epsilon) = Epsilon::parse(text) else {
        return;
    };
    assert!(epsilon.micros() > 0 && epsilon.micros() <= 1_000_000_000);
    assert_eq!(Epsilon::parse(&epsilon.to_string()), Ok(epsilon));
});
