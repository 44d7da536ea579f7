//! End-to-end tests of the `tailor` binary: the real program, run as a user would run it
//! (`tailor hash` on files, `tailor serve` as a child process driven over HTTP, and the
//! operator commands).

// Helpers outside `#[test]` functions unwrap too: in a test, a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod accounts;
mod advertisers;
mod crash;
mod exit;
mod files;
mod http;
mod incident;
mod leftovers;
mod log_verify;
mod policy;
mod policy_report;
mod postgres;
mod privacy;
mod privacy_uploads;
mod replicas;
mod serve;
mod server;
mod store;
mod support;
mod vectors;
