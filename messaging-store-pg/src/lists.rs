//! The conversation lists: a user's list (a page of summaries), one summary, and every
//! conversation of one context. Each is one statement.
//!
//! Both lists read `activity` (migrations 0003 and 0005), whose rows carry the list order
//! (each member's last activity, `at`, and its minute, `bucket`): a user's list through
//! `activity_order (user_id, archived, bucket DESC)`, a context's through
//! `activity_context (context, bucket DESC)`. The page is chosen first, on `activity`
//! alone, and only its rows are joined.
//!
//! Prepared statements get a generic plan after five runs; planned as one join, that plan
//! (estimating ~2 rows per user) joined all of a busy user's conversations and sorted them:
//! 7.4-7.9 ms for the first page of 1,000 (measured 2026-11-21), against 0.4 ms when the
//! page is picked before the joins. The keyset and filter variants are separate statements
//! for the same reason (no `$3 IS NULL OR …`).
//!
//! The indexes are sorted by the minute only (indexing the exact time made every append
//! rewrite index entries, 0003), so a page is taken in two steps (see `activity_page`):
//! the minute of the page's last row is read off the index first, then only the rows from
//! that minute on are read and sorted by the exact time. A page reads its own rows and the
//! rest of its last minute, whatever the number of conversations and whatever the plan
//! (a plain `ORDER BY … LIMIT` let the generic plan read and sort all of a busy context's
//! rows, 10,030 of them for a page of 21 in a test database).

use messaging_core::id::{ConversationId, UserId};
use messaging_core::model::{Conversation, ConversationSummary};
use messaging_core::store::{ContextPage, ConversationPage};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use crate::codec::{
    self, CONVERSATION_COLUMNS, CONVERSATION_WIDTH, MESSAGE_COLUMNS, int, trusted, uint,
};
use crate::error::Result;

/// The keyset condition on `activity a` when a page starts after `($3, $4)` (activity
/// time, conversation id), or the variant that binds nothing.
fn keyset(after: bool) -> &'static str {
    if after {
        "AND a.bucket <= activity_bucket($3) AND (a.at, a.conversation_id) < ($3, $4)"
    } else {
        "AND $3::bigint IS NULL AND $4::uuid IS NULL"
    }
}

/// Two CTEs, `edge` and `page`: the first `$2` rows of `activity a` matching `filter`,
/// newest activity first (`bucket`, then `at`, then `conversation_id`, descending), with
/// `columns`.
///
/// `edge` is the minute of the `$2`-th row: the index gives the rows in minute order, so it
/// reads `$2` entries. The page's rows are all in that minute or later, so `page` reads
/// only those (a bound in the index condition) before sorting them exactly. Without a
/// `$2`-th row there is no bound: the page is everything that matches.
fn activity_page(filter: &str, columns: &str) -> String {
    format!(
        "edge AS MATERIALIZED ( \
           SELECT a.bucket FROM activity a WHERE {filter} \
           ORDER BY a.bucket DESC OFFSET greatest($2 - 1, 0) LIMIT 1), \
         page AS MATERIALIZED ( \
           SELECT {columns} FROM activity a WHERE {filter} \
             AND a.bucket >= COALESCE((SELECT e.bucket FROM edge e), '-9223372036854775808'::bigint) \
           ORDER BY a.bucket DESC, a.at DESC, a.conversation_id DESC LIMIT $2)"
    )
}

/// The summaries of the rows of a CTE `page (user_id, conversation_id, at, archived)`
/// defined by `ctes` (a `WITH` list ending with it): the conversation, the viewer's and
/// the peer's markers and times, the unread count (an index range of the conversation's
/// messages after the marker), the viewer's settings and the last message (a tombstone
/// included). Decoded by [`summary`].
pub(crate) fn summaries_sql(ctes: &str) -> String {
    format!(
        "WITH {ctes} \
         SELECT {CONVERSATION_COLUMNS}, me.read_seq, peer.read_seq, peer.delivered_seq, \
           (SELECT count(*) FROM messages u WHERE u.conversation_id = me.conversation_id \
              AND u.seq > me.read_seq AND u.sender_id <> me.user_id AND NOT u.deleted), \
           me.muted_until, page.archived, peer.read_at, peer.delivered_at, {MESSAGE_COLUMNS} \
         FROM page \
         JOIN members me ON me.user_id = page.user_id AND me.conversation_id = page.conversation_id \
         JOIN conversations c ON c.id = page.conversation_id \
         JOIN members peer ON peer.user_id = me.peer_id AND peer.conversation_id = me.conversation_id \
         LEFT JOIN messages m ON m.conversation_id = c.id AND m.seq = c.last_seq \
         ORDER BY page.at DESC, page.conversation_id DESC"
    )
}

/// Decodes a row of [`summaries_sql`].
fn summary(row: &PgRow) -> Result<ConversationSummary, sqlx::Error> {
    let at = CONVERSATION_WIDTH;
    Ok(ConversationSummary {
        conversation: codec::conversation(row, 0)?,
        read_seq: uint(row.try_get(at)?),
        peer_read_seq: uint(row.try_get(at + 1)?),
        peer_delivered_seq: uint(row.try_get(at + 2)?),
        unread_count: uint(row.try_get(at + 3)?),
        muted_until: codec::optional_time(row, at + 4)?,
        archived: row.try_get(at + 5)?,
        peer_read_at: codec::optional_time(row, at + 6)?,
        peer_delivered_at: codec::optional_time(row, at + 7)?,
        last_message: codec::optional_message(row, at + 8)?,
    })
}

/// The CTEs of a user's list: `$1` the user, `$2` the limit, `$3`/`$4` the keyset, `$5`
/// archived or not, `$6` the context filter.
///
/// The archived flag is the index's second column: a page reads only its kind's range. A
/// context filter is a lookup per row read (the conversation's primary key) while the
/// user's range is read, until the page is full.
pub(crate) fn page_sql(after: bool, in_context: bool) -> String {
    // A correlated scalar subquery, not `EXISTS`: it stays a lookup by primary key per row
    // read (a semi-join could be planned as a hash join over every conversation of the
    // context, and then read the user's rows through any index that has `user_id`).
    let context = if in_context {
        "AND (SELECT f.context FROM conversations f WHERE f.id = a.conversation_id) = $6"
    } else {
        "AND $6::text IS NULL"
    };
    let filter = format!("a.user_id = $1 AND a.archived = $5 {} {context}", keyset(after));
    activity_page(&filter, "a.user_id, a.conversation_id, a.at, a.archived")
}

/// A page of `page.user`'s list, newest activity first.
pub(crate) async fn conversations(
    pool: &PgPool,
    page: ConversationPage,
) -> Result<Vec<ConversationSummary>> {
    // A context is never empty (`''` is how "none" is stored): no conversation has `''`.
    if page.context.as_deref() == Some("") {
        return Ok(Vec::new());
    }
    let sql = summaries_sql(&page_sql(page.before.is_some(), page.context.is_some()));
    let rows = sqlx::query(trusted(sql))
        .bind(page.user.as_uuid())
        .bind(int(page.limit as u64))
        .bind(page.before.map(|k| k.at.as_millis()))
        .bind(page.before.map(|k| *k.id.as_uuid()))
        .bind(page.archived)
        .bind(page.context)
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().map(summary).collect::<Result<Vec<_>, _>>()?)
}

/// The statement of one summary: `$1` the viewer, `$2` the conversation; the viewer's
/// activity row by primary key (none when they are not a member).
pub(crate) fn summary_sql() -> String {
    summaries_sql(
        "page AS (SELECT a.user_id, a.conversation_id, a.at, a.archived FROM activity a \
         WHERE a.user_id = $1 AND a.conversation_id = $2)",
    )
}

/// Conversation `id` as `user` sees it in their list; `None` when it does not exist or
/// `user` is not a member.
pub(crate) async fn summary_of(
    pool: &PgPool,
    user: UserId,
    id: ConversationId,
) -> Result<Option<ConversationSummary>> {
    let row = sqlx::query(trusted(summary_sql()))
        .bind(user.as_uuid())
        .bind(id.as_uuid())
        .fetch_optional(pool)
        .await?;
    Ok(row.as_ref().map(summary).transpose()?)
}

/// The statement of a context's list: `$1` the context, `$2` the limit, `$3`/`$4` the
/// keyset. A range of `activity_context` (one entry per conversation with a context: its
/// lower member's row), then the page's conversations by primary key.
pub(crate) fn by_context_sql(after: bool) -> String {
    let filter = format!("a.context = $1 {}", keyset(after));
    format!(
        "WITH {ctes} \
         SELECT {CONVERSATION_COLUMNS} FROM page JOIN conversations c ON c.id = page.conversation_id \
         ORDER BY page.at DESC, page.conversation_id DESC",
        ctes = activity_page(&filter, "a.conversation_id, a.at"),
    )
}

/// A page of every conversation of `page.context`, newest activity first.
pub(crate) async fn by_context(pool: &PgPool, page: ContextPage) -> Result<Vec<Conversation>> {
    let rows = sqlx::query(trusted(by_context_sql(page.before.is_some())))
        .bind(&page.context)
        .bind(int(page.limit as u64))
        .bind(page.before.map(|k| k.at.as_millis()))
        .bind(page.before.map(|k| *k.id.as_uuid()))
        .fetch_all(pool)
        .await?;
    Ok(rows.iter().map(|row| codec::conversation(row, 0)).collect::<Result<Vec<_>, _>>()?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::panic, reason = "tests: failing loudly is the point")]

    use sqlx::{Connection, Executor, PgConnection};

    use super::{by_context_sql, page_sql, summaries_sql, summary_sql};
    use crate::test_database::{BUSY, ME, fresh_database, plan_of};

    const LAST: &str = "'ffffffff-ffff-ffff-ffff-ffffffffffff'";

    /// Whether the plan reads `activity` or `conversations` sequentially (the test data has
    /// no messages: reading that empty table is the planner's cheapest choice).
    fn scans_a_table(plan: &str) -> bool {
        plan.contains("Seq Scan on activity") || plan.contains("Seq Scan on conversations")
    }

    /// The index condition of each scan of `index` (plain, index-only or bitmap).
    fn index_conditions<'a>(plan: &'a str, index: &str) -> Vec<&'a str> {
        let mut lines = plan.lines();
        let mut found = Vec::new();
        while let Some(line) = lines.next() {
            let (scan, bitmap) = (format!("using {index} on "), format!("Scan on {index} "));
            if line.contains(&scan) || line.contains(&bitmap) {
                found.extend(lines.clone().find(|l| l.contains("Index Cond:")));
            }
        }
        found
    }

    /// The actual rows of each scan of `activity` in an `EXPLAIN ANALYZE` plan.
    fn activity_rows(plan: &str) -> Vec<u64> {
        plan.lines()
            .filter(|line| line.contains(" on activity "))
            .map(|line| {
                let rows = line.split("rows=").nth(1).expect("actual rows");
                rows.split(' ').next().and_then(|n| n.parse().ok()).expect("a row count")
            })
            .collect()
    }

    /// Every list statement reads `activity` through its index, in the plans made for the
    /// arguments and in the generic plan of the prepared statement: a user's list through
    /// `activity_order` with the archived flag in the index condition (a page never reads
    /// the other kind's rows), a context's through `activity_context`, a summary by the
    /// primary key; never a sequential scan. The pages without a filter read at most twice
    /// their limit of `activity` rows per scan, however many rows precede them (a context's
    /// in every plan; a user's in the generic one).
    #[tokio::test]
    async fn the_lists_read_their_indexes_and_their_page_only() {
        let Some(url) = fresh_database().await else { return };
        let mut conn = PgConnection::connect(&url).await.expect("connect");
        conn.execute(BUSY).await.expect("test data");
        let list = "uuid, bigint, bigint, uuid, boolean, text";
        let context = "text, bigint, bigint, uuid";
        // (statement, parameter types, arguments, index, whether the page bounds the reads)
        let cases = [
            (
                summaries_sql(&page_sql(false, false)),
                list,
                format!("{ME}, 21, NULL, NULL, false, NULL"),
                "activity_order",
                true,
            ),
            (
                summaries_sql(&page_sql(false, false)),
                list,
                format!("{ME}, 21, NULL, NULL, true, NULL"),
                "activity_order",
                true,
            ),
            (
                summaries_sql(&page_sql(true, false)),
                list,
                format!("{ME}, 21, 18000000, {LAST}, true, NULL"),
                "activity_order",
                true,
            ),
            (
                summaries_sql(&page_sql(false, true)),
                list,
                format!("{ME}, 21, NULL, NULL, false, 'mine'"),
                "activity_order",
                false,
            ),
            (
                summaries_sql(&page_sql(true, true)),
                list,
                format!("{ME}, 21, 18000000, {LAST}, false, 'mine'"),
                "activity_order",
                false,
            ),
            (
                by_context_sql(false),
                context,
                "'hot', 21, NULL, NULL".to_owned(),
                "activity_context",
                true,
            ),
            (
                by_context_sql(true),
                context,
                format!("'hot', 21, 90000000, {LAST}"),
                "activity_context",
                true,
            ),
            (
                by_context_sql(false),
                context,
                "'c7', 21, NULL, NULL".to_owned(),
                "activity_context",
                true,
            ),
        ];
        for (i, (sql, types, args, index, bounded)) in cases.iter().enumerate() {
            for mode in ["auto", "force_generic_plan"] {
                let name = format!("list_{i}_{mode}");
                conn.execute(sqlx::AssertSqlSafe(format!(
                    "SET plan_cache_mode = {mode}; PREPARE {name}({types}) AS {sql}"
                )))
                .await
                .expect("prepare");
                let plan = plan_of(&mut conn, "(ANALYZE, COSTS OFF)", &name, args).await;
                assert!(!scans_a_table(&plan), "no sequential scan ({name}):\n{plan}");
                assert!(!index_conditions(&plan, index).is_empty(), "{index} ({name}):\n{plan}");
                if *index == "activity_order" {
                    let ranges = index_conditions(&plan, "activity_order");
                    assert!(
                        !ranges.is_empty() && ranges.iter().all(|l| l.contains("archived = ")),
                        "the kind is in the index range ({name}):\n{plan}"
                    );
                }
                let rows = activity_rows(&plan);
                assert!(!rows.is_empty(), "activity is read ({name}):\n{plan}");
                // A plan made for the arguments may read the user's whole range of one kind
                // when that is cheaper by the estimates (a bitmap scan of 400 rows here); the
                // generic plan, which every statement settles on, reads the page.
                if *bounded && (*index == "activity_context" || mode == "force_generic_plan") {
                    assert!(
                        rows.iter().all(|n| *n <= 42),
                        "at most twice the page ({name}):\n{plan}"
                    );
                }
            }
        }
    }

    /// One summary is read by the primary keys of the viewer's rows.
    #[tokio::test]
    async fn a_summary_reads_one_row_of_activity() {
        let Some(url) = fresh_database().await else { return };
        let mut conn = PgConnection::connect(&url).await.expect("connect");
        conn.execute(BUSY).await.expect("test data");
        let sql = summary_sql();
        let one: uuid::Uuid = sqlx::query_scalar(
            "SELECT conversation_id FROM messaging.activity \
             WHERE user_id = '00000000-0000-0000-0000-0000000000aa' LIMIT 1",
        )
        .fetch_one(&mut conn)
        .await
        .expect("a conversation");
        for mode in ["auto", "force_generic_plan"] {
            let name = format!("summary_{mode}");
            conn.execute(sqlx::AssertSqlSafe(format!(
                "SET plan_cache_mode = {mode}; PREPARE {name}(uuid, uuid) AS {sql}"
            )))
            .await
            .expect("prepare");
            let plan =
                plan_of(&mut conn, "(ANALYZE, COSTS OFF)", &name, &format!("{ME}, '{one}'")).await;
            assert!(!scans_a_table(&plan), "no sequential scan ({name}):\n{plan}");
            assert!(
                plan.contains("using activity_pkey on activity"),
                "by primary key ({name}):\n{plan}"
            );
            assert_eq!(activity_rows(&plan), [1], "one row ({name}):\n{plan}");
        }
    }
}
