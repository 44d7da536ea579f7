//! Integration tests of the identifier layer: public vectors, conformance tables and properties.

// Helpers outside `#[test]` functions unwrap too: in a test, a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod index;
mod phone_conformance;
mod policy;
mod properties;
mod release;
mod type_safety;
mod vectors;
