//! [`ConversationStore`]: race-free `open_direct`, the per-user list, members' markers.

use async_trait::async_trait;

use super::MemoryStore;
use super::state::{Markers, Record, State, Thread};
use crate::error::{Error, Result};
use crate::id::{ConversationId, UserId};
use crate::model::{
    Conversation, ConversationKind, ConversationSummary, Event, Receipt, ReceiptKind,
};
use crate::store::{
    ConversationPage, ConversationStore, MarkUpdate, Marked, NewConversation, Opened,
};

impl State {
    /// Finds or creates, in one step under the store's lock: of concurrent opens of one
    /// (pair, context), exactly one creates. Finding writes nothing.
    fn open_direct(&mut self, new: NewConversation) -> Result<Opened> {
        let mut members = new.members;
        members.sort();
        let context = new.context.filter(|c| !c.is_empty());
        let key = (members[0], members[1], context.clone());
        if let Some(thread) = self.direct.get(&key).and_then(|id| self.conversations.get(id)) {
            return Ok(Opened { conversation: thread.conversation.clone(), created: false });
        }
        if self.conversations.contains_key(&new.id) {
            return Err(Error::conflict("a conversation with this id already exists"));
        }
        let conversation = Conversation {
            id: new.id,
            kind: ConversationKind::Direct,
            context,
            members,
            created_at: new.created_at,
            last_message_at: None,
            last_seq: 0,
        };
        let thread = Thread {
            conversation: conversation.clone(),
            seqs: Vec::new(),
            markers: [Markers::default(); 2],
        };
        self.conversations.insert(new.id, thread);
        self.direct.insert(key, new.id);
        for member in members {
            self.memberships.entry(member).or_default().insert(new.id);
        }
        let event = Event::ConversationCreated(conversation.clone());
        self.log(Record::Created(new.id), event, new.audience);
        Ok(Opened { conversation, created: true })
    }

    pub(super) fn conversation(&self, id: ConversationId) -> Option<Conversation> {
        self.conversations.get(&id).map(|t| t.conversation.clone())
    }

    fn find_direct(&self, a: UserId, b: UserId, context: Option<&str>) -> Option<Conversation> {
        let key = (a.min(b), a.max(b), context.filter(|c| !c.is_empty()).map(str::to_owned));
        self.direct.get(&key).and_then(|id| self.conversation(*id))
    }

    /// Newest activity first, ties by id descending, strictly after `page.before`.
    fn conversations(&self, page: ConversationPage) -> Vec<ConversationSummary> {
        let key = |t: &Thread| (t.conversation.activity_at(), t.conversation.id);
        let mut threads: Vec<&Thread> = self
            .threads_of(page.user)
            .filter(|t| page.before.is_none_or(|before| key(t) < (before.at, before.id)))
            .collect();
        threads.sort_by_key(|t| std::cmp::Reverse(key(t)));
        threads.truncate(page.limit);
        threads.into_iter().filter_map(|t| self.summary(t, page.user)).collect()
    }

    fn summary(&self, thread: &Thread, user: UserId) -> Option<ConversationSummary> {
        let (mine, peers) = thread.markers_of(user)?;
        Some(ConversationSummary {
            conversation: thread.conversation.clone(),
            last_message: thread.seqs.last().and_then(|at| self.message_at(*at)).cloned(),
            unread_count: self.unread_in(thread, user),
            read_seq: mine.read,
            peer_read_seq: peers.read,
            peer_delivered_seq: peers.delivered,
        })
    }

    /// Moves a marker forward only, clamped to `last_seq`; an event only when it moved.
    fn mark(&mut self, update: MarkUpdate) -> Result<Marked> {
        let not_found = || Error::not_found("no such conversation");
        let thread = self.conversations.get_mut(&update.conversation_id).ok_or_else(not_found)?;
        let member = thread.conversation.members.iter().position(|m| *m == update.user_id);
        let markers = member.and_then(|i| thread.markers.get_mut(i)).ok_or_else(not_found)?;
        let marker = match update.kind {
            ReceiptKind::Read => &mut markers.read,
            ReceiptKind::Delivered => &mut markers.delivered,
        };
        let target = update.up_to_seq.min(thread.conversation.last_seq);
        if target <= *marker {
            return Ok(Marked { seq: *marker, moved: false });
        }
        *marker = target;
        let receipt = Receipt {
            conversation_id: update.conversation_id,
            user_id: update.user_id,
            kind: update.kind,
            seq: target,
        };
        self.log(Record::Receipt(receipt), Event::Receipt(receipt), update.audience);
        Ok(Marked { seq: target, moved: true })
    }

    /// Every peer of `user`, once each.
    fn peers(&self, user: UserId) -> Vec<UserId> {
        let mut peers: Vec<UserId> =
            self.threads_of(user).filter_map(|t| t.conversation.peer_of(user)).collect();
        peers.sort_unstable();
        peers.dedup();
        peers
    }

    /// Those of `candidates` who are peers of `user`, once each, in the order given.
    fn peers_among(&self, user: UserId, candidates: &[UserId]) -> Vec<UserId> {
        let peers = self.peers(user);
        let mut found = Vec::new();
        for candidate in candidates {
            if peers.binary_search(candidate).is_ok() && !found.contains(candidate) {
                found.push(*candidate);
            }
        }
        found
    }
}

#[async_trait]
impl ConversationStore for MemoryStore {
    async fn open_direct(&self, new: NewConversation) -> Result<Opened> {
        self.write(|state| state.open_direct(new))
    }

    async fn conversation(&self, id: ConversationId) -> Result<Option<Conversation>> {
        Ok(self.read(|state| state.conversation(id)))
    }

    async fn find_direct(
        &self,
        a: UserId,
        b: UserId,
        context: Option<&str>,
    ) -> Result<Option<Conversation>> {
        Ok(self.read(|state| state.find_direct(a, b, context)))
    }

    async fn conversations(&self, page: ConversationPage) -> Result<Vec<ConversationSummary>> {
        Ok(self.read(|state| state.conversations(page)))
    }

    async fn mark(&self, update: MarkUpdate) -> Result<Marked> {
        self.write(|state| state.mark(update))
    }

    async fn peers(&self, user: UserId) -> Result<Vec<UserId>> {
        Ok(self.read(|state| state.peers(user)))
    }

    async fn peers_among(&self, user: UserId, candidates: &[UserId]) -> Result<Vec<UserId>> {
        Ok(self.read(|state| state.peers_among(user, candidates)))
    }
}
