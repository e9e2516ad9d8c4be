//! The conformance suite of `messaging-core` (feature `testkit`) against PostgreSQL: every
//! case, every service scenario and the interleaving cases, each on a fresh database cloned
//! from the migrated template that `scripts/pg.sh` creates.
//!
//! Needs `MESSAGING_PG_URL` (an admin connection) and `MESSAGING_PG_TEMPLATE`. Without
//! them the cases are skipped with one line on stderr, unless `MESSAGING_PG_REQUIRED=1`
//! (set by `scripts/test.sh` and CI), which makes them fail.

use std::sync::{Arc, Once};

use messaging_core::testkit::Fixture;
use messaging_store_pg::{PgOptions, PgStore};
use sqlx::{Connection, Executor};

static SKIP_NOTE: Once = Once::new();

/// A fresh database for one case, or `None` (skip) when no server is configured.
#[allow(clippy::expect_used, clippy::panic)]
async fn fresh() -> Option<Fixture> {
    let (Ok(admin), Ok(template)) =
        (std::env::var("MESSAGING_PG_URL"), std::env::var("MESSAGING_PG_TEMPLATE"))
    else {
        if std::env::var("MESSAGING_PG_REQUIRED").is_ok_and(|v| v == "1") {
            panic!("MESSAGING_PG_REQUIRED=1 but MESSAGING_PG_URL/MESSAGING_PG_TEMPLATE are unset");
        }
        SKIP_NOTE.call_once(|| {
            eprintln!(
                "PostgreSQL conformance skipped: no MESSAGING_PG_URL (run ./scripts/test.sh)"
            );
        });
        return None;
    };
    let name = format!("case_{}", uuid::Uuid::now_v7().simple());
    let mut conn = sqlx::PgConnection::connect(&admin).await.expect("admin connection");
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name} TEMPLATE {template}")))
        .await
        .expect("clone the template");
    conn.close().await.expect("close the admin connection");
    let url = match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("MESSAGING_PG_URL has no database part"),
    };
    let options = PgOptions::default().max_connections(8).migrate(false);
    let store = Arc::new(PgStore::connect(&url, options).await.expect("connect"));
    Some(Fixture::new(store.clone()).with_commit_hold(store))
}

mod postgres {
    messaging_core::conformance_tests!(super::fresh);
    messaging_core::service_scenarios!(super::fresh);
    messaging_core::interleaving_tests!(super::fresh);
}
