//! Fuzzes `E164Phone::parse`: the first byte picks the default region, the rest is the number.
//!
//! Checks that parsing never panics, that an accepted number renders as `+` and digits only,
//! and that its E.164 form reads back as the same number whatever the default region.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tailor_core::{E164Phone, Region};

/// Default regions, chosen for varied national prefixes and number lengths.
const REGIONS: [&str; 12] = [
    "US", "GB", "FR", "DE", "IT", "JP", "BR", "IN", "AU", "AR", "MX", "RU",
];

fn region(code: &str) -> Region {
    Region::parse(code).unwrap_or_else(|| panic!("region {code} unknown"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(raw) = std::str::from_utf8(rest) else {
        return;
    };
    let default = region(REGIONS[usize::from(selector) % REGIONS.len()]);
    let Ok(phone) = E164Phone::parse(raw, default) else {
        return;
    };
    let e164 = phone.e164();
    let digits = e164
        .strip_prefix('+')
        .unwrap_or_else(|| panic!("e164 without '+': {e164:?}"));
    assert!(
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()),
        "e164 is not '+' and digits: {e164:?}"
    );
    assert_eq!(phone.digits(), &e164[1..]);

    for code in REGIONS {
        let again = E164Phone::parse(e164, region(code)).unwrap_or_else(|reason| {
            panic!("{e164:?} (from {raw:?}) refused with region {code}: {reason:?}")
        });
        assert_eq!(
            again.e164(),
            e164,
            "{e164:?} (from {raw:?}) re-read with region {code}"
        );
    }
});
