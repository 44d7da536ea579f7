//! Policy files: parsing never panics, every problem names a line inside the file, and an
//! accepted policy never makes a security or address-book context eligible for marketing.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tailor_core::{Context, Policy};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Policy::parse(text) {
        Ok(policy) => {
            for (purpose, rule) in policy.purposes() {
                if purpose.is_marketing() {
                    assert!(rule.contexts.iter().all(|c: &Context| c.can_ever_market()));
                }
            }
            assert_eq!(Policy::parse(text).map(|p| p.version()), Ok(policy.version()));
        }
        Err(error) => {
            let lines = text.lines().count().max(1);
            for problem in &error.problems {
                assert!(problem.line >= 1 && problem.line <= lines + 1, "{problem}");
            }
        }
    }
});
