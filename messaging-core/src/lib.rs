//! Direct (1:1) messaging as a library.
//!
//! `messaging-core` holds the domain ([`Conversation`], [`Message`], [`Event`]), the rules
//! ([`Messenger`]), the storage contract ([`Store`]), fan-out and presence. It does no I/O
//! of its own: pair it with a store crate (`messaging-store-sqlite`, `messaging-store-pg`).
//!
//! The crate root is the application's API: the messenger, its sessions, what goes in and
//! comes out, access policies. What a store author implements and passes around lives in
//! [`store`] (the storage traits and their inputs and outputs), [`fanout`] and
//! [`presence`] (for stores with a fan-out or presence of their own); the conformance
//! suite and its test seams in `testkit` (feature `testkit`), and a reference store in
//! `memory` (feature `memory`).
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<dyn messaging_core::Store>) -> messaging_core::Result<()> {
//! use messaging_core::{Messenger, Push, SendMessage, UserId};
//!
//! let messenger = Messenger::new(store).await?;
//! let (alice, bob) = (UserId::new(), UserId::new());
//! let mut bobs_phone = messenger.connect(bob).await?;
//! messenger.send(alice, SendMessage::to_peer(bob, Some("listing:42"), "Is it available?")).await?;
//! while let Ok(Push::Event(event)) = bobs_phone.recv().await {
//!     println!("{} at {}", event.get().event.name(), event.get().cursor());
//! }
//! # Ok(()) }
//! ```

mod budget;
mod consumer;
pub mod error;
pub mod fanout;
pub mod id;
pub mod limits;
mod membership;
#[cfg(feature = "memory")]
pub mod memory;
mod messenger;
pub mod model;
mod pages;
pub mod policy;
pub mod presence;
mod push_queue;
mod requests;
pub mod search;
mod session;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod time;
pub mod transfer;
mod typing;
mod validate;

pub use consumer::{Consumer, ConsumerOptions, ConsumerStart};
pub use error::{Error, Result};
pub use fanout::{Push, RecvError};
pub use id::{ConversationId, MessageId, SessionId, UserId};
pub use limits::{Limits, PageSize};
pub use messenger::{Messenger, MessengerBuilder, ServiceHandle};
pub use model::{
    Attachment, Conversation, ConversationKind, ConversationSummary, Cursor, Event, LogEntry,
    LoggedEvent, MemberSettings, Message, MessageKind, PresenceStatus, Reaction, ReactionChange,
    ReactionState, Receipt, ReceiptKind, Recipient, Signal, TypingState, UnreadTotals,
};
pub use pages::{
    BlocksPage, ContextConversationsPage, ConversationsPage, HistoryPage, Sent, SyncPage,
};
pub use policy::{
    AccessPolicy, AccessPolicyExt, AllowAll, And, Decision, FirstDegree, Outgoing, SocialGraph,
};
pub use requests::{ConversationsQuery, HistoryQuery, SendMessage, SendTarget};
pub use session::Session;
pub use store::{Opened, Store};
pub use time::Timestamp;

pub use async_trait::async_trait;
