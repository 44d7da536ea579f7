//! An independent, literal transcription of RFC 6962 §2.1 (MTH, PATH, SUBPROOF) over raw data,
//! hashing with `sha2` directly, against which the crate's proofs are compared for every tree
//! size up to 64, every leaf index and every old size.

use sha2::{Digest, Sha256};
use tailor_log::{
    Hash, consistency_proof, inclusion_proof, root_of, verify_consistency, verify_inclusion,
};

fn sha256(parts: &[&[u8]]) -> Hash {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// The largest power of two smaller than n.
fn k(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// MTH(D[n]) over entries (not leaf hashes).
fn mth(d: &[Vec<u8>]) -> Hash {
    match d.len() {
        0 => sha256(&[]),
        1 => sha256(&[&[0x00], &d[0]]),
        n => {
            let k = k(n);
            sha256(&[&[0x01], &mth(&d[..k]), &mth(&d[k..])])
        }
    }
}

/// PATH(m, D[n]).
fn path(m: usize, d: &[Vec<u8>]) -> Vec<Hash> {
    let n = d.len();
    if n == 1 {
        return Vec::new();
    }
    let k = k(n);
    if m < k {
        let mut proof = path(m, &d[..k]);
        proof.push(mth(&d[k..]));
        proof
    } else {
        let mut proof = path(m - k, &d[k..]);
        proof.push(mth(&d[..k]));
        proof
    }
}

/// SUBPROOF(m, D[n], b).
fn subproof(m: usize, d: &[Vec<u8>], b: bool) -> Vec<Hash> {
    let n = d.len();
    if m == n {
        return if b { Vec::new() } else { vec![mth(d)] };
    }
    let k = k(n);
    if m <= k {
        let mut proof = subproof(m, &d[..k], b);
        proof.push(mth(&d[k..]));
        proof
    } else {
        let mut proof = subproof(m - k, &d[k..], false);
        proof.push(mth(&d[..k]));
        proof
    }
}

fn entries(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("entry {i}").into_bytes()).collect()
}

#[test]
fn roots_match_the_reference_up_to_64() {
    let data = entries(64);
    let leaves: Vec<Hash> = data.iter().map(|d| tailor_log::leaf_hash(d)).collect();
    for n in 0..=64 {
        assert_eq!(root_of(&leaves[..n]), mth(&data[..n]), "size {n}");
    }
}

#[test]
fn inclusion_proofs_match_the_reference_up_to_64() {
    let data = entries(64);
    let leaves: Vec<Hash> = data.iter().map(|d| tailor_log::leaf_hash(d)).collect();
    for n in 1..=64 {
        let root = mth(&data[..n]);
        for m in 0..n {
            let expected = path(m, &data[..n]);
            let proof = inclusion_proof(&leaves, m as u64, n as u64).unwrap();
            assert_eq!(proof, expected, "leaf {m} of {n}");
            verify_inclusion(&leaves[m], m as u64, n as u64, &proof, &root).unwrap();
        }
    }
}

#[test]
fn consistency_proofs_match_the_reference_up_to_64() {
    let data = entries(64);
    let leaves: Vec<Hash> = data.iter().map(|d| tailor_log::leaf_hash(d)).collect();
    for n in 1..=64 {
        let new_root = mth(&data[..n]);
        for m in 1..=n {
            let expected = subproof(m, &data[..n], true);
            let proof = consistency_proof(&leaves, m as u64, n as u64).unwrap();
            assert_eq!(proof, expected, "{m} -> {n}");
            let old_root = mth(&data[..m]);
            verify_consistency(m as u64, n as u64, &old_root, &new_root, &proof).unwrap();
        }
    }
}

/// RFC 6962 proofs bind a tree size only together with its root: the audit path of leaf 0 in a
/// tree of 5 leaves is also the path of leaf 0 in a tree of 6 leaves whose root is the 5-leaf
/// root (the last sibling being, in the claimed tree, a node rather than a leaf). Every
/// verifier of the RFC 9162 algorithm accepts it, so callers must take a size and a root from
/// the same signed checkpoint, never one from the proof's sender and one from elsewhere.
#[test]
fn a_size_is_only_bound_by_its_root() {
    let leaves = crate::numbered_leaves(6);
    let root5 = root_of(&leaves[..5]);
    let proof = inclusion_proof(&leaves, 0, 5).unwrap();
    verify_inclusion(&leaves[0], 0, 6, &proof, &root5).unwrap();
    // With the root that really belongs to size 6, the same claim fails.
    let root6 = root_of(&leaves);
    assert!(verify_inclusion(&leaves[0], 0, 6, &proof, &root6).is_err());
}
