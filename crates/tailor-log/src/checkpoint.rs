//! C2SP tlog-checkpoint bodies: the text a signed note commits to for a tree head.
//!
//! The body is `<origin>\n<size>\n<base64 root>\n` followed by optional extension lines, which are
//! kept byte for byte and never interpreted. Parsing must accept exactly what `body` produces and
//! nothing looser (no leading zeros, no '+' sign, canonical base64), so that one tree head has
//! one body and one signature.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::hash::Hash;
use crate::note::NoteError;

/// A log's tree head at a given size, in the c2sp.org/tlog-checkpoint format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity, such as `tailor.example/log`: non-empty, one line.
    pub origin: String,
    /// The number of leaves in the tree.
    pub size: u64,
    /// The RFC 6962 root of the tree at `size`.
    pub root: Hash,
    /// Extension lines after the root, opaque and each non-empty (usually none).
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// A checkpoint without extension lines, refusing an origin that could not be parsed back.
    pub fn new(origin: impl Into<String>, size: u64, root: Hash) -> Result<Self, NoteError> {
        let origin = origin.into();
        if let Some(reason) = bad_line(&origin) {
            return Err(NoteError::InvalidOrigin { reason });
        }
        Ok(Self {
            origin,
            size,
            root,
            extensions: Vec::new(),
        })
    }

    /// The note text: origin, size, base64 root and extension lines, each ending in a newline.
    ///
    /// A checkpoint built by hand with an empty or multi-line origin yields a body that
    /// [`Checkpoint::parse_body`] refuses (and so a note that never verifies).
    #[must_use]
    pub fn body(&self) -> String {
        let mut body = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        );
        for extension in &self.extensions {
            body.push_str(extension);
            body.push('\n');
        }
        body
    }

    /// Parses a checkpoint body, naming the first line that is wrong (counted from 1).
    pub fn parse_body(text: &str) -> Result<Self, NoteError> {
        let malformed =
            |line: usize, reason: &'static str| NoteError::MalformedBody { line, reason };
        let Some(content) = text.strip_suffix('\n') else {
            return Err(malformed(text.split('\n').count(), "missing final newline"));
        };
        let mut lines = content.split('\n');

        let origin = lines.next().unwrap_or_default();
        if let Some(reason) = bad_line(origin) {
            return Err(malformed(1, reason));
        }

        let size = lines.next().ok_or(malformed(2, "missing tree size"))?;
        let size = parse_size(size).map_err(|reason| malformed(2, reason))?;

        let root = lines.next().ok_or(malformed(3, "missing root hash"))?;
        let root = parse_root(root).map_err(|reason| malformed(3, reason))?;

        let extensions = lines
            .enumerate()
            .map(|(i, line)| match bad_line(line) {
                Some(reason) => Err(malformed(4 + i, reason)),
                None => Ok(line.to_owned()),
            })
            .collect::<Result<Vec<_>, _>>()?;

        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }
}

/// Why a line cannot be an origin or extension line, if it cannot.
fn bad_line(line: &str) -> Option<&'static str> {
    if line.is_empty() {
        Some("empty line")
    } else if line.bytes().any(|b| b < 0x20) {
        Some("control character")
    } else {
        None
    }
}

/// ASCII decimal with no sign and no leading zeros (unless the tree is empty).
fn parse_size(line: &str) -> Result<u64, &'static str> {
    if line.is_empty() || !line.bytes().all(|b| b.is_ascii_digit()) {
        return Err("tree size is not a decimal number");
    }
    if line.len() > 1 && line.starts_with('0') {
        return Err("tree size has a leading zero");
    }
    line.parse().map_err(|_| "tree size out of range")
}

/// Standard, padded, canonical base64 of exactly 32 bytes.
fn parse_root(line: &str) -> Result<Hash, &'static str> {
    let bytes = STANDARD
        .decode(line)
        .map_err(|_| "root hash is not canonical base64")?;
    bytes.try_into().map_err(|_| "root hash is not 32 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_error(text: &str) -> (usize, &'static str) {
        match Checkpoint::parse_body(text) {
            Err(NoteError::MalformedBody { line, reason }) => (line, reason),
            other => panic!("{text:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn round_trip_with_extensions() {
        let mut checkpoint = Checkpoint::new("tailor.example/log", 20_852_163, [7; 32]).unwrap();
        checkpoint.extensions = vec!["ext one".to_owned(), "— two".to_owned()];
        let body = checkpoint.body();
        assert_eq!(Checkpoint::parse_body(&body).unwrap(), checkpoint);
    }

    #[test]
    fn the_spec_example_parses() {
        let body =
            "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        let checkpoint = Checkpoint::parse_body(body).unwrap();
        assert_eq!(checkpoint.origin, "example.com/behind-the-sofa");
        assert_eq!(checkpoint.size, 20_852_163);
        assert_eq!(checkpoint.body(), body);
    }

    #[test]
    fn malformed_bodies_name_the_line() {
        let root = STANDARD.encode([1u8; 32]);
        let cases: Vec<(String, (usize, &str))> = vec![
            (String::new(), (1, "missing final newline")),
            (format!("o\n1\n{root}"), (3, "missing final newline")),
            ("\n".to_owned(), (1, "empty line")),
            ("o\n".to_owned(), (2, "missing tree size")),
            ("o\n1\n".to_owned(), (3, "missing root hash")),
            (
                format!("o\n01\n{root}\n"),
                (2, "tree size has a leading zero"),
            ),
            (
                format!("o\n+1\n{root}\n"),
                (2, "tree size is not a decimal number"),
            ),
            (
                format!("o\n-1\n{root}\n"),
                (2, "tree size is not a decimal number"),
            ),
            (
                format!("o\n 1\n{root}\n"),
                (2, "tree size is not a decimal number"),
            ),
            (
                format!("o\n\n{root}\n"),
                (2, "tree size is not a decimal number"),
            ),
            (
                format!("o\n18446744073709551616\n{root}\n"),
                (2, "tree size out of range"),
            ),
            ("o\n1\nAAAA\n".to_owned(), (3, "root hash is not 32 bytes")),
            (
                "o\n1\n!!!!\n".to_owned(),
                (3, "root hash is not canonical base64"),
            ),
            (
                format!("o\n1\n{}\n", root.trim_end_matches('=')),
                (3, "root hash is not canonical base64"),
            ),
            (format!("o\n1\n{root}\n\n"), (4, "empty line")),
            (format!("o\n1\n{root}\next\n\n"), (5, "empty line")),
            (format!("o\tx\n1\n{root}\n"), (1, "control character")),
            (format!("o\n1\n{root}\ne\rx\n"), (4, "control character")),
        ];
        for (text, expected) in cases {
            assert_eq!(body_error(&text), expected, "{text:?}");
        }
    }

    #[test]
    fn non_canonical_root_padding_bits_are_refused() {
        // The last base64 digit of a 32-byte value carries two padding bits that must be zero.
        let canonical = STANDARD.encode([0u8; 32]);
        assert!(canonical.ends_with("A="));
        let sloppy = format!("{}B=", &canonical[..canonical.len() - 2]);
        assert_eq!(
            body_error(&format!("o\n1\n{sloppy}\n")),
            (3, "root hash is not canonical base64")
        );
    }

    #[test]
    fn origins_are_checked_by_new() {
        assert_eq!(
            Checkpoint::new("", 0, [0; 32]),
            Err(NoteError::InvalidOrigin {
                reason: "empty line"
            })
        );
        assert_eq!(
            Checkpoint::new("a\nb", 0, [0; 32]),
            Err(NoteError::InvalidOrigin {
                reason: "control character"
            })
        );
    }
}
