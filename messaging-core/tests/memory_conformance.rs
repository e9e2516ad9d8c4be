//! The conformance suite of `messaging-core` against its own [`MemoryStore`]: every case
//! and every service scenario on a fresh, empty store. `cargo test -p messaging-core`
//! runs it without flags: the crate's dev-dependency on itself turns on the `testkit` and
//! `memory` features.
//!
//! The interleaving cases (`interleaving_tests!`) are not run: one lock assigns each write
//! its log position and commits it in the same step, so commits cannot land out of
//! position order, and the store has no `CommitHold`.

use std::sync::Arc;

use messaging_core::memory::MemoryStore;
use messaging_core::testkit::Fixture;

/// A fresh, empty store for one case (no way to reopen it: its data ends with it).
async fn fresh() -> Fixture {
    Fixture::new(Arc::new(MemoryStore::new()))
}

mod memory {
    messaging_core::conformance_tests!(super::fresh);
    messaging_core::service_scenarios!(super::fresh);
}
