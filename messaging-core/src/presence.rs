//! Who is online.
//!
//! Presence is a count of open sessions per user. The in-process [`LocalPresence`] is
//! right for one process; several processes share presence through a store's own
//! implementation (e.g. heartbeat rows per instance in PostgreSQL).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::error::Result;
use crate::id::{SessionId, UserId};

/// Tracks open sessions per user.
///
/// ```
/// use messaging_core::presence::{LocalPresence, Presence};
/// use messaging_core::{SessionId, UserId};
///
/// # tokio_test_block(async {
/// let presence = LocalPresence::default();
/// let user = UserId::new();
/// assert!(presence.session_opened(user, SessionId::new()).await?);
/// assert_eq!(presence.online(&[user]).await?, vec![true]);
/// # Ok::<(), messaging_core::Error>(())
/// # });
/// # fn tokio_test_block<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[async_trait]
pub trait Presence: Send + Sync {
    /// Registers a session; returns whether it is the user's first open session.
    async fn session_opened(&self, user: UserId, session: SessionId) -> Result<bool>;

    /// Unregisters a session; returns whether it was the user's last open session.
    /// Unregistering an unknown session returns false.
    async fn session_closed(&self, user: UserId, session: SessionId) -> Result<bool>;

    /// For each user, in order, whether they hold at least one session.
    async fn online(&self, users: &[UserId]) -> Result<Vec<bool>>;
}

/// In-memory presence for a single process.
#[derive(Debug, Default)]
pub struct LocalPresence {
    sessions: Mutex<HashMap<UserId, Vec<SessionId>>>,
}

impl LocalPresence {
    /// The users holding at least one session.
    #[must_use]
    pub fn users(&self) -> Vec<UserId> {
        self.sessions().keys().copied().collect()
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, Vec<SessionId>>> {
        self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl Presence for LocalPresence {
    async fn session_opened(&self, user: UserId, session: SessionId) -> Result<bool> {
        let mut sessions = self.sessions();
        let list = sessions.entry(user).or_default();
        list.push(session);
        Ok(list.len() == 1)
    }

    async fn session_closed(&self, user: UserId, session: SessionId) -> Result<bool> {
        let mut sessions = self.sessions();
        let Some(list) = sessions.get_mut(&user) else {
            return Ok(false);
        };
        let before = list.len();
        list.retain(|s| *s != session);
        let removed = list.len() < before;
        let last = list.is_empty();
        if last {
            sessions.remove(&user);
        }
        Ok(removed && last)
    }

    async fn online(&self, users: &[UserId]) -> Result<Vec<bool>> {
        let sessions = self.sessions();
        Ok(users.iter().map(|u| sessions.contains_key(u)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_and_last_session_are_reported() {
        let presence = LocalPresence::default();
        let user = UserId::new();
        let (a, b) = (SessionId::new(), SessionId::new());
        assert!(presence.session_opened(user, a).await.unwrap());
        assert!(!presence.session_opened(user, b).await.unwrap());
        assert!(!presence.session_closed(user, a).await.unwrap());
        assert!(!presence.session_closed(user, a).await.unwrap());
        assert_eq!(presence.online(&[user]).await.unwrap(), vec![true]);
        assert!(presence.session_closed(user, b).await.unwrap());
        assert_eq!(presence.online(&[user]).await.unwrap(), vec![false]);
    }
}
