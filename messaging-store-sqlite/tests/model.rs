//! The model-based property test of `messaging-core` (`testkit::model`) against SQLite
//! with `synchronous=FULL` (the default): 24 random op sequences by four users, each on a
//! fresh database file, compared with the reference model after every step, plus the
//! regression sequences it found. `MESSAGING_MODEL_CASES` runs more.

use std::sync::Arc;

use messaging_core::testkit::Fixture;
use messaging_store_sqlite::{SqliteOptions, SqliteStore, Synchronous};

/// A fresh store in its own temporary directory; failing to build one fails the test.
#[allow(clippy::expect_used, reason = "a test that cannot set up must fail")]
async fn full() -> Fixture {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let options = SqliteOptions::default().synchronous(Synchronous::Full);
    let store = SqliteStore::open_with(dir.path().join("m.db"), options)
        .await
        .expect("a fresh SQLite store");
    Fixture::new(Arc::new(store)).with_guard(dir)
}

mod full_sync {
    messaging_core::model_tests!(super::full, 24);
}
