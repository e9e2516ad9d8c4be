//! The SQL of every mutation, run by the writer inside a batch transaction.
//!
//! Each function checks its conditions before writing, so a failure that belongs to the
//! caller (not found, conflict) leaves the transaction untouched and the rest of the batch
//! commits. Events are collected as [`PendingEvent`]s and get their positions at the very
//! end of the transaction (see `writer.rs`).

use std::collections::{BTreeMap, HashMap};

use messaging_core::search::index_text;
use messaging_core::{
    Appended, Conversation, ConversationKind, DeleteMessage, Deleted, EditMessage, Error, Event,
    MarkUpdate, Marked, Message, NewConversation, NewMessage, Opened, Receipt, ReceiptKind, Result,
    Timestamp, UserId,
};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::codec::{self, MESSAGE_COLUMNS, int, trusted, uint};
use crate::read;

/// An event waiting for its position: what happened, and who may see it.
#[derive(Debug, Clone)]
pub(crate) struct PendingEvent {
    pub(crate) event: Event,
    pub(crate) audience: Vec<UserId>,
}

impl PendingEvent {
    fn new(event: Event, audience: &[UserId]) -> Self {
        Self { event, audience: audience.to_vec() }
    }
}

/// SQL failures abort the batch (outer `Err`); the caller's own failures are the inner one.
pub(crate) type Step<T> = std::result::Result<Result<T>, sqlx::Error>;

pub(crate) async fn open_direct(
    conn: &mut PgConnection,
    new: &NewConversation,
    events: &mut Vec<PendingEvent>,
) -> Step<Opened> {
    let mut members = new.members;
    members.sort();
    let context = new.context.as_deref().unwrap_or("");
    let inserted = sqlx::query(
        "INSERT INTO conversations (id, user_lo, user_hi, context, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_lo, user_hi, context) DO NOTHING",
    )
    .bind(new.id.as_uuid())
    .bind(members[0].as_uuid())
    .bind(members[1].as_uuid())
    .bind(context)
    .bind(new.created_at.as_millis())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Ok(match read::find_direct(&mut *conn, members[0], members[1], context).await {
            Ok(Some(conversation)) => Ok(Opened { conversation, created: false }),
            Ok(None) => Err(Error::unavailable("conversation vanished during open")),
            Err(e) => Err(e),
        });
    }
    sqlx::query(
        "INSERT INTO members (user_id, conversation_id, peer_id, activity_at) \
         VALUES ($1, $3, $2, $4), ($2, $3, $1, $4)",
    )
    .bind(members[0].as_uuid())
    .bind(members[1].as_uuid())
    .bind(new.id.as_uuid())
    .bind(new.created_at.as_millis())
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
    };
    events.push(PendingEvent::new(Event::ConversationCreated(conversation.clone()), &new.audience));
    Ok(Ok(Opened { conversation, created: true }))
}

/// Appends a batch of messages in a bounded number of statements: idempotency keys are
/// resolved first, conversations locked in ascending id order (so concurrent batches of
/// several processes cannot deadlock) and their `last_seq` moved by the batch's count,
/// then one multi-row insert of the messages and one update of the members' activity.
pub(crate) async fn append_all(
    conn: &mut PgConnection,
    appends: &[&NewMessage],
    events: &mut Vec<PendingEvent>,
) -> std::result::Result<Vec<Result<Appended>>, sqlx::Error> {
    let mut outcomes: Vec<Option<Result<Appended>>> = (0..appends.len()).map(|_| None).collect();

    // 1. Idempotency keys: stored before, or repeated inside this batch.
    let keyed: Vec<(usize, &NewMessage, &str)> = appends
        .iter()
        .enumerate()
        .filter_map(|(i, m)| m.client_msg_id.as_deref().map(|k| (i, *m, k)))
        .collect();
    let mut first_of_key: HashMap<(Uuid, Uuid, &str), usize> = HashMap::new();
    let mut repeats: Vec<(usize, usize)> = Vec::new();
    if !keyed.is_empty() {
        let rows = sqlx::query(trusted(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages m \
             JOIN UNNEST($1::uuid[], $2::uuid[], $3::text[]) AS k(c, s, key) \
               ON m.conversation_id = k.c AND m.sender_id = k.s AND m.client_msg_id = k.key"
        )))
        .bind(keyed.iter().map(|(_, m, _)| *m.conversation_id.as_uuid()).collect::<Vec<_>>())
        .bind(keyed.iter().map(|(_, m, _)| *m.sender_id.as_uuid()).collect::<Vec<_>>())
        .bind(keyed.iter().map(|(_, _, k)| (*k).to_owned()).collect::<Vec<_>>())
        .fetch_all(&mut *conn)
        .await?;
        let mut stored: HashMap<(Uuid, Uuid, String), Message> = HashMap::new();
        for row in &rows {
            let message = codec::message(row, 0)?;
            let key = message.client_msg_id.clone().unwrap_or_default();
            stored.insert(
                (*message.conversation_id.as_uuid(), *message.sender_id.as_uuid(), key),
                message,
            );
        }
        for (i, m, k) in &keyed {
            let id = (*m.conversation_id.as_uuid(), *m.sender_id.as_uuid());
            if let Some(message) = stored.get(&(id.0, id.1, (*k).to_owned())) {
                outcomes[*i] = Some(Ok(Appended { message: message.clone(), created: false }));
            } else if let Some(first) = first_of_key.get(&(id.0, id.1, *k)) {
                repeats.push((*i, *first));
            } else {
                first_of_key.insert((id.0, id.1, *k), *i);
            }
        }
    }
    let repeated: std::collections::HashSet<usize> = repeats.iter().map(|(i, _)| *i).collect();
    let fresh: Vec<usize> =
        (0..appends.len()).filter(|i| outcomes[*i].is_none() && !repeated.contains(i)).collect();

    // 2. Lock the conversations in ascending id order and move their last_seq.
    let mut per_conversation: BTreeMap<Uuid, Vec<usize>> = BTreeMap::new();
    for i in &fresh {
        per_conversation.entry(*appends[*i].conversation_id.as_uuid()).or_default().push(*i);
    }
    let ids: Vec<Uuid> = per_conversation.keys().copied().collect();
    let locked = sqlx::query(
        "SELECT id, last_seq, user_lo, user_hi FROM conversations WHERE id = ANY($1) \
         ORDER BY id FOR UPDATE",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut found: HashMap<Uuid, (i64, Uuid, Uuid)> = HashMap::new();
    for row in &locked {
        found.insert(row.try_get(0)?, (row.try_get(1)?, row.try_get(2)?, row.try_get(3)?));
    }
    let mut messages: Vec<(usize, Message)> = Vec::new();
    let (mut conv_ids, mut conv_seqs, mut conv_ats) = (Vec::new(), Vec::new(), Vec::new());
    let (mut member_users, mut member_convs, mut member_ats) = (Vec::new(), Vec::new(), Vec::new());
    for (conversation, indexes) in &per_conversation {
        let Some((last_seq, lo, hi)) = found.get(conversation) else {
            for i in indexes {
                outcomes[*i] = Some(Err(Error::not_found("no such conversation")));
            }
            continue;
        };
        let mut seq = *last_seq;
        let mut at = 0;
        for i in indexes {
            seq += 1;
            let new = appends[*i];
            at = new.created_at.as_millis();
            messages.push((
                *i,
                Message {
                    id: new.id,
                    conversation_id: new.conversation_id,
                    seq: uint(seq),
                    sender_id: new.sender_id,
                    body: new.body.clone(),
                    metadata: new.metadata.clone(),
                    client_msg_id: new.client_msg_id.clone(),
                    created_at: new.created_at,
                    edited_at: None,
                    deleted: false,
                },
            ));
        }
        conv_ids.push(*conversation);
        conv_seqs.push(seq);
        conv_ats.push(at);
        for user in [lo, hi] {
            member_users.push(*user);
            member_convs.push(*conversation);
            member_ats.push(at);
        }
    }
    if !messages.is_empty() {
        sqlx::query(
            "UPDATE conversations c SET last_seq = v.seq, last_message_at = v.at \
             FROM UNNEST($1::uuid[], $2::bigint[], $3::bigint[]) AS v(id, seq, at) WHERE c.id = v.id",
        )
        .bind(&conv_ids)
        .bind(&conv_seqs)
        .bind(&conv_ats)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "INSERT INTO messages (id, conversation_id, seq, sender_id, body, metadata, \
               client_msg_id, created_at, words) \
             SELECT v.id, v.c, v.seq, v.s, v.body, v.meta::jsonb, v.key, v.at, \
               to_tsvector('simple', v.words) \
             FROM UNNEST($1::uuid[], $2::uuid[], $3::bigint[], $4::uuid[], $5::text[], \
               $6::text[], $7::text[], $8::bigint[], $9::text[]) \
               AS v(id, c, seq, s, body, meta, key, at, words)",
        )
        .bind(messages.iter().map(|(_, m)| *m.id.as_uuid()).collect::<Vec<_>>())
        .bind(messages.iter().map(|(_, m)| *m.conversation_id.as_uuid()).collect::<Vec<_>>())
        .bind(messages.iter().map(|(_, m)| int(m.seq)).collect::<Vec<_>>())
        .bind(messages.iter().map(|(_, m)| *m.sender_id.as_uuid()).collect::<Vec<_>>())
        .bind(messages.iter().map(|(_, m)| m.body.clone()).collect::<Vec<_>>())
        .bind(
            messages
                .iter()
                .map(|(_, m)| m.metadata.as_ref().map(serde_json::Value::to_string))
                .collect::<Vec<_>>(),
        )
        .bind(messages.iter().map(|(_, m)| m.client_msg_id.clone()).collect::<Vec<_>>())
        .bind(messages.iter().map(|(_, m)| m.created_at.as_millis()).collect::<Vec<_>>())
        .bind(messages.iter().map(|(_, m)| index_text(&m.body)).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "UPDATE members m SET activity_at = v.at \
             FROM UNNEST($1::uuid[], $2::uuid[], $3::bigint[]) AS v(u, c, at) \
             WHERE m.user_id = v.u AND m.conversation_id = v.c",
        )
        .bind(&member_users)
        .bind(&member_convs)
        .bind(&member_ats)
        .execute(&mut *conn)
        .await?;
    }
    for (i, message) in messages {
        events
            .push(PendingEvent::new(Event::MessageCreated(message.clone()), &appends[i].audience));
        outcomes[i] = Some(Ok(Appended { message, created: true }));
    }
    for (i, first) in repeats {
        outcomes[i] = Some(match &outcomes[first] {
            Some(Ok(appended)) => {
                Ok(Appended { message: appended.message.clone(), created: false })
            }
            Some(Err(e)) => Err(Error::unavailable(e.to_string())),
            None => Err(Error::unavailable("duplicate key without an original")),
        });
    }
    Ok(outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Err(Error::unavailable("append was not run"))))
        .collect())
}

async fn locked_message(
    conn: &mut PgConnection,
    id: Uuid,
) -> std::result::Result<Option<Message>, sqlx::Error> {
    sqlx::query(trusted(format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.id = $1 FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .map(|row| codec::message(&row, 0))
    .transpose()
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
    events.push(PendingEvent::new(Event::MessageEdited(message.clone()), &edit.audience));
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
        "UPDATE messages SET deleted = true, body = '', metadata = NULL, words = ''::tsvector \
         WHERE id = $1",
    )
    .bind(delete.id.as_uuid())
    .execute(&mut *conn)
    .await?;
    message.deleted = true;
    message.body.clear();
    message.metadata = None;
    events.push(PendingEvent::new(Event::MessageDeleted(message.clone()), &delete.audience));
    Ok(Ok(Deleted { message, changed: true }))
}

pub(crate) async fn mark(
    conn: &mut PgConnection,
    update: &MarkUpdate,
    events: &mut Vec<PendingEvent>,
) -> Step<Marked> {
    let column = match update.kind {
        ReceiptKind::Read => "read_seq",
        ReceiptKind::Delivered => "delivered_seq",
    };
    let row = sqlx::query(trusted(format!(
        "SELECT mb.{column}, c.last_seq FROM members mb \
         JOIN conversations c ON c.id = mb.conversation_id \
         WHERE mb.user_id = $1 AND mb.conversation_id = $2 FOR UPDATE OF mb"
    )))
    .bind(update.user_id.as_uuid())
    .bind(update.conversation_id.as_uuid())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(Err(Error::not_found("no such conversation"))) };
    let (current, last_seq): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    let target = int(update.up_to_seq).min(last_seq);
    if target <= current {
        return Ok(Ok(Marked { seq: uint(current), moved: false }));
    }
    sqlx::query(trusted(format!(
        "UPDATE members SET {column} = $3 WHERE user_id = $1 AND conversation_id = $2"
    )))
    .bind(update.user_id.as_uuid())
    .bind(update.conversation_id.as_uuid())
    .bind(target)
    .execute(&mut *conn)
    .await?;
    let receipt = Receipt {
        conversation_id: update.conversation_id,
        user_id: update.user_id,
        kind: update.kind,
        seq: uint(target),
    };
    events.push(PendingEvent::new(Event::Receipt(receipt), &update.audience));
    Ok(Ok(Marked { seq: uint(target), moved: true }))
}

pub(crate) async fn set_block(
    conn: &mut PgConnection,
    blocker: UserId,
    blocked: UserId,
    on: bool,
) -> Step<()> {
    let sql = if on {
        "INSERT INTO blocks (blocker, blocked) VALUES ($1, $2) ON CONFLICT DO NOTHING"
    } else {
        "DELETE FROM blocks WHERE blocker = $1 AND blocked = $2"
    };
    sqlx::query(sql).bind(blocker.as_uuid()).bind(blocked.as_uuid()).execute(&mut *conn).await?;
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

/// Takes positions for `events` from `log_head` (the transaction's last lock), then writes
/// the event rows, their audience index rows, and the notification (sent at commit).
/// Returns the position of the first event, or `None` when there was nothing to log.
pub(crate) async fn log_events(
    conn: &mut PgConnection,
    events: &[PendingEvent],
    channel: &str,
    hold: Option<messaging_core::HoldPoint>,
) -> std::result::Result<Option<u64>, sqlx::Error> {
    if events.is_empty() {
        return Ok(None);
    }
    let count = i64::try_from(events.len()).unwrap_or(i64::MAX);
    let head: i64 =
        sqlx::query_scalar("UPDATE log_head SET position = position + $1 RETURNING position")
            .bind(count)
            .fetch_one(&mut *conn)
            .await?;
    let first = head - count + 1;
    if let Some(hold) = hold {
        hold.hold(uint(first)).await;
    }
    let positions: Vec<i64> = (first..=head).collect();
    let rows: Vec<codec::EventRow> = events.iter().map(|e| codec::event_row(&e.event)).collect();
    sqlx::query(
        "INSERT INTO events (position, kind, conversation_id, message_id, user_id, seq, audience) \
         SELECT v.p, v.k, v.c, v.m, v.u, v.s, string_to_array(v.a, ',')::uuid[] \
         FROM UNNEST($1::bigint[], $2::smallint[], $3::uuid[], $4::uuid[], $5::uuid[], \
           $6::bigint[], $7::text[]) AS v(p, k, c, m, u, s, a)",
    )
    .bind(&positions)
    .bind(rows.iter().map(|r| r.kind).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.conversation_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.message_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.user_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.seq).collect::<Vec<_>>())
    .bind(
        events
            .iter()
            .map(|e| {
                e.audience.iter().map(|u| u.as_uuid().to_string()).collect::<Vec<_>>().join(",")
            })
            .collect::<Vec<_>>(),
    )
    .execute(&mut *conn)
    .await?;
    let (mut users, mut at) = (Vec::new(), Vec::new());
    for (event, position) in events.iter().zip(&positions) {
        for user in &event.audience {
            users.push(*user.as_uuid());
            at.push(*position);
        }
    }
    sqlx::query(
        "INSERT INTO event_audience (user_id, position) \
         SELECT * FROM UNNEST($1::uuid[], $2::bigint[]) ON CONFLICT DO NOTHING",
    )
    .bind(&users)
    .bind(&at)
    .execute(&mut *conn)
    .await?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(head.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(Some(uint(first)))
}
