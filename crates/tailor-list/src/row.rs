//! One row of a customer list: its cells checked and its identifiers parsed.
//!
//! A row is one person. Problems with the row as a whole (wrong number of fields, bytes that are
//! not UTF-8) refuse the row; a problem with one identifier refuses that cell only, and the
//! row's other identifier still counts.

use csv::ByteRecord;
use tailor_core::{
    E164Phone, EmailForm, IdentifierKind, NormalizedEmail, PhoneFormat, Region, RejectReason,
    Sha256Digest,
};

use crate::columns::{Column, ColumnMap};

/// An identifier read from one cell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identifier {
    Email(NormalizedEmail),
    Phone(E164Phone),
    EmailDigest(Sha256Digest),
    PhoneDigest(Sha256Digest),
}

impl Identifier {
    /// Parses the text of a cell of `column`; `region` reads phone numbers without `+`.
    pub fn parse(column: Column, text: &str, region: Region) -> Result<Self, RejectReason> {
        match column {
            Column::Email => NormalizedEmail::parse(text).map(Self::Email),
            Column::Phone => E164Phone::parse(text, region).map(Self::Phone),
            Column::EmailSha256 => parse_digest(text).map(Self::EmailDigest),
            Column::PhoneSha256 => parse_digest(text).map(Self::PhoneDigest),
        }
    }

    /// The kind of identifier.
    pub fn kind(&self) -> IdentifierKind {
        match self {
            Self::Email(_) | Self::EmailDigest(_) => IdentifierKind::Email,
            Self::Phone(_) | Self::PhoneDigest(_) => IdentifierKind::Phone,
        }
    }

    /// The digest under one convention. A digest read from a hashed column is returned as it
    /// is: whoever hashed it chose the convention.
    pub fn digest(&self, email_form: EmailForm, phone_format: PhoneFormat) -> Sha256Digest {
        match self {
            Self::Email(email) => email.in_form(email_form).sha256(),
            Self::Phone(phone) => phone.sha256(phone_format),
            Self::EmailDigest(digest) | Self::PhoneDigest(digest) => *digest,
        }
    }
}

/// [`Sha256Digest::parse`], with a fast path for the common cell: 64 hex digits.
///
/// Hashed lists are millions of such cells, and decoding them through a table is several times
/// faster than the core's general parser (which first classifies the value to give the right
/// reason for a misfit). Anything the fast path does not take goes to the core, so the result
/// is the same: 64 hex digits in either case read as the same digest there too.
pub(crate) fn parse_digest(text: &str) -> Result<Sha256Digest, RejectReason> {
    decode_hex_digest(text.trim_ascii().as_bytes()).map_or_else(|| Sha256Digest::parse(text), Ok)
}

/// The value of each byte as a hex digit (either case); [`NOT_HEX`] for any other byte.
const HEX_VALUES: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

const NOT_HEX: u8 = 0xFF;

/// Exactly 64 hex digits as a digest; `None` for anything else.
fn decode_hex_digest(text: &[u8]) -> Option<Sha256Digest> {
    let text: &[u8; 64] = text.try_into().ok()?;
    let mut bytes = [0u8; 32];
    // Valid digits are below 16: one check after the loop instead of a branch per digit.
    let mut seen = 0u8;
    for (byte, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
        let high = HEX_VALUES[usize::from(pair[0])];
        let low = HEX_VALUES[usize::from(pair[1])];
        seen |= high | low;
        *byte = (high << 4) | (low & 0x0F);
    }
    (seen < 16).then(|| Sha256Digest::from_bytes(bytes))
}

/// Why a whole row is refused, and the column at fault when there is one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowReject {
    pub reason: RejectReason,
    pub column: Option<usize>,
}

/// A cell the caller needs, as text: the row is refused if it is not UTF-8.
pub fn text_cell(record: &ByteRecord, index: usize) -> Result<&str, RowReject> {
    let bytes = record.get(index).unwrap_or_default();
    std::str::from_utf8(bytes).map_err(|_| RowReject {
        reason: RejectReason::InvalidUtf8,
        column: Some(index),
    })
}

/// The non-empty identifier cells of a row, email first, after the row-level checks.
pub fn identifier_cells<'r>(
    record: &'r ByteRecord,
    columns: &ColumnMap,
) -> Result<[Option<(Column, &'r str)>; 2], RowReject> {
    if record.len() != columns.width() {
        return Err(RowReject {
            reason: RejectReason::WrongFieldCount,
            column: None,
        });
    }
    let mut cells = [None, None];
    for (slot, (index, column)) in cells.iter_mut().zip(columns.identifiers()) {
        let text = text_cell(record, index)?;
        if !text.trim_ascii().is_empty() {
            *slot = Some((column, text));
        }
    }
    Ok(cells)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hex_fast_path_reads_what_the_core_reads() {
        let digest = Sha256Digest::of(b"hello");
        let lower = digest.to_hex().as_str().to_owned();
        for text in [lower.clone(), lower.to_uppercase(), format!(" {lower}\t")] {
            assert_eq!(
                decode_hex_digest(text.trim_ascii().as_bytes()),
                Some(digest)
            );
            assert_eq!(parse_digest(&text), Ok(digest));
        }
        let mut mixed = lower.into_bytes();
        mixed[0] = b'A';
        mixed[63] = b'F';
        let mixed = String::from_utf8(mixed).unwrap();
        assert_eq!(parse_digest(&mixed), Sha256Digest::parse(&mixed));
        // Every byte in every position: the fast path takes exactly what the core reads as hex.
        for position in [0, 1, 31, 62, 63] {
            for byte in 0..=255u8 {
                let mut text = *b"00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
                text[position] = byte;
                let core = std::str::from_utf8(&text).ok().map(Sha256Digest::from_hex);
                let fast = decode_hex_digest(&text);
                match core {
                    Some(Ok(digest)) => assert_eq!(fast, Some(digest), "{byte:#x}"),
                    _ => assert_eq!(fast, None, "{byte:#x}"),
                }
            }
        }
        for text in [
            "",
            "00",
            "ann@example.com",
            &"0".repeat(63),
            &"0".repeat(65),
        ] {
            assert_eq!(parse_digest(text), Sha256Digest::parse(text), "{text:?}");
        }
    }
}
