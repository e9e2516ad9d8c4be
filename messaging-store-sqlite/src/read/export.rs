//! Reading the whole store out, section by section, for a move to another store (see
//! `messaging_core::transfer`): each page a range of a primary key or unique index, in
//! that key's order, so a page costs the same at the start and at the end of a table.
//!
//! Ids are compared as blobs, which is `Uuid`'s order; consumer names as text in
//! SQLite's `BINARY` collation, which is the order of their UTF-8 bytes.

use messaging_core::model::Message;
use messaging_core::time::Timestamp;
use messaging_core::transfer::{
    After, BlockRecord, ConsumerRecord, MemberRecord, Records, Section, UserTime,
};
use rusqlite::{Connection, params};

use crate::codec::{self, CONVERSATION_COLUMNS, CONVERSATION_METADATA_JOIN, MESSAGE_COLUMNS, int};
use crate::error::StoreResult;
use crate::read::events;

/// The records of `section` after `after`, at most `limit`.
pub(crate) fn export(
    conn: &Connection,
    section: Section,
    after: &After,
    limit: usize,
) -> StoreResult<Records> {
    let limit_sql = int(limit as u64);
    Ok(match section {
        Section::Conversations => {
            let after = id_after(section, after)?;
            let mut stmt = conn.prepare_cached(&conversations_sql())?;
            let rows =
                stmt.query_map(params![after, limit_sql], |row| codec::conversation(row, 0))?;
            Records::Conversations(rows.collect::<rusqlite::Result<_>>()?)
        }
        Section::Members => {
            let (user, conversation) = pair_after(section, after)?;
            let mut stmt = conn.prepare_cached(MEMBERS_SQL)?;
            let rows = stmt.query_map(params![user, conversation, limit_sql], |row| {
                Ok(MemberRecord::new(
                    codec::conversation_id(row, 1)?,
                    codec::user(row, 0)?,
                    codec::uint(row.get(2)?),
                    codec::optional_timestamp(row, 3)?,
                    codec::uint(row.get(4)?),
                    codec::optional_timestamp(row, 5)?,
                    codec::optional_timestamp(row, 6)?,
                    row.get(7)?,
                ))
            })?;
            Records::Members(rows.collect::<rusqlite::Result<_>>()?)
        }
        Section::Messages => {
            let after = id_after(section, after)?;
            let mut stmt = conn.prepare_cached(&messages_sql())?;
            let rows = stmt.query_map(params![after, limit_sql], |row| codec::message(row, 0))?;
            Records::Messages(rows.collect::<rusqlite::Result<Vec<Message>>>()?)
        }
        Section::Log => {
            let after = after.position(section)?;
            let head = events::head(conn)?;
            Records::Log(events::read_log(conn, after, head, limit)?)
        }
        Section::Blocks => {
            let (blocker, blocked) = pair_after(section, after)?;
            let mut stmt = conn.prepare_cached(BLOCKS_SQL)?;
            let rows = stmt.query_map(params![blocker, blocked, limit_sql], |row| {
                Ok(BlockRecord { blocker: codec::user(row, 0)?, blocked: codec::user(row, 1)? })
            })?;
            Records::Blocks(rows.collect::<rusqlite::Result<_>>()?)
        }
        Section::LastSeen => {
            Records::LastSeen(user_times(conn, "last_seen", section, after, limit)?)
        }
        Section::Revocations => {
            Records::Revocations(user_times(conn, "revocations", section, after, limit)?)
        }
        Section::Consumers => {
            let after = after.name(section)?;
            let mut stmt = conn.prepare_cached(CONSUMERS_SQL)?;
            let rows = stmt.query_map(params![after, limit_sql], |row| {
                Ok(ConsumerRecord { name: row.get(0)?, position: codec::uint(row.get(1)?) })
            })?;
            Records::Consumers(rows.collect::<rusqlite::Result<_>>()?)
        }
    })
}

fn conversations_sql() -> String {
    format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations c {CONVERSATION_METADATA_JOIN} \
         WHERE c.id > ?1 ORDER BY c.id LIMIT ?2"
    )
}

/// Members by their primary key, `(user_id, conversation_id)`.
const MEMBERS_SQL: &str = "SELECT user_id, conversation_id, read_seq, read_at, delivered_seq, \
     delivered_at, muted_until, archived FROM members \
     WHERE (user_id, conversation_id) > (?1, ?2) ORDER BY user_id, conversation_id LIMIT ?3";

/// Messages by id, through the unique index `messages_id`.
fn messages_sql() -> String {
    format!("SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.id > ?1 ORDER BY m.id LIMIT ?2")
}

const BLOCKS_SQL: &str = "SELECT blocker, blocked FROM blocks \
     WHERE (blocker, blocked) > (?1, ?2) ORDER BY blocker, blocked LIMIT ?3";

const CONSUMERS_SQL: &str = "SELECT name, position FROM consumers \
     WHERE name > coalesce(?1, '') ORDER BY name LIMIT ?2";

fn user_times_sql(table: &str) -> String {
    format!("SELECT user_id, at FROM {table} WHERE user_id > ?1 ORDER BY user_id LIMIT ?2")
}

/// How many records `section` holds.
pub(crate) fn count(conn: &Connection, section: Section) -> StoreResult<u64> {
    let table = match section {
        Section::Conversations => "conversations",
        Section::Members => "members",
        Section::Messages => "messages",
        Section::Log => "events",
        Section::Blocks => "blocks",
        Section::LastSeen => "last_seen",
        Section::Revocations => "revocations",
        Section::Consumers => "consumers",
    };
    let count: i64 =
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| row.get(0))?;
    Ok(codec::uint(count))
}

/// A page of a table of per-user times (`last_seen`, `revocations`), by user.
fn user_times(
    conn: &Connection,
    table: &str,
    section: Section,
    after: &After,
    limit: usize,
) -> StoreResult<Vec<UserTime>> {
    let after = id_after(section, after)?;
    let mut stmt = conn.prepare_cached(&user_times_sql(table))?;
    let rows = stmt.query_map(params![after, int(limit as u64)], |row| {
        Ok(UserTime { user_id: codec::user(row, 0)?, at: Timestamp::from_millis(row.get(1)?) })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The id a page starts after, as a blob (the empty blob sorts before every id).
fn id_after(section: Section, after: &After) -> StoreResult<Vec<u8>> {
    Ok(after.id(section)?.map_or_else(Vec::new, |id| id.as_bytes().to_vec()))
}

/// The pair a page starts after, as blobs (the empty blob sorts before every id).
fn pair_after(section: Section, after: &After) -> StoreResult<(Vec<u8>, Vec<u8>)> {
    Ok(after
        .pair(section)?
        .map_or_else(Default::default, |(a, b)| (a.as_bytes().to_vec(), b.as_bytes().to_vec())))
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    #[test]
    fn a_key_of_another_section_is_refused() {
        let error = id_after(Section::Messages, &After::Position(3)).unwrap_err();
        assert!(error.to_string().contains("messages"), "{error}");
        assert!(pair_after(Section::Blocks, &After::Id(Uuid::nil())).is_err());
        assert_eq!(pair_after(Section::Blocks, &After::Start).ok(), Some((vec![], vec![])));
    }

    #[test]
    fn every_page_is_a_range_of_its_key_never_a_scan_or_a_sort() {
        let statements = [
            conversations_sql(),
            MEMBERS_SQL.to_owned(),
            messages_sql(),
            BLOCKS_SQL.to_owned(),
            CONSUMERS_SQL.to_owned(),
            user_times_sql("last_seen"),
            user_times_sql("revocations"),
        ];
        for sql in statements {
            let plan = crate::schema::query_plan(&sql);
            assert!(plan[0].starts_with("SEARCH "), "{sql}: {plan:#?}");
            assert!(
                !plan.iter().any(|line| line.starts_with("SCAN") || line.contains("TEMP B-TREE")),
                "{sql}: {plan:#?}"
            );
        }
    }
}
