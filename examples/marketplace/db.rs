//! The app's own SQLite file (`marketplace.db`: users, listings and login sessions), apart from the
//! messaging store's (see the crate docs for why).
//!
//! One connection behind a mutex, used on tokio's blocking threads: a marketplace's own
//! writes (a login, a new listing, a sale) are rare next to its chat traffic, which goes
//! to the messaging store. A busier app would keep a reader pool as the store does.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

use crate::StartError;
use crate::error::AppError;

/// The schema, one step per `user_version`: append a step, never edit one.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE users (
        id         TEXT PRIMARY KEY,             -- the messaging library's UserId
        name       TEXT NOT NULL UNIQUE COLLATE NOCASE,
        created_at INTEGER NOT NULL              -- ms since the Unix epoch
    ) STRICT;
    CREATE TABLE listings (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        seller_id   TEXT NOT NULL REFERENCES users(id),
        title       TEXT NOT NULL,
        price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
        status      TEXT NOT NULL CHECK (status IN ('open', 'sold')),
        created_at  INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX listings_by_status ON listings (status, id);
",
    "
    CREATE TABLE sessions (
        token_hash BLOB PRIMARY KEY,             -- SHA-256 of the cookie's token
        user_id    TEXT NOT NULL REFERENCES users(id),
        expires_at INTEGER NOT NULL              -- ms since the Unix epoch
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX sessions_by_expiry ON sessions (expires_at);
",
];

/// The app's database. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Db {
    conn: Arc<Mutex<Connection>>,
}

impl Db {
    /// Opens `path` (created if missing) and brings its schema up to date.
    pub(crate) async fn open(path: PathBuf) -> Result<Self, StartError> {
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection, StartError> {
            let mut conn = Connection::open(path)?;
            conn.busy_timeout(Duration::from_secs(5))?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "foreign_keys", true)?;
            migrate(&mut conn)?;
            Ok(conn)
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(Self { conn: Arc::new(Mutex::new(conn)) })
    }

    /// Runs `work` on the connection on a blocking thread.
    pub(crate) async fn call<T, F>(&self, work: F) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, AppError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().map_err(|_| AppError::internal("the database lock"))?;
            work(&mut conn)
        })
        .await
        .map_err(|_| AppError::internal("a database task failed"))?
    }
}

/// Applies the steps of [`MIGRATIONS`] the file has not seen, each in its transaction; a
/// file newer than this code is refused.
fn migrate(conn: &mut Connection) -> Result<(), StartError> {
    let version: u32 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let known = u32::try_from(MIGRATIONS.len()).unwrap_or(u32::MAX);
    if version > known {
        return Err(StartError::Schema(format!(
            "marketplace.db is at schema version {version}, this build knows {known}"
        )));
    }
    for (sql, step) in MIGRATIONS.iter().zip(1u32..).filter(|(_, step)| *step > version) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", step)?;
        tx.commit()?;
    }
    Ok(())
}
