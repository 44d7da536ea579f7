//! The integration tests of `tailor-store`: the conformance suite run against the SQLite
//! backend, and the SQLite backend's own promises (durability across a restart, refusing a
//! newer schema, a private data directory, no contact value in any file; on the advertiser
//! side, counters equal to the rows, whole jobs, erasure without a trace).
//!
//! Every test works in a directory of its own under the system's temporary directory, removed
//! when the test ends, pass or fail.

// Tests may unwrap: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod conformance;
mod memberships;
mod sqlite;
mod support;
