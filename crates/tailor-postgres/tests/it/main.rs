//! The integration tests of `tailor-postgres`: the conformance suite run against the
//! PostgreSQL backend, each check on a database of its own, and the backend's own promises
//! (migrations, refusing a newer schema, bulk writes through `COPY`).
//!
//! They need a PostgreSQL server: `TAILOR_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), whose user may create databases. Without
//! one they are skipped with a loud line, unless `CI=true`, where they fail.

// Tests may unwrap: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod backend;
mod conformance;
mod replication;
