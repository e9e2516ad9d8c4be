//! Migrations, embedded, in the library's own schema with its own migrations table.

use messaging_core::Error;
use sqlx::{Executor, PgPool};

use crate::error::Result;

/// Refuses schema names that would need quoting rules to be safe.
pub(crate) fn validate(schema: &str) -> Result<String, Error> {
    let mut chars = schema.chars();
    let valid = matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && schema.len() <= 48;
    if valid {
        Ok(schema.to_owned())
    } else {
        Err(Error::invalid(format!(
            "schema {schema:?} must be lowercase letters, digits and '_' (at most 48)"
        )))
    }
}

/// Creates the schema if needed and applies the embedded migrations, recording them in
/// `<schema>._messaging_migrations` (never the host's `_sqlx_migrations`). Concurrent
/// callers are serialized by sqlx's advisory lock.
///
/// That lock is session-level, its key depends only on the database name (so it is the
/// host's migrator's lock too), and sqlx returns early on an error without unlocking: the
/// migration connection is therefore closed afterwards, never returned to the pool possibly
/// still holding it (which would block every later migration in the database, the host's
/// included, for as long as the pool lives).
pub(crate) async fn migrate(pool: &PgPool, schema: &str) -> Result<()> {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.dangerous_set_table_name(format!("\"{schema}\"._messaging_migrations"));
    migrator.create_schema(format!("\"{schema}\""));
    let mut conn = pool.acquire().await?;
    // However `run` ends (an error, or this future dropped), the session ends with it.
    conn.close_on_drop();
    // The pool's `statement_timeout` bounds requests, not migrations: rewriting a large
    // table, or waiting for another process's migration lock, may take longer.
    conn.execute("SET statement_timeout = 0").await?;
    // `run_direct` is what `run` calls after acquiring; called directly, the future stays
    // `Send` (through `run` with `&mut PgConnection`, rustc cannot prove it, and
    // `PgStore::connect` could not be spawned).
    migrator.run_direct(None, &mut *conn, false).await?;
    Ok(())
}
