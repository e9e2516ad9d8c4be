//! The SQL of the single-row mutations, run by the writer inside a batch transaction
//! (a member's settings and the metadata are in `settings.rs`, reactions in
//! `reactions.rs`, appends in `log_batch.rs`).
//!
//! Each function checks its conditions before writing, so a failure that belongs to the
//! caller (not found, conflict) leaves the transaction untouched and the rest of the batch
//! commits. Events are collected as [`PendingEvent`]s and get their positions at the very
//! end of the transaction (see `writer.rs`).

use messaging_core::Error;
use messaging_core::id::UserId;
use messaging_core::model::{
    Attachment, Conversation, ConversationKind, Event, Message, Receipt, ReceiptKind,
};
use messaging_core::search::index_text;
use messaging_core::store::{
    DeleteMessage, Deleted, EditMessage, MarkUpdate, Marked, NewConversation, Opened,
};
use messaging_core::time::Timestamp;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::codec::{self, MESSAGE_COLUMNS, int, trusted, uint};
use crate::error::PgError;
use crate::read;

/// An event waiting for its position: what happened, who may see it, who caused it, and
/// what a delete removed.
#[derive(Debug, Clone)]
pub(crate) struct PendingEvent {
    pub(crate) event: Event,
    pub(crate) audience: Vec<UserId>,
    /// Who caused it; `None` for the host's calls.
    pub(crate) actor: Option<UserId>,
    /// For `message.deleted`: the attachments the message had.
    pub(crate) removed_attachments: Vec<Attachment>,
}

impl PendingEvent {
    /// `event` for `audience`, caused by `actor`.
    pub(crate) fn new(event: Event, audience: &[UserId], actor: Option<UserId>) -> Self {
        Self { event, audience: audience.to_vec(), actor, removed_attachments: Vec::new() }
    }

    /// The event, keeping the attachments a delete removed.
    pub(crate) fn removing(mut self, attachments: Vec<Attachment>) -> Self {
        self.removed_attachments = attachments;
        self
    }
}

/// Database failures abort the batch (outer `Err`); the caller's own failures (not found,
/// conflict) are the inner one, and the rest of the batch commits.
pub(crate) type Step<T> = Result<Result<T, Error>, PgError>;

pub(crate) async fn open_direct(
    conn: &mut PgConnection,
    new: &NewConversation,
    events: &mut Vec<PendingEvent>,
) -> Step<Opened> {
    let mut members = new.members;
    members.sort();
    let context = new.context.as_deref().unwrap_or("");
    let inserted = sqlx::query(
        "INSERT INTO conversations (id, user_lo, user_hi, context, created_at, metadata) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_lo, user_hi, context) DO NOTHING",
    )
    .bind(new.id.as_uuid())
    .bind(members[0].as_uuid())
    .bind(members[1].as_uuid())
    .bind(context)
    .bind(new.created_at.as_millis())
    .bind(&new.metadata)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Ok(match read::find_direct(&mut *conn, members[0], members[1], context).await {
            Ok(Some(conversation)) => Ok(Opened { conversation, created: false }),
            Ok(None) => Err(Error::unavailable("conversation vanished during open")),
            // This caller's answer; the batch goes on, and fails at its next statement if
            // the lookup broke the transaction.
            Err(e) => Err(e.into()),
        });
    }
    // The context goes on the lower member's activity row only: one entry per conversation
    // in `activity_context` (migration 0005).
    sqlx::query(
        "WITH started AS ( \
           INSERT INTO activity (user_id, conversation_id, at, context) \
           VALUES ($1, $3, $4, NULLIF($5, '')), ($2, $3, $4, NULL)) \
         INSERT INTO members (user_id, conversation_id, peer_id) VALUES ($1, $3, $2), ($2, $3, $1)",
    )
    .bind(members[0].as_uuid())
    .bind(members[1].as_uuid())
    .bind(new.id.as_uuid())
    .bind(new.created_at.as_millis())
    .bind(context)
    .execute(&mut *conn)
    .await?;
    let conversation = Conversation {
        id: new.id,
        kind: ConversationKind::Direct,
        context: new.context.clone().filter(|c| !c.is_empty()),
        members,
        created_at: new.created_at,
        last_message_at: None,
        last_seq: 0,
        metadata: new.metadata.clone(),
    };
    let event = Event::ConversationCreated(conversation.clone());
    events.push(PendingEvent::new(event, &new.audience, new.actor));
    Ok(Ok(Opened { conversation, created: true }))
}

/// The message `id`, locked until the transaction ends (`None` when there is none).
pub(crate) async fn locked_message(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<Message>, PgError> {
    let row = sqlx::query(trusted(format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.id = $1 FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|row| codec::message(&row, 0)).transpose()?)
}

pub(crate) async fn edit(
    conn: &mut PgConnection,
    edit: &EditMessage,
    events: &mut Vec<PendingEvent>,
) -> Step<Message> {
    let Some(mut message) = locked_message(conn, *edit.id.as_uuid()).await? else {
        return Ok(Err(Error::not_found("no such message")));
    };
    if message.deleted {
        return Ok(Err(Error::conflict("the message was deleted")));
    }
    sqlx::query(
        "UPDATE messages SET body = $2, edited_at = $3, words = to_tsvector('simple', $4) \
         WHERE id = $1",
    )
    .bind(edit.id.as_uuid())
    .bind(&edit.body)
    .bind(edit.edited_at.as_millis())
    .bind(index_text(&edit.body))
    .execute(&mut *conn)
    .await?;
    message.body.clone_from(&edit.body);
    message.edited_at = Some(edit.edited_at);
    let event = Event::MessageEdited(message.clone());
    events.push(PendingEvent::new(event, &edit.audience, edit.actor));
    Ok(Ok(message))
}

pub(crate) async fn delete(
    conn: &mut PgConnection,
    delete: &DeleteMessage,
    events: &mut Vec<PendingEvent>,
) -> Step<Deleted> {
    let Some(mut message) = locked_message(conn, *delete.id.as_uuid()).await? else {
        return Ok(Err(Error::not_found("no such message")));
    };
    if message.deleted {
        return Ok(Ok(Deleted { message, changed: false }));
    }
    sqlx::query(
        "UPDATE messages SET deleted = true, body = '', metadata = NULL, words = ''::tsvector, \
           attachments = '[]', reactions = '[]' \
         WHERE id = $1",
    )
    .bind(delete.id.as_uuid())
    .execute(&mut *conn)
    .await?;
    // What the message held, for the consumers that delete the files (migration 0007).
    let removed = std::mem::take(&mut message.attachments);
    message.deleted = true;
    message.body.clear();
    message.metadata = None;
    message.reactions.clear();
    let event = Event::MessageDeleted(message.clone());
    events.push(PendingEvent::new(event, &delete.audience, delete.actor).removing(removed));
    Ok(Ok(Deleted { message, changed: true }))
}

/// Moves a marker forward (clamped to `last_seq`), recording when it moved; a marker that
/// does not move changes nothing and answers its value and time.
pub(crate) async fn mark(
    conn: &mut PgConnection,
    update: &MarkUpdate,
    events: &mut Vec<PendingEvent>,
) -> Step<Marked> {
    let (column, at_column) = match update.kind {
        ReceiptKind::Read => ("read_seq", "read_at"),
        ReceiptKind::Delivered => ("delivered_seq", "delivered_at"),
    };
    let row = sqlx::query(trusted(format!(
        "SELECT mb.{column}, mb.{at_column}, c.last_seq FROM members mb \
         JOIN conversations c ON c.id = mb.conversation_id \
         WHERE mb.user_id = $1 AND mb.conversation_id = $2 FOR UPDATE OF mb"
    )))
    .bind(update.user_id.as_uuid())
    .bind(update.conversation_id.as_uuid())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(Err(Error::not_found("no such conversation"))) };
    let (current, last_seq): (i64, i64) = (row.try_get(0)?, row.try_get(2)?);
    let target = int(update.up_to_seq).min(last_seq);
    if target <= current {
        let at = codec::optional_time(&row, 1)?;
        return Ok(Ok(Marked { seq: uint(current), at, moved: false }));
    }
    sqlx::query(trusted(format!(
        "UPDATE members SET {column} = $3, {at_column} = $4 \
         WHERE user_id = $1 AND conversation_id = $2"
    )))
    .bind(update.user_id.as_uuid())
    .bind(update.conversation_id.as_uuid())
    .bind(target)
    .bind(update.at.as_millis())
    .execute(&mut *conn)
    .await?;
    let receipt = Receipt {
        conversation_id: update.conversation_id,
        user_id: update.user_id,
        kind: update.kind,
        seq: uint(target),
        at: update.at,
    };
    events.push(PendingEvent::new(Event::Receipt(receipt), &update.audience, Some(update.user_id)));
    Ok(Ok(Marked { seq: uint(target), at: Some(update.at), moved: true }))
}

/// Who blocks whom.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Blocking {
    pub(crate) blocker: UserId,
    pub(crate) blocked: UserId,
}

/// Stores a block, unless `blocker` blocks `max` other users already (`Conflict`, nothing
/// written); a block that exists already is kept and is not an error. Tells every instance
/// to forget what it kept about the pair (see `blocks.rs`); the notification goes out at
/// commit.
///
/// The count and the insert are one step for every writer on the database: a transaction
/// advisory lock on the blocker (keyed by `channel`, which names the schema) serializes
/// them until commit. The count is a statement after the lock's, so its snapshot sees what
/// the previous holder committed (in one statement, the snapshot would predate the wait).
pub(crate) async fn block(
    conn: &mut PgConnection,
    blocking: Blocking,
    max: usize,
    channel: &str,
) -> Step<()> {
    let Blocking { blocker, blocked } = blocking;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("{channel}:{}", blocker.as_uuid()))
        .execute(&mut *conn)
        .await?;
    let row = sqlx::query(
        "SELECT EXISTS (SELECT 1 FROM blocks WHERE blocker = $1 AND blocked = $2), \
                (SELECT count(*) FROM (SELECT 1 FROM blocks WHERE blocker = $1 LIMIT $3) b)",
    )
    .bind(blocker.as_uuid())
    .bind(blocked.as_uuid())
    .bind(int(max as u64))
    .fetch_one(&mut *conn)
    .await?;
    let (exists, count): (bool, i64) = (row.try_get(0)?, row.try_get(1)?);
    if exists {
        return Ok(Ok(()));
    }
    if uint(count) >= max as u64 {
        return Ok(Err(Error::conflict(format!("a user may block at most {max} users"))));
    }
    sqlx::query("INSERT INTO blocks (blocker, blocked) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(blocker.as_uuid())
        .bind(blocked.as_uuid())
        .execute(&mut *conn)
        .await?;
    notify_block(conn, blocking, channel).await
}

/// Removes a block (a missing one is not an error) and tells every instance to forget the
/// pair.
pub(crate) async fn unblock(
    conn: &mut PgConnection,
    blocking: Blocking,
    channel: &str,
) -> Step<()> {
    sqlx::query("DELETE FROM blocks WHERE blocker = $1 AND blocked = $2")
        .bind(blocking.blocker.as_uuid())
        .bind(blocking.blocked.as_uuid())
        .execute(&mut *conn)
        .await?;
    notify_block(conn, blocking, channel).await
}

async fn notify_block(conn: &mut PgConnection, blocking: Blocking, channel: &str) -> Step<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(crate::blocks::payload(blocking.blocker, blocking.blocked))
        .execute(&mut *conn)
        .await?;
    Ok(Ok(()))
}

/// Rewrites the probe row (migration 0004): a write nobody sees and no event, so that the
/// batch's commit is a real, durable one.
pub(crate) async fn probe(conn: &mut PgConnection) -> Step<()> {
    sqlx::query("UPDATE probe SET at = $1")
        .bind(Timestamp::now().as_millis())
        .execute(&mut *conn)
        .await?;
    Ok(Ok(()))
}

pub(crate) async fn set_last_seen(
    conn: &mut PgConnection,
    user: UserId,
    at: Timestamp,
) -> Step<()> {
    sqlx::query(
        "INSERT INTO last_seen (user_id, at) VALUES ($1, $2) \
         ON CONFLICT (user_id) DO UPDATE SET at = excluded.at",
    )
    .bind(user.as_uuid())
    .bind(at.as_millis())
    .execute(&mut *conn)
    .await?;
    Ok(Ok(()))
}

/// Stores the later of `user`'s stored revocation time and `at` (a revocation never moves
/// backwards; concurrent ones from any instance keep the latest, the upsert locking the
/// row) and tells every instance to forget what it kept about the user (see
/// `revocations.rs`); the notification goes out at commit.
pub(crate) async fn revoke(
    conn: &mut PgConnection,
    user: UserId,
    at: Timestamp,
    channel: &str,
) -> Step<()> {
    sqlx::query(
        "INSERT INTO revocations (user_id, at) VALUES ($1, $2) \
         ON CONFLICT (user_id) DO UPDATE SET at = GREATEST(revocations.at, excluded.at)",
    )
    .bind(user.as_uuid())
    .bind(at.as_millis())
    .execute(&mut *conn)
    .await?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(crate::revocations::payload(user))
        .execute(&mut *conn)
        .await?;
    Ok(Ok(()))
}
