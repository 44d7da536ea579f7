//! Advertiser customer lists: reading them, hashing them for upload, and reading uploads.
//!
//! A customer list is a CSV file with a header row that names its identifier columns (`email`,
//! `phone`, `email_sha256`, `phone_sha256`, or an alias). [`ListReader`] finds the delimiter and
//! the columns and hands out records; [`row`] turns the cells of one record into parsed
//! identifiers or reasons for refusing them; [`hash_list`] is the streaming, parallel
//! normalize-and-hash pipeline behind `tailor hash`; [`UploadReader`] reads an advertiser's upload
//! (CSV or NDJSON) on the server into the SHA-256 digests to match, in every convention.
//!
//! This crate reads and writes through `std::io` traits only; it never opens files, prints, or
//! logs, and no error it returns contains a cell's value.

mod columns;
mod error;
mod hashing;
mod reader;
pub mod row;
mod upload;

pub use columns::{Column, ColumnMap};
pub use error::ListError;
pub use hashing::{HashOptions, HashSummary, hash_list};
pub use reader::ListReader;
pub use upload::{MAX_ROW_BYTES, UploadCounts, UploadFormat, UploadReader, UploadRow};
