//! The serving map: which audiences each account is in, in memory, for ad-serving time.
//!
//! It mirrors the store's live memberships, each with the keyed digest of the contact point it
//! rests on, and whether each audience is targetable: the decision of its latest release (the
//! release function's, never a count kept here). An answer re-checks every membership at
//! answer time: unexpired, its contact point still in the eligible index for that account,
//! and its audience targetable.
//!
//! A job's changes reach the map without holding readers up for the whole job and without a
//! reader ever seeing part of them: they are staged in chunks (new memberships marked
//! `Added`, the ones they end marked `Removed`, both invisible in their new state while
//! staging), published at once, then settled in chunks (markers cleared, removed entries
//! dropped). Only one job stages at a time: the engine's writer lock sees to it.

use std::collections::HashMap;

use jiff::Timestamp;
use tailor_core::{AccountNo, EligibleIndex, KeyedDigest};
use tailor_store::{Audience, Membership};

use crate::sharded::Sharded;

#[derive(Clone, Copy, Debug)]
struct Member {
    audience: u32,
    digest: KeyedDigest,
    expires_at: Timestamp,
    stage: Stage,
}

/// Where a membership is in the staging of a job's changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Settled,
    /// Granted by the job being staged: visible once it is published.
    Added,
    /// Ended by the job being staged: visible until it is published.
    Removed,
}

#[derive(Clone, Debug)]
pub(crate) struct AudienceEntry {
    pub(crate) id: String,
    /// Whether its latest release (of its current query) allows targeting, as published.
    pub(crate) targetable: bool,
    /// The decision that comes with the job being staged, published with it.
    staged: Option<bool>,
}

/// Account → live memberships, audience → whether it is targetable, and the ids of the
/// accounts that are members of something (so that an answer never reads the store).
#[derive(Debug, Default)]
pub(crate) struct Serving {
    members: Sharded<u32, Vec<Member>>,
    audiences: HashMap<u32, AudienceEntry>,
    /// Account id → number, for accounts with at least one membership.
    ids: Sharded<Box<str>, u32>,
    /// Number → account id, the reverse of `ids`.
    names: Sharded<u32, Box<str>>,
    /// Whether a job's changes are being staged (between `begin` and `publish`).
    staging: bool,
}

impl Serving {
    /// Adds an audience, targetable as its latest release of its current query says.
    pub(crate) fn add_audience(&mut self, audience: &Audience) {
        self.audiences.insert(
            audience.no,
            AudienceEntry {
                id: audience.audience_id.clone(),
                targetable: audience.released.is_some_and(|r| r.size.targetable()),
                staged: None,
            },
        );
    }

    /// Brings an audience up to its stored row as another process left it: its id, and its
    /// decision only once the row holds a release of its current question. Until then the
    /// decision in force stays, as it does on the process that changed the question (a job
    /// publishes its new decision with its members, or keeps the old one when no size could
    /// be released).
    pub(crate) fn refresh_audience(&mut self, audience: &Audience) {
        match self.audiences.get_mut(&audience.no) {
            Some(entry) => {
                entry.id.clone_from(&audience.audience_id);
                if let Some(released) = audience.released {
                    entry.targetable = released.size.targetable();
                }
            }
            None => self.add_audience(audience),
        }
    }

    /// Whether an audience is targetable now (`None` for an unknown audience).
    pub(crate) fn targetable(&self, audience_no: u32) -> Option<bool> {
        self.audiences
            .get(&audience_no)
            .map(|entry| entry.targetable)
    }

    /// Sets whether an audience is targetable, at once (a release outside any job).
    pub(crate) fn set_targetable(&mut self, audience_no: u32, targetable: bool) {
        if let Some(entry) = self.audiences.get_mut(&audience_no) {
            entry.targetable = targetable;
        }
    }

    /// Stages whether an audience is targetable once the job being staged is published.
    pub(crate) fn stage_targetable(&mut self, audience_no: u32, targetable: bool) {
        if let Some(entry) = self.audiences.get_mut(&audience_no) {
            entry.staged = Some(targetable);
        }
    }

    /// Forgets an audience: answers stop naming it at once. Its memberships are dropped by
    /// [`Serving::drop_memberships`] for each of [`Serving::members_of`].
    pub(crate) fn remove_audience(&mut self, audience_no: u32) {
        self.audiences.remove(&audience_no);
    }

    /// The accounts with a membership in an audience.
    pub(crate) fn members_of(&self, audience_no: u32) -> Vec<AccountNo> {
        self.members
            .iter()
            .filter(|(_, list)| list.iter().any(|m| m.audience == audience_no))
            .map(|(&account, _)| AccountNo(account))
            .collect()
    }

    /// Drops an account's memberships in a removed audience.
    pub(crate) fn drop_memberships(&mut self, audience_no: u32, account: AccountNo) {
        if let Some(list) = self.members.get_mut(&account.0) {
            list.retain(|m| m.audience != audience_no);
            if list.is_empty() {
                self.forget(account.0);
            }
        }
    }

    /// Accounts with memberships whose id is not known yet.
    pub(crate) fn unnamed(&self) -> Vec<AccountNo> {
        self.members
            .keys()
            .filter(|no| !self.names.contains_key(no))
            .map(|&no| AccountNo(no))
            .collect()
    }

    /// Whether the id of an account is known.
    pub(crate) fn is_named(&self, account: AccountNo) -> bool {
        self.names.contains_key(&account.0)
    }

    /// Records an account's id (for an account with memberships).
    pub(crate) fn name(&mut self, account: AccountNo, id: &str) {
        if !self.members.contains_key(&account.0) {
            return;
        }
        let id: Box<str> = id.into();
        self.ids.insert(id.clone(), account.0);
        self.names.insert(account.0, id);
    }

    fn forget(&mut self, account: u32) {
        self.members.remove(&account);
        if let Some(id) = self.names.remove(&account) {
            self.ids.remove(&id);
        }
    }

    /// Records a granted (or renewed) membership, visible at once (loading the map).
    pub(crate) fn grant(&mut self, membership: &Membership) {
        let member = member(membership, Stage::Settled);
        let list = self.members.entry(membership.account.0).or_default();
        match list.iter_mut().find(|m| m.audience == member.audience) {
            Some(existing) => *existing = member,
            None => list.push(member),
        }
    }

    /// Starts staging a job's changes.
    pub(crate) fn begin(&mut self) {
        debug_assert!(!self.staging, "one job stages at a time");
        self.staging = true;
    }

    /// Stages a membership the job grants (or renews): the current one, if any, is marked
    /// removed and the new one added, so that publishing swaps them.
    pub(crate) fn stage_grant(&mut self, membership: &Membership) {
        let list = self.members.entry(membership.account.0).or_default();
        if let Some(existing) = list
            .iter_mut()
            .find(|m| m.audience == membership.audience_no && m.stage == Stage::Settled)
        {
            existing.stage = Stage::Removed;
        }
        list.push(member(membership, Stage::Added));
    }

    /// Stages a membership the job ends.
    pub(crate) fn stage_revoke(&mut self, audience_no: u32, account: AccountNo) {
        let Some(list) = self.members.get_mut(&account.0) else {
            return;
        };
        if let Some(existing) = list
            .iter_mut()
            .find(|m| m.audience == audience_no && m.stage == Stage::Settled)
        {
            existing.stage = Stage::Removed;
        }
    }

    /// Makes every staged change visible at once: answers see the job's new memberships,
    /// not the ones it ended, and its audience's new release decision.
    pub(crate) fn publish(&mut self) {
        self.staging = false;
        for entry in self.audiences.values_mut() {
            if let Some(targetable) = entry.staged.take() {
                entry.targetable = targetable;
            }
        }
    }

    /// Clears the marks publishing made final on one account's memberships.
    pub(crate) fn settle(&mut self, account: AccountNo) {
        debug_assert!(!self.staging, "settled before publishing");
        let Some(list) = self.members.get_mut(&account.0) else {
            return;
        };
        list.retain(|m| m.stage != Stage::Removed);
        for m in list.iter_mut() {
            m.stage = Stage::Settled;
        }
        if list.is_empty() {
            self.forget(account.0);
        }
    }

    /// Whether a membership is part of what answers see now.
    fn visible(&self, member: &Member) -> bool {
        match member.stage {
            Stage::Settled => true,
            Stage::Added => !self.staging,
            Stage::Removed => self.staging,
        }
    }

    /// Forgets one membership.
    pub(crate) fn revoke(&mut self, audience_no: u32, account: AccountNo) {
        let Some(list) = self.members.get_mut(&account.0) else {
            return;
        };
        list.retain(|m| m.audience != audience_no);
        if list.is_empty() {
            self.forget(account.0);
        }
    }

    /// Forgets every membership of an account.
    pub(crate) fn remove_account(&mut self, account: AccountNo) {
        self.forget(account.0);
    }

    /// An account's memberships whose contact point is not among `eligible` any more.
    pub(crate) fn no_longer_eligible(
        &self,
        account: AccountNo,
        eligible: &std::collections::HashSet<KeyedDigest>,
    ) -> Vec<(u32, AccountNo)> {
        self.members
            .get(&account.0)
            .into_iter()
            .flatten()
            .filter(|m| !eligible.contains(&m.digest))
            .map(|m| (m.audience, account))
            .collect()
    }

    /// Every membership whose contact point the index no longer holds for its account.
    pub(crate) fn not_in(&self, index: &EligibleIndex) -> Vec<(u32, AccountNo)> {
        self.members
            .iter()
            .flat_map(|(&account, list)| {
                list.iter()
                    .filter(move |m| !index.contains(&m.digest, AccountNo(account)))
                    .map(move |m| (m.audience, AccountNo(account)))
            })
            .collect()
    }

    /// The public id of an audience.
    pub(crate) fn audience_id(&self, audience_no: u32) -> Option<String> {
        self.audiences
            .get(&audience_no)
            .map(|entry| entry.id.clone())
    }

    /// The audiences an account is in and may be targeted with at `now`; an account that is a
    /// member of nothing is answered without further work.
    pub(crate) fn answer(
        &self,
        account_id: &str,
        index: &EligibleIndex,
        now: Timestamp,
    ) -> Vec<String> {
        let Some(&account) = self.ids.get(account_id) else {
            return Vec::new();
        };
        let account = AccountNo(account);
        let mut ids: Vec<String> = self
            .members
            .get(&account.0)
            .into_iter()
            .flatten()
            .filter(|m| self.visible(m) && m.expires_at > now && index.contains(&m.digest, account))
            .filter_map(|m| {
                let entry = self.audiences.get(&m.audience)?;
                entry.targetable.then(|| entry.id.clone())
            })
            .collect();
        ids.sort();
        ids
    }

    /// Memberships held, for reports.
    pub(crate) fn len(&self) -> usize {
        self.members
            .values()
            .map(|list| list.iter().filter(|m| self.visible(m)).count())
            .sum()
    }
}

fn member(membership: &Membership, stage: Stage) -> Member {
    Member {
        audience: membership.audience_no,
        digest: membership.contact_digest,
        expires_at: membership.expires_at,
        stage,
    }
}

#[cfg(test)]
mod tests {
    use tailor_core::policy::{AccountFacts, ContactFacts, Policy, PolicyVersion};
    use tailor_core::release::QueryDigest;
    use tailor_core::{AccountRegion, ContactDigests, Context};

    use super::*;

    const AUDIENCE: u32 = 7;

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    fn digest(account: u32) -> KeyedDigest {
        let mut bytes = [0x5a; 32];
        bytes[..4].copy_from_slice(&account.to_be_bytes());
        KeyedDigest(bytes)
    }

    /// An index in which each of `accounts` has one eligible contact point.
    fn index(accounts: std::ops::Range<u32>) -> EligibleIndex {
        let policy = Policy::shipped();
        let region = AccountRegion::parse("US").unwrap();
        let mut index = EligibleIndex::new();
        for account in accounts {
            let facts = AccountFacts {
                no: AccountNo(account),
                region: &region,
                consents: &[],
            };
            let contact = ContactFacts {
                context: Context::Profile,
                verified: true,
                removed: false,
            };
            let eligible = policy
                .marketing(
                    crate::INDEXED_PURPOSE,
                    &facts,
                    &contact,
                    ContactDigests::new(digest(account), None),
                    now(),
                )
                .unwrap();
            index.insert(&eligible);
        }
        index
    }

    fn membership(account: u32, expires_in_days: i64) -> Membership {
        Membership {
            audience_no: AUDIENCE,
            account: AccountNo(account),
            contact_digest: digest(account),
            context: Context::Profile,
            consent_seq: None,
            policy_version: PolicyVersion([0; 32]),
            job_no: 1,
            granted_at: now(),
            expires_at: now() + jiff::SignedDuration::from_hours(24 * expires_in_days),
        }
    }

    fn audience(released: Option<tailor_core::release::ReleasedSize>) -> Audience {
        Audience {
            no: AUDIENCE,
            audience_id: "aud_x".into(),
            advertiser_no: 1,
            entity: "x Ltd".into(),
            name: "x".into(),
            description: String::new(),
            membership_ttl_days: 30,
            created_at: now(),
            updated_at: now(),
            members: 0,
            pending_jobs: 0,
            succeeded_jobs: 0,
            query: QueryDigest::EMPTY,
            epoch: 0,
            released: released.map(|size| tailor_store::Release {
                audience_no: AUDIENCE,
                query: QueryDigest::EMPTY,
                epoch: 0,
                size,
                epsilon: tailor_core::release::Epsilon::from_micros(1),
                at: now(),
            }),
        }
    }

    fn serving(members: std::ops::Range<u32>) -> Serving {
        let mut serving = Serving::default();
        serving.add_audience(&audience(None));
        serving.set_targetable(AUDIENCE, true);
        for account in members {
            serving.grant(&membership(account, 10));
            serving.name(AccountNo(account), &format!("acct-{account}"));
        }
        serving
    }

    /// The accounts of `0..20` that answers say are in the audience.
    fn served(serving: &Serving, index: &EligibleIndex) -> Vec<u32> {
        (0..20)
            .filter(|account| {
                !serving
                    .answer(&format!("acct-{account}"), index, now())
                    .is_empty()
            })
            .collect()
    }

    #[test]
    fn staged_changes_stay_invisible_until_published_and_settle_to_the_same_answers() {
        let index = index(0..20);
        let mut serving = serving(0..10);
        assert_eq!(served(&serving, &index), (0..10).collect::<Vec<_>>());

        // A replace: 5..15 is the new set; 0..5 end, 5..10 are renewed, 10..15 are new.
        serving.begin();
        for account in 5..15 {
            serving.stage_grant(&membership(account, 20));
            serving.name(AccountNo(account), &format!("acct-{account}"));
        }
        for account in 0..5 {
            serving.stage_revoke(AUDIENCE, AccountNo(account));
        }
        assert_eq!(served(&serving, &index), (0..10).collect::<Vec<_>>());
        assert_eq!(serving.len(), 10);

        serving.publish();
        assert_eq!(served(&serving, &index), (5..15).collect::<Vec<_>>());
        assert_eq!(serving.len(), 10);

        for account in 0..15 {
            serving.settle(AccountNo(account));
        }
        assert_eq!(served(&serving, &index), (5..15).collect::<Vec<_>>());
        assert_eq!(serving.len(), 10);
        // Renewed memberships hold one entry, with the new expiry; ended accounts are gone.
        let renewed = serving.members.get(&5).unwrap();
        assert_eq!(renewed.len(), 1);
        assert_eq!(renewed[0].stage, Stage::Settled);
        assert_eq!(
            renewed[0].expires_at,
            now() + jiff::SignedDuration::from_hours(24 * 20)
        );
        assert!(!serving.members.contains_key(&0));
        assert!(!serving.ids.contains_key("acct-0"));
        assert_eq!(serving.unnamed(), Vec::<AccountNo>::new());
    }

    #[test]
    fn a_release_decision_staged_with_a_job_is_published_with_it() {
        let index = index(0..20);
        let mut serving = serving(0..10);
        serving.begin();
        serving.stage_grant(&membership(12, 20));
        serving.name(AccountNo(12), "acct-12");
        serving.stage_targetable(AUDIENCE, false);
        assert_eq!(served(&serving, &index), (0..10).collect::<Vec<_>>());
        serving.publish();
        assert_eq!(served(&serving, &index), Vec::<u32>::new());
        // A later release outside any job decides at once.
        serving.set_targetable(AUDIENCE, true);
        let mut all: Vec<u32> = (0..10).collect();
        all.push(12);
        assert_eq!(served(&serving, &index), all);
    }

    #[test]
    fn a_removed_audience_is_unanswered_at_once_and_its_memberships_dropped() {
        let index = index(0..20);
        let mut serving = serving(0..10);
        serving.remove_audience(AUDIENCE);
        assert_eq!(served(&serving, &index), Vec::<u32>::new());
        let members = serving.members_of(AUDIENCE);
        assert_eq!(members.len(), 10);
        for account in members {
            serving.drop_memberships(AUDIENCE, account);
        }
        assert_eq!(serving.len(), 0);
        assert!(serving.ids.iter().next().is_none() && serving.names.iter().next().is_none());
    }

    #[test]
    fn a_refreshed_audience_keeps_its_decision_until_its_question_has_a_release() {
        use tailor_core::release::ReleasedSize;
        let index = index(0..20);
        let mut serving = serving(0..10);
        // Another process changed its question (a job) and has released nothing for it yet.
        serving.refresh_audience(&audience(None));
        assert_eq!(served(&serving, &index), (0..10).collect::<Vec<_>>());
        serving.refresh_audience(&audience(Some(ReleasedSize::BelowThreshold {
            below_threshold: true,
        })));
        assert_eq!(served(&serving, &index), Vec::<u32>::new());
        serving.refresh_audience(&audience(Some(ReleasedSize::Approximate {
            approximate: 10,
        })));
        assert_eq!(served(&serving, &index), (0..10).collect::<Vec<_>>());
    }
}
