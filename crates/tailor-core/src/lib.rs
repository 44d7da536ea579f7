//! Tailor's domain, free of IO.
//!
//! This crate holds what every other Tailor crate agrees on: how an email address, a phone
//! number or a SHA-256 digest is recognized and normalized, how it is hashed under each platform
//! convention, and the vocabulary of reasons for which an identifier is refused; contact points
//! and the context they were collected in, purposes, consent history, the policy that decides
//! eligibility, keyed digests, and the in-memory index of eligible identifiers.
//!
//! It must never do IO, spawn threads, log, read a clock or draw randomness: time and randomness
//! are passed in by callers, so that everything here is deterministic and testable.

#![forbid(unsafe_code)]

pub mod account;
pub mod consent;
pub mod contact;
pub mod identifier;
pub mod index;
pub mod keyed;
pub mod policy;
pub mod processing;
pub mod purpose;
pub mod reject;
pub mod release;

pub use account::{AccountNo, AccountRegion};
pub use consent::{ConsentEvent, ConsentSource, ConsentState, Standing};
pub use contact::{ContactKind, Context, MarketingContext};
pub use identifier::{
    E164Phone, EmailForm, IdentifierKind, NormalizedEmail, PhoneFormat, Region, Sha256Digest,
};
pub use index::{EligibleIndex, IndexedBasis};
pub use keyed::{ContactDigests, IndexKey, KeyedDigest};
pub use policy::{
    AccountFacts, Basis, ContactFacts, Ineligible, MarketingEligible, Policy, PolicyVersion,
};
pub use purpose::Purpose;
pub use reject::{RejectCounts, RejectReason};
pub use release::{
    Epsilon, EpsilonError, KeySetDigest, Noise, NoiseKey, NoiseSeed, QueryDigest, QueryOp,
    ReleaseConfig, ReleasedSize, UploadKeys,
};
