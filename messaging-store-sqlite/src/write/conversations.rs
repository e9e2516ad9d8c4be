//! Conversation writes: open (race-free through the unique pair index), the members'
//! markers with their times, a member's own settings, the host's metadata.

use messaging_core::Error;
use messaging_core::id::ConversationId;
use messaging_core::model::{
    Conversation, ConversationKind, Event, MemberSettings, Receipt, ReceiptKind,
};
use messaging_core::store::{
    MarkUpdate, Marked, MemberChange, MemberUpdate, MemberUpdated, MetadataUpdate, MetadataUpdated,
    NewConversation, Opened,
};
use messaging_core::time::Timestamp;
use rusqlite::{OptionalExtension, params};

use super::{LogRow, WriteCtx, log};
use crate::codec::{int, metadata_text, uint};
use crate::error::StoreResult;
use crate::read;
use crate::vocab::{activity_bucket, kind};

/// Creates the conversation of (pair, context) unless it exists: the unique pair index
/// decides, so of racing opens exactly one inserts. Creating writes both member rows (the
/// lower member's carrying the context, see migration 5), the metadata if any, and the
/// `conversation.created` event; finding writes nothing.
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
    let listed_context = (!context.is_empty()).then_some(context);
    let mut member_stmt = ctx.conn.prepare_cached(
        "INSERT INTO members (user_id, conversation_id, peer_id, activity_bucket, context) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (user, peer, context) in
        [(members[0], members[1], listed_context), (members[1], members[0], None)]
    {
        member_stmt.execute(params![
            user.as_bytes(),
            new.id.as_bytes(),
            peer.as_bytes(),
            activity_bucket(new.created_at.as_millis()),
            context,
        ])?;
    }
    drop(member_stmt);
    if let Some(metadata) = &new.metadata {
        write_metadata(ctx, new.id, Some(metadata))?;
    }
    let conversation = Conversation {
        id: new.id,
        kind: ConversationKind::Direct,
        context: listed_context.map(str::to_owned),
        members,
        created_at: new.created_at,
        last_message_at: None,
        last_seq: 0,
        metadata: new.metadata.clone(),
    };
    let row = LogRow::new(kind::CONVERSATION_CREATED, new.id, new.actor);
    log(ctx, &row, Event::ConversationCreated(conversation.clone()), &new.audience)?;
    Ok(Opened { conversation, created: true })
}

/// Stores (`Some`) or removes the metadata of conversation `id`, by its `num`.
fn write_metadata(
    ctx: &WriteCtx<'_>,
    id: ConversationId,
    metadata: Option<&serde_json::Value>,
) -> StoreResult<()> {
    match metadata_text(metadata) {
        Some(text) => ctx
            .conn
            .prepare_cached(
                "INSERT INTO conversation_metadata (num, metadata) \
                 SELECT num, ?2 FROM conversations WHERE id = ?1 \
                 ON CONFLICT (num) DO UPDATE SET metadata = excluded.metadata",
            )?
            .execute(params![id.as_bytes(), text])?,
        None => ctx
            .conn
            .prepare_cached(
                "DELETE FROM conversation_metadata \
                 WHERE num = (SELECT num FROM conversations WHERE id = ?1)",
            )?
            .execute(params![id.as_bytes()])?,
    };
    Ok(())
}

/// The marker's column and the column of when it last moved.
fn marker_columns(kind: ReceiptKind) -> (&'static str, &'static str) {
    match kind {
        ReceiptKind::Read => ("read_seq", "read_at"),
        ReceiptKind::Delivered => ("delivered_seq", "delivered_at"),
    }
}

/// Moves a marker forward only, clamped to `last_seq`, recording `update.at` with it; an
/// event (with the seq and the time) only when it moved.
pub(crate) fn mark(ctx: &mut WriteCtx<'_>, update: &MarkUpdate) -> StoreResult<Marked> {
    let (seq_column, at_column) = marker_columns(update.kind);
    let (current, current_at, last_seq): (i64, Option<i64>, i64) = ctx
        .conn
        .prepare_cached(&format!(
            "SELECT mb.{seq_column}, mb.{at_column}, c.last_seq FROM members mb \
             JOIN conversations c ON c.id = mb.conversation_id \
             WHERE mb.user_id = ?1 AND mb.conversation_id = ?2"
        ))?
        .query_row(params![update.user_id.as_bytes(), update.conversation_id.as_bytes()], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()?
        .ok_or_else(|| Error::not_found("no such conversation"))?;
    let target = int(update.up_to_seq).min(last_seq);
    if target <= current {
        let at = current_at.map(Timestamp::from_millis);
        return Ok(Marked { seq: uint(current), at, moved: false });
    }
    ctx.conn
        .prepare_cached(&format!(
            "UPDATE members SET {seq_column} = ?3, {at_column} = ?4 \
             WHERE user_id = ?1 AND conversation_id = ?2"
        ))?
        .execute(params![
            update.user_id.as_bytes(),
            update.conversation_id.as_bytes(),
            target,
            update.at.as_millis(),
        ])?;
    let seq = uint(target);
    let row = LogRow {
        user_id: Some(update.user_id),
        seq: Some(seq),
        at: Some(update.at),
        ..LogRow::new(
            match update.kind {
                ReceiptKind::Read => kind::RECEIPT_READ,
                ReceiptKind::Delivered => kind::RECEIPT_DELIVERED,
            },
            update.conversation_id,
            Some(update.user_id),
        )
    };
    let receipt = Receipt {
        conversation_id: update.conversation_id,
        user_id: update.user_id,
        kind: update.kind,
        seq,
        at: update.at,
    };
    log(ctx, &row, Event::Receipt(receipt), &update.audience)?;
    Ok(Marked { seq, at: Some(update.at), moved: true })
}

/// Changes one member's own settings. A change that leaves them as they read at
/// `update.now` (the same flag, the same mute, unmuting what is not muted or whose mute
/// has passed) writes nothing; otherwise one row update (`archived` moves the member's
/// entry in `members_activity` to the other list) and one `member.updated` event, which
/// points at the member's row (read back as its current settings).
pub(crate) fn update_member(
    ctx: &mut WriteCtx<'_>,
    update: &MemberUpdate,
) -> StoreResult<MemberUpdated> {
    let (muted_until, archived): (Option<i64>, bool) = ctx
        .conn
        .prepare_cached(
            "SELECT muted_until, archived FROM members \
             WHERE user_id = ?1 AND conversation_id = ?2",
        )?
        .query_row(params![update.user_id.as_bytes(), update.conversation_id.as_bytes()], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?
        .ok_or_else(|| Error::not_found("no such conversation"))?;
    let mut settings = MemberSettings {
        conversation_id: update.conversation_id,
        user_id: update.user_id,
        muted_until: muted_until.map(Timestamp::from_millis),
        archived,
    };
    let muted_now = settings.muted_until.filter(|until| *until > update.now);
    let change = match update.change {
        MemberChange::Mute(until) if until != muted_now => {
            settings.muted_until = until;
            ("muted_until", until.map(Timestamp::as_millis))
        }
        MemberChange::Archive(archived) if archived != settings.archived => {
            settings.archived = archived;
            ("archived", Some(i64::from(archived)))
        }
        MemberChange::Mute(_) | MemberChange::Archive(_) => {
            return Ok(MemberUpdated { settings, changed: false });
        }
    };
    let (column, value) = change;
    ctx.conn
        .prepare_cached(&format!(
            "UPDATE members SET {column} = ?3 WHERE user_id = ?1 AND conversation_id = ?2"
        ))?
        .execute(params![update.user_id.as_bytes(), update.conversation_id.as_bytes(), value])?;
    let row = LogRow {
        user_id: Some(update.user_id),
        ..LogRow::new(kind::MEMBER_UPDATED, update.conversation_id, Some(update.user_id))
    };
    log(ctx, &row, Event::MemberUpdated(settings), &update.audience)?;
    Ok(MemberUpdated { settings, changed: true })
}

/// Replaces the conversation's metadata; the same JSON value writes nothing. The event
/// points at the conversation (read back in its current state).
pub(crate) fn set_metadata(
    ctx: &mut WriteCtx<'_>,
    update: &MetadataUpdate,
) -> StoreResult<MetadataUpdated> {
    let mut conversation = read::conversation(ctx.conn, update.conversation_id)?
        .ok_or_else(|| Error::not_found("no such conversation"))?;
    if conversation.metadata == update.metadata {
        return Ok(MetadataUpdated { conversation, changed: false });
    }
    write_metadata(ctx, conversation.id, update.metadata.as_ref())?;
    conversation.metadata.clone_from(&update.metadata);
    // The host's call: no actor.
    let row = LogRow::new(kind::CONVERSATION_UPDATED, conversation.id, None);
    log(ctx, &row, Event::ConversationUpdated(conversation.clone()), &update.audience)?;
    Ok(MetadataUpdated { conversation, changed: true })
}
