//! Properties of normalization that must hold for any input.

use proptest::prelude::*;
use sha2::{Digest, Sha256};
use tailor_core::{E164Phone, EmailForm, NormalizedEmail, PhoneFormat, Region, Sha256Digest};

fn hex_of(digest: Sha256Digest) -> String {
    digest.to_hex().as_str().to_owned()
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Strings shaped like email addresses, with case, dots, plus tags and surrounding spaces.
fn email_like() -> impl Strategy<Value = String> {
    (
        "[ \t]{0,2}",
        "[A-Za-z0-9._+-]{1,20}",
        prop_oneof![
            Just("gmail.com".to_owned()),
            Just("GoogleMail.com".to_owned()),
            "[A-Za-z0-9-]{1,10}\\.[A-Za-z]{2,6}",
            "[a-zà-ÿ]{1,8}\\.[a-z]{2,3}",
        ],
        "[ \t]{0,2}",
    )
        .prop_map(|(lead, local, domain, trail)| format!("{lead}{local}@{domain}{trail}"))
}

/// Strings shaped like phone numbers, national or international, with separators.
fn phone_like() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            Just(""),
            Just("+1 "),
            Just("+44 "),
            Just("+33 "),
            Just("+49 "),
            Just("+")
        ],
        proptest::collection::vec(
            (
                "[0-9]{1,4}",
                prop_oneof![Just(""), Just(" "), Just("-"), Just(".")],
            ),
            1..6,
        ),
    )
        .prop_map(|(prefix, groups)| {
            let body: String = groups
                .into_iter()
                .map(|(d, sep)| format!("{d}{sep}"))
                .collect();
            format!("{prefix}{body}")
        })
}

proptest! {
    #[test]
    fn email_normalization_is_idempotent(raw in prop_oneof![email_like(), any::<String>()]) {
        if let Ok(email) = NormalizedEmail::parse(&raw) {
            let again = NormalizedEmail::parse(email.as_str()).unwrap();
            prop_assert_eq!(again.as_str(), email.as_str());
            if let Some(canonical) = email.gmail_canonical() {
                let again = NormalizedEmail::parse(canonical.as_str()).unwrap();
                prop_assert_eq!(again.as_str(), canonical.as_str());
                prop_assert!(again.gmail_canonical().is_none());
            }
        }
    }

    #[test]
    fn email_hash_is_sha256_of_the_normalized_string(raw in email_like()) {
        let email = NormalizedEmail::parse(&raw).unwrap();
        prop_assert_eq!(hex_of(email.sha256()), sha256_hex(email.as_str()));
        let canonical = email.in_form(EmailForm::GmailCanonical);
        prop_assert_eq!(hex_of(canonical.sha256()), sha256_hex(canonical.as_str()));
    }

    #[test]
    fn phone_normalization_is_idempotent_and_formats_agree(raw in prop_oneof![phone_like(), any::<String>()]) {
        if let Ok(phone) = E164Phone::parse(&raw, Region::US) {
            let e164 = phone.e164();
            prop_assert!(e164.starts_with('+'));
            prop_assert!(e164[1..].bytes().all(|b| b.is_ascii_digit()));
            // Both formats come from the same parsed number.
            prop_assert_eq!(&e164[1..], phone.digits());
            // The E.164 form parses to itself, whatever the default region.
            let again = E164Phone::parse(e164, Region::parse("FR").unwrap()).unwrap();
            prop_assert_eq!(again.e164(), e164);
            prop_assert_eq!(hex_of(phone.sha256(PhoneFormat::E164)), sha256_hex(e164));
            prop_assert_eq!(hex_of(phone.sha256(PhoneFormat::Digits)), sha256_hex(phone.digits()));
        }
    }

    #[test]
    fn digests_round_trip_through_hex_and_base64(bytes in any::<[u8; 32]>()) {
        use base64::Engine as _;
        let digest = Sha256Digest::from_bytes(bytes);
        let hex = digest.to_hex();
        prop_assert_eq!(Sha256Digest::parse(hex.as_str()), Ok(digest));
        prop_assert_eq!(Sha256Digest::parse(&hex.as_str().to_uppercase()), Ok(digest));
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        prop_assert_eq!(Sha256Digest::parse(&b64), Ok(digest));
    }

    #[test]
    fn digest_parsing_never_panics_and_never_accepts_plain_emails(raw in any::<String>()) {
        if let Ok(digest) = Sha256Digest::parse(&raw) {
            prop_assert!(!raw.contains('@'));
            let hex = digest.to_hex();
            prop_assert_eq!(Sha256Digest::parse(hex.as_str()), Ok(digest));
        }
    }
}
