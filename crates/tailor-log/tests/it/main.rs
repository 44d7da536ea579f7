//! Integration tests of the log's cryptography: public vectors, an independent reference
//! implementation of RFC 6962, properties, and signed-note conformance.

// Helpers outside `#[test]` functions unwrap too: in a test, a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod notes;
mod properties;
mod reference;
mod vectors;

use tailor_log::Hash;

/// Decodes a 32-byte hash written in hex.
fn h(hex: &str) -> Hash {
    hex::decode(hex).unwrap().try_into().unwrap()
}

/// Leaf hashes of the big-endian encodings of 0..n.
fn numbered_leaves(n: u64) -> Vec<Hash> {
    (0..n)
        .map(|i| tailor_log::leaf_hash(&i.to_be_bytes()))
        .collect()
}
