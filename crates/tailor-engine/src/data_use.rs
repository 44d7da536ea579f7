//! The data-use report of one person: every audience membership their account has had, past
//! and present, with the advertiser that uploaded the list and the basis the grant rested on
//! (the kind and context of the contact point that matched, the consent record, the policy
//! version, the job). It is what a platform's settings page shows as "advertisers who
//! uploaded a list with your information", and the core of an answer to a data-subject
//! access request.
//!
//! It is read from the membership history, which keeps every grant and every end until the
//! account is erased. The report must never carry a contact value or a digest of one: a
//! contact point is named by its kind and context only.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::Timestamp;
use serde::Serialize;
use tailor_core::{ConsentEvent, ContactKind, Context, KeyedDigest};
use tailor_store::{AccountState, MembershipChange, MembershipEvent, StoreError};

use crate::import::check_account_id;
use crate::{Engine, EngineError};

/// Every audience membership of one account, oldest grant first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DataUse {
    pub account_id: String,
    /// When the report was made.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub generated_at: Timestamp,
    pub summary: DataUseSummary,
    /// One per grant, by grant time.
    pub memberships: Vec<MembershipUse>,
}

/// Counts over the report's memberships.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DataUseSummary {
    /// Advertisers whose lists matched the account.
    pub advertisers: u64,
    /// Audiences the account was ever in (deleted ones included).
    pub audiences: u64,
    /// Grants (a renewal is a grant of its own).
    pub memberships: u64,
    /// Memberships not ended.
    pub live: u64,
}

/// One grant of an audience membership and how it ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MembershipUse {
    /// The advertiser whose list matched.
    pub advertiser_id: String,
    pub advertiser_name: String,
    /// Its legal entity.
    pub entity: String,
    /// `null` once the audience is deleted (its history stays).
    pub audience_id: Option<String>,
    pub audience_name: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub granted_at: Timestamp,
    /// `null` while the membership lasts.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub ended_at: Option<Timestamp>,
    /// Why it ended: `removed`, `replaced`, `ineligible` (consent withdrawn, contact point
    /// removed or reclassified, region or policy change), `audience_deleted`, `expired`, or
    /// `renewed` (a later upload matched again: the next grant, with its own basis, goes on);
    /// `null` while it lasts.
    pub end_reason: Option<&'static str>,
    /// When a live membership expires unless renewed; `null` once ended.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub expires_at: Option<Timestamp>,
    /// The contact point that matched.
    pub contact: ContactUse,
    /// `consent` (a consent record granted it) or `opt_out_regime` (the region's regime is
    /// opt-out and the person had not opted out).
    pub basis: &'static str,
    /// The consent record the grant rested on; `null` under an opt-out regime.
    pub consent: Option<ConsentUse>,
    /// The policy the grant was decided under (`sha256:` and the hex of its bytes).
    pub policy_version: String,
    /// The upload job that granted it.
    pub job_id: String,
}

/// A contact point, without its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContactUse {
    /// `email` or `phone`; `null` if the account no longer has the contact point.
    pub kind: Option<&'static str>,
    /// The context it was collected in, as recorded when the membership was granted.
    pub context: &'static str,
}

/// A consent record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsentUse {
    /// Its number in the account's consent history.
    pub seq: u64,
    pub purpose: &'static str,
    pub state: &'static str,
    pub source: &'static str,
    /// When the person made the choice.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice_version: Option<String>,
}

/// What a grant became: ended (when, why) or still live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    grant: MembershipEvent,
    end: Option<(Timestamp, &'static str)>,
}

/// Pairs each grant with what ended it: the next revocation of the same audience, or the
/// next grant of it (a renewal). Revocations without a grant before them are left out.
fn spans(history: &[MembershipEvent]) -> Vec<Span> {
    let mut spans: Vec<Span> = Vec::new();
    let mut open: HashMap<u32, usize> = HashMap::new();
    let mut ordered: Vec<&MembershipEvent> = history.iter().collect();
    ordered.sort_by_key(|e| e.no);
    for event in ordered {
        match event.change {
            MembershipChange::Granted => {
                if let Some(before) = open.insert(event.audience_no, spans.len()) {
                    spans[before].end = Some((event.at, "renewed"));
                }
                spans.push(Span {
                    grant: *event,
                    end: None,
                });
            }
            MembershipChange::Revoked(reason) => {
                if let Some(before) = open.remove(&event.audience_no) {
                    spans[before].end = Some((event.at, reason.as_str()));
                }
            }
        }
    }
    // By grant time; the history's order breaks ties.
    spans.sort_by_key(|s| (s.grant.at, s.grant.no));
    spans
}

/// The kind of the account's contact point with this digest, preferring one of the recorded
/// context (a value given in two contexts is two contact points).
fn contact_kind(
    state: &AccountState,
    digest: KeyedDigest,
    context: Context,
) -> Option<ContactKind> {
    let mut holding = state
        .contacts
        .iter()
        .filter(|c| c.digests.iter().any(|d| d == digest));
    let first = holding.clone().next()?;
    Some(holding.find(|c| c.context == context).unwrap_or(first).kind)
}

fn consent_use(event: &ConsentEvent) -> ConsentUse {
    ConsentUse {
        seq: event.seq,
        purpose: event.purpose.as_str(),
        state: event.state.as_str(),
        source: event.source.as_str(),
        at: event.at,
        notice_version: event.notice_version.clone(),
    }
}

/// The data-use report of an account; `None` if there is no such account.
///
/// Jobs and advertisers are never deleted, so every grant names its advertiser; one the store
/// cannot find is reported as corrupt stored data rather than left out of the answer.
pub async fn data_use(engine: &Engine, account_id: &str) -> Result<Option<DataUse>, EngineError> {
    if check_account_id(account_id).is_err() {
        return Ok(None);
    }
    let store = engine.store();
    let now = engine.now();
    let Some(state) = store.account(account_id).await? else {
        return Ok(None);
    };
    let history = store.membership_history(None, Some(state.no)).await?;
    let spans = spans(&history);
    let live: HashMap<u32, Timestamp> = store
        .memberships_of(state.no)
        .await?
        .into_iter()
        .map(|m| (m.audience_no, m.expires_at))
        .collect();

    let job_nos = spans
        .iter()
        .map(|s| {
            s.grant
                .job_no
                .ok_or_else(|| StoreError::Corrupt("a membership grant has no job".into()))
        })
        .collect::<Result<BTreeSet<u64>, _>>()?;
    let mut jobs = BTreeMap::new();
    for job_no in job_nos {
        let job = store
            .job_by_no(job_no)
            .await?
            .ok_or_else(|| StoreError::Corrupt("a membership's job is missing".into()))?;
        jobs.insert(job_no, job);
    }
    let advertiser_nos: BTreeSet<u32> = jobs.values().map(|j| j.advertiser_no).collect();
    let advertiser_nos: Vec<u32> = advertiser_nos.into_iter().collect();
    let advertisers: HashMap<u32, _> = store
        .advertisers_by_no(&advertiser_nos)
        .await?
        .into_iter()
        .map(|a| (a.no, a))
        .collect();
    // Only the audiences of the advertisers concerned; a deleted audience is not among them.
    let mut audiences = HashMap::new();
    for &no in &advertiser_nos {
        for audience in store.audiences(no, now).await? {
            audiences.insert(audience.no, (audience.audience_id, audience.name));
        }
    }

    let mut memberships = Vec::with_capacity(spans.len());
    for span in &spans {
        let grant = &span.grant;
        // Checked above: every grant has its job.
        let Some(job) = grant.job_no.and_then(|no| jobs.get(&no)) else {
            continue;
        };
        let advertiser = advertisers
            .get(&job.advertiser_no)
            .ok_or_else(|| StoreError::Corrupt("a job's advertiser is missing".into()))?;
        let audience = audiences.get(&grant.audience_no);
        let consent = grant
            .consent_seq
            .and_then(|seq| state.consents.iter().find(|e| e.seq == seq));
        memberships.push(MembershipUse {
            advertiser_id: advertiser.advertiser_id.clone(),
            advertiser_name: advertiser.name.clone(),
            entity: advertiser.entity.clone(),
            audience_id: audience.map(|(id, _)| id.clone()),
            audience_name: audience.map(|(_, name)| name.clone()),
            granted_at: grant.at,
            ended_at: span.end.map(|(at, _)| at),
            end_reason: span.end.map(|(_, reason)| reason),
            expires_at: match span.end {
                None => live.get(&grant.audience_no).copied(),
                Some(_) => None,
            },
            contact: ContactUse {
                kind: contact_kind(&state, grant.contact_digest, grant.context)
                    .map(ContactKind::as_str),
                context: grant.context.as_str(),
            },
            basis: if grant.consent_seq.is_some() {
                "consent"
            } else {
                "opt_out_regime"
            },
            consent: consent.map(consent_use),
            policy_version: grant.policy_version.to_hex(),
            job_id: job.job_id.clone(),
        });
    }
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    let summary = DataUseSummary {
        advertisers: count(advertiser_nos.len()),
        audiences: count(
            spans
                .iter()
                .map(|s| s.grant.audience_no)
                .collect::<BTreeSet<_>>()
                .len(),
        ),
        memberships: count(memberships.len()),
        live: count(memberships.iter().filter(|m| m.ended_at.is_none()).count()),
    };
    Ok(Some(DataUse {
        account_id: state.account_id.clone(),
        generated_at: now,
        summary,
        memberships,
    }))
}

#[cfg(test)]
mod tests {
    use tailor_core::{AccountNo, PolicyVersion};
    use tailor_store::RevokeReason;

    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + second).unwrap()
    }

    fn event(no: u64, audience_no: u32, change: MembershipChange, second: i64) -> MembershipEvent {
        MembershipEvent {
            no,
            audience_no,
            account: AccountNo(7),
            change,
            job_no: Some(no),
            contact_digest: KeyedDigest([0x11; 32]),
            context: Context::Profile,
            consent_seq: None,
            policy_version: PolicyVersion([0x22; 32]),
            at: at(second),
        }
    }

    fn summary(spans: &[Span]) -> Vec<(u64, Option<(Timestamp, &'static str)>)> {
        spans.iter().map(|s| (s.grant.no, s.end)).collect()
    }

    #[test]
    fn grants_pair_with_the_next_end_of_their_audience() {
        use MembershipChange::{Granted, Revoked};
        let history = [
            event(1, 10, Granted, 0),
            event(2, 20, Granted, 1),
            event(3, 10, Granted, 2),
            event(4, 20, Revoked(RevokeReason::Removed), 3),
            event(5, 10, Revoked(RevokeReason::Ineligible), 4),
            // A revocation with no grant before it (not written by any store) is left out.
            event(6, 30, Revoked(RevokeReason::Expired), 5),
            event(7, 20, Granted, 6),
        ];
        assert_eq!(
            summary(&spans(&history)),
            vec![
                (1, Some((at(2), "renewed"))),
                (2, Some((at(3), "removed"))),
                (3, Some((at(4), "ineligible"))),
                (7, None),
            ]
        );
    }

    #[test]
    fn spans_are_by_grant_time_whatever_the_order_given() {
        use MembershipChange::Granted;
        // Numbered in recording order, but a later number may carry an equal or earlier time.
        let history = [
            event(3, 10, Granted, 5),
            event(1, 20, Granted, 5),
            event(2, 30, Granted, 4),
        ];
        assert_eq!(
            summary(&spans(&history)),
            vec![(2, None), (1, None), (3, None)]
        );
    }
}
