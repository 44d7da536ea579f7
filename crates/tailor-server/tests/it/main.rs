//! HTTP tests of `tailor serve`'s router, called through `tower::ServiceExt::oneshot` over a
//! real store: SQLite in a scratch directory, and for the scenarios named in
//! `on_both_backends!` PostgreSQL too (a database of their own on `TAILOR_TEST_POSTGRES`,
//! skipped loudly without one outside CI).

// Helpers outside `#[test]` functions unwrap too: in a test, a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod access;
mod account;
mod advertisers;
mod attacks;
mod audiences;
mod auth;
mod compliance;
mod data_use;
mod failure;
mod health;
mod import;
mod openapi;
mod policy;
mod privacy;
mod serving;
mod support;
mod uploads;
