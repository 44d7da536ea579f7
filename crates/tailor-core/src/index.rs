//! The eligible-identifier index: keyed digest → accounts, in memory.
//!
//! It holds exactly the contact points eligible for audience matching under the current
//! policy and consent state, and nothing else: [`EligibleIndex::insert`] only takes a
//! [`MarketingEligible`], which only policy evaluation can produce.
//!
//! Each entry is 16 bytes: the first 12 bytes of the keyed digest (the first 8 are the hash;
//! keyed digests are uniformly random) and the account number. Two different identifiers
//! collide on 96 bits with probability about n·m / 2^96 (for 10^8 entries and 10^7 lookups,
//! about 10^-14). Several accounts may share an identifier (a family email): the index is a
//! multimap.

use hashbrown::HashTable;

use crate::account::AccountNo;
use crate::keyed::KeyedDigest;
use crate::policy::MarketingEligible;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    hash: u64,
    tag: u32,
    account: u32,
}

fn split(digest: &KeyedDigest) -> (u64, u32) {
    let bytes = digest.as_bytes();
    let mut hash = [0u8; 8];
    hash.copy_from_slice(&bytes[..8]);
    let mut tag = [0u8; 4];
    tag.copy_from_slice(&bytes[8..12]);
    (u64::from_le_bytes(hash), u32::from_le_bytes(tag))
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

    /// Adds every digest of an eligible contact point (adding twice is harmless).
    pub fn insert(&mut self, eligible: &MarketingEligible) {
        let account = eligible.account().0;
        for digest in eligible.digests().iter() {
            let (hash, tag) = split(&digest);
            let entry = Entry { hash, tag, account };
            if self.table.find(hash, |e| *e == entry).is_none() {
                self.table.insert_unique(hash, entry, |e| e.hash);
            }
        }
    }

    /// Removes one digest of one account; `false` if it was not there.
    pub fn remove(&mut self, account: AccountNo, digest: &KeyedDigest) -> bool {
        let (hash, tag) = split(digest);
        let entry = Entry {
            hash,
            tag,
            account: account.0,
        };
        match self.table.find_entry(hash, |e| *e == entry) {
            Ok(found) => {
                found.remove();
                true
            }
            Err(_) => false,
        }
    }

    /// The accounts an identifier reaches.
    pub fn lookup(&self, digest: &KeyedDigest) -> impl Iterator<Item = AccountNo> + '_ {
        let (hash, tag) = split(digest);
        self.table
            .iter_hash(hash)
            .filter(move |e| e.hash == hash && e.tag == tag)
            .map(|e| AccountNo(e.account))
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

    /// Every entry as (12-byte digest prefix, account), sorted: for comparing two indexes.
    pub fn entries(&self) -> Vec<([u8; 12], AccountNo)> {
        let mut all: Vec<([u8; 12], AccountNo)> = self
            .table
            .iter()
            .map(|e| {
                let mut prefix = [0u8; 12];
                prefix[..8].copy_from_slice(&e.hash.to_le_bytes());
                prefix[8..].copy_from_slice(&e.tag.to_le_bytes());
                (prefix, AccountNo(e.account))
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
