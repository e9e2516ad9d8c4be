//! Reads of the social data: whom a user blocks, when users were last seen, when a user's
//! tokens were revoked.

use messaging_core::id::UserId;
use messaging_core::time::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

use crate::codec::{self, int};
use crate::error::StoreResult;

/// The users `blocker` blocks, ascending, after `after`, at most `limit`: one range of the
/// primary key (ids are compared as bytes, which is `UserId`'s order).
pub(crate) fn blocks(
    conn: &Connection,
    blocker: UserId,
    after: Option<UserId>,
    limit: usize,
) -> StoreResult<Vec<UserId>> {
    let after_clause = if after.is_some() { "AND blocked > ?2" } else { "AND ?2 IS NULL" };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT blocked FROM blocks WHERE blocker = ?1 {after_clause} ORDER BY blocked LIMIT ?3"
    ))?;
    let rows = stmt.query_map(
        params![blocker.as_bytes(), after.map(|u| *u.as_bytes()), int(limit as u64)],
        |row| codec::user(row, 0),
    )?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(crate) fn last_seen(
    conn: &Connection,
    users: &[UserId],
) -> StoreResult<Vec<(UserId, Timestamp)>> {
    let mut stmt = conn.prepare_cached("SELECT at FROM last_seen WHERE user_id = ?1")?;
    let mut seen = Vec::new();
    for user in users {
        let at: Option<i64> =
            stmt.query_row(params![user.as_bytes()], |row| row.get(0)).optional()?;
        if let Some(at) = at {
            seen.push((*user, Timestamp::from_millis(at)));
        }
    }
    Ok(seen)
}

/// The time of `user`'s latest revocation (one primary-key lookup), `None` when they have
/// none.
/// Every revocation, when there are at most `max` (`None` when there are more).
pub(crate) fn all_revocations(
    conn: &Connection,
    max: usize,
) -> StoreResult<Option<Vec<(UserId, Timestamp)>>> {
    let limit = i64::try_from(max).unwrap_or(i64::MAX).saturating_add(1);
    let rows = conn
        .prepare("SELECT user_id, at FROM revocations LIMIT ?1")?
        .query_map(params![limit], |row| {
            Ok((codec::user(row, 0)?, Timestamp::from_millis(row.get(1)?)))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((rows.len() <= max).then_some(rows))
}

pub(crate) fn revoked_at(conn: &Connection, user: UserId) -> StoreResult<Option<Timestamp>> {
    let at: Option<i64> = conn
        .prepare_cached("SELECT at FROM revocations WHERE user_id = ?1")?
        .query_row(params![user.as_bytes()], |row| row.get(0))
        .optional()?;
    Ok(at.map(Timestamp::from_millis))
}
