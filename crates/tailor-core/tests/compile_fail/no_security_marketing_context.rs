// There is no marketing context for a security context, and no infallible conversion.
use tailor_core::{Context, MarketingContext};

fn main() {
    let _ = MarketingContext::Mfa;
    let _: MarketingContext = Context::Recovery.into();
}
