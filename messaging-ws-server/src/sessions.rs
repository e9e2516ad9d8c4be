//! The per-user session limit (docs/protocol.md "Limits and robustness"): how many sessions
//! each user holds on this instance, so that one account (or one stolen token) cannot take
//! every connection slot. A session over the limit is refused with 503 before the upgrade.
//!
//! A session holds a [`SessionSlot`] for its whole life; dropping it gives the slot back,
//! however the session ended. Users without sessions take no room in the map.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use messaging_core::UserId;

/// Open sessions per user, with their limit.
#[derive(Debug)]
pub(crate) struct UserSessions {
    limit: usize,
    open: Mutex<HashMap<UserId, usize>>,
}

/// One session's place in its user's count; released on drop.
#[derive(Debug)]
pub(crate) struct SessionSlot {
    sessions: Arc<UserSessions>,
    user: UserId,
}

impl UserSessions {
    /// No sessions yet; at most `limit` per user.
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self { limit, open: Mutex::new(HashMap::new()) })
    }

    /// A slot for one more session of `user`, unless they hold `limit` already.
    pub(crate) fn try_open(self: &Arc<Self>, user: UserId) -> Option<SessionSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(user).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(SessionSlot { sessions: self.clone(), user })
    }

    /// Sessions `user` holds now.
    #[cfg(test)]
    fn count(&self, user: UserId) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&user).copied().unwrap_or(0)
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut open = self.sessions.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_per_user_and_slots_come_back() {
        let sessions = UserSessions::new(2);
        let (alice, bob) = (UserId::new(), UserId::new());
        let first = sessions.try_open(alice).unwrap();
        let _second = sessions.try_open(alice).unwrap();
        assert!(sessions.try_open(alice).is_none(), "a third session is refused");
        let _bobs = sessions.try_open(bob).unwrap();
        drop(first);
        assert_eq!(sessions.count(alice), 1);
        assert!(sessions.try_open(alice).is_some(), "one more once one closed");
        assert_eq!(
            sessions.count(alice),
            1,
            "the refused try took nothing; the dropped one gave back"
        );
        let open = sessions.open.lock().unwrap();
        assert_eq!(open.len(), 2);
    }

    #[test]
    fn users_without_sessions_take_no_room() {
        let sessions = UserSessions::new(1);
        let slot = sessions.try_open(UserId::new()).unwrap();
        drop(slot);
        assert!(sessions.open.lock().unwrap().is_empty());
    }
}
