//! Sessions end when the service API revokes their user's tokens: at once when
//! `Signal::Revoked` arrives, and, for a signal lost on the way (a store listener that
//! reconnected meanwhile), at the next heartbeat, which asks whether a token issued when
//! the session opened would still be accepted.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use messaging_core::model::Signal;
use messaging_core::{Messenger, Push, Timestamp, UserId};

/// The WebSocket close code of a revoked session (docs/protocol.md).
pub(crate) const CLOSE_CODE: u16 = 4001;

/// A heartbeat's question, while it is being answered.
pub(crate) type Check = Pin<Box<dyn Future<Output = bool> + Send>>;

/// Whether `push` tells its session that the user's tokens were revoked.
pub(crate) fn is_revocation(push: &Push) -> bool {
    matches!(push, Push::Signal(signal) if matches!(signal.get(), Signal::Revoked { .. }))
}

/// What a session needs to ask again on its heartbeat.
#[derive(Clone)]
pub(crate) struct Revocations {
    messenger: Messenger,
    user: UserId,
    /// When the session opened (Unix seconds): a revocation at or after it ends it.
    opened_s: i64,
    bound: Duration,
}

impl Revocations {
    /// For a session of `user` opening now; `bound` is the answer bound.
    pub(crate) fn new(messenger: Messenger, user: UserId, bound: Duration) -> Self {
        let opened_s = Timestamp::now().as_millis().div_euclid(1000);
        Self { messenger, user, opened_s, bound }
    }

    /// Whether the session may go on: `false` once a revocation at or after its opening
    /// second is stored. A store that cannot answer within the bound keeps it going (the
    /// next heartbeat asks again).
    pub(crate) fn check(&self) -> Check {
        let this = self.clone();
        Box::pin(async move {
            let asked = this.messenger.token_accepted(this.user, Some(this.opened_s));
            match tokio::time::timeout(this.bound, asked).await {
                Ok(Ok(accepted)) => accepted,
                Ok(Err(error)) => {
                    tracing::debug!(%error, "a session's revocation check failed");
                    true
                }
                Err(_) => true,
            }
        })
    }
}
