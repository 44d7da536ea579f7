//! A store that fails: the caller gets 503 or 500 with a fixed message (never the store's own,
//! which could name internals), the failure is counted, and the server goes on answering.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use jiff::Timestamp;
use tailor_core::Policy;
use tailor_engine::{Engine, Limits, SystemClock};
use tailor_server::{AppState, Tokens, router};
use tailor_store::{
    AccountChange, AccountState, AccountWrite, Erasure, NewConsent, SqliteStore, Store,
    StoreCounts, StoreError,
};

use crate::support::{ADMIN, ALICE, COMPLIANCE, SERVING, Scratch, call, key};

/// The store's message in a failure; it must never reach a response.
const INTERNAL: &str = "disk I/O error in /srv/secret/path";

/// A SQLite store whose writes fail while `broken` is set (reads of one account too, as
/// corruption).
struct Flaky {
    inner: SqliteStore,
    broken: Arc<AtomicBool>,
}

impl Flaky {
    fn check(&self) -> Result<(), StoreError> {
        if self.broken.load(Ordering::SeqCst) {
            Err(StoreError::Database(INTERNAL.to_owned()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Store for Flaky {
    async fn write_accounts(
        &self,
        writes: Vec<AccountWrite>,
        now: Timestamp,
    ) -> Result<Vec<AccountChange>, StoreError> {
        self.check()?;
        self.inner.write_accounts(writes, now).await
    }

    async fn append_consent(
        &self,
        account_id: &str,
        consent: NewConsent,
        now: Timestamp,
    ) -> Result<Option<AccountChange>, StoreError> {
        self.check()?;
        self.inner.append_consent(account_id, consent, now).await
    }

    async fn erase_account(
        &self,
        account_id: &str,
        now: Timestamp,
    ) -> Result<Option<Erasure>, StoreError> {
        self.check()?;
        self.inner.erase_account(account_id, now).await
    }

    async fn account(&self, account_id: &str) -> Result<Option<AccountState>, StoreError> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(StoreError::Corrupt(INTERNAL.to_owned()));
        }
        self.inner.account(account_id).await
    }

    fn scan_accounts(
        &self,
        batch: usize,
    ) -> tokio::sync::mpsc::Receiver<Result<Vec<AccountState>, StoreError>> {
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
async fn store_failures_are_503_or_500_without_internals() {
    let dir = Scratch::new("store-failure");
    let broken = Arc::new(AtomicBool::new(false));
    let store = Flaky {
        inner: SqliteStore::open(&dir.path().join("data")).unwrap(),
        broken: Arc::clone(&broken),
    };
    let engine = Engine::open(
        Arc::new(store),
        key(),
        Policy::shipped(),
        Arc::new(SystemClock),
        Limits::default(),
    )
    .await
    .unwrap();
    let tokens = Tokens::from_plain(ADMIN, SERVING, COMPLIANCE).unwrap();
    let router = router(AppState::new(Arc::new(engine), tokens));

    broken.store(true, Ordering::SeqCst);
    let import = call(
        &router,
        Method::POST,
        "/v1/admin/accounts",
        Some(ADMIN),
        format!("{ALICE}\n"),
    )
    .await;
    assert_eq!(
        import.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        import.text()
    );
    let body = import.json();
    assert_eq!(body["error"]["code"], "store_unavailable");
    // What was imported before the failure is reported.
    assert_eq!(body["summary"]["accounts"], 0);
    let consent = r#"{"purpose":"marketing","state":"withdrawn","source":"settings","at":"2026-01-01T00:00:00Z"}"#;
    let replies = [
        import,
        call(
            &router,
            Method::PUT,
            "/v1/admin/accounts/u-alice",
            Some(ADMIN),
            ALICE,
        )
        .await,
        call(
            &router,
            Method::POST,
            "/v1/admin/accounts/u-alice/consents",
            Some(ADMIN),
            consent,
        )
        .await,
        call(
            &router,
            Method::DELETE,
            "/v1/admin/accounts/u-alice",
            Some(ADMIN),
            Body::empty(),
        )
        .await,
    ];
    for reply in &replies {
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            reply.text()
        );
        assert!(!reply.text().contains("disk"), "{}", reply.text());
    }
    let view = call(
        &router,
        Method::GET,
        "/v1/admin/accounts/u-alice",
        Some(ADMIN),
        Body::empty(),
    )
    .await;
    assert_eq!(view.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(view.error_code(), "store_failed");
    assert!(!view.text().contains("disk"));

    let metrics = call(&router, Method::GET, "/metrics", None, Body::empty())
        .await
        .text();
    assert!(
        metrics.contains(r#"tailor_errors_total{kind="store"} 5"#),
        "{metrics}"
    );
    assert!(!metrics.contains("disk"));

    // Once the store is back, so is the server.
    broken.store(false, Ordering::SeqCst);
    let reply = call(
        &router,
        Method::PUT,
        "/v1/admin/accounts/u-alice",
        Some(ADMIN),
        ALICE,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
}
