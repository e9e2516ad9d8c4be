//! [`EventLog`]: positions dense from 1 in commit order, the audience kept per event,
//! events read back in their current state; attaching a sink to the feed (see `feed`).

use std::sync::Arc;

use async_trait::async_trait;

use super::MemoryStore;
use super::state::{Entry, Record, State, index};
use crate::error::Result;
use crate::id::UserId;
use crate::model::{CommittedEvent, Event, LoggedEvent, MemberSettings, ReactionChange};
use crate::store::{EventLog, FeedSink};

impl State {
    /// The newest log position (0 for an empty log).
    pub(super) fn head(&self) -> u64 {
        self.log.len() as u64
    }

    /// Writes one event at the next position, keeping its audience, actor and removed
    /// attachments, and queues it for the feed. The last step of a write: nothing fails
    /// after it.
    pub(super) fn log(&mut self, entry: Entry, event: Event) {
        let position = self.head() + 1;
        let audience = entry.audience.clone();
        self.log.push(entry);
        self.unfed.push(CommittedEvent { logged: LoggedEvent { position, event }, audience });
    }

    /// Takes the committed events the feed has not been handed yet.
    pub(super) fn take_unfed(&mut self) -> Vec<CommittedEvent> {
        std::mem::take(&mut self.unfed)
    }

    /// Events visible to `user` with `after < position <= up_to`, ascending, at most
    /// `limit`, each in its subject's current state.
    fn read_events(&self, user: UserId, after: u64, up_to: u64, limit: usize) -> Vec<LoggedEvent> {
        let range = self.log.get(index(after)..index(up_to).min(self.log.len()));
        let entries = range.unwrap_or_default().iter().zip(after.saturating_add(1)..);
        let visible = entries.filter(|(entry, _)| entry.audience.contains(&user));
        let events = visible.filter_map(|(entry, position)| {
            Some(LoggedEvent { position, event: self.current(&entry.record)? })
        });
        events.take(limit).collect()
    }

    /// The event of a log entry, with its subject in its current state.
    pub(super) fn current(&self, record: &Record) -> Option<Event> {
        Some(match record {
            Record::Created(id) => Event::ConversationCreated(self.conversation(*id)?),
            Record::MessageCreated(at) => Event::MessageCreated(self.message_at(*at)?.clone()),
            Record::MessageEdited(at) => Event::MessageEdited(self.message_at(*at)?.clone()),
            Record::MessageDeleted(at) => Event::MessageDeleted(self.message_at(*at)?.clone()),
            Record::Receipt(receipt) => Event::Receipt(*receipt),
            Record::Reaction { at, user_id, emoji, state } => Event::Reaction(ReactionChange {
                message: self.message_at(*at)?.clone(),
                user_id: *user_id,
                emoji: emoji.clone(),
                state: *state,
            }),
            Record::MemberUpdated(id, user) => {
                Event::MemberUpdated(self.member_settings(*id, *user)?)
            }
            Record::ConversationUpdated(id) => Event::ConversationUpdated(self.conversation(*id)?),
        })
    }

    /// A member's current settings.
    pub(super) fn member_settings(
        &self,
        id: crate::id::ConversationId,
        user: UserId,
    ) -> Option<MemberSettings> {
        let (mine, _) = self.conversations.get(&id)?.members_of(user)?;
        Some(MemberSettings {
            conversation_id: id,
            user_id: user,
            muted_until: mine.muted_until,
            archived: mine.archived,
        })
    }
}

#[async_trait]
impl EventLog for MemoryStore {
    async fn head(&self) -> Result<u64> {
        Ok(self.read(State::head))
    }

    async fn read_events(
        &self,
        user: UserId,
        after: u64,
        up_to: u64,
        limit: usize,
    ) -> Result<Vec<LoggedEvent>> {
        Ok(self.read(|state| state.read_events(user, after, up_to, limit)))
    }

    /// Starts the sink at the head read under the lock; every later commit reaches it.
    async fn attach_feed(&self, sink: Arc<dyn FeedSink>) -> Result<()> {
        self.feed.attach(&sink, || {
            let mut state = self.lock();
            (state.head(), state.take_unfed())
        });
        Ok(())
    }
}
