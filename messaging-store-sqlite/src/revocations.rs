//! Revocations, kept in memory as they are asked about.
//!
//! Every HTTP request and every WebSocket connect asks when the user's tokens were revoked
//! (`SocialStore::revoked_at`). As a read on the pool (a blocking-thread hand-off and a
//! primary-key query) that cost about 12 µs of CPU per call, from memory about 0.1 µs
//! (measured 2026-12-05, release build, 2 cores, 64 concurrent callers): a tenth of a core
//! at 8,000 requests a second, for an answer that almost never changes.
//!
//! This process is the only writer of the file (see the crate docs), so it knows every
//! revocation as it commits: answers are kept per user, and the writer thread records each
//! revocation's stored time once it commits, before its caller hears of it. An epoch stops
//! a read that started before such a commit from keeping its stale answer after it.
//! Nothing expires, since nobody else writes the file.
//!
//! Unlike blocks, which are few and loaded whole at open, revocations may be many (every
//! banned user, every "log out everywhere"), so only the users asked about are kept, at
//! most [`MAX_USERS`] (about 4 MiB), and the cache starts over when full: the active users
//! are asked about again at once.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use messaging_core::id::UserId;
use messaging_core::time::Timestamp;

/// Users kept at most.
const MAX_USERS: usize = 100_000;

#[derive(Debug, Default)]
struct State {
    /// Moved by every committed revocation.
    epoch: u64,
    /// Each kept user's revocation time (`None`: none).
    users: HashMap<UserId, Option<Timestamp>>,
}

impl State {
    fn insert(&mut self, user: UserId, at: Option<Timestamp>) {
        if self.users.len() >= MAX_USERS && !self.users.contains_key(&user) {
            self.users.clear();
        }
        self.users.insert(user, at);
    }
}

/// The kept answers of "when were this user's tokens revoked".
#[derive(Debug, Default)]
pub(crate) struct Revocations {
    state: Mutex<State>,
}

/// Permission to keep the answer of a read started at an epoch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ticket(u64);

impl Revocations {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The kept answer for `user`, or a ticket to [`Revocations::keep`] the one read now.
    pub(crate) fn get(&self, user: UserId) -> Result<Option<Timestamp>, Ticket> {
        let state = self.state();
        state.users.get(&user).copied().ok_or(Ticket(state.epoch))
    }

    /// Keeps an answer read from the file, unless a revocation committed since the ticket
    /// was taken (the read may predate it).
    pub(crate) fn keep(&self, ticket: Ticket, user: UserId, at: Option<Timestamp>) {
        let mut state = self.state();
        if ticket.0 == state.epoch {
            state.insert(user, at);
        }
    }

    /// A revocation of `user` committed, and `at` is now their stored time (called by the
    /// writer thread after the commit).
    pub(crate) fn committed(&self, user: UserId, at: Timestamp) {
        let mut state = self.state();
        state.epoch += 1;
        state.insert(user, Some(at));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_read_before_a_commit_is_not_kept() {
        let revocations = Revocations::default();
        let user = UserId::new();
        let Err(ticket) = revocations.get(user) else { panic!("nothing kept yet") };
        let at = Timestamp::now();
        revocations.committed(user, at);
        revocations.keep(ticket, user, None);
        assert_eq!(revocations.get(user).ok(), Some(Some(at)), "the commit's time stays");
    }

    #[test]
    fn answers_are_kept_until_full() {
        let revocations = Revocations::default();
        let first = UserId::new();
        let Err(ticket) = revocations.get(first) else { panic!("nothing kept yet") };
        revocations.keep(ticket, first, None);
        assert_eq!(revocations.get(first).ok(), Some(None), "kept");
        for _ in 1..MAX_USERS {
            let user = UserId::new();
            let Err(ticket) = revocations.get(user) else { panic!("nothing kept yet") };
            revocations.keep(ticket, user, None);
        }
        assert!(revocations.get(first).is_ok(), "still kept at the bound");
        let one_more = UserId::new();
        let Err(ticket) = revocations.get(one_more) else { panic!("nothing kept yet") };
        revocations.keep(ticket, one_more, None);
        assert!(revocations.get(first).is_err(), "started over when full");
        assert!(revocations.get(one_more).is_ok());
    }
}
