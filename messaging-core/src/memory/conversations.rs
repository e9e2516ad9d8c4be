//! [`ConversationStore`]: race-free `open_direct`, the per-user list and a context's list,
//! members' markers and settings, the host's metadata.

use async_trait::async_trait;

use super::MemoryStore;
use super::state::{Entry, Member, Record, State, Thread};
use crate::error::{Error, Result};
use crate::id::{ConversationId, UserId};
use crate::model::{
    ActivityKey, Conversation, ConversationKind, ConversationSummary, Event, Receipt, ReceiptKind,
};
use crate::store::{
    ContextPage, ConversationPage, ConversationStore, MarkUpdate, Marked, MemberChange,
    MemberUpdate, MemberUpdated, MetadataUpdate, MetadataUpdated, NewConversation, Opened,
};

/// A conversation's place in newest-activity-first order.
fn activity(conversation: &Conversation) -> (crate::time::Timestamp, ConversationId) {
    (conversation.activity_at(), conversation.id)
}

/// Whether a conversation comes strictly after `before` in that order.
fn after(conversation: &Conversation, before: Option<ActivityKey>) -> bool {
    before.is_none_or(|before| activity(conversation) < (before.at, before.id))
}

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
            metadata: new.metadata,
        };
        let thread = Thread {
            conversation: conversation.clone(),
            seqs: Vec::new(),
            members: [Member::default(); 2],
        };
        self.conversations.insert(new.id, thread);
        self.direct.insert(key, new.id);
        for member in members {
            self.memberships.entry(member).or_default().insert(new.id);
        }
        let event = Event::ConversationCreated(conversation.clone());
        self.log(Entry::new(Record::Created(new.id), new.audience, new.actor), event);
        Ok(Opened { conversation, created: true })
    }

    pub(super) fn conversation(&self, id: ConversationId) -> Option<Conversation> {
        self.conversations.get(&id).map(|t| t.conversation.clone())
    }

    fn find_direct(&self, a: UserId, b: UserId, context: Option<&str>) -> Option<Conversation> {
        let key = (a.min(b), a.max(b), context.filter(|c| !c.is_empty()).map(str::to_owned));
        self.direct.get(&key).and_then(|id| self.conversation(*id))
    }

    /// Newest activity first, ties by id descending, strictly after `page.before`; only
    /// the archived or only the other ones; only `page.context`'s when given.
    fn conversations(&self, page: &ConversationPage) -> Vec<ConversationSummary> {
        let listed = |t: &&Thread| {
            let archived = t.members_of(page.user).is_some_and(|(mine, _)| mine.archived);
            archived == page.archived
                && page.context.as_ref().is_none_or(|c| t.conversation.context.as_ref() == Some(c))
                && after(&t.conversation, page.before)
        };
        let mut threads: Vec<&Thread> = self.threads_of(page.user).filter(listed).collect();
        threads.sort_by_key(|t| std::cmp::Reverse(activity(&t.conversation)));
        threads.truncate(page.limit);
        threads.into_iter().filter_map(|t| self.summary_of(t, page.user)).collect()
    }

    fn summary_of(&self, thread: &Thread, user: UserId) -> Option<ConversationSummary> {
        let (mine, peers) = thread.members_of(user)?;
        Some(ConversationSummary {
            conversation: thread.conversation.clone(),
            last_message: thread.seqs.last().and_then(|at| self.message_at(*at)).cloned(),
            unread_count: self.unread_in(thread, user),
            read_seq: mine.read,
            peer_read_seq: peers.read,
            peer_delivered_seq: peers.delivered,
            muted_until: mine.muted_until,
            archived: mine.archived,
            peer_read_at: peers.read_at,
            peer_delivered_at: peers.delivered_at,
        })
    }

    /// Every conversation of `page.context`, newest activity first. A scan here; a
    /// database store needs an index on (context, activity).
    fn conversations_by_context(&self, page: &ContextPage) -> Vec<Conversation> {
        let mut found: Vec<&Conversation> = self
            .conversations
            .values()
            .map(|t| &t.conversation)
            .filter(|c| c.context.as_deref() == Some(&page.context) && after(c, page.before))
            .collect();
        found.sort_by_key(|c| std::cmp::Reverse(activity(c)));
        found.into_iter().take(page.limit).cloned().collect()
    }

    /// The state of `user` in conversation `id`, to change; `NotFound` unless a member.
    fn member_mut(&mut self, id: ConversationId, user: UserId) -> Result<(&mut Thread, usize)> {
        let not_found = || Error::not_found("no such conversation");
        let thread = self.conversations.get_mut(&id).ok_or_else(not_found)?;
        let index = thread.conversation.members.iter().position(|m| *m == user);
        Ok((thread, index.ok_or_else(not_found)?))
    }

    /// Moves a marker forward only, clamped to `last_seq`; an event only when it moved.
    fn mark(&mut self, update: MarkUpdate) -> Result<Marked> {
        let (thread, index) = self.member_mut(update.conversation_id, update.user_id)?;
        let last_seq = thread.conversation.last_seq;
        let member = &mut thread.members[index];
        let (marker, marked_at) = match update.kind {
            ReceiptKind::Read => (&mut member.read, &mut member.read_at),
            ReceiptKind::Delivered => (&mut member.delivered, &mut member.delivered_at),
        };
        let target = update.up_to_seq.min(last_seq);
        if target <= *marker {
            return Ok(Marked { seq: *marker, at: *marked_at, moved: false });
        }
        *marker = target;
        *marked_at = Some(update.at);
        let receipt = Receipt {
            conversation_id: update.conversation_id,
            user_id: update.user_id,
            kind: update.kind,
            seq: target,
            at: update.at,
        };
        let entry = Entry::new(Record::Receipt(receipt), update.audience, Some(update.user_id));
        self.log(entry, Event::Receipt(receipt));
        Ok(Marked { seq: target, at: Some(update.at), moved: true })
    }

    /// A change that leaves the settings as they read at `now` writes nothing.
    fn update_member(&mut self, update: MemberUpdate) -> Result<MemberUpdated> {
        let (thread, index) = self.member_mut(update.conversation_id, update.user_id)?;
        let member = &mut thread.members[index];
        let muted_now = member.muted_until.filter(|until| *until > update.now);
        let changed = match update.change {
            MemberChange::Mute(until) if until != muted_now => {
                member.muted_until = until;
                true
            }
            MemberChange::Archive(archived) if archived != member.archived => {
                member.archived = archived;
                true
            }
            MemberChange::Mute(_) | MemberChange::Archive(_) => false,
        };
        let (id, user) = (update.conversation_id, update.user_id);
        let settings = self.member_settings(id, user).ok_or_else(|| Error::not_found("gone"))?;
        if changed {
            let entry = Entry::new(Record::MemberUpdated(id, user), update.audience, Some(user));
            self.log(entry, Event::MemberUpdated(settings));
        }
        Ok(MemberUpdated { settings, changed })
    }

    /// The same metadata (as a JSON value) writes nothing.
    fn set_metadata(&mut self, update: MetadataUpdate) -> Result<MetadataUpdated> {
        let not_found = || Error::not_found("no such conversation");
        let thread = self.conversations.get_mut(&update.conversation_id).ok_or_else(not_found)?;
        if thread.conversation.metadata == update.metadata {
            return Ok(MetadataUpdated {
                conversation: thread.conversation.clone(),
                changed: false,
            });
        }
        thread.conversation.metadata = update.metadata;
        let conversation = thread.conversation.clone();
        // The host's call: no actor.
        let entry = Entry::new(Record::ConversationUpdated(conversation.id), update.audience, None);
        self.log(entry, Event::ConversationUpdated(conversation.clone()));
        Ok(MetadataUpdated { conversation, changed: true })
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
        Ok(self.read(|state| state.conversations(&page)))
    }

    async fn summary(
        &self,
        user: UserId,
        id: ConversationId,
    ) -> Result<Option<ConversationSummary>> {
        Ok(self.read(|state| state.conversations.get(&id).and_then(|t| state.summary_of(t, user))))
    }

    async fn conversations_by_context(&self, page: ContextPage) -> Result<Vec<Conversation>> {
        Ok(self.read(|state| state.conversations_by_context(&page)))
    }

    async fn mark(&self, update: MarkUpdate) -> Result<Marked> {
        self.write(|state| state.mark(update))
    }

    async fn update_member(&self, update: MemberUpdate) -> Result<MemberUpdated> {
        self.write(|state| state.update_member(update))
    }

    async fn set_metadata(&self, update: MetadataUpdate) -> Result<MetadataUpdated> {
        self.write(|state| state.set_metadata(update))
    }

    async fn peers(&self, user: UserId) -> Result<Vec<UserId>> {
        Ok(self.read(|state| state.peers(user)))
    }

    async fn peers_among(&self, user: UserId, candidates: &[UserId]) -> Result<Vec<UserId>> {
        Ok(self.read(|state| state.peers_among(user, candidates)))
    }
}
