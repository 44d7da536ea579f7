//! The advertiser side of the engine: advertisers and keys, audiences, uploads and upload
//! sessions, the job worker that turns matches into memberships, and the serving lookup.
//!
//! An upload is read and matched as it streams in: each row's identifiers are keyed and looked
//! up in the eligible index, and only what matched is staged (account numbers and the keyed
//! digests of their own contact points). A row that matches nothing leaves only counters. The
//! job worker then re-checks every staged match against the index at the moment it applies
//! the job (consent at match time), records each grant's basis, and commits the whole job in
//! one store transaction; the serving map follows under the same writer lock, so a reader sees
//! the audience before or after the job, never in between.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::sync::{Arc, Weak};
use std::time::Instant;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use tailor_core::release::{KeySetDigest, QueryDigest, QueryOp, ReleasedSize, UploadKeys};
use tailor_core::{AccountFacts, AccountNo, ContactFacts, KeyedDigest, Region};
use tailor_list::{ListError, UploadFormat, UploadReader};
use tailor_store::{
    Advertiser, ApiKeyRecord, Audience, Grant, Job, JobCounts, JobOp, JobState, NewAdvertiser,
    NewAudience, NewJob, SessionPart, Store, StoreError, UploadSession,
};
use zeroize::Zeroizing;

use crate::secret::random_bytes;
use crate::{Engine, EngineError, INDEXED_PURPOSE, Inner, Shared};

/// How long an uncommitted upload session lives.
pub const SESSION_TTL: SignedDuration = SignedDuration::from_hours(24);

/// The most membership days an audience may ask for (Customer Match allows 540).
pub const MAX_TTL_DAYS: u32 = 540;

/// The most parts an upload session may have.
pub const MAX_PARTS: u32 = 10_000;

/// A new advertiser's public id and first key; the key is shown once and only its SHA-256 is
/// kept.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdvertiserCreated {
    pub advertiser_id: String,
    pub name: String,
    pub entity: String,
    pub key_id: String,
    #[serde(serialize_with = "reveal")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub api_key: Zeroizing<String>,
}

/// Serializes a secret once, to show it to its owner.
fn reveal<S: serde::Serializer>(
    secret: &Zeroizing<String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(secret)
}

impl std::fmt::Debug for AdvertiserCreated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdvertiserCreated")
            .field("advertiser_id", &self.advertiser_id)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// A new key of an existing advertiser.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyCreated {
    pub key_id: String,
    #[serde(serialize_with = "reveal")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub api_key: Zeroizing<String>,
}

impl std::fmt::Debug for KeyCreated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCreated")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// An audience as its advertiser sees it. `size` and `targetable` come from the release
/// function only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AudienceView {
    pub id: String,
    pub name: String,
    pub description: String,
    pub membership_ttl_days: u32,
    /// `empty`, `processing`, `ready`, `too_small` or `expired`.
    pub status: &'static str,
    pub targetable: bool,
    pub size: ReleasedSize,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

/// A job as its advertiser sees it: counters of its own file, never how many rows matched.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobView {
    pub job_id: String,
    pub audience_id: String,
    pub op: &'static str,
    pub state: &'static str,
    pub progress: f64,
    pub rows_received: u64,
    pub rows_accepted: u64,
    pub rejected: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub finished_at: Option<Timestamp>,
}

/// An upload session as its advertiser sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionView {
    pub session_id: String,
    pub audience_id: String,
    pub op: &'static str,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub expires_at: Timestamp,
    pub parts: Vec<PartView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
}

/// One staged part.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PartView {
    pub part: u32,
    pub rows_received: u64,
    pub rows_accepted: u64,
    pub rejected: BTreeMap<String, u64>,
}

/// Why an advertiser request is refused (not a failure of Tailor).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// No such audience, job or session for this advertiser (another advertiser's ids too).
    NotFound,
    /// A field is out of range (name empty or too long, ttl, part number).
    Invalid(&'static str),
    /// The session was committed already, or expired.
    Conflict(&'static str),
    /// The list as a whole could not be read (no header, no identifier column, ...).
    BadList(&'static str),
}

fn random_id(prefix: &str) -> Result<String, EngineError> {
    Ok(format!("{prefix}_{}", hex::encode(*random_bytes::<12>()?)))
}

fn sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

fn check_name(text: &str, what: &'static str, max: usize) -> Result<(), Refused> {
    if text.trim().is_empty() || text.len() > max || text.chars().any(char::is_control) {
        return Err(Refused::Invalid(what));
    }
    Ok(())
}

fn job_view(job: &Job, audience_id: &str) -> JobView {
    JobView {
        job_id: job.job_id.clone(),
        audience_id: audience_id.to_owned(),
        op: job.op.as_str(),
        state: job.state.as_str(),
        progress: match job.state {
            JobState::Queued => 0.0,
            JobState::Running => 0.5,
            JobState::Succeeded | JobState::Failed => 1.0,
        },
        rows_received: job.counts.rows_received,
        rows_accepted: job.counts.rows_accepted,
        rejected: job.counts.rejected.clone(),
        error: job.error.clone(),
        created_at: job.created_at,
        finished_at: job.finished_at,
    }
}

/// Creates an advertiser and its first API key in `store` directly: what
/// [`Engine::create_advertiser`] does, for an operator command that must not open an engine
/// (which would rebuild the index and resume queued jobs just to add an advertiser).
pub async fn create_advertiser(
    store: &dyn Store,
    name: &str,
    entity: Option<&str>,
    now: Timestamp,
) -> Result<Result<AdvertiserCreated, Refused>, EngineError> {
    let entity = entity.unwrap_or(name);
    if let Err(refused) =
        check_name(name, "name", 200).and_then(|()| check_name(entity, "entity", 200))
    {
        return Ok(Err(refused));
    }
    let api_key = Zeroizing::new(format!("tk_{}", hex::encode(*random_bytes::<32>()?)));
    let new = NewAdvertiser {
        advertiser_id: random_id("adv")?,
        name: name.to_owned(),
        entity: entity.to_owned(),
        key_id: random_id("key")?,
        key_sha256: sha256(&api_key),
    };
    let key_id = new.key_id.clone();
    let advertiser = store.create_advertiser(new, now).await?;
    Ok(Ok(AdvertiserCreated {
        advertiser_id: advertiser.advertiser_id,
        name: advertiser.name,
        entity: advertiser.entity,
        key_id,
        api_key,
    }))
}

impl Engine {
    /// Creates an advertiser and its first API key.
    pub async fn create_advertiser(
        &self,
        name: &str,
        entity: Option<&str>,
    ) -> Result<Result<AdvertiserCreated, Refused>, EngineError> {
        create_advertiser(self.inner.store.as_ref(), name, entity, self.now()).await
    }

    /// The advertiser an API key belongs to, if the key is live.
    pub async fn authenticate(&self, api_key: &str) -> Result<Option<Advertiser>, EngineError> {
        Ok(self.inner.store.advertiser_by_key(&sha256(api_key)).await?)
    }

    /// Adds a key to an advertiser (rotation: add, switch, then revoke the old key).
    pub async fn add_key(&self, advertiser_id: &str) -> Result<Option<KeyCreated>, EngineError> {
        let Some(advertiser) = self.inner.store.advertiser(advertiser_id).await? else {
            return Ok(None);
        };
        let api_key = Zeroizing::new(format!("tk_{}", hex::encode(*random_bytes::<32>()?)));
        let key_id = random_id("key")?;
        self.inner
            .store
            .add_api_key(advertiser.no, &key_id, sha256(&api_key), self.now())
            .await?;
        Ok(Some(KeyCreated { key_id, api_key }))
    }

    /// Revokes one key of an advertiser.
    pub async fn revoke_key(
        &self,
        advertiser_id: &str,
        key_id: &str,
    ) -> Result<Option<ApiKeyRecord>, EngineError> {
        let Some(advertiser) = self.inner.store.advertiser(advertiser_id).await? else {
            return Ok(None);
        };
        Ok(self
            .inner
            .store
            .revoke_api_key(advertiser.no, key_id, self.now())
            .await?)
    }

    /// An advertiser's keys (ids and dates only).
    pub async fn keys(
        &self,
        advertiser_id: &str,
    ) -> Result<Option<Vec<ApiKeyRecord>>, EngineError> {
        let Some(advertiser) = self.inner.store.advertiser(advertiser_id).await? else {
            return Ok(None);
        };
        Ok(Some(self.inner.store.api_keys(advertiser.no).await?))
    }

    /// Creates an audience.
    pub async fn create_audience(
        &self,
        advertiser: &Advertiser,
        name: &str,
        description: &str,
        membership_ttl_days: Option<u32>,
    ) -> Result<Result<AudienceView, Refused>, EngineError> {
        let ttl = membership_ttl_days.unwrap_or(MAX_TTL_DAYS);
        if let Err(refused) = check_name(name, "name", 200) {
            return Ok(Err(refused));
        }
        if description.len() > 2000 {
            return Ok(Err(Refused::Invalid("description")));
        }
        if ttl == 0 || ttl > MAX_TTL_DAYS {
            return Ok(Err(Refused::Invalid("membership_ttl_days")));
        }
        let audience = self
            .inner
            .store
            .create_audience(
                NewAudience {
                    audience_id: random_id("aud")?,
                    advertiser_no: advertiser.no,
                    name: name.to_owned(),
                    description: description.to_owned(),
                    membership_ttl_days: ttl,
                },
                self.now(),
            )
            .await?;
        self.inner.write().serving.add_audience(&audience);
        Ok(Ok(self.audience_view(&audience).await?))
    }

    /// The advertiser's audiences.
    pub async fn audiences(
        &self,
        advertiser: &Advertiser,
    ) -> Result<Vec<AudienceView>, EngineError> {
        let audiences = self
            .inner
            .store
            .audiences(advertiser.no, self.now())
            .await?;
        let mut views = Vec::with_capacity(audiences.len());
        for audience in &audiences {
            views.push(self.audience_view(audience).await?);
        }
        Ok(views)
    }

    /// One audience of the advertiser.
    pub async fn audience(
        &self,
        advertiser: &Advertiser,
        audience_id: &str,
    ) -> Result<Option<AudienceView>, EngineError> {
        let audience = self
            .inner
            .store
            .audience(advertiser.no, audience_id, self.now())
            .await?;
        match audience {
            Some(audience) => Ok(Some(self.audience_view(&audience).await?)),
            None => Ok(None),
        }
    }

    /// Deletes an audience and ends its memberships.
    pub async fn delete_audience(
        &self,
        advertiser: &Advertiser,
        audience_id: &str,
    ) -> Result<bool, EngineError> {
        let inner = Arc::clone(&self.inner);
        let (advertiser_no, audience_id) = (advertiser.no, audience_id.to_owned());
        crate::detached(async move {
            let _writing = inner.writer.lock().await;
            let Some(audience) = inner
                .store
                .audience(advertiser_no, &audience_id, inner.clock.now())
                .await?
            else {
                return Ok(false);
            };
            let deleted = inner
                .store
                .delete_audience(advertiser_no, &audience_id, inner.clock.now())
                .await?;
            inner.write().serving.remove_audience(audience.no);
            let members = inner.read().serving.members_of(audience.no);
            inner
                .serving_in_chunks(&members, |serving, &account| {
                    serving.drop_memberships(audience.no, account);
                })
                .await;
            Ok::<_, StoreError>(deleted.is_some())
        })
        .await
        .map_err(EngineError::from)
    }

    /// An audience as its advertiser sees it: its size released (see [`crate::release`]), its
    /// status from that release and from the advertiser's own actions only.
    async fn audience_view(&self, audience: &Audience) -> Result<AudienceView, EngineError> {
        let released = self.inner.release(audience).await?;
        // Views are frequent and their answer mostly unchanged: the write lock only for a change.
        let current = self.inner.read().serving.targetable(audience.no);
        if current != Some(released.targetable) {
            self.inner
                .write()
                .serving
                .set_targetable(audience.no, released.targetable);
        }
        let size = released.size;
        let now = self.now();
        // Every membership is granted by a job and lives the audience's time to live, so an
        // audience without a job for that long has none left: no count is needed to say so.
        let idle = now.duration_since(audience.updated_at)
            >= SignedDuration::from_hours(24 * i64::from(audience.membership_ttl_days));
        let publishing = self.inner.is_publishing(|_, no| no == audience.no);
        let status = if audience.pending_jobs > 0 || publishing {
            "processing"
        } else if audience.succeeded_jobs == 0 {
            "empty"
        } else if released.targetable {
            "ready"
        } else if idle {
            "expired"
        } else if matches!(size, ReleasedSize::Unavailable { .. }) {
            "unavailable"
        } else {
            "too_small"
        };
        Ok(AudienceView {
            id: audience.audience_id.clone(),
            name: audience.name.clone(),
            description: audience.description.clone(),
            membership_ttl_days: audience.membership_ttl_days,
            status,
            targetable: released.targetable,
            size,
            created_at: audience.created_at,
            updated_at: audience.updated_at,
        })
    }

    /// Reads and matches an upload, then queues its job. The body is consumed on a blocking
    /// thread (it is a `std::io::Read`, such as an async body behind a `SyncIoBridge`).
    pub async fn upload<R: Read + Send + 'static>(
        &self,
        advertiser: &Advertiser,
        audience_id: &str,
        op: JobOp,
        format: UploadFormat,
        region: Region,
        body: R,
    ) -> Result<Result<JobView, Refused>, EngineError> {
        let now = self.now();
        let Some(audience) = self
            .inner
            .store
            .audience(advertiser.no, audience_id, now)
            .await?
        else {
            return Ok(Err(Refused::NotFound));
        };
        let part = match self.match_upload(body, format, region, 1).await? {
            Ok(part) => part,
            Err(refused) => return Ok(Err(refused)),
        };
        let session = self
            .inner
            .store
            .create_session(
                &random_id("ses")?,
                advertiser.no,
                audience.no,
                op,
                now,
                now + SESSION_TTL,
            )
            .await?;
        let counts = part.counts.clone();
        let keys = [part.keys];
        self.inner
            .store
            .put_session_part(session.no, part, now)
            .await?;
        let job = self
            .commit(&session, counts, &keys, &audience.audience_id)
            .await?;
        Ok(Ok(job))
    }

    /// Matches a body into a staged part: rows are read, keyed and looked up on a blocking
    /// thread; only matched (account, contact digest) pairs are kept.
    async fn match_upload<R: Read + Send + 'static>(
        &self,
        body: R,
        format: UploadFormat,
        region: Region,
        part_no: u32,
    ) -> Result<Result<SessionPart, Refused>, EngineError> {
        let inner = Arc::clone(&self.inner);
        let matched =
            tokio::task::spawn_blocking(move || match_rows(&inner, body, format, region, part_no))
                .await
                .map_err(|_| EngineError::Worker)?;
        Ok(match matched {
            Ok(part) => Ok(part),
            Err(MatchFailure::List(error)) => Err(Refused::BadList(list_error_code(&error))),
            Err(MatchFailure::Read(error)) => return Err(EngineError::Body(error)),
        })
    }

    /// Opens an upload session for a list too large for one request.
    pub async fn create_session(
        &self,
        advertiser: &Advertiser,
        audience_id: &str,
        op: JobOp,
    ) -> Result<Result<SessionView, Refused>, EngineError> {
        let now = self.now();
        let Some(audience) = self
            .inner
            .store
            .audience(advertiser.no, audience_id, now)
            .await?
        else {
            return Ok(Err(Refused::NotFound));
        };
        let session = self
            .inner
            .store
            .create_session(
                &random_id("ses")?,
                advertiser.no,
                audience.no,
                op,
                now,
                now + SESSION_TTL,
            )
            .await?;
        Ok(Ok(SessionView {
            session_id: session.session_id,
            audience_id: audience.audience_id,
            op: op.as_str(),
            expires_at: session.expires_at,
            parts: Vec::new(),
            job_id: None,
        }))
    }

    /// Stages part `part_no` of a session (re-sending a part replaces it).
    pub async fn put_part<R: Read + Send + 'static>(
        &self,
        advertiser: &Advertiser,
        session_id: &str,
        part_no: u32,
        format: UploadFormat,
        region: Region,
        body: R,
    ) -> Result<Result<PartView, Refused>, EngineError> {
        if part_no == 0 || part_no > MAX_PARTS {
            return Ok(Err(Refused::Invalid("part")));
        }
        let Some(session) = self.live_session(advertiser, session_id).await? else {
            return Ok(Err(Refused::NotFound));
        };
        if session.job_no.is_some() {
            return Ok(Err(Refused::Conflict("the session is committed")));
        }
        let part = match self.match_upload(body, format, region, part_no).await? {
            Ok(part) => part,
            Err(refused) => return Ok(Err(refused)),
        };
        let view = PartView {
            part: part_no,
            rows_received: part.counts.rows_received,
            rows_accepted: part.counts.rows_accepted,
            rejected: part.counts.rejected.clone(),
        };
        self.inner
            .store
            .put_session_part(session.no, part, self.now())
            .await?;
        Ok(Ok(view))
    }

    /// A session and its parts.
    pub async fn session(
        &self,
        advertiser: &Advertiser,
        session_id: &str,
    ) -> Result<Option<SessionView>, EngineError> {
        let Some(session) = self.live_session(advertiser, session_id).await? else {
            return Ok(None);
        };
        self.session_view(&session).await.map(Some)
    }

    async fn session_view(&self, session: &UploadSession) -> Result<SessionView, EngineError> {
        let parts = self.inner.store.session_parts(session.no).await?;
        let audience_id = self.audience_id(session.audience_no);
        let job_id = match session.job_no {
            Some(job_no) => self
                .inner
                .store
                .job_by_no(job_no)
                .await?
                .map(|job| job.job_id),
            None => None,
        };
        Ok(SessionView {
            session_id: session.session_id.clone(),
            audience_id,
            op: session.op.as_str(),
            expires_at: session.expires_at,
            parts: parts
                .into_iter()
                .map(|part| PartView {
                    part: part.part_no,
                    rows_received: part.counts.rows_received,
                    rows_accepted: part.counts.rows_accepted,
                    rejected: part.counts.rejected,
                })
                .collect(),
            job_id,
        })
    }

    async fn live_session(
        &self,
        advertiser: &Advertiser,
        session_id: &str,
    ) -> Result<Option<UploadSession>, EngineError> {
        let session = self.inner.store.session(advertiser.no, session_id).await?;
        Ok(session.filter(|s| s.job_no.is_some() || s.expires_at > self.now()))
    }

    /// Commits a session: nothing of it applies before this; its job is queued.
    pub async fn commit_session(
        &self,
        advertiser: &Advertiser,
        session_id: &str,
    ) -> Result<Result<JobView, Refused>, EngineError> {
        let Some(session) = self.live_session(advertiser, session_id).await? else {
            return Ok(Err(Refused::NotFound));
        };
        if session.job_no.is_some() {
            return Ok(Err(Refused::Conflict("the session is committed")));
        }
        let parts = self.inner.store.session_parts(session.no).await?;
        if parts.is_empty() {
            return Ok(Err(Refused::Conflict("the session has no parts")));
        }
        let mut counts = JobCounts::default();
        let mut keys = Vec::with_capacity(parts.len());
        for part in parts {
            counts.rows_received += part.counts.rows_received;
            counts.rows_accepted += part.counts.rows_accepted;
            for (code, n) in part.counts.rejected {
                *counts.rejected.entry(code).or_default() += n;
            }
            keys.push(part.keys);
        }
        let audience_id = self.audience_id(session.audience_no);
        Ok(Ok(self
            .commit(&session, counts, &keys, &audience_id)
            .await?))
    }

    /// Queues a session's job; `keys` are its parts' key sets.
    async fn commit(
        &self,
        session: &UploadSession,
        counts: JobCounts,
        keys: &[KeySetDigest],
        audience_id: &str,
    ) -> Result<JobView, EngineError> {
        let new = NewJob {
            job_id: random_id("job")?,
            advertiser_no: session.advertiser_no,
            audience_no: session.audience_no,
            op: session.op,
            counts,
            keys: KeySetDigest::combine(keys, &self.inner.releaser.key),
        };
        let job = self
            .inner
            .store
            .commit_session(session.no, new, self.now())
            .await?;
        // A send fails only if the worker is gone (the engine is shutting down); the job stays
        // queued in the store and is resumed at the next start.
        let _ = self.inner.jobs.send(job.no);
        Ok(job_view(&job, audience_id))
    }

    /// A job of the advertiser.
    pub async fn job(
        &self,
        advertiser: &Advertiser,
        job_id: &str,
    ) -> Result<Option<JobView>, EngineError> {
        let job = self.inner.store.job(advertiser.no, job_id).await?;
        Ok(job.map(|mut job| {
            if self.inner.is_publishing(|no, _| no == job.no) {
                job.state = JobState::Running;
                job.finished_at = None;
            }
            job_view(&job, &self.audience_id(job.audience_no))
        }))
    }

    fn audience_id(&self, audience_no: u32) -> String {
        self.inner
            .read()
            .serving
            .audience_id(audience_no)
            .unwrap_or_default()
    }

    /// The targetable audiences an account is in, re-checked now.
    pub async fn serving_audiences(&self, account_id: &str) -> Result<Vec<String>, EngineError> {
        if crate::import::check_account_id(account_id).is_err() {
            return Ok(Vec::new());
        }
        // Every write acknowledged by any process before this call is in the answer.
        self.inner.catch_up().await?;
        let now = self.now();
        let shared = self.inner.read();
        Ok(shared.serving.answer(account_id, &shared.index, now))
    }

    /// Memberships in the serving map (for reports).
    pub fn memberships_held(&self) -> usize {
        self.inner.read().serving.len()
    }

    /// Waits until every job queued so far has finished (for tests and benchmarks).
    pub async fn jobs_settled(&self) -> Result<(), EngineError> {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.inner.settle.send(done).is_err() {
            return Err(EngineError::Worker);
        }
        wait.await.map_err(|_| EngineError::Worker)
    }
}

/// Why matching a body stopped.
enum MatchFailure {
    List(ListError),
    Read(std::io::Error),
}

fn list_error_code(error: &ListError) -> &'static str {
    match error {
        ListError::Empty => "empty_list",
        ListError::HeaderNotUtf8 => "header_not_utf8",
        ListError::HeaderTooLong { .. } => "header_too_long",
        ListError::HeaderLooksLikeData => "header_looks_like_data",
        ListError::NoIdentifierColumn { .. } => "no_identifier_column",
        ListError::DuplicateIdentifierColumn { .. } => "duplicate_identifier_column",
        _ => "unreadable_list",
    }
}

/// Reads every row, keys its digests and looks them up; returns the counts and the matched
/// (account, primary contact digest) pairs, one per account per row, as part `part_no`.
fn match_rows<R: Read>(
    inner: &Inner,
    body: R,
    format: UploadFormat,
    region: Region,
    part_no: u32,
) -> Result<SessionPart, MatchFailure> {
    let mut reader = UploadReader::new(body, format, region).map_err(|e| match e {
        ListError::Read { source, .. } => MatchFailure::Read(source),
        other => MatchFailure::List(other),
    })?;
    let mut matched = Vec::new();
    // Every row's keys, matched or not: the question the upload asks (see `crate::release`).
    let mut keys = UploadKeys::new();
    let mut row_accounts: Vec<AccountNo> = Vec::with_capacity(4);
    let mut keyed: Vec<KeyedDigest> = Vec::with_capacity(1024);
    loop {
        // Rows are keyed outside the index lock, then looked up in one short read section.
        keyed.clear();
        let mut rows: Vec<std::ops::Range<usize>> = Vec::with_capacity(256);
        while rows.len() < 256 {
            let row = reader.next_row().map_err(|e| match e {
                ListError::Read { source, .. } => MatchFailure::Read(source),
                other => MatchFailure::List(other),
            })?;
            let Some(row) = row else { break };
            let start = keyed.len();
            for digest in row.digests() {
                keys.push(digest);
            }
            keyed.extend(row.digests().iter().map(|d| inner.key.digest(d)));
            rows.push(start..keyed.len());
        }
        if rows.is_empty() {
            break;
        }
        let shared = inner.read();
        for range in rows {
            row_accounts.clear();
            for digest in &keyed[range] {
                for account in shared.index.lookup(digest) {
                    // One row is one person: each account it reaches counts once.
                    if !row_accounts.contains(&account) {
                        row_accounts.push(account);
                        matched.push((account, *digest));
                    }
                }
            }
        }
    }
    let counts = reader.counts();
    Ok(SessionPart {
        part_no,
        counts: JobCounts {
            rows_received: counts.rows_received,
            rows_accepted: counts.rows_accepted,
            rejected: counts
                .rejected
                .iter()
                .map(|(reason, n)| (reason.code().to_owned(), n))
                .collect(),
        },
        keys: keys.digest(&inner.releaser.key),
        matched,
    })
}

/// Applies queued jobs one at a time, in the order they were queued.
pub(crate) async fn job_worker(
    inner: Weak<Inner>,
    mut jobs: tokio::sync::mpsc::UnboundedReceiver<u64>,
    mut settle: tokio::sync::mpsc::UnboundedReceiver<tokio::sync::oneshot::Sender<()>>,
) {
    loop {
        tokio::select! {
            biased;
            job = jobs.recv() => {
                let Some(job_no) = job else { return };
                let Some(inner) = inner.upgrade() else { return };
                if let Err(failure) = run_job(&inner, job_no).await {
                    fail_job(&inner, job_no, &failure).await;
                }
                // With several processes: the next job of its audience may have been made
                // elsewhere and waited for this one. A failure is retried by the claimer.
                if inner.limits.run_jobs {
                    let _ = crate::replica::take_orphans(&inner).await;
                }
            }
            waiter = settle.recv() => {
                let Some(waiter) = waiter else { return };
                // Every job sent before this request is done once the queue is drained.
                while let Ok(job_no) = jobs.try_recv() {
                    let Some(inner) = inner.upgrade() else { return };
                    if let Err(failure) = run_job(&inner, job_no).await {
                        fail_job(&inner, job_no, &failure).await;
                    }
                }
                let _ = waiter.send(());
            }
        }
    }
}

/// A job between being applied in the store and being published in the serving map: until
/// then its view reads `running` and its audience's `processing` (in the store it has
/// succeeded), so that a caller told it is done finds its members served.
struct Publishing<'a> {
    inner: &'a Inner,
    job_no: u64,
}

impl<'a> Publishing<'a> {
    fn mark(inner: &'a Inner, job_no: u64, audience_no: u32) -> Self {
        inner
            .publishing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(job_no, audience_no);
        Self { inner, job_no }
    }
}

impl Drop for Publishing<'_> {
    fn drop(&mut self) {
        self.inner
            .publishing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.job_no);
    }
}

/// Why a job could not be applied.
enum JobFailure {
    Store(StoreError),
    /// The thread re-checking its matches stopped (a bug: it panicked).
    Worker,
}

impl From<StoreError> for JobFailure {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

/// Records a job as failed, with a message for the advertiser that names no internals. If
/// even this fails, the job stays unfinished and is resumed at the next start.
async fn fail_job(inner: &Inner, job_no: u64, failure: &JobFailure) {
    if matches!(failure, JobFailure::Store(StoreError::NotClaimed)) {
        // Another process took the job over: it is that process's to finish.
        return;
    }
    let message = match failure {
        JobFailure::Store(StoreError::Database(_)) => "storage failure while applying the job",
        JobFailure::Store(_) | JobFailure::Worker => "the job could not be applied",
    };
    let _ = inner
        .store
        .fail_job(job_no, message, inner.clock.now())
        .await;
}

/// What re-checking a job's matches against the index keeps.
#[derive(Default)]
struct Rechecked {
    grants: Vec<Grant>,
    removals: Vec<AccountNo>,
    /// Matches whose consent sequence number the index cannot hold: read from the store.
    overflow: Vec<(AccountNo, KeyedDigest)>,
}

/// Consent at match time: keeps only the matches the index still holds, with the basis it
/// holds for them (the current policy's decision for the current consent history), one per
/// account. The index only changes under the writer lock, which the job holds, so reading
/// it in short sections (a waiting writer never holds serving answers up for long) reads one
/// state.
fn recheck(inner: &Inner, op: JobOp, staged: &[(AccountNo, KeyedDigest)]) -> Rechecked {
    let policy_version = inner.read().policy.version();
    let mut seen: HashSet<u32> = HashSet::with_capacity(staged.len());
    let mut kept = Rechecked::default();
    for chunk in staged.chunks(4096) {
        let shared = inner.read();
        for &(account, digest) in chunk {
            let Some(basis) = shared.index.basis(&digest, account) else {
                continue;
            };
            if !seen.insert(account.0) {
                continue;
            }
            match op {
                JobOp::Remove => kept.removals.push(account),
                JobOp::Add | JobOp::Replace if basis.seq_overflow => {
                    kept.overflow.push((account, digest));
                }
                JobOp::Add | JobOp::Replace => kept.grants.push(Grant {
                    account,
                    contact_digest: digest,
                    context: basis.context.context(),
                    consent_seq: basis.consent_seq,
                    policy_version,
                }),
            }
        }
    }
    kept
}

/// Runs work over the engine's state on a blocking thread: a job's million lookups must not
/// hold up an async worker, which would delay the serving answers queued on it.
async fn off_runtime<T: Send + 'static>(
    inner: &Arc<Inner>,
    work: impl FnOnce(&Inner) -> T + Send + 'static,
) -> Result<T, JobFailure> {
    let inner = Arc::clone(inner);
    tokio::task::spawn_blocking(move || work(&inner))
        .await
        .map_err(|_| JobFailure::Worker)
}

/// Re-checks a job's staged matches against the index, records each grant's basis and
/// applies the job, under the writer lock.
///
/// With several processes on one database (PostgreSQL), the lock is let go while the job's
/// transaction runs (seconds for millions of grants), so that other processes' writes are
/// applied here meanwhile and answers do not wait for the whole job. What changed meanwhile is
/// settled when the lock is taken again to publish: a grant whose contact point left the index
/// since the re-check ends at once, and the store grants nothing to an account erased since.
async fn run_job(inner: &Arc<Inner>, job_no: u64) -> Result<(), JobFailure> {
    let writing = inner.writer.lock().await;
    let started = Instant::now();
    let now = inner.clock.now();
    if !crate::replica::claim(inner, job_no, now).await? {
        // Another process runs it (or it is done).
        return Ok(());
    }
    // Consent at match time: every write any process committed before is in the index.
    inner
        .follow_locked(&writing)
        .await
        .map_err(|error| match error {
            EngineError::Store(store) => JobFailure::Store(store),
            _ => JobFailure::Worker,
        })?;
    inner.store.set_job_running(job_no, now).await?;
    let staged = inner.store.staged_matches(job_no).await?;
    let Some(job) = inner.store.job_by_no(job_no).await? else {
        return Ok(());
    };
    let op = job.op;
    // The audience's question after this job (see `crate::release`).
    let audience_id = inner.read().serving.audience_id(job.audience_no);
    let audience = match &audience_id {
        Some(id) => inner.store.audience(job.advertiser_no, id, now).await?,
        None => None,
    };
    let previous = audience.map_or(QueryDigest::EMPTY, |a| a.query);
    let query = previous.then(query_op(op), &job.keys, &inner.releaser.key);
    let matches = staged.len();
    let read_ms = started.elapsed().as_millis() as u64;
    let started = Instant::now();

    let Rechecked {
        mut grants,
        mut removals,
        overflow,
    } = off_runtime(inner, move |inner| recheck(inner, op, &staged)).await?;
    if !overflow.is_empty() {
        grants.extend(grants_for(inner, &overflow, now).await?);
    }
    removals.sort_unstable();
    // The ids of accounts that may become members, read before the job is applied: once its
    // transaction has committed, nothing may fail before the serving map follows it (a
    // failure there would leave the map serving the old members until a restart).
    let (grants, new_members) = off_runtime(inner, move |inner| {
        let mut new = Vec::new();
        for chunk in grants.chunks(4096) {
            let shared = inner.read();
            new.extend(
                chunk
                    .iter()
                    .map(|g| g.account)
                    .filter(|a| !shared.serving.is_named(*a)),
            );
        }
        (grants, new)
    })
    .await?;
    let ids = inner.store.account_ids(&new_members).await?;
    let recheck_ms = started.elapsed().as_millis() as u64;
    let started = Instant::now();
    let forbidden = grants
        .iter()
        .filter(|g| g.context.is_security() || g.context == tailor_core::Context::AddressBook)
        .count() as u64;
    let replicated = inner.store.replication().is_some();
    let writing = if replicated {
        drop(writing);
        None
    } else {
        Some(writing)
    };
    // Applied in the store but not yet served here: its views say so until it is published.
    let publishing = Publishing::mark(inner, job_no, job.audience_no);
    let applied = inner
        .store
        .apply_job(job_no, grants, removals, query, now)
        .await?;
    if forbidden > 0 {
        inner
            .forbidden_grants
            .fetch_add(forbidden, std::sync::atomic::Ordering::Relaxed);
        tracing::error!(
            job_no,
            forbidden,
            "grants rest on a security or address-book context"
        );
    }
    let apply_ms = started.elapsed().as_millis() as u64;
    let started = Instant::now();
    // The new question's answer, drawn and charged now: it decides whether the new members
    // are targetable when they are published. If it cannot be had, the audience keeps its
    // previous decision until a view of it asks again.
    let targetable = match &audience_id {
        Some(id) => {
            let released = match inner.store.audience(job.advertiser_no, id, now).await {
                Ok(Some(audience)) => inner.release(&audience).await.map(Some),
                Ok(None) => Ok(None),
                Err(error) => Err(error.into()),
            };
            match released {
                Ok(released) => released.map(|r| r.targetable),
                // The job stands; its audience waits, untargeted, for a view to ask again.
                Err(error) => {
                    tracing::warn!(job_no, %error, "no size released after a job");
                    Some(false)
                }
            }
        }
        None => None,
    };
    let writing = match writing {
        Some(held) => held,
        None => inner.writer.lock().await,
    };
    // Staged in chunks, published at once, settled in chunks: answers see the old set or the
    // new one, and wait for one chunk at most.
    {
        let mut shared = inner.write();
        shared.serving.begin();
        if let Some(targetable) = targetable {
            shared.serving.stage_targetable(job.audience_no, targetable);
        }
    }
    inner
        .serving_in_chunks(&applied.granted, |serving, membership| {
            serving.stage_grant(membership);
        })
        .await;
    inner
        .serving_in_chunks(&ids, |serving, (account, id)| serving.name(*account, id))
        .await;
    inner
        .serving_in_chunks(&applied.revoked, |serving, &(audience_no, account)| {
            serving.stage_revoke(audience_no, account);
        })
        .await;
    inner.write().serving.publish();
    drop(publishing);
    let touched: Vec<AccountNo> = applied
        .granted
        .iter()
        .map(|m| m.account)
        .chain(applied.revoked.iter().map(|&(_, account)| account))
        .collect();
    inner
        .serving_in_chunks(&touched, |serving, &account| serving.settle(account))
        .await;
    if replicated {
        // Writes applied while the lock was let go may have taken away the basis of grants
        // that were not published yet (their revocation found nothing to end): end them now.
        let lost: Vec<(u32, AccountNo)> = {
            let shared = inner.read();
            applied
                .granted
                .iter()
                .filter(|m| !shared.index.contains(&m.contact_digest, m.account))
                .map(|m| (m.audience_no, m.account))
                .collect()
        };
        if !lost.is_empty() {
            tracing::info!(
                job_no,
                ended = lost.len(),
                "grants that lost their basis during the job ended"
            );
        }
        inner.revoke(lost, now).await?;
    }
    drop(writing);
    tracing::info!(
        job_no,
        op = op.as_str(),
        matches,
        granted = applied.granted.len(),
        revoked = applied.revoked.len(),
        read_ms,
        recheck_ms,
        apply_ms,
        serving_ms = started.elapsed().as_millis() as u64,
        "job applied"
    );
    Ok(())
}

/// How a job's operation enters its audience's canonical query.
fn query_op(op: JobOp) -> QueryOp {
    match op {
        JobOp::Add => QueryOp::Add,
        JobOp::Remove => QueryOp::Remove,
        JobOp::Replace => QueryOp::Replace,
    }
}

/// The current states of accounts, by number.
async fn grant_basis_states(
    inner: &Inner,
    accounts: &[AccountNo],
) -> Result<HashMap<u32, tailor_store::AccountState>, StoreError> {
    let mut states = HashMap::with_capacity(accounts.len());
    for chunk in accounts.chunks(10_000) {
        for state in inner.store.accounts_by_no(chunk).await? {
            states.insert(state.no.0, state);
        }
    }
    Ok(states)
}

/// The grant for each matched account, read from the store: the basis of the contact point
/// that matched, as the policy decides it now. One grant per account.
async fn grants_for(
    inner: &Inner,
    matches: &[(AccountNo, KeyedDigest)],
    now: Timestamp,
) -> Result<Vec<Grant>, StoreError> {
    let mut accounts: Vec<AccountNo> = matches.iter().map(|(a, _)| *a).collect();
    accounts.sort_unstable();
    accounts.dedup();
    let states = grant_basis_states(inner, &accounts).await?;
    let policy = Arc::clone(&inner.read().policy);
    let mut granted: HashSet<u32> = HashSet::with_capacity(accounts.len());
    let mut grants = Vec::with_capacity(accounts.len());
    for (account, digest) in matches {
        if granted.contains(&account.0) {
            continue;
        }
        let Some(state) = states.get(&account.0) else {
            continue;
        };
        let Some(contact) = state
            .contacts
            .iter()
            .find(|c| c.digests.iter().any(|d| d == *digest))
        else {
            continue;
        };
        let facts = AccountFacts {
            no: state.no,
            region: &state.region,
            consents: &state.consents,
        };
        let contact_facts = ContactFacts {
            context: contact.context,
            verified: contact.verified,
            removed: false,
        };
        let Ok(eligible) = policy.marketing(
            INDEXED_PURPOSE,
            &facts,
            &contact_facts,
            contact.digests,
            now,
        ) else {
            continue;
        };
        granted.insert(account.0);
        grants.push(Grant {
            account: *account,
            contact_digest: *digest,
            context: eligible.context().context(),
            consent_seq: match eligible.basis() {
                tailor_core::Basis::Consent { seq } => Some(seq),
                _ => None,
            },
            policy_version: eligible.policy(),
        });
    }
    Ok(grants)
}

impl Shared {
    /// Memberships that the current index no longer supports (after a policy swap).
    pub(crate) fn unsupported(&self) -> Vec<(u32, AccountNo)> {
        self.serving.not_in(&self.index)
    }
}
