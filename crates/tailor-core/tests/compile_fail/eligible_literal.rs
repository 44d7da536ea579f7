// The matcher's input cannot be written by hand: its fields are private.
use tailor_core::*;

fn main() {
    let _ = MarketingEligible {
        account: AccountNo(1),
        purpose: Purpose::MARKETING_TARGETED,
        context: MarketingContext::Profile,
        digests: ContactDigests::new(KeyedDigest([0; 32]), None),
        basis: Basis::OptOutRegime,
        policy: Policy::shipped().version(),
    };
}
