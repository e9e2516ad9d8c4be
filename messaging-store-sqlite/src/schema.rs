//! The migration ladder: numbered `.sql` files applied by `PRAGMA user_version`.
//!
//! See `migrations/NOTES.md` for the rules of adding a version.

use messaging_core::Error;
use rusqlite::Connection;

use crate::error::StoreResult;

/// The migrations, in order; index + 1 is the version each one produces.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_init.sql"),
    include_str!("../migrations/0002_search_apart.sql"),
    include_str!("../migrations/0003_activity_bucket.sql"),
    include_str!("../migrations/0004_conversation_numbers.sql"),
    include_str!("../migrations/0005_richer_messages.sql"),
    include_str!("../migrations/0006_revocations.sql"),
    include_str!("../migrations/0007_consumers.sql"),
    include_str!("../migrations/0008_receipt_times.sql"),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database up to [`SCHEMA_VERSION`]; refuses a newer one.
pub(crate) fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(Error::unavailable(format!(
            "the database schema is version {current}, newer than the {SCHEMA_VERSION} this \
             build of messaging-store-sqlite knows; upgrade the library to open it"
        ))
        .into());
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(usize::try_from(current).unwrap_or(0)) {
        let version = i64::try_from(index + 1).unwrap_or(i64::MAX);
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        tracing::info!(version, "applied SQLite migration");
    }
    Ok(())
}

/// The `detail` lines of `EXPLAIN QUERY PLAN` for `sql` on a database migrated to the
/// current schema (its parameters unbound: the plan does not depend on them), for the
/// tests that check a query is the index access its docs promise.
#[cfg(test)]
pub(crate) fn query_plan(sql: &str) -> Vec<String> {
    #![allow(clippy::unwrap_used, reason = "test helper")]
    let mut conn = Connection::open_in_memory().unwrap();
    migrate(&mut conn).unwrap();
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let mut rows = stmt.raw_query();
    let mut plan = Vec::new();
    while let Some(row) = rows.next().unwrap() {
        plan.push(row.get::<_, String>(3).unwrap());
    }
    plan
}
