//! Ephemeral signals (typing, presence, revoked tokens) between instances.
//!
//! [`PgFanout`] is the in-process [`Hub`] plus NOTIFY: a signal is delivered to this
//! process's sessions at once and published on the schema's signal channel; every other
//! instance's listener delivers it to its own sessions. Signals are never stored, so one
//! lost with a dropped listener connection is simply not shown (typing expires anyway,
//! presence is read again with the `presence` operation, and a revoked user's sessions
//! end at their transport's next check of `revoked_at`, which goes to the database while
//! the listener is away; see `revocations.rs`).

use std::sync::Arc;

use async_trait::async_trait;
use messaging_core::fanout::{Fanout, Hub, Subscription};
use messaging_core::id::{ConversationId, UserId};
use messaging_core::model::{CommittedEvent, PresenceStatus, Signal, TypingState};
use messaging_core::store::FeedSink;
use messaging_core::time::Timestamp;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::Result;

/// Users per notification: NOTIFY payloads are limited to 8000 bytes.
const AUDIENCE_PER_NOTIFY: usize = 100;

/// The [`Fanout`] of a [`PgStore`](crate::PgStore): local delivery plus NOTIFY to the
/// other instances on the same database. [`PgStore::messenger`](crate::PgStore::messenger)
/// makes one for its messenger; a host that builds its own messenger makes one with
/// [`PgStore::fanout`](crate::PgStore::fanout) and gives it to
/// [`MessengerBuilder::fanout`](messaging_core::MessengerBuilder::fanout).
pub struct PgFanout {
    hub: Hub,
    pool: PgPool,
    channel: String,
    instance: Uuid,
}

impl std::fmt::Debug for PgFanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgFanout").field("instance", &self.instance).finish_non_exhaustive()
    }
}

impl PgFanout {
    pub(crate) fn new(hub: Hub, pool: PgPool, channel: String, instance: Uuid) -> Self {
        Self { hub, pool, channel, instance }
    }

    /// Publishes `signal` to the other instances, in notifications small enough for
    /// NOTIFY.
    async fn publish(&self, signal: &Signal, audience: &[UserId]) -> Result<()> {
        for chunk in audience.chunks(AUDIENCE_PER_NOTIFY) {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(&self.channel)
                .bind(encode(self.instance, signal, chunk))
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Delivers a signal another instance published (ignores this instance's own).
    pub(crate) fn receive(&self, payload: &str) {
        match decode(payload) {
            Some((instance, _, _)) if instance == self.instance => {}
            Some((_, signal, audience)) => self.hub.deliver_signal(signal, &audience),
            None => tracing::warn!(payload, "ignoring a malformed signal notification"),
        }
    }
}

impl FeedSink for PgFanout {
    fn start(&self, head: u64) {
        self.hub.start(head);
    }

    fn committed(&self, events: &[CommittedEvent]) {
        self.hub.committed(events);
    }
}

#[async_trait]
impl Fanout for PgFanout {
    fn subscribe(&self, user: UserId) -> (Subscription, u64) {
        self.hub.subscribe(user)
    }

    async fn signal(&self, signal: Signal, audience: &[UserId]) -> messaging_core::Result<()> {
        self.hub.deliver_signal(signal.clone(), audience);
        Ok(self.publish(&signal, audience).await?)
    }
}

/// Shared with the listener, which hands it every signal notification.
pub(crate) type SignalSinks = Arc<std::sync::Mutex<Vec<std::sync::Weak<PgFanout>>>>;

fn encode(instance: Uuid, signal: &Signal, audience: &[UserId]) -> String {
    let audience: Vec<String> = audience.iter().map(ToString::to_string).collect();
    let body = match signal {
        Signal::Typing { conversation_id, user_id, state, expires_in_ms } => json!({
            "t": "typing",
            "c": conversation_id.to_string(),
            "u": user_id.to_string(),
            "s": matches!(state, TypingState::Started),
            "e": expires_in_ms,
        }),
        Signal::Presence(p) => json!({
            "t": "presence",
            "u": p.user_id.to_string(),
            "o": p.online,
            "l": p.last_seen.map(Timestamp::as_millis),
        }),
        Signal::Revoked { user_id } => json!({ "t": "revoked", "u": user_id.to_string() }),
        _ => json!({ "t": "unknown" }),
    };
    json!({ "i": instance.to_string(), "a": audience, "b": body }).to_string()
}

fn decode(payload: &str) -> Option<(Uuid, Signal, Vec<UserId>)> {
    let value: Value = serde_json::from_str(payload).ok()?;
    let instance = Uuid::try_parse(value.get("i")?.as_str()?).ok()?;
    let audience = value
        .get("a")?
        .as_array()?
        .iter()
        .map(|u| u.as_str().and_then(|s| s.parse::<UserId>().ok()))
        .collect::<Option<Vec<_>>>()?;
    let body = value.get("b")?;
    let user: UserId = body.get("u")?.as_str()?.parse().ok()?;
    let signal = match body.get("t")?.as_str()? {
        "typing" => Signal::Typing {
            conversation_id: body.get("c")?.as_str()?.parse::<ConversationId>().ok()?,
            user_id: user,
            state: if body.get("s")?.as_bool()? {
                TypingState::Started
            } else {
                TypingState::Stopped
            },
            expires_in_ms: body.get("e")?.as_u64()?,
        },
        "presence" => Signal::Presence(PresenceStatus {
            user_id: user,
            online: body.get("o")?.as_bool()?,
            last_seen: body.get("l")?.as_i64().map(Timestamp::from_millis),
        }),
        "revoked" => Signal::Revoked { user_id: user },
        _ => return None,
    };
    Some((instance, signal, audience))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_round_trip_through_the_payload() {
        let instance = Uuid::now_v7();
        let audience = vec![UserId::new(), UserId::new()];
        for signal in [
            Signal::Typing {
                conversation_id: ConversationId::new(),
                user_id: UserId::new(),
                state: TypingState::Stopped,
                expires_in_ms: 6000,
            },
            Signal::Presence(PresenceStatus {
                user_id: UserId::new(),
                online: false,
                last_seen: Some(Timestamp::now()),
            }),
            Signal::Revoked { user_id: UserId::new() },
        ] {
            let payload = encode(instance, &signal, &audience);
            assert!(payload.len() < 8000);
            assert_eq!(decode(&payload), Some((instance, signal, audience.clone())));
        }
        assert_eq!(decode("{\"i\":1}"), None);
    }
}
