//! The SQL of every mutation, run by the writer inside its batch transaction.
//!
//! Each function makes one change and writes its event rows (the event, then one audience
//! row per recipient) in the same transaction, at the next log position.
//!
//! [`WriteCtx`], what a mutation is given, is defined here rather than beside the writer
//! thread that builds it, so that the mutations do not depend on the thread that runs them.

use messaging_core::Error;
use messaging_core::id::{ConversationId, MessageId, UserId};
use messaging_core::model::{
    CommittedEvent, Conversation, ConversationKind, Event, LoggedEvent, Message, Receipt,
    ReceiptKind,
};
use messaging_core::store::{
    Appended, DeleteMessage, Deleted, EditMessage, MarkUpdate, Marked, NewConversation, NewMessage,
    Opened,
};
use messaging_core::time::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

use crate::codec::{self, MESSAGE_COLUMNS, int, metadata_text, uint};
use crate::error::StoreResult;
use crate::read;
use crate::vocab::{activity_bucket, kind};

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

/// What an event row points at.
struct LogRow {
    kind: i64,
    conversation_id: ConversationId,
    message_pk: Option<i64>,
    receipt: Option<(UserId, u64)>,
}

fn log(ctx: &mut WriteCtx<'_>, row: &LogRow, event: Event, audience: &[UserId]) -> StoreResult<()> {
    let position = ctx.next_position();
    let audience_bytes: Vec<u8> = audience.iter().flat_map(|u| *u.as_bytes()).collect();
    ctx.conn
        .prepare_cached(
            "INSERT INTO events (position, kind, conversation_id, message_pk, user_id, seq, \
             audience) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            int(position),
            row.kind,
            row.conversation_id.as_bytes(),
            row.message_pk,
            row.receipt.map(|(u, _)| *u.as_bytes()),
            row.receipt.map(|(_, s)| int(s)),
            audience_bytes,
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

pub(crate) fn open_direct(ctx: &mut WriteCtx<'_>, new: &NewConversation) -> StoreResult<Opened> {
    let mut members = new.members;
    members.sort();
    let context = new.context.as_deref().unwrap_or("");
    let inserted = ctx
        .conn
        .prepare_cached(
            // `num`: the next conversation number (the writer is alone, so max + 1 is
            // free; see migration 4), read from the end of its index.
            "INSERT INTO conversations (id, user_lo, user_hi, context, created_at, num) \
             VALUES (?1, ?2, ?3, ?4, ?5, \
                     (SELECT coalesce(max(num), 0) + 1 FROM conversations)) \
             ON CONFLICT (user_lo, user_hi, context) DO NOTHING",
        )?
        .execute(params![
            new.id.as_bytes(),
            members[0].as_bytes(),
            members[1].as_bytes(),
            context,
            new.created_at.as_millis(),
        ])?;
    if inserted == 0 {
        let existing = read::find_direct(ctx.conn, members[0], members[1], context)?
            .ok_or_else(|| Error::unavailable("conversation vanished during open"))?;
        return Ok(Opened { conversation: existing, created: false });
    }
    let mut member_stmt = ctx.conn.prepare_cached(
        "INSERT INTO members (user_id, conversation_id, peer_id, activity_bucket) \
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (user, peer) in [(members[0], members[1]), (members[1], members[0])] {
        member_stmt.execute(params![
            user.as_bytes(),
            new.id.as_bytes(),
            peer.as_bytes(),
            activity_bucket(new.created_at.as_millis())
        ])?;
    }
    drop(member_stmt);
    let conversation = Conversation {
        id: new.id,
        kind: ConversationKind::Direct,
        context: new.context.clone().filter(|c| !c.is_empty()),
        members,
        created_at: new.created_at,
        last_message_at: None,
        last_seq: 0,
    };
    let row = LogRow {
        kind: kind::CONVERSATION_CREATED,
        conversation_id: new.id,
        message_pk: None,
        receipt: None,
    };
    log(ctx, &row, Event::ConversationCreated(conversation.clone()), &new.audience)?;
    Ok(Opened { conversation, created: true })
}

/// The message with this id and its row key.
fn message_by_id(ctx: &WriteCtx<'_>, id: MessageId) -> StoreResult<Option<(i64, Message)>> {
    Ok(ctx
        .conn
        .prepare_cached(&format!("SELECT m.pk, {MESSAGE_COLUMNS} FROM messages m WHERE m.id = ?1"))?
        .query_row(params![id.as_bytes()], |row| Ok((row.get(0)?, codec::message(row, 1)?)))
        .optional()?)
}

pub(crate) fn append(ctx: &mut WriteCtx<'_>, new: &NewMessage) -> StoreResult<Appended> {
    let at = new.created_at.as_millis();
    // No RETURNING: SQLite materializes RETURNING rows in an ephemeral table, which cost
    // a B-tree open and close per statement on the writer's hot path. The writer is the
    // only one writing, so reading `last_seq` and then setting it is race-free.
    let (last_seq, lo, hi, last_activity): (i64, [u8; 16], [u8; 16], i64) = ctx
        .conn
        .prepare_cached(
            "SELECT last_seq, user_lo, user_hi, COALESCE(last_message_at, created_at) \
             FROM conversations WHERE id = ?1",
        )?
        .query_row(params![new.conversation_id.as_bytes()], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .optional()?
        .ok_or_else(|| Error::not_found("no such conversation"))?;
    // Seqs run from 1 without gaps, so the message replied to exists (a tombstone counts)
    // exactly when its seq is in range. Out of range, a retry still returns the original
    // (the retry is recognised first) and anything else is refused before writing.
    if new.reply_to_seq.is_some_and(|reply| reply == 0 || reply > uint(last_seq)) {
        if let Some(key) = new.client_msg_id.as_deref()
            && let Some(message) =
                read::find_by_client_msg_id(ctx.conn, new.conversation_id, new.sender_id, key)?
        {
            return Ok(Appended { message, created: false });
        }
        return Err(Error::not_found("no message at reply_to_seq in this conversation").into());
    }
    let seq = last_seq + 1;
    let attachments = codec::attachments_text(&new.attachments)?;
    // A retried `client_msg_id` is recognised by the unique index itself: the insert does
    // nothing and the stored message is returned. Nothing was written before it, so the
    // retry writes nothing at all (looking the key up first cost an index seek per send).
    let inserted = ctx
        .conn
        .prepare_cached(
            "INSERT INTO messages (id, conversation_id, seq, sender_id, body, metadata, \
             client_msg_id, created_at, attachments, reply_to_seq) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
             ON CONFLICT (conversation_id, sender_id, client_msg_id) \
             WHERE client_msg_id IS NOT NULL DO NOTHING",
        )?
        .execute(params![
            new.id.as_bytes(),
            new.conversation_id.as_bytes(),
            seq,
            codec::sender_bytes(new.sender_id),
            new.body,
            metadata_text(new.metadata.as_ref()),
            new.client_msg_id,
            at,
            attachments,
            new.reply_to_seq.map(int),
        ])?;
    if inserted == 0 {
        let key = new.client_msg_id.as_deref().unwrap_or_default();
        let message =
            read::find_by_client_msg_id(ctx.conn, new.conversation_id, new.sender_id, key)?
                .ok_or_else(|| {
                    Error::unavailable("a message insert was ignored without a retry")
                })?;
        return Ok(Appended { message, created: false });
    }
    ctx.conn
        .prepare_cached(
            "UPDATE conversations SET last_seq = ?2, last_message_at = ?3 WHERE id = ?1",
        )?
        .execute(params![new.conversation_id.as_bytes(), seq, at])?;
    let pk = ctx.conn.last_insert_rowid();
    // The members' list index holds the activity's second: most messages leave it as is.
    let bucket = activity_bucket(at);
    if bucket != activity_bucket(last_activity) {
        let mut activity = ctx.conn.prepare_cached(
            "UPDATE members SET activity_bucket = ?3 \
             WHERE user_id = ?1 AND conversation_id = ?2",
        )?;
        for member in [lo, hi] {
            activity.execute(params![member, new.conversation_id.as_bytes(), bucket])?;
        }
    }
    let message = new.stored(uint(seq));
    let row = LogRow {
        kind: kind::MESSAGE_CREATED,
        conversation_id: new.conversation_id,
        message_pk: Some(pk),
        receipt: None,
    };
    log(ctx, &row, Event::MessageCreated(message.clone()), &new.audience)?;
    Ok(Appended { message, created: true })
}

pub(crate) fn edit(ctx: &mut WriteCtx<'_>, edit: &EditMessage) -> StoreResult<Message> {
    let (pk, mut message) =
        message_by_id(ctx, edit.id)?.ok_or_else(|| Error::not_found("no such message"))?;
    if message.deleted {
        return Err(Error::conflict("the message was deleted").into());
    }
    ctx.conn
        .prepare_cached("UPDATE messages SET body = ?2, edited_at = ?3 WHERE pk = ?1")?
        .execute(params![pk, edit.body, edit.edited_at.as_millis()])?;
    message.body.clone_from(&edit.body);
    message.edited_at = Some(edit.edited_at);
    let row = LogRow {
        kind: kind::MESSAGE_EDITED,
        conversation_id: message.conversation_id,
        message_pk: Some(pk),
        receipt: None,
    };
    log(ctx, &row, Event::MessageEdited(message.clone()), &edit.audience)?;
    Ok(message)
}

pub(crate) fn delete(ctx: &mut WriteCtx<'_>, delete: &DeleteMessage) -> StoreResult<Deleted> {
    let (pk, mut message) =
        message_by_id(ctx, delete.id)?.ok_or_else(|| Error::not_found("no such message"))?;
    if message.deleted {
        return Ok(Deleted { message, changed: false });
    }
    ctx.conn
        .prepare_cached(
            "UPDATE messages SET deleted = 1, body = '', metadata = NULL, attachments = '[]', \
             reactions = '[]' WHERE pk = ?1",
        )?
        .execute(params![pk])?;
    message.deleted = true;
    message.body.clear();
    message.metadata = None;
    message.attachments.clear();
    message.reactions.clear();
    let row = LogRow {
        kind: kind::MESSAGE_DELETED,
        conversation_id: message.conversation_id,
        message_pk: Some(pk),
        receipt: None,
    };
    log(ctx, &row, Event::MessageDeleted(message.clone()), &delete.audience)?;
    Ok(Deleted { message, changed: true })
}

pub(crate) fn mark(ctx: &mut WriteCtx<'_>, update: &MarkUpdate) -> StoreResult<Marked> {
    let column = match update.kind {
        ReceiptKind::Read => "read_seq",
        ReceiptKind::Delivered => "delivered_seq",
    };
    let (current, last_seq): (i64, i64) = ctx
        .conn
        .prepare_cached(&format!(
            "SELECT mb.{column}, c.last_seq FROM members mb \
             JOIN conversations c ON c.id = mb.conversation_id \
             WHERE mb.user_id = ?1 AND mb.conversation_id = ?2"
        ))?
        .query_row(params![update.user_id.as_bytes(), update.conversation_id.as_bytes()], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?
        .ok_or_else(|| Error::not_found("no such conversation"))?;
    let target = int(update.up_to_seq).min(last_seq);
    if target <= current {
        return Ok(Marked { seq: uint(current), moved: false });
    }
    ctx.conn
        .prepare_cached(&format!(
            "UPDATE members SET {column} = ?3 WHERE user_id = ?1 AND conversation_id = ?2"
        ))?
        .execute(params![update.user_id.as_bytes(), update.conversation_id.as_bytes(), target])?;
    let seq = uint(target);
    let row = LogRow {
        kind: match update.kind {
            ReceiptKind::Read => kind::RECEIPT_READ,
            ReceiptKind::Delivered => kind::RECEIPT_DELIVERED,
        },
        conversation_id: update.conversation_id,
        message_pk: None,
        receipt: Some((update.user_id, seq)),
    };
    let receipt = Receipt {
        conversation_id: update.conversation_id,
        user_id: update.user_id,
        kind: update.kind,
        seq,
    };
    log(ctx, &row, Event::Receipt(receipt), &update.audience)?;
    Ok(Marked { seq, moved: true })
}

/// Records that `blocker` blocks `blocked`, unless that would make more than `max_blocks`
/// blocks of `blocker`'s (`Conflict`, nothing written); an existing block is kept as is.
/// The writer runs one job at a time, so the count and the insert are one atomic step.
pub(crate) fn block(
    ctx: &WriteCtx<'_>,
    blocker: UserId,
    blocked: UserId,
    max_blocks: usize,
) -> StoreResult<()> {
    let exists = ctx
        .conn
        .prepare_cached("SELECT 1 FROM blocks WHERE blocker = ?1 AND blocked = ?2")?
        .query_row(params![blocker.as_bytes(), blocked.as_bytes()], |_| Ok(()))
        .optional()?
        .is_some();
    if exists {
        return Ok(());
    }
    let count: i64 = ctx
        .conn
        .prepare_cached("SELECT count(*) FROM blocks WHERE blocker = ?1")?
        .query_row(params![blocker.as_bytes()], |row| row.get(0))?;
    if uint(count) >= max_blocks as u64 {
        return Err(Error::conflict("too many blocked users").into());
    }
    ctx.conn
        .prepare_cached("INSERT INTO blocks (blocker, blocked) VALUES (?1, ?2)")?
        .execute(params![blocker.as_bytes(), blocked.as_bytes()])?;
    Ok(())
}

pub(crate) fn unblock(ctx: &WriteCtx<'_>, blocker: UserId, blocked: UserId) -> StoreResult<()> {
    ctx.conn
        .prepare_cached("DELETE FROM blocks WHERE blocker = ?1 AND blocked = ?2")?
        .execute(params![blocker.as_bytes(), blocked.as_bytes()])?;
    Ok(())
}

/// A write nobody sees and no event logs: the health probe's commit. It rewrites one
/// `meta` row, so the commit writes and syncs like any other.
pub(crate) fn health_probe(ctx: &WriteCtx<'_>) -> StoreResult<()> {
    ctx.conn
        .prepare_cached(
            "INSERT INTO meta (key, value) VALUES ('health_probe', 1) \
             ON CONFLICT (key) DO UPDATE SET value = value + 1",
        )?
        .execute([])?;
    Ok(())
}

pub(crate) fn set_last_seen(ctx: &WriteCtx<'_>, user: UserId, at: Timestamp) -> StoreResult<()> {
    ctx.conn
        .prepare_cached(
            "INSERT INTO last_seen (user_id, at) VALUES (?1, ?2) \
             ON CONFLICT (user_id) DO UPDATE SET at = excluded.at",
        )?
        .execute(params![user.as_bytes(), at.as_millis()])?;
    Ok(())
}
