//! How the contact points of an account write are identified, shared by every backend: a
//! contact point is its kind, its context and its primary keyed digest, and one listed twice
//! in a write is kept once, as its last listing says.
//!
//! Nothing here reads or writes storage; it only decides which listed contact points are the
//! same one.

use std::collections::HashSet;

use tailor_core::{ContactDigests, ContactKind, Context, KeyedDigest};

use crate::NewContact;

/// A contact point's identity within its account.
pub fn identity(kind: ContactKind, context: Context, digests: &ContactDigests) -> Identity {
    (kind, context, digests.primary())
}

pub type Identity = (ContactKind, Context, KeyedDigest);

pub fn new_identity(contact: &NewContact) -> Identity {
    identity(contact.kind, contact.context, &contact.digests)
}

/// Keeps the last of contact points listed twice (a caller's slip, not worth refusing the
/// write), at the position of that last listing.
pub fn dedupe(mut contacts: Vec<NewContact>) -> Vec<NewContact> {
    // A handful of contact points (the usual case) is checked pairwise, without allocating.
    if contacts.len() <= 16 {
        let mut i = 0;
        while i < contacts.len() {
            let key = new_identity(&contacts[i]);
            if contacts[i + 1..].iter().any(|c| new_identity(c) == key) {
                contacts.remove(i);
            } else {
                i += 1;
            }
        }
        return contacts;
    }
    let mut seen = HashSet::with_capacity(contacts.len());
    let mut kept: Vec<NewContact> = contacts
        .into_iter()
        .rev()
        .filter(|c| seen.insert(new_identity(c)))
        .collect();
    kept.reverse();
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(seed: u8, context: Context, verified: bool) -> NewContact {
        NewContact {
            kind: ContactKind::Email,
            context,
            verified,
            notice_version: None,
            digests: ContactDigests::new(KeyedDigest([seed; 32]), None),
        }
    }

    #[test]
    fn dedupe_keeps_the_last_listing_small_and_large() {
        let a = contact(1, Context::Profile, false);
        let b = contact(2, Context::Profile, true);
        let a2 = contact(1, Context::Profile, true);
        let a_mfa = contact(1, Context::Mfa, true);
        let small = vec![a.clone(), b.clone(), a_mfa.clone(), a2.clone()];
        assert_eq!(dedupe(small), vec![b.clone(), a_mfa.clone(), a2.clone()]);

        // Past the pairwise threshold the same rule holds.
        let mut large: Vec<NewContact> = (10..40)
            .map(|s| contact(s, Context::Signup, true))
            .collect();
        large.insert(3, a.clone());
        large.push(a2.clone());
        let deduped = dedupe(large.clone());
        assert_eq!(deduped.len(), large.len() - 1);
        assert_eq!(deduped.last(), Some(&a2));
        assert!(!deduped.contains(&a));
    }
}
