//! Inclusion and consistency proofs (RFC 6962 §2.1.1–2.1.2, verified as in RFC 9162 §2.1.3–2.1.4).
//!
//! Proofs are built from the list of leaf hashes the store hands in, at any past tree size, and
//! verified from hashes alone. A verifier must never accept a proof of the wrong length, for a
//! leaf index outside the tree, or for an old size larger than the new one: each of those is an
//! error of its own, so that `tailor log verify` can say what is wrong.

use crate::frontier::Frontier;
use crate::hash::{EMPTY_ROOT, Hash, node_hash};

/// Why a proof could not be built or did not verify.
#[non_exhaustive]
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    /// The leaf index is not inside the tree (every index is outside the empty tree).
    #[error("index out of range: leaf {index} is not in a tree of size {size}")]
    IndexOutOfRange {
        /// The zero-based leaf index asked for.
        index: u64,
        /// The tree size it was asked for in.
        size: u64,
    },
    /// A proof was asked for over more leaves than were handed in.
    #[error("tree size {size} exceeds the {available} leaves given")]
    SizeExceedsLeaves {
        /// The tree size asked for.
        size: u64,
        /// The number of leaf hashes handed in.
        available: u64,
    },
    /// A consistency proof from a larger tree to a smaller one.
    #[error("old tree size {old_size} exceeds new tree size {new_size}")]
    OldSizeExceedsNewSize {
        /// The size of the older tree.
        old_size: u64,
        /// The size of the newer tree.
        new_size: u64,
    },
    /// The proof has the wrong number of hashes for its index and sizes.
    #[error("wrong proof length: expected {expected} hashes, got {actual}")]
    WrongProofLength {
        /// The number of hashes the sizes call for.
        expected: usize,
        /// The number of hashes given.
        actual: usize,
    },
    /// An inclusion proof leads to a root other than the one given.
    #[error("root mismatch: the inclusion proof does not lead to the given root")]
    RootMismatch,
    /// A consistency proof does not reproduce the old root.
    #[error("old root mismatch: the consistency proof does not reproduce the old root")]
    OldRootMismatch,
    /// A consistency proof reproduces the old root but not the new one.
    #[error("new root mismatch: the consistency proof does not lead to the new root")]
    NewRootMismatch,
}

/// The RFC 6962 root (MTH) of a list of leaf hashes; [`EMPTY_ROOT`] for an empty list.
#[must_use]
pub fn root_of(leaves: &[Hash]) -> Hash {
    let mut frontier = Frontier::new();
    frontier.extend(leaves.iter().copied());
    frontier.root()
}

/// The audit path (RFC 6962 §2.1.1 PATH) of leaf `index` in the tree made of the first `size`
/// leaves, ordered from the leaf's sibling up to the root's child.
///
/// It costs about `size` node hashes: nothing is cached between calls.
pub fn inclusion_proof(leaves: &[Hash], index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
    let tree = prefix(leaves, size)?;
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut proof = Vec::with_capacity(64 - size.leading_zeros() as usize);
    // `index < size <= leaves.len()`, so the index fits in a usize.
    path(index as usize, tree, &mut proof);
    Ok(proof)
}

/// The consistency proof (RFC 6962 §2.1.2 PROOF) between the trees made of the first `old_size`
/// and the first `new_size` leaves.
///
/// The proof is empty when `old_size` is 0 or equals `new_size` (every tree extends the empty
/// tree, and a tree extends itself). It costs about `new_size` node hashes.
pub fn consistency_proof(
    leaves: &[Hash],
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, ProofError> {
    let tree = prefix(leaves, new_size)?;
    if old_size > new_size {
        return Err(ProofError::OldSizeExceedsNewSize { old_size, new_size });
    }
    let mut proof = Vec::new();
    if old_size != 0 && old_size != new_size {
        // `old_size < new_size <= leaves.len()`, so it fits in a usize.
        subproof(old_size as usize, tree, true, &mut proof);
    }
    Ok(proof)
}

/// Checks that `leaf` is the leaf hash at `index` in the tree of `size` leaves whose root is
/// `root`.
///
/// A proof binds `size` only together with `root` (RFC 9162 §2.1.3.2): the proof for a tree of
/// 5 leaves also passes for a claimed size of 6 *with the 5-leaf root*. Take both from the same
/// signed checkpoint.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (inner, border) = decompose(index, size);
    check_length(proof, inner + border)?;
    let (inner_proof, border_proof) = proof.split_at(inner);
    let computed = chain_border_right(chain_inner(*leaf, inner_proof, index), border_proof);
    if computed == *root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// Checks that the tree of `new_size` leaves with root `new_root` extends the tree of `old_size`
/// leaves with root `old_root`.
///
/// An old size of 0 needs an empty proof and [`EMPTY_ROOT`] as the old root (the new root is then
/// unconstrained); equal sizes need an empty proof and equal roots. As with inclusion, the new
/// size is bound only together with the new root.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::OldSizeExceedsNewSize { old_size, new_size });
    }
    if old_size == 0 {
        // Stricter than the Go verifiers, which ignore both roots here: a checkpoint claiming
        // an empty tree with any other root is itself wrong, and `tailor log verify` must say so.
        check_length(proof, 0)?;
        if *old_root != EMPTY_ROOT {
            return Err(ProofError::OldRootMismatch);
        }
        if new_size == 0 && *new_root != EMPTY_ROOT {
            return Err(ProofError::NewRootMismatch);
        }
        return Ok(());
    }
    if old_size == new_size {
        check_length(proof, 0)?;
        return if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::NewRootMismatch)
        };
    }

    // The old tree's rightmost perfect subtree has 2^shift leaves. When the old tree is itself
    // perfect the proof omits its root (the verifier knows it); otherwise the proof starts with
    // the hash of that subtree, and the path from it up to the new root follows.
    let (inner, border) = decompose(old_size - 1, new_size);
    let shift = old_size.trailing_zeros() as usize;
    let inner = inner.saturating_sub(shift);
    let start = usize::from(old_size != 1 << shift);
    check_length(proof, start + inner + border)?;
    let (seed, rest) = match proof.split_first() {
        Some((first, rest)) if start == 1 => (*first, rest),
        _ => (*old_root, proof),
    };
    let (inner_proof, border_proof) = rest.split_at(inner);
    let mask = (old_size - 1) >> shift;

    let old = chain_border_right(chain_inner_right(seed, inner_proof, mask), border_proof);
    if old != *old_root {
        return Err(ProofError::OldRootMismatch);
    }
    let new = chain_border_right(chain_inner(seed, inner_proof, mask), border_proof);
    if new != *new_root {
        return Err(ProofError::NewRootMismatch);
    }
    Ok(())
}

/// The first `size` leaves, or an error when fewer were handed in.
fn prefix(leaves: &[Hash], size: u64) -> Result<&[Hash], ProofError> {
    usize::try_from(size)
        .ok()
        .and_then(|size| leaves.get(..size))
        .ok_or(ProofError::SizeExceedsLeaves {
            size,
            available: leaves.len() as u64,
        })
}

fn check_length(proof: &[Hash], expected: usize) -> Result<(), ProofError> {
    if proof.len() == expected {
        Ok(())
    } else {
        Err(ProofError::WrongProofLength {
            expected,
            actual: proof.len(),
        })
    }
}

/// The largest power of two strictly smaller than `n` (RFC 6962's k), for `n >= 2`.
fn split_point(n: usize) -> usize {
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// RFC 6962 PATH(m, D[n]), appending the hashes bottom-up.
fn path(m: usize, tree: &[Hash], proof: &mut Vec<Hash>) {
    if tree.len() <= 1 {
        return;
    }
    let k = split_point(tree.len());
    let (left, right) = tree.split_at(k);
    if m < k {
        path(m, left, proof);
        proof.push(root_of(right));
    } else {
        path(m - k, right, proof);
        proof.push(root_of(left));
    }
}

/// RFC 6962 SUBPROOF(m, D[n], b), appending the hashes bottom-up; `0 < m <= tree.len()`.
fn subproof(m: usize, tree: &[Hash], complete: bool, proof: &mut Vec<Hash>) {
    if m == tree.len() {
        if !complete {
            proof.push(root_of(tree));
        }
        return;
    }
    let k = split_point(tree.len());
    let (left, right) = tree.split_at(k);
    if m <= k {
        subproof(m, left, complete, proof);
        proof.push(root_of(right));
    } else {
        subproof(m - k, right, false, proof);
        proof.push(root_of(left));
    }
}

/// Splits the audit path of leaf `index` in a tree of `size` leaves into its inner part (the
/// levels where the path to `index` and the path to the last leaf differ) and its border part
/// (the levels above, where `index` is on the right edge and the siblings are all on its left).
fn decompose(index: u64, size: u64) -> (usize, usize) {
    let inner = (u64::BITS - (index ^ (size - 1)).leading_zeros()) as usize;
    let border = index.checked_shr(inner as u32).unwrap_or(0).count_ones() as usize;
    (inner, border)
}

/// Hashes `seed` up the inner levels, on the side bit `i` of `index` says.
fn chain_inner(seed: Hash, proof: &[Hash], index: u64) -> Hash {
    proof.iter().enumerate().fold(seed, |hash, (i, sibling)| {
        if (index >> i) & 1 == 0 {
            node_hash(&hash, sibling)
        } else {
            node_hash(sibling, &hash)
        }
    })
}

/// Like [`chain_inner`] but only through the left siblings: the nodes of the old tree.
fn chain_inner_right(seed: Hash, proof: &[Hash], index: u64) -> Hash {
    proof.iter().enumerate().fold(seed, |hash, (i, sibling)| {
        if (index >> i) & 1 == 1 {
            node_hash(sibling, &hash)
        } else {
            hash
        }
    })
}

/// Hashes `seed` up the border levels, where every sibling is on the left.
fn chain_border_right(seed: Hash, proof: &[Hash]) -> Hash {
    proof
        .iter()
        .fold(seed, |hash, sibling| node_hash(sibling, &hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn split_point_is_the_largest_power_of_two_below() {
        for (n, k) in [
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 4),
            (8, 4),
            (9, 8),
            (1 << 20, 1 << 19),
        ] {
            assert_eq!(split_point(n), k, "n = {n}");
        }
    }

    #[test]
    fn proof_lengths_match_the_decomposition() {
        let tree = leaves(70);
        for size in 1..=70 {
            for index in 0..size {
                let (inner, border) = decompose(index, size);
                let proof = inclusion_proof(&tree, index, size).unwrap();
                assert_eq!(proof.len(), inner + border, "index {index} size {size}");
            }
        }
    }

    #[test]
    fn sizes_beyond_the_leaves_are_refused() {
        let tree = leaves(3);
        assert_eq!(
            inclusion_proof(&tree, 0, 4),
            Err(ProofError::SizeExceedsLeaves {
                size: 4,
                available: 3
            })
        );
        assert_eq!(
            consistency_proof(&tree, 1, u64::MAX),
            Err(ProofError::SizeExceedsLeaves {
                size: u64::MAX,
                available: 3
            })
        );
        assert_eq!(
            consistency_proof(&tree, 3, 2),
            Err(ProofError::OldSizeExceedsNewSize {
                old_size: 3,
                new_size: 2
            })
        );
        assert_eq!(
            inclusion_proof(&tree, 3, 3),
            Err(ProofError::IndexOutOfRange { index: 3, size: 3 })
        );
    }

    #[test]
    fn huge_sizes_do_not_overflow() {
        let leaf = leaf_hash(b"x");
        // Garbage proofs against absurd sizes must fail cleanly, never panic.
        for (index, size) in [(0, u64::MAX), (u64::MAX - 1, u64::MAX), (1 << 63, u64::MAX)] {
            assert!(verify_inclusion(&leaf, index, size, &[leaf; 3], &leaf).is_err());
        }
        for (old, new) in [(1, u64::MAX), (u64::MAX - 1, u64::MAX), (1 << 63, u64::MAX)] {
            assert!(verify_consistency(old, new, &leaf, &leaf, &[leaf; 3]).is_err());
        }
    }
}
