//! Signed notes and checkpoints: conformance with Go's `golang.org/x/mod/sumdb/note` (its
//! published keys and notes, data/go_note_vectors.json), round trips, and every kind of
//! tampering refused with the error that names it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tailor_log::{Checkpoint, NoteError, SigningKey, VerifierKey, root_of};

use crate::numbered_leaves;

#[derive(Deserialize)]
struct GoVectors {
    peter_verifier: String,
    peter_private: String,
    enoch_verifier: String,
    text: String,
    peter_signature_line: String,
    enoch_signature_line: String,
}

fn go() -> GoVectors {
    serde_json::from_str(include_str!("data/go_note_vectors.json")).unwrap()
}

fn malformed_note(reason: &'static str) -> NoteError {
    NoteError::MalformedNote { reason }
}

// ---- Conformance with the Go reference implementation ----------------------------------------

#[test]
fn go_keys_parse_and_print_back_byte_for_byte() {
    let go = go();
    let peter = VerifierKey::parse(&go.peter_verifier).unwrap();
    assert_eq!(peter.name(), "PeterNeumann");
    assert_eq!(peter.key_id(), 0xc74f_20a3);
    assert_eq!(peter.to_text(), go.peter_verifier);

    let signer = SigningKey::from_private_text(&go.peter_private).unwrap();
    assert_eq!(signer.name(), "PeterNeumann");
    assert_eq!(signer.key_id(), 0xc74f_20a3);
    assert_eq!(signer.verifier(), peter);
    assert_eq!(signer.to_private_text().as_str(), go.peter_private);

    let enoch = VerifierKey::parse(&go.enoch_verifier).unwrap();
    assert_eq!(enoch.key_id(), 0xaf0c_fe78);
    assert_eq!(enoch.to_text(), go.enoch_verifier);
}

#[test]
fn go_note_is_reproduced_and_verified() {
    let go = go();
    let signer = SigningKey::from_private_text(&go.peter_private).unwrap();
    let note = format!("{}\n{}", go.text, go.peter_signature_line);
    // Ed25519 is deterministic: signing the same text gives Go's published note exactly.
    assert_eq!(signer.sign_note(&go.text).unwrap(), note);

    let peter = VerifierKey::parse(&go.peter_verifier).unwrap();
    assert_eq!(peter.verify_note(&note).unwrap(), go.text);

    // Both signatures of Go's doubly-signed note verify, each with its own key, and each key
    // ignores the other's line.
    let both = format!(
        "{}\n{}{}",
        go.text, go.peter_signature_line, go.enoch_signature_line
    );
    let enoch = VerifierKey::parse(&go.enoch_verifier).unwrap();
    assert_eq!(peter.verify_note(&both).unwrap(), go.text);
    assert_eq!(enoch.verify_note(&both).unwrap(), go.text);
    assert_eq!(
        enoch.verify_note(&note),
        Err(NoteError::NoSignatureByKey {
            key: "EnochRoot+af0cfe78".to_owned()
        })
    );
    // Repeated signatures are fine as long as every one by the key verifies.
    let repeated = format!(
        "{}\n{}{}{}{}",
        go.text,
        go.peter_signature_line,
        go.peter_signature_line,
        go.enoch_signature_line,
        go.enoch_signature_line
    );
    assert_eq!(peter.verify_note(&repeated).unwrap(), go.text);
    // The text of Go's note is not a checkpoint, so `verify` refuses it after the signature.
    assert!(matches!(
        peter.verify(&note),
        Err(NoteError::MalformedBody { line: 2, .. })
    ));
}

#[test]
fn go_malformed_notes_are_refused() {
    let go = go();
    let peter = VerifierKey::parse(&go.peter_verifier).unwrap();
    let (text, sig) = (&go.text, &go.peter_signature_line);
    let cases: Vec<(String, NoteError)> = vec![
        (
            text.clone(),
            malformed_note("no blank line before the signatures"),
        ),
        (format!("{text}\n"), malformed_note("no signature lines")),
        (
            format!("{text}\n{}", &sig[..sig.len() - 1]),
            malformed_note("the last signature line does not end with a newline"),
        ),
        (
            format!("\u{1}{text}\n{sig}"),
            malformed_note("control character other than newline"),
        ),
        (
            format!(
                "{text}\n— Bad Name {}\n",
                sig.trim_end().rsplit(' ').next().unwrap()
            ),
            // The name ends at the first space, so "Name x08go..." is read as the signature.
            NoteError::MalformedSignatureLine {
                line: 4,
                reason: "the signature is not canonical base64",
            },
        ),
        (
            format!("{text}\n{sig}Unexpected line.\n"),
            NoteError::MalformedSignatureLine {
                line: 5,
                reason: "it does not start with an em dash and a space",
            },
        ),
        (
            format!("{text}\n{}", sig.repeat(101)),
            malformed_note("more than 100 signatures"),
        ),
        (
            format!("{text}\n{}ABCD{}", &sig[..60], &sig[60..]),
            NoteError::BadSignature {
                key: "PeterNeumann+c74f20a3".to_owned(),
                line: 4,
            },
        ),
    ];
    for (note, expected) in cases {
        assert_eq!(peter.verify_note(&note), Err(expected), "{note:?}");
    }
    // Up to 100 signatures are accepted.
    let hundred = format!("{text}\n{}", sig.repeat(100));
    assert_eq!(peter.verify_note(&hundred).unwrap(), text.as_str());
}

#[test]
fn go_mangled_keys_are_refused() {
    let go = go();
    for key in [&go.peter_verifier, &go.peter_private] {
        let parse = |text: &str| {
            if key.starts_with("PRIVATE") {
                SigningKey::from_private_text(text).map(|s| s.verifier())
            } else {
                VerifierKey::parse(text)
            }
        };
        assert!(parse(key).is_ok());
        let bytes = key.as_bytes();
        // Every proper substring is refused...
        for i in 0..=bytes.len() {
            for j in i + 1..=bytes.len() {
                if (i, j) != (0, bytes.len()) {
                    let sub = &key[i..j];
                    assert!(parse(sub).is_err(), "substring {sub:?} accepted");
                }
            }
        }
        // ...and so is every single-byte increment.
        for i in 0..bytes.len() {
            let mut mangled = bytes.to_vec();
            mangled[i] += 1;
            let mangled = String::from_utf8(mangled).unwrap();
            assert!(parse(&mangled).is_err(), "{mangled:?} accepted");
        }
    }
    // Go's lenient base64 reads this 37-byte key and then refuses its length; its last digit
    // has non-zero padding bits, which strict base64 refuses first.
    assert_eq!(
        VerifierKey::parse(
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="
        ),
        Err(NoteError::MalformedVerifierKey {
            reason: "the key is not canonical base64"
        })
    );
    let long_key = STANDARD.encode([[1u8].as_slice(), &[9; 36]].concat());
    let long_id = {
        let digest = Sha256::digest(
            [
                b"PeterNeumann\n".as_slice(),
                &STANDARD.decode(&long_key).unwrap(),
            ]
            .concat(),
        );
        u32::from_be_bytes(digest[..4].try_into().unwrap())
    };
    assert_eq!(
        VerifierKey::parse(&format!("PeterNeumann+{long_id:08x}+{long_key}")),
        Err(NoteError::MalformedVerifierKey {
            reason: "an ed25519 public key is 32 bytes"
        })
    );
    assert_eq!(
        VerifierKey::parse("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
        Err(NoteError::UnsupportedAlgorithm { algorithm: 0x65 })
    );
    assert_eq!(
        VerifierKey::parse("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
        Err(NoteError::KeyIdMismatch {
            name: "PeterNeumann".to_owned(),
            expected: 0xc74f_20a3,
            found: 0xc74f_20a4
        })
    );
}

// ---- Tailor's checkpoints ---------------------------------------------------------------------

const ORIGIN: &str = "tailor.example/log";

fn signer() -> SigningKey {
    SigningKey::from_seed(ORIGIN, [7; 32]).unwrap()
}

fn checkpoint(size: u64) -> Checkpoint {
    Checkpoint::new(ORIGIN, size, root_of(&numbered_leaves(size))).unwrap()
}

#[test]
fn signed_checkpoints_round_trip() {
    let signer = signer();
    let verifier = signer.verifier();
    for size in [0, 1, 2, 7, 1000] {
        let checkpoint = checkpoint(size);
        let note = signer.sign(&checkpoint);
        assert!(note.starts_with(&format!("{}\n\u{2014} {ORIGIN} ", checkpoint.body())));
        assert_eq!(verifier.verify(&note).unwrap(), checkpoint);
    }
    // Extension lines are signed and come back as they were.
    let mut extended = checkpoint(3);
    extended.extensions = vec!["opaque extension".to_owned()];
    let note = signer.sign(&extended);
    assert_eq!(verifier.verify(&note).unwrap(), extended);
}

#[test]
fn the_key_id_is_the_spec_computation() {
    let verifier = signer().verifier();
    let text = verifier.to_text();
    let public = STANDARD.decode(text.rsplit('+').next().unwrap()).unwrap();
    assert_eq!(public.len(), 33);
    assert_eq!(public[0], 0x01);
    let digest = Sha256::new()
        .chain_update(ORIGIN.as_bytes())
        .chain_update(b"\n")
        .chain_update(&public)
        .finalize();
    let id = u32::from_be_bytes(digest[..4].try_into().unwrap());
    assert_eq!(verifier.key_id(), id);
    assert_eq!(
        text,
        format!("{ORIGIN}+{id:08x}+{}", STANDARD.encode(&public))
    );
    // The signature line starts with the same id.
    let note = signer().sign(&checkpoint(5));
    let blob = note.trim_end().rsplit(' ').next().unwrap();
    let blob = STANDARD.decode(blob).unwrap();
    assert_eq!(blob.len(), 4 + 64);
    assert_eq!(u32::from_be_bytes(blob[..4].try_into().unwrap()), id);
}

#[test]
fn key_texts_round_trip() {
    let signer = signer();
    let verifier = signer.verifier();
    assert_eq!(VerifierKey::parse(&verifier.to_text()).unwrap(), verifier);
    let private = signer.to_private_text();
    assert!(private.starts_with(&format!("PRIVATE+KEY+{ORIGIN}+{:08x}+", signer.key_id())));
    let again = SigningKey::from_private_text(&private).unwrap();
    assert_eq!(again.verifier(), verifier);
    assert_eq!(again.sign(&checkpoint(9)), signer.sign(&checkpoint(9)));
}

#[test]
fn private_keys_are_checked() {
    let signer = signer();
    let private = signer.to_private_text();
    let (head, key) = private.rsplit_once('+').unwrap();
    let (prefix, id) = head.rsplit_once('+').unwrap();

    let wrong_id = format!("{prefix}+{:08x}+{key}", signer.key_id() ^ 1);
    assert_eq!(
        SigningKey::from_private_text(&wrong_id).unwrap_err(),
        NoteError::KeyIdMismatch {
            name: ORIGIN.to_owned(),
            expected: signer.key_id(),
            found: signer.key_id() ^ 1
        }
    );
    let mut raw = STANDARD.decode(key).unwrap();
    raw[0] = 0x04;
    let other_algorithm = format!("{prefix}+{id}+{}", STANDARD.encode(&raw));
    assert_eq!(
        SigningKey::from_private_text(&other_algorithm).unwrap_err(),
        NoteError::UnsupportedAlgorithm { algorithm: 0x04 }
    );
    let renamed = format!("PRIVATE+KEY+other.example/log+{id}+{key}");
    assert!(matches!(
        SigningKey::from_private_text(&renamed),
        Err(NoteError::KeyIdMismatch { .. })
    ));
    assert!(matches!(
        SigningKey::from_private_text(&format!("PRIVATE+KEY+bad name+{id}+{key}")),
        Err(NoteError::InvalidKeyName { .. })
    ));
    // No error message carries the key.
    for text in [&wrong_id, &other_algorithm, &renamed] {
        let message = SigningKey::from_private_text(text).unwrap_err().to_string();
        assert!(!message.contains(key), "{message}");
    }
}

#[test]
fn tampered_checkpoints_are_refused() {
    let signer = signer();
    let verifier = signer.verifier();
    let checkpoint = checkpoint(10);
    let note = signer.sign(&checkpoint);
    let bad = NoteError::BadSignature {
        key: format!("{ORIGIN}+{:08x}", signer.key_id()),
        line: 5,
    };

    let other_root = STANDARD.encode(root_of(&numbered_leaves(11)));
    let root_line = STANDARD.encode(checkpoint.root);
    let tampered = [
        ("size", note.replacen("\n10\n", "\n11\n", 1)),
        ("root", note.replacen(&root_line, &other_root, 1)),
        ("origin", note.replacen(ORIGIN, "tailor.example/other", 1)),
        ("extension", note.replacen("\n\n", "\nextra\n\n", 1)),
    ];
    for (what, text) in tampered {
        assert_ne!(text, note, "{what} not tampered");
        // An added extension line moves the signature down a line.
        let line = if what == "extension" { 6 } else { 5 };
        let expected = NoteError::BadSignature {
            key: format!("{ORIGIN}+{:08x}", signer.key_id()),
            line,
        };
        assert_eq!(verifier.verify(&text), Err(expected), "{what}");
    }

    // A signature by another key: refused as absent, whether or not the name is the same.
    let same_name = SigningKey::from_seed(ORIGIN, [8; 32]).unwrap();
    let other_name = SigningKey::from_seed("someone.example/log", [7; 32]).unwrap();
    let no_signature = NoteError::NoSignatureByKey {
        key: format!("{ORIGIN}+{:08x}", signer.key_id()),
    };
    for other in [&same_name, &other_name] {
        assert_eq!(
            verifier.verify(&other.sign(&checkpoint)),
            Err(no_signature.clone())
        );
    }
    // Another key's signature under this key's name and id is a bad signature.
    let forged = {
        let theirs = same_name.sign(&checkpoint);
        let blob = STANDARD
            .decode(theirs.trim_end().rsplit(' ').next().unwrap())
            .unwrap();
        let mut ours = signer.key_id().to_be_bytes().to_vec();
        ours.extend_from_slice(&blob[4..]);
        format!(
            "{}\n\u{2014} {ORIGIN} {}\n",
            checkpoint.body(),
            STANDARD.encode(ours)
        )
    };
    assert_eq!(verifier.verify(&forged), Err(bad.clone()));

    // Truncated signatures: shorter but still base64 is a bad signature; broken base64 is a
    // malformed line.
    let (head, blob) = note.trim_end().rsplit_once(' ').unwrap();
    let shorter = format!("{head} {}\n", &blob[..blob.len() - 4]);
    assert_eq!(verifier.verify(&shorter), Err(bad.clone()));
    let broken = format!("{head} {}\n", &blob[..blob.len() - 1]);
    assert_eq!(
        verifier.verify(&broken),
        Err(NoteError::MalformedSignatureLine {
            line: 5,
            reason: "the signature is not canonical base64"
        })
    );
    let id_only = format!(
        "{head} {}\n",
        STANDARD.encode(signer.key_id().to_be_bytes())
    );
    assert_eq!(
        verifier.verify(&id_only),
        Err(NoteError::MalformedSignatureLine {
            line: 5,
            reason: "the signature is shorter than a key id and one byte"
        })
    );

    // The blank line between body and signatures is required.
    assert_eq!(
        verifier.verify(&note.replacen("\n\n", "\n", 1)),
        Err(malformed_note("no blank line before the signatures"))
    );

    // Other keys' signature lines are ignored, wherever they are.
    let cosigned = format!(
        "{note}{}",
        other_name.sign(&checkpoint).rsplit('\n').nth(1).unwrap()
    ) + "\n";
    assert_eq!(verifier.verify(&cosigned).unwrap(), checkpoint);
}

#[test]
fn only_note_texts_can_be_signed() {
    let signer = signer();
    assert_eq!(
        signer.sign_note("no final newline"),
        Err(malformed_note("the text does not end with a newline"))
    );
    assert_eq!(
        signer.sign_note("tab\tinside\n"),
        Err(malformed_note("control character other than newline"))
    );
    // A signed text that is not a checkpoint verifies as a note but not as a checkpoint.
    let note = signer.sign_note("hello\n").unwrap();
    let verifier = signer.verifier();
    assert_eq!(verifier.verify_note(&note).unwrap(), "hello\n");
    assert_eq!(
        verifier.verify(&note),
        Err(NoteError::MalformedBody {
            line: 2,
            reason: "missing tree size"
        })
    );
}
