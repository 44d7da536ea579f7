//! The eligible-identifier index: keyed digest → accounts, in memory, with the basis on which
//! each contact point is eligible.
//!
//! It holds exactly the contact points eligible for audience matching under the current
//! policy and consent state, and nothing else: [`EligibleIndex::insert`] only takes a
//! [`MarketingEligible`], which only policy evaluation can produce.
//!
//! Each entry is 16 bytes: the first 10 bytes of the keyed digest (the first 8 are the hash;
//! keyed digests are uniformly random), the account number, and the basis of eligibility (the
//! context, and the consent event that grants it) so that a matching job can record every
//! grant's basis without reading the store. Two different identifiers collide on 80 bits with
//! probability about n·m / 2^80 (for 10^8 entries and 10^7 lookups, about 10^-9). Several
//! accounts may share an identifier (a family email): the index is a multimap.

use hashbrown::HashTable;

use crate::account::AccountNo;
use crate::contact::MarketingContext;
use crate::keyed::KeyedDigest;
use crate::policy::{Basis, MarketingEligible};

/// Bit of [`Entry::basis`] set for a `signup` contact point (clear for `profile`).
const SIGNUP: u16 = 1 << 15;
/// The consent sequence numbers an entry can hold; larger ones are marked [`OVERFLOW`].
const SEQ_MASK: u16 = SIGNUP - 1;
/// A consent sequence number too large to hold: the caller reads it from the store.
const OVERFLOW: u16 = SEQ_MASK;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    hash: u64,
    tag: u16,
    /// Context bit and consent sequence number (0: the opt-out regime, no event).
    basis: u16,
    account: u32,
}

impl Entry {
    fn same_key(&self, other: &Entry) -> bool {
        self.hash == other.hash && self.tag == other.tag && self.account == other.account
    }
}

fn split(digest: &KeyedDigest) -> (u64, u16) {
    let bytes = digest.as_bytes();
    let mut hash = [0u8; 8];
    hash.copy_from_slice(&bytes[..8]);
    (
        u64::from_le_bytes(hash),
        u16::from_le_bytes([bytes[8], bytes[9]]),
    )
}

fn encode(eligible: &MarketingEligible) -> u16 {
    let context = match eligible.context() {
        MarketingContext::Profile => 0,
        MarketingContext::Signup => SIGNUP,
    };
    let seq = match eligible.basis() {
        Basis::Consent { seq } => u16::try_from(seq).map_or(OVERFLOW, |s| s.min(OVERFLOW)),
        Basis::OptOutRegime | Basis::NotRequired => 0,
    };
    context | seq
}

/// Why an indexed contact point is eligible, as the index holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexedBasis {
    pub context: MarketingContext,
    /// The consent event that grants it; `None` under an opt-out regime without events.
    /// Unknown (read it from the store) when `seq_overflow` is set.
    pub consent_seq: Option<u64>,
    /// The sequence number was too large for the index to hold.
    pub seq_overflow: bool,
}

fn decode(basis: u16) -> IndexedBasis {
    let seq = basis & SEQ_MASK;
    IndexedBasis {
        context: if basis & SIGNUP == 0 {
            MarketingContext::Profile
        } else {
            MarketingContext::Signup
        },
        consent_seq: (seq != 0 && seq != OVERFLOW).then_some(u64::from(seq)),
        seq_overflow: seq == OVERFLOW,
    }
}

/// Keyed digest → accounts, for the contact points eligible for matching.
#[derive(Clone, Default)]
pub struct EligibleIndex {
    table: HashTable<Entry>,
}

impl std::fmt::Debug for EligibleIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EligibleIndex")
            .field("entries", &self.table.len())
            .finish()
    }
}

impl EligibleIndex {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(entries: usize) -> Self {
        Self {
            table: HashTable::with_capacity(entries),
        }
    }

    /// Adds every digest of an eligible contact point, or updates its basis if it is there.
    pub fn insert(&mut self, eligible: &MarketingEligible) {
        let account = eligible.account().0;
        let basis = encode(eligible);
        for digest in eligible.digests().iter() {
            let (hash, tag) = split(&digest);
            let entry = Entry {
                hash,
                tag,
                basis,
                account,
            };
            match self.table.find_mut(hash, |e| e.same_key(&entry)) {
                Some(existing) => existing.basis = basis,
                None => {
                    self.table.insert_unique(hash, entry, |e| e.hash);
                }
            }
        }
    }

    /// Removes every entry of these accounts (a pass over the whole table: for accounts
    /// whose digests are no longer known, such as erased ones).
    pub fn remove_accounts(&mut self, accounts: &std::collections::HashSet<AccountNo>) {
        if accounts.is_empty() {
            return;
        }
        self.table
            .retain(|entry| !accounts.contains(&AccountNo(entry.account)));
    }

    /// Removes one digest of one account; `false` if it was not there.
    pub fn remove(&mut self, account: AccountNo, digest: &KeyedDigest) -> bool {
        let (hash, tag) = split(digest);
        let key = Entry {
            hash,
            tag,
            basis: 0,
            account: account.0,
        };
        match self.table.find_entry(hash, |e| e.same_key(&key)) {
            Ok(found) => {
                found.remove();
                true
            }
            Err(_) => false,
        }
    }

    /// The accounts an identifier reaches.
    pub fn lookup(&self, digest: &KeyedDigest) -> impl Iterator<Item = AccountNo> + '_ {
        self.lookup_basis(digest).map(|(account, _)| account)
    }

    /// The accounts an identifier reaches, with the basis of each.
    pub fn lookup_basis(
        &self,
        digest: &KeyedDigest,
    ) -> impl Iterator<Item = (AccountNo, IndexedBasis)> + '_ {
        let (hash, tag) = split(digest);
        self.table
            .iter_hash(hash)
            .filter(move |e| e.hash == hash && e.tag == tag)
            .map(|e| (AccountNo(e.account), decode(e.basis)))
    }

    /// The basis on which an identifier reaches an account, if it does.
    pub fn basis(&self, digest: &KeyedDigest, account: AccountNo) -> Option<IndexedBasis> {
        self.lookup_basis(digest)
            .find(|&(a, _)| a == account)
            .map(|(_, basis)| basis)
    }

    /// Whether an identifier reaches an account.
    pub fn contains(&self, digest: &KeyedDigest, account: AccountNo) -> bool {
        self.lookup(digest).any(|a| a == account)
    }

    /// The number of (identifier, account) entries.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Every entry as (10-byte digest prefix, account, basis), sorted: for comparing two
    /// indexes, basis included.
    pub fn entries(&self) -> Vec<([u8; 10], AccountNo, u16)> {
        let mut all: Vec<([u8; 10], AccountNo, u16)> = self
            .table
            .iter()
            .map(|e| {
                let mut prefix = [0u8; 10];
                prefix[..8].copy_from_slice(&e.hash.to_le_bytes());
                prefix[8..].copy_from_slice(&e.tag.to_le_bytes());
                (prefix, AccountNo(e.account), e.basis)
            })
            .collect();
        all.sort_unstable();
        all
    }

    /// The bytes the table holds (buckets and control bytes), for memory reports.
    pub fn allocated_bytes(&self) -> usize {
        self.table.allocation_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basis_round_trips() {
        for (basis, expected) in [
            (0, (MarketingContext::Profile, None, false)),
            (7, (MarketingContext::Profile, Some(7), false)),
            (SIGNUP | 3, (MarketingContext::Signup, Some(3), false)),
            (OVERFLOW, (MarketingContext::Profile, None, true)),
        ] {
            let d = decode(basis);
            assert_eq!((d.context, d.consent_seq, d.seq_overflow), expected);
        }
    }
}
