//! Applies the library's migrations to the database at the URL given, then exits.
//!
//! `cargo run -p messaging-store-pg --example pg_migrate -- postgres://user@host/db [schema]`

use messaging_store_pg::{PgOptions, PgStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or("usage: pg_migrate <postgres-url> [schema]")?;
    let mut options = PgOptions::default();
    if let Some(schema) = args.next() {
        options = options.schema(schema);
    }
    let store = PgStore::connect(&url, options).await?;
    store.pool().close().await;
    Ok(())
}
