//! Migrations, embedded, in the library's own schema with its own migrations table.

use messaging_core::{Error, Result};
use sqlx::PgPool;

use crate::codec::db_err;

/// Refuses schema names that would need quoting rules to be safe.
pub(crate) fn validate(schema: &str) -> Result<String> {
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
pub(crate) async fn migrate(pool: &PgPool, schema: &str) -> Result<()> {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.dangerous_set_table_name(format!("\"{schema}\"._messaging_migrations"));
    migrator.create_schema(format!("\"{schema}\""));
    migrator.run(pool).await.map_err(|e| match e {
        sqlx::migrate::MigrateError::Execute(inner) => db_err(inner),
        other => Error::unavailable(format!("migrating schema {schema}: {other}")),
    })
}
