//! A caller that stops waiting (an HTTP client hanging up) cannot leave the index behind the
//! store: the write it started commits and updates the index all the same.

use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;
use tailor_core::Policy;
use tailor_engine::{Engine, Limits, build_index};
use tailor_store::{
    AccountChange, AccountState, AccountWrite, Erasure, NewConsent, Store, StoreCounts, StoreError,
};
use tokio::sync::{Notify, mpsc};

use crate::support::{Scratch, TestClock, contact, key, line, store};

/// A store whose account writes wait for a signal, and tell when they start waiting.
struct GatedStore {
    inner: Arc<dyn Store>,
    entered: Arc<Notify>,
    gate: Arc<Notify>,
}

#[async_trait]
impl Store for GatedStore {
    async fn write_accounts(
        &self,
        writes: Vec<AccountWrite>,
        now: Timestamp,
    ) -> Result<Vec<AccountChange>, StoreError> {
        // Like SQLite's blocking task, the write runs to the end once started, even if the
        // future awaiting it is dropped.
        self.entered.notify_one();
        let (inner, gate) = (Arc::clone(&self.inner), Arc::clone(&self.gate));
        let write = tokio::spawn(async move {
            gate.notified().await;
            inner.write_accounts(writes, now).await
        });
        write
            .await
            .map_err(|e| StoreError::Database(e.to_string()))?
    }

    async fn append_consent(
        &self,
        account_id: &str,
        consent: NewConsent,
        now: Timestamp,
    ) -> Result<Option<AccountChange>, StoreError> {
        self.inner.append_consent(account_id, consent, now).await
    }

    async fn erase_account(
        &self,
        account_id: &str,
        now: Timestamp,
    ) -> Result<Option<Erasure>, StoreError> {
        self.inner.erase_account(account_id, now).await
    }

    async fn account(&self, account_id: &str) -> Result<Option<AccountState>, StoreError> {
        self.inner.account(account_id).await
    }

    fn scan_accounts(&self, batch: usize) -> mpsc::Receiver<Result<Vec<AccountState>, StoreError>> {
        self.inner.scan_accounts(batch)
    }

    async fn counts(&self) -> Result<StoreCounts, StoreError> {
        self.inner.counts().await
    }

    async fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.meta(name).await
    }

    async fn set_meta(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.inner.set_meta(name, value).await
    }
}

#[tokio::test]
async fn an_abandoned_import_still_updates_the_index_with_what_it_committed() {
    let dir = Scratch::new("cancel");
    let clock = TestClock::at(1_800_000_000);
    let entered = Arc::new(Notify::new());
    let gate = Arc::new(Notify::new());
    let gated: Arc<dyn Store> = Arc::new(GatedStore {
        inner: store(&dir),
        entered: Arc::clone(&entered),
        gate: Arc::clone(&gate),
    });
    let engine = Engine::open(
        gated,
        key(),
        Policy::shipped(),
        clock.clone(),
        Limits::default(),
    )
    .await
    .unwrap();

    let importing = {
        let engine = engine.clone();
        tokio::spawn(async move {
            let body = line(
                "u1",
                "US",
                &contact("email", "gone@example.com", "profile", true),
                "",
            );
            engine.import(body.as_bytes()).await
        })
    };
    // The import is inside the store write: the caller gives up.
    entered.notified().await;
    importing.abort();
    assert!(importing.await.unwrap_err().is_cancelled());
    gate.notify_one();

    // Any later write waits for the abandoned one to finish; erasing nobody changes nothing.
    assert!(engine.erase("nobody").await.unwrap().is_none());
    assert_eq!(engine.index_len(), 1);
    let rebuilt = build_index(engine.store().as_ref(), &engine.policy(), engine.now())
        .await
        .unwrap();
    assert_eq!(engine.index_entries(), rebuilt.entries());
}
