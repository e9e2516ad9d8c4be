//! The data of a [`MemoryStore`](super::MemoryStore): what a database store declares as
//! its schema, here as plain collections.
//!
//! The maps that a database store would declare as unique indexes (`direct`, `by_id`,
//! `by_client_id`) are looked up before every insert; the store's one lock makes the
//! lookup and the insert one step. The reads and writes live beside the trait they serve:
//! `conversations`, `messages`, `event_log`, `social`.
//!
//! Every write checks everything that can fail before its first change, so a write that
//! fails has changed nothing: that is this store's rollback, and why a failed write takes
//! no log position. Its event is its last step.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use uuid::Uuid;

use crate::id::{ConversationId, MessageId, UserId};
use crate::model::{Attachment, CommittedEvent, Conversation, Message, ReactionState, Receipt};
use crate::time::Timestamp;

/// A direct conversation's unique key: the lower member, the higher one, the context
/// (`None` is one value, so two opens without context find the same conversation).
pub(super) type DirectKey = (UserId, UserId, Option<String>);

/// Everything a [`MemoryStore`](super::MemoryStore) holds.
#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) conversations: HashMap<ConversationId, Thread>,
    /// The unique (pair, context) index of direct conversations.
    pub(super) direct: HashMap<DirectKey, ConversationId>,
    /// Each user's conversations.
    pub(super) memberships: HashMap<UserId, HashSet<ConversationId>>,
    /// Every message, in append order (search's "newest first" is this order reversed);
    /// the other indexes point into it.
    pub(super) messages: Vec<Message>,
    pub(super) by_id: HashMap<MessageId, usize>,
    /// The idempotency index: (conversation, sender, `client_msg_id`).
    pub(super) by_client_id: HashMap<(ConversationId, Option<UserId>, String), usize>,
    /// The event log: the entry at index `i` is at position `i + 1` (dense from 1).
    pub(super) log: Vec<Entry>,
    /// Committed events not yet handed to the feed, in position order.
    pub(super) unfed: Vec<CommittedEvent>,
    /// Blocker → the users they block.
    pub(super) blocks: HashMap<UserId, HashSet<UserId>>,
    pub(super) last_seen: HashMap<UserId, Timestamp>,
    /// Each revoked user's revocation time (only ever moved later).
    pub(super) revocations: HashMap<UserId, Timestamp>,
    /// Durable consumers by name: their positions and leases.
    pub(super) consumers: HashMap<String, ConsumerRow>,
    /// When the last write completed (see `StoreHealth::last_commit`).
    pub(super) last_commit: Option<Instant>,
}

/// A conversation with its messages and its members' markers and settings.
#[derive(Debug)]
pub(super) struct Thread {
    pub(super) conversation: Conversation,
    /// Indexes into [`State::messages`]: the message at seq `s` is at `s - 1`.
    pub(super) seqs: Vec<usize>,
    /// The members' state, in the order of `conversation.members`.
    pub(super) members: [Member; 2],
}

/// One member's markers (with when each last moved) and own settings.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Member {
    pub(super) read: u64,
    pub(super) read_at: Option<Timestamp>,
    pub(super) delivered: u64,
    pub(super) delivered_at: Option<Timestamp>,
    pub(super) muted_until: Option<Timestamp>,
    pub(super) archived: bool,
}

impl Thread {
    /// The state of `user` and of the peer, if `user` is a member.
    pub(super) fn members_of(&self, user: UserId) -> Option<(Member, Member)> {
        let [first, second] = self.members;
        match self.conversation.members {
            [a, _] if a == user => Some((first, second)),
            [_, b] if b == user => Some((second, first)),
            _ => None,
        }
    }
}

/// One log entry: what the event is about, who may see it (kept per event, as the
/// mutation named it), who caused it, and what a delete removed.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) record: Record,
    pub(super) audience: Vec<UserId>,
    /// Who caused the event; `None` for the host.
    pub(super) actor: Option<UserId>,
    /// A delete's attachments, as the message had them before it.
    pub(super) removed: Vec<Attachment>,
}

impl Entry {
    /// An entry of `record` for `audience`, caused by `actor`.
    pub(super) fn new(record: Record, audience: Vec<UserId>, actor: Option<UserId>) -> Self {
        Self { record, audience, actor, removed: Vec::new() }
    }

    /// The entry, keeping the attachments a delete removed.
    pub(super) fn removing(mut self, attachments: Vec<Attachment>) -> Self {
        self.removed = attachments;
        self
    }
}

/// A durable consumer's stored position and lease.
#[derive(Debug)]
pub(super) struct ConsumerRow {
    pub(super) position: u64,
    /// Who holds it; `None` once released.
    pub(super) holder: Option<Uuid>,
    /// When the holder's lease ends (`None`: a lease too long for the clock, never).
    pub(super) lease_until: Option<Instant>,
}

/// What a log entry points at. Message and conversation events are rebuilt from the
/// current data when read, so a replayed event carries the current state (a tombstone, the
/// latest body, the current reactions and settings); a receipt carries the marker value
/// and time it moved to, a reaction its user, emoji and state.
#[derive(Clone, Debug)]
pub(super) enum Record {
    Created(ConversationId),
    MessageCreated(usize),
    MessageEdited(usize),
    MessageDeleted(usize),
    Receipt(Receipt),
    Reaction { at: usize, user_id: UserId, emoji: String, state: ReactionState },
    MemberUpdated(ConversationId, UserId),
    ConversationUpdated(ConversationId),
}

/// A `u64` count or seq as an index bound (saturating: past the end means the end).
pub(super) fn index(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

impl State {
    pub(super) fn message_at(&self, at: usize) -> Option<&Message> {
        self.messages.get(at)
    }

    /// The conversations `user` is a member of.
    pub(super) fn threads_of(&self, user: UserId) -> impl Iterator<Item = &Thread> {
        let ids = self.memberships.get(&user).into_iter().flatten();
        ids.filter_map(|id| self.conversations.get(id))
    }
}
