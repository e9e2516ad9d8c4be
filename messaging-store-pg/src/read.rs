//! The SQL of the reads (the conversation lists are in `lists.rs`). Reads go straight to
//! the pool: each is one statement.

use messaging_core::id::{ConversationId, MessageId, UserId};
use messaging_core::model::{
    Attachment, CommittedEvent, Conversation, LogEntry, LoggedEvent, Message, Recipient,
    UnreadTotals,
};
use messaging_core::store::{HistoryWindow, SearchQuery};
use messaging_core::time::Timestamp;
use sqlx::types::Json;
use sqlx::{PgExecutor, PgPool, Row};
use uuid::Uuid;

use crate::codec::{self, CONVERSATION_COLUMNS, MESSAGE_COLUMNS, int, trusted, uint};
use crate::error::Result;
use crate::event_rows::{self, EVENT_JOINS, event_columns};

pub(crate) async fn conversation(
    db: impl PgExecutor<'_>,
    id: ConversationId,
) -> Result<Option<Conversation>> {
    let row = sqlx::query(trusted(format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations c WHERE c.id = $1"
    )))
    .bind(id.as_uuid())
    .fetch_optional(db)
    .await?;
    Ok(row.map(|row| codec::conversation(&row, 0)).transpose()?)
}

pub(crate) async fn find_direct(
    db: impl PgExecutor<'_>,
    a: UserId,
    b: UserId,
    context: &str,
) -> Result<Option<Conversation>> {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let row = sqlx::query(trusted(format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations c \
         WHERE c.user_lo = $1 AND c.user_hi = $2 AND c.context = $3"
    )))
    .bind(lo.as_uuid())
    .bind(hi.as_uuid())
    .bind(context)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|row| codec::conversation(&row, 0)).transpose()?)
}

pub(crate) async fn peers(pool: &PgPool, user: UserId) -> Result<Vec<UserId>> {
    let rows: Vec<Uuid> =
        sqlx::query_scalar("SELECT DISTINCT peer_id FROM members WHERE user_id = $1")
            .bind(user.as_uuid())
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(UserId::from_uuid).collect())
}

pub(crate) async fn peers_among(
    pool: &PgPool,
    user: UserId,
    candidates: &[UserId],
) -> Result<Vec<UserId>> {
    let candidates: Vec<Uuid> = candidates.iter().map(|u| *u.as_uuid()).collect();
    let rows: Vec<Uuid> = sqlx::query_scalar(
        "SELECT DISTINCT peer_id FROM members WHERE user_id = $1 AND peer_id = ANY($2)",
    )
    .bind(user.as_uuid())
    .bind(&candidates)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(UserId::from_uuid).collect())
}

pub(crate) async fn message(db: impl PgExecutor<'_>, id: MessageId) -> Result<Option<Message>> {
    let row =
        sqlx::query(trusted(format!("SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.id = $1")))
            .bind(id.as_uuid())
            .fetch_optional(db)
            .await?;
    Ok(row.map(|row| codec::message(&row, 0)).transpose()?)
}

pub(crate) async fn find_by_client_msg_id(
    db: impl PgExecutor<'_>,
    conversation_id: ConversationId,
    sender_id: UserId,
    key: &str,
) -> Result<Option<Message>> {
    let row = sqlx::query(trusted(format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m \
         WHERE m.conversation_id = $1 AND m.sender_id = $2 AND m.client_msg_id = $3"
    )))
    .bind(conversation_id.as_uuid())
    .bind(sender_id.as_uuid())
    .bind(key)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|row| codec::message(&row, 0)).transpose()?)
}

pub(crate) async fn history(
    pool: &PgPool,
    conversation_id: ConversationId,
    window: HistoryWindow,
    limit: usize,
) -> Result<Vec<Message>> {
    let (condition, order, anchor) = match window {
        HistoryWindow::Latest => ("$3::bigint IS NULL", "DESC", None),
        HistoryWindow::Before(seq) => ("m.seq < $3", "DESC", Some(int(seq))),
        HistoryWindow::After(seq) => ("m.seq > $3", "ASC", Some(int(seq))),
    };
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.conversation_id = $1 AND {condition} \
         ORDER BY m.seq {order} LIMIT $2"
    );
    let rows = sqlx::query(trusted(sql))
        .bind(conversation_id.as_uuid())
        .bind(int(limit as u64))
        .bind(anchor)
        .fetch_all(pool)
        .await?;
    let mut messages =
        rows.iter().map(|row| codec::message(row, 0)).collect::<Result<Vec<_>, _>>()?;
    if order == "DESC" {
        messages.reverse();
    }
    Ok(messages)
}

/// The search statement: `$1` the words, `$2` the caller, `$3` the limit, and `$4` a
/// conversation when `in_one` (the variants are separate statements so that each keeps its
/// own plan).
///
/// The work is bounded by the caller's conversations, never by the database: the
/// statement starts from the caller's memberships and looks into each conversation's
/// messages through its `(conversation_id, seq)` index. Matching the words first through
/// the GIN index and filtering by membership afterwards would read every message in the
/// database holding a common word, which one caller could repeat to load the server. The
/// match is written `ts_match_vq(words, query)` (the function behind `@@`) precisely so that
/// the planner cannot pick that index. A caller whose own conversations are too large for
/// this is stopped by `statement_timeout`.
pub(crate) fn search_sql(in_one: bool) -> String {
    let only = if in_one { "AND me.conversation_id = $4" } else { "AND $4::uuid IS NULL" };
    format!(
        "WITH mine AS MATERIALIZED ( \
           SELECT me.conversation_id FROM members me WHERE me.user_id = $2 {only}) \
         SELECT {MESSAGE_COLUMNS} FROM mine CROSS JOIN LATERAL ( \
           SELECT * FROM messages x \
           WHERE x.conversation_id = mine.conversation_id AND NOT x.deleted \
             AND ts_match_vq(x.words, plainto_tsquery('simple', $1)) \
           ORDER BY x.created_at DESC, x.id DESC LIMIT $3) m \
         ORDER BY m.created_at DESC, m.id DESC LIMIT $3"
    )
}

pub(crate) async fn search(pool: &PgPool, query: &SearchQuery) -> Result<Vec<Message>> {
    let rows = sqlx::query(trusted(search_sql(query.conversation_id.is_some())))
        .bind(query.terms.join(" "))
        .bind(query.user.as_uuid())
        .bind(int(query.limit as u64))
        .bind(query.conversation_id.map(|c| *c.as_uuid()))
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().map(|row| codec::message(row, 0)).collect::<Result<Vec<_>, _>>()?)
}

/// The unread totals of `user`, leaving out the conversations they muted past `now`.
pub(crate) async fn unread(pool: &PgPool, user: UserId, now: Timestamp) -> Result<UnreadTotals> {
    let row = sqlx::query(
        "SELECT count(*), count(DISTINCT me.conversation_id) FROM members me \
         JOIN messages u ON u.conversation_id = me.conversation_id AND u.seq > me.read_seq \
         WHERE me.user_id = $1 AND u.sender_id <> $1 AND NOT u.deleted \
           AND (me.muted_until IS NULL OR me.muted_until <= $2)",
    )
    .bind(user.as_uuid())
    .bind(now.as_millis())
    .fetch_one(pool)
    .await?;
    Ok(UnreadTotals { total: uint(row.try_get(0)?), conversations: uint(row.try_get(1)?) })
}

pub(crate) async fn head(db: impl PgExecutor<'_>) -> Result<u64> {
    let head: i64 = sqlx::query_scalar("SELECT position FROM log_head").fetch_one(db).await?;
    Ok(uint(head))
}

pub(crate) async fn read_events(
    pool: &PgPool,
    user: UserId,
    after: u64,
    up_to: u64,
    limit: usize,
) -> Result<Vec<LoggedEvent>> {
    let sql = format!(
        "SELECT {columns} FROM event_audience a JOIN events e ON e.position = a.position \
         {EVENT_JOINS} \
         WHERE a.user_id = $1 AND a.position > $2 AND a.position <= $3 \
         ORDER BY a.position LIMIT $4",
        columns = event_columns()
    );
    let rows = sqlx::query(trusted(sql))
        .bind(user.as_uuid())
        .bind(int(after))
        .bind(int(up_to))
        .bind(int(limit as u64))
        .fetch_all(pool)
        .await?;
    let mut events = Vec::with_capacity(rows.len());
    for row in &rows {
        // Unknown kinds are skipped (see `event_rows`).
        if let (position, Some((event, _))) = event_rows::event(row)? {
            events.push(LoggedEvent { position, event });
        }
    }
    Ok(events)
}

/// The SQL of `read_log`: `$1` and `$2` the bounds, `$3` the limit. One statement: a range
/// of the log's primary key, of the kinds this version knows (a newer version's are
/// skipped here, so they take no room in the limit), with [`EVENT_JOINS`] and the
/// recipients' mutes: each audience member's row of the event's conversation, looked up
/// by its primary key, aggregated in the audience's order.
fn read_log_sql() -> String {
    format!(
        "SELECT {columns}, e.actor, e.removed_attachments, r.muted \
         FROM events e {EVENT_JOINS} \
         LEFT JOIN LATERAL ( \
           SELECT array_agg(mb.muted_until ORDER BY u.ord) AS muted \
           FROM unnest(e.audience) WITH ORDINALITY AS u(id, ord) \
           LEFT JOIN members mb ON mb.user_id = u.id AND mb.conversation_id = e.conversation_id \
         ) r ON true \
         WHERE e.position > $1 AND e.position <= $2 AND e.kind BETWEEN {first} AND {last} \
         ORDER BY e.position LIMIT $3",
        columns = event_columns(),
        first = event_rows::kind::CONVERSATION_CREATED,
        last = event_rows::kind::CONVERSATION_UPDATED,
    )
}

/// Every event of the log with `after < position <= up_to` (of the kinds this version
/// knows), at most `limit`, with actors, recipients and removed attachments: one query.
pub(crate) async fn read_log(
    pool: &PgPool,
    after: u64,
    up_to: u64,
    limit: usize,
) -> Result<Vec<LogEntry>> {
    let rows = sqlx::query(trusted(read_log_sql()))
        .bind(int(after))
        .bind(int(up_to))
        .bind(int(limit as u64))
        .fetch_all(pool)
        .await?;
    let at = event_rows::LOG_AT;
    let mut entries = Vec::with_capacity(rows.len());
    for row in &rows {
        let (position, Some((event, audience))) = event_rows::event(row)? else { continue };
        let actor = row.try_get::<Option<Uuid>, _>(at)?.and_then(codec::sender_of);
        let removed: Option<Json<Vec<Attachment>>> = row.try_get(at + 1)?;
        let muted: Option<Vec<Option<i64>>> = row.try_get(at + 2)?;
        let muted = muted.unwrap_or_default();
        let recipients = audience
            .into_iter()
            .enumerate()
            .map(|(i, user)| {
                let until = muted.get(i).copied().flatten().map(Timestamp::from_millis);
                Recipient::new(user, until)
            })
            .collect();
        let logged = LoggedEvent { position, event };
        entries.push(LogEntry::new(
            logged,
            actor,
            recipients,
            removed.map(|r| r.0).unwrap_or_default(),
        ));
    }
    Ok(entries)
}

/// The committed log after `after`, for the feed, with audiences: every position read, with
/// `None` for events of kinds this version does not know (the feed moves past them).
pub(crate) async fn feed(
    pool: &PgPool,
    after: u64,
    limit: usize,
) -> Result<Vec<(u64, Option<CommittedEvent>)>> {
    let sql = format!(
        "SELECT {columns} FROM events e {EVENT_JOINS} WHERE e.position > $1 \
         ORDER BY e.position LIMIT $2",
        columns = event_columns()
    );
    let rows =
        sqlx::query(trusted(sql)).bind(int(after)).bind(int(limit as u64)).fetch_all(pool).await?;
    rows.iter()
        .map(|row| {
            event_rows::event(row).map(|(position, known)| {
                let committed = known.map(|(event, audience)| CommittedEvent {
                    logged: LoggedEvent { position, event },
                    audience,
                });
                (position, committed)
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(Into::into)
}

pub(crate) async fn is_blocked_between(pool: &PgPool, a: UserId, b: UserId) -> Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM blocks WHERE (blocker = $1 AND blocked = $2) \
                                            OR (blocker = $2 AND blocked = $1))",
    )
    .bind(a.as_uuid())
    .bind(b.as_uuid())
    .fetch_one(pool)
    .await
    .map_err(Into::into)
}

pub(crate) async fn last_seen(pool: &PgPool, users: &[UserId]) -> Result<Vec<(UserId, Timestamp)>> {
    let ids: Vec<Uuid> = users.iter().map(|u| *u.as_uuid()).collect();
    let rows = sqlx::query("SELECT user_id, at FROM last_seen WHERE user_id = ANY($1)")
        .bind(&ids)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|row| {
            Ok((UserId::from_uuid(row.try_get(0)?), Timestamp::from_millis(row.try_get(1)?)))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(Into::into)
}

/// The time of `user`'s latest revocation (one primary-key lookup), `None` when they have
/// none.
pub(crate) async fn revoked_at(pool: &PgPool, user: UserId) -> Result<Option<Timestamp>> {
    let at: Option<i64> = sqlx::query_scalar("SELECT at FROM revocations WHERE user_id = $1")
        .bind(user.as_uuid())
        .fetch_optional(pool)
        .await?;
    Ok(at.map(Timestamp::from_millis))
}

/// The users `blocker` blocks, ascending, strictly after `after`, at most `limit`: a range
/// of the `blocks` primary key (the keyset variants are separate statements, each with its
/// own plan).
pub(crate) async fn blocks(
    pool: &PgPool,
    blocker: UserId,
    after: Option<UserId>,
    limit: usize,
) -> Result<Vec<UserId>> {
    let keyset = if after.is_some() { "AND blocked > $3" } else { "AND $3::uuid IS NULL" };
    let rows: Vec<Uuid> = sqlx::query_scalar(trusted(format!(
        "SELECT blocked FROM blocks WHERE blocker = $1 {keyset} ORDER BY blocked LIMIT $2"
    )))
    .bind(blocker.as_uuid())
    .bind(int(limit as u64))
    .bind(after.map(|u| *u.as_uuid()))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(UserId::from_uuid).collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::panic, reason = "tests: failing loudly is the point")]

    use sqlx::{Connection, Executor, PgConnection};

    use super::{read_log_sql, search_sql};
    use crate::test_database::{BUSY, fresh_database, plan_of};

    /// The search plan starts from the caller's memberships and never reads the words
    /// index (which would read every message in the database holding the words), neither
    /// in the plans made for the given words nor in the generic plan of the prepared
    /// statement. The data makes the words rare and the caller's conversations many: the
    /// shape in which matching first looks cheapest to the planner.
    #[tokio::test]
    async fn search_is_driven_by_the_callers_conversations() {
        let Some(url) = fresh_database().await else { return };
        let mut conn = PgConnection::connect(&url).await.expect("connect");
        conn.execute(
            "SET search_path TO messaging; \
             INSERT INTO conversations (id, user_lo, user_hi, context, created_at) \
               SELECT gen_random_uuid(), '00000000-0000-0000-0000-0000000000aa', \
                      gen_random_uuid(), '', 0 FROM generate_series(1, 300); \
             INSERT INTO members (user_id, conversation_id, peer_id) \
               SELECT user_lo, id, user_hi FROM conversations; \
             INSERT INTO messages (id, conversation_id, seq, sender_id, body, created_at, words) \
               SELECT gen_random_uuid(), c.id, g, c.user_lo, 'hello', g, \
                      to_tsvector('simple', 'hello ' || g) \
               FROM conversations c, generate_series(1, 30) g; \
             UPDATE messages SET words = to_tsvector('simple', 'rare') \
               WHERE id IN (SELECT id FROM messages LIMIT 5); \
             ANALYZE",
        )
        .await
        .expect("test data");
        let one: uuid::Uuid = sqlx::query_scalar("SELECT id FROM conversations LIMIT 1")
            .fetch_one(&mut conn)
            .await
            .expect("a conversation");
        let caller = "'rare', '00000000-0000-0000-0000-0000000000aa', 20";
        for (in_one, args) in
            [(false, format!("{caller}, NULL")), (true, format!("{caller}, '{one}'"))]
        {
            for mode in ["auto", "force_generic_plan"] {
                let name = format!("search_{}_{mode}", u8::from(in_one));
                conn.execute(sqlx::AssertSqlSafe(format!(
                    "SET plan_cache_mode = {mode}; \
                     PREPARE {name}(text, uuid, bigint, uuid) AS {}",
                    search_sql(in_one)
                )))
                .await
                .expect("prepare");
                let plan = plan_of(&mut conn, "", &name, &args).await;
                assert!(!plan.contains("messages_words"), "the words index is not read:\n{plan}");
                let members = plan.find("on members").expect("the memberships are read");
                let messages = plan.find("on messages").expect("the messages are read");
                assert!(members < messages, "memberships first:\n{plan}");
                assert!(
                    plan.contains("Nested Loop"),
                    "messages looked up per conversation:\n{plan}"
                );
            }
        }
    }

    /// `read_log` reads one range of the log's primary key, whatever the log's length,
    /// and looks each recipient's member row up by its key (in the plans made for the
    /// arguments and in the generic plan).
    #[tokio::test]
    async fn read_log_reads_a_range_of_the_log() {
        let Some(url) = fresh_database().await else { return };
        let mut conn = PgConnection::connect(&url).await.expect("connect");
        conn.execute(BUSY).await.expect("test data");
        conn.execute(
            "INSERT INTO events (position, kind, conversation_id, audience) \
               SELECT row_number() OVER (ORDER BY id), 1, id, ARRAY[user_lo, user_hi] \
               FROM conversations; \
             ANALYZE events",
        )
        .await
        .expect("a long log");
        for mode in ["auto", "force_generic_plan"] {
            let name = format!("read_log_{mode}");
            conn.execute(sqlx::AssertSqlSafe(format!(
                "SET plan_cache_mode = {mode}; PREPARE {name}(bigint, bigint, bigint) AS {}",
                read_log_sql()
            )))
            .await
            .expect("prepare");
            let plan = plan_of(&mut conn, "", &name, "4000, 8600, 100").await;
            assert!(plan.contains("using events_pkey on events"), "{name}:\n{plan}");
            assert!(!plan.contains("Seq Scan on events"), "{name}:\n{plan}");
            assert!(plan.contains("using members_pkey on members"), "{name}:\n{plan}");
            assert!(!plan.contains("Seq Scan on members"), "{name}:\n{plan}");
        }
    }
}
