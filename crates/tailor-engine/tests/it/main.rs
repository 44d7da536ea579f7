//! Integration tests of the engine over the SQLite store.

// Helpers outside `#[test]` functions unwrap too: in a test, a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod audiences;
mod cancel;
mod consistency;
mod import;
mod incident;
mod releases;
mod support;
