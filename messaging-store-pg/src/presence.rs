//! Presence shared by every instance on one database.
//!
//! Each instance counts its own sessions in memory and keeps one row
//! per user it holds sessions for, plus a heartbeat row of its own. A user is online while
//! some instance with a fresh heartbeat holds a row for them, so the users of an instance
//! that dies without saying goodbye read as offline once its heartbeat is older than
//! [`PresenceOptions::timeout`], whether or not anyone cleans up. Cleaning up is the
//! sweeper's job: every heartbeat, the one instance that wins an advisory lock deletes the
//! dead instances and their rows, records `last_seen` (the dead instance's last heartbeat)
//! for the users who are now offline everywhere, and announces them offline to their
//! peers through the [`PgFanout`].
//!
//! Writes happen only when a user's first session on this instance opens or their last one
//! here closes (one statement each), never per session beyond that.
//!
//! A session is counted here before its row is written (so that two sessions of a user
//! opening at once write once), and the count is undone when the write fails or the open
//! is cancelled (a drop guard): a failed open must not leave a session that nobody will
//! close, which the re-registration after a sweep would turn into a user shown online for
//! good. Because a failed statement may still have committed (or a concurrent open of the
//! same user may have skipped its write), every user whose write failed is reconciled at
//! the next heartbeat: their row is removed when they hold no session here, and written
//! when they do.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use messaging_core::fanout::Fanout;
use messaging_core::id::{SessionId, UserId};
use messaging_core::model::{PresenceStatus, Signal};
use messaging_core::presence::Presence;
use messaging_core::store::Store;
use messaging_core::time::Timestamp;
use sqlx::{Connection, PgPool, Row};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::error::Result;
use crate::signals::PgFanout;

/// Timing of the presence heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PresenceOptions {
    /// How often this instance proves it is alive and sweeps dead ones (default 5 s).
    pub heartbeat: Duration,
    /// How old a heartbeat may be before its instance counts as dead (default 15 s). The
    /// users of a dead instance read as offline at most this long after its last
    /// heartbeat, and are announced offline within one more `heartbeat`.
    pub timeout: Duration,
}

impl Default for PresenceOptions {
    fn default() -> Self {
        Self { heartbeat: Duration::from_secs(5), timeout: Duration::from_secs(15) }
    }
}

impl PresenceOptions {
    /// Sets the heartbeat interval and the timeout (kept at least two intervals).
    #[must_use]
    pub fn timing(mut self, heartbeat: Duration, timeout: Duration) -> Self {
        self.heartbeat = heartbeat.max(Duration::from_millis(10));
        self.timeout = timeout.max(self.heartbeat * 2);
        self
    }
}

/// The [`Presence`] of a [`PgStore`](crate::PgStore): right across every instance on the
/// database. [`PgStore::messenger`](crate::PgStore::messenger) makes one for its
/// messenger; a host that builds its own messenger makes one with
/// [`PgStore::presence`](crate::PgStore::presence) and gives it to
/// [`MessengerBuilder::presence`](messaging_core::MessengerBuilder::presence).
pub struct PgPresence {
    shared: Arc<Shared>,
    /// The heartbeat task, until [`PgPresence::close`] stops it.
    heartbeat: Mutex<Option<JoinHandle<()>>>,
}

/// This instance's sessions per user, and the users whose row must be reconciled.
#[derive(Default)]
struct Local {
    sessions: HashMap<UserId, Vec<SessionId>>,
    /// Users whose presence write failed or was cancelled: their row may not match
    /// `sessions` (see the module docs).
    unsure: HashSet<UserId>,
}

impl Local {
    /// Counts a session; whether it is the user's first here.
    fn open(&mut self, user: UserId, session: SessionId) -> bool {
        let list = self.sessions.entry(user).or_default();
        list.push(session);
        list.len() == 1
    }

    /// Forgets a session; whether it was the user's last here.
    fn close(&mut self, user: UserId, session: SessionId) -> bool {
        let Some(list) = self.sessions.get_mut(&user) else { return false };
        let before = list.len();
        list.retain(|s| *s != session);
        let removed = list.len() < before;
        if list.is_empty() {
            self.sessions.remove(&user);
            return removed;
        }
        false
    }
}

/// Undoes a session's count unless disarmed: the open failed or its future was dropped.
struct OpenGuard<'a> {
    shared: &'a Shared,
    user: UserId,
    session: SessionId,
    armed: bool,
}

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut local = self.shared.local();
            local.close(self.user, self.session);
            local.unsure.insert(self.user);
        }
    }
}

struct Shared {
    pool: PgPool,
    instance: Uuid,
    local: Mutex<Local>,
    options: PresenceOptions,
    /// The advisory lock key of this schema's sweeper.
    sweeper_key: String,
    store: Arc<dyn Store>,
    fanout: Arc<PgFanout>,
}

impl std::fmt::Debug for PgPresence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgPresence")
            .field("instance", &self.shared.instance)
            .finish_non_exhaustive()
    }
}

impl PgPresence {
    pub(crate) async fn start(
        pool: PgPool,
        schema: &str,
        store: Arc<dyn Store>,
        fanout: Arc<PgFanout>,
        options: PresenceOptions,
    ) -> Result<Self> {
        let shared = Arc::new(Shared {
            pool,
            instance: Uuid::now_v7(),
            local: Mutex::new(Local::default()),
            options,
            sweeper_key: format!("{schema}.presence_sweeper"),
            store,
            fanout,
        });
        shared.register().await?;
        let heartbeat = tokio::spawn(beat(Arc::downgrade(&shared)));
        Ok(Self { shared, heartbeat: Mutex::new(Some(heartbeat)) })
    }

    /// Says goodbye: stops the heartbeat (and waits for its task to end), and this
    /// instance's users go offline everywhere at once (instead of after the timeout).
    /// Sessions still open here stop counting. [`PgStore::close`](crate::PgStore::close)
    /// does this for every presence the store made.
    pub async fn close(&self) -> messaging_core::Result<()> {
        let heartbeat = self.heartbeat.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(heartbeat) = heartbeat {
            heartbeat.abort();
            // Cancelled (or already ended): either way it runs no more.
            let _ = heartbeat.await;
        }
        Ok(self.shared.goodbye().await?)
    }
}

impl Drop for PgPresence {
    fn drop(&mut self) {
        // No goodbye here (that needs the database): the rows expire with the heartbeat.
        if let Some(heartbeat) = self.heartbeat.get_mut().unwrap_or_else(PoisonError::into_inner) {
            heartbeat.abort();
        }
    }
}

async fn beat(shared: std::sync::Weak<Shared>) {
    let Some(interval) = shared.upgrade().map(|s| s.options.heartbeat) else { return };
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(shared) = shared.upgrade() else { return };
        if let Err(error) = shared.heartbeat().await {
            tracing::warn!(%error, "presence heartbeat failed; retrying at the next one");
        }
        if let Err(error) = shared.reconcile().await {
            tracing::warn!(%error, "presence reconciliation failed; retrying at the next heartbeat");
        }
        if let Err(error) = shared.sweep().await {
            tracing::warn!(%error, "presence sweep failed; retrying at the next heartbeat");
        }
    }
}

impl Shared {
    /// Removes this instance and its users' rows.
    async fn goodbye(&self) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM presence WHERE instance_id = $1")
            .bind(self.instance)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM instances WHERE id = $1")
            .bind(self.instance)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    fn local(&self) -> MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn local_users(&self) -> Vec<Uuid> {
        self.local().sessions.keys().map(|u| *u.as_uuid()).collect()
    }

    /// Makes the rows of the users whose write failed match this instance's sessions.
    async fn reconcile(&self) -> Result<()> {
        let unsure: Vec<UserId> = std::mem::take(&mut self.local().unsure).into_iter().collect();
        if unsure.is_empty() {
            return Ok(());
        }
        let (here, gone): (Vec<UserId>, Vec<UserId>) = {
            let local = self.local();
            unsure.iter().partition(|u| local.sessions.contains_key(u))
        };
        let ids = |users: &[UserId]| users.iter().map(|u| *u.as_uuid()).collect::<Vec<_>>();
        let done = sqlx::query(
            "WITH gone AS (DELETE FROM presence WHERE instance_id = $1 AND user_id = ANY($2)) \
             INSERT INTO presence (user_id, instance_id) SELECT u, $1 FROM UNNEST($3::uuid[]) AS u \
             ON CONFLICT DO NOTHING",
        )
        .bind(self.instance)
        .bind(ids(&gone))
        .bind(ids(&here))
        .execute(&self.pool)
        .await;
        let again: Vec<UserId> = {
            let mut local = self.local();
            if done.is_err() {
                local.unsure.extend(unsure.iter().copied());
            }
            // A session of a `gone` user that opened meanwhile may have written its row
            // before the delete: write it again.
            gone.iter().filter(|u| local.sessions.contains_key(u)).copied().collect()
        };
        done?;
        if !again.is_empty() {
            let written = sqlx::query(
                "INSERT INTO presence (user_id, instance_id) SELECT u, $1 \
                 FROM UNNEST($2::uuid[]) AS u ON CONFLICT DO NOTHING",
            )
            .bind(self.instance)
            .bind(ids(&again))
            .execute(&self.pool)
            .await;
            if let Err(error) = written {
                self.local().unsure.extend(again);
                return Err(error.into());
            }
        }
        Ok(())
    }

    fn now() -> i64 {
        Timestamp::now().as_millis()
    }

    fn oldest_alive(&self) -> i64 {
        Self::now() - i64::try_from(self.options.timeout.as_millis()).unwrap_or(i64::MAX)
    }

    async fn register(&self) -> Result<()> {
        sqlx::query(
            "INSERT INTO instances (id, heartbeat_at) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
        )
        .bind(self.instance)
        .bind(Self::now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Proves this instance alive; if it was swept as dead meanwhile (a long pause), it
    /// registers again with every user it holds sessions for.
    async fn heartbeat(&self) -> Result<()> {
        let updated = sqlx::query("UPDATE instances SET heartbeat_at = $2 WHERE id = $1")
            .bind(self.instance)
            .bind(Self::now())
            .execute(&self.pool)
            .await?
            .rows_affected();
        if updated == 0 {
            tracing::warn!(instance = %self.instance, "this instance was swept as dead; registering again");
            self.register().await?;
            let users = self.local_users();
            sqlx::query(
                "INSERT INTO presence (user_id, instance_id) SELECT u, $2 FROM UNNEST($1::uuid[]) AS u \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&users)
            .bind(self.instance)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// Runs `change` (a CTE on `user` = $1 and this instance = $2) and says whether no other
    /// live instance holds a session of `user`.
    async fn alone_after(&self, user: UserId, change: &'static str) -> Result<bool> {
        let sql = format!(
            "{change} SELECT NOT EXISTS (SELECT 1 FROM presence p \
               JOIN instances i ON i.id = p.instance_id \
               WHERE p.user_id = $1 AND p.instance_id <> $2 AND i.heartbeat_at >= $3)"
        );
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(user.as_uuid())
            .bind(self.instance)
            .bind(self.oldest_alive())
            .fetch_one(&self.pool)
            .await
            .map_err(Into::into)
    }

    /// Which of `ids` some live instance holds a session of.
    async fn online(&self, ids: &[Uuid]) -> Result<HashSet<Uuid>> {
        let online: Vec<Uuid> = sqlx::query_scalar(
            "SELECT DISTINCT p.user_id FROM presence p JOIN instances i ON i.id = p.instance_id \
             WHERE p.user_id = ANY($1) AND i.heartbeat_at >= $2",
        )
        .bind(ids)
        .bind(self.oldest_alive())
        .fetch_all(&self.pool)
        .await?;
        Ok(online.into_iter().collect())
    }

    /// Removes dead instances (one sweeper at a time, by advisory lock), records
    /// `last_seen` for the users now offline everywhere and announces them to their peers.
    async fn sweep(&self) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext($1))")
            .bind(&self.sweeper_key)
            .fetch_one(&mut *tx)
            .await?;
        if !locked {
            return Ok(());
        }
        let rows = sqlx::query(
            "WITH dead AS ( \
               DELETE FROM instances WHERE heartbeat_at < $1 RETURNING id, heartbeat_at \
             ), gone AS ( \
               DELETE FROM presence p USING dead d WHERE p.instance_id = d.id \
               RETURNING p.user_id, d.heartbeat_at \
             ), offline AS ( \
               SELECT g.user_id, max(g.heartbeat_at) AS at FROM gone g \
               WHERE NOT EXISTS (SELECT 1 FROM presence p WHERE p.user_id = g.user_id \
                 AND p.instance_id NOT IN (SELECT id FROM dead)) \
               GROUP BY g.user_id \
             ), seen AS ( \
               INSERT INTO last_seen (user_id, at) SELECT user_id, at FROM offline \
               ON CONFLICT (user_id) DO UPDATE SET at = GREATEST(last_seen.at, excluded.at) \
             ) \
             SELECT user_id, at FROM offline",
        )
        .bind(self.oldest_alive())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        drop(conn);
        for row in rows {
            let user = UserId::from_uuid(row.try_get(0)?);
            let at = Timestamp::from_millis(row.try_get(1)?);
            let peers = self.store.peers(user).await?;
            let status = PresenceStatus { user_id: user, online: false, last_seen: Some(at) };
            self.fanout.signal(Signal::Presence(status), &peers).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Presence for PgPresence {
    async fn session_opened(
        &self,
        user: UserId,
        session: SessionId,
    ) -> messaging_core::Result<bool> {
        let shared = &*self.shared;
        if !shared.local().open(user, session) {
            return Ok(false);
        }
        let mut guard = OpenGuard { shared, user, session, armed: true };
        let alone = shared
            .alone_after(
                user,
                "WITH here AS ( \
                   INSERT INTO presence (user_id, instance_id) VALUES ($1, $2) \
                   ON CONFLICT DO NOTHING \
                 ) ",
            )
            .await?;
        guard.armed = false;
        Ok(alone)
    }

    async fn session_closed(
        &self,
        user: UserId,
        session: SessionId,
    ) -> messaging_core::Result<bool> {
        if !self.shared.local().close(user, session) {
            return Ok(false);
        }
        let alone = self
            .shared
            .alone_after(
                user,
                "WITH here AS (DELETE FROM presence WHERE user_id = $1 AND instance_id = $2) ",
            )
            .await;
        if alone.is_err() {
            // The row may still be there: removed at the next heartbeat.
            self.shared.local().unsure.insert(user);
        }
        Ok(alone?)
    }

    async fn online(&self, users: &[UserId]) -> messaging_core::Result<Vec<bool>> {
        let ids: Vec<Uuid> = users.iter().map(|u| *u.as_uuid()).collect();
        let online = self.shared.online(&ids).await?;
        Ok(ids.iter().map(|id| online.contains(id)).collect())
    }
}
