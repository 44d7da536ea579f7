//! The conformance suite, run against the SQLite backend, each check in a fresh data
//! directory.

use std::sync::Mutex;

use crate::support::TempDir;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_passes_the_conformance_suite() {
    // The directories live until the suite ends (pass or panic), then are removed.
    let dirs: Mutex<Vec<TempDir>> = Mutex::new(Vec::new());
    tailor_store::conformance::run(|| {
        let dir = TempDir::new("conformance");
        let store = dir.open();
        dirs.lock().unwrap().push(dir);
        async move { store }
    })
    .await;
}
