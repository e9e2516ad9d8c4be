//! The SQL of every read. Reads go straight to the pool: each is one statement.

use messaging_core::id::{ConversationId, MessageId, UserId};
use messaging_core::model::{
    CommittedEvent, Conversation, ConversationSummary, LoggedEvent, Message, UnreadTotals,
};
use messaging_core::store::{ConversationPage, HistoryWindow, SearchQuery};
use messaging_core::time::Timestamp;
use sqlx::{PgExecutor, PgPool, Row};
use uuid::Uuid;

use crate::codec::{
    self, CONVERSATION_COLUMNS, CONVERSATION_WIDTH, EVENT_JOINS, MESSAGE_COLUMNS, event_columns,
    int, trusted, uint,
};
use crate::error::Result;

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

/// One statement per page; the last message and the unread count are lateral lookups on
/// indexes, not a query per row.
pub(crate) async fn conversations(
    pool: &PgPool,
    page: ConversationPage,
) -> Result<Vec<ConversationSummary>> {
    // The page is chosen first, on `activity` alone, and only its rows are joined.
    // Prepared statements get a generic plan after five runs; planned as one join, that
    // plan (estimating ~2 rows per user) joined all of a busy user's conversations and
    // sorted them: 7.4-7.9 ms for the first page of 1,000 (measured 2026-11-21), against
    // 0.4 ms when the page is picked before the joins. The keyset variants are separate
    // statements for the same reason (no `$3 IS NULL OR …`).
    //
    // `activity_order` is sorted by the minute (`bucket`) only (migration 0003: indexing the
    // exact time made every append rewrite index entries). The index range starts at the
    // keyset's minute; the generic plan then top-N sorts the user's older rows (0.3-0.7 ms
    // for 1,000 conversations, measured 2026-11-22), not only the page's.
    let keyset = if page.before.is_some() {
        "AND a.bucket <= activity_bucket($3) AND (a.at, a.conversation_id) < ($3, $4)"
    } else {
        "AND $3::bigint IS NULL AND $4::uuid IS NULL"
    };
    let sql = format!(
        "WITH page AS MATERIALIZED ( \
           SELECT a.user_id, a.conversation_id, a.at FROM activity a \
           WHERE a.user_id = $1 {keyset} \
           ORDER BY a.bucket DESC, a.at DESC, a.conversation_id DESC LIMIT $2) \
         SELECT {CONVERSATION_COLUMNS}, me.read_seq, peer.read_seq, peer.delivered_seq, \
           (SELECT count(*) FROM messages u WHERE u.conversation_id = me.conversation_id \
              AND u.seq > me.read_seq AND u.sender_id <> me.user_id AND NOT u.deleted), \
           {MESSAGE_COLUMNS} \
         FROM page \
         JOIN members me ON me.user_id = page.user_id AND me.conversation_id = page.conversation_id \
         JOIN conversations c ON c.id = page.conversation_id \
         JOIN members peer ON peer.user_id = me.peer_id AND peer.conversation_id = me.conversation_id \
         LEFT JOIN messages m ON m.conversation_id = c.id AND m.seq = c.last_seq \
         ORDER BY page.at DESC, page.conversation_id DESC"
    );
    let rows = sqlx::query(trusted(sql))
        .bind(page.user.as_uuid())
        .bind(int(page.limit as u64))
        .bind(page.before.map(|k| k.at.as_millis()))
        .bind(page.before.map(|k| *k.id.as_uuid()))
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|row| {
            let at = CONVERSATION_WIDTH;
            Ok(ConversationSummary {
                conversation: codec::conversation(row, 0)?,
                read_seq: uint(row.try_get(at)?),
                peer_read_seq: uint(row.try_get(at + 1)?),
                peer_delivered_seq: uint(row.try_get(at + 2)?),
                unread_count: uint(row.try_get(at + 3)?),
                last_message: codec::optional_message(row, at + 4)?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map_err(Into::into)
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

pub(crate) async fn unread(pool: &PgPool, user: UserId) -> Result<UnreadTotals> {
    let row = sqlx::query(
        "SELECT count(*), count(DISTINCT me.conversation_id) FROM members me \
         JOIN messages u ON u.conversation_id = me.conversation_id AND u.seq > me.read_seq \
         WHERE me.user_id = $1 AND u.sender_id <> $1 AND NOT u.deleted",
    )
    .bind(user.as_uuid())
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
        // Unknown kinds are skipped (see `codec::event`).
        if let (position, Some((event, _))) = codec::event(row)? {
            events.push(LoggedEvent { position, event });
        }
    }
    Ok(events)
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
            codec::event(row).map(|(position, known)| {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::panic, reason = "tests: failing loudly is the point")]

    use sqlx::{Connection, Executor, PgConnection};

    use super::search_sql;

    /// A fresh database cloned from the migrated template of `scripts/pg.sh`, or `None`
    /// (skip) without one, unless `MESSAGING_PG_REQUIRED=1` (then a failure).
    async fn fresh_database() -> Option<String> {
        let vars = (std::env::var("MESSAGING_PG_URL"), std::env::var("MESSAGING_PG_TEMPLATE"));
        let (Ok(admin), Ok(template)) = vars else {
            if std::env::var("MESSAGING_PG_REQUIRED").is_ok_and(|v| v == "1") {
                panic!("MESSAGING_PG_REQUIRED=1 but no MESSAGING_PG_URL/MESSAGING_PG_TEMPLATE");
            }
            eprintln!("PostgreSQL test skipped: no MESSAGING_PG_URL (run ./scripts/test.sh)");
            return None;
        };
        let name = format!("case_{}", uuid::Uuid::now_v7().simple());
        let mut conn = PgConnection::connect(&admin).await.expect("admin connection");
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name} TEMPLATE {template}")))
            .await
            .expect("create the database");
        let (base, _) = admin.rsplit_once('/').expect("a database in MESSAGING_PG_URL");
        Some(format!("{base}/{name}"))
    }

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
                let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "EXPLAIN EXECUTE {name}({args})"
                )))
                .fetch_all(&mut conn)
                .await
                .expect("explain");
                let plan = plan.join("\n");
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
}
