//! What every test of the pipeline needs: running `hash_list` on bytes in memory, and writing
//! expected digests as readable placeholders instead of 64 hex characters.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha256};
use tailor_core::RejectReason;
use tailor_list::{HashOptions, HashSummary, ListError, hash_list};

/// The outputs of one run of the pipeline.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) output: String,
    pub(crate) rejects: String,
    pub(crate) summary: HashSummary,
}

/// Options with a fixed number of threads (the default depends on the machine).
pub(crate) fn options(threads: usize) -> HashOptions {
    HashOptions {
        threads,
        ..HashOptions::default()
    }
}

/// Runs `hash_list` on `input` with a rejects file, both outputs kept in memory.
pub(crate) fn run(input: &[u8], options: &HashOptions) -> Result<Run, ListError> {
    let mut output = Vec::new();
    let mut rejects = Vec::new();
    let summary = hash_list(
        input,
        &mut output,
        Some(Box::new(&mut rejects)),
        options,
        &|_| {},
    )?;
    Ok(Run {
        output: String::from_utf8(output).expect("the output is UTF-8"),
        rejects: String::from_utf8(rejects).expect("the rejects file is UTF-8"),
        summary,
    })
}

/// Runs `hash_list` without a rejects file and returns the error, checking that nothing was
/// written to the output.
pub(crate) fn run_err(input: &[u8], options: &HashOptions) -> ListError {
    let mut output = Vec::new();
    let err =
        hash_list(input, &mut output, None, options, &|_| {}).expect_err("the run should fail");
    assert!(output.is_empty(), "a failed run wrote output: {output:?}");
    err
}

/// Lowercase hex SHA-256 of `text`, computed without `tailor_core`.
pub(crate) fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Replaces placeholders in a test's text:
///
/// - `<x>`: lowercase hex SHA-256 of `x` (the normalized value, as the test expects it);
/// - `<HEX:x>`: the same in uppercase;
/// - `<B64:x>`: the same digest in standard base64.
///
/// Everything else, invalid UTF-8 included, is copied as it is.
pub(crate) fn expand(template: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(template.len() * 2);
    let mut rest = template;
    while let Some(start) = rest.iter().position(|&b| b == b'<') {
        out.extend_from_slice(&rest[..start]);
        let end = rest[start..]
            .iter()
            .position(|&b| b == b'>')
            .map(|i| start + i)
            .expect("an unclosed placeholder");
        let inner = std::str::from_utf8(&rest[start + 1..end]).expect("a UTF-8 placeholder");
        let replacement = if let Some(value) = inner.strip_prefix("HEX:") {
            sha256_hex(value).to_uppercase()
        } else if let Some(value) = inner.strip_prefix("B64:") {
            STANDARD.encode(Sha256::digest(value.as_bytes()))
        } else {
            sha256_hex(inner)
        };
        out.extend_from_slice(replacement.as_bytes());
        rest = &rest[end + 1..];
    }
    out.extend_from_slice(rest);
    out
}

/// [`expand`] for text.
pub(crate) fn expand_str(template: &str) -> String {
    String::from_utf8(expand(template.as_bytes())).expect("expanded text is UTF-8")
}

/// The summary a test expects.
pub(crate) fn summary(
    rows: u64,
    emails: u64,
    phones: u64,
    rejected: &[(RejectReason, u64)],
) -> HashSummary {
    let mut summary = HashSummary {
        rows,
        emails,
        phones,
        ..HashSummary::default()
    };
    for &(reason, count) in rejected {
        for _ in 0..count {
            summary.rejected.add(reason);
        }
    }
    summary
}
