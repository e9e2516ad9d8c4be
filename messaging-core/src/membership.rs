//! A cache of conversations' members.
//!
//! Direct-conversation membership never changes, so every operation that names a
//! conversation can check membership without a store round trip after the first time.
//! Only immutable fields are trusted from the cache (id, kind, members, context, creation).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::id::ConversationId;
use crate::model::Conversation;

/// Bounded: when full it is cleared whole, which costs one store read per conversation
/// afterwards and needs no bookkeeping on the hot path.
#[derive(Debug)]
pub(crate) struct MembershipCache {
    entries: Mutex<HashMap<ConversationId, Conversation>>,
    capacity: usize,
}

impl MembershipCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self { entries: Mutex::new(HashMap::new()), capacity }
    }

    pub(crate) fn get(&self, id: ConversationId) -> Option<Conversation> {
        self.lock().get(&id).cloned()
    }

    pub(crate) fn insert(&self, conversation: &Conversation) {
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(conversation.id, conversation.clone());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ConversationId, Conversation>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
