//! The one error type of this crate.

use std::io;

/// Why a list as a whole cannot be read (as opposed to a refused row or cell, which is counted
/// and reported, and does not stop the job).
///
/// Messages name lines and columns, never cell values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListError {
    /// The input has no header row at all.
    #[error("the list is empty: a header row naming the email and/or phone columns is required")]
    Empty,

    /// The header row is not valid UTF-8.
    #[error("the header row (line 1) is not valid UTF-8")]
    HeaderNotUtf8,

    /// The first line is longer than any plausible header.
    #[error("the header row (line 1) is longer than {limit} bytes; is this a CSV file?")]
    HeaderTooLong { limit: usize },

    /// The first row holds identifiers: the file has no header row.
    #[error(
        "the first row looks like data, not a header: add a header row naming the columns \
         (email, phone, email_sha256, phone_sha256)"
    )]
    HeaderLooksLikeData,

    /// No column of the header is an identifier column. The header's names are not repeated:
    /// in a file without a header row they would be a person's data.
    #[error(
        "none of the {columns} columns of the header row (line 1) is an identifier column; \
         name one email, phone, email_sha256 or phone_sha256 (or an alias such as e-mail, \
         phone_number or mobile)"
    )]
    NoIdentifierColumn { columns: usize },

    /// Two columns hold the same kind of identifier.
    #[error(
        "columns {first:?} and {second:?} both hold {kind} identifiers; keep one \
         (Tailor reads one {kind} per row)"
    )]
    DuplicateIdentifierColumn {
        kind: &'static str,
        first: String,
        second: String,
    },

    /// A column asked for with `--keep` is not in the header.
    #[error("column {name:?} to keep is not in the header")]
    KeepColumnMissing { name: String },

    /// A column asked for with `--keep` is an identifier column.
    #[error(
        "column {name:?} holds identifiers and cannot be kept: the output carries identifiers \
         only as SHA-256 digests"
    )]
    KeepIdentifierColumn { name: String },

    /// A record grew beyond the reader's record limit (see `ListReader::with_record_limit`).
    #[error(
        "the record starting at line {line} (or after blank lines) is longer than {limit} \
         bytes; is a quote left open?"
    )]
    RecordTooLong { line: u64, limit: u64 },

    /// Reading the input failed.
    #[error("cannot read the list at line {line}: {source}")]
    Read {
        line: u64,
        #[source]
        source: io::Error,
    },

    /// Writing the output or the rejects file failed.
    #[error("cannot write the {what}: {source}")]
    Write {
        what: &'static str,
        #[source]
        source: io::Error,
    },
}
