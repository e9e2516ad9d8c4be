//! [`MemoryStore`]: a complete [`Store`](crate::store::Store) in memory (feature `memory`).
//!
//! # Why it exists
//!
//! It is the executable documentation of the storage contract: the shortest implementation
//! that keeps every promise written on the traits of [`crate::store`], and passes the whole
//! conformance suite (feature `testkit`) that the SQLite and PostgreSQL stores run. A
//! store author reads it to see what each promise asks for once the SQL is taken away;
//! an application uses it for tests and prototypes. It keeps nothing on disk: the data
//! lives as long as the store object, in this one process.
//!
//! # How to read it
//!
//! One module per storage trait, each holding the reads and writes that trait needs and
//! the trait's impl (every trait method is one line: a read, or a write transaction):
//!
//! - `conversations`: [`ConversationStore`](crate::store::ConversationStore);
//! - `messages`: [`MessageStore`](crate::store::MessageStore);
//! - `event_log`: [`EventLog`](crate::store::EventLog);
//! - `social`: [`SocialStore`](crate::store::SocialStore);
//! - `consumers`: [`ConsumerLog`](crate::store::ConsumerLog);
//! - this module: [`StoreHealth`], and the transactions (`MemoryStore::read`,
//!   `MemoryStore::write`);
//!
//! and two that serve them all: `state`, the data (what a database store declares as its
//! schema), and `feed`, the attached [`FeedSink`](crate::store::FeedSink)s and the ordered
//! hand-over of committed events.
//!
//! Where each promise of the contract is kept:
//!
//! | Promise | Where |
//! |---|---|
//! | One transaction spans the change and its event | one [`std::sync::Mutex`] over all the data; a write runs start to end under it (`MemoryStore::write`) |
//! | A failed write changes nothing and takes no position | every write checks all that can fail before its first change; logging its event is its last step |
//! | Log positions dense from 1, in commit order | `event_log`: the log is a `Vec`, the entry at index `i` is at position `i + 1`, appended under the lock |
//! | The audience is kept per event | `event_log`: each entry keeps the audience the mutation named; `read_events` filters on it |
//! | `read_events` serves current state | `event_log`: an entry points at its message or conversation, rebuilt when read |
//! | The feed runs after commit, in position order, from the head | `feed`: events queued under the lock, handed over after it is released, one delivery at a time |
//! | Idempotent `append`, race-free `open_direct`, `block` bounded by `max_blocks` | the lookup and the insert happen under one lock, so no other write comes between them |
//! | Per-conversation `seq` gap-free from 1 | `messages`: `last_seq + 1` under the lock; a conversation's messages are a `Vec` indexed by `seq - 1` |
//! | Search by whole words, scoped, never tombstones | `messages`: [`crate::search::words`], the definition every store indexes, over the caller's conversations |
//! | A revocation never moves backwards | `social`: the later of the stored time and the new one, under the lock |
//! | Each event keeps its actor and a delete its removed attachments | `event_log`: the entry keeps what the mutation named, beside its audience |
//! | One consumer holder at a time; a position never moves backwards | `consumers`: a claim checks the holder and the lease under the lock; a commit keeps the greater position |
//! | Health | every successful write records [`StoreHealth::last_commit`]; [`StoreHealth::probe_commit`] is a write that changes nothing |
//!
//! A store on a database keeps the same promises with its own tools: a transaction instead
//! of the lock, a unique index instead of the lookup before the insert, a rollback instead
//! of checking first, a writer (SQLite) or a `log_head` row (PostgreSQL) for the order of
//! positions. What this store does not show is cost: its scans are fine in memory, while a
//! database store needs the keyset and index access the trait docs ask for.
//!
//! The lock is a [`std::sync::Mutex`], held only inside synchronous code, never across an
//! `.await` (no method awaits anything). A poisoned lock is taken over as it is: no code
//! under it panics, and a write changes nothing before its checks have passed.
//!
//! # Out-of-order commits
//!
//! It does not implement `testkit::CommitHold`, and its tests leave out
//! `interleaving_tests!`: one lock assigns each write its log position and commits it in
//! the same step, so commits cannot land out of position order (as with SQLite's single
//! writer), and a hold could only block every other write.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//!
//! use messaging_core::id::UserId;
//! use messaging_core::memory::MemoryStore;
//! use messaging_core::{Messenger, SendMessage};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> messaging_core::error::Result<()> {
//! let store = MemoryStore::new();
//! let messenger = Messenger::new(Arc::new(store)).await?;
//! let (alice, bob) = (UserId::new(), UserId::new());
//! let sent = messenger.send(alice, SendMessage::to_peer(bob, None, "hello")).await?;
//! assert_eq!(sent.message.seq, 1);
//! assert_eq!(messenger.unread(bob).await?.total, 1);
//! # Ok(()) }
//! ```

mod consumers;
mod conversations;
mod event_log;
mod feed;
mod messages;
mod social;
mod state;

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use async_trait::async_trait;

use crate::error::Result;
use crate::store::StoreHealth;

use self::feed::Feed;
use self::state::State;

/// A complete [`Store`](crate::store::Store) held in memory: every conversation, message,
/// marker, block, revocation and log event lives in this object and is gone when it is
/// dropped.
///
/// Share it as `Arc<dyn Store>` (or `Arc<MemoryStore>`); every clone of the `Arc` sees
/// the same data. See the [module docs](self) for how it keeps each promise.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    feed: Feed,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").field("head", &self.lock().head()).finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// An empty store: no data, an empty log (head 0), no commit yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A read: sees every write that returned before it started.
    fn read<T>(&self, query: impl FnOnce(&State) -> T) -> T {
        query(&self.lock())
    }

    /// A write transaction: `change` runs under the lock, and commits by returning `Ok`
    /// (it changes nothing when it fails). Then, the lock released, the feed is handed the
    /// committed events; when this returns, the change is visible and fed.
    fn write<T>(&self, change: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let result = {
            let mut state = self.lock();
            let result = change(&mut state);
            if result.is_ok() {
                state.last_commit = Some(Instant::now());
            }
            result
        };
        self.feed.deliver(|| self.lock().take_unfed());
        result
    }
}

#[async_trait]
impl StoreHealth for MemoryStore {
    fn last_commit(&self) -> Option<Instant> {
        self.read(|state| state.last_commit)
    }

    /// An empty write, through the transaction every mutation takes.
    async fn probe_commit(&self) -> Result<()> {
        self.write(|_| Ok(()))
    }
}
