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
//! Corrections (`Engine::correct_contacts`) come from the account system as NDJSON lines; each
//! one corrects a contact point's context from a time on, and the memberships that relied on
//! it end at once, as any ineligibility does.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tailor_core::policy::{AccountFacts, ContactFacts};
use tailor_core::{AccountNo, ContactKind, Context, E164Phone, NormalizedEmail, Policy};
use tailor_store::{
    AccountState, CorrectionRefused, MembershipChange, MembershipEvent, NewCorrection,
    RevokeReason, Store, StoreError,
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
    pub account: Option<String>,
    pub advertiser_id: String,
    /// The audience's id; `#N` for a deleted audience.
    pub audience_id: String,
    pub job_id: String,
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
fn effective_context(grant: &MembershipEvent, corrections: &Corrections) -> Context {
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

/// Why the policy would not have made this grant, or `None` if it would.
fn replay(
    policy: &Policy,
    grant: &MembershipEvent,
    account: Option<&AccountState>,
    context: Context,
) -> Option<&'static str> {
    let account = account?;
    let contact = account
        .contacts
        .iter()
        .find(|c| c.digests.iter().any(|d| d == grant.contact_digest));
    let facts = AccountFacts {
        no: account.no,
        region: &account.region,
        consents: &account.consents,
    };
    let contact = ContactFacts {
        context,
        // A contact point removed since was there, as recorded, when it was matched.
        verified: contact.is_none_or(|c| c.verified),
        removed: false,
    };
    match policy.decide(INDEXED_PURPOSE, &facts, &contact, grant.at) {
        Ok(_) => None,
        // Granted under an opt-out regime that the policy now says needs consent.
        Err(tailor_core::Ineligible::NoConsent) if grant.consent_seq.is_none() => {
            Some("region_regime")
        }
        Err(reason) => Some(reason.code()),
    }
}

/// The grants (indices into `history`) the policy would not have made, with the context they
/// rested on and why; a slice of the grants per core.
fn replay_all(
    policy: &Policy,
    history: &[MembershipEvent],
    grants: &[usize],
    corrections: &Corrections,
    states: &HashMap<AccountNo, AccountState>,
) -> Vec<(usize, Context, &'static str)> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let chunk = grants.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = grants
            .chunks(chunk)
            .map(|slice| {
                scope.spawn(move || {
                    let mut found = Vec::new();
                    for &i in slice {
                        let grant = &history[i];
                        let context = effective_context(grant, corrections);
                        if let Some(reason) =
                            replay(policy, grant, states.get(&grant.account), context)
                        {
                            found.push((i, context, reason));
                        }
                    }
                    found
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
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
    let history = store.membership_history(None, None).await?;
    let read_ms = started.elapsed().as_millis() as u64;
    let corrections = by_account(store.corrections().await?);
    let in_window: Vec<usize> = history
        .iter()
        .enumerate()
        .filter(|(_, e)| e.change == MembershipChange::Granted && e.at >= from && e.at <= to)
        .map(|(i, _)| i)
        .collect();
    let mut accounts: Vec<AccountNo> = in_window.iter().map(|&i| history[i].account).collect();
    accounts.sort_unstable();
    accounts.dedup();
    let started = std::time::Instant::now();
    let states: HashMap<AccountNo, AccountState> = store
        .accounts_by_no(&accounts)
        .await?
        .into_iter()
        .map(|s| (s.no, s))
        .collect();
    let accounts_ms = started.elapsed().as_millis() as u64;
    let examined = in_window.len();
    let started = std::time::Instant::now();
    // The replay is pure and long: off the async runtime, on every core.
    let policy_owned = policy.clone();
    let (history, found) = tokio::task::spawn_blocking(move || {
        let found = replay_all(&policy_owned, &history, &in_window, &corrections, &states);
        (history, found)
    })
    .await
    .map_err(|_| EngineError::Worker)?;
    let affected: Vec<(&MembershipEvent, Context, &'static str)> = found
        .into_iter()
        .map(|(i, context, reason)| (&history[i], context, reason))
        .collect();
    let replay_ms = started.elapsed().as_millis() as u64;
    let started = std::time::Instant::now();
    // When each affected (audience, account) membership ended, if it did.
    let wanted: std::collections::HashSet<(u32, AccountNo)> = affected
        .iter()
        .map(|(g, _, _)| (g.audience_no, g.account))
        .collect();
    let mut ends: HashMap<(u32, AccountNo), Vec<Timestamp>> = HashMap::new();
    for event in &history {
        if let MembershipChange::Revoked(_) = event.change
            && wanted.contains(&(event.audience_no, event.account))
        {
            ends.entry((event.audience_no, event.account))
                .or_default()
                .push(event.at);
        }
    }

    // Names: jobs → advertiser and public ids; audiences → public ids; accounts → commitments.
    let mut jobs: HashMap<u64, tailor_store::Job> = HashMap::new();
    for (grant, _, _) in &affected {
        if let Some(job_no) = grant.job_no
            && !jobs.contains_key(&job_no)
            && let Some(job) = store.job_by_no(job_no).await?
        {
            jobs.insert(job_no, job);
        }
    }
    let audiences: HashMap<u32, tailor_store::Audience> = store
        .all_audiences(now)
        .await?
        .into_iter()
        .map(|a| (a.no, a))
        .collect();
    let affected_accounts: BTreeSet<AccountNo> =
        affected.iter().map(|(g, _, _)| g.account).collect();
    let affected_accounts: Vec<AccountNo> = affected_accounts.into_iter().collect();
    let commitments: HashMap<AccountNo, String> = store
        .commitments(&affected_accounts)
        .await?
        .into_iter()
        .map(|(no, c)| (no, c.0))
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
        grants_examined: examined as u64,
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
    let mut live = BTreeSet::new();
    let mut distinct: BTreeMap<&'static str, [BTreeSet<u64>; 4]> = BTreeMap::new();
    let mut all: [BTreeSet<u64>; 4] = Default::default();
    let mut per_advertiser: BTreeMap<u32, (BTreeSet<AccountNo>, u64, BTreeSet<String>)> =
        BTreeMap::new();
    let mut any_live = false;
    for (grant, context, reason) in &affected {
        let job = grant.job_no.and_then(|no| jobs.get(&no));
        let advertiser_no = job.map(|j| j.advertiser_no);
        let audience_id = audiences.get(&grant.audience_no).map_or_else(
            || format!("#{}", grant.audience_no),
            |a| a.audience_id.clone(),
        );
        let ended_at = ends
            .get(&(grant.audience_no, grant.account))
            .and_then(|list| list.iter().copied().filter(|&t| t >= grant.at).min());
        match ended_at {
            None => {
                any_live = true;
                report.still_live += 1;
                live.insert((grant.audience_no, grant.account));
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
        for (set, key) in all.iter_mut().zip(keys) {
            set.insert(key);
        }
        for (set, key) in distinct.entry(reason).or_default().iter_mut().zip(keys) {
            set.insert(key);
        }
        report.by_reason.entry(reason).or_default().grants += 1;
        if let Some(no) = advertiser_no {
            let entry = per_advertiser.entry(no).or_default();
            entry.0.insert(grant.account);
            entry.1 += 1;
            entry.2.insert(audience_id.clone());
        }
        report.grants.push(AffectedGrant {
            account: commitments.get(&grant.account).cloned(),
            advertiser_id: advertiser_no
                .and_then(|no| advertiser_ids.get(&no))
                .map_or_else(String::new, |(id, _)| id.clone()),
            audience_id,
            job_id: job.map_or_else(String::new, |j| j.job_id.clone()),
            granted_at: grant.at,
            ended_at,
            context: context.as_str(),
            reason,
        });
    }
    if any_live {
        report.live_until = None;
    }
    report.live = live.into_iter().collect();
    let count = |sets: &[BTreeSet<u64>; 4], grants: u64| Counts {
        accounts: sets[0].len() as u64,
        advertisers: sets[1].len() as u64,
        audiences: sets[2].len() as u64,
        jobs: sets[3].len() as u64,
        grants,
    };
    report.affected = count(&all, affected.len() as u64);
    for (reason, sets) in &distinct {
        let grants = report.by_reason[reason].grants;
        report.by_reason.insert(reason, count(sets, grants));
    }
    report.advertisers = per_advertiser
        .into_iter()
        .map(|(no, (accounts, grants, audiences))| {
            let (id, entity) = advertiser_ids.get(&no).cloned().unwrap_or_default();
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
        read_ms,
        accounts_ms,
        replay_ms,
        report_ms = started.elapsed().as_millis() as u64,
        "incident analysis phases"
    );
    Ok(report)
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
