//! C2SP signed notes with Ed25519 keys, in the encodings of Go's `golang.org/x/mod/sumdb/note`.
//!
//! A note is a text ending in a newline, a blank line, and signature lines
//! `— <key name> <base64(key id || signature)>`. Key ids are the first four bytes of
//! SHA-256(name || "\n" || 0x01 || public key). A verifier ignores signatures by other keys, as
//! the spec requires, but every signature by its own key must verify.
//!
//! The private key must never reach a `Debug` output or an error message, and every buffer that
//! holds it is zeroized.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::Signer as _;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::checkpoint::Checkpoint;

/// The signature type byte of Ed25519 in the signed-note spec.
const ALG_ED25519: u8 = 0x01;
/// Em dash (U+2014) and a space: the start of every signature line.
const SIGNATURE_PREFIX: &str = "\u{2014} ";
const PRIVATE_KEY_PREFIX: &str = "PRIVATE+KEY+";
/// Go's limit; the spec asks verifiers to accept at least 16.
const MAX_SIGNATURES: usize = 100;

/// Why a key, a checkpoint body or a signed note was refused.
#[non_exhaustive]
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum NoteError {
    /// A key name that is empty or holds whitespace, '+' or a control character.
    #[error("invalid key name {name:?}: it must be non-empty, without whitespace, '+' or controls")]
    InvalidKeyName {
        /// The name as given.
        name: String,
    },
    /// A verifier key text that is not `<name>+<hex id>+<base64(0x01 || public key)>`.
    #[error("malformed verifier key: {reason}")]
    MalformedVerifierKey {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A private key text that is not `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>`.
    #[error("malformed private key: {reason}")]
    MalformedPrivateKey {
        /// What is wrong with it (never any of the key's bytes).
        reason: &'static str,
    },
    /// A key of a signature type other than Ed25519.
    #[error("unsupported signature algorithm 0x{algorithm:02x}: only ed25519 (0x01) is supported")]
    UnsupportedAlgorithm {
        /// The type byte found.
        algorithm: u8,
    },
    /// A key text whose key id is not the one its name and public key give.
    #[error(
        "key id {found:08x} of key {name} does not match its public key (expected {expected:08x})"
    )]
    KeyIdMismatch {
        /// The key name.
        name: String,
        /// The id computed from the name and public key.
        expected: u32,
        /// The id written in the key text.
        found: u32,
    },
    /// A checkpoint origin that could not be parsed back from a body.
    #[error("invalid checkpoint origin: {reason}")]
    InvalidOrigin {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A checkpoint body line that is missing or wrong.
    #[error("malformed checkpoint body line {line}: {reason}")]
    MalformedBody {
        /// The line number in the body, from 1.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A note (or a text to sign) that breaks the signed-note framing.
    #[error("malformed note: {reason}")]
    MalformedNote {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A signature line that cannot be parsed.
    #[error("malformed signature line {line} of the note: {reason}")]
    MalformedSignatureLine {
        /// The line number in the whole note, from 1.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A well-formed note that carries no signature by the verifying key.
    #[error("no signature by key {key}")]
    NoSignatureByKey {
        /// The key, as `<name>+<hex id>`.
        key: String,
    },
    /// A signature by the verifying key that does not verify.
    #[error("bad signature by key {key} on line {line} of the note")]
    BadSignature {
        /// The key, as `<name>+<hex id>`.
        key: String,
        /// The line number of the signature in the whole note, from 1.
        line: usize,
    },
}

/// An Ed25519 note signer: a key name, its key id and the private key.
pub struct SigningKey {
    name: String,
    id: u32,
    // Zeroized on drop by ed25519-dalek (its default `zeroize` feature).
    key: ed25519_dalek::SigningKey,
}

impl SigningKey {
    /// The signer for an Ed25519 seed (RFC 8032 private key) under a key name.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        let mut seed = seed;
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        seed.zeroize();
        check_key_name(name)?;
        let id = key_id(name, key.verifying_key().as_bytes());
        Ok(Self {
            name: name.to_owned(),
            id,
            key,
        })
    }

    /// The key name, which signature lines carry.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id, which signatures start with.
    #[must_use]
    pub fn key_id(&self) -> u32 {
        self.id
    }

    /// The public half, to verify this signer's notes.
    #[must_use]
    pub fn verifier(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            id: self.id,
            key: self.key.verifying_key(),
        }
    }

    /// The Go-compatible private key text `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>`.
    #[must_use]
    pub fn to_private_text(&self) -> Zeroizing<String> {
        let mut raw = Zeroizing::new([0u8; 33]);
        raw[0] = ALG_ED25519;
        raw[1..].copy_from_slice(self.key.as_bytes());
        // Sized up front so that the string never reallocates and leaves a copy behind.
        let capacity = PRIVATE_KEY_PREFIX.len() + self.name.len() + 10 + 44;
        let mut text = Zeroizing::new(String::with_capacity(capacity));
        text.push_str(PRIVATE_KEY_PREFIX);
        text.push_str(&self.name);
        text.push_str(&format!("+{:08x}+", self.id));
        STANDARD.encode_string(&raw[..], &mut text);
        text
    }

    /// Parses a private key text as [`SigningKey::to_private_text`] writes it (and Go's
    /// `note.GenerateKey`), checking the key id against the derived public key.
    pub fn from_private_text(text: &str) -> Result<Self, NoteError> {
        let malformed = |reason| NoteError::MalformedPrivateKey { reason };
        let rest = text
            .strip_prefix(PRIVATE_KEY_PREFIX)
            .ok_or(malformed("it must start with PRIVATE+KEY+"))?;
        let (name, id, key) = split_key_text(rest).ok_or(malformed(
            "expected PRIVATE+KEY+<name>+<8 hex digit key id>+<base64 key>",
        ))?;
        check_key_name(name)?;
        let id = parse_key_id(id).ok_or(malformed("the key id must be 8 lowercase hex digits"))?;
        // Decoded into a zeroized buffer (never a Vec that could reallocate and leave copies),
        // with room to spare so that a slightly over-long key is refused by its length.
        let mut raw = Zeroizing::new([0u8; 48]);
        let len = STANDARD
            .decode_slice(key, &mut raw[..])
            .map_err(|_| malformed("the key is not canonical base64 of 33 bytes"))?;
        if len > 0 && raw[0] != ALG_ED25519 {
            return Err(NoteError::UnsupportedAlgorithm { algorithm: raw[0] });
        }
        if len != 33 {
            return Err(malformed(
                "an ed25519 key is one type byte and a 32-byte seed",
            ));
        }
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&raw[1..33]);
        let signer = Self::from_seed(name, *seed)?;
        if signer.id != id {
            return Err(NoteError::KeyIdMismatch {
                name: name.to_owned(),
                expected: signer.id,
                found: id,
            });
        }
        Ok(signer)
    }

    /// The signed note of a checkpoint: its body, a blank line and this key's signature line.
    #[must_use]
    pub fn sign(&self, checkpoint: &Checkpoint) -> String {
        self.sign_unchecked(&checkpoint.body())
    }

    /// Signs any note text, which must end in a newline and hold no control character but
    /// newlines; used for conformance with other implementations' notes.
    pub fn sign_note(&self, text: &str) -> Result<String, NoteError> {
        if !text.ends_with('\n') {
            return Err(NoteError::MalformedNote {
                reason: "the text does not end with a newline",
            });
        }
        check_no_controls(text)?;
        Ok(self.sign_unchecked(text))
    }

    fn sign_unchecked(&self, text: &str) -> String {
        let signature = self.key.sign(text.as_bytes());
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&self.id.to_be_bytes());
        blob.extend_from_slice(&signature.to_bytes());
        format!(
            "{text}\n{SIGNATURE_PREFIX}{} {}\n",
            self.name,
            STANDARD.encode(blob)
        )
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.id))
            .finish_non_exhaustive()
    }
}

/// An Ed25519 note verifier: a key name, its key id and the public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    id: u32,
    key: ed25519_dalek::VerifyingKey,
}

impl VerifierKey {
    /// Parses `<name>+<hex id>+<base64(0x01 || public key)>`, checking the key id.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let malformed = |reason| NoteError::MalformedVerifierKey { reason };
        let (name, id, key) = split_key_text(text).ok_or(malformed(
            "expected <name>+<8 hex digit key id>+<base64 key>",
        ))?;
        check_key_name(name)?;
        let id = parse_key_id(id).ok_or(malformed("the key id must be 8 lowercase hex digits"))?;
        let key = STANDARD
            .decode(key)
            .map_err(|_| malformed("the key is not canonical base64"))?;
        let Some((&algorithm, public)) = key.split_first() else {
            return Err(malformed("the key is empty"));
        };
        // The id covers the type byte and the key whatever the algorithm, so check it first, as
        // Go does: a mismatch means a damaged key text rather than an unknown algorithm.
        let expected = key_id_raw(name, &key);
        if expected != id {
            return Err(NoteError::KeyIdMismatch {
                name: name.to_owned(),
                expected,
                found: id,
            });
        }
        if algorithm != ALG_ED25519 {
            return Err(NoteError::UnsupportedAlgorithm { algorithm });
        }
        let public: &[u8; 32] = public
            .try_into()
            .map_err(|_| malformed("an ed25519 public key is 32 bytes"))?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(public)
            .map_err(|_| malformed("not a valid ed25519 public key"))?;
        Ok(Self {
            name: name.to_owned(),
            id,
            key,
        })
    }

    /// The text [`VerifierKey::parse`] reads.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut raw = [0u8; 33];
        raw[0] = ALG_ED25519;
        raw[1..].copy_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.id, STANDARD.encode(raw))
    }

    /// The key name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id.
    #[must_use]
    pub fn key_id(&self) -> u32 {
        self.id
    }

    /// Verifies a signed checkpoint: the note must carry a valid signature by this key (other
    /// keys' signatures are ignored), and its text must be a checkpoint body.
    ///
    /// The key name is not compared with the checkpoint's origin; callers that want them equal
    /// check it on the returned checkpoint.
    pub fn verify(&self, note: &str) -> Result<Checkpoint, NoteError> {
        Checkpoint::parse_body(self.verify_note(note)?)
    }

    /// Verifies any signed note and returns its text (including the final newline).
    ///
    /// Like Go's `note.Open`, it refuses control characters, a missing blank line, a malformed
    /// signature line by any key and more than 100 signatures. Unlike it, every signature by
    /// this key must verify, not only the first (the spec says clients should reject the note).
    pub fn verify_note<'n>(&self, note: &'n str) -> Result<&'n str, NoteError> {
        let malformed = |reason| NoteError::MalformedNote { reason };
        check_no_controls(note)?;
        let split = note
            .rfind("\n\n")
            .ok_or(malformed("no blank line before the signatures"))?;
        let (text, signatures) = (&note[..=split], &note[split + 2..]);
        let Some(signatures) = signatures.strip_suffix('\n') else {
            return Err(malformed(if signatures.is_empty() {
                "no signature lines"
            } else {
                "the last signature line does not end with a newline"
            }));
        };
        // The text's lines, then the blank line: signature lines are numbered after them.
        let first_line = text.matches('\n').count() + 2;
        // Counted before any signature is checked, so that a huge note costs no verification.
        if signatures.split('\n').nth(MAX_SIGNATURES).is_some() {
            return Err(malformed("more than 100 signatures"));
        }
        // A line identical to one already verified carries the same signature: skip it.
        let mut verified: Vec<&str> = Vec::new();
        for (i, line) in signatures.split('\n').enumerate() {
            let line_number = first_line + i;
            if verified.contains(&line) {
                continue;
            }
            let (name, id, signature) =
                parse_signature_line(line).map_err(|reason| NoteError::MalformedSignatureLine {
                    line: line_number,
                    reason,
                })?;
            if name != self.name || id != self.id {
                continue;
            }
            let bad = || NoteError::BadSignature {
                key: format!("{}+{:08x}", self.name, self.id),
                line: line_number,
            };
            let signature: [u8; 64] = signature.try_into().map_err(|_| bad())?;
            let signature = ed25519_dalek::Signature::from_bytes(&signature);
            self.key
                .verify_strict(text.as_bytes(), &signature)
                .map_err(|_| bad())?;
            verified.push(line);
        }
        if !verified.is_empty() {
            Ok(text)
        } else {
            Err(NoteError::NoSignatureByKey {
                key: format!("{}+{:08x}", self.name, self.id),
            })
        }
    }
}

/// Key names are non-empty, without Unicode whitespace or '+' (the spec) and without control
/// characters (which a note may not contain).
fn check_key_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty()
        || name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '+')
    {
        Err(NoteError::InvalidKeyName {
            name: name.to_owned(),
        })
    } else {
        Ok(())
    }
}

fn check_no_controls(text: &str) -> Result<(), NoteError> {
    // Bytes of multi-byte UTF-8 sequences are all >= 0x80, so a byte scan finds every
    // control character.
    if text.bytes().any(|b| b < 0x20 && b != b'\n') {
        Err(NoteError::MalformedNote {
            reason: "control character other than newline",
        })
    } else {
        Ok(())
    }
}

/// `<name>+<id>+<key>`, the key being everything after the second '+' (base64 holds '+').
fn split_key_text(text: &str) -> Option<(&str, &str, &str)> {
    let (name, rest) = text.split_once('+')?;
    let (id, key) = rest.split_once('+')?;
    Some((name, id, key))
}

/// Exactly eight lowercase hex digits, as Go's "%08x" writes them.
fn parse_key_id(text: &str) -> Option<u32> {
    let canonical = text.len() == 8
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    canonical.then(|| u32::from_str_radix(text, 16).ok())?
}

/// `— <name> <base64(id || signature)>` into its name, key id and signature bytes.
fn parse_signature_line(line: &str) -> Result<(&str, u32, Vec<u8>), &'static str> {
    let rest = line
        .strip_prefix(SIGNATURE_PREFIX)
        .ok_or("it does not start with an em dash and a space")?;
    let (name, signature) = rest
        .split_once(' ')
        .ok_or("expected a key name, a space and a base64 signature")?;
    check_key_name(name).map_err(|_| "invalid key name")?;
    let signature = STANDARD
        .decode(signature)
        .map_err(|_| "the signature is not canonical base64")?;
    match signature.split_first_chunk::<4>() {
        Some((id, rest)) if !rest.is_empty() => Ok((name, u32::from_be_bytes(*id), rest.to_vec())),
        _ => Err("the signature is shorter than a key id and one byte"),
    }
}

/// SHA-256(name || "\n" || 0x01 || public key), first four bytes, big-endian.
fn key_id(name: &str, public: &[u8; 32]) -> u32 {
    let mut raw = [0u8; 33];
    raw[0] = ALG_ED25519;
    raw[1..].copy_from_slice(public);
    key_id_raw(name, &raw)
}

/// The key id of a type byte and public key.
fn key_id_raw(name: &str, typed_key: &[u8]) -> u32 {
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update(b"\n")
        .chain_update(typed_key)
        .finalize();
    let mut id = [0u8; 4];
    id.copy_from_slice(&digest[..4]);
    u32::from_be_bytes(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_private_key() {
        let signer = SigningKey::from_seed("tailor.example/log", [42; 32]).unwrap();
        let debug = format!("{signer:?}");
        assert!(debug.contains("tailor.example/log"), "{debug}");
        let private = signer.to_private_text();
        let encoded = private.rsplit('+').next().unwrap();
        assert!(!debug.contains(encoded), "{debug}");
        assert!(!debug.contains("42"), "{debug}");
    }

    #[test]
    fn key_names_follow_the_spec() {
        for bad in [
            "",
            "a b",
            "a+b",
            "a\tb",
            "a\u{a0}b",
            "a\u{2028}b",
            "a\u{1}b",
        ] {
            assert!(
                SigningKey::from_seed(bad, [1; 32]).is_err(),
                "{bad:?} accepted"
            );
        }
        for good in ["a", "tailor.example/log", "PeterNeumann", "ünïcødé—ok"] {
            assert!(SigningKey::from_seed(good, [1; 32]).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn key_ids_are_lowercase_hex() {
        assert_eq!(parse_key_id("c74f20a3"), Some(0xc74f_20a3));
        for bad in [
            "C74F20A3",
            "c74f20a",
            "c74f20a30",
            "+74f20a3",
            "g74f20a3",
            "",
        ] {
            assert_eq!(parse_key_id(bad), None, "{bad:?}");
        }
    }
}
