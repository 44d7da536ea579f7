//! An account line of `POST /v1/admin/accounts`, and a consent event body: checking never
//! panics, a refusal is only a field path and a reason code, and what is accepted is well-formed.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tailor_core::IndexKey;
use tailor_engine::import::{check_consent, check_line, parse_consent};

fuzz_target!(|data: &[u8]| {
    let key = IndexKey::from_secret(&[7; 32]).expect("a 32-byte key");
    let now = jiff::Timestamp::from_second(1_800_000_000).expect("a valid instant");
    let (checked, summary) = check_line(data, &key, now);
    if let Ok(write) = &checked {
        assert!(!write.account_id.is_empty() && write.account_id.len() <= 128);
        for consent in &write.consents {
            assert!(consent.at <= now);
        }
        // Contact points are unique by kind, context and primary digest.
        for (i, a) in write.contacts.iter().enumerate() {
            for b in &write.contacts[i + 1..] {
                assert!(
                    !(a.kind == b.kind
                        && a.context == b.context
                        && a.digests.primary() == b.digests.primary())
                );
            }
        }
    }
    // Refusals name a field path and a reason code, never a value.
    for refusal in &summary.errors {
        if let Some(field) = &refusal.field {
            let (array, rest) = field.split_once('[').expect("a field path");
            assert!(array == "contacts" || array == "consents", "{field}");
            let (index, rest) = rest.split_once(']').expect("a field path");
            assert!(index.bytes().all(|b| b.is_ascii_digit()), "{field}");
            assert!(rest.is_empty() || rest[1..].bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{field}");
        }
        assert!(refusal.reason.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
    }
    if let Ok(line) = parse_consent(data) {
        if let Ok(consent) = check_consent(line, now) {
            assert!(consent.at <= now);
        }
    }
});
