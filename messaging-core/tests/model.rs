//! The model-based property test (`testkit::model`) over [`MemoryStore`]: 256 random op
//! sequences by four users, each on a fresh store, compared with the reference model after
//! every step. `MESSAGING_MODEL_CASES` runs more (see the module docs of
//! `messaging_core::testkit::model`).

use std::sync::Arc;

use messaging_core::memory::MemoryStore;
use messaging_core::testkit::Fixture;

/// A fresh, empty store for one case.
async fn fresh() -> Fixture {
    Fixture::new(Arc::new(MemoryStore::new()))
}

mod memory {
    messaging_core::model_tests!(super::fresh, 256);
}
