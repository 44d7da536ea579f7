// The index accepts only what policy evaluation produced, not contact facts or digests.
use tailor_core::*;

fn main() {
    let mut index = EligibleIndex::new();
    let mfa = ContactFacts { context: Context::Mfa, verified: true, removed: false };
    index.insert(&mfa);
    index.insert(&ContactDigests::new(KeyedDigest([0; 32]), None));
}
