//! [`SocialStore`]: blocks, bounded per blocker, last-seen times and revocations.

use async_trait::async_trait;

use super::MemoryStore;
use super::state::State;
use crate::error::{Error, Result};
use crate::id::UserId;
use crate::store::SocialStore;
use crate::time::Timestamp;

impl State {
    /// Blocking twice is fine; a new block past `max` is `Conflict` and writes nothing.
    /// The count and the insert are one step under the store's lock.
    fn block(&mut self, blocker: UserId, blocked: UserId, max: usize) -> Result<()> {
        let blocks = self.blocks.get(&blocker);
        if blocks.is_some_and(|b| b.contains(&blocked)) {
            return Ok(());
        }
        if blocks.map_or(0, |b| b.len()) >= max {
            return Err(Error::conflict("too many blocked users"));
        }
        self.blocks.entry(blocker).or_default().insert(blocked);
        Ok(())
    }

    fn unblock(&mut self, blocker: UserId, blocked: UserId) {
        if let Some(blocks) = self.blocks.get_mut(&blocker) {
            blocks.remove(&blocked);
            if blocks.is_empty() {
                self.blocks.remove(&blocker);
            }
        }
    }

    fn blocks_of(&self, blocker: UserId, after: Option<UserId>, limit: usize) -> Vec<UserId> {
        let Some(blocked) = self.blocks.get(&blocker) else { return Vec::new() };
        let mut users: Vec<UserId> =
            blocked.iter().copied().filter(|u| after.is_none_or(|a| *u > a)).collect();
        users.sort_unstable();
        users.truncate(limit);
        users
    }

    fn is_blocked_between(&self, a: UserId, b: UserId) -> bool {
        let blocks = |x: UserId, y: UserId| self.blocks.get(&x).is_some_and(|s| s.contains(&y));
        blocks(a, b) || blocks(b, a)
    }

    /// Keeps the later of the stored revocation time and `at`: a revocation never moves
    /// backwards.
    fn revoke(&mut self, user: UserId, at: Timestamp) {
        let stored = self.revocations.entry(user).or_insert(at);
        *stored = (*stored).max(at);
    }

    /// The recorded times of those of `users` that have one, once each.
    fn last_seen(&self, users: &[UserId]) -> Vec<(UserId, Timestamp)> {
        let mut seen: Vec<(UserId, Timestamp)> = Vec::new();
        for user in users {
            if let Some(at) = self.last_seen.get(user)
                && !seen.iter().any(|(u, _)| u == user)
            {
                seen.push((*user, *at));
            }
        }
        seen
    }
}

#[async_trait]
impl SocialStore for MemoryStore {
    async fn block(&self, blocker: UserId, blocked: UserId, max_blocks: usize) -> Result<()> {
        self.write(|state| state.block(blocker, blocked, max_blocks))
    }

    async fn unblock(&self, blocker: UserId, blocked: UserId) -> Result<()> {
        self.write(|state| {
            state.unblock(blocker, blocked);
            Ok(())
        })
    }

    async fn is_blocked_between(&self, a: UserId, b: UserId) -> Result<bool> {
        Ok(self.read(|state| state.is_blocked_between(a, b)))
    }

    async fn blocks(
        &self,
        blocker: UserId,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<UserId>> {
        Ok(self.read(|state| state.blocks_of(blocker, after, limit)))
    }

    async fn set_last_seen(&self, user: UserId, at: Timestamp) -> Result<()> {
        self.write(|state| {
            state.last_seen.insert(user, at);
            Ok(())
        })
    }

    async fn last_seen(&self, users: &[UserId]) -> Result<Vec<(UserId, Timestamp)>> {
        Ok(self.read(|state| state.last_seen(users)))
    }

    async fn revoke(&self, user: UserId, at: Timestamp) -> Result<()> {
        self.write(|state| {
            state.revoke(user, at);
            Ok(())
        })
    }

    async fn revoked_at(&self, user: UserId) -> Result<Option<Timestamp>> {
        Ok(self.read(|state| state.revocations.get(&user).copied()))
    }
}
