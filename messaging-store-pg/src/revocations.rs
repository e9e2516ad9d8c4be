//! Revocations asked about on every request, answered from memory while that is safe.
//!
//! Every HTTP request and WebSocket connect asks when the user's tokens were revoked
//! (`SocialStore::revoked_at`), which as a query would be a round trip per request, the
//! cost `blocks.rs` measured for the per-send block check. Revocations are rare, so answers
//! are kept per user, as `kept.rs` describes: forgotten when a revocation of that user
//! commits (the writer's NOTIFY on the revocations channel, and at once on this instance),
//! kept only while the listener is connected, each for at most
//! `PgOptions::revocation_cache_ttl` (default 30 s).
//!
//! So a revocation made on another instance is refused here once its notification
//! arrives; when the notification is lost with the listener's connection, the cache is
//! emptied as the listener stops and answers come from the database until it listens
//! again, and when it is lost unnoticed the answer expires: a transport that checks again
//! on its heartbeat ends the revoked sessions within the time to live at worst.

use std::time::Duration;

use messaging_core::id::UserId;
use messaging_core::time::Timestamp;
use uuid::Uuid;

use crate::kept::{Kept, Listened, Ticket};

/// Users kept at most; the cache starts over when full (the users making requests are
/// asked about again at once).
const MAX_USERS: usize = 100_000;

/// The kept answers of "when were this user's tokens revoked".
pub(crate) struct RevocationCache {
    users: Kept<UserId, Option<Timestamp>>,
}

impl RevocationCache {
    /// An empty cache whose answers live at most `ttl`.
    pub(crate) fn new(ttl: Duration) -> Self {
        Self { users: Kept::new(ttl, MAX_USERS) }
    }

    /// The kept answer for `user`, or a ticket to [`RevocationCache::keep`] the queried one.
    pub(crate) fn get(&self, user: UserId) -> Result<Option<Timestamp>, Ticket> {
        self.users.get(&user)
    }

    /// Keeps a queried answer, unless something changed since the ticket was taken.
    pub(crate) fn keep(&self, ticket: Ticket, user: UserId, at: Option<Timestamp>) {
        self.users.keep(ticket, user, at);
    }

    /// Forgets the answer for `user` (a revocation of theirs committed).
    pub(crate) fn forget(&self, user: UserId) {
        self.users.forget(&user);
    }
}

impl Listened for RevocationCache {
    fn set_listening(&self, listening: bool) {
        self.users.set_listening(listening);
    }

    /// Forgets the user a revocations notification names; a payload that names none
    /// (which this crate never sends) forgets everything.
    fn forget_notified(&self, payload: &str) {
        match Uuid::parse_str(payload) {
            Ok(user) => self.forget(UserId::from_uuid(user)),
            Err(_) => {
                tracing::warn!(
                    payload,
                    "malformed revocations notification; forgetting all revocations"
                );
                self.users.forget_all();
            }
        }
    }
}

/// The notification payload naming a user.
pub(crate) fn payload(user: UserId) -> String {
    user.as_uuid().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_name_the_user() {
        let cache = RevocationCache::new(Duration::from_secs(60));
        cache.set_listening(true);
        let (a, b) = (UserId::new(), UserId::new());
        for user in [a, b] {
            let Err(ticket) = cache.get(user) else { panic!("nothing kept yet") };
            cache.keep(ticket, user, None);
        }
        assert_eq!(cache.get(a).ok(), Some(None), "kept");
        cache.forget_notified(&payload(a));
        assert!(cache.get(a).is_err(), "the named user is forgotten");
        assert!(cache.get(b).is_ok(), "other users stay");
        cache.forget_notified("garbage");
        assert!(cache.get(b).is_err(), "a malformed payload forgets everything");
    }
}
