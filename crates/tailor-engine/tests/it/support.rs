//! A fresh engine over a SQLite store in a scratch directory, with a clock the test moves.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

use jiff::Timestamp;
use tailor_core::{IndexKey, Policy};
use tailor_engine::{Clock, Engine, Limits};
use tailor_store::{SqliteStore, Store};

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

/// A scratch directory removed when dropped.
#[derive(Debug)]
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Scratch {
    pub(crate) fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "tailor-engine-it-{}-{n}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        Self(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn key() -> IndexKey {
    IndexKey::from_secret(&[42; 32]).unwrap()
}

pub(crate) fn store(dir: &Scratch) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(&dir.0).unwrap())
}

pub(crate) async fn engine(dir: &Scratch, clock: Arc<TestClock>, policy: Policy) -> Engine {
    Engine::open(store(dir), key(), policy, clock, Limits::default())
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
