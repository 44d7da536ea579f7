//! A store that fails: the caller gets 503 or 500 with a fixed message (never the store's own,
//! which could name internals), the failure is counted, and the server goes on answering.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use jiff::Timestamp;
use tailor_core::Policy;
use tailor_core::release::{Epsilon, QueryDigest, ReleaseConfig};
use tailor_core::{AccountNo, KeyedDigest, PolicyVersion};
use tailor_engine::{Engine, Limits, SystemClock};
use tailor_server::{AppState, Tokens, router};
use tailor_store::log::{StoredCheckpoint, StoredEntry};
use tailor_store::{
    AccountChange, AccountState, AccountWrite, Advertiser, ApiKeyRecord, Applied, Audience,
    Charged, Erasure, Grant, Job, JobOp, Membership, MembershipEvent, NewAdvertiser, NewAudience,
    NewConsent, NewJob, NewRelease, RevokeReason, SessionPart, SqliteStore, StagedPart, Store,
    StoreCounts, StoreError, UploadSession,
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

    async fn account_no(&self, account_id: &str) -> Result<Option<AccountNo>, StoreError> {
        self.check()?;
        self.inner.account_no(account_id).await
    }

    async fn accounts_by_no(
        &self,
        accounts: &[AccountNo],
    ) -> Result<Vec<AccountState>, StoreError> {
        self.inner.accounts_by_no(accounts).await
    }

    async fn account_ids(
        &self,
        accounts: &[AccountNo],
    ) -> Result<Vec<(AccountNo, String)>, StoreError> {
        self.inner.account_ids(accounts).await
    }

    async fn create_advertiser(
        &self,
        new: NewAdvertiser,
        now: Timestamp,
    ) -> Result<Advertiser, StoreError> {
        self.check()?;
        self.inner.create_advertiser(new, now).await
    }

    async fn advertiser(&self, advertiser_id: &str) -> Result<Option<Advertiser>, StoreError> {
        self.inner.advertiser(advertiser_id).await
    }

    async fn advertiser_by_key(
        &self,
        key_sha256: &[u8; 32],
    ) -> Result<Option<Advertiser>, StoreError> {
        self.inner.advertiser_by_key(key_sha256).await
    }

    async fn add_api_key(
        &self,
        advertiser_no: u32,
        key_id: &str,
        key_sha256: [u8; 32],
        now: Timestamp,
    ) -> Result<ApiKeyRecord, StoreError> {
        self.inner
            .add_api_key(advertiser_no, key_id, key_sha256, now)
            .await
    }

    async fn revoke_api_key(
        &self,
        advertiser_no: u32,
        key_id: &str,
        now: Timestamp,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.inner.revoke_api_key(advertiser_no, key_id, now).await
    }

    async fn api_keys(&self, advertiser_no: u32) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.inner.api_keys(advertiser_no).await
    }

    async fn create_audience(
        &self,
        new: NewAudience,
        now: Timestamp,
    ) -> Result<Audience, StoreError> {
        self.check()?;
        self.inner.create_audience(new, now).await
    }

    async fn audiences(
        &self,
        advertiser_no: u32,
        now: Timestamp,
    ) -> Result<Vec<Audience>, StoreError> {
        self.check()?;
        self.inner.audiences(advertiser_no, now).await
    }

    async fn audience(
        &self,
        advertiser_no: u32,
        audience_id: &str,
        now: Timestamp,
    ) -> Result<Option<Audience>, StoreError> {
        self.check()?;
        self.inner.audience(advertiser_no, audience_id, now).await
    }

    async fn all_audiences(&self, now: Timestamp) -> Result<Vec<Audience>, StoreError> {
        self.inner.all_audiences(now).await
    }

    async fn delete_audience(
        &self,
        advertiser_no: u32,
        audience_id: &str,
        now: Timestamp,
    ) -> Result<Option<Applied>, StoreError> {
        self.check()?;
        self.inner
            .delete_audience(advertiser_no, audience_id, now)
            .await
    }

    async fn create_session(
        &self,
        session_id: &str,
        advertiser_no: u32,
        audience_no: u32,
        op: JobOp,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<UploadSession, StoreError> {
        self.check()?;
        self.inner
            .create_session(session_id, advertiser_no, audience_no, op, now, expires_at)
            .await
    }

    async fn session(
        &self,
        advertiser_no: u32,
        session_id: &str,
    ) -> Result<Option<UploadSession>, StoreError> {
        self.check()?;
        self.inner.session(advertiser_no, session_id).await
    }

    async fn put_session_part(
        &self,
        session_no: u64,
        part: SessionPart,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.put_session_part(session_no, part, now).await
    }

    async fn session_parts(&self, session_no: u64) -> Result<Vec<StagedPart>, StoreError> {
        self.inner.session_parts(session_no).await
    }

    async fn commit_session(
        &self,
        session_no: u64,
        job: NewJob,
        now: Timestamp,
    ) -> Result<Job, StoreError> {
        self.check()?;
        self.inner.commit_session(session_no, job, now).await
    }

    async fn expire_sessions(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.inner.expire_sessions(now).await
    }

    async fn job(&self, advertiser_no: u32, job_id: &str) -> Result<Option<Job>, StoreError> {
        self.check()?;
        self.inner.job(advertiser_no, job_id).await
    }

    async fn job_by_no(&self, job_no: u64) -> Result<Option<Job>, StoreError> {
        self.inner.job_by_no(job_no).await
    }

    async fn unfinished_jobs(&self) -> Result<Vec<Job>, StoreError> {
        self.inner.unfinished_jobs().await
    }

    async fn set_job_running(&self, job_no: u64, now: Timestamp) -> Result<(), StoreError> {
        self.inner.set_job_running(job_no, now).await
    }

    async fn staged_matches(
        &self,
        job_no: u64,
    ) -> Result<Vec<(AccountNo, KeyedDigest)>, StoreError> {
        self.inner.staged_matches(job_no).await
    }

    async fn apply_job(
        &self,
        job_no: u64,
        grants: Vec<Grant>,
        removals: Vec<AccountNo>,
        query: QueryDigest,
        now: Timestamp,
    ) -> Result<Applied, StoreError> {
        self.inner
            .apply_job(job_no, grants, removals, query, now)
            .await
    }

    async fn charge_release(
        &self,
        release: NewRelease,
        config: &ReleaseConfig,
    ) -> Result<Charged, StoreError> {
        self.check()?;
        self.inner.charge_release(release, config).await
    }

    async fn entity_charges(
        &self,
        entity: &str,
        since: Timestamp,
    ) -> Result<Vec<(Timestamp, Epsilon)>, StoreError> {
        self.check()?;
        self.inner.entity_charges(entity, since).await
    }

    async fn fail_job(
        &self,
        job_no: u64,
        message: &'static str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.inner.fail_job(job_no, message, now).await
    }

    async fn memberships_of(&self, account: AccountNo) -> Result<Vec<Membership>, StoreError> {
        self.inner.memberships_of(account).await
    }

    async fn revoke(
        &self,
        memberships: Vec<(u32, AccountNo)>,
        reason: RevokeReason,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        self.inner.revoke(memberships, reason, now).await
    }

    async fn expire_memberships(
        &self,
        now: Timestamp,
    ) -> Result<Vec<(u32, AccountNo)>, StoreError> {
        self.inner.expire_memberships(now).await
    }

    async fn audience_members(
        &self,
        audience_no: u32,
        now: Timestamp,
    ) -> Result<Vec<AccountNo>, StoreError> {
        self.inner.audience_members(audience_no, now).await
    }

    fn scan_memberships(
        &self,
        batch: usize,
    ) -> tokio::sync::mpsc::Receiver<Result<Vec<Membership>, StoreError>> {
        self.inner.scan_memberships(batch)
    }

    fn scan_history(
        &self,
        from: Timestamp,
        to: Timestamp,
        batch: usize,
    ) -> tokio::sync::mpsc::Receiver<Result<Vec<tailor_store::ScannedEvent>, StoreError>> {
        self.inner.scan_history(from, to, batch)
    }

    async fn membership_history(
        &self,
        audience_no: Option<u32>,
        account: Option<AccountNo>,
    ) -> Result<Vec<MembershipEvent>, StoreError> {
        self.inner.membership_history(audience_no, account).await
    }

    async fn prune_history(&self, before: Timestamp, now: Timestamp) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.prune_history(before, now).await
    }

    async fn correct_contact(
        &self,
        correction: tailor_store::NewCorrection,
        now: Timestamp,
    ) -> Result<Result<AccountChange, tailor_store::CorrectionRefused>, StoreError> {
        self.check()?;
        self.inner.correct_contact(correction, now).await
    }

    async fn corrections(&self) -> Result<Vec<tailor_store::Correction>, StoreError> {
        self.check()?;
        self.inner.corrections().await
    }

    async fn commitments(
        &self,
        accounts: &[AccountNo],
    ) -> Result<Vec<(AccountNo, tailor_store::log::Commitment)>, StoreError> {
        self.check()?;
        self.inner.commitments(accounts).await
    }

    async fn counts(&self) -> Result<StoreCounts, StoreError> {
        self.inner.counts().await
    }

    async fn log_size(&self) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.log_size().await
    }

    async fn log_entries(&self, start: u64, end: u64) -> Result<Vec<StoredEntry>, StoreError> {
        self.check()?;
        self.inner.log_entries(start, end).await
    }

    async fn log_event(
        &self,
        event: tailor_store::log::LogEvent,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.log_event(event, now).await
    }

    async fn log_policy(&self, version: PolicyVersion, now: Timestamp) -> Result<(), StoreError> {
        self.check()?;
        self.inner.log_policy(version, now).await
    }

    async fn add_checkpoint(&self, checkpoint: StoredCheckpoint) -> Result<(), StoreError> {
        self.check()?;
        self.inner.add_checkpoint(checkpoint).await
    }

    async fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, StoreError> {
        self.check()?;
        self.inner.checkpoints().await
    }

    async fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.meta(name).await
    }

    async fn set_meta(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.inner.set_meta(name, value).await
    }

    async fn advertisers_by_no(&self, nos: &[u32]) -> Result<Vec<Advertiser>, StoreError> {
        self.check()?;
        self.inner.advertisers_by_no(nos).await
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

#[tokio::test]
async fn advertiser_side_store_failures_are_503_without_internals() {
    let dir = Scratch::new("store-failure-advertiser");
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
    let created = call(
        &router,
        Method::POST,
        "/v1/admin/advertisers",
        Some(ADMIN),
        r#"{"name":"Acme"}"#,
    )
    .await
    .json();
    let api_key = created["api_key"].as_str().unwrap().to_owned();

    broken.store(true, Ordering::SeqCst);
    let replies = [
        call(
            &router,
            Method::POST,
            "/v1/admin/advertisers",
            Some(ADMIN),
            r#"{"name":"Bolt"}"#,
        )
        .await,
        call(
            &router,
            Method::GET,
            "/v1/audiences",
            Some(&api_key),
            Body::empty(),
        )
        .await,
        call(
            &router,
            Method::POST,
            "/v1/audiences",
            Some(&api_key),
            r#"{"name":"Buyers"}"#,
        )
        .await,
        call(
            &router,
            Method::GET,
            "/v1/jobs/job_000000000000000000000000",
            Some(&api_key),
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
        assert_eq!(reply.error_code(), "store_unavailable");
        assert!(!reply.text().contains("disk"), "{}", reply.text());
    }
    // Serving answers from memory: an outage of the store does not stop ad serving.
    let served = call(
        &router,
        Method::GET,
        "/v1/serving/accounts/u-alice/audiences",
        Some(SERVING),
        Body::empty(),
    )
    .await;
    assert_eq!(served.status, StatusCode::OK, "{}", served.text());
    assert_eq!(served.json()["audiences"], serde_json::json!([]));
    broken.store(false, Ordering::SeqCst);
    let reply = call(
        &router,
        Method::GET,
        "/v1/audiences",
        Some(&api_key),
        Body::empty(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
}
