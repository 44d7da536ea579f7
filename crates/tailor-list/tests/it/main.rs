//! Integration tests of `tailor-list`: the hashing pipeline and the upload reader on in-memory
//! lists.

// Helpers outside `#[test]` functions unwrap too: in a test, a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod errors;
mod order;
mod privacy;
mod properties;
mod support;
mod table;
mod upload;
