//! RFC 6962 hashing: the leaf and node hashes every other part of the log is built from.
//!
//! The one-byte prefixes (0x00 for leaves, 0x01 for interior nodes) are the domain separation that
//! keeps a leaf from being passed off as a node; nothing here may hash without them.

use sha2::{Digest, Sha256};

/// A SHA-256 output: a leaf hash, a node hash or a tree root.
pub type Hash = [u8; 32];

/// The root of the empty tree, SHA-256 of the empty string (RFC 6962 §2.1).
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// The hash of a log entry: SHA-256(0x00 || data).
#[must_use]
pub fn leaf_hash(data: &[u8]) -> Hash {
    Sha256::new()
        .chain_update([0x00])
        .chain_update(data)
        .finalize()
        .into()
}

/// The hash of an interior node: SHA-256(0x01 || left || right).
#[must_use]
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    // One contiguous buffer rather than three updates: the node hash is the hot loop of every
    // root computation, and 65 bytes fill exactly two SHA-256 blocks either way.
    let mut buf = [0u8; 65];
    buf[0] = 0x01;
    buf[1..33].copy_from_slice(left);
    buf[33..].copy_from_slice(right);
    Sha256::digest(buf).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        let digest: Hash = Sha256::digest(b"").into();
        assert_eq!(EMPTY_ROOT, digest);
    }

    #[test]
    fn prefixes_separate_leaves_from_nodes() {
        let left = leaf_hash(b"a");
        let right = leaf_hash(b"b");
        let mut concatenated = left.to_vec();
        concatenated.extend_from_slice(&right);
        // A 64-byte leaf equal to two hashes must not collide with their parent.
        assert_ne!(leaf_hash(&concatenated), node_hash(&left, &right));
        let mut manual = vec![0x01];
        manual.extend_from_slice(&concatenated);
        let expected: Hash = Sha256::digest(&manual).into();
        assert_eq!(node_hash(&left, &right), expected);
    }
}
