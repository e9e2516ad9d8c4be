//! The reactions of a batch: the summaries they change, locked, read, changed and written
//! in two statements whatever the number of reactions.
//!
//! A message's `reactions` summary lives on its row (migration 0005) and is changed by
//! [`apply_reaction`], the one function every store keeps it with. Several store objects
//! (processes) may react to one message at once, so the read and the write must not
//! interleave: the batch locks the rows (`SELECT … FOR UPDATE`) before it reads them, and
//! holds the locks until it commits. A concurrent batch on another writer waits at its own
//! lock and then reads the committed summary (a row lock's wait re-reads the row), so no
//! reaction is ever lost. The rows are locked in id order, in one statement, so two
//! batches reacting to the same messages never wait on each other in a cycle; `log_head`
//! is still the last lock (the closing statement takes it).
//!
//! Reactions of one batch run in queue order against the summaries as they stand after
//! the reactions before them, after the batch's other single-row changes (an edit or a
//! delete queued beside a reaction comes first), and before its appends: the events are
//! logged in that order, so the log and the answers agree.
//!
//! Cost: a reaction writes its message row (not indexed columns only: a HOT update where
//! the page has room) and its event, and touches neither the conversation nor the list
//! (reactions are not activity). A batch of reactions adds two statements to the batch's
//! transaction, whatever their number.

use std::collections::HashMap;

use messaging_core::Error;
use messaging_core::model::{Event, Message, ReactionChange};
use messaging_core::store::{Reacted, ReactionUpdate, apply_reaction};
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use crate::change::Pending;
use crate::codec::{self, MESSAGE_COLUMNS, trusted};
use crate::error::PgError;
use crate::write::PendingEvent;

/// A locked message and whether its summary changed in this batch.
struct Locked {
    message: Message,
    changed: bool,
}

/// Runs `reactions` in order, setting each one's answer, and pushes an event for each
/// change. Database failures abort the batch; a caller's failure (not found, a tombstone,
/// past the per-user bound) is that reaction's answer, and the rest go on.
pub(crate) async fn react_all(
    conn: &mut PgConnection,
    reactions: &mut [&mut Pending<ReactionUpdate, Reacted>],
    events: &mut Vec<PendingEvent>,
) -> Result<(), PgError> {
    if reactions.is_empty() {
        return Ok(());
    }
    let mut locked = lock(conn, reactions).await?;
    for pending in reactions.iter_mut() {
        let outcome = react(&mut locked, &pending.request, events);
        pending.set(outcome);
    }
    let changed: Vec<&Message> =
        locked.values().filter(|l| l.changed).map(|l| &l.message).collect();
    if changed.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE messages m SET reactions = v.reactions \
         FROM UNNEST($1::uuid[], $2::jsonb[]) AS v(id, reactions) WHERE m.id = v.id",
    )
    .bind(changed.iter().map(|m| *m.id.as_uuid()).collect::<Vec<_>>())
    .bind(changed.iter().map(|m| Json(&m.reactions)).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Locks and reads every message the batch reacts to, in id order.
async fn lock(
    conn: &mut PgConnection,
    reactions: &[&mut Pending<ReactionUpdate, Reacted>],
) -> Result<HashMap<Uuid, Locked>, PgError> {
    let mut ids: Vec<Uuid> = reactions.iter().map(|r| *r.request.message_id.as_uuid()).collect();
    ids.sort_unstable();
    ids.dedup();
    let rows = sqlx::query(trusted(format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.id = ANY($1) ORDER BY m.id FOR UPDATE"
    )))
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut locked = HashMap::with_capacity(rows.len());
    for row in &rows {
        let message = codec::message(row, 0)?;
        locked.insert(*message.id.as_uuid(), Locked { message, changed: false });
    }
    Ok(locked)
}

/// One reaction against the summaries as they stand.
fn react(
    locked: &mut HashMap<Uuid, Locked>,
    update: &ReactionUpdate,
    events: &mut Vec<PendingEvent>,
) -> messaging_core::Result<Reacted> {
    let Some(entry) = locked.get_mut(update.message_id.as_uuid()) else {
        return Err(Error::not_found("no such message"));
    };
    let message = &mut entry.message;
    if message.deleted {
        return Err(Error::conflict("the message was deleted"));
    }
    let changed = apply_reaction(
        &mut message.reactions,
        update.user_id,
        &update.emoji,
        update.state,
        update.max_per_user,
    )?;
    if changed {
        entry.changed = true;
        let event = Event::Reaction(ReactionChange {
            message: message.clone(),
            user_id: update.user_id,
            emoji: update.emoji.clone(),
            state: update.state,
        });
        events.push(PendingEvent::new(event, &update.audience, Some(update.user_id)));
    }
    Ok(Reacted { message: message.clone(), changed })
}
