//! Reading the log: its head and marks, `read_events`, which serves each event with its
//! subject in its current state and what the event itself says as of the event, and
//! `read_log`, which serves the whole log to durable consumers with each event's actor,
//! recipients and removed attachments.

use messaging_core::id::UserId;
use messaging_core::model::{
    Event, LogEntry, LoggedEvent, ReactionChange, ReactionState, Receipt, ReceiptKind, Recipient,
};
use messaging_core::time::Timestamp;
use rusqlite::{Connection, params};

use crate::codec::{
    self, CONVERSATION_COLUMNS, CONVERSATION_METADATA_JOIN, CONVERSATION_WIDTH, MESSAGE_COLUMNS,
    MESSAGE_WIDTH, int, uint,
};
use crate::error::StoreResult;
use crate::vocab::kind;

pub(crate) fn head(conn: &Connection) -> StoreResult<u64> {
    let head: i64 =
        conn.query_row("SELECT coalesce(max(position), 0) FROM events", [], |row| row.get(0))?;
    Ok(uint(head))
}

/// The database's identity, which the search file beside it records.
pub(crate) fn instance(conn: &Connection) -> StoreResult<i64> {
    Ok(conn.query_row("SELECT value FROM meta WHERE key = 'instance'", [], |row| row.get(0))?)
}

pub(crate) fn audience_indexed_upto(conn: &Connection) -> StoreResult<u64> {
    let upto: i64 =
        conn.query_row("SELECT value FROM meta WHERE key = 'audience_indexed_upto'", [], |row| {
            row.get(0)
        })?;
    Ok(uint(upto))
}

/// The columns of a `read_events` row before the message's and the conversation's.
const EVENT_WIDTH: usize = 9;

/// The columns [`decode_event`] reads, for `events e` with [`event_joins`].
fn event_columns() -> String {
    format!(
        "e.position, e.kind, e.conversation_id, e.user_id, e.seq, e.at, e.emoji, \
         mb.muted_until, mb.archived, {MESSAGE_COLUMNS}, {CONVERSATION_COLUMNS}"
    )
}

/// The joins of [`event_columns`] after `events e`: each event's subject, by the kinds
/// that have one: the message (message and reaction events), the conversation with its
/// metadata (`conversation.created` and `.updated`), the member's row (`member.updated`):
/// each a primary-key lookup.
fn event_joins() -> String {
    format!(
        "LEFT JOIN messages m ON m.pk = e.message_pk \
         LEFT JOIN conversations c \
           ON e.kind IN ({created}, {updated}) AND c.id = e.conversation_id \
         {CONVERSATION_METADATA_JOIN} \
         LEFT JOIN members mb ON e.kind = {member} \
           AND mb.user_id = e.user_id AND mb.conversation_id = e.conversation_id",
        created = kind::CONVERSATION_CREATED,
        updated = kind::CONVERSATION_UPDATED,
        member = kind::MEMBER_UPDATED,
    )
}

/// The SQL of `read_events`: `?1` the user, `?2` and `?3` the bounds. Driven by the user's
/// audience index (`event_audience`).
fn read_events_sql() -> String {
    format!(
        "SELECT {columns} FROM event_audience a JOIN events e ON e.position = a.position \
         {joins} \
         WHERE a.user_id = ?1 AND a.position > ?2 AND a.position <= ?3 \
         ORDER BY a.position",
        columns = event_columns(),
        joins = event_joins(),
    )
}

/// Where the columns `read_log` adds to [`event_columns`] start.
const LOG_AT: usize = EVENT_WIDTH + MESSAGE_WIDTH + CONVERSATION_WIDTH;

/// The SQL of `read_log`: `?1` and `?2` the bounds. A range of the log's primary key;
/// beside [`event_joins`], the conversation's two members and their rows (primary-key
/// lookups), whose mutes the recipients get: an audience is always one or both members,
/// and the log keeps it as a blob of ids that SQL cannot join.
fn read_log_sql() -> String {
    format!(
        "SELECT {columns}, e.audience, e.actor, e.removed_attachments, \
                pc.user_lo, lo.muted_until, pc.user_hi, hi.muted_until \
         FROM events e {joins} \
         LEFT JOIN conversations pc ON pc.id = e.conversation_id \
         LEFT JOIN members lo ON lo.user_id = pc.user_lo AND lo.conversation_id = pc.id \
         LEFT JOIN members hi ON hi.user_id = pc.user_hi AND hi.conversation_id = pc.id \
         WHERE e.position > ?1 AND e.position <= ?2 \
         ORDER BY e.position",
        columns = event_columns(),
        joins = event_joins(),
    )
}

/// Reads up to `limit` entries of kinds this build knows with `after < position <= up_to`,
/// in one statement; rows of other kinds (a newer build's) are skipped with a warning and
/// do not count.
pub(crate) fn read_log(
    conn: &Connection,
    after: u64,
    up_to: u64,
    limit: usize,
) -> StoreResult<Vec<LogEntry>> {
    let mut stmt = conn.prepare_cached(&read_log_sql())?;
    let mut rows = stmt.query(params![int(after), int(up_to)])?;
    let mut entries = Vec::new();
    let mut unknown: Vec<i64> = Vec::new();
    while entries.len() < limit {
        let Some(row) = rows.next()? else {
            break;
        };
        let position = uint(row.get(0)?);
        let kind: i64 = row.get(1)?;
        let Some(event) = decode_event(row, kind)? else {
            if !unknown.contains(&kind) {
                unknown.push(kind);
                tracing::warn!(kind, position, "skipping log events of an unknown kind");
            }
            continue;
        };
        entries.push(LogEntry::new(
            LoggedEvent { position, event },
            codec::actor(row, LOG_AT + 1)?,
            recipients(row)?,
            codec::optional_attachments(row, LOG_AT + 2)?,
        ));
    }
    Ok(entries)
}

/// The audience of a `read_log` row, in its order, each with their mute from their
/// member row (none when they have no row).
fn recipients(row: &rusqlite::Row<'_>) -> rusqlite::Result<Vec<Recipient>> {
    let audience = row.get_ref(LOG_AT)?.as_blob()?;
    let member = |at: usize| -> rusqlite::Result<Option<(UserId, Option<Timestamp>)>> {
        let id: Option<[u8; 16]> = row.get(at)?;
        Ok(match id {
            Some(id) => Some((UserId::from_bytes(id), codec::optional_timestamp(row, at + 1)?)),
            None => None,
        })
    };
    let members = [member(LOG_AT + 3)?, member(LOG_AT + 5)?];
    Ok(audience
        .chunks_exact(16)
        .map(|chunk| {
            let mut id = [0_u8; 16];
            id.copy_from_slice(chunk);
            let user = UserId::from_bytes(id);
            let muted = members.iter().flatten().find(|(m, _)| *m == user).and_then(|m| m.1);
            Recipient::new(user, muted)
        })
        .collect())
}

/// Reads `limit` events of kinds this build knows; a row of another kind (written by a
/// newer build) is skipped with a warning, and reading goes on past it, so a page is never
/// cut short by it (the service takes a short page for the end of the log).
pub(crate) fn read_events(
    conn: &Connection,
    user: UserId,
    after: u64,
    up_to: u64,
    limit: usize,
) -> StoreResult<Vec<LoggedEvent>> {
    let mut stmt = conn.prepare_cached(&read_events_sql())?;
    let mut rows = stmt.query(params![user.as_bytes(), int(after), int(up_to)])?;
    let mut events = Vec::new();
    let mut unknown: Vec<i64> = Vec::new();
    while events.len() < limit {
        let Some(row) = rows.next()? else {
            break;
        };
        let position = uint(row.get(0)?);
        let kind: i64 = row.get(1)?;
        match decode_event(row, kind)? {
            Some(event) => events.push(LoggedEvent { position, event }),
            None => {
                if !unknown.contains(&kind) {
                    unknown.push(kind);
                    tracing::warn!(kind, position, "skipping log events of an unknown kind");
                }
            }
        }
    }
    Ok(events)
}

/// The event of a `read_events` row; `None` for a kind this build does not know.
///
/// A receipt without a time (`at` NULL: logged before schema 5 for a message the
/// migration could not find) reads as the Unix epoch, the one value that cannot be
/// mistaken for a real receipt's time.
fn decode_event(row: &rusqlite::Row<'_>, kind: i64) -> rusqlite::Result<Option<Event>> {
    let message_at = EVENT_WIDTH;
    let conversation_at = EVENT_WIDTH + MESSAGE_WIDTH;
    let receipt = |kind| -> rusqlite::Result<Event> {
        let at = codec::optional_timestamp(row, 5)?.unwrap_or(Timestamp::from_millis(0));
        Ok(Event::Receipt(Receipt {
            conversation_id: codec::conversation_id(row, 2)?,
            user_id: codec::user(row, 3)?,
            kind,
            seq: uint(row.get(4)?),
            at,
        }))
    };
    let reaction = |state| -> rusqlite::Result<Event> {
        Ok(Event::Reaction(ReactionChange {
            message: codec::message(row, message_at)?,
            user_id: codec::user(row, 3)?,
            emoji: row.get(6)?,
            state,
        }))
    };
    Ok(Some(match kind {
        kind::CONVERSATION_CREATED => {
            Event::ConversationCreated(codec::conversation(row, conversation_at)?)
        }
        kind::MESSAGE_CREATED => Event::MessageCreated(codec::message(row, message_at)?),
        kind::MESSAGE_EDITED => Event::MessageEdited(codec::message(row, message_at)?),
        kind::MESSAGE_DELETED => Event::MessageDeleted(codec::message(row, message_at)?),
        kind::RECEIPT_READ => receipt(ReceiptKind::Read)?,
        kind::RECEIPT_DELIVERED => receipt(ReceiptKind::Delivered)?,
        kind::REACTION_ADDED => reaction(ReactionState::Added)?,
        kind::REACTION_REMOVED => reaction(ReactionState::Removed)?,
        kind::MEMBER_UPDATED => Event::MemberUpdated(codec::member_settings(
            row,
            7,
            codec::conversation_id(row, 2)?,
            codec::user(row, 3)?,
        )?),
        kind::CONVERSATION_UPDATED => {
            Event::ConversationUpdated(codec::conversation(row, conversation_at)?)
        }
        _ => return Ok(None),
    }))
}

#[cfg(test)]
mod tests {
    use super::{read_events_sql, read_log_sql};
    use crate::schema::query_plan;

    /// `sync` reads one range of the user's audience index and looks each subject up by
    /// its key: no scan, whatever the kinds.
    #[test]
    fn read_events_is_driven_by_the_audience_index() {
        let plan = query_plan(&read_events_sql());
        assert!(
            plan[0].starts_with(
                "SEARCH a USING PRIMARY KEY (user_id=? AND position>? AND position<?)"
            ),
            "{plan:#?}"
        );
        assert!(!plan.iter().any(|l| l.starts_with("SCAN")), "{plan:#?}");
    }

    /// `read_log` reads one range of the log by its key and looks every subject and
    /// member up by its key: no scan.
    #[test]
    fn read_log_is_a_range_of_the_log() {
        let plan = query_plan(&read_log_sql());
        assert!(
            plan[0].starts_with("SEARCH e USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"),
            "{plan:#?}"
        );
        assert!(!plan.iter().any(|l| l.starts_with("SCAN")), "{plan:#?}");
        assert!(!plan.iter().any(|l| l.contains("TEMP B-TREE")), "no sort: {plan:#?}");
    }
}
