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
            Column::EmailSha256 => Sha256Digest::parse(text).map(Self::EmailDigest),
            Column::PhoneSha256 => Sha256Digest::parse(text).map(Self::PhoneDigest),
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
