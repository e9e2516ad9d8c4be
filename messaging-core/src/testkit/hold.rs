//! The test seam of stores with several writers: hold a write after it has taken its log
//! position, so the interleaving cases can commit a later position first. It lives in the
//! testkit (feature `testkit`) so a production build carries no hold point; a store
//! implements it behind a feature of its own that enables this one.

use async_trait::async_trait;
use tokio::sync::oneshot;

use crate::error::{Error, Result};

/// Optional capability of stores whose writers can commit out of position order
/// (several writers on one database): hold a write after it has taken its log position,
/// so tests can commit a later position first.
///
/// ```
/// use messaging_core::testkit::CommitHold;
///
/// async fn hold(store: &dyn CommitHold) -> messaging_core::Result<()> {
///     let held = store.hold_next_write().await?;
///     held.release();
///     Ok(())
/// }
/// ```
#[async_trait]
pub trait CommitHold: Send + Sync {
    /// Arms a hold on the next durable write this store object starts: that write takes its
    /// log position, reports it through [`HeldCommit::positioned`], and waits before
    /// committing until the [`HeldCommit`] is released or dropped.
    async fn hold_next_write(&self) -> Result<HeldCommit>;
}

/// The test's side of a [`CommitHold`].
#[derive(Debug)]
pub struct HeldCommit {
    positioned: Option<oneshot::Receiver<u64>>,
    release: Option<oneshot::Sender<()>>,
}

/// The store's side of a [`CommitHold`].
#[derive(Debug)]
pub struct HoldPoint {
    positioned: oneshot::Sender<u64>,
    release: oneshot::Receiver<()>,
}

impl HeldCommit {
    /// A connected pair: the test keeps the [`HeldCommit`], the store the [`HoldPoint`].
    #[must_use]
    pub fn pair() -> (Self, HoldPoint) {
        let (positioned_tx, positioned_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        (
            Self { positioned: Some(positioned_rx), release: Some(release_tx) },
            HoldPoint { positioned: positioned_tx, release: release_rx },
        )
    }

    /// Waits until the held write has taken its position; returns the position.
    pub async fn positioned(&mut self) -> Result<u64> {
        let rx = self
            .positioned
            .take()
            .ok_or_else(|| Error::invalid("positioned() was already awaited"))?;
        rx.await.map_err(|_| Error::unavailable("the held write ended before its position"))
    }

    /// Lets the held write commit.
    pub fn release(mut self) {
        if let Some(tx) = self.release.take() {
            let _ = tx.send(());
        }
    }
}

impl HoldPoint {
    /// Called by the store once the write has its position: reports it, then waits for the
    /// release (or for the test's side to be dropped).
    pub async fn hold(self, position: u64) {
        let _ = self.positioned.send(position);
        let _ = self.release.await;
    }
}
