//! Fuzzes the accountability log's parsers of outside input: `VerifierKey::parse` (a key an
//! auditor is given), `Checkpoint::parse_body`, and `VerifierKey::verify` (a signed note an
//! auditor passes to `tailor log verify --checkpoint`).
//!
//! Checks that none panics; that an accepted key prints back as itself; that a parsed body
//! reads back from its own text; and that a note built from a real signed checkpoint with the
//! fuzzer's bytes spliced in either fails to verify or verifies to exactly the checkpoint that
//! was signed (a signature never covers anything but what was signed).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tailor_log::{Checkpoint, SigningKey, VerifierKey};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(key) = VerifierKey::parse(text) {
        assert_eq!(VerifierKey::parse(&key.to_text()), Ok(key));
    }
    if let Ok(checkpoint) = Checkpoint::parse_body(text) {
        assert_eq!(Checkpoint::parse_body(&checkpoint.body()), Ok(checkpoint));
    }
    let key = SigningKey::from_seed("fuzz-log", [5; 32]).expect("a valid key name");
    let verifier = key.verifier();
    let _ = verifier.verify(text);
    let signed = Checkpoint::new("fuzz-log", 42, [7; 32]).expect("a valid origin");
    let note = key.sign(&signed);
    // Splice the input into the note at a place the input's first byte picks.
    let at = usize::from(data.first().copied().unwrap_or(0)) % (note.len() + 1);
    if note.is_char_boundary(at) {
        let spliced = format!("{}{}{}", &note[..at], text, &note[at..]);
        if let Ok(checkpoint) = verifier.verify(&spliced) {
            assert_eq!(checkpoint, signed, "a changed note verified as another checkpoint");
        }
    }
});
