//! An event stream of the soak that drops and resumes with `Last-Event-ID`, checking the
//! resume is exact.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;

use super::shared::{Dice, Shared};
use super::user::Seen;
use crate::loadgen::sse;

/// An event stream that drops and resumes: `message.created` seqs of its conversation
/// must run on without a gap or a repeat across every resume.
pub(super) async fn stream(
    client: reqwest::Client,
    base: String,
    shared: Arc<Shared>,
    resume_every: Duration,
    mut dice: Dice,
) -> u64 {
    let mut last_id: Option<String> = None;
    let mut seen = Seen::default();
    while Instant::now() < shared.stop {
        let (mut events, hello) = match sse::open_after(&client, &base, last_id.as_deref()).await {
            Ok(opened) => opened,
            Err(error) => {
                shared.counters.error(format!("an event stream: {error}"));
                return seen.last_seq;
            }
        };
        last_id.get_or_insert(hello.cursor);
        let drop_at = (Instant::now() + dice.wait(resume_every)).min(shared.stop);
        loop {
            match tokio::time::timeout_at(drop_at.into(), events.next()).await {
                Err(_) => break, // time to drop it
                Ok(Some(Ok(event))) => {
                    if event.event == "message.created" {
                        let data: Value = serde_json::from_str(&event.data).unwrap_or_default();
                        let seq = data["message"]["seq"].as_u64().unwrap_or(0);
                        if let Err(error) = seen.take(seq, false) {
                            shared.counters.error(format!("an event stream: {error}"));
                        }
                    }
                    if !event.id.is_empty() {
                        last_id = Some(event.id);
                    }
                }
                Ok(Some(Err(error))) => {
                    shared.counters.error(format!("an event stream failed: {error}"));
                    return seen.last_seq;
                }
                Ok(None) => break,
            }
        }
        if Instant::now() < shared.stop {
            shared.counters.sse_resumes.fetch_add(1, Ordering::Relaxed);
        }
    }
    seen.last_seq
}
