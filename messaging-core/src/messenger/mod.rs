//! [`Messenger`]: every rule of the messaging service, in one place.
//!
//! Transports (the WebSocket server, an application's own HTTP handlers) call these methods
//! with the authenticated user as the explicit `actor`; nothing here trusts a user id taken
//! from a payload. The Messenger validates input, checks membership, blocks and the access
//! policy, decides which durable events a change produces and for whom (the store writes
//! them in the change's transaction), and publishes ephemeral signals itself.
//!
//! What callers pass in is in `requests`, what pages come back in `pages`, and a connection
//! of a user is a [`Session`]. The ops beyond messages and markers live in submodules:
//! `reactions`, `settings` (mute, archive, one conversation), `revocation` (revoked tokens
//! and the check of a presented one), `consumers` (durable readers of the whole log), and
//! `service`, the host's [`ServiceHandle`], which calls the same steps as the user ops so
//! no rule is written twice.

mod consumers;
mod reactions;
mod revocation;
mod service;
mod settings;

pub use service::ServiceHandle;

use std::sync::Arc;
use std::time::Duration;

use crate::budget;
use crate::error::{Error, Result};
use crate::fanout::{Fanout, Hub};
use crate::id::{ConversationId, MessageId, SessionId, UserId};
use crate::limits::Limits;
use crate::membership::{MembershipCache, MessageHomes};
use crate::model::{
    ActivityKey, Conversation, Cursor, Event, Message, PresenceStatus, Receipt, ReceiptKind,
    Signal, TypingState, UnreadTotals,
};
use crate::pages::{BlocksPage, ConversationsPage, HistoryPage, Sent, SyncPage};
use crate::policy::{AccessPolicy, AllowAll, Outgoing};
use crate::presence::{LocalPresence, Presence};
use crate::requests::{ConversationsQuery, HistoryQuery, SendMessage, SendTarget};
use crate::search::query_terms;
use crate::session::Session;
use crate::store::{
    ConversationPage, DeleteMessage, EditMessage, HistoryWindow, MarkUpdate, NewConversation,
    NewMessage, Opened, SearchQuery, Store,
};
use crate::time::Timestamp;
use crate::typing::TypingThrottle;
use crate::validate;

const MEMBERSHIP_CACHE_CAPACITY: usize = 100_000;
const MESSAGE_HOMES_CAPACITY: usize = 100_000;

/// A commit this recent proves the store can commit without a probe (docs/protocol.md,
/// "Health").
const RECENT_COMMIT: Duration = Duration::from_secs(2);

/// Builds a [`Messenger`].
pub struct MessengerBuilder {
    store: Arc<dyn Store>,
    fanout: Option<Arc<dyn Fanout>>,
    presence: Option<Arc<dyn Presence>>,
    policy: Arc<dyn AccessPolicy>,
    limits: Limits,
}

impl MessengerBuilder {
    /// Uses this fan-out instead of an in-process [`Hub`].
    #[must_use]
    pub fn fanout(mut self, fanout: Arc<dyn Fanout>) -> Self {
        self.fanout = Some(fanout);
        self
    }

    /// Uses this presence instead of [`LocalPresence`].
    #[must_use]
    pub fn presence(mut self, presence: Arc<dyn Presence>) -> Self {
        self.presence = Some(presence);
        self
    }

    /// The application's access policy (default [`AllowAll`]).
    #[must_use]
    pub fn policy(mut self, policy: impl AccessPolicy + 'static) -> Self {
        self.policy = Arc::new(policy);
        self
    }

    /// Limits (default: the protocol's).
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Attaches the fan-out to the store's feed and returns the messenger.
    pub async fn build(self) -> Result<Messenger> {
        let fanout =
            self.fanout.unwrap_or_else(|| Arc::new(Hub::new(self.limits.max_queue_frames)));
        self.store.attach_feed(fanout.clone()).await?;
        Ok(Messenger {
            inner: Arc::new(Inner {
                store: self.store,
                fanout,
                presence: self.presence.unwrap_or_else(|| Arc::new(LocalPresence::default())),
                policy: self.policy,
                typing: TypingThrottle::new(self.limits.typing_expires_ms),
                limits: self.limits,
                members: MembershipCache::new(MEMBERSHIP_CACHE_CAPACITY),
                homes: MessageHomes::new(MESSAGE_HOMES_CAPACITY),
            }),
        })
    }
}

struct Inner {
    store: Arc<dyn Store>,
    fanout: Arc<dyn Fanout>,
    presence: Arc<dyn Presence>,
    policy: Arc<dyn AccessPolicy>,
    limits: Limits,
    members: MembershipCache,
    /// The conversation of recently sent or read messages (a reaction needs no read).
    homes: MessageHomes,
    typing: TypingThrottle,
}

/// The messaging service over one store. Cheap to clone.
///
/// ```no_run
/// # async fn demo(store: std::sync::Arc<dyn messaging_core::Store>) -> messaging_core::Result<()> {
/// use messaging_core::{Messenger, SendMessage, UserId};
///
/// let messenger = Messenger::new(store).await?;
/// let (alice, bob) = (UserId::new(), UserId::new());
/// let sent = messenger.send(alice, SendMessage::to_peer(bob, None, "hi")).await?;
/// assert_eq!((sent.message.seq, sent.created), (1, true));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Messenger {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Messenger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Messenger").field("limits", &self.inner.limits).finish_non_exhaustive()
    }
}

impl Messenger {
    /// A builder over `store`.
    pub fn builder(store: Arc<dyn Store>) -> MessengerBuilder {
        MessengerBuilder {
            store,
            fanout: None,
            presence: None,
            policy: Arc::new(AllowAll),
            limits: Limits::default(),
        }
    }

    /// A messenger with the defaults: in-process fan-out and presence, allow-all policy.
    pub async fn new(store: Arc<dyn Store>) -> Result<Self> {
        Self::builder(store).build().await
    }

    /// The limits in force.
    #[must_use]
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The store (for the testkit: calls here bypass every rule).
    #[cfg(feature = "testkit")]
    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The fan-out (for the testkit: subscribing here bypasses membership).
    #[cfg(feature = "testkit")]
    pub(crate) fn fanout(&self) -> &Arc<dyn Fanout> {
        &self.inner.fanout
    }

    /// Whether the store serves: reads answer, and it can commit (a commit completed in the
    /// last 2 s, or a probe commit succeeds), each within `bound`. A busy store passes on
    /// its recent commits without a probe; an idle one is probed.
    pub async fn health(&self, bound: Duration) -> Result<()> {
        let store = &self.inner.store;
        let timed_out = || Error::unavailable("the store did not answer in time");
        tokio::time::timeout(bound, store.head()).await.map_err(|_| timed_out())??;
        if store.last_commit().is_some_and(|at| at.elapsed() <= RECENT_COMMIT) {
            return Ok(());
        }
        tokio::time::timeout(bound, store.probe_commit()).await.map_err(|_| timed_out())?
    }

    /// Opens a session of `user`: registers presence (announcing it to the user's peers if
    /// it is the first session), subscribes to pushes and takes the hello cursor.
    /// Cancel-safe: a call dropped midway leaves no session registered.
    pub async fn connect(&self, user: UserId) -> Result<Session> {
        check_user(user)?;
        let id = SessionId::new();
        let (subscription, position) = self.inner.fanout.subscribe(user);
        // The session exists before presence hears of it: if this future is dropped while
        // presence registers it, dropping the session unregisters it (unregistering a
        // session presence never recorded is a no-op), so no phantom stays online.
        let session = Session::new(id, user, Cursor::at(position), subscription, self.clone());
        let first = match self.inner.presence.session_opened(user, id).await {
            Ok(first) => first,
            Err(error) => {
                session.forget();
                return Err(error);
            }
        };
        if first {
            self.announce(PresenceStatus { user_id: user, online: true, last_seen: None }).await?;
        }
        Ok(session)
    }

    /// Ends `session` of `user` in presence; the last session's end persists `last_seen`
    /// and tells the user's peers.
    pub(crate) async fn disconnect(&self, user: UserId, session: SessionId) -> Result<()> {
        if self.inner.presence.session_closed(user, session).await? {
            let now = Timestamp::now();
            self.inner.store.set_last_seen(user, now).await?;
            self.announce(PresenceStatus { user_id: user, online: false, last_seen: Some(now) })
                .await?;
        }
        Ok(())
    }

    async fn announce(&self, status: PresenceStatus) -> Result<()> {
        let peers = self.inner.store.peers(status.user_id).await?;
        if peers.is_empty() {
            return Ok(());
        }
        self.inner.fanout.signal(Signal::Presence(status), &peers).await
    }

    /// The conversation `id` if `actor` is a member; `NotFound` otherwise (membership is
    /// never revealed).
    async fn member_conversation(&self, actor: UserId, id: ConversationId) -> Result<Conversation> {
        let conversation = match self.inner.members.get(&id) {
            Some(c) => c,
            None => {
                let c = self.inner.store.conversation(id).await?.ok_or_else(not_found)?;
                self.inner.members.insert(&c);
                c
            }
        };
        if conversation.has_member(actor) { Ok(conversation) } else { Err(not_found()) }
    }

    async fn check_not_blocked(&self, a: UserId, b: UserId) -> Result<()> {
        if self.inner.store.is_blocked_between(a, b).await? {
            return Err(Error::forbidden("one of the users blocks the other"));
        }
        Ok(())
    }

    /// Opens (or finds) the direct conversation of `actor` and `peer` about `context`.
    ///
    /// `peer == actor`: `Invalid`. Blocked either way or refused by the policy: `Forbidden`.
    /// Creating it writes a `conversation.created` event for both members.
    pub async fn open(&self, actor: UserId, peer: UserId, context: Option<&str>) -> Result<Opened> {
        let context = validate::context(context, self.inner.limits.max_context_bytes)?;
        check_pair(actor, peer)?;
        self.check_not_blocked(actor, peer).await?;
        self.inner.policy.may_open(actor, peer, context.as_deref()).await?.into_result()?;
        self.find_or_create([actor, peer], context, None, Some(actor)).await
    }

    /// The direct conversation of the pair about `context`, created (with `metadata`, by
    /// `opener`: `None` for the host) when missing. The checks are the caller's.
    async fn find_or_create(
        &self,
        [a, b]: [UserId; 2],
        context: Option<String>,
        metadata: Option<serde_json::Value>,
        opener: Option<UserId>,
    ) -> Result<Opened> {
        if let Some(existing) = self.inner.store.find_direct(a, b, context.as_deref()).await? {
            self.inner.members.insert(&existing);
            return Ok(Opened { conversation: existing, created: false });
        }
        self.create_direct([a, b], context, metadata, opener).await
    }

    /// Creates the direct conversation of the pair about `context` (logged as opened by
    /// `opener`), or finds the one a concurrent call created (the store's `open_direct`
    /// settles the race).
    async fn create_direct(
        &self,
        [a, b]: [UserId; 2],
        context: Option<String>,
        metadata: Option<serde_json::Value>,
        opener: Option<UserId>,
    ) -> Result<Opened> {
        let members = ordered(a, b);
        let opened = self
            .inner
            .store
            .open_direct(NewConversation {
                id: ConversationId::new(),
                members,
                context,
                created_at: Timestamp::now(),
                metadata,
                audience: members.to_vec(),
                actor: opener,
            })
            .await?;
        self.inner.members.insert(&opened.conversation);
        Ok(opened)
    }

    /// Sends a message.
    ///
    /// Validation first (`Invalid`, `TooLarge`), then membership (`NotFound`). A retry with
    /// the same `client_msg_id` returns the original message in its current state and emits
    /// nothing, even if the users have blocked each other or the policy refuses since.
    /// Otherwise blocks and the policy are checked (`Forbidden`); with [`SendTarget::Peer`]
    /// the conversation is opened exactly as [`Messenger::open`] would. A reply to a seq the
    /// conversation does not have: `NotFound`.
    pub async fn send(&self, actor: UserId, message: SendMessage) -> Result<Sent> {
        check_user(actor)?;
        self.validate_send(&message)?;
        let target = self.resolve(actor, &message.to).await?;
        let outgoing = Outgoing {
            from: actor,
            to: target.peer,
            context: target.context.as_deref(),
            conversation_id: target.existing.as_ref().map(|c| c.id),
        };
        if let Err(refusal) = self.check_send(&outgoing, target.opening).await {
            // A refused retry of a stored message still returns the original.
            if let (Some(conversation), Some(key)) = (&target.existing, &message.client_msg_id)
                && let Some(original) =
                    self.inner.store.find_by_client_msg_id(conversation.id, actor, key).await?
            {
                return Ok(Sent { message: original, created: false });
            }
            return Err(refusal);
        }
        let conversation = match target.existing {
            Some(conversation) => conversation,
            None => {
                let pair = [actor, target.peer];
                self.create_direct(pair, target.context, None, Some(actor)).await?.conversation
            }
        };
        self.append(&conversation, Some(actor), message).await
    }

    /// Appends a validated message to `conversation` as `sender` (`None`: the host's system
    /// message). The store recognises a retry itself, in the append's transaction.
    async fn append(
        &self,
        conversation: &Conversation,
        sender: Option<UserId>,
        message: SendMessage,
    ) -> Result<Sent> {
        let appended = self
            .inner
            .store
            .append(NewMessage {
                id: MessageId::new(),
                conversation_id: conversation.id,
                sender_id: sender,
                body: message.body,
                attachments: message.attachments,
                reply_to_seq: message.reply_to_seq,
                metadata: message.metadata,
                client_msg_id: message.client_msg_id,
                created_at: Timestamp::now(),
                audience: conversation.members.to_vec(),
            })
            .await?;
        self.inner.homes.put(appended.message.id, conversation.id);
        Ok(Sent { message: appended.message, created: appended.created })
    }

    fn validate_send(&self, message: &SendMessage) -> Result<()> {
        let limits = &self.inner.limits;
        validate::attachments(&message.attachments, limits.max_attachments)?;
        validate::body(&message.body, !message.attachments.is_empty(), limits.max_body_bytes)?;
        if let Some(id) = &message.client_msg_id {
            validate::client_msg_id(id, limits.max_client_msg_id_bytes)?;
        }
        if let Some(metadata) = &message.metadata {
            validate::metadata(metadata, limits.max_metadata_bytes)?;
        }
        if message.reply_to_seq == Some(0) {
            return Err(Error::invalid("reply_to_seq must be at least 1"));
        }
        Ok(())
    }

    /// Where a send goes: the peer, the context and the conversation if it exists. A
    /// conversation named by id must have `actor` as a member (`NotFound`); a context is
    /// validated here, before any lookup.
    async fn resolve(&self, actor: UserId, to: &SendTarget) -> Result<Target> {
        match to {
            SendTarget::Conversation(id) => {
                let conversation = self.member_conversation(actor, *id).await?;
                let peer = conversation.peer_of(actor).ok_or_else(not_found)?;
                Ok(Target {
                    peer,
                    context: conversation.context.clone(),
                    existing: Some(conversation),
                    opening: false,
                })
            }
            SendTarget::Peer { peer, context } => {
                let context =
                    validate::context(context.as_deref(), self.inner.limits.max_context_bytes)?;
                check_pair(actor, *peer)?;
                let existing =
                    self.inner.store.find_direct(actor, *peer, context.as_deref()).await?;
                if let Some(conversation) = &existing {
                    self.inner.members.insert(conversation);
                }
                Ok(Target { peer: *peer, context, existing, opening: true })
            }
        }
    }

    /// Blocks either way, the policy's `may_open` when the send opens by peer (as
    /// [`Messenger::open`] would), then its `may_send`.
    async fn check_send(&self, outgoing: &Outgoing<'_>, opening: bool) -> Result<()> {
        self.check_not_blocked(outgoing.from, outgoing.to).await?;
        let policy = &self.inner.policy;
        if opening {
            policy.may_open(outgoing.from, outgoing.to, outgoing.context).await?.into_result()?;
        }
        policy.may_send(outgoing).await?.into_result()
    }

    /// A page of a conversation's history, in ascending seq.
    pub async fn history(
        &self,
        actor: UserId,
        conversation_id: ConversationId,
        query: HistoryQuery,
    ) -> Result<HistoryPage> {
        let (limit, window) = self.history_window(query)?;
        self.member_conversation(actor, conversation_id).await?;
        self.read_history(conversation_id, window, limit).await
    }

    /// The page size and window of a history query: parameters before any lookup.
    fn history_window(&self, query: HistoryQuery) -> Result<(usize, HistoryWindow)> {
        let limit = validate::page("limit", query.limit, self.inner.limits.history_page)?;
        let window = match (query.before_seq, query.after_seq) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid("give before_seq or after_seq, not both"));
            }
            (Some(before), None) => HistoryWindow::Before(before),
            (None, Some(after)) => HistoryWindow::After(after),
            (None, None) => HistoryWindow::Latest,
        };
        Ok((limit, window))
    }

    /// A page of history, cut by the reply budget from the end away from its anchor.
    async fn read_history(
        &self,
        conversation_id: ConversationId,
        window: HistoryWindow,
        limit: usize,
    ) -> Result<HistoryPage> {
        let mut messages = self.inner.store.history(conversation_id, window, limit + 1).await?;
        let mut has_more = messages.len() > limit;
        let budget = self.inner.limits.reply_budget_bytes;
        match window {
            HistoryWindow::After(_) => {
                messages.truncate(limit);
                let keep = budget::fitting(&messages, budget, budget::encoded_len);
                has_more |= keep < messages.len();
                messages.truncate(keep);
            }
            HistoryWindow::Before(_) | HistoryWindow::Latest => {
                // The newest stay: the page is cut from its old end.
                if has_more {
                    messages.remove(0);
                }
                let keep = budget::fitting(messages.iter().rev(), budget, budget::encoded_len);
                has_more |= keep < messages.len();
                messages.drain(..messages.len() - keep);
            }
        }
        Ok(HistoryPage { messages, has_more })
    }

    /// A page of `actor`'s conversations, newest activity first: the unarchived ones, or
    /// with `query.archived` the archived ones; with `query.context`, only that context's.
    pub async fn conversations(
        &self,
        actor: UserId,
        query: ConversationsQuery,
    ) -> Result<ConversationsPage> {
        let limit = validate::page("limit", query.limit, self.inner.limits.conversations_page)?;
        let before = query.before.as_deref().map(ActivityKey::decode).transpose()?;
        let context = match query.context {
            Some(context) => Some(self.exact_context(&context)?),
            None => None,
        };
        let page = ConversationPage {
            user: actor,
            before,
            limit: limit + 1,
            archived: query.archived,
            context,
        };
        let now = Timestamp::now();
        let conversations = self.inner.store.conversations(page).await?;
        let conversations: Vec<_> = conversations.into_iter().map(|s| s.settled(now)).collect();
        let (conversations, next) =
            self.cut_list(conversations, limit, |s| ActivityKey::of(&s.conversation));
        Ok(ConversationsPage { conversations, next })
    }

    /// A context filter: 1 to `max_context_bytes` bytes, matched exactly.
    fn exact_context(&self, context: &str) -> Result<String> {
        validate::context(Some(context), self.inner.limits.max_context_bytes)?
            .ok_or_else(|| Error::invalid("context must not be empty"))
    }

    /// Cuts a list page read with `limit + 1` rows to `limit` and the reply budget; the
    /// `next` key when anything follows.
    fn cut_list<T: serde::Serialize>(
        &self,
        mut rows: Vec<T>,
        limit: usize,
        key: impl Fn(&T) -> ActivityKey,
    ) -> (Vec<T>, Option<String>) {
        let fits = budget::fitting(
            rows.iter().take(limit),
            self.inner.limits.reply_budget_bytes,
            budget::encoded_len,
        );
        if rows.len() > fits {
            rows.truncate(fits);
            let next = rows.last().map(|row| key(row).encode());
            (rows, next)
        } else {
            (rows, None)
        }
    }

    /// Moves `actor`'s read marker forward (clamped to `last_seq`; never backwards).
    pub async fn mark_read(
        &self,
        actor: UserId,
        conversation_id: ConversationId,
        up_to_seq: u64,
    ) -> Result<Receipt> {
        self.mark(actor, conversation_id, ReceiptKind::Read, up_to_seq).await
    }

    /// Moves `actor`'s delivered marker forward (clamped to `last_seq`; never backwards).
    pub async fn mark_delivered(
        &self,
        actor: UserId,
        conversation_id: ConversationId,
        up_to_seq: u64,
    ) -> Result<Receipt> {
        self.mark(actor, conversation_id, ReceiptKind::Delivered, up_to_seq).await
    }

    async fn mark(
        &self,
        actor: UserId,
        conversation_id: ConversationId,
        kind: ReceiptKind,
        up_to_seq: u64,
    ) -> Result<Receipt> {
        let conversation = self.member_conversation(actor, conversation_id).await?;
        let now = Timestamp::now();
        let marked = self
            .inner
            .store
            .mark(MarkUpdate {
                conversation_id,
                user_id: actor,
                kind,
                up_to_seq,
                at: now,
                audience: conversation.members.to_vec(),
            })
            .await?;
        let at = marked.at.unwrap_or(now);
        Ok(Receipt { conversation_id, user_id: actor, kind, seq: marked.seq, at })
    }

    /// The sender's message `id` if `actor` sent it; `NotFound` for anyone else.
    async fn own_message(&self, actor: UserId, id: MessageId) -> Result<(Message, Conversation)> {
        let message = self.inner.store.message(id).await?.ok_or_else(not_found)?;
        if message.sender_id != Some(actor) {
            return Err(not_found());
        }
        let conversation = self.member_conversation(actor, message.conversation_id).await?;
        Ok((message, conversation))
    }

    /// Replaces the body of `actor`'s own message. A deleted message: `Conflict`. Like a
    /// send, an edit needs no block between the members and the policy's `may_send`
    /// (`Forbidden`).
    pub async fn edit(&self, actor: UserId, id: MessageId, body: &str) -> Result<Message> {
        // Characters and size before any lookup; emptiness once the attachments are known.
        validate::body(body, true, self.inner.limits.max_body_bytes)?;
        let (message, conversation) = self.own_message(actor, id).await?;
        validate::body(body, !message.attachments.is_empty(), self.inner.limits.max_body_bytes)?;
        if message.deleted {
            return Err(Error::conflict("the message was deleted"));
        }
        self.check_send(&Outgoing::within(actor, &conversation)?, false).await?;
        self.inner
            .store
            .edit(EditMessage {
                id,
                body: body.to_owned(),
                edited_at: Timestamp::now(),
                audience: conversation.members.to_vec(),
                actor: Some(actor),
            })
            .await
    }

    /// Deletes `actor`'s own message; returns the tombstone. Deleting twice returns the
    /// tombstone again and emits nothing.
    pub async fn delete(&self, actor: UserId, id: MessageId) -> Result<Message> {
        let (message, conversation) = self.own_message(actor, id).await?;
        self.remove(message, &conversation, Some(actor)).await
    }

    /// Makes `message` of `conversation` a tombstone, once, as `actor` (`None`: the host).
    async fn remove(
        &self,
        message: Message,
        conversation: &Conversation,
        actor: Option<UserId>,
    ) -> Result<Message> {
        if message.deleted {
            return Ok(message);
        }
        let delete =
            DeleteMessage { id: message.id, audience: conversation.members.to_vec(), actor };
        let deleted = self.inner.store.delete(delete).await?;
        Ok(deleted.message)
    }

    /// Tells the peer that `actor` started or stopped typing (never stored, never echoed
    /// to `actor`'s own sessions). Blocks and the policy's `may_send` apply as for a send
    /// (`Forbidden`). A `started` repeated within half of `typing_expires_ms` of the last
    /// one relayed is answered but not relayed; a change of state always is.
    pub async fn typing(
        &self,
        actor: UserId,
        conversation_id: ConversationId,
        state: TypingState,
    ) -> Result<()> {
        let conversation = self.member_conversation(actor, conversation_id).await?;
        let outgoing = Outgoing::within(actor, &conversation)?;
        self.check_send(&outgoing, false).await?;
        if !self.inner.typing.admit(actor, conversation_id, state) {
            return Ok(());
        }
        let signal = Signal::Typing {
            conversation_id,
            user_id: actor,
            state,
            expires_in_ms: self.inner.limits.typing_expires_ms,
        };
        self.inner.fanout.signal(signal, &[outgoing.to]).await
    }

    /// Full-text search over `actor`'s conversations (or one of them), newest first.
    pub async fn search(
        &self,
        actor: UserId,
        query: &str,
        conversation_id: Option<ConversationId>,
        limit: Option<usize>,
    ) -> Result<Vec<Message>> {
        if query.is_empty() {
            return Err(Error::invalid("query is empty"));
        }
        validate::text("query", query, self.inner.limits.max_query_bytes)?;
        let limit = validate::page("limit", limit, self.inner.limits.search_page)?;
        if let Some(id) = conversation_id {
            self.member_conversation(actor, id).await?;
        }
        let terms = query_terms(query);
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let mut found = self
            .inner
            .store
            .search(SearchQuery { user: actor, terms, conversation_id, limit })
            .await?;
        // The best (first) results stay.
        found.truncate(budget::fitting(
            &found,
            self.inner.limits.reply_budget_bytes,
            budget::encoded_len,
        ));
        Ok(found)
    }

    /// Unread totals of `actor`: messages not sent by `actor` after their read marker, not
    /// deleted, in conversations not muted now.
    pub async fn unread(&self, actor: UserId) -> Result<UnreadTotals> {
        self.inner.store.unread(actor, Timestamp::now()).await
    }

    /// Presence of those of `users` who share a conversation with `actor` (others are left
    /// out), in the order asked.
    pub async fn presence(&self, actor: UserId, users: &[UserId]) -> Result<Vec<PresenceStatus>> {
        if users.is_empty() || users.len() > self.inner.limits.max_presence_ids {
            return Err(Error::invalid(format!(
                "user_ids must name 1 to {} users",
                self.inner.limits.max_presence_ids
            )));
        }
        let shared = self.inner.store.peers_among(actor, users).await?;
        let mut visible: Vec<UserId> = Vec::with_capacity(shared.len());
        for user in users {
            if shared.contains(user) && !visible.contains(user) {
                visible.push(*user);
            }
        }
        let online = self.inner.presence.online(&visible).await?;
        let offline: Vec<UserId> =
            visible.iter().zip(&online).filter(|(_, on)| !**on).map(|(u, _)| *u).collect();
        let seen = if offline.is_empty() {
            Vec::new()
        } else {
            self.inner.store.last_seen(&offline).await?
        };
        Ok(visible
            .into_iter()
            .zip(online)
            .map(|(user_id, online)| PresenceStatus {
                user_id,
                online,
                last_seen: if online {
                    None
                } else {
                    seen.iter().find(|(u, _)| *u == user_id).map(|(_, at)| *at)
                },
            })
            .collect())
    }

    /// `actor` blocks `user`: neither can open, send, edit or type to the other until
    /// unblocked. Past `max_blocks_per_user` blocks: `Conflict` (blocking someone already
    /// blocked is not an error).
    pub async fn block(&self, actor: UserId, user: UserId) -> Result<()> {
        check_pair(actor, user)?;
        self.inner.store.block(actor, user, self.inner.limits.max_blocks_per_user).await
    }

    /// `actor` lifts their block of `user`.
    pub async fn unblock(&self, actor: UserId, user: UserId) -> Result<()> {
        check_pair(actor, user)?;
        self.inner.store.unblock(actor, user).await
    }

    /// A page of the users `actor` blocks, ascending, after `after`.
    pub async fn blocks(
        &self,
        actor: UserId,
        limit: Option<usize>,
        after: Option<UserId>,
    ) -> Result<BlocksPage> {
        let limit = validate::page("limit", limit, self.inner.limits.blocks_page)?;
        let mut user_ids = self.inner.store.blocks(actor, after, limit + 1).await?;
        let has_more = user_ids.len() > limit;
        user_ids.truncate(limit);
        Ok(BlocksPage { user_ids, has_more })
    }

    /// The cursor a session opened now would start after: every event at or before it is
    /// committed and has been handed to the sessions. `sync` outside a session (HTTP) goes
    /// up to it.
    #[must_use]
    pub fn cursor_now(&self) -> Cursor {
        // A subscription of nobody reads the fan-out's dispatched position and is gone.
        let (subscription, position) = self.inner.fanout.subscribe(UserId::new());
        drop(subscription);
        Cursor::at(position)
    }

    /// Durable events visible to `actor` after `after`, up to the position `up_to` (a
    /// session's hello cursor). Without a cursor: no events and `up_to`.
    ///
    /// A cursor beyond `up_to` that the log has reached (issued by another instance whose
    /// feed is ahead of this one's) returns no events and the same cursor; a cursor beyond
    /// the log's head was never issued: `Invalid`.
    pub async fn sync(
        &self,
        actor: UserId,
        after: Option<Cursor>,
        up_to: Cursor,
        limit: Option<usize>,
    ) -> Result<SyncPage> {
        let limit = validate::page("limit", limit, self.inner.limits.sync_page)?;
        let Some(after) = after else {
            return Ok(SyncPage { events: Vec::new(), cursor: up_to, has_more: false });
        };
        if after > up_to {
            if after.position() > self.inner.store.head().await? {
                return Err(Error::invalid("cursor was not issued by this server"));
            }
            return Ok(SyncPage { events: Vec::new(), cursor: after, has_more: false });
        }
        let mut events = self
            .inner
            .store
            .read_events(actor, after.position(), up_to.position(), limit + 1)
            .await?;
        let now = Timestamp::now();
        for logged in &mut events {
            if let Event::MemberUpdated(settings) = &mut logged.event {
                *settings = settings.settled(now);
            }
        }
        let read = events.len();
        let budget = self.inner.limits.reply_budget_bytes;
        events.truncate(limit.min(budget::fitting(&events, budget, budget::event_len)));
        let has_more = read > events.len();
        let cursor = match events.last() {
            Some(last) if has_more => last.cursor(),
            _ => up_to,
        };
        Ok(SyncPage { events, cursor, has_more })
    }
}

/// A send's resolved target (see [`Messenger::send`]).
struct Target {
    peer: UserId,
    context: Option<String>,
    /// The conversation, when it exists already.
    existing: Option<Conversation>,
    /// Addressed by peer: opening rules apply as for [`Messenger::open`].
    opening: bool,
}

/// The nil UUID stands for "no sender" (system messages) in stores: never a user.
fn check_user(user: UserId) -> Result<()> {
    if user.as_uuid().is_nil() {
        return Err(Error::invalid("the nil UUID is not a user id"));
    }
    Ok(())
}

/// Two distinct users, neither the nil UUID.
fn check_pair(actor: UserId, other: UserId) -> Result<()> {
    check_user(actor)?;
    check_user(other)?;
    if actor == other {
        return Err(Error::invalid("the two users must differ"));
    }
    Ok(())
}

fn ordered(a: UserId, b: UserId) -> [UserId; 2] {
    if a <= b { [a, b] } else { [b, a] }
}

fn not_found() -> Error {
    Error::not_found("no such conversation or message")
}
