//! A docs/protocol.md client as the load generator needs it: tokens minted from the server's
//! secret, connections from a chosen loopback source address, frames as JSON values.
//!
//! Written from docs/protocol.md alone (never the server's own types), as any client would be.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{WebSocketStream, client_async_with_config};
use uuid::Uuid;

use super::Error;

/// A client connection.
pub type Socket = WebSocketStream<TcpStream>;

/// How long a token minted by the load generator stays valid.
const TOKEN_TTL: Duration = Duration::from_secs(6 * 3600);

/// The server under test and how to authenticate to it.
#[derive(Clone)]
pub struct Target {
    /// The server's address (loopback).
    pub addr: SocketAddr,
    secret: jsonwebtoken::EncodingKey,
    /// Loopback source addresses to spread connections over (127.0.0.1 ..).
    pub sources: u8,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("addr", &self.addr).field("sources", &self.sources).finish()
    }
}

/// The `hello` frame's fields the load generator uses.
#[derive(Clone, Debug)]
pub struct Hello {
    /// The `limits` object as sent.
    pub limits: Value,
    /// The connection's cursor.
    pub cursor: String,
}

#[derive(serde::Serialize)]
struct Claims {
    sub: String,
    exp: u64,
}

impl Target {
    /// A target signing HS256 tokens with `secret`.
    #[must_use]
    pub fn new(addr: SocketAddr, secret: &[u8], sources: u8) -> Self {
        Self {
            addr,
            secret: jsonwebtoken::EncodingKey::from_secret(secret),
            sources: sources.max(1),
        }
    }

    /// An HS256 token for `user`.
    ///
    /// # Errors
    /// When signing fails.
    pub fn token(&self, user: Uuid) -> Result<String, Error> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?;
        let claims = Claims { sub: user.to_string(), exp: (now + TOKEN_TTL).as_secs() };
        Ok(jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &self.secret)?)
    }

    /// The source address of the `n`th connection: 127.0.0.1, 127.0.0.2, … in turn, so
    /// that many connections do not run out of ephemeral ports of one address.
    #[must_use]
    pub fn source(&self, n: usize) -> IpAddr {
        let last = u8::try_from(n % usize::from(self.sources)).unwrap_or(0).saturating_add(1);
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
    }

    /// Connects as `user` from the `n`th source address and reads the `hello`.
    ///
    /// # Errors
    /// When the connection, the upgrade or the hello fails.
    pub async fn connect(&self, user: Uuid, n: usize) -> Result<(Socket, Hello), Error> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(self.source(n), 0))?;
        let stream = socket.connect(self.addr).await?;
        stream.set_nodelay(true)?;
        let url = format!("ws://{}/v1/ws?access_token={}", self.addr, self.token(user)?);
        let request = url.into_client_request()?;
        // Small buffers: the load generator holds as many connections as the server.
        let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(4096);
        let (mut socket, _) = client_async_with_config(request, stream, Some(config)).await?;
        let hello = next_json(&mut socket).await?;
        if hello["type"] != "hello" {
            return Err(format!("expected hello, got {hello}").into());
        }
        let cursor = hello["cursor"].as_str().unwrap_or_default().to_owned();
        Ok((socket, Hello { limits: hello["limits"].clone(), cursor }))
    }
}

/// Sends one JSON frame.
///
/// # Errors
/// When the socket fails.
pub async fn send_json(socket: &mut Socket, frame: &Value) -> Result<(), Error> {
    socket.send(Message::text(frame.to_string())).await?;
    Ok(())
}

/// The next text frame as JSON (pings are answered by the socket itself).
///
/// # Errors
/// When the socket closes or fails, or a frame is not JSON.
pub async fn next_json(socket: &mut Socket) -> Result<Value, Error> {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(&text)?),
            Some(Ok(Message::Close(frame))) => {
                return Err(format!("closed by the server: {frame:?}").into());
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => return Err(error.into()),
            None => return Err("the server closed the connection".into()),
        }
    }
}

/// Sends a request and returns its reply's `data`, skipping pushes that arrive before it.
///
/// # Errors
/// When the socket fails or the reply is an error.
pub async fn call(socket: &mut Socket, request: Value) -> Result<Value, Error> {
    let id = request["id"].clone();
    send_json(socket, &request).await?;
    loop {
        let frame = next_json(socket).await?;
        if frame["type"] == "reply" && frame["id"] == id {
            return if frame["ok"] == true {
                Ok(frame["data"].clone())
            } else if frame["error"]["code"] == "rate_limited" {
                Err(format!(
                    "{} was rate limited: start the server with raised limits for benchmarks \
                     (--ops-per-s 100000 --ops-burst 100000)",
                    request["op"]
                )
                .into())
            } else {
                Err(format!("{} failed: {}", request["op"], frame["error"]).into())
            };
        }
    }
}
