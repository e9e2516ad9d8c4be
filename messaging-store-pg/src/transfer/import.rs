//! Taking another store's contents (`messaging_core::transfer`): each page written as the
//! store's own write paths would have written it, with the move's checkpoint, in one
//! transaction.
//!
//! "As the write paths would have written it" is the point: every read (lists, unread,
//! history, search, `read_events` with its audience index, `read_log`) must answer after a
//! move exactly as the source did, so each row gets every column a write would have set,
//! derived the way that write derives it:
//!
//! - `conversations`: the two members sorted (`user_lo`, `user_hi`), `''` for no context
//!   (`write::open_direct`).
//! - `members` with `peer_id`, and the member's `activity` row: `at` the conversation's
//!   activity (its last message, else its creation: what the append statement and the open
//!   set), `archived`, and the context on the lower member's row only (migration 0005). Both
//!   come from the conversation, which the move copied first; a member of a conversation
//!   the store does not hold is refused.
//! - `messages`: `sender_id` through `codec::sender` (nil for a system message), `words`
//!   from `messaging_core::search::index_text` (`''` for a tombstone, as a delete leaves
//!   it), attachments and reactions as the JSON the store writes.
//! - `events` from `event_rows::event_row` plus the audience (the recipients, in order), the
//!   actor and the removed attachments (NULL when none), and one `event_audience` row per
//!   distinct recipient, exactly as `log_batch.rs` logs them. `log_head` stays where it is
//!   until the import finishes, so nothing reads the copied log before it is whole.
//! - `consumers` with no holder and no lease: nobody holds a consumer of a moved store.
//!
//! Each section's page is one statement over arrays (`UNNEST`), never a statement per
//! row: a million messages with their events move from SQLite in about 30 s
//! (docs/benchmarks.md, "The move").
//!
//! A page must continue the import the store holds (the checkpoint it stored last), and the
//! first page may only go into a store without data of its own: two moves into one target,
//! or a move into a store in use, are refused (`Conflict`) instead of mixing their rows.

use std::time::Duration;

use messaging_core::Error;
use messaging_core::id::UserId;
use messaging_core::model::{Attachment, Conversation, LogEntry, Message};
use messaging_core::search::index_text;
use messaging_core::time::Timestamp;
use messaging_core::transfer::{
    BlockRecord, Checkpoint, ConsumerRecord, ImportState, MemberRecord, Records, UserTime,
};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};

use crate::codec::{self, int};
use crate::error::{PgError, Result};
use crate::event_rows::{self, EventRow};
use crate::log_batch;

/// Whether the store holds anything a move must not write beside: a conversation, a
/// message, an event, a block, a last-seen time, a revocation, a consumer, or a log that
/// has begun.
const HOLDS: &str = "SELECT EXISTS (SELECT 1 FROM conversations) \
       OR EXISTS (SELECT 1 FROM messages) OR EXISTS (SELECT 1 FROM events) \
       OR EXISTS (SELECT 1 FROM blocks) OR EXISTS (SELECT 1 FROM last_seen) \
       OR EXISTS (SELECT 1 FROM revocations) OR EXISTS (SELECT 1 FROM consumers) \
       OR (SELECT position FROM log_head) > 0";

/// SQLSTATE of a unique violation: a page holding a record the store holds already (the
/// same page twice, or another move's), answered `Conflict` as the checks before it are.
const UNIQUE_VIOLATION: &str = "23505";

/// The tables a finished import analyzes (see [`finish`]).
const ANALYZE: &str = "ANALYZE conversations, members, activity, messages, events, \
     event_audience, blocks, last_seen, revocations, consumers";

/// How recent an instance's heartbeat must be for a server to count as running on the
/// store: the presence sweeper's timeout (`presence.rs`).
const LIVE_HEARTBEAT: Duration = Duration::from_secs(15);

/// Empty, an unfinished import (its checkpoint), or holding data.
pub(crate) async fn import_state(pool: &PgPool) -> Result<ImportState> {
    let mut conn = pool.acquire().await?;
    if let Some(checkpoint) = stored_checkpoint(&mut conn, false).await? {
        return Ok(ImportState::Unfinished(checkpoint));
    }
    let holds: bool = sqlx::query_scalar(HOLDS).fetch_one(&mut *conn).await?;
    Ok(if holds { ImportState::Holds } else { ImportState::Empty })
}

/// Writes `records` and stores `checkpoint`, in one transaction.
pub(crate) async fn import(
    pool: &PgPool,
    records: &Records,
    checkpoint: &Checkpoint,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    refuse_a_live_server(&mut tx).await?;
    // The stored checkpoint is locked until commit: another move's page waits here, then
    // reads this one's checkpoint and is refused. Two first pages have no row to lock: the
    // second one's insert of the checkpoint waits on the first's, then fails (below).
    let first = match stored_checkpoint(&mut tx, true).await? {
        Some(stored) => {
            continues(&stored, records, checkpoint)?;
            false
        }
        None => {
            let holds: bool = sqlx::query_scalar(HOLDS).fetch_one(&mut *tx).await?;
            if holds {
                return Err(Error::conflict(
                    "the store already holds messaging data: an import needs an empty one",
                )
                .into());
            }
            true
        }
    };
    let written = async {
        write(&mut tx, records).await?;
        let keep = if first {
            "INSERT INTO import_checkpoint (id, checkpoint) VALUES (true, $1)"
        } else {
            "UPDATE import_checkpoint SET checkpoint = $1"
        };
        sqlx::query(keep).bind(Json(checkpoint)).execute(&mut *tx).await?;
        Ok::<(), PgError>(())
    };
    if let Err(error) = written.await {
        // The transaction is dropped unfinished: nothing of the page stays.
        return Err(if error.sqlstate().as_deref() == Some(UNIQUE_VIOLATION) {
            Error::conflict(format!(
                "the page holds {} (or a checkpoint) the store holds already: is another move \
                 writing here?",
                records.section().name()
            ))
            .into()
        } else {
            error
        });
    }
    tx.commit().await?;
    Ok(())
}

/// A store a server is running on (an instance's heartbeat is recent) takes no page: the
/// server may write at any moment, beside the import.
async fn refuse_a_live_server(conn: &mut PgConnection) -> Result<()> {
    let since = Timestamp::now().as_millis().saturating_sub(millis(LIVE_HEARTBEAT));
    let live: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM instances WHERE heartbeat_at >= $1)")
            .bind(since)
            .fetch_one(&mut *conn)
            .await?;
    if live {
        return Err(Error::conflict(
            "a server is running on this database (an instance's heartbeat is recent): stop \
             every server before moving into it",
        )
        .into());
    }
    Ok(())
}

/// Ends the import: the log goes on after `head` and the checkpoint is dropped, in one
/// transaction; then the tables are analyzed.
///
/// The writers use generic plans, made for the tables' statistics as they are (see
/// `writer.rs`); plans made while the tables were empty scan them whole (see
/// `log_batch.rs`). Without the ANALYZE, a store that just took a million messages would
/// serve on those until autovacuum came by; ANALYZE also drops the plans cached on the
/// tables. A failed ANALYZE is logged, not returned: the import is complete by then, and
/// autovacuum analyzes the tables later.
pub(crate) async fn finish(pool: &PgPool, head: u64) -> Result<()> {
    let mut tx = pool.begin().await?;
    let finished = sqlx::query("DELETE FROM import_checkpoint").execute(&mut *tx).await?;
    if finished.rows_affected() == 0 {
        return Err(Error::conflict("the store holds no import to finish").into());
    }
    // A copied event past `head` would take the position of the next write.
    let last: Option<i64> =
        sqlx::query_scalar("SELECT max(position) FROM events").fetch_one(&mut *tx).await?;
    if last.is_some_and(|last| last > int(head)) {
        return Err(Error::invalid(format!(
            "the imported log goes past {head} (to {}): it cannot end there",
            last.unwrap_or_default()
        ))
        .into());
    }
    sqlx::query("UPDATE log_head SET position = $1").bind(int(head)).execute(&mut *tx).await?;
    tx.commit().await?;
    if let Err(error) = analyze(pool).await {
        tracing::warn!(%error, "analyzing the imported tables failed; autovacuum will");
    }
    Ok(())
}

/// Analyzes the store's tables, past the pool's `statement_timeout` (which bounds
/// requests; a large table's ANALYZE may take longer).
async fn analyze(pool: &PgPool) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL statement_timeout = 0").execute(&mut *tx).await?;
    sqlx::query(ANALYZE).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

/// The stored checkpoint (locked until the transaction ends when `lock`); a row this
/// version cannot read is `Invalid`.
async fn stored_checkpoint(conn: &mut PgConnection, lock: bool) -> Result<Option<Checkpoint>> {
    let sql = if lock {
        "SELECT checkpoint FROM import_checkpoint FOR UPDATE"
    } else {
        "SELECT checkpoint FROM import_checkpoint"
    };
    let stored: Option<serde_json::Value> =
        sqlx::query_scalar(sql).fetch_optional(&mut *conn).await?;
    let Some(stored) = stored else { return Ok(None) };
    serde_json::from_value(stored).map(Some).map_err(|e| {
        Error::invalid(format!("the store's import checkpoint cannot be read: {e}")).into()
    })
}

/// Whether `records` with `next` continue the import stopped at `stored`: the same
/// source, the same or a later section, and `copied` counting on from where it stood.
fn continues(stored: &Checkpoint, records: &Records, next: &Checkpoint) -> Result<(), PgError> {
    let written = records.len() as u64;
    let counted = if next.section == stored.section {
        stored.copied.checked_add(written) == Some(next.copied)
    } else {
        next.section > stored.section && next.copied == written
    };
    let same_page = records.is_empty()
        || (records.section() == next.section && records.last_key().as_ref() == Some(&next.after));
    if next.same_source(stored) && counted && same_page {
        return Ok(());
    }
    Err(Error::conflict(format!(
        "the page does not continue the import this store holds (stopped at {} after {:?}, \
         {} copied; the page ends at {} after {:?}, {} copied): is another move writing here?",
        stored.section.name(),
        stored.after,
        stored.copied,
        next.section.name(),
        next.after,
        next.copied
    ))
    .into())
}

/// Writes one page, each section in one statement (the members' two tables in one).
async fn write(conn: &mut PgConnection, records: &Records) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    match records {
        Records::Conversations(conversations) => write_conversations(conn, conversations).await,
        Records::Members(members) => write_members(conn, members).await,
        Records::Messages(messages) => write_messages(conn, messages).await,
        Records::Log(entries) => write_log(conn, entries).await,
        Records::Blocks(blocks) => write_blocks(conn, blocks).await,
        Records::LastSeen(times) => write_user_times(conn, "last_seen", times).await,
        Records::Revocations(times) => write_user_times(conn, "revocations", times).await,
        Records::Consumers(consumers) => write_consumers(conn, consumers).await,
        other => Err(Error::invalid(format!(
            "this store cannot import {} records",
            other.section().name()
        ))
        .into()),
    }
}

async fn write_conversations(
    conn: &mut PgConnection,
    conversations: &[Conversation],
) -> Result<()> {
    let lower = |c: &Conversation| *c.members[0].min(c.members[1]).as_uuid();
    let higher = |c: &Conversation| *c.members[0].max(c.members[1]).as_uuid();
    sqlx::query(
        "INSERT INTO conversations (id, user_lo, user_hi, context, created_at, last_seq, \
           last_message_at, metadata) \
         SELECT v.id, v.lo, v.hi, v.context, v.created_at, v.last_seq, v.last_at, \
           v.metadata::jsonb \
         FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::bigint[], \
           $6::bigint[], $7::bigint[], $8::text[]) \
           AS v(id, lo, hi, context, created_at, last_seq, last_at, metadata)",
    )
    .bind(conversations.iter().map(|c| *c.id.as_uuid()).collect::<Vec<_>>())
    .bind(conversations.iter().map(lower).collect::<Vec<_>>())
    .bind(conversations.iter().map(higher).collect::<Vec<_>>())
    .bind(conversations.iter().map(|c| c.context.as_deref().unwrap_or("")).collect::<Vec<_>>())
    .bind(conversations.iter().map(|c| c.created_at.as_millis()).collect::<Vec<_>>())
    .bind(conversations.iter().map(|c| int(c.last_seq)).collect::<Vec<_>>())
    .bind(
        conversations
            .iter()
            .map(|c| c.last_message_at.map(|at| at.as_millis()))
            .collect::<Vec<_>>(),
    )
    .bind(conversations.iter().map(|c| json_text(c.metadata.as_ref())).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The members' rows and their activity rows, both derived with their conversation's
/// row (the peer, the activity time, the context on the lower member's row).
async fn write_members(conn: &mut PgConnection, members: &[MemberRecord]) -> Result<()> {
    let written = sqlx::query(
        "WITH page AS ( \
           SELECT v.*, c.user_lo, c.user_hi, NULLIF(c.context, '') AS context, \
             COALESCE(c.last_message_at, c.created_at) AS active_at \
           FROM UNNEST($1::uuid[], $2::uuid[], $3::bigint[], $4::bigint[], $5::bigint[], \
             $6::bigint[], $7::bigint[], $8::boolean[]) \
             AS v(conversation_id, user_id, read_seq, read_at, delivered_seq, delivered_at, \
               muted_until, archived) \
           JOIN conversations c ON c.id = v.conversation_id \
             AND v.user_id IN (c.user_lo, c.user_hi) \
         ), active AS ( \
           INSERT INTO activity (user_id, conversation_id, at, archived, context) \
           SELECT user_id, conversation_id, active_at, archived, \
             CASE WHEN user_id = user_lo THEN context END \
           FROM page \
         ) \
         INSERT INTO members (user_id, conversation_id, peer_id, read_seq, read_at, \
           delivered_seq, delivered_at, muted_until) \
         SELECT user_id, conversation_id, \
           CASE WHEN user_id = user_lo THEN user_hi ELSE user_lo END, read_seq, read_at, \
           delivered_seq, delivered_at, muted_until \
         FROM page",
    )
    .bind(members.iter().map(|m| *m.conversation_id.as_uuid()).collect::<Vec<_>>())
    .bind(members.iter().map(|m| *m.user_id.as_uuid()).collect::<Vec<_>>())
    .bind(members.iter().map(|m| int(m.read_seq)).collect::<Vec<_>>())
    .bind(members.iter().map(|m| m.read_at.map(|at| at.as_millis())).collect::<Vec<_>>())
    .bind(members.iter().map(|m| int(m.delivered_seq)).collect::<Vec<_>>())
    .bind(members.iter().map(|m| m.delivered_at.map(|at| at.as_millis())).collect::<Vec<_>>())
    .bind(members.iter().map(|m| m.muted_until.map(|at| at.as_millis())).collect::<Vec<_>>())
    .bind(members.iter().map(|m| m.archived).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if written != members.len() as u64 {
        return Err(Error::invalid(format!(
            "{} of {} members name a conversation this store does not hold (or are not its \
             members): conversations are imported first",
            members.len() as u64 - written,
            members.len()
        ))
        .into());
    }
    Ok(())
}

async fn write_messages(conn: &mut PgConnection, messages: &[Message]) -> Result<()> {
    sqlx::query(
        "INSERT INTO messages (id, conversation_id, seq, sender_id, body, metadata, \
           client_msg_id, created_at, edited_at, deleted, words, attachments, reply_to_seq, \
           reactions) \
         SELECT v.id, v.c, v.seq, v.s, v.body, v.meta::jsonb, v.key, v.at, v.edited, \
           v.deleted, \
           CASE WHEN v.deleted THEN ''::tsvector ELSE to_tsvector('simple', v.words) END, \
           v.att, v.reply, v.reactions \
         FROM UNNEST($1::uuid[], $2::uuid[], $3::bigint[], $4::uuid[], $5::text[], \
           $6::text[], $7::text[], $8::bigint[], $9::bigint[], $10::boolean[], $11::text[], \
           $12::jsonb[], $13::bigint[], $14::jsonb[]) \
           AS v(id, c, seq, s, body, meta, key, at, edited, deleted, words, att, reply, \
             reactions)",
    )
    .bind(messages.iter().map(|m| *m.id.as_uuid()).collect::<Vec<_>>())
    .bind(messages.iter().map(|m| *m.conversation_id.as_uuid()).collect::<Vec<_>>())
    .bind(messages.iter().map(|m| int(m.seq)).collect::<Vec<_>>())
    .bind(messages.iter().map(|m| codec::sender(m.sender_id)).collect::<Vec<_>>())
    .bind(messages.iter().map(|m| m.body.as_str()).collect::<Vec<_>>())
    .bind(messages.iter().map(|m| json_text(m.metadata.as_ref())).collect::<Vec<_>>())
    .bind(messages.iter().map(|m| m.client_msg_id.as_deref()).collect::<Vec<_>>())
    .bind(messages.iter().map(|m| m.created_at.as_millis()).collect::<Vec<_>>())
    .bind(messages.iter().map(|m| m.edited_at.map(|at| at.as_millis())).collect::<Vec<_>>())
    .bind(messages.iter().map(|m| m.deleted).collect::<Vec<_>>())
    .bind(messages.iter().map(|m| index_text(&m.body)).collect::<Vec<_>>())
    .bind(messages.iter().map(|m| Json(&m.attachments)).collect::<Vec<_>>())
    .bind(messages.iter().map(|m| m.reply_to_seq.map(int)).collect::<Vec<_>>())
    .bind(messages.iter().map(|m| Json(&m.reactions)).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The events and their audience index, in one statement (as the batch's closing statement
/// logs them, from the same [`EventRow`]s).
async fn write_log(conn: &mut PgConnection, entries: &[LogEntry]) -> Result<()> {
    let mut rows: Vec<EventRow> = Vec::with_capacity(entries.len());
    for entry in entries {
        let Some(row) = event_rows::event_row(&entry.logged.event) else {
            return Err(Error::invalid(format!(
                "this store keeps no {} events (position {})",
                entry.logged.event.name(),
                entry.position()
            ))
            .into());
        };
        rows.push(row);
    }
    let positions: Vec<i64> = entries.iter().map(|e| int(e.position())).collect();
    let audiences: Vec<Vec<UserId>> =
        entries.iter().map(|e| e.recipients.iter().map(|r| r.user_id).collect()).collect();
    // One index row per distinct recipient, as the writer keeps them.
    let (audience_users, audience_at) = log_batch::audience_rows(
        audiences.iter().map(Vec::as_slice).zip(positions.iter().copied()),
    );
    // NULL when nothing was removed, as the writer stores it.
    let removed: Vec<Option<Json<&[Attachment]>>> = entries
        .iter()
        .map(|e| (!e.removed_attachments.is_empty()).then(|| Json(&e.removed_attachments[..])))
        .collect();
    sqlx::query(
        "WITH ev AS ( \
           INSERT INTO events (position, kind, conversation_id, message_id, user_id, seq, \
             audience, at, emoji, actor, removed_attachments) \
           SELECT v.p, v.k, v.c, v.m, v.u, v.s, string_to_array(v.a, ',')::uuid[], v.t, v.e, \
             v.actor, v.removed \
           FROM UNNEST($1::bigint[], $2::smallint[], $3::uuid[], $4::uuid[], $5::uuid[], \
             $6::bigint[], $7::text[], $8::bigint[], $9::text[], $10::uuid[], $11::jsonb[]) \
             AS v(p, k, c, m, u, s, a, t, e, actor, removed) \
         ) \
         INSERT INTO event_audience (user_id, position) \
         SELECT v.u, v.p FROM UNNEST($12::uuid[], $13::bigint[]) AS v(u, p)",
    )
    .bind(&positions)
    .bind(rows.iter().map(|r| r.kind).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.conversation_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.message_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.user_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.seq).collect::<Vec<_>>())
    .bind(audiences.iter().map(|a| log_batch::joined(a)).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.emoji.as_deref()).collect::<Vec<_>>())
    .bind(entries.iter().map(|e| e.actor.map(|u| *u.as_uuid())).collect::<Vec<_>>())
    .bind(&removed)
    .bind(&audience_users)
    .bind(&audience_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn write_blocks(conn: &mut PgConnection, blocks: &[BlockRecord]) -> Result<()> {
    sqlx::query(
        "INSERT INTO blocks (blocker, blocked) SELECT * FROM UNNEST($1::uuid[], $2::uuid[])",
    )
    .bind(blocks.iter().map(|b| *b.blocker.as_uuid()).collect::<Vec<_>>())
    .bind(blocks.iter().map(|b| *b.blocked.as_uuid()).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Rows of a table of per-user times (`last_seen`, `revocations`).
async fn write_user_times(
    conn: &mut PgConnection,
    table: &'static str,
    times: &[UserTime],
) -> Result<()> {
    sqlx::query(codec::trusted(format!(
        "INSERT INTO {table} (user_id, at) SELECT * FROM UNNEST($1::uuid[], $2::bigint[])"
    )))
    .bind(times.iter().map(|t| *t.user_id.as_uuid()).collect::<Vec<_>>())
    .bind(times.iter().map(|t| t.at.as_millis()).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Consumers at their positions, held by nobody (`holder` and `lease_until` NULL, as a
/// release leaves them).
async fn write_consumers(conn: &mut PgConnection, consumers: &[ConsumerRecord]) -> Result<()> {
    sqlx::query(
        "INSERT INTO consumers (name, position) SELECT * FROM UNNEST($1::text[], $2::bigint[])",
    )
    .bind(consumers.iter().map(|c| c.name.as_str()).collect::<Vec<_>>())
    .bind(consumers.iter().map(|c| int(c.position)).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// A JSON value as the text the statements cast to `jsonb` (NULL for none), as the append
/// statement binds metadata.
fn json_text(value: Option<&serde_json::Value>) -> Option<String> {
    value.map(serde_json::Value::to_string)
}

#[cfg(test)]
mod tests {
    use messaging_core::transfer::{After, Section};
    use uuid::Uuid;

    use super::*;

    fn times(n: usize) -> Records {
        let at = Timestamp::from_millis(1_000);
        Records::LastSeen((0..n).map(|_| UserTime { user_id: UserId::new(), at }).collect())
    }

    #[test]
    fn a_page_continues_the_stored_checkpoint_or_is_refused() {
        let stored = Checkpoint::at(9, Section::LastSeen, After::Id(Uuid::nil()), 4);
        let page = times(2);
        let last = page.last_key().unwrap_or(After::Start);
        let next =
            |section, after: &After, copied| Checkpoint::at(9, section, after.clone(), copied);
        assert!(continues(&stored, &page, &next(Section::LastSeen, &last, 6)).is_ok());
        // The next section begins: its count starts again.
        let revoked = match times(2) {
            Records::LastSeen(v) => Records::Revocations(v),
            other => other,
        };
        let revoked_last = revoked.last_key().unwrap_or(After::Start);
        assert!(
            continues(&stored, &revoked, &next(Section::Revocations, &revoked_last, 2)).is_ok()
        );
        // An empty page that stores the same checkpoint again.
        assert!(continues(&stored, &Records::empty(Section::LastSeen), &stored).is_ok());

        let refused = [
            // A count that skips or repeats a page.
            next(Section::LastSeen, &last, 5),
            // An earlier section, or a move that starts again.
            next(Section::Blocks, &last, 2),
            Checkpoint::start(9),
            // Another source.
            Checkpoint::at(10, Section::LastSeen, last.clone(), 6),
            // A key that is not the page's last.
            next(Section::LastSeen, &After::Id(Uuid::nil()), 6),
        ];
        for checkpoint in refused {
            let error = continues(&stored, &page, &checkpoint).err().map(Error::from);
            assert_eq!(error.map(|e| e.code()), Some("conflict"), "{checkpoint:?}");
        }
    }
}
