//! Reading a data directory with `SqliteStore` directly, as the tests' ground truth: exact
//! member sets and job records, which no endpoint shows (an advertiser sees released sizes).
//!
//! Only with no server running: `tailor serve` holds the directory's lock, which a process
//! releases when it exits, however it exits.

use std::collections::BTreeSet;
use std::path::Path;

use tailor_engine::{Clock, SystemClock};
use tailor_store::{Audience, SqliteStore, Store};

/// Opens the store in `data`, runs `read` on it, and closes it again (its lock released)
/// before returning.
pub(crate) fn with_store<T>(data: &Path, read: impl AsyncFnOnce(&SqliteStore) -> T) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = SqliteStore::open(data).expect("the store opens with no server running");
        read(&store).await
    })
}

/// An advertiser's audience, by their public ids.
pub(crate) async fn audience(
    store: &SqliteStore,
    advertiser_id: &str,
    audience_id: &str,
) -> Audience {
    let advertiser = store
        .advertiser(advertiser_id)
        .await
        .unwrap()
        .expect("the advertiser is stored");
    store
        .audience(advertiser.no, audience_id, SystemClock.now())
        .await
        .unwrap()
        .expect("the audience is stored")
}

/// The account ids of an audience's live members.
pub(crate) async fn members(store: &SqliteStore, audience: &Audience) -> BTreeSet<String> {
    let numbers = store
        .audience_members(audience.no, SystemClock.now())
        .await
        .unwrap();
    let accounts = store.accounts_by_no(&numbers).await.unwrap();
    assert_eq!(accounts.len(), numbers.len(), "a member is no account");
    accounts.into_iter().map(|a| a.account_id).collect()
}
