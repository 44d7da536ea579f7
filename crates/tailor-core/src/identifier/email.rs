//! Email addresses: trimmed, lowercased, shape-checked, and their Gmail canonical form.
//!
//! The check is deliberately about shape, not deliverability: exactly one `@`, a non-empty local
//! part, and a domain with a dot, no empty label and a top-level label of at least two
//! characters. It never looks anything up.

use std::fmt;

use crate::identifier::EmailForm;
use crate::identifier::digest::Sha256Digest;
use crate::reject::RejectReason;

/// The longest address SMTP can carry (RFC 5321 path limit minus the angle brackets).
const MAX_LEN: usize = 254;

/// Domains whose local part Google canonicalizes (dots and `+suffix` ignored).
const GMAIL_DOMAINS: [&str; 2] = ["gmail.com", "googlemail.com"];

/// A trimmed, lowercased email address of plausible shape.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NormalizedEmail {
    value: String,
    /// Byte offset of the `@` in `value`.
    at: usize,
}

impl NormalizedEmail {
    /// Trims ASCII whitespace, lowercases, and checks the shape.
    ///
    /// Non-ASCII addresses (internationalized local parts or IDN domains) are lowercased with
    /// Unicode rules and kept in Unicode: the platforms hash the UTF-8 string as written, and
    /// a punycode domain (`xn--...`) stays punycode.
    pub fn parse(raw: &str) -> Result<Self, RejectReason> {
        let trimmed = raw.trim_ascii();
        if trimmed.is_empty() {
            return Err(RejectReason::EmailMissingAt);
        }
        let value = if trimmed.is_ascii() {
            trimmed.to_ascii_lowercase()
        } else {
            trimmed.to_lowercase()
        };
        Self::check(value)
    }

    fn check(value: String) -> Result<Self, RejectReason> {
        if value.len() > MAX_LEN {
            return Err(RejectReason::EmailTooLong);
        }
        let bad_char = if value.is_ascii() {
            // The common case, checked byte by byte.
            value
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        } else {
            value.chars().any(|c| c.is_whitespace() || c.is_control())
        };
        if bad_char {
            return Err(RejectReason::EmailContainsWhitespace);
        }
        let bytes = value.as_bytes();
        let at = bytes
            .iter()
            .position(|&b| b == b'@')
            .ok_or(RejectReason::EmailMissingAt)?;
        if bytes[at + 1..].contains(&b'@') {
            return Err(RejectReason::EmailMultipleAt);
        }
        if at == 0 {
            return Err(RejectReason::EmailEmptyLocalPart);
        }
        if !plausible_domain(&value[at + 1..]) {
            return Err(RejectReason::EmailInvalidDomain);
        }
        Ok(Self { value, at })
    }

    /// The normalized address.
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// The part before the `@`.
    pub fn local_part(&self) -> &str {
        &self.value[..self.at]
    }

    /// The part after the `@`.
    pub fn domain(&self) -> &str {
        &self.value[self.at + 1..]
    }

    /// Whether this is a `gmail.com` or `googlemail.com` address.
    pub fn is_gmail(&self) -> bool {
        GMAIL_DOMAINS.contains(&self.domain())
    }

    /// The Gmail canonical form (local part without dots and without a `+suffix`), when it
    /// differs from this address.
    ///
    /// `None` when the address is not a Gmail address, is already canonical, or would have an
    /// empty local part once canonicalized (such an address cannot be a Gmail account).
    pub fn gmail_canonical(&self) -> Option<NormalizedEmail> {
        if !self.is_gmail() {
            return None;
        }
        let local = self.local_part();
        let before_plus = local.split_once('+').map_or(local, |(head, _)| head);
        let canonical: String = before_plus.chars().filter(|&c| c != '.').collect();
        if canonical.is_empty() || canonical == local {
            return None;
        }
        let at = canonical.len();
        let value = format!("{canonical}@{}", self.domain());
        Some(Self { value, at })
    }

    /// This address in the given form.
    pub fn in_form(&self, form: EmailForm) -> std::borrow::Cow<'_, NormalizedEmail> {
        use std::borrow::Cow;
        match form {
            EmailForm::Basic => Cow::Borrowed(self),
            EmailForm::GmailCanonical => self
                .gmail_canonical()
                .map_or(Cow::Borrowed(self), Cow::Owned),
        }
    }

    /// SHA-256 of the normalized address.
    pub fn sha256(&self) -> Sha256Digest {
        Sha256Digest::of(self.value.as_bytes())
    }
}

impl fmt::Debug for NormalizedEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NormalizedEmail(<redacted>)")
    }
}

fn plausible_domain(domain: &str) -> bool {
    // At least one dot, and no empty label (no leading, trailing or doubled dot).
    let Some((_, tld)) = domain.rsplit_once('.') else {
        return false;
    };
    let tld_ok = tld.chars().nth(1).is_some() && !tld.bytes().all(|b| b.is_ascii_digit());
    let mut previous = b'.';
    let labels_and_chars_ok = domain.bytes().all(|b| {
        let doubled_dot = b == b'.' && previous == b'.';
        let ok = !(doubled_dot || forbidden_in_host(b));
        previous = b;
        ok
    });
    tld_ok && labels_and_chars_ok
}

/// Characters that can never appear in a host name, even an internationalized one.
fn forbidden_in_host(b: u8) -> bool {
    matches!(
        b,
        b'(' | b')'
            | b'<'
            | b'>'
            | b','
            | b';'
            | b':'
            | b'\\'
            | b'"'
            | b'['
            | b']'
            | b'/'
            | b'!'
            | b'#'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_lowercases() {
        let email = NormalizedEmail::parse("  Jane.Doe@Example.COM \t").unwrap();
        assert_eq!(email.as_str(), "jane.doe@example.com");
        assert_eq!(email.local_part(), "jane.doe");
        assert_eq!(email.domain(), "example.com");
    }

    #[test]
    fn rejections_by_shape() {
        let cases = [
            ("", RejectReason::EmailMissingAt),
            ("   ", RejectReason::EmailMissingAt),
            ("jane.example.com", RejectReason::EmailMissingAt),
            ("jane@doe@example.com", RejectReason::EmailMultipleAt),
            ("@example.com", RejectReason::EmailEmptyLocalPart),
            ("jane@example", RejectReason::EmailInvalidDomain),
            ("jane@", RejectReason::EmailInvalidDomain),
            ("jane@.com", RejectReason::EmailInvalidDomain),
            ("jane@example.", RejectReason::EmailInvalidDomain),
            ("jane@example..com", RejectReason::EmailInvalidDomain),
            ("jane@example.c", RejectReason::EmailInvalidDomain),
            ("jane@10.0.0.1", RejectReason::EmailInvalidDomain),
            ("jane@[10.0.0.1]", RejectReason::EmailInvalidDomain),
            ("jane@exa,mple.com", RejectReason::EmailInvalidDomain),
            (
                "jane doe@example.com",
                RejectReason::EmailContainsWhitespace,
            ),
            ("jane@example .com", RejectReason::EmailContainsWhitespace),
            (
                "jane\u{0}@example.com",
                RejectReason::EmailContainsWhitespace,
            ),
        ];
        for (raw, reason) in cases {
            assert_eq!(NormalizedEmail::parse(raw).unwrap_err(), reason, "{raw:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(
            NormalizedEmail::parse(&long).unwrap_err(),
            RejectReason::EmailTooLong
        );
    }

    #[test]
    fn internationalized_addresses_stay_unicode() {
        let email = NormalizedEmail::parse("Jürgen@Bücher.DE").unwrap();
        assert_eq!(email.as_str(), "jürgen@bücher.de");
        let puny = NormalizedEmail::parse("jane@XN--BCHER-KVA.de").unwrap();
        assert_eq!(puny.as_str(), "jane@xn--bcher-kva.de");
    }

    #[test]
    fn gmail_canonical_form() {
        let cases = [
            ("Jane.Doe+news@gmail.com", Some("janedoe@gmail.com")),
            ("j.a.n.e.doe@googlemail.com", Some("janedoe@googlemail.com")),
            ("janedoe@gmail.com", None),
            ("jane.doe@example.com", None),
            ("jane.doe@mail.gmail.com", None),
            ("+news@gmail.com", None),
            ("...@gmail.com", None),
        ];
        for (raw, expected) in cases {
            let email = NormalizedEmail::parse(raw).unwrap();
            let canonical = email.gmail_canonical();
            assert_eq!(canonical.as_ref().map(|e| e.as_str()), expected, "{raw}");
            let in_form = email.in_form(EmailForm::GmailCanonical);
            assert_eq!(in_form.as_str(), expected.unwrap_or(email.as_str()));
            if let Some(canonical) = canonical {
                assert_eq!(canonical.domain(), email.domain());
                assert!(canonical.gmail_canonical().is_none(), "idempotent");
            }
        }
    }

    #[test]
    fn debug_never_shows_the_address() {
        let email = NormalizedEmail::parse("secret@example.com").unwrap();
        assert!(!format!("{email:?}").contains("secret"));
    }
}
