//! Webhooks (docs/protocol.md "Webhooks"): the server posts every durable event, or those
//! named, to the host in log order, in batches, signed, at least once, from the position
//! stored in the database, one deliverer at a time across instances. All of that rests on
//! the library's durable consumer (`Messenger::consumer`, named [`CONSUMER`]); this module
//! adds the HTTP side: the body (`payload`), the signature (`signature`) and the delivery
//! loop with its retries (`deliver`).

mod deliver;
mod payload;
mod signature;

use std::collections::BTreeSet;
use std::fmt;

/// Starts the deliverer on the current Tokio runtime; `alive` is held until it stops.
pub(crate) fn start(
    messenger: messaging_core::Messenger,
    settings: WebhookSettings,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    alive: tokio_util::task::task_tracker::TaskTrackerToken,
) -> Result<(), String> {
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| "webhooks need a Tokio runtime".to_owned())?;
    runtime.spawn(async move {
        deliver::run(messenger, settings, metrics, shutdown).await;
        drop(alive);
    });
    Ok(())
}

/// The name of the webhook deliverer's durable consumer (its stored position).
pub const CONSUMER: &str = "webhooks";

/// The durable events a webhook can carry (ephemeral ones never are).
pub const EVENTS: [&str; 10] = [
    "conversation.created",
    "conversation.updated",
    "message.created",
    "message.edited",
    "message.deleted",
    "receipt.read",
    "receipt.delivered",
    "reaction.added",
    "reaction.removed",
    "member.updated",
];

/// Events per batch at most, by default and at most.
const BATCH: (usize, usize) = (100, 1_000);

/// Why [`WebhookSettings`] refused a setting.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebhookError {
    /// The URL is not `http://` or `https://`.
    #[error("the webhook URL must be http:// or https://: {0}")]
    Url(String),
    /// The secret is shorter than 16 bytes.
    #[error("the webhook secret must be at least 16 bytes")]
    ShortSecret,
    /// An event name no webhook carries.
    #[error("{0:?} is not a durable event (one of: {events})", events = EVENTS.join(", "))]
    UnknownEvent(String),
    /// A batch size out of range.
    #[error("the webhook batch must be 1 to {max} events", max = BATCH.1)]
    Batch,
}

/// Where and how the server posts durable events.
///
/// ```
/// use messaging_ws_server::webhooks::WebhookSettings;
///
/// let settings = WebhookSettings::new("https://host.example/chat-events", b"a secret of 16+ bytes")?
///     .events(["message.created", "message.deleted"])?
///     .batch(50)?;
/// assert!(settings.wants("message.created") && !settings.wants("receipt.read"));
/// # Ok::<(), messaging_ws_server::webhooks::WebhookError>(())
/// ```
#[derive(Clone)]
pub struct WebhookSettings {
    url: url::Url,
    secret: Vec<u8>,
    /// `None`: every durable event.
    events: Option<BTreeSet<&'static str>>,
    batch: usize,
}

impl fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("url", &self.url.as_str())
            .field("events", &self.events)
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

impl WebhookSettings {
    /// Posts every durable event to `url`, signed with `secret`, in batches of at most 100.
    pub fn new(url: &str, secret: &[u8]) -> Result<Self, WebhookError> {
        let parsed = url::Url::parse(url).map_err(|e| WebhookError::Url(format!("{url}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err(WebhookError::Url(url.to_owned()));
        }
        if secret.len() < 16 {
            return Err(WebhookError::ShortSecret);
        }
        Ok(Self { url: parsed, secret: secret.to_vec(), events: None, batch: BATCH.0 })
    }

    /// Only these events (names as [`EVENTS`] writes them).
    pub fn events<S: AsRef<str>>(
        mut self,
        names: impl IntoIterator<Item = S>,
    ) -> Result<Self, WebhookError> {
        let mut events = BTreeSet::new();
        for name in names {
            let name = name.as_ref().trim();
            let known = EVENTS
                .iter()
                .find(|known| **known == name)
                .ok_or_else(|| WebhookError::UnknownEvent(name.to_owned()))?;
            events.insert(*known);
        }
        self.events = Some(events);
        Ok(self)
    }

    /// At most `batch` events per request (1 to 1,000).
    pub fn batch(mut self, batch: usize) -> Result<Self, WebhookError> {
        if !(1..=BATCH.1).contains(&batch) {
            return Err(WebhookError::Batch);
        }
        self.batch = batch;
        Ok(self)
    }

    /// Whether the event named `name` is posted.
    #[must_use]
    pub fn wants(&self, name: &str) -> bool {
        self.events.as_ref().is_none_or(|events| events.contains(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_refuse_what_cannot_work() {
        let secret = b"sixteen bytes ok";
        assert!(matches!(
            WebhookSettings::new("ftp://x.example/", secret),
            Err(WebhookError::Url(_))
        ));
        assert!(matches!(WebhookSettings::new("not a url", secret), Err(WebhookError::Url(_))));
        assert_eq!(
            WebhookSettings::new("http://x.example/", b"short").err(),
            Some(WebhookError::ShortSecret)
        );
        let ok = WebhookSettings::new("http://127.0.0.1:9/hook", secret).unwrap();
        assert!(ok.wants("message.created"));
        assert_eq!(
            ok.clone().events(["typing"]).err(),
            Some(WebhookError::UnknownEvent("typing".into()))
        );
        assert_eq!(ok.clone().batch(0).err(), Some(WebhookError::Batch));
        assert_eq!(ok.clone().batch(1_001).err(), Some(WebhookError::Batch));
        let some = ok.events([" message.created"]).unwrap();
        assert!(some.wants("message.created") && !some.wants("message.edited"));
    }
}
