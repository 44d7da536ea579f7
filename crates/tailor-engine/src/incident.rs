//! Incident analysis and contact corrections: "how many people were affected, by whom, when".
//!
//! `analyze` replays every grant made in a window, as the membership history recorded it, under
//! a policy (the current one or a corrected one) and the current knowledge of the facts: the
//! contact contexts as corrected (a correction applies to grants made from its effective time
//! on), the account's region, and its whole consent history as recorded now. A grant the policy
//! would not have made is affected, with the reason. The report counts distinct accounts,
//! advertisers, audiences, jobs and grants, per reason, and the window in which the affected
//! memberships were live; it lists each affected grant with the account as a log commitment
//! (never an account id, never a contact value). `remediate` ends the affected memberships
//! still live.
//!
//! It reads two scans at once, each on threads of the store's: every account's facts
//! (region, consent history for the replayed purpose, contact points' digests and
//! verification), kept in a table indexed by account number; and the history of the window
//! (its grants and the ends recorded since it began). Grants are replayed as they arrive once
//! the facts are in, and only the affected ones are kept, so memory follows the size of the
//! incident rather than of the window.
//!
//! Corrections (`Engine::correct_contacts`) come from the account system as NDJSON lines; each
//! one corrects a contact point's context from a time on, and the memberships that relied on
//! it end at once, as any ineligibility does.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tailor_core::policy::{AccountFacts, Basis, ContactFacts};
use tailor_core::{
    AccountNo, AccountRegion, ConsentEvent, ContactDigests, ContactKind, Context, E164Phone,
    Ineligible, NormalizedEmail, Policy,
};
use tailor_store::{
    AccountState, CorrectionRefused, NewCorrection, RevokeReason, ScannedEvent, Store, StoreError,
};

use crate::import::{ImportReject, ImportSummary};
use crate::{Engine, EngineError, INDEXED_PURPOSE, detached};

/// The question: grants made from `from` to `to` (inclusive), under `policy`.
#[derive(Clone, Debug)]
pub struct IncidentQuestion {
    pub from: Timestamp,
    pub to: Timestamp,
    /// The policy to replay under; the one in force when `None`.
    pub policy: Option<Arc<Policy>>,
}

/// One affected grant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AffectedGrant {
    /// The account's log commitment; `null` once the account is erased.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub account: Option<Arc<str>>,
    // Shared by every grant of the same account, advertiser, audience or job: an incident of
    // millions of grants holds each string once.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub advertiser_id: Arc<str>,
    /// The audience's id; `#N` for a deleted audience.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub audience_id: Arc<str>,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub job_id: Arc<str>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub granted_at: Timestamp,
    /// When the membership ended; `null` while it is live.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub ended_at: Option<Timestamp>,
    /// The context the grant rested on, as corrected.
    pub context: &'static str,
    pub reason: &'static str,
}

/// How many of each.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Counts {
    pub accounts: u64,
    pub advertisers: u64,
    pub audiences: u64,
    pub jobs: u64,
    pub grants: u64,
}

/// One advertiser's share.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ByAdvertiser {
    pub advertiser_id: String,
    pub entity: String,
    pub accounts: u64,
    pub grants: u64,
    pub audiences: Vec<String>,
}

/// The answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IncidentReport {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub from: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub to: Timestamp,
    /// The policy replayed under (`sha256:...`).
    pub policy_version: String,
    /// Grants made in the window.
    pub grants_examined: u64,
    /// Distinct accounts, advertisers, audiences and jobs of the affected grants.
    pub affected: Counts,
    /// Affected accounts and grants per reason (`security_context`, `address_book`,
    /// `no_consent`, `region_regime`, `withdrawn`, `unverified`, ...).
    pub by_reason: BTreeMap<&'static str, Counts>,
    pub advertisers: Vec<ByAdvertiser>,
    /// When the first affected membership began and the last one ended (`live_until` is
    /// `null` while some are still live).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub live_from: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub live_until: Option<Timestamp>,
    /// Affected memberships live when the analysis ran.
    pub still_live: u64,
    /// Memberships ended by remediation (`null` without it).
    pub remediated: Option<u64>,
    pub grants: Vec<AffectedGrant>,
    /// The affected memberships still live, by (audience, account number): what remediation
    /// ends. Never shown (account numbers are internal).
    #[serde(skip)]
    live: Vec<(u32, AccountNo)>,
}

impl IncidentReport {
    /// The affected grants as CSV (one row each; accounts as commitments).
    pub fn to_csv(&self) -> String {
        let mut csv = String::from(
            "account,advertiser_id,audience_id,job_id,granted_at,ended_at,context,reason\n",
        );
        for g in &self.grants {
            csv.push_str(&format!(
                "{},{},{},{},{},{},{},{}\n",
                g.account.as_deref().unwrap_or(""),
                g.advertiser_id,
                g.audience_id,
                g.job_id,
                g.granted_at,
                g.ended_at.map(|t| t.to_string()).unwrap_or_default(),
                g.context,
                g.reason
            ));
        }
        csv
    }
}

/// Corrections by account.
type Corrections = HashMap<AccountNo, Vec<tailor_store::Correction>>;

fn by_account(corrections: Vec<tailor_store::Correction>) -> Corrections {
    let mut map: Corrections = HashMap::new();
    for correction in corrections {
        map.entry(correction.account).or_default().push(correction);
    }
    map
}

/// The context a grant rested on, as known now: the latest correction of its contact point
/// effective at the grant's time, else the context recorded with the grant.
fn effective_context(grant: &ScannedEvent, corrections: &Corrections) -> Context {
    corrections
        .get(&grant.account)
        .into_iter()
        .flatten()
        .filter(|c| {
            c.effective_since <= grant.at && c.digests.iter().any(|d| d == grant.contact_digest)
        })
        .max_by_key(|c| (c.effective_since, c.at))
        .map_or(grant.context, |c| c.to)
}

/// Rows per batch of the scans an analysis reads.
const SCAN_BATCH: usize = 8192;

/// What a replay needs of one account, as known now.
struct Known {
    /// Its index in [`Facts::regions`].
    region: u32,
    /// Its consent events that cover the replayed purpose (the others cannot change a
    /// decision for it), in recording order.
    consents: Box<[ConsentEvent]>,
    /// Its live contact points: digests and whether verified.
    contacts: Box<[(ContactDigests, bool)]>,
}

/// The facts of every account, by account number: a dense table rather than a map, so that a
/// replay of millions of grants looks each account up without hashing, mostly in order.
#[derive(Default)]
struct Facts {
    /// The distinct regions (accounts hold an index).
    regions: Vec<AccountRegion>,
    by_no: Vec<Option<Known>>,
}

impl Facts {
    /// Reads a whole account scan.
    fn collect(
        mut scan: tokio::sync::mpsc::Receiver<Result<Vec<AccountState>, StoreError>>,
    ) -> Result<Self, StoreError> {
        let mut facts = Self::default();
        let mut region_index: HashMap<AccountRegion, u32> = HashMap::new();
        while let Some(batch) = scan.blocking_recv() {
            for state in batch? {
                let region = match region_index.get(&state.region) {
                    Some(&index) => index,
                    None => {
                        let index = facts.regions.len() as u32;
                        facts.regions.push(state.region.clone());
                        region_index.insert(state.region, index);
                        index
                    }
                };
                let known = Known {
                    region,
                    consents: state
                        .consents
                        .into_iter()
                        .filter(|c| c.covers(INDEXED_PURPOSE))
                        .collect(),
                    contacts: state
                        .contacts
                        .into_iter()
                        .map(|c| (c.digests, c.verified))
                        .collect(),
                };
                let no = state.no.0 as usize;
                if facts.by_no.len() <= no {
                    facts.by_no.resize_with(no + 1, || None);
                }
                facts.by_no[no] = Some(known);
            }
        }
        Ok(facts)
    }

    fn get(&self, account: AccountNo) -> Option<&Known> {
        self.by_no.get(account.0 as usize)?.as_ref()
    }
}

/// Decisions for accounts with no consent event for the replayed purpose: those depend on the
/// region, the context and verification alone (not on the time), so each combination is
/// decided once per replaying thread instead of once per grant.
type Decided = HashMap<(u32, Context, bool), Result<Basis, Ineligible>>;

/// Why the policy would not have made this grant, or `None` if it would. A grant of an
/// account that no longer exists (erased) is not replayed: its basis is gone with it.
fn replay(
    policy: &Policy,
    grant: &ScannedEvent,
    facts: &Facts,
    context: Context,
    decided: &mut Decided,
) -> Option<&'static str> {
    let known = facts.get(grant.account)?;
    let region = facts.regions.get(known.region as usize)?;
    let verified = known
        .contacts
        .iter()
        .find(|(digests, _)| digests.iter().any(|d| d == grant.contact_digest))
        // A contact point removed since was there, as recorded, when it was matched.
        .is_none_or(|&(_, verified)| verified);
    let decide = || {
        let account = AccountFacts {
            no: grant.account,
            region,
            consents: &known.consents,
        };
        let contact = ContactFacts {
            context,
            verified,
            removed: false,
        };
        policy.decide(INDEXED_PURPOSE, &account, &contact, grant.at)
    };
    let decision = if known.consents.is_empty() {
        *decided
            .entry((known.region, context, verified))
            .or_insert_with(decide)
    } else {
        decide()
    };
    match decision {
        Ok(_) => None,
        // Granted under an opt-out regime that the policy now says needs consent.
        Err(Ineligible::NoConsent) if grant.consent_seq.is_none() => Some("region_regime"),
        Err(reason) => Some(reason.code()),
    }
}

/// A grant the policy would not have made, with the context it rested on and why.
type Affected = (ScannedEvent, Context, &'static str);

/// What replaying the history of a window found.
#[derive(Default)]
struct Found {
    /// Grants replayed.
    examined: u64,
    affected: Vec<Affected>,
    /// Every end recorded since the window began (when the affected memberships ended).
    ends: Vec<ScannedEvent>,
    decided: Decided,
}

impl Found {
    /// Replays one batch of the history scan.
    fn replay(
        &mut self,
        policy: &Policy,
        batch: &[ScannedEvent],
        corrections: &Corrections,
        facts: &Facts,
    ) {
        for event in batch {
            if event.ended {
                self.ends.push(*event);
                continue;
            }
            self.examined += 1;
            let context = effective_context(event, corrections);
            if let Some(reason) = replay(policy, event, facts, context, &mut self.decided) {
                self.affected.push((*event, context, reason));
            }
        }
    }

    /// Replays held batches on every core, in order.
    fn replay_held(
        &mut self,
        policy: &Policy,
        held: &[Vec<ScannedEvent>],
        corrections: &Corrections,
        facts: &Facts,
    ) {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let chunk = held.len().div_ceil(threads).max(1);
        let parts: Vec<Found> = std::thread::scope(|scope| {
            let workers: Vec<_> = held
                .chunks(chunk)
                .map(|batches| {
                    scope.spawn(move || {
                        let mut found = Found::default();
                        for batch in batches {
                            found.replay(policy, batch, corrections, facts);
                        }
                        found
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|worker| {
                    worker
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        });
        for part in parts {
            self.examined += part.examined;
            self.affected.extend(part.affected);
            self.ends.extend(part.ends);
        }
    }
}

/// Replays the history scan as it comes, once the account facts are in; batches that come
/// before are held, then replayed on every core. Only what is affected is kept: memory grows
/// with the incident, not with the window.
fn replay_history(
    mut history: tokio::sync::mpsc::Receiver<Result<Vec<ScannedEvent>, StoreError>>,
    facts: std::sync::mpsc::Receiver<Result<Facts, StoreError>>,
    policy: &Policy,
    corrections: &Corrections,
) -> Result<Found, EngineError> {
    let mut found = Found::default();
    let mut ready: Option<Facts> = None;
    let mut held: Vec<Vec<ScannedEvent>> = Vec::new();
    while let Some(batch) = history.blocking_recv() {
        let batch = batch?;
        if ready.is_none()
            && let Ok(collected) = facts.try_recv()
        {
            let collected = collected?;
            found.replay_held(policy, &held, corrections, &collected);
            held.clear();
            ready = Some(collected);
        }
        match &ready {
            Some(facts) => found.replay(policy, &batch, corrections, facts),
            None => held.push(batch),
        }
    }
    if ready.is_none() {
        let collected = facts.recv().map_err(|_| EngineError::Worker)??;
        found.replay_held(policy, &held, corrections, &collected);
    }
    Ok(found)
}

/// Reads and replays a window: the account facts and the history are scanned at once, each
/// on a thread of the store's, and the replay follows the history scan.
async fn read_and_replay(
    store: &dyn Store,
    policy: &Policy,
    from: Timestamp,
    to: Timestamp,
) -> Result<Found, EngineError> {
    let corrections = by_account(store.corrections().await?);
    let accounts = store.scan_accounts(SCAN_BATCH);
    let (facts_sender, facts) = std::sync::mpsc::sync_channel(1);
    let collecting = tokio::task::spawn_blocking(move || {
        // The replay may have failed and gone; then nobody needs the facts.
        let _ = facts_sender.send(Facts::collect(accounts));
    });
    let history = store.scan_history(from, to, SCAN_BATCH);
    let policy = policy.clone();
    let found =
        tokio::task::spawn_blocking(move || replay_history(history, facts, &policy, &corrections))
            .await
            .map_err(|_| EngineError::Worker)?;
    collecting.await.map_err(|_| EngineError::Worker)?;
    found
}

/// Replays the grants of a window; see the module documentation.
pub async fn analyze(
    store: &dyn Store,
    policy: &Policy,
    from: Timestamp,
    to: Timestamp,
    now: Timestamp,
) -> Result<IncidentReport, EngineError> {
    let started = std::time::Instant::now();
    let Found {
        examined,
        affected,
        ends: ends_recorded,
        ..
    } = read_and_replay(store, policy, from, to).await?;
    let scan_and_replay_ms = started.elapsed().as_millis() as u64;
    let started = std::time::Instant::now();
    // The ends recorded since the window began, by (audience, account): when each affected
    // membership ended, if it did.
    let mut ends: HashMap<(u32, AccountNo), Vec<Timestamp>> = HashMap::new();
    for event in &ends_recorded {
        ends.entry((event.audience_no, event.account))
            .or_default()
            .push(event.at);
    }

    // Names: jobs → advertiser and public ids; audiences → public ids; accounts → commitments.
    let mut job_nos: Vec<u64> = affected.iter().filter_map(|(g, _, _)| g.job_no).collect();
    job_nos.sort_unstable();
    job_nos.dedup();
    let mut jobs: HashMap<u64, tailor_store::Job> = HashMap::new();
    for job_no in job_nos {
        if let Some(job) = store.job_by_no(job_no).await? {
            jobs.insert(job_no, job);
        }
    }
    let audiences: HashMap<u32, tailor_store::Audience> = store
        .all_audiences(now)
        .await?
        .into_iter()
        .map(|a| (a.no, a))
        .collect();
    let audience_id = |no: u32| {
        audiences
            .get(&no)
            .map_or_else(|| format!("#{no}"), |a| a.audience_id.clone())
    };
    let mut affected_accounts: Vec<AccountNo> =
        affected.iter().map(|(g, _, _)| g.account).collect();
    affected_accounts.sort_unstable();
    affected_accounts.dedup();
    let commitments: HashMap<AccountNo, Arc<str>> = store
        .commitments(&affected_accounts)
        .await?
        .into_iter()
        .map(|(no, c)| (no, Arc::from(c.0)))
        .collect();
    let mut advertiser_ids: HashMap<u32, (String, String)> = HashMap::new();
    for job in jobs.values() {
        if advertiser_ids.contains_key(&job.advertiser_no) {
            continue;
        }
        let audience = audiences
            .values()
            .find(|a| a.advertiser_no == job.advertiser_no);
        let name = match store.advertisers_by_no(&[job.advertiser_no]).await?.pop() {
            Some(a) => (a.advertiser_id, a.entity),
            None => (
                format!("#{}", job.advertiser_no),
                audience.map(|a| a.entity.clone()).unwrap_or_default(),
            ),
        };
        advertiser_ids.insert(job.advertiser_no, name);
    }

    let mut report = IncidentReport {
        from,
        to,
        policy_version: policy.version().to_hex(),
        grants_examined: examined,
        affected: Counts::default(),
        by_reason: BTreeMap::new(),
        advertisers: Vec::new(),
        live_from: None,
        live_until: None,
        still_live: 0,
        remediated: None,
        grants: Vec::with_capacity(affected.len()),
        live: Vec::new(),
    };
    // Distinct accounts, advertisers, audiences and jobs: in all, and per reason.
    let mut all = Distinct::default();
    let mut distinct: BTreeMap<&'static str, Distinct> = BTreeMap::new();
    let mut per_advertiser: BTreeMap<u32, (Vec<AccountNo>, u64, BTreeSet<u32>)> = BTreeMap::new();
    let mut audience_ids: HashMap<u32, Arc<str>> = HashMap::new();
    let none: Arc<str> = Arc::from("");
    let shared_advertiser_ids: HashMap<u32, Arc<str>> = advertiser_ids
        .iter()
        .map(|(&no, (id, _))| (no, Arc::from(id.as_str())))
        .collect();
    let job_ids: HashMap<u64, Arc<str>> = jobs
        .iter()
        .map(|(&no, job)| (no, Arc::from(job.job_id.as_str())))
        .collect();
    let mut any_live = false;
    for (grant, context, reason) in &affected {
        let job = grant.job_no.and_then(|no| jobs.get(&no));
        let advertiser_no = job.map(|j| j.advertiser_no);
        let ended_at = ends
            .get(&(grant.audience_no, grant.account))
            .and_then(|list| list.iter().copied().filter(|&t| t >= grant.at).min());
        match ended_at {
            None => {
                any_live = true;
                report.still_live += 1;
                report.live.push((grant.audience_no, grant.account));
            }
            Some(end) => report.live_until = report.live_until.max(Some(end)),
        }
        report.live_from = Some(report.live_from.map_or(grant.at, |t| t.min(grant.at)));
        let keys = [
            u64::from(grant.account.0),
            u64::from(advertiser_no.unwrap_or(u32::MAX)),
            u64::from(grant.audience_no),
            grant.job_no.unwrap_or(u64::MAX),
        ];
        all.insert(keys);
        distinct.entry(reason).or_default().insert(keys);
        if let Some(no) = advertiser_no {
            let entry = per_advertiser.entry(no).or_default();
            entry.0.push(grant.account);
            entry.1 += 1;
            entry.2.insert(grant.audience_no);
        }
        report.grants.push(AffectedGrant {
            account: commitments.get(&grant.account).cloned(),
            advertiser_id: advertiser_no
                .and_then(|no| shared_advertiser_ids.get(&no))
                .map_or_else(|| Arc::clone(&none), Arc::clone),
            audience_id: Arc::clone(
                audience_ids
                    .entry(grant.audience_no)
                    .or_insert_with(|| Arc::from(audience_id(grant.audience_no))),
            ),
            job_id: grant
                .job_no
                .and_then(|no| job_ids.get(&no))
                .map_or_else(|| Arc::clone(&none), Arc::clone),
            granted_at: grant.at,
            ended_at,
            context: context.as_str(),
            reason,
        });
    }
    if any_live {
        report.live_until = None;
    }
    report.live.sort_unstable();
    report.live.dedup();
    report.affected = all.counts();
    report.by_reason = distinct
        .into_iter()
        .map(|(reason, keys)| (reason, keys.counts()))
        .collect();
    report.advertisers = per_advertiser
        .into_iter()
        .map(|(no, (mut accounts, grants, audience_nos))| {
            accounts.sort_unstable();
            accounts.dedup();
            let (id, entity) = advertiser_ids.get(&no).cloned().unwrap_or_default();
            let audiences: BTreeSet<String> = audience_nos.into_iter().map(audience_id).collect();
            ByAdvertiser {
                advertiser_id: id,
                entity,
                accounts: accounts.len() as u64,
                grants,
                audiences: audiences.into_iter().collect(),
            }
        })
        .collect();
    // Phase times only: never an account, a value or a count of people.
    tracing::info!(
        scan_and_replay_ms,
        report_ms = started.elapsed().as_millis() as u64,
        "incident analysis phases"
    );
    Ok(report)
}

/// The distinct accounts, advertisers, audiences and jobs of some grants, and how many grants.
/// Keys are gathered and counted once, sorted: cheaper than millions of set insertions.
#[derive(Default)]
struct Distinct {
    keys: [Vec<u64>; 4],
    grants: u64,
}

impl Distinct {
    fn insert(&mut self, keys: [u64; 4]) {
        for (list, key) in self.keys.iter_mut().zip(keys) {
            list.push(key);
        }
        self.grants += 1;
    }

    fn counts(mut self) -> Counts {
        let mut distinct = [0u64; 4];
        for (list, count) in self.keys.iter_mut().zip(&mut distinct) {
            list.sort_unstable();
            list.dedup();
            *count = list.len() as u64;
        }
        Counts {
            accounts: distinct[0],
            advertisers: distinct[1],
            audiences: distinct[2],
            jobs: distinct[3],
            grants: self.grants,
        }
    }
}

/// Ends the affected memberships still live, straight in the store (for `tailor incident
/// analyze --remediate` with the server stopped; a running engine uses
/// [`Engine::analyze_incident`]). Returns how many ended.
pub async fn remediate(
    store: &dyn Store,
    report: &mut IncidentReport,
    now: Timestamp,
) -> Result<u64, EngineError> {
    let pairs = std::mem::take(&mut report.live);
    let ended = store.revoke(pairs, RevokeReason::Ineligible, now).await?;
    report.remediated = Some(ended);
    report.still_live = report.still_live.saturating_sub(ended);
    store
        .log_event(remediation_entry(report, ended), now)
        .await?;
    Ok(ended)
}

/// The log entry of a remediation.
fn remediation_entry(report: &IncidentReport, ended: u64) -> tailor_store::log::LogEvent {
    tailor_store::log::LogEvent::IncidentRemediated {
        from: report.from,
        to: report.to,
        policy_version: report.policy_version.clone(),
        affected_accounts: report.affected.accounts,
        affected_grants: report.affected.grants,
        memberships_ended: ended,
    }
}

/// One line of `POST /v1/admin/contact-corrections`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CorrectionLine {
    account_id: String,
    kind: String,
    value: String,
    context: String,
    effective_since: String,
}

/// What a batch of corrections did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CorrectionSummary {
    /// Non-blank lines read.
    pub lines: u64,
    /// Contact points corrected.
    pub corrected: u64,
    /// Memberships ended because they relied on a corrected contact point.
    pub memberships_ended: u64,
    /// Refusals by reason code.
    pub rejected: BTreeMap<&'static str, u64>,
    /// The first refusals, with their lines.
    pub errors: Vec<crate::import::Refusal>,
}

impl Engine {
    /// Applies contact corrections (NDJSON lines); see the module documentation.
    pub async fn correct_contacts(&self, body: &[u8]) -> Result<CorrectionSummary, EngineError> {
        let mut refusals = ImportSummary::default();
        let mut summary = CorrectionSummary::default();
        for (i, raw) in body.split(|&b| b == b'\n').enumerate() {
            let line_no = i as u64 + 1;
            let raw = raw.trim_ascii();
            if raw.is_empty() {
                continue;
            }
            summary.lines += 1;
            let refuse = |refusals: &mut ImportSummary, field: Option<&str>, reason| {
                refusals.refuse(line_no, field.map(str::to_owned), reason);
            };
            let Ok(line) = serde_json::from_slice::<CorrectionLine>(raw) else {
                refuse(&mut refusals, None, ImportReject::MalformedJson);
                continue;
            };
            if crate::import::check_account_id(&line.account_id).is_err() {
                refuse(
                    &mut refusals,
                    Some("account_id"),
                    ImportReject::InvalidAccountId,
                );
                continue;
            }
            let Some(kind) = ContactKind::parse(&line.kind) else {
                refuse(&mut refusals, Some("kind"), ImportReject::UnknownKind);
                continue;
            };
            let Some(context) = Context::parse(&line.context) else {
                refuse(&mut refusals, Some("context"), ImportReject::UnknownContext);
                continue;
            };
            let Ok(effective_since) = line.effective_since.parse::<Timestamp>() else {
                refuse(
                    &mut refusals,
                    Some("effective_since"),
                    ImportReject::InvalidTime,
                );
                continue;
            };
            let Some(account) = self.store().account(&line.account_id).await? else {
                refuse(
                    &mut refusals,
                    Some("account_id"),
                    ImportReject::UnknownAccount,
                );
                continue;
            };
            let digests = match kind {
                ContactKind::Email => {
                    NormalizedEmail::parse(&line.value).map(|e| self.key().email(&e))
                }
                ContactKind::Phone => E164Phone::parse(&line.value, account.region.phone_region())
                    .map(|p| self.key().phone(&p)),
            };
            let digests = match digests {
                Ok(digests) => digests,
                Err(reason) => {
                    refuse(
                        &mut refusals,
                        Some("value"),
                        ImportReject::InvalidIdentifier(reason),
                    );
                    continue;
                }
            };
            let correction = NewCorrection {
                account_id: line.account_id,
                kind,
                digest: digests.primary(),
                context,
                effective_since,
            };
            let inner = Arc::clone(&self.inner);
            let outcome = detached(async move {
                let _writing = inner.writer.lock().await;
                let now = inner.clock.now();
                match inner.store.correct_contact(correction, now).await? {
                    Ok(change) => {
                        let ended = inner.apply(std::slice::from_ref(&change), now);
                        let n = ended.len() as u64;
                        inner.revoke(ended, now).await?;
                        Ok::<_, StoreError>(Ok(n))
                    }
                    Err(refused) => Ok(Err(refused)),
                }
            })
            .await?;
            match outcome {
                Ok(ended) => {
                    summary.corrected += 1;
                    summary.memberships_ended += ended;
                }
                Err(CorrectionRefused::NoAccount) => {
                    refuse(
                        &mut refusals,
                        Some("account_id"),
                        ImportReject::UnknownAccount,
                    );
                }
                Err(CorrectionRefused::NoContact) => {
                    refuse(&mut refusals, Some("value"), ImportReject::UnknownContact);
                }
            }
        }
        summary.rejected = refusals.rejected;
        summary.errors = refusals.errors;
        Ok(summary)
    }

    /// Analyzes an incident (and, with `remediate`, ends the affected memberships still live,
    /// in the store and in serving answers, and logs it).
    pub async fn analyze_incident(
        &self,
        question: IncidentQuestion,
        remediate: bool,
    ) -> Result<IncidentReport, EngineError> {
        let policy = question.policy.unwrap_or_else(|| self.policy());
        let now = self.now();
        let mut report = analyze(
            self.store().as_ref(),
            &policy,
            question.from,
            question.to,
            now,
        )
        .await?;
        if remediate {
            let pairs = std::mem::take(&mut report.live);
            let inner = Arc::clone(&self.inner);
            let n = pairs.len() as u64;
            let entry = remediation_entry(&report, n);
            detached(async move {
                let _writing = inner.writer.lock().await;
                let now = inner.clock.now();
                inner.revoke(pairs, now).await?;
                inner.store.log_event(entry, now).await
            })
            .await?;
            report.remediated = Some(n);
            report.still_live = report.still_live.saturating_sub(n);
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use tailor_core::{ConsentSource, ConsentState, KeyedDigest};

    use super::*;

    fn event(account: u32, digest: u8, context: Context, at: i64) -> ScannedEvent {
        ScannedEvent {
            audience_no: 1,
            account: AccountNo(account),
            ended: false,
            job_no: Some(1),
            contact_digest: KeyedDigest([digest; 32]),
            context,
            consent_seq: None,
            at: Timestamp::from_second(at).expect("fixture time"),
        }
    }

    /// Every combination of region, context, verification and consent history, replayed
    /// with one shared table of decisions and with none: the same answers.
    #[test]
    fn shared_decisions_answer_as_deciding_each_grant() {
        let policy = Policy::shipped();
        let mut facts = Facts::default();
        for code in ["US-CA", "DE", "FR", "BR", "US-NY"] {
            facts
                .regions
                .push(AccountRegion::parse(code).expect("fixture region"));
        }
        let granted = ConsentEvent {
            purpose: INDEXED_PURPOSE,
            state: ConsentState::Granted,
            source: ConsentSource::Settings,
            at: Timestamp::from_second(1_000).expect("fixture time"),
            notice_version: None,
            seq: 1,
        };
        let mut grants = Vec::new();
        let mut no = 0u32;
        for region in 0..facts.regions.len() as u32 {
            for consents in [Vec::new(), vec![granted.clone()]] {
                for verified in [false, true] {
                    no += 1;
                    let digests = ContactDigests::new(KeyedDigest([no as u8; 32]), None);
                    if facts.by_no.len() <= no as usize {
                        facts.by_no.resize_with(no as usize + 1, || None);
                    }
                    facts.by_no[no as usize] = Some(Known {
                        region,
                        consents: consents.clone().into_boxed_slice(),
                        contacts: vec![(digests, verified)].into_boxed_slice(),
                    });
                    for context in Context::ALL {
                        // Before and after the consent event.
                        grants.push(event(no, no as u8, context, 500));
                        grants.push(event(no, no as u8, context, 2_000));
                    }
                }
            }
        }
        let corrections = Corrections::new();
        let mut shared = Decided::new();
        let mut outcomes = BTreeSet::new();
        for grant in &grants {
            let context = effective_context(grant, &corrections);
            let with_shared = replay(&policy, grant, &facts, context, &mut shared);
            let alone = replay(&policy, grant, &facts, context, &mut Decided::new());
            assert_eq!(with_shared, alone, "{grant:?}");
            outcomes.insert(alone);
        }
        // The fixture reaches eligible and several kinds of ineligible grants.
        assert!(outcomes.contains(&None), "{outcomes:?}");
        assert!(outcomes.len() >= 4, "{outcomes:?}");
    }
}
