//! Direct (1:1) messaging as a library.
//!
//! `messaging-core` holds the domain ([`Conversation`], [`Message`], [`Event`]), the storage
//! contract ([`Store`] and its parts), the rules ([`Messenger`]), fan-out ([`Fanout`],
//! [`Hub`]) and presence ([`Presence`]). It does no I/O of its own: pair it with a store
//! crate (`messaging-store-sqlite`, `messaging-store-pg`).
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
pub mod error;
pub mod fanout;
pub mod id;
pub mod limits;
mod membership;
pub mod model;
pub mod policy;
pub mod presence;
mod push_queue;
pub mod search;
pub mod service;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod time;
mod typing;
mod validate;

pub use error::{Error, Result};
pub use fanout::{Fanout, Hub, Push, RecvError, Subscription};
pub use id::{ConversationId, MessageId, SessionId, UserId};
pub use limits::{Limits, PageSize};
pub use model::{
    ActivityKey, CommittedEvent, Conversation, ConversationKind, ConversationSummary, Cursor,
    Event, LoggedEvent, Message, PresenceStatus, Receipt, ReceiptKind, Shared, Signal, TypingState,
    UnreadTotals,
};
pub use policy::{
    AccessPolicy, AccessPolicyExt, AllowAll, And, Decision, FirstDegree, SocialGraph,
};
pub use presence::{LocalPresence, Presence};
pub use service::{
    ConversationsPage, HistoryPage, HistoryQuery, Messenger, MessengerBuilder, SendMessage,
    SendTarget, Session, SyncPage,
};
pub use store::{
    Appended, CommitHold, ConversationPage, ConversationStore, DeleteMessage, Deleted, EditMessage,
    EventLog, FeedSink, HeldCommit, HistoryWindow, HoldPoint, MarkUpdate, Marked, MessageStore,
    NewConversation, NewMessage, Opened, SearchQuery, SocialStore, Store, StoreHealth,
};
pub use time::Timestamp;

pub use async_trait::async_trait;
