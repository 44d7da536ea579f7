//! Tailor's domain, free of IO.
//!
//! This crate holds what every other Tailor crate agrees on: how an email address, a phone
//! number or a SHA-256 digest is recognized and normalized, how it is hashed under each platform
//! convention, and the vocabulary of reasons for which an identifier is refused.
//!
//! It must never do IO, spawn threads, log, read a clock or draw randomness: time and randomness
//! are passed in by callers, so that everything here is deterministic and testable.

#![forbid(unsafe_code)]

pub mod identifier;
pub mod reject;

pub use identifier::{
    E164Phone, EmailForm, IdentifierKind, NormalizedEmail, PhoneFormat, Region, Sha256Digest,
};
pub use reject::{RejectCounts, RejectReason};
