//! The conformance suite, run against the PostgreSQL backend, each check on a database of its
//! own.

use tailor_postgres::testing::{Databases, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_passes_the_conformance_suite() {
    let Some(server) = Server::find().await else {
        return;
    };
    let databases = Databases::new(&server);
    tailor_store::conformance::run(|| databases.store()).await;
}
