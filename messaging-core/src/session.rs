//! A [`Session`]: one connection of a user. It registers presence, subscribes to the user's
//! pushes and carries the hello cursor that bounds its `sync`, so pushes and `sync`
//! together give every event exactly once.

use crate::error::Result;
use crate::fanout::{Push, RecvError, Subscription};
use crate::id::{SessionId, UserId};
use crate::messenger::Messenger;
use crate::model::Cursor;
use crate::pages::SyncPage;

/// One connection of a user. Dropping it (or [`Session::close`]) unregisters presence.
pub struct Session {
    id: SessionId,
    user: UserId,
    cursor: Cursor,
    subscription: Subscription,
    messenger: Messenger,
    closed: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("user", &self.user)
            .field("cursor", &self.cursor)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session registered nowhere yet (see [`Messenger::connect`]).
    pub(crate) fn new(
        id: SessionId,
        user: UserId,
        cursor: Cursor,
        subscription: Subscription,
        messenger: Messenger,
    ) -> Self {
        Self { id, user, cursor, subscription, messenger, closed: false }
    }

    /// Drops the session without unregistering it: presence never recorded it.
    pub(crate) fn forget(mut self) {
        self.closed = true;
    }

    /// This session's id.
    #[must_use]
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The authenticated user.
    #[must_use]
    pub fn user(&self) -> UserId {
        self.user
    }

    /// The hello cursor: every durable event after it is pushed to this session, none at or
    /// before it is.
    #[must_use]
    pub fn cursor(&self) -> Cursor {
        self.cursor
    }

    /// The messenger this session belongs to.
    #[must_use]
    pub fn messenger(&self) -> &Messenger {
        &self.messenger
    }

    /// The next push. Cancel-safe.
    pub async fn recv(&mut self) -> Result<Push, RecvError> {
        self.subscription.recv().await
    }

    /// The next push if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Result<Option<Push>, RecvError> {
        self.subscription.try_recv()
    }

    /// `sync` bounded by this session's hello cursor: together with the pushes, every
    /// event after `after` exactly once.
    pub async fn sync(&self, after: Option<Cursor>, limit: Option<usize>) -> Result<SyncPage> {
        self.messenger.sync(self.user, after, self.cursor, limit).await
    }

    /// Unregisters presence now (persisting `last_seen` and announcing it if this was the
    /// user's last session).
    pub async fn close(mut self) -> Result<()> {
        self.closed = true;
        self.messenger.disconnect(self.user, self.id).await
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        let (messenger, user, id) = (self.messenger.clone(), self.user, self.id);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    if let Err(error) = messenger.disconnect(user, id).await {
                        tracing::warn!(%error, %user, "closing a dropped session failed");
                    }
                });
            }
            Err(_) => tracing::warn!(%user, "session dropped outside a runtime; presence kept"),
        }
    }
}
