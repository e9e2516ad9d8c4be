//! Message writes: append (gap-free seqs, idempotent by the unique key), edit, delete
//! (a tombstone), reactions (the summary kept on the message row).

use messaging_core::Error;
use messaging_core::id::MessageId;
use messaging_core::model::{Event, Message, ReactionChange, ReactionState};
use messaging_core::store::{
    Appended, DeleteMessage, Deleted, EditMessage, NewMessage, Reacted, ReactionUpdate,
    apply_reaction,
};
use rusqlite::{OptionalExtension, params};

use super::{LogRow, WriteCtx, log};
use crate::codec::{self, MESSAGE_COLUMNS, int, metadata_text, uint};
use crate::error::StoreResult;
use crate::read;
use crate::vocab::{activity_bucket, kind};

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
        message_pk: Some(pk),
        ..LogRow::new(kind::MESSAGE_CREATED, new.conversation_id, new.sender_id)
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
        message_pk: Some(pk),
        ..LogRow::new(kind::MESSAGE_EDITED, message.conversation_id, edit.actor)
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
    // What the message held, for the consumers that delete the files (see migration 7).
    let removed = std::mem::take(&mut message.attachments);
    let removed_attachments =
        if removed.is_empty() { None } else { Some(codec::attachments_text(&removed)?) };
    message.deleted = true;
    message.body.clear();
    message.metadata = None;
    message.reactions.clear();
    let row = LogRow {
        message_pk: Some(pk),
        removed_attachments,
        ..LogRow::new(kind::MESSAGE_DELETED, message.conversation_id, delete.actor)
    };
    log(ctx, &row, Event::MessageDeleted(message.clone()), &delete.audience)?;
    Ok(Deleted { message, changed: true })
}

/// Puts a reaction on a message or takes it off, keeping the summary on the message row
/// with the core's [`apply_reaction`] (its order rules are written once). The writer runs
/// one job at a time, so reading the summary and writing it back loses no concurrent
/// reaction. A change costs a lookup by id, one row update (no index holds `reactions`)
/// and the event row, which keeps who, which emoji and the state (as of the event) and
/// points at the message (read back in its current state). A no-op writes nothing.
pub(crate) fn react(ctx: &mut WriteCtx<'_>, update: &ReactionUpdate) -> StoreResult<Reacted> {
    let (pk, mut message) = message_by_id(ctx, update.message_id)?
        .ok_or_else(|| Error::not_found("no such message"))?;
    if message.deleted {
        return Err(Error::conflict("the message was deleted").into());
    }
    let changed = apply_reaction(
        &mut message.reactions,
        update.user_id,
        &update.emoji,
        update.state,
        update.max_per_user,
    )?;
    if !changed {
        return Ok(Reacted { message, changed: false });
    }
    ctx.conn
        .prepare_cached("UPDATE messages SET reactions = ?2 WHERE pk = ?1")?
        .execute(params![pk, codec::reactions_text(&message.reactions)?])?;
    let kind = match update.state {
        ReactionState::Added => kind::REACTION_ADDED,
        ReactionState::Removed => kind::REACTION_REMOVED,
    };
    let row = LogRow {
        message_pk: Some(pk),
        user_id: Some(update.user_id),
        emoji: Some(&update.emoji),
        ..LogRow::new(kind, message.conversation_id, Some(update.user_id))
    };
    let event = Event::Reaction(ReactionChange {
        message: message.clone(),
        user_id: update.user_id,
        emoji: update.emoji.clone(),
        state: update.state,
    });
    log(ctx, &row, event, &update.audience)?;
    Ok(Reacted { message, changed: true })
}
