//! The store behind the server, chosen at run time from a database URL: a SQLite file (the
//! zero-config default) or PostgreSQL (with cross-instance fan-out and presence).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use messaging_core::transfer::{ImportState, StoreImport};
use messaging_core::{Error, Limits, Messenger, Result};
use messaging_store_pg::{PgOptions, PgStore};
use messaging_store_sqlite::{SqliteOptions, SqliteStore, Synchronous};

/// Where the data lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL.
    Postgres(String),
}

impl Database {
    /// `postgres://…` / `postgresql://…` is PostgreSQL; `sqlite://path`, `sqlite:path` or a
    /// plain path is a SQLite file.
    pub fn parse(url: &str) -> Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        let path =
            url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
        if path.is_empty() || path.contains("://") {
            // Not echoed: a URL of another database may hold a password.
            return Err(Error::invalid(
                "the database URL: expected postgres://…, sqlite://<path> or a file path",
            ));
        }
        Ok(Self::Sqlite(PathBuf::from(path)))
    }

    /// A description for logs and errors: the file, or `host:port/database` of a
    /// PostgreSQL URL. Never credentials: the user and password before `@` and every query
    /// parameter (`?password=…`, `sslkey=…`) are left out.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("SQLite {}", path.display()),
            Self::Postgres(url) => match url::Url::parse(url) {
                Ok(parsed) => {
                    let host = parsed.host_str().unwrap_or_default();
                    let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
                    format!("PostgreSQL {host}{port}{}", parsed.path()).trim_end().to_owned()
                }
                // Unparsable: no part of it can be shown safely.
                Err(_) => "PostgreSQL".to_owned(),
            },
        }
    }
}

/// How to open the store.
#[derive(Clone, Debug)]
pub struct StoreSettings {
    /// SQLite's fsync policy (FULL unless told otherwise).
    pub sqlite_synchronous: Synchronous,
    /// The messenger's limits.
    pub limits: Limits,
    /// The answer bound of the transports: the store's own time limits (a read's
    /// statement time, the wait for a database connection) are cut from it, so a slow
    /// statement fails on its own before the answer bound answers for it.
    pub answer_timeout: Duration,
    /// PostgreSQL: the most connections the store's pool opens (its listener takes one
    /// more); `PgOptions`' default (16) unless told otherwise.
    pub pg_pool_size: u32,
}

impl StoreSettings {
    /// Settings with the protocol's defaults (FULL, default limits, a 5 s answer bound,
    /// PostgreSQL's default pool).
    #[must_use]
    pub fn new(limits: Limits) -> Self {
        Self {
            sqlite_synchronous: Synchronous::Full,
            limits,
            answer_timeout: Duration::from_millis(5_000),
            pg_pool_size: PgOptions::default().max_connections,
        }
    }

    /// The longest a statement may run: three fifths of the answer bound.
    fn statement_timeout(&self) -> Duration {
        self.answer_timeout * 3 / 5
    }

    /// The longest a request waits for a database connection, or a SQLite read runs: two
    /// fifths of the answer bound.
    fn wait_timeout(&self) -> Duration {
        self.answer_timeout * 2 / 5
    }
}

/// An open store and the messenger over it.
pub struct Opened {
    /// The messaging service.
    pub messenger: Messenger,
    /// The store and its durability, as `/metrics` names it (`sqlite synchronous=FULL`).
    pub store_label: String,
    store: OpenStore,
}

/// The store under the messenger, kept to be closed at shutdown.
enum OpenStore {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened").field("store", &self.store_label).finish_non_exhaustive()
    }
}

impl Opened {
    /// Closes the store: writes already queued commit and are answered, and on PostgreSQL
    /// this instance says goodbye to the others, so its users go offline at once rather
    /// than after the sweeper's timeout.
    pub async fn close(self) {
        let closed = match &self.store {
            OpenStore::Sqlite(store) => store.close().await,
            OpenStore::Postgres(store) => store.close().await,
        };
        if let Err(error) = closed {
            tracing::warn!(%error, "closing the store failed");
        }
    }
}

/// Opens (and migrates) the store and builds the messenger.
pub async fn open(database: &Database, settings: &StoreSettings) -> Result<Opened> {
    let limits = settings.limits.clone();
    match database {
        Database::Sqlite(path) => {
            let options = SqliteOptions::default()
                .synchronous(settings.sqlite_synchronous)
                .read_timeout(settings.wait_timeout());
            let store = SqliteStore::open_with(path, options).await?;
            let messenger =
                Messenger::builder(Arc::new(store.clone())).limits(limits).build().await?;
            let store_label =
                format!("sqlite synchronous={}", settings.sqlite_synchronous.pragma());
            Ok(Opened { messenger, store_label, store: OpenStore::Sqlite(store) })
        }
        Database::Postgres(url) => {
            let options = PgOptions::default()
                .max_connections(settings.pg_pool_size)
                .statement_timeout(settings.statement_timeout())
                .acquire_timeout(settings.wait_timeout());
            let store = PgStore::connect(url, options).await?;
            // A move that stopped halfway left part of the data and no log head: serving
            // it would show users half their history and reuse the copied positions.
            if let ImportState::Unfinished(stopped) = store.import_state().await? {
                let _ = store.close().await;
                return Err(Error::conflict(format!(
                    "the database holds a move from SQLite that stopped halfway (in its {}): \
                     finish it with `messaging-ws-server move --resume` before serving",
                    stopped.section.name()
                )));
            }
            // Wired with the store's fan-out and presence: typing and presence reach the
            // sessions of every instance on the database.
            let messenger = store.messenger(limits).await?;
            let store_label = "postgresql".to_owned();
            Ok(Opened { messenger, store_label, store: OpenStore::Postgres(store) })
        }
    }
}

/// Applies the store's migrations and returns.
pub async fn migrate(database: &Database) -> Result<()> {
    match database {
        Database::Sqlite(path) => SqliteStore::open(path).await.map(drop),
        Database::Postgres(url) => PgStore::connect(url, PgOptions::default()).await.map(drop),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_store() {
        assert_eq!(
            Database::parse("postgres://u@h/db").ok(),
            Some(Database::Postgres("postgres://u@h/db".into()))
        );
        assert_eq!(
            Database::parse("messaging.db").ok(),
            Some(Database::Sqlite("messaging.db".into()))
        );
        assert_eq!(
            Database::parse("sqlite:///tmp/x.db").ok(),
            Some(Database::Sqlite("/tmp/x.db".into()))
        );
        assert_eq!(Database::parse("sqlite:x.db").ok(), Some(Database::Sqlite("x.db".into())));
        assert!(Database::parse("mysql://h/db").is_err());
        assert!(Database::parse("").is_err());
        assert_eq!(
            Database::parse("postgres://u:pw@h:5432/db").unwrap().describe(),
            "PostgreSQL h:5432/db"
        );
    }

    #[test]
    fn descriptions_never_show_credentials() {
        for (url, described) in [
            ("postgres://user:s3cret@db.internal:5432/chat", "PostgreSQL db.internal:5432/chat"),
            (
                "postgresql://db.internal/chat?user=me&password=s3cret&sslmode=require",
                "PostgreSQL db.internal/chat",
            ),
            ("postgres://u:s3cret@h/chat?password=s3cret#frag", "PostgreSQL h/chat"),
            ("postgres://u:pa%40ss@h:1/chat", "PostgreSQL h:1/chat"),
            ("postgres:///chat?host=/run/pg&password=s3cret", "PostgreSQL /chat"),
            ("postgres://u:s3c?ret@h/chat", "PostgreSQL"),
            ("postgres://u:s3cret@", "PostgreSQL"),
        ] {
            let text = Database::parse(url).unwrap().describe();
            assert_eq!(text, described, "{url}");
            assert!(!text.contains("s3c") && !text.contains("pa%40ss"), "{text}");
        }
    }
}
