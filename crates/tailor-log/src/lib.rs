//! The cryptography of Tailor's tamper-evident log, free of IO.
//!
//! Every use of personal data is an entry in an append-only log (product promise 4). This crate
//! holds what makes that log tamper-evident: RFC 6962 Merkle tree hashing (leaf
//! SHA-256(0x00 || data), node SHA-256(0x01 || left || right)), the streaming root of millions
//! of entries in O(log n) memory, inclusion and consistency proofs at any past tree size, and
//! tree heads signed as C2SP checkpoints (c2sp.org/tlog-checkpoint) in Ed25519 signed notes
//! (c2sp.org/signed-note), with the key encodings of Go's `golang.org/x/mod/sumdb/note` so that
//! standard tooling can check them. The engine and the store persist entries and checkpoints and
//! call this crate; `tailor log verify` recomputes and checks everything through it.
//!
//! It must never do IO, read a clock, draw randomness or spawn work: keys are made from seeds the
//! caller generated, and every function is a deterministic function of its arguments.
//!
//! # Why no Merkle or note crate
//!
//! The issue asked for a maintained crate if one fits. None fitted cleanly (evaluated 2026-11):
//!
//! - `ct-merkle` 0.3 verifies inclusion of leaf *values* it hashes itself (its `HashableLeaf`
//!   trait), not of leaf hashes; it proves only against the current size of a
//!   `MemoryBackedTree` that keeps every value and interior node in memory (2n hashes), has no
//!   streaming root, and panics on out-of-range sizes.
//! - Cloudflare's `tlog_tiles` 0.2 and `signed_note` 0.2 (ports of Go's `sumdb/tlog` and
//!   `sumdb/note`) get the formats right, but their proofs read the tlog "stored hash" layout
//!   (all 2n interior hashes behind a `HashReader`), and they pin `sha2` 0.10, `base64` 0.21,
//!   `ed25519-dalek` 2, `rand_core` 0.6 and `thiserror` 1, duplicating every crypto dependency
//!   of the workspace, plus `url` and `serde_json`.
//!
//! The algorithms themselves are short (RFC 6962 §2.1, RFC 9162 §2.1.3–2.1.4, the signed-note
//! spec), so they are written here over `sha2` 0.11 and `ed25519-dalek` 3 (which shares that
//! `sha2`) and checked against the certificate-transparency / transparency-dev test vectors, an
//! independent literal implementation of the RFC's PATH and SUBPROOF, and the Go `note`
//! package's published PeterNeumann key and notes.

#![forbid(unsafe_code)]

mod checkpoint;
mod frontier;
mod hash;
mod note;
mod proof;

pub use checkpoint::Checkpoint;
pub use frontier::Frontier;
pub use hash::{EMPTY_ROOT, Hash, leaf_hash, node_hash};
pub use note::{NoteError, SigningKey, VerifierKey};
pub use proof::{
    ProofError, consistency_proof, inclusion_proof, root_of, verify_consistency, verify_inclusion,
};
