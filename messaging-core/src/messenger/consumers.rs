//! Durable consumers of the whole log: how the messenger hands one out.
//!
//! A consumer reads the store directly, not through the messenger's rules: it sees every
//! event, for everyone, which only the host's trusted code may (the server's webhook
//! deliverer, a push or indexing worker). It lives beside the messenger because that is
//! what a host holds: the store behind it, and the same checks on what it is asked.

use super::Messenger;
use crate::consumer::{Consumer, ConsumerOptions, validate_name};
use crate::error::Result;

impl Messenger {
    /// A durable consumer named `name` of the whole event log (see [`Consumer`]): its
    /// position and lease are stored under that name, so the same name on another
    /// process, or after a restart, goes on where it stood. `name`: 1 to 64 bytes of ASCII
    /// letters, digits, `_`, `.` and `-`; `options.batch` 1 to 1,000; `options.lease` 1 s
    /// to 24 h; otherwise `Invalid`. Nothing is claimed until the first
    /// [`Consumer::next_batch`].
    ///
    /// Hand it only to trusted code: it reads every user's events.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> messaging_core::Result<()> {
    /// use std::sync::Arc;
    /// use messaging_core::memory::MemoryStore;
    /// use messaging_core::{ConsumerOptions, ConsumerStart, Messenger, SendMessage, UserId};
    ///
    /// let messenger = Messenger::new(Arc::new(MemoryStore::new())).await?;
    /// let (alice, bob) = (UserId::new(), UserId::new());
    /// messenger.send(alice, SendMessage::to_peer(bob, None, "hi")).await?;
    ///
    /// let options = ConsumerOptions::default().start(ConsumerStart::Beginning);
    /// let mut consumer = messenger.consumer("audit", options)?;
    /// let batch = consumer.next_batch().await?;
    /// let names: Vec<&str> = batch.iter().map(|e| e.logged.event.name()).collect();
    /// assert_eq!(names, ["conversation.created", "message.created"]);
    /// assert_eq!(batch[1].actor, Some(alice));
    /// consumer.commit(batch[1].logged.position).await?;
    /// assert_eq!(consumer.position(), consumer.head());
    /// consumer.release().await?;
    ///
    /// assert!(messenger.consumer("not a name", ConsumerOptions::default()).is_err());
    /// # Ok(()) }
    /// ```
    pub fn consumer(&self, name: &str, options: ConsumerOptions) -> Result<Consumer> {
        validate_name(name)?;
        options.validate()?;
        Ok(Consumer::new(self.inner.store.clone(), name, options))
    }
}
