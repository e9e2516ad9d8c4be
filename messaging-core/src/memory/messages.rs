//! [`MessageStore`]: append with gap-free seqs and idempotency, history windows, edit,
//! delete, reactions, search by whole words, unread totals.

use async_trait::async_trait;

use super::MemoryStore;
use super::state::{Entry, Record, State, Thread, index};
use crate::error::{Error, Result};
use crate::id::{ConversationId, MessageId, UserId};
use crate::model::{Event, Message, ReactionChange, UnreadTotals};
use crate::search;
use crate::store::{
    Appended, DeleteMessage, Deleted, EditMessage, HistoryWindow, MessageStore, NewMessage,
    Reacted, ReactionUpdate, SearchQuery, apply_reaction,
};
use crate::time::Timestamp;

/// Whether `body` contains every term as a word, by the one definition of a word in
/// [`search`]. A term of several words (which [`search::query_terms`] never yields) must
/// match them in sequence, and a term without a word matches nothing, as in the SQLite
/// store.
fn matches(body: &str, terms: &[String]) -> bool {
    let words: Vec<String> = search::words(body).collect();
    terms.iter().all(|term| {
        let term: Vec<String> = search::words(term).collect();
        !term.is_empty() && words.windows(term.len()).any(|window| window == term.as_slice())
    })
}

impl State {
    /// Appends at `last_seq + 1`, or returns the message stored earlier under the same
    /// (conversation, sender, `client_msg_id`) in its current state, writing nothing.
    fn append(&mut self, new: NewMessage) -> Result<Appended> {
        let thread = self
            .conversations
            .get_mut(&new.conversation_id)
            .ok_or_else(|| Error::not_found("no such conversation"))?;
        let key = new.client_msg_id.clone().map(|k| (new.conversation_id, new.sender_id, k));
        if let Some(earlier) = key.as_ref().and_then(|k| self.by_client_id.get(k)) {
            let message = self.messages.get(*earlier).cloned();
            let message = message.ok_or_else(|| Error::unavailable("a lost message index"))?;
            return Ok(Appended { message, created: false });
        }
        if self.by_id.contains_key(&new.id) {
            return Err(Error::conflict("a message with this id already exists"));
        }
        // Seqs run from 1 without gaps: the message replied to exists when its seq is in
        // range (a tombstone may be replied to).
        if new.reply_to_seq.is_some_and(|seq| seq == 0 || seq > thread.conversation.last_seq) {
            return Err(Error::not_found("no message at reply_to_seq in this conversation"));
        }
        let seq = thread.conversation.last_seq + 1;
        let message = new.stored(seq);
        let at = self.messages.len();
        thread.seqs.push(at);
        thread.conversation.last_seq = seq;
        thread.conversation.last_message_at = Some(new.created_at);
        self.messages.push(message.clone());
        self.by_id.insert(new.id, at);
        if let Some(key) = key {
            self.by_client_id.insert(key, at);
        }
        let entry = Entry::new(Record::MessageCreated(at), new.audience, new.sender_id);
        self.log(entry, Event::MessageCreated(message.clone()));
        Ok(Appended { message, created: true })
    }

    fn message(&self, id: MessageId) -> Option<Message> {
        self.by_id.get(&id).and_then(|at| self.message_at(*at)).cloned()
    }

    fn find_by_client_msg_id(
        &self,
        conversation_id: ConversationId,
        sender_id: UserId,
        client_msg_id: &str,
    ) -> Option<Message> {
        let key = (conversation_id, Some(sender_id), client_msg_id.to_owned());
        self.by_client_id.get(&key).and_then(|at| self.message_at(*at)).cloned()
    }

    /// The window's messages closest to its anchor, ascending; an unknown conversation has
    /// none. Keyset access: a slice by seq, whatever the depth.
    fn history(&self, id: ConversationId, window: HistoryWindow, limit: usize) -> Vec<Message> {
        let Some(thread) = self.conversations.get(&id) else { return Vec::new() };
        let len = thread.seqs.len();
        // The window as a range of indexes (seq `s` is at index `s - 1`).
        let (start, end) = match window {
            HistoryWindow::Latest => (len.saturating_sub(limit), len),
            HistoryWindow::Before(seq) => {
                let end = index(seq.saturating_sub(1)).min(len);
                (end.saturating_sub(limit), end)
            }
            HistoryWindow::After(seq) => {
                let start = index(seq).min(len);
                (start, start.saturating_add(limit).min(len))
            }
        };
        let window = thread.seqs.get(start..end).unwrap_or_default();
        window.iter().filter_map(|at| self.message_at(*at)).cloned().collect()
    }

    fn edit(&mut self, edit: EditMessage) -> Result<Message> {
        let not_found = || Error::not_found("no such message");
        let at = *self.by_id.get(&edit.id).ok_or_else(not_found)?;
        let message = self.messages.get_mut(at).ok_or_else(not_found)?;
        if message.deleted {
            return Err(Error::conflict("the message was deleted"));
        }
        message.body = edit.body;
        message.edited_at = Some(edit.edited_at);
        let message = message.clone();
        let entry = Entry::new(Record::MessageEdited(at), edit.audience, edit.actor);
        self.log(entry, Event::MessageEdited(message.clone()));
        Ok(message)
    }

    /// Makes a tombstone, once. It leaves search because search skips tombstones.
    fn delete(&mut self, delete: DeleteMessage) -> Result<Deleted> {
        let not_found = || Error::not_found("no such message");
        let at = *self.by_id.get(&delete.id).ok_or_else(not_found)?;
        let message = self.messages.get_mut(at).ok_or_else(not_found)?;
        if message.deleted {
            return Ok(Deleted { message: message.clone(), changed: false });
        }
        message.deleted = true;
        message.body.clear();
        message.metadata = None;
        let removed = std::mem::take(&mut message.attachments);
        message.reactions.clear();
        let message = message.clone();
        let entry = Entry::new(Record::MessageDeleted(at), delete.audience, delete.actor);
        self.log(entry.removing(removed), Event::MessageDeleted(message.clone()));
        Ok(Deleted { message, changed: true })
    }

    fn react(&mut self, update: ReactionUpdate) -> Result<Reacted> {
        let not_found = || Error::not_found("no such message");
        let at = *self.by_id.get(&update.message_id).ok_or_else(not_found)?;
        let message = self.messages.get_mut(at).ok_or_else(not_found)?;
        if message.deleted {
            return Err(Error::conflict("the message was deleted"));
        }
        let (user, state) = (update.user_id, update.state);
        let changed = apply_reaction(
            &mut message.reactions,
            user,
            &update.emoji,
            state,
            update.max_per_user,
        )?;
        let message = message.clone();
        if changed {
            let event = Event::Reaction(ReactionChange {
                message: message.clone(),
                user_id: user,
                emoji: update.emoji.clone(),
                state,
            });
            let record = Record::Reaction { at, user_id: user, emoji: update.emoji, state };
            self.log(Entry::new(record, update.audience, Some(user)), event);
        }
        Ok(Reacted { message, changed })
    }

    /// The live messages of the user's conversations (or of the one asked for) holding
    /// every term, newest (last appended) first.
    fn search(&self, query: &SearchQuery) -> Vec<Message> {
        let in_scope = |t: &&Thread| query.conversation_id.is_none_or(|c| c == t.conversation.id);
        let threads = self.threads_of(query.user).filter(in_scope);
        let mut candidates: Vec<usize> = threads.flat_map(|t| t.seqs.iter().copied()).collect();
        candidates.sort_unstable_by(|a, b| b.cmp(a));
        let hits = candidates.into_iter().filter_map(|at| self.message_at(at));
        let hits = hits.filter(|m| !m.deleted && matches(&m.body, &query.terms));
        hits.take(query.limit).cloned().collect()
    }

    /// The peer's messages after `user`'s read marker that are not deleted.
    pub(super) fn unread_in(&self, thread: &Thread, user: UserId) -> u64 {
        let Some((mine, _)) = thread.members_of(user) else { return 0 };
        let after_marker = thread.seqs.iter().skip(index(mine.read));
        let unread = after_marker
            .filter_map(|at| self.message_at(*at))
            .filter(|m| m.sender_id != Some(user) && !m.deleted);
        unread.count() as u64
    }

    fn unread(&self, user: UserId, now: Timestamp) -> UnreadTotals {
        let mut totals = UnreadTotals::default();
        let muted = |t: &&Thread| {
            t.members_of(user).is_some_and(|(mine, _)| mine.muted_until.is_some_and(|u| u > now))
        };
        for thread in self.threads_of(user).filter(|t| !muted(t)) {
            let unread = self.unread_in(thread, user);
            totals.total += unread;
            totals.conversations += u64::from(unread > 0);
        }
        totals
    }
}

#[async_trait]
impl MessageStore for MemoryStore {
    async fn append(&self, new: NewMessage) -> Result<Appended> {
        self.write(|state| state.append(new))
    }

    async fn message(&self, id: MessageId) -> Result<Option<Message>> {
        Ok(self.read(|state| state.message(id)))
    }

    async fn find_by_client_msg_id(
        &self,
        conversation_id: ConversationId,
        sender_id: UserId,
        client_msg_id: &str,
    ) -> Result<Option<Message>> {
        Ok(self
            .read(|state| state.find_by_client_msg_id(conversation_id, sender_id, client_msg_id)))
    }

    async fn history(
        &self,
        conversation_id: ConversationId,
        window: HistoryWindow,
        limit: usize,
    ) -> Result<Vec<Message>> {
        Ok(self.read(|state| state.history(conversation_id, window, limit)))
    }

    async fn edit(&self, edit: EditMessage) -> Result<Message> {
        self.write(|state| state.edit(edit))
    }

    async fn delete(&self, delete: DeleteMessage) -> Result<Deleted> {
        self.write(|state| state.delete(delete))
    }

    async fn react(&self, update: ReactionUpdate) -> Result<Reacted> {
        self.write(|state| state.react(update))
    }

    async fn search(&self, query: SearchQuery) -> Result<Vec<Message>> {
        Ok(self.read(|state| state.search(&query)))
    }

    async fn unread(&self, user: UserId, now: Timestamp) -> Result<UnreadTotals> {
        Ok(self.read(|state| state.unread(user, now)))
    }
}
