//! A user of docs/protocol.md's HTTP API as the load generator drives it: one `reqwest`
//! client per user, holding its keep-alive connections to the server as an app's or a
//! browser's HTTP stack does, its token in every request.
//!
//! Why a client per user: users are separate devices, so their connections are never
//! shared; HTTP/1.1 has no pipelining, so a user with n requests in flight holds n
//! connections (a browser opens up to [`OPEN_LOOP_CONNECTIONS`] per host), each kept
//! alive and reused. Why reqwest (hyper underneath): the load generator measures the
//! server, not an HTTP client of its own making. Plain HTTP only: the target is a loopback
//! address.
//!
//! Written from docs/protocol.md alone (never the server's own types), as any client would be.

use std::future::Future;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Client, StatusCode, Url};
use serde_json::{Value, json};
use uuid::Uuid;

use super::Error;
use super::client::Target;

/// Requests one user keeps in flight at most in the open loop (when sends are due faster
/// than answers come, the next waits, its latency still counted from its scheduled time):
/// the connections per host a browser opens over HTTP/1.1.
pub const OPEN_LOOP_CONNECTIONS: usize = 6;

/// How long a new connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest part of an error answer's body kept in a report.
const ERROR_BODY_CHARS: usize = 300;

/// The server's base URL (`http://addr`).
#[must_use]
pub fn base(target: &Target) -> String {
    format!("http://{}", target.addr)
}

/// The HTTP client of `user`, the `n`th user of the run: its connections come from the
/// `n`th loopback source address (as its WebSocket connection would) and every request
/// carries its token.
///
/// # Errors
/// When the token cannot be minted or the client cannot be built.
pub fn client(target: &Target, user: Uuid, n: usize) -> Result<Client, Error> {
    let mut bearer = HeaderValue::from_str(&format!("Bearer {}", target.token(user)?))?;
    bearer.set_sensitive(true);
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, bearer);
    Ok(Client::builder()
        .default_headers(headers)
        .local_address(target.source(n))
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http1_only()
        // Loopback: a proxy from the environment must not carry the load.
        .no_proxy()
        .build()?)
}

/// Opens (or finds) the conversation with `peer`: `POST /v1/conversations`, its id.
///
/// # Errors
/// When the request fails or is refused.
pub async fn open(client: &Client, base: &str, peer: Uuid) -> Result<String, Error> {
    let response = client
        .post(format!("{base}/v1/conversations"))
        .header(CONTENT_TYPE, "application/json")
        .body(json!({ "peer": peer }).to_string())
        .send()
        .await
        .map_err(|error| format!("POST /v1/conversations failed: {}", chain(&error)))?;
    let status = response.status();
    let body = response.bytes().await?;
    if !status.is_success() {
        return Err(refusal("POST /v1/conversations", status, &body).into());
    }
    let data: Value = serde_json::from_slice(&body)?;
    data["conversation"]["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("POST /v1/conversations answered without an id: {data}").into())
}

/// Where one user's messages go: `POST /v1/conversations/{id}/messages`.
#[derive(Clone, Debug)]
pub struct Sender {
    client: Client,
    url: Url,
}

impl Sender {
    /// Sends to `conversation` with `client`.
    ///
    /// # Errors
    /// When the URL is not valid (a conversation id that is not a path segment).
    pub fn new(client: Client, base: &str, conversation: &str) -> Result<Self, Error> {
        let url = Url::parse(&format!("{base}/v1/conversations/{conversation}/messages"))?;
        Ok(Self { client, url })
    }

    /// Sends one message whose JSON body (`body`, `client_msg_id`) is `json`; resolves
    /// when its answer is read: `Ok` for a 2xx (the message is stored), else what went
    /// wrong (the transport's error, or the status and the error object).
    pub fn send(&self, json: String) -> impl Future<Output = Result<(), String>> + Send + 'static {
        let request = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(json)
            .send();
        async move {
            let response = request.await.map_err(|error| chain(&error))?;
            let status = response.status();
            let body = response.bytes().await.map_err(|error| chain(&error))?;
            if status.is_success() {
                Ok(())
            } else {
                Err(refusal("POST …/messages", status, &body))
            }
        }
    }
}

/// A refused request as a report's line: the status and the start of its body, with a
/// hint when it was the rate limit.
fn refusal(request: &str, status: StatusCode, body: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(body).chars().take(ERROR_BODY_CHARS).collect();
    let hint = if status == StatusCode::TOO_MANY_REQUESTS {
        ": start the server with raised limits for benchmarks (--ops-per-s 100000 \
         --ops-burst 100000)"
    } else {
        ""
    };
    format!("{request} answered {status} {text}{hint}")
}

/// An error with its sources (reqwest's own message names only the request).
#[must_use]
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_limited_answer_says_how_to_raise_the_limit() {
        let body = br#"{"error":{"code":"rate_limited","message":"slow down"}}"#;
        let line = refusal("POST …/messages", StatusCode::TOO_MANY_REQUESTS, body);
        assert!(line.starts_with("POST …/messages answered 429 Too Many Requests {\"error\""));
        assert!(line.contains("--ops-per-s"));
        let other = refusal("POST …/messages", StatusCode::SERVICE_UNAVAILABLE, b"{}");
        assert_eq!(other, "POST …/messages answered 503 Service Unavailable {}");
    }
}
