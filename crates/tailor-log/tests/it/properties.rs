//! Properties over random trees of up to 300 leaves: every proof verifies, any change to a
//! proof, root, leaf, index or size is refused, and the streaming root agrees with `root_of`.

use proptest::prelude::*;
use tailor_log::{
    Frontier, consistency_proof, inclusion_proof, root_of, verify_consistency, verify_inclusion,
};

use crate::numbered_leaves;

fn config() -> ProptestConfig {
    // Each case builds every proof of a tree of up to 300 leaves; a few dozen cases cover the
    // shapes (perfect, one-off, ragged) without making the suite slow.
    ProptestConfig::with_cases(32)
}

/// A tree size and a point inside it: (n, i) with 1 <= n <= 300 and i < n.
fn size_and_index() -> impl Strategy<Value = (u64, u64)> {
    (1u64..=300).prop_flat_map(|n| (Just(n), 0..n))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_inclusion_proof_verifies(n in 1u64..=300) {
        let leaves = numbered_leaves(n);
        let root = root_of(&leaves);
        for index in 0..n {
            let proof = inclusion_proof(&leaves, index, n).unwrap();
            let leaf = leaves[index as usize];
            prop_assert!(verify_inclusion(&leaf, index, n, &proof, &root).is_ok());
        }
    }

    #[test]
    fn every_consistency_proof_verifies(n in 1u64..=300) {
        let leaves = numbered_leaves(n);
        let new_root = root_of(&leaves);
        let mut frontier = Frontier::new();
        for old in 0..=n {
            let proof = consistency_proof(&leaves, old, n).unwrap();
            prop_assert!(verify_consistency(old, n, &frontier.root(), &new_root, &proof).is_ok());
            if old < n {
                frontier.push(leaves[old as usize]);
            }
        }
    }

    #[test]
    fn frontier_root_equals_root_of_every_prefix(n in 0u64..=300) {
        let leaves = numbered_leaves(n);
        let mut frontier = Frontier::new();
        prop_assert_eq!(frontier.root(), root_of(&[]));
        for (i, leaf) in leaves.iter().enumerate() {
            frontier.push(*leaf);
            prop_assert_eq!(frontier.size(), i as u64 + 1);
            prop_assert_eq!(frontier.root(), root_of(&leaves[..=i]));
        }
    }

    #[test]
    fn tampered_inclusion_is_refused(
        (n, index) in size_and_index(),
        size_delta in 1u64..=300,
        byte in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let leaves = numbered_leaves(n);
        let root = root_of(&leaves);
        let leaf = leaves[index as usize];
        let proof = inclusion_proof(&leaves, index, n).unwrap();
        let flip = |hash: &mut [u8; 32], at: usize| hash[at % 32] ^= 1 << bit;

        if !proof.is_empty() {
            let at = byte.index(proof.len() * 32);
            let mut wrong = proof.clone();
            flip(&mut wrong[at / 32], at);
            prop_assert!(verify_inclusion(&leaf, index, n, &wrong, &root).is_err());
        }
        let mut wrong_root = root;
        flip(&mut wrong_root, byte.index(32));
        prop_assert!(verify_inclusion(&leaf, index, n, &proof, &wrong_root).is_err());
        let mut wrong_leaf = leaf;
        flip(&mut wrong_leaf, byte.index(32));
        prop_assert!(verify_inclusion(&wrong_leaf, index, n, &proof, &root).is_err());

        // Another leaf's index must not verify, nor another tree size with that size's root (a
        // size is bound only together with its root: see `a_size_is_only_bound_by_its_root`).
        let others = [index ^ 1, index.wrapping_sub(1), index + 1, index ^ (1 << byte.index(9))];
        for other in others {
            if other != index {
                prop_assert!(verify_inclusion(&leaf, other, n, &proof, &root).is_err());
            }
        }
        let larger = n + size_delta;
        let more = numbered_leaves(larger);
        prop_assert!(verify_inclusion(&leaf, index, larger, &proof, &root_of(&more)).is_err());
        if index + 1 < n {
            let smaller = index + 1 + byte.index((n - index - 1) as usize) as u64;
            let smaller_root = root_of(&leaves[..smaller as usize]);
            prop_assert!(verify_inclusion(&leaf, index, smaller, &proof, &smaller_root).is_err());
        }
    }

    #[test]
    fn tampered_consistency_is_refused(
        (n, old) in size_and_index(),
        size_delta in 1u64..=300,
        byte in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        // 0 <= old < n: a real extension (old = 0 is the empty tree, with an empty proof).
        let leaves = numbered_leaves(n);
        let old_root = root_of(&leaves[..old as usize]);
        let new_root = root_of(&leaves);
        let proof = consistency_proof(&leaves, old, n).unwrap();
        let flip = |hash: &mut [u8; 32], at: usize| hash[at % 32] ^= 1 << bit;

        if !proof.is_empty() {
            let at = byte.index(proof.len() * 32);
            let mut wrong = proof.clone();
            flip(&mut wrong[at / 32], at);
            prop_assert!(verify_consistency(old, n, &old_root, &new_root, &wrong).is_err());
        }
        let mut wrong_old = old_root;
        flip(&mut wrong_old, byte.index(32));
        prop_assert!(verify_consistency(old, n, &wrong_old, &new_root, &proof).is_err());
        if old > 0 {
            // (Every tree extends the empty one: with old = 0 the new root is not constrained.)
            let mut wrong_new = new_root;
            flip(&mut wrong_new, byte.index(32));
            prop_assert!(verify_consistency(old, n, &old_root, &wrong_new, &proof).is_err());
        }

        // Another old size with the same roots, or another new size with that size's root.
        if old > 0 {
            prop_assert!(verify_consistency(old - 1, n, &old_root, &new_root, &proof).is_err());
        }
        if old + 1 < n {
            prop_assert!(verify_consistency(old + 1, n, &old_root, &new_root, &proof).is_err());
        }
        if old > 0 {
            let larger = n + size_delta;
            let more = numbered_leaves(larger);
            prop_assert!(
                verify_consistency(old, larger, &old_root, &root_of(&more), &proof).is_err()
            );
            if old + 1 < n {
                let smaller_root = root_of(&leaves[..n as usize - 1]);
                prop_assert!(
                    verify_consistency(old, n - 1, &old_root, &smaller_root, &proof).is_err()
                );
            }
        }
    }
}
