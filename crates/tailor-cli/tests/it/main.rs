//! End-to-end tests of the `tailor` binary: the real program, run as a user would run it.

// Helpers outside `#[test]` functions unwrap too: in a test, a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod exit;
mod files;
mod leftovers;
mod privacy;
mod support;
mod vectors;
