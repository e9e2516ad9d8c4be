//! The storage contract.
//!
//! A backend implements six small traits, split by concern, and gets [`Store`] (their
//! union) for free through a blanket impl. One backend object implements all six, so one
//! transaction can span a conversation, its message and the event log.
//!
//! The rules (membership, blocks, policies, validation, which events a change produces and
//! who sees them) live in [`Messenger`](crate::Messenger); a store keeps data and keeps
//! its promises, listed on each method in testable sentences. The conformance suite
//! (feature `testkit`) checks every one of them; run it against a new store with
//! `messaging_core::conformance_tests!` (a macro of that feature).
//!
//! ## Durable events
//!
//! Every mutation that changes what a member can see writes its event in the same
//! transaction as the change, at the next log position: positions are dense `u64`s from 1,
//! in commit order. The mutation input carries the `audience` (the users who may see the
//! event), which the store keeps beside the event for [`EventLog::read_events`] and hands
//! to the feed. After commit, and only after, the store passes the committed events, in
//! position order, to every attached [`FeedSink`]. A reply to a mutation means the change
//! is durable.
//!
//! Each event is also logged with its *actor*, who caused it, read back by
//! [`ConsumerLog::read_log`]: [`NewConversation::actor`], a [`NewMessage`]'s `sender_id`
//! (`None`: a system message), [`EditMessage::actor`], [`DeleteMessage::actor`], the
//! `user_id` of a [`MarkUpdate`], [`ReactionUpdate`] or [`MemberUpdate`], and nobody for
//! [`MetadataUpdate`] (the host's). A `message.deleted` event also keeps the attachments
//! the message had before the delete erased them.
//!
//! ## Using a store
//!
//! ```
//! use std::sync::Arc;
//! use messaging_core::{Store, Timestamp, UserId};
//!
//! async fn unread_badge(store: Arc<dyn Store>, user: UserId) -> messaging_core::Result<u64> {
//!     Ok(store.unread(user, Timestamp::now()).await?.total)
//! }
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::id::{ConversationId, MessageId, UserId};
use crate::model::{
    ActivityKey, Attachment, CommittedEvent, Conversation, ConversationSummary, LogEntry,
    LoggedEvent, MemberSettings, Message, MessageKind, Reaction, ReactionState, ReceiptKind,
    UnreadTotals,
};
use crate::time::Timestamp;

/// A conversation to create if its (pair, context) does not exist yet.
#[derive(Clone, Debug)]
pub struct NewConversation {
    /// The id to use if it is created.
    pub id: ConversationId,
    /// The two members, lower id first.
    pub members: [UserId; 2],
    /// The context; `None` for none (never `Some("")`).
    pub context: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// The host's metadata object, validated (only used when it is created).
    pub metadata: Option<serde_json::Value>,
    /// Who sees the `conversation.created` event.
    pub audience: Vec<UserId>,
    /// Who opens it (logged as the event's actor): the member who opened it or sent the
    /// first message; `None` when the host opened it (the service handle).
    pub actor: Option<UserId>,
}

/// The result of [`ConversationStore::open_direct`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    /// The conversation, new or existing, in its current state.
    pub conversation: Conversation,
    /// Whether this call created it.
    pub created: bool,
}

/// A page request of a user's conversation list.
#[derive(Clone, Debug)]
pub struct ConversationPage {
    /// Whose list.
    pub user: UserId,
    /// Start strictly after this key (older); `None` for the newest.
    pub before: Option<ActivityKey>,
    /// Most rows to return.
    pub limit: usize,
    /// `false`: only conversations `user` has not archived; `true`: only archived ones.
    pub archived: bool,
    /// Only conversations with exactly this context, if given.
    pub context: Option<String>,
}

/// A page request of every conversation with one context (the host's view of a listing).
#[derive(Clone, Debug)]
pub struct ContextPage {
    /// The context, exactly.
    pub context: String,
    /// Start strictly after this key (older); `None` for the newest.
    pub before: Option<ActivityKey>,
    /// Most rows to return.
    pub limit: usize,
}

/// A change of one member's own settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberChange {
    /// Mute until a time, or (`None`) unmute.
    Mute(Option<Timestamp>),
    /// Archive (`true`) or unarchive.
    Archive(bool),
}

/// A member settings update (see [`ConversationStore::update_member`]).
#[derive(Clone, Debug)]
pub struct MemberUpdate {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The member whose settings change.
    pub user_id: UserId,
    /// What changes.
    pub change: MemberChange,
    /// The time the change is made: a mute at or before it is no mute.
    pub now: Timestamp,
    /// Who sees the `member.updated` event (that member only).
    pub audience: Vec<UserId>,
}

/// The result of [`ConversationStore::update_member`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberUpdated {
    /// The member's settings after the call, as stored.
    pub settings: MemberSettings,
    /// Whether anything changed (and so whether an event was written).
    pub changed: bool,
}

/// A replacement of a conversation's metadata.
#[derive(Clone, Debug)]
pub struct MetadataUpdate {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The new metadata, validated; `None` clears it.
    pub metadata: Option<serde_json::Value>,
    /// Who sees the `conversation.updated` event.
    pub audience: Vec<UserId>,
}

/// The result of [`ConversationStore::set_metadata`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataUpdated {
    /// The conversation after the call.
    pub conversation: Conversation,
    /// Whether the metadata changed (and so whether an event was written).
    pub changed: bool,
}

/// A marker update: `read` or `delivered`.
#[derive(Clone, Debug)]
pub struct MarkUpdate {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The member moving their marker.
    pub user_id: UserId,
    /// Which marker.
    pub kind: ReceiptKind,
    /// The requested value (clamped to `last_seq` by the store).
    pub up_to_seq: u64,
    /// The time of the receipt: kept with the marker and in the event when it moves.
    pub at: Timestamp,
    /// Who sees the receipt event.
    pub audience: Vec<UserId>,
}

/// The result of [`ConversationStore::mark`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marked {
    /// The marker's value after the call.
    pub seq: u64,
    /// When the marker last moved (`None` when it never has).
    pub at: Option<Timestamp>,
    /// Whether it moved (and so whether an event was written).
    pub moved: bool,
}

/// A message to append.
#[derive(Clone, Debug)]
pub struct NewMessage {
    /// Its id.
    pub id: MessageId,
    /// The conversation (must exist).
    pub conversation_id: ConversationId,
    /// The sender (a member); `None` for a system message.
    pub sender_id: Option<UserId>,
    /// The body, validated.
    pub body: String,
    /// The attachments, validated.
    pub attachments: Vec<Attachment>,
    /// The message it replies to: the store refuses (`NotFound`) a seq its conversation
    /// does not have, in the append's transaction.
    pub reply_to_seq: Option<u64>,
    /// The metadata object, validated.
    pub metadata: Option<serde_json::Value>,
    /// The idempotency key.
    pub client_msg_id: Option<String>,
    /// Send time.
    pub created_at: Timestamp,
    /// Who sees the `message.created` event.
    pub audience: Vec<UserId>,
}

impl NewMessage {
    /// The message as stored at `seq`: what a store returns and logs for a new append.
    #[must_use]
    pub fn stored(&self, seq: u64) -> Message {
        Message {
            id: self.id,
            conversation_id: self.conversation_id,
            seq,
            sender_id: self.sender_id,
            kind: if self.sender_id.is_some() { MessageKind::User } else { MessageKind::System },
            body: self.body.clone(),
            attachments: self.attachments.clone(),
            reply_to_seq: self.reply_to_seq,
            reactions: Vec::new(),
            metadata: self.metadata.clone(),
            client_msg_id: self.client_msg_id.clone(),
            created_at: self.created_at,
            edited_at: None,
            deleted: false,
        }
    }
}

/// The result of [`MessageStore::append`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The stored message (for a duplicate: the original, in its current state).
    pub message: Message,
    /// False when the idempotency key matched an existing message.
    pub created: bool,
}

/// Which part of a conversation's history to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistoryWindow {
    /// The newest messages.
    Latest,
    /// The messages just before this seq.
    Before(u64),
    /// The messages just after this seq.
    After(u64),
}

/// An edit of a message body.
#[derive(Clone, Debug)]
pub struct EditMessage {
    /// The message.
    pub id: MessageId,
    /// The new body, validated.
    pub body: String,
    /// Edit time.
    pub edited_at: Timestamp,
    /// Who sees the `message.edited` event.
    pub audience: Vec<UserId>,
    /// Who edits it (logged as the event's actor): its sender.
    pub actor: Option<UserId>,
}

/// A deletion of a message.
#[derive(Clone, Debug)]
pub struct DeleteMessage {
    /// The message.
    pub id: MessageId,
    /// Who sees the `message.deleted` event.
    pub audience: Vec<UserId>,
    /// Who deletes it (logged as the event's actor): its sender deleting their own
    /// message; `None` for the host's moderation and account-deletion deletes.
    pub actor: Option<UserId>,
}

/// The result of [`MessageStore::delete`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deleted {
    /// The tombstone.
    pub message: Message,
    /// False when it was already deleted (and no event was written).
    pub changed: bool,
}

/// A reaction put on or taken off a message (see [`MessageStore::react`]).
#[derive(Clone, Debug)]
pub struct ReactionUpdate {
    /// The message.
    pub message_id: MessageId,
    /// Who reacts.
    pub user_id: UserId,
    /// The emoji, validated.
    pub emoji: String,
    /// Put on or take off.
    pub state: ReactionState,
    /// The most distinct emoji `user_id` may have on one message.
    pub max_per_user: usize,
    /// Who sees the `reaction.*` event.
    pub audience: Vec<UserId>,
}

/// The result of [`MessageStore::react`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reacted {
    /// The message after the call, in its current state.
    pub message: Message,
    /// Whether its reactions changed (and so whether an event was written).
    pub changed: bool,
}

/// Puts `user`'s `emoji` on a message's `reactions` summary or takes it off, as
/// [`MessageStore::react`] describes; returns whether anything changed. A new emoji beyond
/// `max` of the user's: `Conflict`, and nothing changed. Every store keeps the summary with
/// this one function, so the order rules are written once.
///
/// ```
/// use messaging_core::store::apply_reaction;
/// use messaging_core::{ReactionState, UserId};
///
/// let (ann, bo) = (UserId::new(), UserId::new());
/// let mut reactions = Vec::new();
/// assert!(apply_reaction(&mut reactions, ann, "👍", ReactionState::Added, 20).unwrap());
/// assert!(apply_reaction(&mut reactions, bo, "👍", ReactionState::Added, 20).unwrap());
/// assert!(!apply_reaction(&mut reactions, bo, "👍", ReactionState::Added, 20).unwrap());
/// assert_eq!(reactions[0].user_ids, vec![ann, bo]);
/// ```
pub fn apply_reaction(
    reactions: &mut Vec<Reaction>,
    user: UserId,
    emoji: &str,
    state: ReactionState,
    max: usize,
) -> Result<bool> {
    let entry = reactions.iter().position(|r| r.emoji == emoji);
    let has = entry.is_some_and(|i| reactions[i].user_ids.contains(&user));
    match state {
        ReactionState::Added if has => Ok(false),
        ReactionState::Added => {
            let mine = reactions.iter().filter(|r| r.user_ids.contains(&user)).count();
            if mine >= max {
                return Err(Error::conflict("too many reactions by this user on the message"));
            }
            match entry {
                Some(i) => reactions[i].user_ids.push(user),
                None => reactions.push(Reaction { emoji: emoji.to_owned(), user_ids: vec![user] }),
            }
            Ok(true)
        }
        ReactionState::Removed if !has => Ok(false),
        ReactionState::Removed => {
            if let Some(i) = entry {
                reactions[i].user_ids.retain(|u| *u != user);
                if reactions[i].user_ids.is_empty() {
                    reactions.remove(i);
                }
            }
            Ok(true)
        }
    }
}

/// A full-text search.
#[derive(Clone, Debug)]
pub struct SearchQuery {
    /// Only this user's conversations are searched.
    pub user: UserId,
    /// Words from [`query_terms`](crate::search::query_terms): all must match; never empty.
    pub terms: Vec<String>,
    /// Only this conversation, if given (the user is a member).
    pub conversation_id: Option<ConversationId>,
    /// Most results.
    pub limit: usize,
}

/// Conversations: creation, lookup, the per-user list, members' markers.
///
/// ```
/// use messaging_core::store::ConversationStore;
/// use messaging_core::UserId;
///
/// async fn peer_count(store: &dyn ConversationStore, me: UserId) -> messaging_core::Result<usize> {
///     Ok(store.peers(me).await?.len())
/// }
/// ```
#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// Returns the direct conversation of (`members`, `context`), creating it when missing.
    ///
    /// Race-free: of any number of concurrent calls for the same pair and context (in either
    /// member order), exactly one returns `created: true` and all return the same id. A
    /// missing context is one value: two calls without context find the same conversation.
    /// When it creates, it writes one `ConversationCreated` event for `audience` in the same
    /// transaction; when it finds, it writes nothing.
    async fn open_direct(&self, new: NewConversation) -> Result<Opened>;

    /// The conversation with this id in its current state, or `None`.
    async fn conversation(&self, id: ConversationId) -> Result<Option<Conversation>>;

    /// The direct conversation of this unordered pair and context, or `None`.
    async fn find_direct(
        &self,
        a: UserId,
        b: UserId,
        context: Option<&str>,
    ) -> Result<Option<Conversation>>;

    /// A page of `page.user`'s conversations, newest activity first (activity: the last
    /// message's time, else creation; ties by id descending), strictly after `page.before`,
    /// at most `page.limit` rows, each with its last message (tombstones included), unread
    /// count, markers and the user's settings (`muted_until` as stored: hiding one that has
    /// passed is the caller's, [`ConversationSummary::settled`]). Only the archived ones when `page.archived`,
    /// only the others otherwise (index access: a page never scans past the other kind);
    /// only those with context `page.context` when given. Costs a bounded number of queries
    /// whatever the page size.
    async fn conversations(&self, page: ConversationPage) -> Result<Vec<ConversationSummary>>;

    /// The conversation `id` as `user` sees it in their list (the same fields as a row of
    /// [`ConversationStore::conversations`]), or `None` when it does not exist or `user` is
    /// not a member.
    async fn summary(
        &self,
        user: UserId,
        id: ConversationId,
    ) -> Result<Option<ConversationSummary>>;

    /// A page of every conversation whose context is exactly `page.context`, newest
    /// activity first (as [`ConversationStore::conversations`] orders), strictly after
    /// `page.before`, at most `page.limit`. Index access: the cost follows the page, not
    /// the number of conversations.
    async fn conversations_by_context(&self, page: ContextPage) -> Result<Vec<Conversation>>;

    /// Moves `update.kind`'s marker of `update.user_id` forward to
    /// `min(update.up_to_seq, last_seq)`, recording `update.at` as when it moved. A value
    /// at or below the current marker changes nothing and returns the current value with
    /// `moved: false`. When it moves, one receipt event (with `at`) is written for
    /// `audience` in the same transaction. Unknown conversation or non-member: `NotFound`.
    async fn mark(&self, update: MarkUpdate) -> Result<Marked>;

    /// Changes one member's own settings (callers pass a mute time after `update.now`; the
    /// Messenger refuses others). Muting sets `muted_until`; archiving sets
    /// `archived` (kept until changed, whatever messages arrive). A change that leaves the
    /// settings as they read at `update.now` (the same archived flag; the same mute time;
    /// unmuting what is not muted or whose mute has passed) writes nothing and returns
    /// `changed: false`; otherwise one `MemberUpdated` event is written for `audience` in
    /// the same transaction. Unknown conversation or non-member: `NotFound`.
    async fn update_member(&self, update: MemberUpdate) -> Result<MemberUpdated>;

    /// Replaces the conversation's metadata. The same value (compared as JSON) writes
    /// nothing (`changed: false`); otherwise one `ConversationUpdated` event is written for
    /// `audience` in the same transaction. Unknown conversation: `NotFound`.
    async fn set_metadata(&self, update: MetadataUpdate) -> Result<MetadataUpdated>;

    /// Every user who shares a conversation with `user`, once each.
    async fn peers(&self, user: UserId) -> Result<Vec<UserId>>;

    /// Those of `candidates` who share a conversation with `user`, once each.
    async fn peers_among(&self, user: UserId, candidates: &[UserId]) -> Result<Vec<UserId>>;
}

/// Messages: append with idempotency, history, edit, delete, search, unread.
///
/// ```
/// use messaging_core::store::{HistoryWindow, MessageStore};
/// use messaging_core::ConversationId;
///
/// async fn newest(store: &dyn MessageStore, id: ConversationId) -> messaging_core::Result<()> {
///     let page = store.history(id, HistoryWindow::Latest, 10).await?;
///     assert!(page.windows(2).all(|w| w[0].seq < w[1].seq));
///     Ok(())
/// }
/// ```
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Appends a message at the conversation's next seq (from 1, no gaps, even under
    /// concurrent appends: the seq is taken inside the insert's transaction) and sets the
    /// conversation's `last_seq` and `last_message_at`. Writes one `MessageCreated` event
    /// for `audience` in the same transaction.
    ///
    /// Idempotent on (conversation, sender, `client_msg_id`): if such a message exists
    /// (stored earlier or concurrently), it is returned in its current state with
    /// `created: false`, nothing is written, and no event. Unknown conversation: `NotFound`.
    async fn append(&self, new: NewMessage) -> Result<Appended>;

    /// The message with this id in its current state, or `None`.
    async fn message(&self, id: MessageId) -> Result<Option<Message>>;

    /// The message a sender stored with this idempotency key in a conversation, or `None`.
    async fn find_by_client_msg_id(
        &self,
        conversation_id: ConversationId,
        sender_id: UserId,
        client_msg_id: &str,
    ) -> Result<Option<Message>>;

    /// At most `limit` messages of the window, in ascending seq: the ones closest to the
    /// anchor (`Before(s)`: the highest seqs below `s`; `After(s)`: the lowest above `s`;
    /// `Latest`: the highest). Tombstones included. Keyset access: the cost does not grow
    /// with the depth of the window.
    async fn history(
        &self,
        conversation_id: ConversationId,
        window: HistoryWindow,
        limit: usize,
    ) -> Result<Vec<Message>>;

    /// Replaces the body and sets `edited_at`, writing one `MessageEdited` event for
    /// `audience` in the same transaction. A tombstone: `Conflict`. Unknown: `NotFound`.
    async fn edit(&self, edit: EditMessage) -> Result<Message>;

    /// Turns the message into a tombstone (empty body, no metadata, no attachments, no
    /// reactions, `deleted`; its `reply_to_seq` stays), removes it
    /// from search and writes one `MessageDeleted` event for `audience`. Already deleted:
    /// returns the tombstone with `changed: false` and writes nothing. Unknown: `NotFound`.
    async fn delete(&self, delete: DeleteMessage) -> Result<Deleted>;

    /// Puts `update.user_id`'s reaction `update.emoji` on the message, or takes it off.
    ///
    /// The message's `reactions` summary is kept by the store with the message (not
    /// recomputed per read): one entry per emoji with at least one user, emoji in order of
    /// first reaction, users in order of reaction; an emoji whose last user goes is
    /// removed, and goes last when added again; a user who removes and re-adds goes last.
    /// Adding a reaction the user has, or removing one they do not, changes nothing
    /// (`changed: false`, no event). Adding a new emoji when the user already has
    /// `max_per_user` on the message: `Conflict`. A tombstone: `Conflict`. Unknown:
    /// `NotFound`. Concurrent reactions to one message (from any number of store objects
    /// on one database) are never lost. When it changes, one `Reaction` event (the user,
    /// the emoji, the state) is written for `audience` in the same transaction. Reactions
    /// are not activity: the conversation's `last_message_at` does not move.
    async fn react(&self, update: ReactionUpdate) -> Result<Reacted>;

    /// Messages of the user's conversations (or of one of them) that contain every term as
    /// a word, newest first, never tombstones.
    async fn search(&self, query: SearchQuery) -> Result<Vec<Message>>;

    /// Unread totals of `user`: messages not sent by `user` (the peer's and system
    /// messages) with `seq > read_seq`, not deleted, in conversations `user` has not muted
    /// past `now`.
    async fn unread(&self, user: UserId, now: Timestamp) -> Result<UnreadTotals>;
}

/// The event log: reading it back, and the feed of committed events.
///
/// ```
/// use messaging_core::store::EventLog;
/// use messaging_core::UserId;
///
/// async fn replay(log: &dyn EventLog, user: UserId) -> messaging_core::Result<()> {
///     let head = log.head().await?;
///     for event in log.read_events(user, 0, head, 100).await? {
///         assert!(event.position <= head);
///     }
///     Ok(())
/// }
/// ```
#[async_trait]
pub trait EventLog: Send + Sync {
    /// The position of the newest committed event (0 when the log is empty).
    async fn head(&self) -> Result<u64>;

    /// Events visible to `user` with `after < position <= up_to`, ascending, at most
    /// `limit`. Each message event (reactions included) carries the message in its
    /// current state (a message deleted since is a tombstone, an edited one has its latest
    /// body and reactions); a conversation event carries the conversation in its current
    /// state; a `MemberUpdated` event carries the member's current settings. What the
    /// event itself says is as of the event: a receipt's seq and `at`, a reaction's user,
    /// emoji and state. An event kind the store does not know (written by a newer version)
    /// is skipped and logged.
    async fn read_events(
        &self,
        user: UserId,
        after: u64,
        up_to: u64,
        limit: usize,
    ) -> Result<Vec<LoggedEvent>>;

    /// Attaches a sink to the feed. The store first calls [`FeedSink::start`] with the
    /// head at attach time, then [`FeedSink::committed`] with every later commit's events,
    /// in position order, with no gap and no repeat, after each commit. The store keeps
    /// only a weak reference: dropping the sink detaches it.
    async fn attach_feed(&self, sink: Arc<dyn FeedSink>) -> Result<()>;
}

/// Blocks between users, the last-seen time of each user, and the revocations of users'
/// tokens.
///
/// ```
/// use messaging_core::store::SocialStore;
/// use messaging_core::UserId;
///
/// async fn may_talk(store: &dyn SocialStore, a: UserId, b: UserId) -> messaging_core::Result<bool> {
///     Ok(!store.is_blocked_between(a, b).await?)
/// }
/// ```
#[async_trait]
pub trait SocialStore: Send + Sync {
    /// Records that `blocker` blocks `blocked`; doing it twice is not an error.
    ///
    /// If `blocker` already blocks `max_blocks` users and `blocked` is not one of them:
    /// `Conflict`, and nothing is written. The count and the insert are one atomic step
    /// within this store object (concurrent calls cannot pass the bound together).
    async fn block(&self, blocker: UserId, blocked: UserId, max_blocks: usize) -> Result<()>;

    /// Removes that block; removing a missing block is not an error.
    async fn unblock(&self, blocker: UserId, blocked: UserId) -> Result<()>;

    /// Whether either user blocks the other.
    async fn is_blocked_between(&self, a: UserId, b: UserId) -> Result<bool>;

    /// The users `blocker` blocks, ascending, strictly after `after`, at most `limit`.
    async fn blocks(
        &self,
        blocker: UserId,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<UserId>>;

    /// Records when a user's last session closed (replacing an earlier value).
    async fn set_last_seen(&self, user: UserId, at: Timestamp) -> Result<()>;

    /// The recorded last-seen times of those of `users` that have one.
    async fn last_seen(&self, users: &[UserId]) -> Result<Vec<(UserId, Timestamp)>>;

    /// Records that `user`'s tokens issued at or before `at` are revoked: the stored time
    /// becomes the later of the one already stored and `at`, so a revocation never moves
    /// backwards (an earlier `at`, e.g. from an instance whose clock is behind, changes
    /// nothing and is not an error). Other users' revocations are untouched. Durable when
    /// it returns, like every write; it logs no event.
    async fn revoke(&self, user: UserId, at: Timestamp) -> Result<()>;

    /// The time of `user`'s revocation (see [`SocialStore::revoke`]), or `None` when they
    /// have none.
    ///
    /// Asked on every request and connection, so a store may answer from memory, as long
    /// as a revocation made through this store object is seen by the next call after
    /// `revoke` returned, and one made through another store object on the same database
    /// within a bound the store documents.
    async fn revoked_at(&self, user: UserId) -> Result<Option<Timestamp>>;
}

/// The whole log for durable consumers (the server's webhook deliverer, a host's own
/// indexer), and the consumers' stored positions and leases.
///
/// A consumer reads every event in log order from its stored position and commits the
/// position it has handled; [`Consumer`](crate::Consumer) (from
/// [`Messenger::consumer`](crate::Messenger::consumer)) does so on these calls. A lease
/// makes one holder at a time: on a database shared by several processes, one of them
/// delivers, and another takes over within the lease when it dies. Lease times are the
/// store's own clock (the database server's, where there is one), never the callers', so
/// holders with skewed clocks cannot both hold a lease.
///
/// ```
/// use std::time::Duration;
/// use messaging_core::store::ConsumerLog;
/// use uuid::Uuid;
///
/// /// Reads and commits one batch from where consumer "audit" stands, if it can hold it.
/// async fn one_batch(log: &dyn ConsumerLog, head: u64) -> messaging_core::Result<usize> {
///     let (me, lease) = (Uuid::now_v7(), Duration::from_secs(10));
///     let Some(position) = log.claim_consumer("audit", me, lease, head).await? else {
///         return Ok(0); // another holder's lease is live
///     };
///     let batch = log.read_log(position, head, 100).await?;
///     if let Some(last) = batch.last() {
///         log.commit_consumer("audit", me, last.logged.position, lease).await?;
///     }
///     log.release_consumer("audit", me).await?;
///     Ok(batch.len())
/// }
/// ```
#[async_trait]
pub trait ConsumerLog: Send + Sync {
    /// Every event with `after < position <= up_to`, ascending, at most `limit`, as
    /// [`LogEntry`]s: the event as [`EventLog::read_events`] gives it (objects in their
    /// current state), its actor as logged (see the module docs; `None` for events logged
    /// before the store kept actors), its audience in the order the mutation named it with
    /// each user's `muted_until` of the event's conversation as stored when read, and for
    /// `message.deleted` the attachments the message had before the delete (empty for
    /// other kinds, and for deletes logged before the store kept them). Events of kinds
    /// the store does not know (written by a newer version) are skipped and do not count
    /// towards `limit`, so an empty answer means no event it knows lies in the range.
    /// Callers pass a head they read as `up_to`: every event up to it is committed and
    /// read (the committed log is dense); past the head there is nothing to read. A
    /// bounded number of queries per call, whatever `limit`.
    async fn read_log(&self, after: u64, up_to: u64, limit: usize) -> Result<Vec<LogEntry>>;

    /// Claims consumer `name` for `holder` for `lease`: renews it when `holder` holds it,
    /// takes it over when nobody holds it (never claimed, or released) or the holder's
    /// lease has expired; returns the stored position. `None`, and nothing changed, while
    /// another holder's lease is live. With no stored row yet, `start` is stored at once as
    /// the position (and returned). Lease times are the store's clock.
    async fn claim_consumer(
        &self,
        name: &str,
        holder: Uuid,
        lease: Duration,
        start: u64,
    ) -> Result<Option<u64>>;

    /// Stores `position` (the greater of it and the stored one: a position never moves
    /// backwards) and renews the lease for `lease`, if `holder` still holds consumer
    /// `name` (its lease may have expired meanwhile as long as nobody took it over):
    /// `true`. `false`, and nothing stored, when another holder took it over, it was
    /// released, or it was never claimed.
    async fn commit_consumer(
        &self,
        name: &str,
        holder: Uuid,
        position: u64,
        lease: Duration,
    ) -> Result<bool>;

    /// Gives the lease of `holder` on consumer `name` up, keeping the position: another
    /// holder may claim it at once. Nothing when `holder` does not hold it.
    async fn release_consumer(&self, name: &str, holder: Uuid) -> Result<()>;
}

/// Whether the store can commit: what a health check asks of it.
///
/// Reads answering proves little: a store whose disk is full, whose database is gone or
/// whose writer died still reads. A health check therefore looks at the last commit and,
/// when none is recent, makes one.
///
/// ```
/// use std::time::Duration;
/// use messaging_core::store::StoreHealth;
///
/// async fn can_commit(store: &dyn StoreHealth) -> bool {
///     let recent = store.last_commit().is_some_and(|at| at.elapsed() < Duration::from_secs(2));
///     recent || store.probe_commit().await.is_ok()
/// }
/// ```
#[async_trait]
pub trait StoreHealth: Send + Sync {
    /// When this store object last completed a commit (of any write, probes included), on
    /// the monotonic clock; `None` when none completed since it opened.
    fn last_commit(&self) -> Option<Instant>;

    /// Commits a write that changes nothing a user can see and logs no event, through the
    /// path every mutation takes (the same queue, transaction and durability); resolves once
    /// it is durable. Fails when the store cannot commit now.
    async fn probe_commit(&self) -> Result<()>;
}

/// A complete store: the union of the six contracts, implemented by one backend.
///
/// ```
/// use std::sync::Arc;
/// use messaging_core::Store;
///
/// fn share(store: Arc<dyn Store>) -> (Arc<dyn Store>, Arc<dyn Store>) {
///     (store.clone(), store)
/// }
/// ```
pub trait Store:
    ConversationStore + MessageStore + EventLog + SocialStore + StoreHealth + ConsumerLog
{
}

impl<T> Store for T where
    T: ConversationStore
        + MessageStore
        + EventLog
        + SocialStore
        + StoreHealth
        + ConsumerLog
        + ?Sized
{
}

/// Receives the feed of committed events (see [`EventLog::attach_feed`]).
///
/// Implementations must not block: the feed is shared by every session of the process.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use messaging_core::model::CommittedEvent;
/// use messaging_core::store::FeedSink;
///
/// #[derive(Default)]
/// struct Counter(AtomicU64);
///
/// impl FeedSink for Counter {
///     fn start(&self, head: u64) {
///         self.0.store(head, Ordering::Relaxed);
///     }
///     fn committed(&self, events: &[CommittedEvent]) {
///         if let Some(last) = events.last() {
///             self.0.store(last.logged.position, Ordering::Relaxed);
///         }
///     }
/// }
/// ```
pub trait FeedSink: Send + Sync {
    /// The feed starts after `head`.
    fn start(&self, head: u64);

    /// One commit's events (or several commits'), in position order, never empty.
    fn committed(&self, events: &[CommittedEvent]);
}
