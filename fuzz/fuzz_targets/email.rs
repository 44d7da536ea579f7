//! Fuzzes `NormalizedEmail::parse` with arbitrary text.
//!
//! Checks that parsing never panics, that a normalized address is a fixed point of parsing, and
//! that the Gmail canonical form, when there is one, is itself a normalized address.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tailor_core::NormalizedEmail;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(email) = NormalizedEmail::parse(raw) else {
        return;
    };
    let again = NormalizedEmail::parse(email.as_str())
        .unwrap_or_else(|reason| panic!("normalized address refused on re-parse: {reason:?}"));
    assert_eq!(
        again.as_str(),
        email.as_str(),
        "normalization is not idempotent"
    );
    assert_eq!(again, email);

    if let Some(canonical) = email.gmail_canonical() {
        let reparsed = NormalizedEmail::parse(canonical.as_str())
            .unwrap_or_else(|reason| panic!("gmail canonical form refused: {reason:?}"));
        assert_eq!(reparsed.as_str(), canonical.as_str());
        assert_eq!(reparsed.local_part(), canonical.local_part());
        assert_eq!(reparsed.domain(), canonical.domain());
    }
});
