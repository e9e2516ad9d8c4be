//! A user's event stream (docs/protocol.md "Server-sent events") as the load generator
//! reads it: `GET /v1/events` with the user's client, its body parsed by
//! `eventsource-stream` (the framing is never parsed here), the `hello` read before the
//! stream is handed over, so a load starts only once every stream is a live session.

use std::pin::Pin;

use eventsource_stream::{Event, Eventsource as _};
use futures::{Stream, StreamExt};
use reqwest::Client;
use reqwest::header::ACCEPT;
use serde_json::Value;

use super::Error;
use super::client::Hello;
use super::http_client::chain;

/// The events of one stream after its `hello`; an item is an error when the connection
/// fails or the framing is not SSE.
pub type Events = Pin<Box<dyn Stream<Item = Result<Event, String>> + Send>>;

/// Opens the event stream of `client`'s user and reads its `hello`.
///
/// # Errors
/// When the request fails or is refused, or the stream does not start with `hello`.
pub async fn open(client: &Client, base: &str) -> Result<(Events, Hello), Error> {
    open_after(client, base, None).await
}

/// Opens the event stream of `client`'s user resuming after `last_event_id` (sent as
/// `Last-Event-ID`, as `EventSource` does on a reconnect), and reads its `hello`.
///
/// # Errors
/// When the request fails or is refused, or the stream does not start with `hello`.
pub async fn open_after(
    client: &Client,
    base: &str,
    last_event_id: Option<&str>,
) -> Result<(Events, Hello), Error> {
    let mut request = client.get(format!("{base}/v1/events")).header(ACCEPT, "text/event-stream");
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id);
    }
    let response = request
        .send()
        .await
        .map_err(|error| format!("GET /v1/events failed: {}", chain(&error)))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(format!("GET /v1/events answered {status} {body}").into());
    }
    let mut events: Events = Box::pin(
        response.bytes_stream().eventsource().map(|item| item.map_err(|error| chain(&error))),
    );
    let hello = match events.next().await {
        Some(Ok(event)) if event.event == "hello" => event,
        Some(Ok(event)) => return Err(format!("expected hello, got {event:?}").into()),
        Some(Err(error)) => return Err(format!("the event stream failed: {error}").into()),
        None => return Err("the event stream ended before its hello".into()),
    };
    let data: Value = serde_json::from_str(&hello.data)?;
    if data["cursor"].as_str() != Some(hello.id.as_str()) {
        return Err(format!("hello's id {:?} is not its cursor: {data}", hello.id).into());
    }
    Ok((events, Hello { limits: data["limits"].clone(), cursor: hello.id }))
}

/// Opens one stream per client, `concurrency` at a time, in the clients' order.
///
/// # Errors
/// When any stream fails to open (with how many did).
pub async fn open_all(
    clients: &[Client],
    base: &str,
    concurrency: usize,
) -> Result<Vec<(Events, Hello)>, Error> {
    let opened: Vec<Result<(Events, Hello), Error>> = futures::stream::iter(clients)
        .map(|client| open(client, base))
        .buffered(concurrency.max(1))
        .collect()
        .await;
    let failed = opened.iter().filter(|result| result.is_err()).count();
    if failed > 0 {
        let first = opened.into_iter().find_map(Result::err).map(|e| e.to_string());
        return Err(format!(
            "{failed} of {} event streams failed: {}",
            clients.len(),
            first.unwrap_or_default()
        )
        .into());
    }
    opened.into_iter().collect()
}
