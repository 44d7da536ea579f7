//! Why an identifier, or a row of a customer list, is refused.
//!
//! Every refusal in Tailor carries a [`RejectReason`]: a stable machine-readable code (used in
//! counters, job results and rejects files) and a fixed human message. Messages are static
//! strings on purpose: a reason can never contain the value that was refused, so it is always
//! safe to log, count or show.

use std::fmt;

/// A reason for refusing an identifier or a row.
///
/// The variant names say what was wrong with the input. [`RejectReason::code`] is stable across
/// releases: job results and rejects files are keyed by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum RejectReason {
    /// The email address has no `@`.
    EmailMissingAt,
    /// The email address has more than one `@`.
    EmailMultipleAt,
    /// Nothing precedes the `@`.
    EmailEmptyLocalPart,
    /// The part after the `@` is not a plausible domain.
    EmailInvalidDomain,
    /// Whitespace or a control character inside the address.
    EmailContainsWhitespace,
    /// Longer than the 254 bytes an address can have.
    EmailTooLong,

    /// libphonenumber finds no phone number in the value.
    PhoneNotANumber,
    /// The country calling code does not exist.
    PhoneInvalidCountryCode,
    /// Fewer digits than any number of its country can have.
    PhoneTooShort,
    /// More digits than any number of its country can have.
    PhoneTooLong,
    /// A length no number of its country has.
    PhoneInvalidLength,
    /// A number that can only be dialled locally (no area code), so it has no E.164 form.
    PhoneLocalOnly,
    /// The number carries an extension: it reaches a switchboard, not one person.
    PhoneHasExtension,

    /// A hashed column holds what looks like a plain email address.
    DigestLooksLikeEmail,
    /// A hashed column holds what looks like a plain phone number.
    DigestLooksLikePhone,
    /// A hashed column holds an MD5-sized hex digest.
    DigestLooksLikeMd5,
    /// A hashed column holds a SHA-1-sized hex digest.
    DigestLooksLikeSha1,
    /// A hashed column holds a value of the wrong length for SHA-256.
    DigestWrongLength,
    /// A hashed column has the length of a SHA-256 digest but characters that do not belong.
    DigestInvalidCharacters,

    /// A cell that the job needs is not valid UTF-8.
    InvalidUtf8,
    /// The row has more or fewer fields than the header.
    WrongFieldCount,
    /// The row has no identifier at all (every identifier cell is empty).
    NoIdentifier,
    /// An NDJSON line that is not a JSON object of identifier fields: not JSON, not an object,
    /// an identifier field whose value is neither a string nor null, or two values for one kind
    /// of identifier.
    MalformedJson,
    /// An NDJSON line longer than the upload's line limit; its bytes are skipped, not read.
    LineTooLong,
}

impl RejectReason {
    /// Every reason, in a stable order (the order of the codes in reports).
    pub const ALL: &'static [RejectReason] = &[
        Self::EmailMissingAt,
        Self::EmailMultipleAt,
        Self::EmailEmptyLocalPart,
        Self::EmailInvalidDomain,
        Self::EmailContainsWhitespace,
        Self::EmailTooLong,
        Self::PhoneNotANumber,
        Self::PhoneInvalidCountryCode,
        Self::PhoneTooShort,
        Self::PhoneTooLong,
        Self::PhoneInvalidLength,
        Self::PhoneLocalOnly,
        Self::PhoneHasExtension,
        Self::DigestLooksLikeEmail,
        Self::DigestLooksLikePhone,
        Self::DigestLooksLikeMd5,
        Self::DigestLooksLikeSha1,
        Self::DigestWrongLength,
        Self::DigestInvalidCharacters,
        Self::InvalidUtf8,
        Self::WrongFieldCount,
        Self::NoIdentifier,
        Self::MalformedJson,
        Self::LineTooLong,
    ];

    /// The stable machine-readable code, `snake_case`.
    pub const fn code(self) -> &'static str {
        match self {
            Self::EmailMissingAt => "email_missing_at",
            Self::EmailMultipleAt => "email_multiple_at",
            Self::EmailEmptyLocalPart => "email_empty_local_part",
            Self::EmailInvalidDomain => "email_invalid_domain",
            Self::EmailContainsWhitespace => "email_contains_whitespace",
            Self::EmailTooLong => "email_too_long",
            Self::PhoneNotANumber => "phone_not_a_number",
            Self::PhoneInvalidCountryCode => "phone_invalid_country_code",
            Self::PhoneTooShort => "phone_too_short",
            Self::PhoneTooLong => "phone_too_long",
            Self::PhoneInvalidLength => "phone_invalid_length",
            Self::PhoneLocalOnly => "phone_local_only",
            Self::PhoneHasExtension => "phone_has_extension",
            Self::DigestLooksLikeEmail => "digest_looks_like_email",
            Self::DigestLooksLikePhone => "digest_looks_like_phone",
            Self::DigestLooksLikeMd5 => "digest_looks_like_md5",
            Self::DigestLooksLikeSha1 => "digest_looks_like_sha1",
            Self::DigestWrongLength => "digest_wrong_length",
            Self::DigestInvalidCharacters => "digest_invalid_characters",
            Self::InvalidUtf8 => "invalid_utf8",
            Self::WrongFieldCount => "wrong_field_count",
            Self::NoIdentifier => "no_identifier",
            Self::MalformedJson => "malformed_json",
            Self::LineTooLong => "line_too_long",
        }
    }

    /// The reason for a code produced by [`RejectReason::code`].
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|reason| reason.code() == code)
    }

    /// A sentence for people. It never contains the refused value.
    pub const fn message(self) -> &'static str {
        match self {
            Self::EmailMissingAt => "not an email address: there is no '@'",
            Self::EmailMultipleAt => "not an email address: there is more than one '@'",
            Self::EmailEmptyLocalPart => "not an email address: nothing comes before the '@'",
            Self::EmailInvalidDomain => {
                "not an email address: the part after the '@' is not a domain \
                 (it needs at least one dot, no empty label and a top-level label of two \
                 or more letters)"
            }
            Self::EmailContainsWhitespace => {
                "not an email address: it contains whitespace or a control character"
            }
            Self::EmailTooLong => "not an email address: longer than 254 bytes",
            Self::PhoneNotANumber => "not a phone number",
            Self::PhoneInvalidCountryCode => "phone number with a country code that does not exist",
            Self::PhoneTooShort => "phone number too short for its country",
            Self::PhoneTooLong => "phone number too long for its country",
            Self::PhoneInvalidLength => "phone number of a length its country does not use",
            Self::PhoneLocalOnly => "local phone number without an area code: it has no E.164 form",
            Self::PhoneHasExtension => {
                "phone number with an extension: it reaches a switchboard, not one person"
            }
            Self::DigestLooksLikeEmail => {
                "looks like a plain email address, not a SHA-256 digest (use the email column \
                 for unhashed addresses)"
            }
            Self::DigestLooksLikePhone => {
                "looks like a plain phone number, not a SHA-256 digest (use the phone column \
                 for unhashed numbers)"
            }
            Self::DigestLooksLikeMd5 => "looks like an MD5 digest; a SHA-256 digest is required",
            Self::DigestLooksLikeSha1 => "looks like a SHA-1 digest; a SHA-256 digest is required",
            Self::DigestWrongLength => {
                "not a SHA-256 digest: expected 64 hex characters or 44 base64 characters"
            }
            Self::DigestInvalidCharacters => {
                "not a SHA-256 digest: has the length of one but characters that are neither \
                 hex nor base64"
            }
            Self::InvalidUtf8 => "the row is not valid UTF-8",
            Self::WrongFieldCount => "the row has a different number of fields than the header",
            Self::NoIdentifier => "the row has no email or phone identifier",
            Self::MalformedJson => {
                "the line is not a JSON object with at most one email and one phone field, \
                 each a string or null"
            }
            Self::LineTooLong => "the line is longer than the upload's line limit",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for RejectReason {}

/// Counts of refusals by reason: the part of every job's result that says what was refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RejectCounts(std::collections::BTreeMap<RejectReason, u64>);

impl RejectCounts {
    /// Counts one refusal.
    pub fn add(&mut self, reason: RejectReason) {
        *self.0.entry(reason).or_default() += 1;
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &RejectCounts) {
        for (&reason, &count) in &other.0 {
            *self.0.entry(reason).or_default() += count;
        }
    }

    /// The count for one reason.
    pub fn count(&self, reason: RejectReason) -> u64 {
        self.0.get(&reason).copied().unwrap_or(0)
    }

    /// All refusals.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// Whether nothing was refused.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Reasons with a non-zero count, in the order of [`RejectReason::ALL`].
    pub fn iter(&self) -> impl Iterator<Item = (RejectReason, u64)> + '_ {
        self.0.iter().map(|(&reason, &count)| (reason, count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for &reason in RejectReason::ALL {
            assert!(
                seen.insert(reason.code()),
                "duplicate code {}",
                reason.code()
            );
            assert_eq!(RejectReason::from_code(reason.code()), Some(reason));
            assert!(
                reason
                    .code()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            );
        }
        assert_eq!(RejectReason::from_code("nope"), None);
    }

    #[test]
    fn all_lists_every_reason_in_declaration_order() {
        // `RejectCounts::iter` follows the derived order; reports promise the order of `ALL`.
        assert!(RejectReason::ALL.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn counts_add_and_merge() {
        let mut a = RejectCounts::default();
        a.add(RejectReason::InvalidUtf8);
        a.add(RejectReason::InvalidUtf8);
        let mut b = RejectCounts::default();
        b.add(RejectReason::EmailMissingAt);
        b.add(RejectReason::InvalidUtf8);
        a.merge(&b);
        assert_eq!(a.count(RejectReason::InvalidUtf8), 3);
        assert_eq!(a.count(RejectReason::EmailMissingAt), 1);
        assert_eq!(a.count(RejectReason::NoIdentifier), 0);
        assert_eq!(a.total(), 4);
        let order: Vec<_> = a.iter().map(|(r, _)| r).collect();
        assert_eq!(
            order,
            [RejectReason::EmailMissingAt, RejectReason::InvalidUtf8]
        );
    }
}
