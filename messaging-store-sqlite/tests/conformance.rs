//! The conformance suite of `messaging-core` (feature `testkit`) against SQLite: every case
//! and every service scenario on a fresh database file in its own temporary directory,
//! once with `synchronous=FULL` (the default) and once with `NORMAL`.
//!
//! The interleaving cases (`interleaving_tests!`) are not run: SQLite has one writer, which
//! assigns log positions and commits in the same order, so commits cannot land out of
//! position order.

use std::sync::Arc;

use messaging_core::Store;
use messaging_core::testkit::Fixture;
use messaging_store_sqlite::{SqliteOptions, SqliteStore, Synchronous};

/// A fresh store in its own temporary directory, which the cases that need it reopen (the
/// store closed, the file opened again); failing to build one fails the test.
#[allow(clippy::expect_used)]
async fn fixture(synchronous: Synchronous) -> Fixture {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let options = SqliteOptions::default().synchronous(synchronous);
    let path = dir.path().join("m.db");
    let store = SqliteStore::open_with(&path, options.clone()).await.expect("a fresh SQLite store");
    let first = store.clone();
    Fixture::new(Arc::new(store)).with_guard(dir).with_reopen(move || {
        let (first, path, options) = (first.clone(), path.clone(), options.clone());
        async move {
            first.close().await.expect("close the store");
            let reopened = SqliteStore::open_with(&path, options).await.expect("reopen");
            Arc::new(reopened) as Arc<dyn Store>
        }
    })
}

async fn full() -> Fixture {
    fixture(Synchronous::Full).await
}

async fn normal() -> Fixture {
    fixture(Synchronous::Normal).await
}

mod full_sync {
    messaging_core::conformance_tests!(super::full);
    messaging_core::service_scenarios!(super::full);
}

mod normal_sync {
    messaging_core::conformance_tests!(super::normal);
    messaging_core::service_scenarios!(super::normal);
}
