//! Advertisers looked up by number, the way the membership history names them: sorted by
//! number, each once, unknown numbers skipped.

use super::T0;
use super::audiences::{advertiser, ok};
use crate::{Advertiser, Store};

/// Runs every check of the lookup, each on a fresh store made by `fresh`.
pub(super) async fn run<S, F, Fut>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = S>,
    S: Store,
{
    advertisers_by_number(fresh().await).await;
}

async fn lookup<S: Store>(store: &S, check: &str, nos: &[u32]) -> Vec<Advertiser> {
    ok(
        check,
        "advertisers_by_no",
        store.advertisers_by_no(nos).await,
    )
}

/// Whole advertisers come back for the numbers that exist, in number order and once each,
/// whatever order and repetition they were asked in; others are skipped.
async fn advertisers_by_number<S: Store>(store: S) {
    const CHECK: &str = "advertisers by number";
    assert_eq!(
        lookup(&store, CHECK, &[1, 2]).await,
        Vec::new(),
        "{CHECK}: an empty store"
    );
    let a = advertiser(&store, CHECK, "a", 1, T0).await;
    let b = advertiser(&store, CHECK, "b", 2, T0 + 1).await;
    let c = advertiser(&store, CHECK, "c", 3, T0 + 2).await;
    let unknown = a.no.max(b.no).max(c.no) + 1;

    assert_eq!(
        lookup(&store, CHECK, &[]).await,
        Vec::new(),
        "{CHECK}: no numbers"
    );
    assert_eq!(
        lookup(&store, CHECK, &[c.no, unknown, a.no, c.no]).await,
        vec![a.clone(), c.clone()],
        "{CHECK}: sorted, once each, unknown skipped"
    );
    assert_eq!(
        lookup(&store, CHECK, &[unknown, u32::MAX]).await,
        Vec::new(),
        "{CHECK}: only unknown numbers"
    );
    let mut all = vec![a, b, c];
    all.sort_by_key(|x| x.no);
    let nos: Vec<u32> = all.iter().rev().map(|x| x.no).collect();
    assert_eq!(
        lookup(&store, CHECK, &nos).await,
        all,
        "{CHECK}: every advertiser"
    );
}
