//! Identifiers an advertiser can upload: email addresses, phone numbers and their SHA-256
//! digests, parsed into normalized forms.
//!
//! Parse, don't validate: a [`NormalizedEmail`], [`E164Phone`] or [`Sha256Digest`] that exists
//! is valid, and each knows how to hash itself under every platform convention. None of these
//! types prints its value through `Debug`, and none implements `Display`: getting the value out
//! takes an explicit call, so that it cannot slip into a log line by accident.

mod digest;
mod email;
mod phone;

pub use digest::{Sha256Digest, Sha256Hex};
pub use email::NormalizedEmail;
pub use phone::{E164Phone, Region};

/// The kinds of identifier a row of a customer list can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IdentifierKind {
    Email,
    Phone,
}

impl IdentifierKind {
    /// The lowercase name used in reports and column names.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Phone => "phone",
        }
    }
}

/// Which string of a phone number is hashed.
///
/// Google and UID2 hash the E.164 form with its `+` (`+18005550100`); Meta, Snap and X hash the
/// digits only (`18005550100`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PhoneFormat {
    /// `+18005550100`.
    #[default]
    E164,
    /// `18005550100`.
    Digits,
}

/// Which form of an email address is hashed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum EmailForm {
    /// Trimmed and lowercased.
    #[default]
    Basic,
    /// As [`EmailForm::Basic`], and for `gmail.com` and `googlemail.com` the local part also
    /// loses its dots and any `+suffix` (Google's rule for Gmail addresses).
    GmailCanonical,
}
