//! The SQL of every mutation, run by the writer inside its batch transaction, one module
//! per concern:
//!
//! - `conversations`: open, markers, member settings, metadata;
//! - `messages`: append, edit, delete, reactions;
//! - `social`: blocks, last-seen times, revocations, the health probe;
//! - `consumers`: the durable consumers' positions and leases;
//! - this module: [`WriteCtx`], the event rows, and the audience index of the log.
//!
//! Each mutation makes one change and writes its event row in the same transaction, at
//! the next log position (the audience index follows in bulk, see [`index_audience`]).
//!
//! [`WriteCtx`], what a mutation is given, is defined here rather than beside the writer
//! thread that builds it, so that the mutations do not depend on the thread that runs them.

mod consumers;
mod conversations;
mod messages;
mod social;

use messaging_core::id::{ConversationId, UserId};
use messaging_core::model::{CommittedEvent, Event, LoggedEvent};
use messaging_core::time::Timestamp;
use rusqlite::{Connection, params};

use crate::codec::int;
use crate::error::StoreResult;

pub(crate) use consumers::{claim_consumer, commit_consumer, release_consumer};
pub(crate) use conversations::{mark, open_direct, set_metadata, update_member};
pub(crate) use messages::{append, delete, edit, react};
pub(crate) use social::{block, health_probe, revoke, set_last_seen, unblock};

/// What a job sees while it runs inside the batch transaction.
pub(crate) struct WriteCtx<'a> {
    /// The write connection, inside the batch transaction.
    pub(crate) conn: &'a Connection,
    head: &'a mut u64,
    events: &'a mut Vec<CommittedEvent>,
    index_requested: &'a mut bool,
}

impl<'a> WriteCtx<'a> {
    /// The context of one job of the writer's batch: its connection, the log head it takes
    /// positions from, the batch's events and its request for the audience index.
    pub(crate) fn new(
        conn: &'a Connection,
        head: &'a mut u64,
        events: &'a mut Vec<CommittedEvent>,
        index_requested: &'a mut bool,
    ) -> Self {
        Self { conn, head, events, index_requested }
    }

    /// Takes the next log position.
    pub(crate) fn next_position(&mut self) -> u64 {
        *self.head += 1;
        *self.head
    }

    /// Queues an event (already written to the log tables) for the feed after commit.
    pub(crate) fn emit(&mut self, event: CommittedEvent) {
        self.events.push(event);
    }

    /// Asks for the audience index to cover this batch's events when it commits.
    pub(crate) fn request_audience_index(&mut self) {
        *self.index_requested = true;
    }
}

/// An event row: its kind and conversation, what it points at (read back in its current
/// state), what the event says as of itself (a receipt's seq and time, a reaction's user
/// and emoji), who caused it, and what a delete removed. Fields a kind does not use stay
/// NULL.
struct LogRow<'a> {
    kind: i64,
    conversation_id: ConversationId,
    /// Who caused the event; `None` for the host's calls.
    actor: Option<UserId>,
    /// A delete's removed attachments, as their JSON array (`None` when there were none).
    removed_attachments: Option<String>,
    /// The message of a message or reaction event.
    message_pk: Option<i64>,
    /// Whom a receipt, a reaction or a member update is about.
    user_id: Option<UserId>,
    /// A receipt's marker value.
    seq: Option<u64>,
    /// A receipt's time.
    at: Option<Timestamp>,
    /// A reaction's emoji.
    emoji: Option<&'a str>,
}

impl LogRow<'_> {
    /// A row of `kind` about `conversation_id`, caused by `actor`, that says nothing more
    /// (yet).
    fn new(kind: i64, conversation_id: ConversationId, actor: Option<UserId>) -> Self {
        Self {
            kind,
            conversation_id,
            actor,
            removed_attachments: None,
            message_pk: None,
            user_id: None,
            seq: None,
            at: None,
            emoji: None,
        }
    }
}

/// Writes `row` at the next log position with its `audience`, and queues `event` for the
/// feed after commit.
fn log(
    ctx: &mut WriteCtx<'_>,
    row: &LogRow<'_>,
    event: Event,
    audience: &[UserId],
) -> StoreResult<()> {
    let position = ctx.next_position();
    let audience_bytes: Vec<u8> = audience.iter().flat_map(|u| *u.as_bytes()).collect();
    ctx.conn
        .prepare_cached(
            "INSERT INTO events (position, kind, conversation_id, message_pk, user_id, seq, \
             at, emoji, audience, actor, removed_attachments) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?
        .execute(params![
            int(position),
            row.kind,
            row.conversation_id.as_bytes(),
            row.message_pk,
            row.user_id.map(|u| *u.as_bytes()),
            row.seq.map(int),
            row.at.map(Timestamp::as_millis),
            row.emoji,
            audience_bytes,
            row.actor.map(|u| *u.as_bytes()),
            row.removed_attachments,
        ])?;
    ctx.emit(CommittedEvent {
        logged: LoggedEvent { position, event },
        audience: audience.to_vec(),
    });
    Ok(())
}

/// Brings the per-user audience index up to `up_to`: reads the audience of every event
/// after `from` (a sequential scan of the log's tail), then inserts the rows sorted by
/// (user, position), so each user's index page is written once per call rather than once
/// per event. Records the new mark in the same transaction.
pub(crate) fn index_audience(conn: &Connection, from: u64, up_to: u64) -> StoreResult<()> {
    if up_to <= from {
        return Ok(());
    }
    let mut rows: Vec<([u8; 16], i64)> = Vec::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT position, audience FROM events WHERE position > ?1 AND position <= ?2",
        )?;
        let mut query = stmt.query(params![int(from), int(up_to)])?;
        while let Some(row) = query.next()? {
            let position: i64 = row.get(0)?;
            let audience = row.get_ref(1).and_then(|v| Ok(v.as_blob()?))?;
            for user in audience.chunks_exact(16) {
                let mut id = [0_u8; 16];
                id.copy_from_slice(user);
                rows.push((id, position));
            }
        }
    }
    rows.sort_unstable();
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO event_audience (user_id, position) VALUES (?1, ?2)",
    )?;
    for (user, position) in &rows {
        insert.execute(params![user, position])?;
    }
    conn.prepare_cached("UPDATE meta SET value = ?1 WHERE key = 'audience_indexed_upto'")?
        .execute(params![int(up_to)])?;
    Ok(())
}
