//! Revoking a user's tokens, and the check a transport makes against it.
//!
//! The host revokes through [`ServiceHandle::revoke`](super::ServiceHandle::revoke) (a
//! password change, a ban, "log out everywhere"): the store keeps the time, and a
//! [`Signal::Revoked`] tells every session of the user, on every instance, to end. A
//! transport asks [`Messenger::token_accepted`] whenever a token is presented (every HTTP
//! request, every WebSocket connect) and again on its heartbeat, which ends the sessions
//! whose signal was lost. That is a question on every request, so the stores answer
//! `revoked_at` from memory while that is safe (see each store's docs).
//!
//! Tokens carry their issue time in whole seconds (the JWT `iat`), revocations carry
//! milliseconds: a token is refused when its `iat` is at or before the revocation's second
//! (floored). A token issued in the same second as the revocation, before or after it, is
//! therefore refused too: only one issued in a later second is accepted. A token without
//! `iat` cannot be placed in time and is refused once the user has any revocation.

use super::{Messenger, check_user};
use crate::error::Result;
use crate::id::UserId;
use crate::model::Signal;
use crate::time::Timestamp;

impl Messenger {
    /// Whether a token of `user` issued at `issued_at` (unix seconds, the JWT `iat`; `None`
    /// when the token has none) is still accepted: `true` when the user has no revocation,
    /// or the token was issued in a later second than their latest one; `false` when it
    /// was issued at or before the revocation's second (floored), or has no `iat`.
    ///
    /// It says nothing of the token's signature or expiry, which the transport checks
    /// first. The nil UUID (the system sender) is no user: `Invalid`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> messaging_core::Result<()> {
    /// use std::sync::Arc;
    /// use messaging_core::memory::MemoryStore;
    /// use messaging_core::{Messenger, UserId};
    ///
    /// let messenger = Messenger::new(Arc::new(MemoryStore::new())).await?;
    /// let user = UserId::new();
    /// assert!(messenger.token_accepted(user, None).await?, "never revoked");
    /// let revoked = messenger.service().revoke(user).await?;
    /// let second = revoked.as_millis().div_euclid(1000);
    /// assert!(!messenger.token_accepted(user, Some(second)).await?);
    /// assert!(!messenger.token_accepted(user, None).await?);
    /// assert!(messenger.token_accepted(user, Some(second + 1)).await?);
    /// # Ok(()) }
    /// ```
    pub async fn token_accepted(&self, user: UserId, issued_at: Option<i64>) -> Result<bool> {
        check_user(user)?;
        let revoked = self.inner.store.revoked_at(user).await?;
        Ok(accepts(revoked, issued_at))
    }

    /// Stores a revocation of `user` at now (or keeps a later one already stored), then
    /// signals [`Signal::Revoked`] to the user's sessions; returns the time of this
    /// revocation.
    pub(super) async fn revoke_tokens(&self, user: UserId) -> Result<Timestamp> {
        check_user(user)?;
        let at = Timestamp::now();
        self.inner.store.revoke(user, at).await?;
        // Only after the revocation is durable: a session ended by the signal must find
        // its token refused when it reconnects.
        self.inner.fanout.signal(Signal::Revoked { user_id: user }, &[user]).await?;
        Ok(at)
    }
}

/// The rule of [`Messenger::token_accepted`], given the stored revocation.
fn accepts(revoked: Option<Timestamp>, issued_at: Option<i64>) -> bool {
    match revoked {
        None => true,
        Some(at) => issued_at.is_some_and(|iat| iat > at.as_millis().div_euclid(1000)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_of_the_revocations_second_or_earlier_are_refused() {
        let at = Timestamp::from_millis(1_700_000_000_999);
        assert!(accepts(None, None), "no revocation: every token");
        assert!(accepts(None, Some(0)));
        assert!(!accepts(Some(at), None), "no iat once revoked");
        assert!(!accepts(Some(at), Some(1_699_999_999)), "before");
        assert!(!accepts(Some(at), Some(1_700_000_000)), "the same second, floored");
        assert!(accepts(Some(at), Some(1_700_000_001)), "the next second");
    }

    #[test]
    fn seconds_are_floored_before_the_epoch_too() {
        // -1 ms is in second -1, not 0.
        let at = Timestamp::from_millis(-1);
        assert!(!accepts(Some(at), Some(-1)));
        assert!(accepts(Some(at), Some(0)));
    }
}
