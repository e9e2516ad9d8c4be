//! The conformance suite of `messaging-core` (feature `testkit`) against PostgreSQL: every
//! case, every service scenario and the interleaving cases, each on a fresh database cloned
//! from the migrated template (see `support`), with a second store object on it (another
//! instance) and a way to reopen the store (closed, then connected again).

mod support;

use std::sync::Arc;

use messaging_core::Store;
use messaging_core::testkit::Fixture;
use messaging_store_pg::{PgOptions, PgStore};

/// A fresh database for one case, or `None` (skip) when no server is configured.
#[allow(clippy::expect_used, reason = "a test that cannot set up must fail")]
async fn fresh() -> Option<Fixture> {
    let url = support::fresh_database().await?;
    let options = PgOptions::default().max_connections(8).migrate(false);
    let store = Arc::new(PgStore::connect(&url, options.clone()).await.expect("connect"));
    // Another process's writer on the same database, for the interleaving cases.
    let peer = Arc::new(PgStore::connect(&url, options.clone()).await.expect("connect the peer"));
    let first = store.clone();
    let reopen = move || {
        let (first, url, options) = (first.clone(), url.clone(), options.clone());
        async move {
            first.close().await.expect("close the store");
            let reopened = PgStore::connect(&url, options).await.expect("connect again");
            Arc::new(reopened) as Arc<dyn Store>
        }
    };
    Some(
        Fixture::new(store.clone())
            .with_commit_hold(store)
            .with_peer_store(peer)
            .with_reopen(reopen),
    )
}

mod postgres {
    messaging_core::conformance_tests!(super::fresh);
    messaging_core::service_scenarios!(super::fresh);
    messaging_core::interleaving_tests!(super::fresh);
}
