//! A listing marketplace's chat: a small axum app that embeds the messaging library, as a
//! team moving its marketplace onto it would write it on day one.
//!
//! The app keeps what is its own in its own tables (users, listings) and its own session
//! cookies, and lets the library do the messaging: a buyer's "contact the seller" opens the
//! conversation about the listing (context `listing:<id>`, the listing in its metadata) and
//! sends the first message; the seller's inbox of a listing is their conversation list
//! filtered by that context; "mark sold" posts a system message into every conversation of
//! the listing. Browsers then talk to the library's own routes (REST, server-sent events,
//! WebSocket), mounted under `/chat` with the same cookie.
//!
//! | route | what |
//! |---|---|
//! | `POST /login` `{name}` | find or create the user, set the session cookie |
//! | `POST /logout` | end the session |
//! | `GET /me` | the logged-in user |
//! | `GET /listings?status&limit&before` | listings, newest first (public) |
//! | `POST /listings` `{title, price_cents}` | create a listing |
//! | `GET /listings/{id}` | one listing (public) |
//! | `POST /listings/{id}/contact` `{message, client_msg_id?}` | a buyer writes to the seller |
//! | `GET /listings/{id}/inquiries?limit&before&archived` | the seller's inbox of a listing |
//! | `POST /listings/{id}/sold` | the seller marks it sold; every inquiry is told |
//! | `/chat/…` | the library's routes (docs/protocol.md), with the session cookie |
//!
//! Files, in the data directory: `messaging.db` is the messaging store's, `marketplace.db`
//! the app's. They are separate files on purpose: the store migrates its file on its own
//! `user_version` ladder and commits through one writer thread that expects to be the
//! file's only writer, so the app's own tables would fight it for both. Nothing needs a
//! transaction across the two (see `chat` for how "sold" stays consistent without one).
//!
//! ```no_run
//! # async fn demo() -> Result<(), marketplace::StartError> {
//! let market = marketplace::Marketplace::open("marketplace-data".as_ref()).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! market.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

mod app;
mod auth;
mod chat;
mod db;
mod error;
mod listings;
mod users;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use messaging_core::Messenger;
use messaging_store_sqlite::SqliteStore;
use messaging_ws_server::{Routes, RoutesError};

pub use auth::CookieAuth;

/// Why the marketplace could not start or serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The data directory or the listener.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The messaging store (opening, migrating, closing).
    #[error("messaging store: {0}")]
    Messaging(#[from] messaging_core::Error),
    /// The app's own database.
    #[error("marketplace database: {0}")]
    Database(#[from] rusqlite::Error),
    /// The app's database is newer than this build.
    #[error("marketplace database: {0}")]
    Schema(String),
    /// The chat routes' settings.
    #[error("chat routes: {0}")]
    Routes(#[from] RoutesError),
}

/// The marketplace, opened on its data directory and ready to serve.
pub struct Marketplace {
    app: axum::Router,
    chat: Routes,
    store: SqliteStore,
}

impl std::fmt::Debug for Marketplace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Marketplace").field("store", &self.store).finish_non_exhaustive()
    }
}

impl Marketplace {
    /// Opens (creating and migrating) both databases in `data_dir`, created if missing.
    pub async fn open(data_dir: &Path) -> Result<Self, StartError> {
        std::fs::create_dir_all(data_dir)?;
        let store = SqliteStore::open(data_dir.join("messaging.db")).await?;
        let messenger = Messenger::builder(Arc::new(store.clone()))
            .policy(chat::ListingContexts)
            .build()
            .await?;
        let db = db::Db::open(data_dir.join("marketplace.db")).await?;
        let auth = CookieAuth::new(db.clone());
        let chat = Routes::builder(messenger.clone(), auth.clone())
            .store_label("sqlite synchronous=FULL")
            .build()?;
        let app = app::router(app::App::new(db, auth, messenger)).nest("/chat", chat.router());
        Ok(Self { app, chat, store })
    }

    /// Serves on `listener` until `shutdown` resolves; then the chat's sessions (event
    /// streams, WebSockets) end, requests in flight finish, and the store closes.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let chat = self.chat.clone();
        // The connection's address reaches the chat routes' logs.
        let app = self.app.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                shutdown.await;
                // Open event streams and WebSockets would otherwise hold the server up.
                chat.shutdown();
            })
            .await?;
        self.chat.closed().await;
        self.store.close().await?;
        Ok(())
    }
}
