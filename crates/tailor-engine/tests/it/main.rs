//! Integration tests of the engine over a real store: the scenarios named in
//! `on_both_backends!` run on SQLite and on PostgreSQL (a database of their own on
//! `TAILOR_TEST_POSTGRES`, skipped loudly without one outside CI), the rest on SQLite.

// Helpers outside `#[test]` functions unwrap too: in a test, a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod audiences;
mod cancel;
mod consistency;
mod import;
mod incident;
mod releases;
mod replicas;
mod support;
