//! Reading the store out, section by section, for a move (`messaging_core::transfer`).
//!
//! Each page is one statement over a range of a primary key, in that key's order, so a
//! page costs the same at the end of a table as at its start (no OFFSET, no sort of the
//! whole table). The orders are the core's, which the other store of a move pages in too:
//! ids and pairs of ids as `Uuid` orders them (PostgreSQL compares `uuid` byte by byte, as
//! `Uuid`'s `Ord` does), consumer names by their UTF-8 bytes (`COLLATE "C"` whatever the
//! database's collation: the order of `String`, and of SQLite's `BINARY`).
//!
//! Each section's first page is its own statement (`$1 IS NULL` in place of the key), as
//! the keyset variants of `read.rs` are, so that each keeps its own plan.

use messaging_core::id::{ConversationId, UserId};
use messaging_core::time::Timestamp;
use messaging_core::transfer::{
    After, BlockRecord, ConsumerRecord, MemberRecord, Records, Section, UserTime,
};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::codec::{self, CONVERSATION_COLUMNS, MESSAGE_COLUMNS, int, trusted, uint};
use crate::error::{PgError, Result};
use crate::event_rows::kind;
use crate::read;

/// The records of `section` strictly after `after`, at most `limit`. A key of another
/// section's shape is `Invalid`.
pub(crate) async fn export(
    pool: &PgPool,
    section: Section,
    after: &After,
    limit: usize,
) -> Result<Records> {
    let limit_sql = int(limit as u64);
    Ok(match section {
        Section::Conversations => {
            let after = after.id(section)?;
            let sql = format!(
                "SELECT {CONVERSATION_COLUMNS} FROM conversations c WHERE {} \
                 ORDER BY c.id LIMIT $2",
                after_id("c.id", after)
            );
            let rows =
                sqlx::query(trusted(sql)).bind(after).bind(limit_sql).fetch_all(pool).await?;
            Records::Conversations(decode(&rows, |row| codec::conversation(row, 0))?)
        }
        Section::Members => {
            let after = after.pair(section)?;
            // By user, then conversation: the order `Records::last_key` keys a members page
            // by, and the members' primary key. A member's `archived` is on their
            // `activity` row (migration 0005).
            let sql = format!(
                "SELECT mb.user_id, mb.conversation_id, mb.read_seq, mb.read_at, \
                   mb.delivered_seq, mb.delivered_at, mb.muted_until, a.archived \
                 FROM members mb \
                 JOIN activity a ON a.user_id = mb.user_id \
                   AND a.conversation_id = mb.conversation_id \
                 WHERE {} ORDER BY mb.user_id, mb.conversation_id LIMIT $3",
                after_pair("mb.user_id", "mb.conversation_id", after)
            );
            let (user, conversation) = after.unzip();
            let rows = sqlx::query(trusted(sql))
                .bind(user)
                .bind(conversation)
                .bind(limit_sql)
                .fetch_all(pool)
                .await?;
            Records::Members(decode(&rows, member)?)
        }
        Section::Messages => {
            let after = after.id(section)?;
            let sql = format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE {} ORDER BY m.id LIMIT $2",
                after_id("m.id", after)
            );
            let rows =
                sqlx::query(trusted(sql)).bind(after).bind(limit_sql).fetch_all(pool).await?;
            Records::Messages(decode(&rows, |row| codec::message(row, 0))?)
        }
        Section::Log => {
            let after = after.position(section)?;
            let head = read::head(pool).await?;
            Records::Log(read::read_log(pool, after, head, limit).await?)
        }
        Section::Blocks => {
            let after = after.pair(section)?;
            let sql = format!(
                "SELECT blocker, blocked FROM blocks WHERE {} ORDER BY blocker, blocked LIMIT $3",
                after_pair("blocker", "blocked", after)
            );
            let (blocker, blocked) = after.unzip();
            let rows = sqlx::query(trusted(sql))
                .bind(blocker)
                .bind(blocked)
                .bind(limit_sql)
                .fetch_all(pool)
                .await?;
            Records::Blocks(decode(&rows, |row| {
                Ok(BlockRecord {
                    blocker: UserId::from_uuid(row.try_get(0)?),
                    blocked: UserId::from_uuid(row.try_get(1)?),
                })
            })?)
        }
        Section::LastSeen => {
            Records::LastSeen(user_times(pool, "last_seen", after.id(section)?, limit).await?)
        }
        Section::Revocations => {
            Records::Revocations(user_times(pool, "revocations", after.id(section)?, limit).await?)
        }
        Section::Consumers => {
            let after = after.name(section)?;
            let keyset =
                if after.is_some() { "name COLLATE \"C\" > $1" } else { "$1::text IS NULL" };
            let sql = format!(
                "SELECT name, position FROM consumers WHERE {keyset} \
                 ORDER BY name COLLATE \"C\" LIMIT $2"
            );
            let rows =
                sqlx::query(trusted(sql)).bind(after).bind(limit_sql).fetch_all(pool).await?;
            Records::Consumers(decode(&rows, |row| {
                Ok(ConsumerRecord { name: row.try_get(0)?, position: uint(row.try_get(1)?) })
            })?)
        }
    })
}

/// How many records `section` holds: the rows [`export`] pages through. The log counts
/// the events of the kinds this version knows, the ones `read_log` serves (a newer
/// version's would leave a gap that stops the move).
pub(crate) async fn count(pool: &PgPool, section: Section) -> Result<u64> {
    let sql = match section {
        Section::Conversations => "SELECT count(*) FROM conversations",
        Section::Members => "SELECT count(*) FROM members",
        Section::Messages => "SELECT count(*) FROM messages",
        Section::Log => {
            return count_of(
                pool,
                &format!(
                    "SELECT count(*) FROM events WHERE kind BETWEEN {} AND {}",
                    kind::CONVERSATION_CREATED,
                    kind::CONVERSATION_UPDATED
                ),
            )
            .await;
        }
        Section::Blocks => "SELECT count(*) FROM blocks",
        Section::LastSeen => "SELECT count(*) FROM last_seen",
        Section::Revocations => "SELECT count(*) FROM revocations",
        Section::Consumers => "SELECT count(*) FROM consumers",
    };
    count_of(pool, sql).await
}

async fn count_of(pool: &PgPool, sql: &str) -> Result<u64> {
    let count: i64 = sqlx::query_scalar(trusted(sql.to_owned())).fetch_one(pool).await?;
    Ok(uint(count))
}

/// A page of a table of per-user times (`last_seen`, `revocations`), by user.
async fn user_times(
    pool: &PgPool,
    table: &'static str,
    after: Option<Uuid>,
    limit: usize,
) -> Result<Vec<UserTime>> {
    let sql = format!(
        "SELECT user_id, at FROM {table} WHERE {} ORDER BY user_id LIMIT $2",
        after_id("user_id", after)
    );
    let rows =
        sqlx::query(trusted(sql)).bind(after).bind(int(limit as u64)).fetch_all(pool).await?;
    decode(&rows, |row| {
        Ok(UserTime {
            user_id: UserId::from_uuid(row.try_get(0)?),
            at: Timestamp::from_millis(row.try_get(1)?),
        })
    })
}

/// Decodes a member's state as the members page selects it.
fn member(row: &PgRow) -> Result<MemberRecord, sqlx::Error> {
    Ok(MemberRecord::new(
        ConversationId::from_uuid(row.try_get(1)?),
        UserId::from_uuid(row.try_get(0)?),
        uint(row.try_get(2)?),
        codec::optional_time(row, 3)?,
        uint(row.try_get(4)?),
        codec::optional_time(row, 5)?,
        codec::optional_time(row, 6)?,
        row.try_get(7)?,
    ))
}

fn decode<T>(
    rows: &[PgRow],
    one: impl Fn(&PgRow) -> Result<T, sqlx::Error>,
) -> Result<Vec<T>, PgError> {
    Ok(rows.iter().map(one).collect::<Result<Vec<T>, sqlx::Error>>()?)
}

/// The condition on `column` of a page that starts after the id bound to `$1`, or at the
/// start (`$1` bound to NULL).
fn after_id(column: &str, after: Option<Uuid>) -> String {
    match after {
        Some(_) => format!("{column} > $1"),
        None => "$1::uuid IS NULL".to_owned(),
    }
}

/// The condition on `(first, second)` of a page that starts after the pair bound to `$1`
/// and `$2` (a range of the primary key), or at the start.
fn after_pair(first: &str, second: &str, after: Option<(Uuid, Uuid)>) -> String {
    match after {
        Some(_) => format!("({first}, {second}) > ($1, $2)"),
        None => "$1::uuid IS NULL AND $2::uuid IS NULL".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_page_binds_its_key_to_null() {
        assert_eq!(after_id("c.id", None), "$1::uuid IS NULL");
        assert_eq!(after_id("c.id", Some(Uuid::nil())), "c.id > $1");
        assert_eq!(after_pair("a", "b", Some((Uuid::nil(), Uuid::nil()))), "(a, b) > ($1, $2)");
    }
}
