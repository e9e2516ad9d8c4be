//! The store behind the server, chosen at run time from a database URL: a SQLite file (the
//! zero-config default) or PostgreSQL (with cross-instance fan-out and presence).

use std::path::PathBuf;
use std::sync::Arc;

use messaging_core::{Error, Limits, Messenger, Result};
use messaging_store_pg::presence::{PgPresence, PresenceOptions};
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
            return Err(Error::invalid(format!(
                "database URL {url:?}: expected postgres://…, sqlite://<path> or a file path"
            )));
        }
        Ok(Self::Sqlite(PathBuf::from(path)))
    }

    /// A description for logs (no credentials).
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("SQLite {}", path.display()),
            Self::Postgres(url) => match url.split_once('@') {
                Some((_, host)) => format!("PostgreSQL {host}"),
                None => "PostgreSQL".to_owned(),
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
}

/// An open store and the messenger over it.
pub struct Opened {
    /// The messaging service.
    pub messenger: Messenger,
    /// The store and its durability, as `/metrics` names it (`sqlite synchronous=FULL`).
    pub store_label: String,
    presence: Option<Arc<PgPresence>>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened").field("shared_presence", &self.presence.is_some()).finish()
    }
}

impl Opened {
    /// Says goodbye to the other instances (PostgreSQL presence), so this instance's users
    /// go offline at once rather than after the sweeper's timeout.
    pub async fn close(self) {
        if let Some(presence) = self.presence
            && let Err(error) = presence.close().await
        {
            tracing::warn!(%error, "presence goodbye failed");
        }
    }
}

/// Opens (and migrates) the store and builds the messenger.
pub async fn open(database: &Database, settings: &StoreSettings) -> Result<Opened> {
    let limits = settings.limits.clone();
    match database {
        Database::Sqlite(path) => {
            let options = SqliteOptions::default().synchronous(settings.sqlite_synchronous);
            let store = SqliteStore::open_with(path, options).await?;
            let messenger = Messenger::builder(Arc::new(store)).limits(limits).build().await?;
            let store_label =
                format!("sqlite synchronous={}", settings.sqlite_synchronous.pragma());
            Ok(Opened { messenger, store_label, presence: None })
        }
        Database::Postgres(url) => {
            let store = PgStore::connect(url, PgOptions::default()).await?;
            let fanout = store.fanout(limits.max_queue_frames);
            let presence = store.presence(fanout.clone(), PresenceOptions::default()).await?;
            let messenger = Messenger::builder(Arc::new(store))
                .fanout(fanout)
                .presence(presence.clone())
                .limits(limits)
                .build()
                .await?;
            let store_label = "postgresql".to_owned();
            Ok(Opened { messenger, store_label, presence: Some(presence) })
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
}
