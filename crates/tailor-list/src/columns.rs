//! Which columns of a customer list hold identifiers, found by header name.
//!
//! Names are matched case-insensitively, with spaces, hyphens and dots read as underscores, so
//! `E-Mail`, `e_mail` and `Email Address` all name the email column.

use tailor_core::{IdentifierKind, NormalizedEmail, Sha256Digest};

use crate::error::ListError;

/// An identifier column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Column {
    /// Plain email addresses, normalized and hashed by Tailor.
    Email,
    /// Plain phone numbers, normalized and hashed by Tailor.
    Phone,
    /// SHA-256 digests of normalized email addresses.
    EmailSha256,
    /// SHA-256 digests of normalized phone numbers.
    PhoneSha256,
}

/// Accepted header names, as [`key_matches`] compares them (lowercase, `_` for separators).
const ALIASES: &[(Column, &[&str])] = &[
    (
        Column::Email,
        &[
            "email",
            "e_mail",
            "email_address",
            "emailaddress",
            "e_mail_address",
            "mail",
        ],
    ),
    (
        Column::Phone,
        &[
            "phone",
            "phone_number",
            "phonenumber",
            "mobile",
            "mobile_number",
            "mobile_phone",
            "cell",
            "cell_phone",
            "tel",
            "telephone",
        ],
    ),
    (
        Column::EmailSha256,
        &[
            "email_sha256",
            "sha256_email",
            "hashed_email",
            "email_hash",
            "email_hashed",
        ],
    ),
    (
        Column::PhoneSha256,
        &[
            "phone_sha256",
            "sha256_phone",
            "hashed_phone",
            "phone_hash",
            "phone_hashed",
            "phone_number_sha256",
            "mobile_sha256",
        ],
    ),
];

impl Column {
    /// The column a header name designates, if it is an identifier column.
    ///
    /// Allocates nothing: NDJSON uploads call it for every field of every line.
    pub fn from_header(name: &str) -> Option<Column> {
        let name = name.trim();
        ALIASES
            .iter()
            .find(|(_, names)| names.iter().any(|alias| key_matches(name, alias)))
            .map(|&(column, _)| column)
    }

    /// The kind of identifier the column holds.
    pub const fn kind(self) -> IdentifierKind {
        match self {
            Self::Email | Self::EmailSha256 => IdentifierKind::Email,
            Self::Phone | Self::PhoneSha256 => IdentifierKind::Phone,
        }
    }

    /// Whether the column holds digests rather than plain values.
    pub const fn is_hashed(self) -> bool {
        matches!(self, Self::EmailSha256 | Self::PhoneSha256)
    }
}

/// The name of the output column carrying digests of `kind`.
pub(crate) const fn digest_column_name(kind: IdentifierKind) -> &'static str {
    match kind {
        IdentifierKind::Email => "email_sha256",
        IdentifierKind::Phone => "phone_sha256",
    }
}

/// Whether a trimmed header name is `alias` once lowercased (ASCII) with spaces, hyphens and
/// dots read as underscores.
///
/// Byte by byte: aliases are ASCII, and the bytes of a non-ASCII character are all above 0x7F,
/// so they are left alone by the mapping and never equal an alias byte.
fn key_matches(name: &str, alias: &str) -> bool {
    name.len() == alias.len()
        && name.bytes().zip(alias.bytes()).all(|(n, a)| {
            let n = match n {
                b' ' | b'-' | b'.' => b'_',
                n => n.to_ascii_lowercase(),
            };
            n == a
        })
}

/// The columns of one list: every header name, and where its identifiers are.
#[derive(Clone, Debug)]
pub struct ColumnMap {
    names: Vec<String>,
    email: Option<(usize, Column)>,
    phone: Option<(usize, Column)>,
}

impl ColumnMap {
    /// Reads a header row.
    pub fn from_header<S: AsRef<str>>(names: &[S]) -> Result<Self, ListError> {
        let names: Vec<String> = names.iter().map(|n| n.as_ref().trim().to_owned()).collect();
        let mut map = Self {
            names,
            email: None,
            phone: None,
        };
        for (index, name) in map.names.iter().enumerate() {
            let Some(column) = Column::from_header(name) else {
                continue;
            };
            let slot = match column.kind() {
                IdentifierKind::Email => &mut map.email,
                IdentifierKind::Phone => &mut map.phone,
            };
            if let Some((first, _)) = *slot {
                return Err(ListError::DuplicateIdentifierColumn {
                    kind: column.kind().name(),
                    first: map.names[first].clone(),
                    second: name.clone(),
                });
            }
            *slot = Some((index, column));
        }
        if map.email.is_none() && map.phone.is_none() {
            if map.names.iter().any(|name| looks_like_identifier(name)) {
                return Err(ListError::HeaderLooksLikeData);
            }
            return Err(ListError::NoIdentifierColumn {
                columns: map.names.len(),
            });
        }
        Ok(map)
    }

    /// The number of columns in the header.
    pub fn width(&self) -> usize {
        self.names.len()
    }

    /// The header name of column `index`, as written (trimmed).
    pub fn name(&self, index: usize) -> &str {
        self.names.get(index).map_or("", String::as_str)
    }

    /// The column holding identifiers of `kind`, if any.
    pub fn identifier(&self, kind: IdentifierKind) -> Option<(usize, Column)> {
        match kind {
            IdentifierKind::Email => self.email,
            IdentifierKind::Phone => self.phone,
        }
    }

    /// The identifier columns, email first.
    pub fn identifiers(&self) -> impl Iterator<Item = (usize, Column)> + '_ {
        self.email.into_iter().chain(self.phone)
    }

    /// Finds a column by name, ignoring case and surrounding whitespace.
    pub fn find(&self, name: &str) -> Option<usize> {
        let name = name.trim();
        self.names.iter().position(|n| n.eq_ignore_ascii_case(name))
    }
}

/// Whether a header cell is in fact an identifier: the file then has no header row. The value
/// is never echoed in the error.
fn looks_like_identifier(cell: &str) -> bool {
    let digits = cell.bytes().filter(u8::is_ascii_digit).count();
    NormalizedEmail::parse(cell).is_ok()
        || Sha256Digest::parse(cell).is_ok()
        || (digits >= 7 && digits * 2 >= cell.trim().len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_are_case_and_separator_insensitive() {
        let cases = [
            ("email", Column::Email),
            ("EMAIL", Column::Email),
            ("E-Mail", Column::Email),
            ("Email Address", Column::Email),
            (" mail ", Column::Email),
            ("Phone_Number", Column::Phone),
            ("mobile", Column::Phone),
            ("Tel", Column::Phone),
            ("EMAIL_SHA256", Column::EmailSha256),
            ("hashed_email", Column::EmailSha256),
            ("phone_sha256", Column::PhoneSha256),
        ];
        for (name, column) in cases {
            assert_eq!(Column::from_header(name), Some(column), "{name}");
        }
        for name in [
            "first_name",
            "",
            "emails",
            "customer_id",
            "emaİl",
            "e\u{2010}mail",
            "email_",
        ] {
            assert_eq!(Column::from_header(name), None, "{name}");
        }
    }

    #[test]
    fn maps_identifier_columns() {
        let map = ColumnMap::from_header(&["id", "E-mail", "Mobile", "country"]).unwrap();
        assert_eq!(map.width(), 4);
        assert_eq!(
            map.identifier(IdentifierKind::Email),
            Some((1, Column::Email))
        );
        assert_eq!(
            map.identifier(IdentifierKind::Phone),
            Some((2, Column::Phone))
        );
        assert_eq!(map.find("COUNTRY"), Some(3));
        assert_eq!(map.name(1), "E-mail");
    }

    #[test]
    fn header_errors() {
        let err = ColumnMap::from_header(&["email", "e-mail"]).unwrap_err();
        assert!(
            matches!(err, ListError::DuplicateIdentifierColumn { .. }),
            "{err}"
        );
        let err = ColumnMap::from_header(&["email", "hashed_email"]).unwrap_err();
        assert!(
            matches!(err, ListError::DuplicateIdentifierColumn { .. }),
            "{err}"
        );
        let err = ColumnMap::from_header(&["first", "last"]).unwrap_err();
        assert!(matches!(err, ListError::NoIdentifierColumn { columns: 2 }));
        assert!(!err.to_string().contains("first"), "{err}");
        // A file without a header: the error must not echo the address.
        let err = ColumnMap::from_header(&["jane@example.com", "Jane"]).unwrap_err();
        assert!(matches!(err, ListError::HeaderLooksLikeData));
        assert!(!err.to_string().contains("jane@"));
        let err = ColumnMap::from_header(&["+1 415 555 0100"]).unwrap_err();
        assert!(matches!(err, ListError::HeaderLooksLikeData));
    }
}
