//! Thinning of repeated `typing: started` signals.
//!
//! A client repeats `started` while its user types (at most every half of
//! `typing_expires_ms`, docs/protocol.md "Events"); a hostile or buggy one can repeat it as fast
//! as its rate limit allows, and every repeat is a push to the peer's sessions. A `started`
//! repeated within half the expiry of the last one relayed tells the peer nothing new, so
//! it is dropped (the caller still gets its answer); a change of state is always relayed.
//!
//! The state is one entry per (user, conversation) that relayed a `started` recently:
//! entries older than the expiry are swept whenever the map has doubled since the last
//! sweep, so memory follows the users typing now, not every user who ever typed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::id::{ConversationId, UserId};
use crate::model::TypingState;

/// The smallest map size at which sweeps start.
const SWEEP_FLOOR: usize = 1024;

/// Who relayed `started` when.
#[derive(Debug)]
pub(crate) struct TypingThrottle {
    /// Repeats within this window of the last relayed `started` are dropped.
    window: Duration,
    state: Mutex<Relayed>,
}

#[derive(Debug, Default)]
struct Relayed {
    started: HashMap<(UserId, ConversationId), Instant>,
    sweep_at: usize,
}

impl TypingThrottle {
    /// A throttle for indicators that expire after `expires_ms`.
    pub(crate) fn new(expires_ms: u64) -> Self {
        Self {
            window: Duration::from_millis(expires_ms / 2),
            state: Mutex::new(Relayed { started: HashMap::new(), sweep_at: SWEEP_FLOOR }),
        }
    }

    /// Whether this signal should be relayed; records it when it is.
    pub(crate) fn admit(
        &self,
        user: UserId,
        conversation: ConversationId,
        state: TypingState,
    ) -> bool {
        self.admit_at(user, conversation, state, Instant::now())
    }

    fn admit_at(
        &self,
        user: UserId,
        conversation: ConversationId,
        state: TypingState,
        now: Instant,
    ) -> bool {
        let mut relayed = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (user, conversation);
        match state {
            TypingState::Stopped => {
                relayed.started.remove(&key);
                true
            }
            TypingState::Started => {
                if relayed.started.get(&key).is_some_and(|at| now.duration_since(*at) < self.window)
                {
                    return false;
                }
                relayed.started.insert(key, now);
                if relayed.started.len() >= relayed.sweep_at {
                    let expiry = self.window * 2;
                    relayed.started.retain(|_, at| now.duration_since(*at) < expiry);
                    relayed.sweep_at = (relayed.started.len() * 2).max(SWEEP_FLOOR);
                }
                true
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.state.lock().map(|r| r.started.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_thinned_and_changes_of_state_always_pass() {
        let throttle = TypingThrottle::new(6_000);
        let (user, conversation) = (UserId::new(), ConversationId::new());
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert!(throttle.admit_at(user, conversation, TypingState::Started, at(0)));
        assert!(!throttle.admit_at(user, conversation, TypingState::Started, at(100)));
        assert!(!throttle.admit_at(user, conversation, TypingState::Started, at(2_999)));
        assert!(throttle.admit_at(user, conversation, TypingState::Started, at(3_000)));
        assert!(throttle.admit_at(user, conversation, TypingState::Stopped, at(3_001)));
        assert!(throttle.admit_at(user, conversation, TypingState::Stopped, at(3_002)));
        assert!(throttle.admit_at(user, conversation, TypingState::Started, at(3_003)));
        // Another conversation of the same user is its own indicator.
        assert!(throttle.admit_at(user, ConversationId::new(), TypingState::Started, at(3_004)));
    }

    #[test]
    fn memory_follows_the_users_typing_now() {
        let throttle = TypingThrottle::new(6_000);
        let t0 = Instant::now();
        for _ in 0..10_000 {
            throttle.admit_at(UserId::new(), ConversationId::new(), TypingState::Started, t0);
        }
        let later = t0 + Duration::from_secs(60);
        for _ in 0..SWEEP_FLOOR * 8 {
            throttle.admit_at(UserId::new(), ConversationId::new(), TypingState::Started, later);
        }
        // The map doubled (16,384) during the later inserts: the expired entries went.
        assert_eq!(throttle.len(), SWEEP_FLOOR * 8);
    }
}
