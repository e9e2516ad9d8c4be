//! The durable consumers' rows (migration 0007): a claim, a commit, a release, each one
//! statement on the pool.
//!
//! Not through the writer: a lease's renewal must not wait behind a backlog of writes (a
//! holder whose renewal queued past its lease would lose it while healthy), and these
//! statements log nothing, so they need no place in the log's order.
//!
//! Lease times are the database server's clock (`clock_timestamp()`), never an instance's:
//! an instance whose clock runs ahead cannot see another's live lease as expired. A claim
//! is one `INSERT … ON CONFLICT DO UPDATE … WHERE` on the name's primary key: two claims
//! racing for a free consumer serialize on its row, and the second, seeing the first's
//! live lease, changes nothing.

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use crate::codec::{int, uint};
use crate::error::Result;

/// A lease as seconds for `make_interval` (at most a century: no timestamp overflow).
fn seconds(lease: Duration) -> f64 {
    lease.as_secs_f64().min(3_153_600_000.0)
}

/// Creates the row at `start`, renews it for its holder, or takes it over when nobody
/// holds it or the lease has passed; the stored position, or `None` (nothing written)
/// while another holder's lease is live.
pub(crate) async fn claim(
    pool: &PgPool,
    name: &str,
    holder: Uuid,
    lease: Duration,
    start: u64,
) -> Result<Option<u64>> {
    let position: Option<i64> = sqlx::query_scalar(
        "INSERT INTO consumers (name, position, holder, lease_until) \
         VALUES ($1, $2, $3, clock_timestamp() + make_interval(secs => $4)) \
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             lease_until = excluded.lease_until \
         WHERE consumers.holder IS NULL OR consumers.holder = excluded.holder \
             OR consumers.lease_until <= clock_timestamp() \
         RETURNING position",
    )
    .bind(name)
    .bind(int(start))
    .bind(holder)
    .bind(seconds(lease))
    .fetch_optional(pool)
    .await?;
    Ok(position.map(uint))
}

/// Moves the position forward (never back) and renews the lease, if `holder` holds the
/// consumer; whether it did.
pub(crate) async fn commit(
    pool: &PgPool,
    name: &str,
    holder: Uuid,
    position: u64,
    lease: Duration,
) -> Result<bool> {
    let changed = sqlx::query(
        "UPDATE consumers SET position = GREATEST(position, $3), \
             lease_until = clock_timestamp() + make_interval(secs => $4) \
         WHERE name = $1 AND holder = $2",
    )
    .bind(name)
    .bind(holder)
    .bind(int(position))
    .bind(seconds(lease))
    .execute(pool)
    .await?
    .rows_affected();
    Ok(changed == 1)
}

/// Lets the lease go, if `holder` holds it (the position stays).
pub(crate) async fn release(pool: &PgPool, name: &str, holder: Uuid) -> Result<()> {
    sqlx::query(
        "UPDATE consumers SET holder = NULL, lease_until = NULL WHERE name = $1 AND holder = $2",
    )
    .bind(name)
    .bind(holder)
    .execute(pool)
    .await?;
    Ok(())
}
