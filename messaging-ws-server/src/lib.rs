//! The standalone WebSocket server of the messaging library: docs/protocol.md v1 (with the v1.1
//! settings and robustness rules) over a SQLite file (zero config) or PostgreSQL (several
//! instances on one database).
//!
//! The binary is [`cli::main`]. An application that runs an axum app already mounts the
//! server's routes in it with [`Routes`] (and its own [`Authenticate`]); one that does not
//! can run the whole server, accept loop included, in its own process:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use messaging_core::Messenger;
//! use messaging_store_sqlite::SqliteStore;
//! use messaging_ws_server::{AuthSettings, Config, Transport, Verifier, run};
//!
//! let messenger = Messenger::new(Arc::new(SqliteStore::open("chat.db").await?)).await?;
//! let verifier = Verifier::new(&AuthSettings {
//!     secret: Some(b"a long random secret".to_vec()),
//!     ..AuthSettings::default()
//! })?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let config = Config {
//!     messenger,
//!     service_keys: Arc::default(), // no service API
//!     verifier,
//!     transport: Transport::default(),
//!     store_label: "sqlite synchronous=FULL".into(),
//!     webhooks: None,
//! };
//! run(listener, config, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

mod admission;
pub mod auth;
pub mod backend;
pub mod cli;
pub mod config;
mod connection;
mod frames;
pub mod http;
mod metrics;
mod ops;
mod outbox;
mod rate;
pub mod relocate;
mod request;
mod revocation;
mod routes;
pub mod secret;
mod server;
mod sessions;
mod upgrade;
pub mod webhooks;

pub use auth::{AuthSettings, Verifier};

/// The README's Rust examples, compiled as doc tests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeExamples;

/// docs/protocol.md's Rust examples (the webhook signature check), compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/protocol.md")]
struct ProtocolExamples;
pub use config::Transport;
pub use http::{Authenticate, JwtAuth};
pub use routes::{Routes, RoutesBuilder, RoutesError};
pub use server::{Config, run};
