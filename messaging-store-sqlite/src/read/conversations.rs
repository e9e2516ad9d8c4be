//! Conversation reads: by id, by pair, a member's list and one summary of it, every
//! conversation of one context, a user's peers.
//!
//! Both lists are keyset pages over an index of `members` keyed by the activity's second
//! (`activity_bucket`, which the append keeps, see migration 3): a page reads the index at
//! and below the keyset's second and sorts each second by the exact activity of the
//! conversation row. The SQL is built by functions of its own so the query plans can be
//! checked in this module's tests against the very text the store runs.

use messaging_core::id::{ConversationId, UserId};
use messaging_core::model::{Conversation, ConversationSummary};
use messaging_core::store::{ContextPage, ConversationPage};
use rusqlite::{Connection, OptionalExtension, params};

use crate::codec::{
    self, CONVERSATION_COLUMNS, CONVERSATION_METADATA_JOIN, SUMMARY_JOINS, int, summary_select,
};
use crate::error::StoreResult;
use crate::vocab::activity_bucket;

pub(crate) fn conversation(
    conn: &Connection,
    id: ConversationId,
) -> StoreResult<Option<Conversation>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations c {CONVERSATION_METADATA_JOIN} \
         WHERE c.id = ?1"
    ))?;
    Ok(stmt.query_row(params![id.as_bytes()], |row| codec::conversation(row, 0)).optional()?)
}

pub(crate) fn find_direct(
    conn: &Connection,
    a: UserId,
    b: UserId,
    context: &str,
) -> StoreResult<Option<Conversation>> {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations c {CONVERSATION_METADATA_JOIN} \
         WHERE c.user_lo = ?1 AND c.user_hi = ?2 AND c.context = ?3"
    ))?;
    Ok(stmt
        .query_row(params![lo.as_bytes(), hi.as_bytes(), context], |row| {
            codec::conversation(row, 0)
        })
        .optional()?)
}

/// The keyset condition of a page over an index of `members` aliased `alias`, with the
/// keyset's time at `?3`, id at `?4` and second at `?5` (all NULL for the first page).
fn keyset(alias: &str, paged: bool) -> String {
    if paged {
        format!(
            "AND {alias}.activity_bucket <= ?5 AND ({alias}.activity_bucket < ?5 \
               OR COALESCE(c.last_message_at, c.created_at) < ?3 \
               OR (COALESCE(c.last_message_at, c.created_at) = ?3 \
                   AND {alias}.conversation_id < ?4))"
        )
    } else {
        "AND ?3 IS NULL AND ?4 IS NULL AND ?5 IS NULL".to_owned()
    }
}

/// The SQL of a page of a member's list: `?1` the user, `?2` the limit, `?3`–`?5` the
/// keyset, `?6` archived or not, `?7` the context when `by_context`.
///
/// One statement per page: the page's conversations are chosen first from
/// `members_activity`, whose prefix (`user_id`, `archived`) is exactly the list asked for,
/// so a page never reads the other kind's rows; a context filter is checked on those rows
/// (a user has few conversations per second of activity). Then each gets both members'
/// markers and settings, the unread count and the last message from correlated lookups
/// on indexes, not from a query per row.
pub(crate) fn conversations_sql(paged: bool, by_context: bool) -> String {
    let keyset = keyset("me", paged);
    let context = if by_context { "AND c.context = ?7" } else { "AND ?7 IS NULL" };
    format!(
        "WITH page AS ( \
           SELECT me.conversation_id AS id, COALESCE(c.last_message_at, c.created_at) AS at \
           FROM members me JOIN conversations c ON c.id = me.conversation_id \
           WHERE me.user_id = ?1 AND me.archived = ?6 {keyset} {context} \
           ORDER BY me.activity_bucket DESC, at DESC, me.conversation_id DESC LIMIT ?2) \
         SELECT {columns} \
         FROM page \
         JOIN members me ON me.user_id = ?1 AND me.conversation_id = page.id \
         {SUMMARY_JOINS} \
         ORDER BY page.at DESC, page.id DESC",
        columns = summary_select(),
    )
}

pub(crate) fn conversations(
    conn: &Connection,
    page: &ConversationPage,
) -> StoreResult<Vec<ConversationSummary>> {
    let sql = conversations_sql(page.before.is_some(), page.context.is_some());
    let before_at = page.before.map(|k| k.at.as_millis());
    let before_id = page.before.map(|k| *k.id.as_bytes());
    let before_bucket = before_at.map(activity_bucket);
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        params![
            page.user.as_bytes(),
            int(page.limit as u64),
            before_at,
            before_id,
            before_bucket,
            page.archived,
            page.context.as_deref(),
        ],
        codec::summary,
    )?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// One row of [`conversations`], whatever the list it is in: two primary-key lookups and
/// the same correlated ones.
pub(crate) fn summary(
    conn: &Connection,
    user: UserId,
    id: ConversationId,
) -> StoreResult<Option<ConversationSummary>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {columns} FROM members me {SUMMARY_JOINS} \
         WHERE me.user_id = ?1 AND me.conversation_id = ?2",
        columns = summary_select(),
    ))?;
    Ok(stmt.query_row(params![user.as_bytes(), id.as_bytes()], codec::summary).optional()?)
}

/// The SQL of a page of one context's conversations: `?1` the context, `?2` the limit,
/// `?3`–`?5` the keyset.
///
/// `members_context` holds one entry per conversation with a context (on its lower
/// member's row), keyed by (context, activity second, id): a page is one range of it, at
/// and below the keyset's second, each second sorted by the exact activity. `CROSS JOIN`
/// keeps the index as the outer loop.
pub(crate) fn conversations_by_context_sql(paged: bool) -> String {
    let keyset = keyset("mc", paged);
    format!(
        "SELECT {CONVERSATION_COLUMNS} FROM members mc \
         CROSS JOIN conversations c ON c.id = mc.conversation_id \
         {CONVERSATION_METADATA_JOIN} \
         WHERE mc.context = ?1 {keyset} \
         ORDER BY mc.activity_bucket DESC, COALESCE(c.last_message_at, c.created_at) DESC, \
           mc.conversation_id DESC \
         LIMIT ?2"
    )
}

pub(crate) fn conversations_by_context(
    conn: &Connection,
    page: &ContextPage,
) -> StoreResult<Vec<Conversation>> {
    let sql = conversations_by_context_sql(page.before.is_some());
    let before_at = page.before.map(|k| k.at.as_millis());
    let before_id = page.before.map(|k| *k.id.as_bytes());
    let before_bucket = before_at.map(activity_bucket);
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        params![page.context, int(page.limit as u64), before_at, before_id, before_bucket],
        |row| codec::conversation(row, 0),
    )?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(crate) fn peers(conn: &Connection, user: UserId) -> StoreResult<Vec<UserId>> {
    let mut stmt =
        conn.prepare_cached("SELECT DISTINCT peer_id FROM members WHERE user_id = ?1")?;
    let rows = stmt.query_map(params![user.as_bytes()], |row| codec::user(row, 0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

#[cfg(test)]
mod tests {
    //! The plans of both lists, on the schema the migrations build: each page is a range
    //! of its index, never a scan of the table or of the other list.

    use super::{conversations_by_context_sql, conversations_sql};
    use crate::schema::query_plan;

    #[test]
    fn a_members_list_page_is_a_range_of_its_archived_or_unarchived_rows() {
        for paged in [false, true] {
            for by_context in [false, true] {
                let plan = query_plan(&conversations_sql(paged, by_context));
                let page = plan.iter().find(|line| line.contains(" me ")).map(String::as_str);
                assert!(
                    page.is_some_and(|line| line.starts_with("SEARCH me USING ")
                        && line.contains("INDEX members_activity (user_id=? AND archived=?")),
                    "paged {paged}, by context {by_context}: {plan:#?}"
                );
                // The page's rows are read in the index's order of seconds, so LIMIT stops
                // the range: only the exact order within a second is sorted.
                assert!(plan.contains(&"USE TEMP B-TREE FOR LAST 2 TERMS OF ORDER BY".to_owned()));
                // Only the page itself (its few rows) is scanned, never a table.
                let scans: Vec<&String> = plan.iter().filter(|l| l.starts_with("SCAN")).collect();
                assert_eq!(scans, ["SCAN page"], "{plan:#?}");
            }
        }
    }

    #[test]
    fn a_context_page_is_a_range_of_the_context_index() {
        for paged in [false, true] {
            let plan = query_plan(&conversations_by_context_sql(paged));
            assert!(
                plan[0].starts_with("SEARCH mc USING ")
                    && plan[0].contains("INDEX members_context (context=?"),
                "paged {paged}: {plan:#?}"
            );
            assert!(!plan.iter().any(|l| l.starts_with("SCAN")), "{plan:#?}");
            // Read in the index's order of seconds, so LIMIT stops the range: only the
            // exact order within a second is sorted.
            assert!(
                plan.contains(&"USE TEMP B-TREE FOR LAST 2 TERMS OF ORDER BY".to_owned()),
                "paged {paged}: {plan:#?}"
            );
        }
    }
}
