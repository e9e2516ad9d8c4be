//! Moving a store's whole contents into another store: the day a deployment grows from
//! one SQLite file to PostgreSQL, every conversation, message, marker, block and event
//! must arrive with its identity and its log position, so that every cursor a client
//! holds stays valid and `sync` serves after the move exactly what it served before.
//!
//! The contents are read and written in [`Section`]s (conversations, members, messages,
//! the log, blocks, last-seen times, revocations, durable consumers), each in a fixed
//! order by key, page by page: a source implements [`StoreExport`], a target
//! [`StoreImport`]. [`move_store`] copies them; every page is written together with a
//! [`Checkpoint`] naming the last record it holds, in one transaction of the target, so a
//! move stopped anywhere (killed, the network gone) resumes from its last page and ends
//! identical to a move never stopped. [`verify_move`] then reads both stores back and
//! compares every record, and every user's conversation list and unread totals, as
//! canonical JSON.
//!
//! What a page holds is the store's own state, not a replay of mutations: nothing is
//! re-validated, no policy is consulted, no event is logged by the copy. The log itself
//! is copied position by position; a position the source cannot read (an event of a kind
//! this version does not know) stops the move rather than leave a hole in the target.

mod mover;
mod verify;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::id::{ConversationId, UserId};
use crate::model::{Conversation, LogEntry, Message};
use crate::store::Store;
use crate::time::Timestamp;

pub use mover::{MoveOptions, MoveReport, Progress, move_store, source_digest};
pub use verify::{Mismatch, VerifyReport, verify_move};

/// A part of a store's contents, copied in this order (later sections name the objects
/// of earlier ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Section {
    /// Every conversation ([`Conversation`]), by id.
    Conversations,
    /// Every member's own state of a conversation ([`MemberRecord`]), by user then
    /// conversation.
    Members,
    /// Every message ([`Message`]: tombstones, attachments and reactions included), by id.
    Messages,
    /// Every event of the log ([`LogEntry`]), by position.
    Log,
    /// Every block ([`BlockRecord`]), by blocker then blocked.
    Blocks,
    /// Every user's last-seen time ([`UserTime`]), by user.
    LastSeen,
    /// Every revocation of a user's tokens ([`UserTime`]), by user.
    Revocations,
    /// Every durable consumer's position ([`ConsumerRecord`]), by name.
    Consumers,
}

impl Section {
    /// Every section, in the order a move copies them.
    pub const ALL: [Self; 8] = [
        Self::Conversations,
        Self::Members,
        Self::Messages,
        Self::Log,
        Self::Blocks,
        Self::LastSeen,
        Self::Revocations,
        Self::Consumers,
    ];

    /// The section's name, as progress and reports show it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Conversations => "conversations",
            Self::Members => "members",
            Self::Messages => "messages",
            Self::Log => "log",
            Self::Blocks => "blocks",
            Self::LastSeen => "last_seen",
            Self::Revocations => "revocations",
            Self::Consumers => "consumers",
        }
    }
}

/// Where a page of a section starts: strictly after this key in the section's order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum After {
    /// From the section's first record.
    Start,
    /// After the record with this id (conversations, messages: their id; last-seen times
    /// and revocations: the user).
    Id(Uuid),
    /// After this pair (members: user, conversation; blocks: blocker, blocked).
    Pair(Uuid, Uuid),
    /// After this log position.
    Position(u64),
    /// After this name (consumers).
    Name(String),
}

impl After {
    /// The id a page of `section` starts after (`None` from the start); `Invalid` for a
    /// key of another shape.
    pub fn id(&self, section: Section) -> Result<Option<Uuid>> {
        match self {
            Self::Start => Ok(None),
            Self::Id(id) => Ok(Some(*id)),
            other => Err(other.wrong(section)),
        }
    }

    /// The pair a page of `section` starts after (`None` from the start); `Invalid` for a
    /// key of another shape.
    pub fn pair(&self, section: Section) -> Result<Option<(Uuid, Uuid)>> {
        match self {
            Self::Start => Ok(None),
            Self::Pair(a, b) => Ok(Some((*a, *b))),
            other => Err(other.wrong(section)),
        }
    }

    /// The log position a page starts after (0 from the start); `Invalid` for a key of
    /// another shape.
    pub fn position(&self, section: Section) -> Result<u64> {
        match self {
            Self::Start => Ok(0),
            Self::Position(position) => Ok(*position),
            other => Err(other.wrong(section)),
        }
    }

    /// The name a page of `section` starts after (`None` from the start); `Invalid` for a
    /// key of another shape.
    pub fn name(&self, section: Section) -> Result<Option<&str>> {
        match self {
            Self::Start => Ok(None),
            Self::Name(name) => Ok(Some(name)),
            other => Err(other.wrong(section)),
        }
    }

    fn wrong(&self, section: Section) -> Error {
        Error::invalid(format!("a page of {} cannot start after {self:?}", section.name()))
    }
}

/// One member's own state of one conversation: the markers with their times and the
/// member's settings. Who the peer is, the context and the conversation's activity follow
/// from the [`Conversation`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MemberRecord {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The member.
    pub user_id: UserId,
    /// The member's read marker.
    pub read_seq: u64,
    /// When the read marker last moved.
    pub read_at: Option<Timestamp>,
    /// The member's delivered marker.
    pub delivered_seq: u64,
    /// When the delivered marker last moved.
    pub delivered_at: Option<Timestamp>,
    /// Muted until then (as stored: a time that has passed is kept).
    pub muted_until: Option<Timestamp>,
    /// Archived by the member.
    pub archived: bool,
}

impl MemberRecord {
    /// A member's state, as a store reads it.
    #[must_use]
    #[allow(clippy::too_many_arguments, reason = "one argument per stored column")]
    pub fn new(
        conversation_id: ConversationId,
        user_id: UserId,
        read_seq: u64,
        read_at: Option<Timestamp>,
        delivered_seq: u64,
        delivered_at: Option<Timestamp>,
        muted_until: Option<Timestamp>,
        archived: bool,
    ) -> Self {
        Self {
            conversation_id,
            user_id,
            read_seq,
            read_at,
            delivered_seq,
            delivered_at,
            muted_until,
            archived,
        }
    }
}

/// One block: `blocker` blocked `blocked`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRecord {
    /// Who blocked.
    pub blocker: UserId,
    /// Whom.
    pub blocked: UserId,
}

/// A time kept per user: a last-seen time, or when the user's tokens were revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserTime {
    /// The user.
    pub user_id: UserId,
    /// The time.
    pub at: Timestamp,
}

/// A durable consumer's stored position. Its lease is not copied: nobody holds a consumer
/// of a store that is being moved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerRecord {
    /// The consumer's name.
    pub name: String,
    /// The last position it handled.
    pub position: u64,
}

/// A page of one section, in the section's order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Records {
    /// Conversations.
    Conversations(Vec<Conversation>),
    /// Members' states.
    Members(Vec<MemberRecord>),
    /// Messages.
    Messages(Vec<Message>),
    /// Log entries.
    Log(Vec<LogEntry>),
    /// Blocks.
    Blocks(Vec<BlockRecord>),
    /// Last-seen times.
    LastSeen(Vec<UserTime>),
    /// Revocations.
    Revocations(Vec<UserTime>),
    /// Consumers' positions.
    Consumers(Vec<ConsumerRecord>),
}

impl Records {
    /// An empty page of `section`.
    #[must_use]
    pub fn empty(section: Section) -> Self {
        match section {
            Section::Conversations => Self::Conversations(Vec::new()),
            Section::Members => Self::Members(Vec::new()),
            Section::Messages => Self::Messages(Vec::new()),
            Section::Log => Self::Log(Vec::new()),
            Section::Blocks => Self::Blocks(Vec::new()),
            Section::LastSeen => Self::LastSeen(Vec::new()),
            Section::Revocations => Self::Revocations(Vec::new()),
            Section::Consumers => Self::Consumers(Vec::new()),
        }
    }

    /// The section the page is of.
    #[must_use]
    pub fn section(&self) -> Section {
        match self {
            Self::Conversations(_) => Section::Conversations,
            Self::Members(_) => Section::Members,
            Self::Messages(_) => Section::Messages,
            Self::Log(_) => Section::Log,
            Self::Blocks(_) => Section::Blocks,
            Self::LastSeen(_) => Section::LastSeen,
            Self::Revocations(_) => Section::Revocations,
            Self::Consumers(_) => Section::Consumers,
        }
    }

    /// How many records the page holds.
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            Self::Conversations(v) => v.len(),
            Self::Members(v) => v.len(),
            Self::Messages(v) => v.len(),
            Self::Log(v) => v.len(),
            Self::Blocks(v) => v.len(),
            Self::LastSeen(v) | Self::Revocations(v) => v.len(),
            Self::Consumers(v) => v.len(),
        }
    }

    /// Whether the page holds no record.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key of the page's last record (where the next page starts); `None` when empty.
    #[must_use]
    pub fn last_key(&self) -> Option<After> {
        Some(match self {
            Self::Conversations(v) => After::Id(*v.last()?.id.as_uuid()),
            Self::Members(v) => {
                let last = v.last()?;
                After::Pair(*last.user_id.as_uuid(), *last.conversation_id.as_uuid())
            }
            Self::Messages(v) => After::Id(*v.last()?.id.as_uuid()),
            Self::Log(v) => After::Position(v.last()?.position()),
            Self::Blocks(v) => {
                let last = v.last()?;
                After::Pair(*last.blocker.as_uuid(), *last.blocked.as_uuid())
            }
            Self::LastSeen(v) | Self::Revocations(v) => After::Id(*v.last()?.user_id.as_uuid()),
            Self::Consumers(v) => After::Name(v.last()?.name.clone()),
        })
    }
}

/// Where an unfinished import stands, kept by the target with every page it writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Checkpoint {
    /// The source's log head when the move began: a resumed move checks the source still
    /// has it (a source written to meanwhile cannot be resumed from).
    pub source_head: u64,
    /// A digest of what the source holds that no event records (blocks, last-seen times,
    /// revocations, consumers' positions) when the move began, checked with the head.
    #[serde(default)]
    pub source_digest: String,
    /// The section being copied.
    pub section: Section,
    /// The last record of `section` written.
    pub after: After,
    /// Records of `section` written so far.
    pub copied: u64,
}

impl Checkpoint {
    /// The checkpoint of a move that has written nothing yet.
    #[must_use]
    pub fn start(source_head: u64) -> Self {
        Self {
            source_head,
            source_digest: String::new(),
            section: Section::Conversations,
            after: After::Start,
            copied: 0,
        }
    }

    /// The checkpoint after a page of `section` that ends at `after`, `copied` records
    /// of the section in all.
    #[must_use]
    pub fn at(source_head: u64, section: Section, after: After, copied: u64) -> Self {
        Self { source_head, source_digest: String::new(), section, after, copied }
    }

    /// The checkpoint with the source's digest (see [`Checkpoint::source_digest`]).
    #[must_use]
    pub fn with_digest(mut self, digest: impl Into<String>) -> Self {
        self.source_digest = digest.into();
        self
    }

    /// Whether `other` is of the same move's source (head and digest alike).
    #[must_use]
    pub fn same_source(&self, other: &Self) -> bool {
        self.source_head == other.source_head && self.source_digest == other.source_digest
    }
}

/// What a target holds, as an import sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImportState {
    /// Nothing: a move may begin.
    Empty,
    /// An import that has not finished, stopped at this checkpoint.
    Unfinished(Checkpoint),
    /// Data of its own (or of a finished import): no move may write into it.
    Holds,
}

/// A store whose whole contents can be read out, section by section (the source of a
/// move, and either side of its verification).
///
/// ```
/// use messaging_core::transfer::{After, Section, StoreExport};
///
/// /// How many messages the store holds, counted page by page.
/// async fn messages(store: &dyn StoreExport) -> messaging_core::Result<usize> {
///     let (mut after, mut total) = (After::Start, 0);
///     loop {
///         let page = store.export(Section::Messages, &after, 500).await?;
///         let Some(last) = page.last_key() else { return Ok(total) };
///         total += page.len();
///         after = last;
///     }
/// }
/// ```
#[async_trait]
pub trait StoreExport: Store {
    /// The records of `section` strictly after `after` in the section's order (see
    /// [`Section`]), at most `limit`; an empty page at the end. The log's page is
    /// [`ConsumerLog::read_log`](crate::store::ConsumerLog::read_log) from `after` to the
    /// head.
    async fn export(&self, section: Section, after: &After, limit: usize) -> Result<Records>;

    /// How many records `section` holds.
    async fn count(&self, section: Section) -> Result<u64>;
}

/// A store that can take another store's contents (the target of a move).
///
/// ```
/// use messaging_core::transfer::{ImportState, StoreImport};
///
/// /// Whether a move may begin in `target`.
/// async fn may_begin(target: &dyn StoreImport) -> messaging_core::Result<bool> {
///     Ok(matches!(target.import_state().await?, ImportState::Empty))
/// }
/// ```
#[async_trait]
pub trait StoreImport: Store {
    /// Whether the store is empty, holds an unfinished import, or holds data.
    async fn import_state(&self) -> Result<ImportState>;

    /// Writes `records` as they are (ids, seqs, positions, times) and keeps `checkpoint`
    /// as where the import stands, in one transaction: after a failure, either both are
    /// stored or neither. An empty page only stores the checkpoint.
    async fn import(&self, records: &Records, checkpoint: &Checkpoint) -> Result<()>;

    /// Ends the import: the log goes on after `head`, the checkpoint is dropped, and the
    /// store serves as if it had written everything itself.
    async fn finish_import(&self, head: u64) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_of_another_sections_shape_is_invalid() {
        let nil = Uuid::nil();
        let refused = [
            After::Position(3).id(Section::Messages).err(),
            After::Pair(nil, nil).id(Section::Conversations).err(),
            After::Id(nil).pair(Section::Blocks).err(),
            After::Name("x".into()).pair(Section::Members).err(),
            After::Id(nil).position(Section::Log).err(),
            After::Position(1).name(Section::Consumers).err(),
        ];
        for error in refused {
            assert!(matches!(error, Some(Error::Invalid(_))), "{error:?}");
        }
        let error = After::Start
            .id(Section::Messages)
            .map(|_| ())
            .and(After::Name("x".into()).id(Section::Members).map(|_| ()));
        assert!(error.is_err_and(|e| e.to_string().contains("members")));
        assert_eq!(After::Start.position(Section::Log).ok(), Some(0));
        assert_eq!(After::Pair(nil, nil).pair(Section::Blocks).ok(), Some(Some((nil, nil))));
        assert_eq!(After::Name("a".into()).name(Section::Consumers).ok(), Some(Some("a")));
    }

    #[test]
    fn a_checkpoint_knows_its_source() {
        let a = Checkpoint::start(9).with_digest("d1");
        assert!(a.same_source(
            &Checkpoint::at(9, Section::Log, After::Position(3), 3).with_digest("d1")
        ));
        assert!(!a.same_source(&Checkpoint::start(9).with_digest("d2")));
        assert!(!a.same_source(&Checkpoint::start(10).with_digest("d1")));
        // A checkpoint stored before digests existed reads with an empty one.
        let old: Checkpoint = serde_json::from_str(
            r#"{"source_head":9,"section":"log","after":{"position":3},"copied":3}"#,
        )
        .unwrap_or_else(|_| Checkpoint::start(0));
        assert_eq!((old.source_head, old.source_digest.as_str()), (9, ""));
    }
}
