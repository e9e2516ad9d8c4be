//! A member's own view of one conversation: its summary, and the settings only that
//! member sees (mute, archive).
//!
//! Expired mutes are settled here, on read ([`ConversationSummary::settled`]): nothing is
//! written or emitted when a mute's time passes.

use super::{Messenger, not_found};
use crate::error::{Error, Result};
use crate::id::{ConversationId, UserId};
use crate::model::ConversationSummary;
use crate::store::{MemberChange, MemberUpdate};
use crate::time::Timestamp;

impl Messenger {
    /// Conversation `id` as `actor` sees it in their list; `NotFound` unless a member.
    pub async fn conversation(
        &self,
        actor: UserId,
        id: ConversationId,
    ) -> Result<ConversationSummary> {
        self.member_conversation(actor, id).await?;
        self.summary(actor, id).await
    }

    /// The summary of `id` for `user`, read now.
    pub(super) async fn summary(
        &self,
        user: UserId,
        id: ConversationId,
    ) -> Result<ConversationSummary> {
        let summary = self.inner.store.summary(user, id).await?.ok_or_else(not_found)?;
        Ok(summary.settled(Timestamp::now()))
    }

    /// `actor` mutes conversation `id` until `until` (`None`: unmutes). While muted it is
    /// left out of `actor`'s unread totals (its own count is unchanged). `until` not in the
    /// future: `Invalid`. A change emits `member.updated` to `actor`'s sessions only; one
    /// that changes nothing emits nothing. Blocks do not matter.
    pub async fn mute(
        &self,
        actor: UserId,
        id: ConversationId,
        until: Option<Timestamp>,
    ) -> Result<ConversationSummary> {
        let now = Timestamp::now();
        if until.is_some_and(|until| until <= now) {
            return Err(Error::invalid("until must be in the future (or null to unmute)"));
        }
        self.update_member(actor, id, MemberChange::Mute(until), now).await
    }

    /// `actor` archives (`true`) or unarchives conversation `id`. An archived conversation
    /// is listed only when archived ones are asked for, still counts as unread (unless
    /// muted), and stays archived when messages arrive. Emits as [`Messenger::mute`] does.
    pub async fn archive(
        &self,
        actor: UserId,
        id: ConversationId,
        archived: bool,
    ) -> Result<ConversationSummary> {
        self.update_member(actor, id, MemberChange::Archive(archived), Timestamp::now()).await
    }

    async fn update_member(
        &self,
        actor: UserId,
        id: ConversationId,
        change: MemberChange,
        now: Timestamp,
    ) -> Result<ConversationSummary> {
        self.member_conversation(actor, id).await?;
        self.inner
            .store
            .update_member(MemberUpdate {
                conversation_id: id,
                user_id: actor,
                change,
                now,
                audience: vec![actor],
            })
            .await?;
        self.summary(actor, id).await
    }
}
