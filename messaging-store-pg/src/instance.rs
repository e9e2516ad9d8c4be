//! What one store object runs, and how it starts and stops as a whole.
//!
//! A [`PgStore`](crate::PgStore) is a cheap handle on one [`Instance`]: its pool, its
//! batching writer, its feed (the log tailer and the listener), the block and revocation
//! caches, the signal sinks of its fan-outs and the presences it made. Several instances on
//! one database are several processes as far as delivery goes (see `feed.rs`).
//!
//! Stopping has two paths. [`Instance::close`] stops every task in order and waits for
//! each: the writer first (everything queued commits and is answered), then the presences
//! say goodbye (their users go offline everywhere at once), then the feed, then the pool.
//! Dropping the last handle without closing aborts the tasks instead (`Drop` cannot wait):
//! changes still queued are answered `unavailable`, and presence rows expire with the
//! heartbeat timeout.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use messaging_core::Error;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgPool};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::blocks::BlockCache;
use crate::channels::Channels;
use crate::error::{Result, closed};
use crate::feed::Feed;
use crate::kept::Listened;
use crate::options::PgOptions;
use crate::presence::PgPresence;
use crate::revocations::RevocationCache;
use crate::schema;
use crate::signals::SignalSinks;
use crate::writer::{Writer, WriterLimits};

/// The running parts of one store object.
pub(crate) struct Instance {
    pub(crate) writer: Writer,
    pub(crate) feed: Arc<Feed>,
    pub(crate) pool: PgPool,
    pub(crate) schema: String,
    pub(crate) signals: SignalSinks,
    pub(crate) blocks: Arc<BlockCache>,
    pub(crate) revocations: Arc<RevocationCache>,
    /// This instance's id on the signal channel (its own signals come back to it).
    pub(crate) id: Uuid,
    /// The presences made over this store, for their goodbye at close. Weak: a presence
    /// holds the store, and the host decides how long it lives.
    presences: Mutex<Vec<Weak<PgPresence>>>,
    /// Set by [`Instance::close`]; every call is refused from then on.
    closed: AtomicBool,
    /// Held while closing, so that a second `close` returns once the first is done.
    closing: tokio::sync::Mutex<()>,
}

impl Instance {
    /// Connects, migrates unless told not to, and starts the writer and the feed.
    pub(crate) async fn start(connect: PgConnectOptions, options: PgOptions) -> Result<Self> {
        let schema = schema::validate(&options.schema)?;
        // Set after connecting rather than as startup options, which poolers such as
        // PgBouncer refuse.
        let setup = format!(
            "SET search_path TO \"{schema}\"; SET statement_timeout = {}",
            options.statement_timeout.as_millis().max(1)
        );
        let pool = PgPoolOptions::new()
            .max_connections(
                options.max_connections.max(3 + u32::try_from(options.writers).unwrap_or(u32::MAX)),
            )
            .acquire_timeout(options.acquire_timeout)
            .after_connect(move |conn, _| {
                let setup = setup.clone();
                Box::pin(async move {
                    conn.execute(sqlx::AssertSqlSafe(setup)).await?;
                    Ok(())
                })
            })
            .connect_with(connect)
            .await?;
        if options.migrate {
            schema::migrate(&pool, &schema).await?;
        }
        let channels = Channels::of(&schema);
        let signals = SignalSinks::default();
        let blocks = Arc::new(BlockCache::new(options.block_cache_ttl));
        let revocations = Arc::new(RevocationCache::new(options.revocation_cache_ttl));
        let caches: Vec<(String, Arc<dyn Listened>)> = vec![
            (channels.blocks.clone(), blocks.clone()),
            (channels.revocations.clone(), revocations.clone()),
        ];
        let feed = Feed::new(
            pool.clone(),
            channels.clone(),
            signals.clone(),
            caches,
            Arc::new(Notify::new()),
            options.listener_probe,
        );
        let limits = WriterLimits { writers: options.writers, max_batch: options.max_batch };
        let writer = Writer::start(&pool, &channels, limits, &feed);
        Ok(Self {
            writer,
            feed,
            pool,
            schema,
            signals,
            blocks,
            revocations,
            id: Uuid::now_v7(),
            presences: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            closing: tokio::sync::Mutex::new(()),
        })
    }

    /// This instance, unless it was closed.
    pub(crate) fn live(&self) -> Result<&Self, Error> {
        if self.closed.load(Ordering::Acquire) { Err(closed()) } else { Ok(self) }
    }

    /// Remembers `presence` for its goodbye at close.
    pub(crate) fn keep_presence(&self, presence: &Arc<PgPresence>) {
        let mut presences = self.presences.lock().unwrap_or_else(PoisonError::into_inner);
        presences.retain(|kept| kept.strong_count() > 0);
        presences.push(Arc::downgrade(presence));
    }

    /// Stops everything in order and waits for each part (see the module docs). Every
    /// part is stopped even when a goodbye fails; the first such failure is returned.
    pub(crate) async fn close(&self) -> Result<(), Error> {
        let _closing = self.closing.lock().await;
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.writer.close().await;
        let presences: Vec<Arc<PgPresence>> =
            std::mem::take(&mut *self.presences.lock().unwrap_or_else(PoisonError::into_inner))
                .iter()
                .filter_map(Weak::upgrade)
                .collect();
        let mut failed = None;
        for presence in presences {
            if let Err(error) = presence.close().await {
                tracing::warn!(%error, "presence goodbye failed; its rows expire instead");
                failed.get_or_insert(error);
            }
        }
        self.feed.stop().await;
        self.pool.close().await;
        failed.map_or(Ok(()), Err)
    }
}
