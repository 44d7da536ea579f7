//! A caller that stops waiting (an HTTP client hanging up) cannot leave the index behind the
//! store: the write it started commits and updates the index all the same.

use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;
use tailor_core::Policy;
use tailor_core::release::{Epsilon, QueryDigest, ReleaseConfig};
use tailor_core::{AccountNo, KeyedDigest, PolicyVersion};
use tailor_engine::{Engine, Limits, build_index};
use tailor_store::log::{StoredCheckpoint, StoredEntry};
use tailor_store::{
    AccountChange, AccountState, AccountWrite, Advertiser, ApiKeyRecord, Applied, Audience,
    Charged, Erasure, Grant, Job, JobOp, Membership, MembershipEvent, NewAdvertiser, NewAudience,
    NewConsent, NewJob, NewRelease, RevokeReason, SessionPart, StagedPart, Store, StoreCounts,
    StoreError, UploadSession,
};
use tokio::sync::{Notify, mpsc};

use crate::support::{TestClock, contact, key, line, sqlite};

/// A store whose account writes (or, with `jobs`, whose job applications instead) wait for a
/// signal, and tell when they start waiting.
pub(crate) struct GatedStore {
    pub(crate) inner: Arc<dyn Store>,
    pub(crate) entered: Arc<Notify>,
    pub(crate) gate: Arc<Notify>,
    pub(crate) jobs: bool,
}

impl GatedStore {
    /// Waits for the gate (telling that it does) if `gated`.
    async fn pass(&self, gated: bool) {
        if gated {
            self.entered.notify_one();
            self.gate.notified().await;
        }
    }
}

#[async_trait]
impl Store for GatedStore {
    async fn write_accounts(
        &self,
        writes: Vec<AccountWrite>,
        now: Timestamp,
    ) -> Result<Vec<AccountChange>, StoreError> {
        if self.jobs {
            return self.inner.write_accounts(writes, now).await;
        }
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

    async fn account_no(&self, account_id: &str) -> Result<Option<AccountNo>, StoreError> {
        self.inner.account_no(account_id).await
    }

    async fn account_ids(
        &self,
        accounts: &[AccountNo],
    ) -> Result<Vec<(AccountNo, String)>, StoreError> {
        self.inner.account_ids(accounts).await
    }

    async fn accounts_by_no(
        &self,
        accounts: &[AccountNo],
    ) -> Result<Vec<AccountState>, StoreError> {
        self.inner.accounts_by_no(accounts).await
    }

    fn scan_accounts(&self, batch: usize) -> mpsc::Receiver<Result<Vec<AccountState>, StoreError>> {
        self.inner.scan_accounts(batch)
    }

    async fn create_advertiser(
        &self,
        new: NewAdvertiser,
        now: Timestamp,
    ) -> Result<Advertiser, StoreError> {
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
        self.inner.create_audience(new, now).await
    }

    async fn audiences(
        &self,
        advertiser_no: u32,
        now: Timestamp,
    ) -> Result<Vec<Audience>, StoreError> {
        self.inner.audiences(advertiser_no, now).await
    }

    async fn audience(
        &self,
        advertiser_no: u32,
        audience_id: &str,
        now: Timestamp,
    ) -> Result<Option<Audience>, StoreError> {
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
        self.inner
            .create_session(session_id, advertiser_no, audience_no, op, now, expires_at)
            .await
    }

    async fn session(
        &self,
        advertiser_no: u32,
        session_id: &str,
    ) -> Result<Option<UploadSession>, StoreError> {
        self.inner.session(advertiser_no, session_id).await
    }

    async fn put_session_part(
        &self,
        session_no: u64,
        part: SessionPart,
        now: Timestamp,
    ) -> Result<(), StoreError> {
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
        self.inner.commit_session(session_no, job, now).await
    }

    async fn expire_sessions(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.inner.expire_sessions(now).await
    }

    async fn job(&self, advertiser_no: u32, job_id: &str) -> Result<Option<Job>, StoreError> {
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
        self.pass(self.jobs).await;
        self.inner
            .apply_job(job_no, grants, removals, query, now)
            .await
    }

    async fn charge_release(
        &self,
        release: NewRelease,
        config: &ReleaseConfig,
    ) -> Result<Charged, StoreError> {
        self.inner.charge_release(release, config).await
    }

    async fn entity_charges(
        &self,
        entity: &str,
        since: Timestamp,
    ) -> Result<Vec<(Timestamp, Epsilon)>, StoreError> {
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
    ) -> mpsc::Receiver<Result<Vec<Membership>, StoreError>> {
        self.inner.scan_memberships(batch)
    }

    fn scan_history(
        &self,
        from: Timestamp,
        to: Timestamp,
        batch: usize,
    ) -> mpsc::Receiver<Result<Vec<tailor_store::ScannedEvent>, StoreError>> {
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
        self.inner.prune_history(before, now).await
    }

    async fn correct_contact(
        &self,
        correction: tailor_store::NewCorrection,
        now: Timestamp,
    ) -> Result<Result<AccountChange, tailor_store::CorrectionRefused>, StoreError> {
        self.inner.correct_contact(correction, now).await
    }

    async fn corrections(&self) -> Result<Vec<tailor_store::Correction>, StoreError> {
        self.inner.corrections().await
    }

    async fn commitments(
        &self,
        accounts: &[AccountNo],
    ) -> Result<Vec<(AccountNo, tailor_store::log::Commitment)>, StoreError> {
        self.inner.commitments(accounts).await
    }

    async fn counts(&self) -> Result<StoreCounts, StoreError> {
        self.inner.counts().await
    }

    async fn log_size(&self) -> Result<u64, StoreError> {
        self.inner.log_size().await
    }

    async fn log_entries(&self, start: u64, end: u64) -> Result<Vec<StoredEntry>, StoreError> {
        self.inner.log_entries(start, end).await
    }

    async fn log_event(
        &self,
        event: tailor_store::log::LogEvent,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.inner.log_event(event, now).await
    }

    async fn log_policy(&self, version: PolicyVersion, now: Timestamp) -> Result<(), StoreError> {
        self.inner.log_policy(version, now).await
    }

    async fn add_checkpoint(&self, checkpoint: StoredCheckpoint) -> Result<(), StoreError> {
        self.inner.add_checkpoint(checkpoint).await
    }

    async fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, StoreError> {
        self.inner.checkpoints().await
    }

    async fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.meta(name).await
    }

    async fn set_meta(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.inner.set_meta(name, value).await
    }

    async fn advertisers_by_no(&self, nos: &[u32]) -> Result<Vec<Advertiser>, StoreError> {
        self.inner.advertisers_by_no(nos).await
    }

    fn replication(&self) -> Option<&dyn tailor_store::replication::Replication> {
        self.inner.replication()
    }
}

#[tokio::test]
async fn an_abandoned_import_still_updates_the_index_with_what_it_committed() {
    let dir = sqlite("cancel");
    let clock = TestClock::at(1_800_000_000);
    let entered = Arc::new(Notify::new());
    let gate = Arc::new(Notify::new());
    let gated: Arc<dyn Store> = Arc::new(GatedStore {
        inner: dir.store().await,
        entered: Arc::clone(&entered),
        gate: Arc::clone(&gate),
        jobs: false,
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
