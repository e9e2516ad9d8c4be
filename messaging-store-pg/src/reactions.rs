//! The reactions of a batch: the summaries they change, read once and written by the
//! batch's closing statement, whatever the number of reactions.
//!
//! A message's `reactions` summary lives on its row (migration 0005) and is changed by
//! [`apply_reaction`], the one function every store keeps it with. Several writers
//! (this process's and other processes') may react to one message at once, so a summary
//! must never be written from a read another writer's change overtook.
//!
//! A batch that holds only appends and reactions takes no lock: it reads the messages with
//! their row version (`xmin`, which every update of the row changes) and hands the changed
//! summaries to the closing statement (`log_batch.rs`), which writes each one only where
//! the row is still that version and fails as a whole (no event logged, nothing changed)
//! when any was not: [`PgError::is_stale_reactions`]. The writer then runs the batch again
//! in an explicit transaction that reads the rows `FOR UPDATE` (in id order, so two such
//! batches never wait on each other in a cycle), where no other writer can change them
//! before the commit. So the common case costs two round trips (the read and the closing
//! statement, one commit) instead of five, and a race costs one more attempt on the same
//! connection, which cannot race again (a deadlock or a timeout there is retried or
//! answered as for any batch). A batch that runs in a transaction anyway (an edit, a delete, a
//! receipt beside the reactions) locks from the start.
//!
//! Reactions of one batch run in queue order against the summaries as they stand after
//! the reactions before them, after the batch's other single-row changes (an edit or a
//! delete queued beside a reaction comes first), and before its appends: the events are
//! logged in that order, so the log and the answers agree. The version check also keeps
//! the events right: each carries its message as the read found it, and the commit only
//! happens if that is still the message's state.
//!
//! Cost: a reaction writes its message row (not indexed columns only: a HOT update where
//! the page has room) and its event, and touches neither the conversation nor the list
//! (reactions are not activity).

use std::collections::HashMap;

use messaging_core::Error;
use messaging_core::model::{Event, Message, Reaction, ReactionChange};
use messaging_core::store::{Reacted, ReactionUpdate, apply_reaction};
use sqlx::types::Json;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::change::Pending;
use crate::codec::{self, MESSAGE_COLUMNS, MESSAGE_WIDTH, trusted};
use crate::error::PgError;
use crate::write::PendingEvent;

/// A message as read for the batch, the row version it was read at, and whether its
/// summary changed in this batch.
struct Read {
    message: Message,
    version: i64,
    changed: bool,
}

/// Runs `reactions` in order, setting each one's answer, and pushes an event for each
/// change; returns the summaries to write. `lock`: read the rows `FOR UPDATE` (the batch
/// runs in an explicit transaction). Database failures abort the batch; a caller's failure
/// (not found, a tombstone, past the per-user bound) is that reaction's answer, and the
/// rest go on.
pub(crate) async fn react_all(
    conn: &mut PgConnection,
    reactions: &mut [&mut Pending<ReactionUpdate, Reacted>],
    events: &mut Vec<PendingEvent>,
    lock: bool,
) -> Result<Changed, PgError> {
    if reactions.is_empty() {
        return Ok(Changed::default());
    }
    let mut read = read(conn, reactions, lock).await?;
    for pending in reactions.iter_mut() {
        let outcome = react(&mut read, &pending.request, events);
        pending.set(outcome);
    }
    let mut changed: Vec<(Uuid, i64, Message)> = read
        .into_iter()
        .filter(|(_, r)| r.changed)
        .map(|(id, r)| (id, r.version, r.message))
        .collect();
    changed.sort_unstable_by_key(|(id, _, _)| *id);
    Ok(Changed(changed))
}

/// The messages whose summaries a batch changed, ascending ids, each with the row version
/// its summary was computed from: the closing statement writes them.
#[derive(Default)]
pub(crate) struct Changed(Vec<(Uuid, i64, Message)>);

impl Changed {
    /// Whether no summary changed (the closing statement then writes none).
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The messages' ids.
    pub(crate) fn ids(&self) -> Vec<Uuid> {
        self.0.iter().map(|(id, _, _)| *id).collect()
    }

    /// The row versions the summaries were computed from.
    pub(crate) fn versions(&self) -> Vec<i64> {
        self.0.iter().map(|(_, version, _)| *version).collect()
    }

    /// The new summaries.
    pub(crate) fn summaries(&self) -> Vec<Json<&Vec<Reaction>>> {
        self.0.iter().map(|(_, _, message)| Json(&message.reactions)).collect()
    }
}

/// Reads every message the batch reacts to with its row version, in id order (and locked,
/// when `lock`).
async fn read(
    conn: &mut PgConnection,
    reactions: &[&mut Pending<ReactionUpdate, Reacted>],
    lock: bool,
) -> Result<HashMap<Uuid, Read>, PgError> {
    let mut ids: Vec<Uuid> = reactions.iter().map(|r| *r.request.message_id.as_uuid()).collect();
    ids.sort_unstable();
    ids.dedup();
    let locking = if lock { " FOR UPDATE" } else { "" };
    let rows = sqlx::query(trusted(format!(
        "SELECT {MESSAGE_COLUMNS}, m.xmin::text::bigint FROM messages m \
         WHERE m.id = ANY($1) ORDER BY m.id{locking}"
    )))
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut read = HashMap::with_capacity(rows.len());
    for row in &rows {
        let message = codec::message(row, 0)?;
        let version: i64 = row.try_get(MESSAGE_WIDTH)?;
        read.insert(*message.id.as_uuid(), Read { message, version, changed: false });
    }
    Ok(read)
}

/// One reaction against the summaries as they stand.
fn react(
    read: &mut HashMap<Uuid, Read>,
    update: &ReactionUpdate,
    events: &mut Vec<PendingEvent>,
) -> messaging_core::Result<Reacted> {
    let Some(entry) = read.get_mut(update.message_id.as_uuid()) else {
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
