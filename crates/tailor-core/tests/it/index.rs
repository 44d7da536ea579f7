//! The eligible-identifier index as a multimap of keyed digests to accounts.

use jiff::Timestamp;
use tailor_core::{
    AccountFacts, AccountNo, AccountRegion, ContactDigests, ContactFacts, Context, EligibleIndex,
    KeyedDigest, MarketingEligible, Policy, Purpose,
};

fn eligible(account: u32, digests: ContactDigests) -> MarketingEligible {
    let region = AccountRegion::parse("US").unwrap();
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
    Policy::shipped()
        .marketing(
            Purpose::MARKETING_TARGETED,
            &facts,
            &contact,
            digests,
            Timestamp::UNIX_EPOCH,
        )
        .unwrap()
}

fn digest(n: u8) -> KeyedDigest {
    let mut bytes = [n; 32];
    bytes[31] = n.wrapping_mul(7);
    KeyedDigest(bytes)
}

#[test]
fn insert_lookup_remove() {
    let mut index = EligibleIndex::new();
    let a = ContactDigests::new(digest(1), Some(digest(2)));
    index.insert(&eligible(10, a));
    index.insert(&eligible(10, a));
    assert_eq!(index.len(), 2);
    // A shared identifier (a family email) reaches both accounts.
    index.insert(&eligible(11, ContactDigests::new(digest(1), None)));
    let mut reached: Vec<_> = index.lookup(&digest(1)).collect();
    reached.sort();
    assert_eq!(reached, [AccountNo(10), AccountNo(11)]);
    assert!(index.contains(&digest(2), AccountNo(10)));
    assert!(!index.contains(&digest(2), AccountNo(11)));
    assert_eq!(index.lookup(&digest(3)).count(), 0);

    assert!(index.remove(AccountNo(10), &digest(1)));
    assert!(!index.remove(AccountNo(10), &digest(1)));
    assert_eq!(
        index.lookup(&digest(1)).collect::<Vec<_>>(),
        [AccountNo(11)]
    );
    assert_eq!(index.len(), 2);
    assert_eq!(index.entries().len(), 2);
}

#[test]
fn digests_equal_in_their_first_eight_bytes_stay_apart() {
    let mut index = EligibleIndex::new();
    let mut x = [9u8; 32];
    let mut y = [9u8; 32];
    x[9] = 1;
    y[9] = 2;
    index.insert(&eligible(1, ContactDigests::new(KeyedDigest(x), None)));
    index.insert(&eligible(2, ContactDigests::new(KeyedDigest(y), None)));
    assert_eq!(
        index.lookup(&KeyedDigest(x)).collect::<Vec<_>>(),
        [AccountNo(1)]
    );
    assert_eq!(
        index.lookup(&KeyedDigest(y)).collect::<Vec<_>>(),
        [AccountNo(2)]
    );
}
