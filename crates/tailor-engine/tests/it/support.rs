//! A fresh engine over a fresh store (SQLite in a scratch directory, or a PostgreSQL database
//! of its own: see `tailor_postgres::testing`), with a clock the test moves.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use jiff::Timestamp;
use tailor_core::{IndexKey, Policy};
use tailor_engine::{Clock, Engine, Limits};
pub(crate) use tailor_postgres::on_both_backends;
pub(crate) use tailor_postgres::testing::{Backend, Scratch, Storage};

/// A clock that stands still until told to move.
#[derive(Debug)]
pub(crate) struct TestClock(AtomicI64);

impl TestClock {
    pub(crate) fn at(second: i64) -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(second)))
    }

    pub(crate) fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_second(self.0.load(Ordering::SeqCst)).unwrap()
    }
}

pub(crate) fn key() -> IndexKey {
    IndexKey::from_secret(&[42; 32]).unwrap()
}

/// Storage for a test that runs on SQLite only.
pub(crate) fn sqlite(test: &str) -> Storage {
    Storage::Sqlite(Scratch::new(test))
}

pub(crate) async fn engine(storage: &Storage, clock: Arc<TestClock>, policy: Policy) -> Engine {
    Engine::open(
        storage.store().await,
        key(),
        policy,
        clock,
        Limits::default(),
    )
    .await
    .unwrap()
}

/// One account line.
pub(crate) fn line(id: &str, region: &str, contacts: &str, consents: &str) -> String {
    format!(
        "{{\"account_id\":\"{id}\",\"region\":\"{region}\",\"contacts\":[{contacts}],\"consents\":[{consents}]}}"
    )
}

pub(crate) fn contact(kind: &str, value: &str, context: &str, verified: bool) -> String {
    format!(
        "{{\"kind\":\"{kind}\",\"value\":\"{value}\",\"context\":\"{context}\",\"verified\":{verified}}}"
    )
}

pub(crate) fn consent(state: &str, source: &str, at: i64) -> String {
    let at = Timestamp::from_second(at).unwrap();
    format!(
        "{{\"purpose\":\"marketing.advertising.third_party.targeted\",\"state\":\"{state}\",\"source\":\"{source}\",\"at\":\"{at}\"}}"
    )
}
