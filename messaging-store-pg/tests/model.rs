//! The model-based property test of `messaging-core` (`testkit::model`) against
//! PostgreSQL: 16 random op sequences by four users, each on a fresh database cloned from
//! the migrated template (see `support`), compared with the reference model after every
//! step, plus the regression sequences it found. Skipped without a server unless
//! `MESSAGING_PG_REQUIRED=1`; run it with
//! `./scripts/pg.sh run -- cargo test -p messaging-store-pg --test model`.
//! `MESSAGING_MODEL_CASES` runs more.

mod support;

use std::sync::Arc;

use messaging_core::testkit::Fixture;
use messaging_store_pg::{PgOptions, PgStore};

/// A fresh database for one case, or `None` (skip) when no server is configured.
#[allow(clippy::expect_used, reason = "a test that cannot set up must fail")]
async fn fresh() -> Option<Fixture> {
    let url = support::fresh_database().await?;
    let options = PgOptions::default().max_connections(4).migrate(false);
    let store = PgStore::connect(&url, options).await.expect("connect");
    Some(Fixture::new(Arc::new(store)))
}

mod postgres {
    messaging_core::model_tests!(super::fresh, 16);
}
