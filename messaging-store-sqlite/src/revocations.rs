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
//! Revocations are usually few, so while the table has at most [`MAX_USERS`] rows all of
//! them are kept, loaded at open: a user not among them has none, with no read at all
//! (every connect of a user never revoked would otherwise be a read on the pool, about 5 %
//! of a WebSocket handshake). They may also be many (every banned user, every "log out
//! everywhere"): past the bound only the users asked about are kept, at most
//! [`MAX_USERS`] (about 4 MiB), and the cache starts over when full: the active users are
//! asked about again at once.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use messaging_core::id::UserId;
use messaging_core::time::Timestamp;

/// Users kept at most.
pub(crate) const MAX_USERS: usize = 100_000;

#[derive(Debug, Default)]
struct State {
    /// Moved by every committed revocation.
    epoch: u64,
    /// Each kept user's revocation time (`None`: none).
    users: HashMap<UserId, Option<Timestamp>>,
    /// Whether `users` holds every revocation of the file (a user not in it has none).
    complete: bool,
}

impl State {
    fn insert(&mut self, user: UserId, at: Option<Timestamp>) {
        if self.users.len() >= MAX_USERS && !self.users.contains_key(&user) {
            self.users.clear();
            self.complete = false;
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
    /// Every revocation of the file, when there are at most [`MAX_USERS`] (`None`: more,
    /// keep the users asked about).
    pub(crate) fn new(all: Option<Vec<(UserId, Timestamp)>>) -> Self {
        let state = match all {
            Some(rows) => State {
                epoch: 0,
                users: rows.into_iter().map(|(user, at)| (user, Some(at))).collect(),
                complete: true,
            },
            None => State::default(),
        };
        Self { state: Mutex::new(state) }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The kept answer for `user`, or a ticket to [`Revocations::keep`] the one read now.
    pub(crate) fn get(&self, user: UserId) -> Result<Option<Timestamp>, Ticket> {
        let state = self.state();
        match state.users.get(&user) {
            Some(at) => Ok(*at),
            None if state.complete => Ok(None),
            None => Err(Ticket(state.epoch)),
        }
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
    fn a_complete_set_answers_every_user_until_it_outgrows_the_bound() {
        let (revoked, at) = (UserId::new(), Timestamp::now());
        let revocations = Revocations::new(Some(vec![(revoked, at)]));
        assert_eq!(revocations.get(revoked).ok(), Some(Some(at)));
        assert_eq!(revocations.get(UserId::new()).ok(), Some(None), "no read for the others");
        for _ in 1..MAX_USERS {
            revocations.committed(UserId::new(), at);
        }
        assert_eq!(revocations.get(UserId::new()).ok(), Some(None), "still complete at the bound");
        revocations.committed(UserId::new(), at);
        assert!(revocations.get(UserId::new()).is_err(), "past it, unknown users are read");
    }

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
