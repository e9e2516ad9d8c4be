//! The durable consumers' rows (migration 7): a claim, a commit, a release, each one
//! statement run by the writer like every write.
//!
//! Lease times are milliseconds of this process's clock, read when the job runs (not when
//! it was queued): one process writes a SQLite file, so every holder reads the same clock.

use std::time::Duration;

use messaging_core::time::Timestamp;
use rusqlite::{OptionalExtension, params};
use uuid::Uuid;

use super::WriteCtx;
use crate::codec::{int, uint};
use crate::error::StoreResult;

/// The end of a lease of `lease` from now, in ms (saturating: a lease past the clock's
/// range never ends).
fn lease_end(lease: Duration) -> (i64, i64) {
    let now = Timestamp::now().as_millis();
    let lease = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    (now, now.saturating_add(lease))
}

/// Creates the row at `start`, renews it for its holder, or takes it over when nobody
/// holds it or the lease has passed; the stored position, or `None` (nothing written)
/// while another holder's lease is live.
pub(crate) fn claim_consumer(
    ctx: &WriteCtx<'_>,
    name: &str,
    holder: Uuid,
    lease: Duration,
    start: u64,
) -> StoreResult<Option<u64>> {
    let (now, until) = lease_end(lease);
    let position: Option<i64> = ctx
        .conn
        .prepare_cached(
            "INSERT INTO consumers (name, position, holder, lease_until) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
                 lease_until = excluded.lease_until \
             WHERE consumers.holder IS NULL OR consumers.holder = excluded.holder \
                 OR consumers.lease_until <= ?5 \
             RETURNING position",
        )?
        .query_row(params![name, int(start), holder.as_bytes(), until, now], |row| row.get(0))
        .optional()?;
    Ok(position.map(uint))
}

/// Moves the position forward (never back) and renews the lease, if `holder` holds the
/// consumer; whether it did.
pub(crate) fn commit_consumer(
    ctx: &WriteCtx<'_>,
    name: &str,
    holder: Uuid,
    position: u64,
    lease: Duration,
) -> StoreResult<bool> {
    let (_, until) = lease_end(lease);
    let changed = ctx
        .conn
        .prepare_cached(
            "UPDATE consumers SET position = max(position, ?3), lease_until = ?4 \
             WHERE name = ?1 AND holder = ?2",
        )?
        .execute(params![name, holder.as_bytes(), int(position), until])?;
    Ok(changed == 1)
}

/// Lets the lease go, if `holder` holds it (the position stays).
pub(crate) fn release_consumer(ctx: &WriteCtx<'_>, name: &str, holder: Uuid) -> StoreResult<()> {
    ctx.conn
        .prepare_cached(
            "UPDATE consumers SET holder = NULL, lease_until = NULL \
             WHERE name = ?1 AND holder = ?2",
        )?
        .execute(params![name, holder.as_bytes()])?;
    Ok(())
}
