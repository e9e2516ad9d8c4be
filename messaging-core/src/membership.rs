//! Caches of what never changes: a conversation's members, and which conversation a
//! message belongs to.
//!
//! Direct-conversation membership never changes, so every operation that names a
//! conversation can check membership without a store round trip after the first time;
//! a message never moves, so an operation that names a message (a reaction) finds its
//! conversation the same way. Only immutable fields are kept (id, kind, members, context,
//! creation); the rest of a cached conversation is not to be trusted.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use crate::id::{ConversationId, MessageId};
use crate::model::Conversation;

/// The members (and the other immutable fields) of conversations, by id.
pub(crate) type MembershipCache = BoundedCache<ConversationId, Conversation>;

/// The conversation of each message, by message id.
pub(crate) type MessageHomes = BoundedCache<MessageId, ConversationId>;

/// Bounded: when full it is cleared whole, which costs one store read per entry
/// afterwards and needs no bookkeeping on the hot path.
#[derive(Debug)]
pub(crate) struct BoundedCache<K, V> {
    entries: Mutex<HashMap<K, V>>,
    capacity: usize,
}

impl<K: Eq + Hash, V: Clone> BoundedCache<K, V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self { entries: Mutex::new(HashMap::new()), capacity }
    }

    pub(crate) fn get(&self, key: &K) -> Option<V> {
        self.lock().get(key).cloned()
    }

    pub(crate) fn put(&self, key: K, value: V) {
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(key, value);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, V>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl MembershipCache {
    /// Keeps `conversation`'s immutable fields; the metadata (which changes, and may be
    /// large) and the message counters are left out.
    pub(crate) fn insert(&self, conversation: &Conversation) {
        let kept = Conversation {
            id: conversation.id,
            kind: conversation.kind,
            context: conversation.context.clone(),
            members: conversation.members,
            created_at: conversation.created_at,
            last_message_at: None,
            last_seq: 0,
            metadata: None,
        };
        self.put(conversation.id, kept);
    }
}
