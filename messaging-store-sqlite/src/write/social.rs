//! Social writes: blocks (bounded per blocker), last-seen times, revocations; and the
//! health probe, a write of nothing anyone sees.

use messaging_core::Error;
use messaging_core::id::UserId;
use messaging_core::time::Timestamp;
use rusqlite::{OptionalExtension, params};

use super::WriteCtx;
use crate::codec::uint;
use crate::error::StoreResult;

/// Records that `blocker` blocks `blocked`, unless that would make more than `max_blocks`
/// blocks of `blocker`'s (`Conflict`, nothing written); an existing block is kept as is.
/// The writer runs one job at a time, so the count and the insert are one atomic step.
pub(crate) fn block(
    ctx: &WriteCtx<'_>,
    blocker: UserId,
    blocked: UserId,
    max_blocks: usize,
) -> StoreResult<()> {
    let exists = ctx
        .conn
        .prepare_cached("SELECT 1 FROM blocks WHERE blocker = ?1 AND blocked = ?2")?
        .query_row(params![blocker.as_bytes(), blocked.as_bytes()], |_| Ok(()))
        .optional()?
        .is_some();
    if exists {
        return Ok(());
    }
    let count: i64 = ctx
        .conn
        .prepare_cached("SELECT count(*) FROM blocks WHERE blocker = ?1")?
        .query_row(params![blocker.as_bytes()], |row| row.get(0))?;
    if uint(count) >= max_blocks as u64 {
        return Err(Error::conflict("too many blocked users").into());
    }
    ctx.conn
        .prepare_cached("INSERT INTO blocks (blocker, blocked) VALUES (?1, ?2)")?
        .execute(params![blocker.as_bytes(), blocked.as_bytes()])?;
    Ok(())
}

pub(crate) fn unblock(ctx: &WriteCtx<'_>, blocker: UserId, blocked: UserId) -> StoreResult<()> {
    ctx.conn
        .prepare_cached("DELETE FROM blocks WHERE blocker = ?1 AND blocked = ?2")?
        .execute(params![blocker.as_bytes(), blocked.as_bytes()])?;
    Ok(())
}

/// A write nobody sees and no event logs: the health probe's commit. It rewrites one
/// `meta` row, so the commit writes and syncs like any other.
pub(crate) fn health_probe(ctx: &WriteCtx<'_>) -> StoreResult<()> {
    ctx.conn
        .prepare_cached(
            "INSERT INTO meta (key, value) VALUES ('health_probe', 1) \
             ON CONFLICT (key) DO UPDATE SET value = value + 1",
        )?
        .execute([])?;
    Ok(())
}

pub(crate) fn set_last_seen(ctx: &WriteCtx<'_>, user: UserId, at: Timestamp) -> StoreResult<()> {
    ctx.conn
        .prepare_cached(
            "INSERT INTO last_seen (user_id, at) VALUES (?1, ?2) \
             ON CONFLICT (user_id) DO UPDATE SET at = excluded.at",
        )?
        .execute(params![user.as_bytes(), at.as_millis()])?;
    Ok(())
}

/// Stores the later of `user`'s stored revocation time and `at` (a revocation never moves
/// backwards); returns the time stored.
pub(crate) fn revoke(ctx: &WriteCtx<'_>, user: UserId, at: Timestamp) -> StoreResult<Timestamp> {
    let stored: i64 = ctx
        .conn
        .prepare_cached(
            "INSERT INTO revocations (user_id, at) VALUES (?1, ?2) \
             ON CONFLICT (user_id) DO UPDATE SET at = max(at, excluded.at) RETURNING at",
        )?
        .query_row(params![user.as_bytes(), at.as_millis()], |row| row.get(0))?;
    Ok(Timestamp::from_millis(stored))
}
