//! The serving map: which audiences each account is in, in memory, for ad-serving time.
//!
//! It mirrors the store's live memberships, each with the keyed digest of the contact point it
//! rests on, and the live member count of each audience. An answer re-checks every membership
//! at answer time: unexpired, its contact point still in the eligible index for that account,
//! and its audience targetable through the release function.

use std::collections::HashMap;

use jiff::Timestamp;
use tailor_core::release::{ReleaseConfig, release_size};
use tailor_core::{AccountNo, EligibleIndex, KeyedDigest};
use tailor_store::{Audience, Membership};

#[derive(Clone, Copy, Debug)]
struct Member {
    audience: u32,
    digest: KeyedDigest,
    expires_at: Timestamp,
}

#[derive(Clone, Debug)]
pub(crate) struct AudienceEntry {
    pub(crate) id: String,
    pub(crate) members: u64,
}

/// Account → live memberships, audience → live member count, and the ids of the accounts
/// that are members of something (so that an answer never reads the store).
#[derive(Debug, Default)]
pub(crate) struct Serving {
    members: HashMap<u32, Vec<Member>>,
    audiences: HashMap<u32, AudienceEntry>,
    /// Account id → number, for accounts with at least one membership.
    ids: HashMap<Box<str>, u32>,
    /// Number → account id, the reverse of `ids`.
    names: HashMap<u32, Box<str>>,
}

impl Serving {
    pub(crate) fn add_audience(&mut self, audience: &Audience) {
        self.audiences.insert(
            audience.no,
            AudienceEntry {
                id: audience.audience_id.clone(),
                members: self
                    .audiences
                    .get(&audience.no)
                    .map_or(0, |entry| entry.members),
            },
        );
    }

    /// Forgets an audience and every membership in it.
    pub(crate) fn remove_audience(&mut self, audience_no: u32) {
        self.audiences.remove(&audience_no);
        let mut emptied = Vec::new();
        for (&account, list) in &mut self.members {
            list.retain(|m| m.audience != audience_no);
            if list.is_empty() {
                emptied.push(account);
            }
        }
        for account in emptied {
            self.forget(account);
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

    /// Records a granted (or renewed) membership.
    pub(crate) fn grant(&mut self, membership: &Membership) {
        let member = Member {
            audience: membership.audience_no,
            digest: membership.contact_digest,
            expires_at: membership.expires_at,
        };
        let list = self.members.entry(membership.account.0).or_default();
        match list.iter_mut().find(|m| m.audience == member.audience) {
            Some(existing) => *existing = member,
            None => {
                list.push(member);
                if let Some(entry) = self.audiences.get_mut(&member.audience) {
                    entry.members += 1;
                }
            }
        }
    }

    /// Forgets one membership.
    pub(crate) fn revoke(&mut self, audience_no: u32, account: AccountNo) {
        let Some(list) = self.members.get_mut(&account.0) else {
            return;
        };
        let before = list.len();
        list.retain(|m| m.audience != audience_no);
        if list.len() < before
            && let Some(entry) = self.audiences.get_mut(&audience_no)
        {
            entry.members = entry.members.saturating_sub(1);
        }
        if list.is_empty() {
            self.forget(account.0);
        }
    }

    /// Forgets every membership of an account.
    pub(crate) fn remove_account(&mut self, account: AccountNo) {
        let list = self.members.get(&account.0).cloned().unwrap_or_default();
        self.forget(account.0);
        for member in list {
            if let Some(entry) = self.audiences.get_mut(&member.audience) {
                entry.members = entry.members.saturating_sub(1);
            }
        }
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
        release: &ReleaseConfig,
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
            .filter(|m| m.expires_at > now && index.contains(&m.digest, account))
            .filter_map(|m| {
                let entry = self.audiences.get(&m.audience)?;
                release_size(entry.members, release)
                    .targetable()
                    .then(|| entry.id.clone())
            })
            .collect();
        ids.sort();
        ids
    }

    /// Memberships held, for reports.
    pub(crate) fn len(&self) -> usize {
        self.members.values().map(Vec::len).sum()
    }
}
