//! The delivery loop: the next batch of the consumer, the wanted events posted (signed
//! again on every attempt), retried with backoff until a 2xx answer (1 s doubling to 60 s,
//! without end), then the consumer advanced past the batch (its position stored with the
//! lease's renewal, every 5 s, and at shutdown). The consumer's lease is renewed
//! while a batch is retried, so no other instance takes over a deliverer that is only
//! waiting for its receiver; an instance that lost the lease drops its batch, and whoever
//! holds the lease resumes from the stored position (at least once).

use std::sync::Arc;
use std::time::Duration;

use messaging_core::{
    ConsumerOptions, ConsumerStart, Error, LogEntry, Messenger, Timestamp, UserId,
};
use tokio::sync::watch;

use super::{CONSUMER, WebhookSettings, payload, signature};
use crate::metrics::Metrics;

/// How long one attempt may take (docs/protocol.md).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// The first retry's wait, and the longest.
const BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(60));
/// The consumer's lease: another instance takes over within it (plus its claim interval)
/// when this one dies; renewed at least this often while waiting.
const LEASE: Duration = Duration::from_secs(20);
const RENEW_EVERY: Duration = Duration::from_secs(5);

/// What became of a batch.
enum Outcome {
    Delivered,
    /// Another instance holds the consumer now.
    LeaseLost,
    Stopping,
}

/// Delivers until `shutdown` turns `true`, then gives the consumer up.
pub(crate) async fn run(
    messenger: Messenger,
    settings: WebhookSettings,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let client = match reqwest::Client::builder().timeout(ATTEMPT_TIMEOUT).build() {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "webhooks off: no HTTP client");
            return;
        }
    };
    let options =
        ConsumerOptions::default().batch(settings.batch).lease(LEASE).start(ConsumerStart::Head);
    let mut consumer = match messenger.consumer(CONSUMER, options) {
        Ok(consumer) => consumer,
        Err(error) => {
            tracing::error!(%error, "webhooks off: no consumer");
            return;
        }
    };
    tracing::info!(url = %settings.url, "webhooks on");
    let deliverer = Deliverer { client, settings, metrics, messenger };
    loop {
        let batch = tokio::select! {
            batch = consumer.next_batch() => batch,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let batch = match batch {
            Ok(batch) => batch,
            Err(error) => {
                tracing::warn!(%error, "reading the log for webhooks failed; retrying");
                if pause(Duration::from_secs(1), &mut shutdown).await {
                    break;
                }
                continue;
            }
        };
        let Some(last) = batch.last().map(|entry| entry.logged.position) else { continue };
        deliverer.pending(consumer.head().saturating_sub(consumer.position()));
        let wanted: Vec<&LogEntry> =
            batch.iter().filter(|e| deliverer.settings.wants(e.logged.event.name())).collect();
        if !wanted.is_empty() {
            match deliverer.deliver(&wanted, &mut consumer, &mut shutdown).await {
                Outcome::Delivered => {}
                Outcome::LeaseLost => continue,
                Outcome::Stopping => break,
            }
        }
        // Stored with the lease's next renewal (every 5 s), not now: a commit per batch
        // would wait behind every queued send of a busy store. A crash before it delivers
        // those batches again (at least once).
        match consumer.advance(last) {
            Ok(()) => deliverer.pending(consumer.head().saturating_sub(last)),
            Err(Error::Conflict(_)) => tracing::info!("another instance delivers webhooks now"),
            Err(error) => tracing::warn!(%error, "recording the webhook position failed"),
        }
    }
    if let Err(error) = consumer.release().await {
        tracing::debug!(%error, "releasing the webhook consumer failed");
    }
}

struct Deliverer {
    client: reqwest::Client,
    settings: WebhookSettings,
    metrics: Arc<Metrics>,
    messenger: Messenger,
}

impl Deliverer {
    fn pending(&self, events: u64) {
        self.metrics.webhook_pending.set(i64::try_from(events).unwrap_or(i64::MAX));
    }

    /// Posts `entries` until a 2xx answer.
    async fn deliver(
        &self,
        entries: &[&LogEntry],
        consumer: &mut messaging_core::Consumer,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Outcome {
        let body = loop {
            match self.body(entries).await {
                Ok(body) => break body,
                Err(error) => {
                    tracing::warn!(%error, "building a webhook batch failed; retrying");
                    if pause(BACKOFF.0, shutdown).await {
                        return Outcome::Stopping;
                    }
                }
            }
        };
        let mut backoff = BACKOFF.0;
        loop {
            match self.attempt(&body).await {
                Ok(()) => {
                    self.metrics.webhook_delivered.inc_by(entries.len() as u64);
                    return Outcome::Delivered;
                }
                Err(why) => {
                    self.metrics.webhook_failed.inc();
                    tracing::warn!(url = %self.settings.url, %why, retry_in = ?backoff, "webhook attempt failed");
                }
            }
            // Wait, renewing the lease: the batch stays this instance's while it retries.
            let mut left = backoff;
            while !left.is_zero() {
                let step = left.min(RENEW_EVERY);
                if pause(step, shutdown).await {
                    return Outcome::Stopping;
                }
                left -= step;
                match consumer.renew().await {
                    Ok(()) => {}
                    Err(Error::Conflict(_)) => return Outcome::LeaseLost,
                    Err(error) => tracing::warn!(%error, "renewing the webhook lease failed"),
                }
            }
            backoff = (backoff * 2).min(BACKOFF.1);
        }
    }

    /// The batch's body, with who of its recipients is online now.
    async fn body(&self, entries: &[&LogEntry]) -> Result<Vec<u8>, String> {
        let users = payload::recipients(entries);
        let mut online: Vec<UserId> = Vec::new();
        for chunk in users.chunks(256) {
            let flags = self.messenger.service().online(chunk).await.map_err(|e| e.to_string())?;
            online.extend(chunk.iter().zip(flags).filter(|(_, on)| *on).map(|(user, _)| *user));
        }
        online.sort_unstable();
        payload::body(entries, &online, Timestamp::now()).map_err(|e| e.to_string())
    }

    /// One signed POST; `Err` says why it did not count as delivered.
    async fn attempt(&self, body: &[u8]) -> Result<(), String> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let response = self
            .client
            .post(self.settings.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(signature::HEADER, signature::sign(&self.settings.secret, now, body))
            .body(body.to_vec())
            .send()
            .await
            .map_err(|error| error.to_string())?;
        let status = response.status();
        // Read (and drop) the answer so the connection can be used again.
        let _ = response.bytes().await;
        if status.is_success() { Ok(()) } else { Err(format!("answered {status}")) }
    }
}

/// Sleeps `time`; `true` when the server is stopping meanwhile.
async fn pause(time: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    let stopped = tokio::select! {
        () = tokio::time::sleep(time) => false,
        _ = shutdown.wait_for(|stop| *stop) => true,
    };
    stopped || *shutdown.borrow()
}
