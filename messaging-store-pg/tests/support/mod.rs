//! Databases for the PostgreSQL tests: a fresh one per test, cloned from the migrated
//! template that `scripts/pg.sh` creates.
//!
//! Needs `MESSAGING_PG_URL` (an admin connection) and `MESSAGING_PG_TEMPLATE`. Without them
//! a test is skipped with one line on stderr, unless `MESSAGING_PG_REQUIRED=1` (set by
//! `scripts/test.sh` and CI), which makes it fail.

#![allow(clippy::expect_used, clippy::panic, dead_code, reason = "test support")]

use std::sync::Once;

use sqlx::{Connection, Executor};

static SKIP_NOTE: Once = Once::new();

/// The URL of a fresh database cloned from the template, or `None` to skip.
pub(crate) async fn fresh_database() -> Option<String> {
    let (Ok(admin), Ok(template)) =
        (std::env::var("MESSAGING_PG_URL"), std::env::var("MESSAGING_PG_TEMPLATE"))
    else {
        if std::env::var("MESSAGING_PG_REQUIRED").is_ok_and(|v| v == "1") {
            panic!("MESSAGING_PG_REQUIRED=1 but MESSAGING_PG_URL/MESSAGING_PG_TEMPLATE are unset");
        }
        SKIP_NOTE.call_once(|| {
            eprintln!("PostgreSQL tests skipped: no MESSAGING_PG_URL (run ./scripts/test.sh)");
        });
        return None;
    };
    let name = format!("case_{}", uuid::Uuid::now_v7().simple());
    let mut conn = sqlx::PgConnection::connect(&admin).await.expect("admin connection");
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name} TEMPLATE {template}")))
        .await
        .expect("clone the template");
    conn.close().await.expect("close the admin connection");
    match admin.rsplit_once('/') {
        Some((base, _)) => Some(format!("{base}/{name}")),
        None => panic!("MESSAGING_PG_URL has no database part"),
    }
}
