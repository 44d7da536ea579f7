//! The streaming root: a compact range over a prefix of the log, in O(log n) memory.
//!
//! `tailor log verify` recomputes the root of ten million entries by pushing leaf hashes through a
//! `Frontier`; it must never hold more than one hash per level of the tree.

use crate::hash::{EMPTY_ROOT, Hash, node_hash};

/// The roots of the perfect subtrees that make up a tree of `size` leaves, left to right.
///
/// There is one root per set bit of `size`, largest subtree first, so the frontier of ten million
/// leaves holds at most 24 hashes. Pushing a leaf merges the trailing perfect subtrees of equal
/// height (amortized one node hash per leaf); [`Frontier::root`] folds them right to left in the
/// order RFC 6962's MTH defines.
#[derive(Clone, Debug, Default)]
pub struct Frontier {
    size: u64,
    // Invariant: `subtrees.len() == size.count_ones()`, subtree `i` covering the `i`-th set bit
    // of `size` counted from the most significant one.
    subtrees: Vec<Hash>,
}

impl Frontier {
    /// An empty frontier (the empty tree).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one leaf hash (see [`crate::leaf_hash`]).
    pub fn push(&mut self, leaf: Hash) {
        // Each trailing one bit of `size` is a perfect subtree as tall as the one being built:
        // merge them, nearest first.
        let merges = self.size.trailing_ones() as usize;
        let keep = self.subtrees.len().saturating_sub(merges);
        let mut hash = leaf;
        for left in self.subtrees.drain(keep..).rev() {
            hash = node_hash(&left, &hash);
        }
        self.subtrees.push(hash);
        self.size += 1;
    }

    /// The number of leaves pushed so far.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The RFC 6962 root of the leaves pushed so far ([`EMPTY_ROOT`] when there are none).
    #[must_use]
    pub fn root(&self) -> Hash {
        let mut subtrees = self.subtrees.iter().rev();
        let Some(last) = subtrees.next() else {
            return EMPTY_ROOT;
        };
        subtrees.fold(*last, |right, left| node_hash(left, &right))
    }
}

impl Frontier {
    /// The frontier as bytes, for keeping it between appends: the size (8 bytes, big-endian),
    /// then its subtree roots.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(8 + 32 * self.subtrees.len());
        bytes.extend_from_slice(&self.size.to_be_bytes());
        for hash in &self.subtrees {
            bytes.extend_from_slice(hash);
        }
        bytes
    }

    /// A frontier read back from [`Frontier::to_bytes`]; `None` if the bytes are not one.
    #[must_use]
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let (size, rest) = bytes.split_first_chunk::<8>()?;
        let size = u64::from_be_bytes(*size);
        let (hashes, tail) = rest.as_chunks::<32>();
        if !tail.is_empty() || hashes.len() != size.count_ones() as usize {
            return None;
        }
        Some(Self {
            size,
            subtrees: hashes.to_vec(),
        })
    }
}

impl Extend<Hash> for Frontier {
    fn extend<I: IntoIterator<Item = Hash>>(&mut self, leaves: I) {
        for leaf in leaves {
            self.push(leaf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;

    #[test]
    fn a_frontier_survives_its_bytes() {
        let mut frontier = Frontier::new();
        for i in 0..37u8 {
            let copy = Frontier::from_bytes(&frontier.to_bytes()).unwrap();
            assert_eq!(
                (copy.size(), copy.root()),
                (frontier.size(), frontier.root())
            );
            frontier.push([i; 32]);
        }
        assert!(Frontier::from_bytes(&[0; 7]).is_none());
        let mut bytes = frontier.to_bytes();
        bytes.pop();
        assert!(Frontier::from_bytes(&bytes).is_none());
    }

    #[test]
    fn memory_is_one_hash_per_set_bit() {
        let mut frontier = Frontier::new();
        for i in 0u64..1000 {
            frontier.push(leaf_hash(&i.to_be_bytes()));
            assert_eq!(
                frontier.subtrees.len(),
                frontier.size().count_ones() as usize
            );
        }
    }

    #[test]
    fn empty_and_single_leaf() {
        let mut frontier = Frontier::new();
        assert_eq!(frontier.root(), EMPTY_ROOT);
        let leaf = leaf_hash(b"");
        frontier.push(leaf);
        assert_eq!(frontier.root(), leaf);
        assert_eq!(frontier.size(), 1);
    }
}
