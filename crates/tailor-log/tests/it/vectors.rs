//! The certificate-transparency / transparency-dev RFC 6962 vectors (data/rfc6962_vectors.json):
//! roots for every size 1..=8, the published inclusion and consistency proofs, and the Go
//! verifier's corruption probes, each of which must be refused.

use serde::Deserialize;
use tailor_log::{
    EMPTY_ROOT, Frontier, Hash, ProofError, consistency_proof, inclusion_proof, leaf_hash, root_of,
    verify_consistency, verify_inclusion,
};

use crate::h;

#[derive(Deserialize)]
struct Vectors {
    leaves: Vec<String>,
    empty_root: String,
    roots: Vec<String>,
    inclusion: Vec<Inclusion>,
    consistency: Vec<Consistency>,
}

#[derive(Deserialize)]
struct Inclusion {
    index: u64,
    size: u64,
    proof: Vec<String>,
}

#[derive(Deserialize)]
struct Consistency {
    old_size: u64,
    new_size: u64,
    proof: Vec<String>,
}

fn vectors() -> Vectors {
    serde_json::from_str(include_str!("data/rfc6962_vectors.json")).unwrap()
}

fn leaves(v: &Vectors) -> Vec<Hash> {
    v.leaves
        .iter()
        .map(|data| leaf_hash(&hex::decode(data).unwrap()))
        .collect()
}

fn hashes(proof: &[String]) -> Vec<Hash> {
    proof.iter().map(|x| h(x)).collect()
}

/// What is changed, then the arguments of `verify_inclusion`: index, size, leaf, proof, root.
type InclusionProbe = (&'static str, u64, u64, Hash, Vec<Hash>, Hash);
/// What is changed, then the arguments of `verify_consistency`: sizes, roots and proof.
type ConsistencyProbe = (&'static str, u64, u64, Hash, Hash, Vec<Hash>);

/// A hash that is nobody's root, from the Go tests.
const SOME_HASH: &str = "abacaba000000000000000000000000000000000000000000060061e00123456";

#[test]
fn roots_of_every_size() {
    let v = vectors();
    let leaves = leaves(&v);
    assert_eq!(EMPTY_ROOT, h(&v.empty_root));
    assert_eq!(root_of(&[]), EMPTY_ROOT);
    assert_eq!(Frontier::new().root(), EMPTY_ROOT);
    let mut frontier = Frontier::new();
    for (size, root) in (1..).zip(&v.roots) {
        frontier.push(leaves[size - 1]);
        assert_eq!(root_of(&leaves[..size]), h(root), "size {size}");
        assert_eq!(frontier.root(), h(root), "frontier at size {size}");
        assert_eq!(frontier.size(), size as u64);
    }
    // The root of one leaf is its leaf hash: SHA-256(0x00).
    assert_eq!(
        leaf_hash(b""),
        h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
    );
}

#[test]
fn published_inclusion_proofs() {
    let v = vectors();
    let leaves = leaves(&v);
    for case in &v.inclusion {
        let expected = hashes(&case.proof);
        let root = h(&v.roots[case.size as usize - 1]);
        let leaf = leaves[case.index as usize];
        let proof = inclusion_proof(&leaves, case.index, case.size).unwrap();
        assert_eq!(proof, expected, "leaf {} of {}", case.index, case.size);
        verify_inclusion(&leaf, case.index, case.size, &proof, &root).unwrap();

        // The Go verifier's probes: every one of them must be refused.
        let (index, size) = (case.index, case.size);
        let mut probes: Vec<InclusionProbe> = vec![
            (
                "index - 1",
                index.wrapping_sub(1),
                size,
                leaf,
                proof.clone(),
                root,
            ),
            ("index + 1", index + 1, size, leaf, proof.clone(), root),
            ("index ^ 2", index ^ 2, size, leaf, proof.clone(), root),
            ("size * 2", index, size * 2, leaf, proof.clone(), root),
            ("size / 2", index, size / 2, leaf, proof.clone(), root),
            (
                "wrong leaf",
                index,
                size,
                leaf_hash(b"WrongLeaf"),
                proof.clone(),
                root,
            ),
            ("empty root", index, size, leaf, proof.clone(), EMPTY_ROOT),
            (
                "random root",
                index,
                size,
                leaf,
                proof.clone(),
                h(SOME_HASH),
            ),
            (
                "trailing root",
                index,
                size,
                leaf,
                [&proof[..], &[root]].concat(),
                root,
            ),
            (
                "preceding root",
                index,
                size,
                leaf,
                [&[root], &proof[..]].concat(),
                root,
            ),
        ];
        for i in 0..proof.len() {
            let mut wrong = proof.clone();
            wrong[i][0] ^= 8;
            probes.push(("modified proof bit 3", index, size, leaf, wrong, root));
        }
        if !proof.is_empty() {
            let removed = proof[..proof.len() - 1].to_vec();
            probes.push(("removed component", index, size, leaf, removed, root));
        }
        if proof.len() > 1 {
            let inserted = [&proof[..1], &[h(SOME_HASH)], &proof[1..]].concat();
            probes.push(("inserted component", index, size, leaf, inserted, root));
        }
        for (what, index, size, leaf, proof, root) in probes {
            assert!(
                verify_inclusion(&leaf, index, size, &proof, &root).is_err(),
                "{what} verified (leaf {} of {})",
                case.index,
                case.size
            );
        }
    }
}

#[test]
fn inclusion_errors_say_what_is_wrong() {
    let v = vectors();
    let leaves = leaves(&v);
    let root = h(&v.roots[7]);
    let proof = inclusion_proof(&leaves, 0, 8).unwrap();
    assert_eq!(
        verify_inclusion(&leaves[0], 8, 8, &proof, &root),
        Err(ProofError::IndexOutOfRange { index: 8, size: 8 })
    );
    assert_eq!(
        verify_inclusion(&leaves[0], 0, 0, &[], &EMPTY_ROOT),
        Err(ProofError::IndexOutOfRange { index: 0, size: 0 })
    );
    assert_eq!(
        verify_inclusion(&leaves[0], 0, 8, &proof[..2], &root),
        Err(ProofError::WrongProofLength {
            expected: 3,
            actual: 2
        })
    );
    assert_eq!(
        verify_inclusion(&leaves[1], 0, 8, &proof, &root),
        Err(ProofError::RootMismatch)
    );
    // A single-leaf tree: the root is the leaf hash and the proof is empty.
    verify_inclusion(&leaves[0], 0, 1, &[], &leaves[0]).unwrap();
    assert_eq!(
        verify_inclusion(&leaves[0], 0, 1, &[], &leaves[1]),
        Err(ProofError::RootMismatch)
    );
}

#[test]
fn published_consistency_proofs() {
    let v = vectors();
    let leaves = leaves(&v);
    for case in &v.consistency {
        let (old, new) = (case.old_size, case.new_size);
        let expected = hashes(&case.proof);
        let old_root = h(&v.roots[old as usize - 1]);
        let new_root = h(&v.roots[new as usize - 1]);
        let proof = consistency_proof(&leaves, old, new).unwrap();
        assert_eq!(proof, expected, "{old} -> {new}");
        verify_consistency(old, new, &old_root, &new_root, &proof).unwrap();
        if proof.is_empty() {
            continue;
        }

        let wrong_root = h(SOME_HASH);
        let mut probes: Vec<ConsistencyProbe> = vec![
            ("old - 1", old - 1, new, old_root, new_root, proof.clone()),
            ("old + 1", old + 1, new, old_root, new_root, proof.clone()),
            ("old ^ 2", old ^ 2, new, old_root, new_root, proof.clone()),
            ("new * 2", old, new * 2, old_root, new_root, proof.clone()),
            ("new / 2", old, new / 2, old_root, new_root, proof.clone()),
            (
                "wrong old root",
                old,
                new,
                wrong_root,
                new_root,
                proof.clone(),
            ),
            (
                "wrong new root",
                old,
                new,
                old_root,
                wrong_root,
                proof.clone(),
            ),
            ("swapped roots", old, new, new_root, old_root, proof.clone()),
            ("empty proof", old, new, old_root, new_root, Vec::new()),
            (
                "trailing old root",
                old,
                new,
                old_root,
                new_root,
                [&proof[..], &[old_root]].concat(),
            ),
            (
                "trailing new root",
                old,
                new,
                old_root,
                new_root,
                [&proof[..], &[new_root]].concat(),
            ),
            (
                "preceding old root",
                old,
                new,
                old_root,
                new_root,
                [&[old_root], &proof[..]].concat(),
            ),
            (
                "preceding new root",
                old,
                new,
                old_root,
                new_root,
                [&[new_root], &proof[..]].concat(),
            ),
            (
                "preceding proof[0]",
                old,
                new,
                old_root,
                new_root,
                [&proof[..1], &proof[..]].concat(),
            ),
            (
                "truncated proof",
                old,
                new,
                old_root,
                new_root,
                proof[..proof.len() - 1].to_vec(),
            ),
        ];
        for i in 0..proof.len() {
            let mut wrong = proof.clone();
            wrong[i][0] ^= 16;
            probes.push(("modified proof bit 4", old, new, old_root, new_root, wrong));
        }
        for (what, old, new, old_root, new_root, proof) in probes {
            assert!(
                verify_consistency(old, new, &old_root, &new_root, &proof).is_err(),
                "{what} verified ({} -> {})",
                case.old_size,
                case.new_size
            );
        }
    }
}

#[test]
fn consistency_edge_cases() {
    let v = vectors();
    let leaves = leaves(&v);
    let (root1, root8) = (h(&v.roots[0]), h(&v.roots[7]));
    // Every tree extends the empty tree, whose root must be EMPTY_ROOT.
    verify_consistency(0, 0, &EMPTY_ROOT, &EMPTY_ROOT, &[]).unwrap();
    verify_consistency(0, 8, &EMPTY_ROOT, &root8, &[]).unwrap();
    assert_eq!(
        consistency_proof(&leaves, 0, 8).unwrap(),
        Vec::<Hash>::new()
    );
    assert_eq!(
        verify_consistency(0, 8, &root1, &root8, &[]),
        Err(ProofError::OldRootMismatch)
    );
    assert_eq!(
        verify_consistency(0, 0, &EMPTY_ROOT, &root1, &[]),
        Err(ProofError::NewRootMismatch)
    );
    assert_eq!(
        verify_consistency(0, 1, &EMPTY_ROOT, &root1, &[EMPTY_ROOT]),
        Err(ProofError::WrongProofLength {
            expected: 0,
            actual: 1
        })
    );
    // A tree extends itself, with an empty proof.
    verify_consistency(8, 8, &root8, &root8, &[]).unwrap();
    assert_eq!(
        verify_consistency(8, 8, &root8, &root1, &[]),
        Err(ProofError::NewRootMismatch)
    );
    assert_eq!(
        verify_consistency(1, 1, &root1, &root1, &[root1]),
        Err(ProofError::WrongProofLength {
            expected: 0,
            actual: 1
        })
    );
    // Time does not run backwards.
    assert_eq!(
        verify_consistency(2, 1, &root1, &root1, &[]),
        Err(ProofError::OldSizeExceedsNewSize {
            old_size: 2,
            new_size: 1
        })
    );
    // Growth needs a proof.
    assert_eq!(
        verify_consistency(1, 2, &root1, &h(&v.roots[1]), &[]),
        Err(ProofError::WrongProofLength {
            expected: 1,
            actual: 0
        })
    );
    // A good proof against the wrong new root names the new root.
    let proof = consistency_proof(&leaves, 6, 8).unwrap();
    assert_eq!(
        verify_consistency(6, 8, &h(&v.roots[5]), &h(SOME_HASH), &proof),
        Err(ProofError::NewRootMismatch)
    );
    assert_eq!(
        verify_consistency(6, 8, &h(SOME_HASH), &root8, &proof),
        Err(ProofError::OldRootMismatch)
    );
}
