//! [`ServiceHandle`]: what the host application does as itself, not as one of its users.
//!
//! A marketplace opens the conversation when an order is placed, a dating app when two
//! users match; both post "Match created" or "Your order shipped" as the application, read
//! any conversation for support, moderate, and act on a user's behalf. Every method here
//! runs the same steps as the user ops of [`Messenger`] (validation, blocks, the store
//! calls and their events), with the differences the protocol names: the access policy is
//! not asked, membership is not required to read, and system messages have no sender.

use super::{Messenger, check_pair, not_found};
use crate::error::{Error, Result};
use crate::id::{ConversationId, MessageId, UserId};
use crate::model::{ActivityKey, Conversation, Message};
use crate::pages::{BlocksPage, ContextConversationsPage, ConversationsPage, HistoryPage, Sent};
use crate::requests::{ConversationsQuery, HistoryQuery, SendMessage, SendTarget};
use crate::store::{ContextPage, ConversationPage, HistoryWindow, MetadataUpdate, Opened};
use crate::time::Timestamp;

/// Rows per read while walking a user's conversations and histories.
const PAGE: usize = 100;
use crate::validate;

impl Messenger {
    /// The host's handle: acts as the application itself (see [`ServiceHandle`]).
    #[must_use]
    pub fn service(&self) -> ServiceHandle {
        ServiceHandle { messenger: self.clone() }
    }
}

/// The host application's own operations over a [`Messenger`]'s store: open between two
/// users, post system messages, read and moderate any conversation, act for a user.
///
/// No user is authenticated here: hand it only to trusted code (the host's backend; the
/// server's service API, behind its service keys). Cheap to clone.
///
/// ```
/// # async fn demo(messenger: messaging_core::Messenger) -> messaging_core::Result<()> {
/// use messaging_core::{SendMessage, UserId};
///
/// let (buyer, seller) = (UserId::new(), UserId::new());
/// let service = messenger.service();
/// let opened = service.open(buyer, seller, Some("order:7"), None).await?;
/// let id = opened.conversation.id;
/// service.post(SendMessage::to_conversation(id, "Your order shipped")).await?;
/// assert_eq!(messenger.unread(buyer).await?.total, 1);
/// assert_eq!(messenger.unread(seller).await?.total, 1);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct ServiceHandle {
    messenger: Messenger,
}

impl ServiceHandle {
    /// Opens (or finds, unchanged) the direct conversation of two distinct users about
    /// `context`, created with `metadata`. The access policy is not asked; a block between
    /// them either way: `Forbidden`.
    pub async fn open(
        &self,
        a: UserId,
        b: UserId,
        context: Option<&str>,
        metadata: Option<serde_json::Value>,
    ) -> Result<Opened> {
        let m = &self.messenger;
        let context = validate::context(context, m.inner.limits.max_context_bytes)?;
        if let Some(metadata) = &metadata {
            validate::metadata(metadata, m.inner.limits.max_metadata_bytes)?;
        }
        check_pair(a, b)?;
        m.check_not_blocked(a, b).await?;
        m.find_or_create([a, b], context, metadata, None).await
    }

    /// Posts a system message (no sender, `kind: system`) to the conversation `message` is
    /// addressed to ([`SendMessage::to_conversation`]; a peer target: `Invalid`). Validated
    /// as a send; neither the policy nor blocks apply. Unread for both members; no user can
    /// edit or delete it. A retry with the same `client_msg_id` (system messages have their
    /// own key space per conversation) returns the original with `created: false`.
    pub async fn post(&self, message: SendMessage) -> Result<Sent> {
        let m = &self.messenger;
        m.validate_send(&message)?;
        let SendTarget::Conversation(id) = message.to else {
            return Err(Error::invalid("a system message goes to an existing conversation"));
        };
        let conversation = self.conversation(id).await?;
        m.append(&conversation, None, message).await
    }

    /// Sends `message` as `member`: exactly [`Messenger::send`] for that user (policy and
    /// blocks included; a conversation they are not in: `NotFound`).
    pub async fn post_as(&self, member: UserId, message: SendMessage) -> Result<Sent> {
        self.messenger.send(member, message).await
    }

    /// The conversation `id` in its current state (no per-member fields); `NotFound`.
    pub async fn conversation(&self, id: ConversationId) -> Result<Conversation> {
        self.messenger.inner.store.conversation(id).await?.ok_or_else(not_found)
    }

    /// Replaces the conversation's metadata (`None` clears it), validated as a message's;
    /// a change emits `conversation.updated` to both members.
    pub async fn set_metadata(
        &self,
        id: ConversationId,
        metadata: Option<serde_json::Value>,
    ) -> Result<Conversation> {
        let m = &self.messenger;
        if let Some(metadata) = &metadata {
            validate::metadata(metadata, m.inner.limits.max_metadata_bytes)?;
        }
        let conversation = self.conversation(id).await?;
        let updated = m
            .inner
            .store
            .set_metadata(MetadataUpdate {
                conversation_id: id,
                metadata,
                audience: conversation.members.to_vec(),
            })
            .await?;
        Ok(updated.conversation)
    }

    /// A page of any conversation's history (no membership needed), as
    /// [`Messenger::history`] pages it.
    pub async fn history(&self, id: ConversationId, query: HistoryQuery) -> Result<HistoryPage> {
        let m = &self.messenger;
        let (limit, window) = m.history_window(query)?;
        self.conversation(id).await?;
        m.read_history(id, window, limit).await
    }

    /// Every conversation with exactly this context (all inquiries on one listing), newest
    /// activity first; `before` is the `next` of the previous page.
    pub async fn conversations_by_context(
        &self,
        context: &str,
        limit: Option<usize>,
        before: Option<&str>,
    ) -> Result<ContextConversationsPage> {
        let m = &self.messenger;
        let limit = validate::page("limit", limit, m.inner.limits.conversations_page)?;
        let before = before.map(ActivityKey::decode).transpose()?;
        let context = m.exact_context(context)?;
        let page = ContextPage { context, before, limit: limit + 1 };
        let rows = m.inner.store.conversations_by_context(page).await?;
        let (conversations, next) = m.cut_list(rows, limit, ActivityKey::of);
        Ok(ContextConversationsPage { conversations, next })
    }

    /// `user`'s conversation list as that user sees it ([`Messenger::conversations`]).
    pub async fn user_conversations(
        &self,
        user: UserId,
        query: ConversationsQuery,
    ) -> Result<ConversationsPage> {
        self.messenger.conversations(user, query).await
    }

    /// `user`'s unread totals ([`Messenger::unread`]).
    pub async fn unread(&self, user: UserId) -> Result<crate::UnreadTotals> {
        self.messenger.unread(user).await
    }

    /// Moderation: message `id`, whoever sent it (system messages included), becomes a
    /// tombstone and `message.deleted` goes to both members. Deleting twice returns the
    /// tombstone and emits nothing. Unknown: `NotFound`.
    pub async fn delete_message(&self, id: MessageId) -> Result<Message> {
        let m = &self.messenger;
        let message = m.inner.store.message(id).await?.ok_or_else(not_found)?;
        let conversation = self.conversation(message.conversation_id).await?;
        m.remove(message, &conversation, None).await
    }

    /// Account deletion: every message `user` sent becomes a tombstone, with one
    /// `message.deleted` each (to both members, so their apps drop the content); returns
    /// how many were deleted now. It walks the user's conversations (archived ones
    /// included) and their histories, so it takes time in proportion to them; dropped
    /// midway (an answer bound), what it deleted stays deleted and a second call finishes
    /// the rest.
    pub async fn delete_user_messages(&self, user: UserId) -> Result<u64> {
        let m = &self.messenger;
        let store = &m.inner.store;
        let mut deleted = 0;
        for archived in [false, true] {
            let mut before = None;
            loop {
                let page = store
                    .conversations(ConversationPage {
                        user,
                        before,
                        limit: PAGE,
                        archived,
                        context: None,
                    })
                    .await?;
                for summary in &page {
                    deleted += self.delete_in(user, &summary.conversation).await?;
                }
                match page.last() {
                    Some(last) if page.len() == PAGE => {
                        before = Some(ActivityKey::of(&last.conversation));
                    }
                    _ => break,
                }
            }
        }
        Ok(deleted)
    }

    /// Deletes `user`'s live messages in `conversation`, newest page first.
    async fn delete_in(&self, user: UserId, conversation: &Conversation) -> Result<u64> {
        let m = &self.messenger;
        let mut deleted = 0;
        let mut window = HistoryWindow::Latest;
        loop {
            let page = m.inner.store.history(conversation.id, window, PAGE).await?;
            for message in &page {
                if message.sender_id == Some(user) && !message.deleted {
                    m.remove(message.clone(), conversation, None).await?;
                    deleted += 1;
                }
            }
            match page.first() {
                Some(oldest) if page.len() == PAGE && oldest.seq > 1 => {
                    window = HistoryWindow::Before(oldest.seq);
                }
                _ => return Ok(deleted),
            }
        }
    }

    /// `user` blocks `other`, as [`Messenger::block`].
    pub async fn block(&self, user: UserId, other: UserId) -> Result<()> {
        self.messenger.block(user, other).await
    }

    /// `user` lifts their block of `other`, as [`Messenger::unblock`].
    pub async fn unblock(&self, user: UserId, other: UserId) -> Result<()> {
        self.messenger.unblock(user, other).await
    }

    /// Revokes `user`'s tokens: every token of theirs issued at or before this second is
    /// refused from now on ([`Messenger::token_accepted`]), and every session of theirs,
    /// on every instance, receives [`Signal::Revoked`](crate::model::Signal::Revoked) so
    /// that its transport ends it. Returns the time of the revocation (now); a later one
    /// stored before (by an instance whose clock is ahead) stays in force. The nil UUID:
    /// `Invalid`.
    ///
    /// The revocation is durable before the signal goes out. When the signal cannot be sent
    /// (the error is returned), the revocation stands, and sessions still end at their
    /// transport's next check; calling again is safe, and moves the revocation to the later
    /// time.
    pub async fn revoke(&self, user: UserId) -> Result<Timestamp> {
        self.messenger.revoke_tokens(user).await
    }

    /// Whether each of `users` has a live session now (on any instance with a shared
    /// presence), in order: whom a host's push worker or webhook can skip. Any number of
    /// users; the nil UUID is `Invalid`.
    pub async fn online(&self, users: &[UserId]) -> Result<Vec<bool>> {
        for user in users {
            super::check_user(*user)?;
        }
        if users.is_empty() {
            return Ok(Vec::new());
        }
        self.messenger.inner.presence.online(users).await
    }

    /// The users `user` blocks, as [`Messenger::blocks`].
    pub async fn blocks(
        &self,
        user: UserId,
        limit: Option<usize>,
        after: Option<UserId>,
    ) -> Result<BlocksPage> {
        self.messenger.blocks(user, limit, after).await
    }
}
