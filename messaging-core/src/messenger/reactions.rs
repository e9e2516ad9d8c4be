//! Reactions: a member puts an emoji on a message of their conversation or takes it off.
//!
//! The summary on the message is the store's to keep (atomically, under concurrent
//! reactions); the rules (membership, tombstones, blocks, the per-user bound) are here.

use super::{Messenger, not_found};
use crate::error::{Error, Result};
use crate::id::{MessageId, UserId};
use crate::model::{Message, ReactionState};
use crate::store::ReactionUpdate;
use crate::validate;

impl Messenger {
    /// `actor` reacts to message `id` with `emoji` (`Added`) or takes that reaction back
    /// (`Removed`); returns the message in its current state.
    ///
    /// The emoji is checked first (`Invalid`); then the message must be in a conversation
    /// of `actor`'s (`NotFound`), not deleted (`Conflict`), and neither member may block
    /// the other (`Forbidden`). Adding a reaction `actor` has, or removing one they do not,
    /// changes nothing and emits nothing. A new emoji beyond `max_reactions_per_user` on
    /// the message: `Conflict`. Reactions are not activity and change no unread count.
    pub async fn react(
        &self,
        actor: UserId,
        id: MessageId,
        emoji: &str,
        state: ReactionState,
    ) -> Result<Message> {
        validate::emoji(emoji)?;
        // A message never moves: its conversation comes from the cache when it was sent
        // or read here before, and the store refuses a tombstone (or an unknown id) in the
        // reaction's own transaction either way.
        let home = match self.inner.homes.get(&id) {
            Some(home) => home,
            None => {
                let message = self.inner.store.message(id).await?.ok_or_else(not_found)?;
                self.member_conversation(actor, message.conversation_id).await?;
                if message.deleted {
                    return Err(Error::conflict("the message was deleted"));
                }
                self.inner.homes.put(id, message.conversation_id);
                message.conversation_id
            }
        };
        let conversation = self.member_conversation(actor, home).await?;
        let peer = conversation.peer_of(actor).ok_or_else(not_found)?;
        if let Err(refusal) = self.check_not_blocked(actor, peer).await {
            // A tombstone answers `Conflict` before a block's `Forbidden`, whether or not
            // the message's conversation came from the cache (which skipped that check).
            if self.inner.store.message(id).await?.is_some_and(|m| m.deleted) {
                return Err(Error::conflict("the message was deleted"));
            }
            return Err(refusal);
        }
        let reacted = self
            .inner
            .store
            .react(ReactionUpdate {
                message_id: id,
                user_id: actor,
                emoji: emoji.to_owned(),
                state,
                max_per_user: self.inner.limits.max_reactions_per_user,
                audience: conversation.members.to_vec(),
            })
            .await?;
        Ok(reacted.message)
    }
}
