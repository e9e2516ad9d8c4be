//! The real server on `127.0.0.1:0` and real WebSocket clients, for the end-to-end tests.
//!
//! Frames are built from `json!` literals written from docs/protocol.md and read as plain JSON
//! values: never the server's own wire types, so a contract bug cannot hide behind a
//! shared struct.
//!
//! Every case runs twice: over a SQLite file in a temp dir and over a fresh PostgreSQL
//! database cloned from the template `scripts/pg.sh` creates (`MESSAGING_PG_URL`,
//! `MESSAGING_PG_TEMPLATE`). Without those the PostgreSQL runs are skipped with one line,
//! unless `MESSAGING_PG_REQUIRED=1` (the README test command and CI), which fails them.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    dead_code,
    unreachable_pub,
    reason = "test support"
)]

pub mod process;

use std::net::SocketAddr;
use std::sync::{Arc, Once};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use messaging_core::UserId;
use messaging_ws_server::backend::{self, Database, StoreSettings};
use messaging_ws_server::http::service_keys::ServiceKeys;
use messaging_ws_server::{AuthSettings, Config, Transport, Verifier};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The HS256 secret of every test server.
pub const SECRET: &[u8] = b"end-to-end test secret";

/// How every test server verifies tokens (HS256 with [`SECRET`]).
pub fn auth_settings() -> AuthSettings {
    AuthSettings { secret: Some(SECRET.to_vec()), ..AuthSettings::default() }
}

/// The service key every test server accepts.
pub const SERVICE_KEY: &str = "test-service-key-0123456789abcdef0123";

/// How long a test waits for a frame it expects.
pub const WAIT: Duration = Duration::from_secs(10);

/// Which store a case runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

static SKIP_NOTE: Once = Once::new();

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    pub database: Database,
    /// The server's messenger, as the embedding host holds it (its service handle).
    pub messenger: messaging_core::Messenger,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    _dir: Option<tempfile::TempDir>,
}

/// A fresh database of `backend` (and the directory that holds it), or `None` when
/// PostgreSQL is not configured.
pub async fn fresh_database(backend: Backend) -> Option<(Database, Option<tempfile::TempDir>)> {
    Some(match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            (Database::Sqlite(dir.path().join("messaging.db")), Some(dir))
        }
        Backend::Postgres => (Database::Postgres(pg_database().await?), None),
    })
}

impl Server {
    /// Starts a server on `backend` with `transport`, or `None` when PostgreSQL is not
    /// configured (skipped).
    pub async fn start(backend: Backend, transport: Transport) -> Option<Self> {
        Self::start_with(backend, transport, messaging_core::Limits::default()).await
    }

    /// Same, with the messenger's limits.
    pub async fn start_with(
        backend: Backend,
        transport: Transport,
        limits: messaging_core::Limits,
    ) -> Option<Self> {
        let auth = auth_settings();
        Self::start_with_auth(backend, transport, limits, auth).await
    }

    /// Same, verifying tokens with `auth`.
    pub async fn start_with_auth(
        backend: Backend,
        transport: Transport,
        limits: messaging_core::Limits,
        auth: AuthSettings,
    ) -> Option<Self> {
        let (database, dir) = fresh_database(backend).await?;
        let keys = ServiceKeys::load(None, Some(SERVICE_KEY)).expect("the test service key");
        Some(Self::start_on(database, dir, transport, limits, &auth, Arc::new(keys)).await)
    }

    /// Starts a server without service keys (the service API does not exist).
    pub async fn start_without_service_keys(backend: Backend) -> Option<Self> {
        let (database, dir) = fresh_database(backend).await?;
        let auth = auth_settings();
        let limits = messaging_core::Limits::default();
        let none = Arc::new(ServiceKeys::default());
        Some(Self::start_on(database, dir, Transport::default(), limits, &auth, none).await)
    }

    /// Starts a server on a fresh database of `backend` posting webhooks with `webhooks`.
    pub async fn start_with_webhooks(
        backend: Backend,
        webhooks: messaging_ws_server::webhooks::WebhookSettings,
    ) -> Option<Self> {
        let (database, dir) = fresh_database(backend).await?;
        let keys = ServiceKeys::load(None, Some(SERVICE_KEY)).expect("the test service key");
        let limits = messaging_core::Limits::default();
        Some(
            Self::start_on_with(
                database,
                dir,
                Transport::default(),
                limits,
                &auth_settings(),
                Arc::new(keys),
                Some(webhooks),
            )
            .await,
        )
    }

    /// Starts a server on an existing database.
    pub async fn start_on(
        database: Database,
        dir: Option<tempfile::TempDir>,
        transport: Transport,
        limits: messaging_core::Limits,
        auth: &AuthSettings,
        service_keys: Arc<ServiceKeys>,
    ) -> Self {
        Self::start_on_with(database, dir, transport, limits, auth, service_keys, None).await
    }

    /// Same, posting webhooks with `webhooks`.
    pub async fn start_on_with(
        database: Database,
        dir: Option<tempfile::TempDir>,
        transport: Transport,
        limits: messaging_core::Limits,
        auth: &AuthSettings,
        service_keys: Arc<ServiceKeys>,
        webhooks: Option<messaging_ws_server::webhooks::WebhookSettings>,
    ) -> Self {
        let settings = StoreSettings::new(limits);
        let opened = backend::open(&database, &settings).await.expect("open the store");
        let verifier = Verifier::new(auth).expect("verifier");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (stop, stopped) = oneshot::channel::<()>();
        let messenger = opened.messenger.clone();
        let config = Config {
            messenger: opened.messenger.clone(),
            service_keys,
            verifier,
            transport,
            store_label: opened.store_label.clone(),
            webhooks,
        };
        let task = tokio::spawn(async move {
            let result = messaging_ws_server::run(listener, config, async {
                let _ = stopped.await;
            })
            .await;
            opened.close().await;
            result
        });
        Self { addr, database, messenger, stop: Some(stop), task: Some(task), _dir: dir }
    }

    /// Asks the server to shut down and waits until `run` returned.
    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("the server stops within 20 s")
                .expect("the server task")
                .expect("run returns Ok");
        }
    }

    /// `ws://…/v1/ws`.
    pub fn url(&self) -> String {
        format!("ws://{}/v1/ws", self.addr)
    }

    /// Connects `user` with a valid token in the `Authorization` header.
    pub async fn connect(&self, user: UserId) -> Client {
        Client::connect(&self.url(), &token(user)).await
    }

    /// A plain HTTP GET on the server's port: status and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        http_get(self.addr, path).await
    }

    /// A client whose socket has a tiny receive buffer (so the server's writes block as
    /// soon as it stops reading), after its hello.
    pub async fn connect_slow_reader(&self, user: UserId) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("receive buffer");
        let stream = socket.connect(self.addr).await.expect("connect");
        let mut request = self.url().into_client_request().expect("request");
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {}", token(user)).parse().expect("header"));
        let stream = MaybeTlsStream::Plain(stream);
        let (ws, _) = tokio_tungstenite::client_async(request, stream).await.expect("upgrade");
        Client::from_ws(ws).await
    }

    /// The value of one series of `/metrics` (0 when absent).
    pub async fn metric(&self, series: &str) -> f64 {
        let (_, text) = self.get("/metrics").await;
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// Waits (within [`WAIT`]) until `series` has `value`.
    pub async fn await_metric(&self, series: &str, value: f64) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let now = self.metric(series).await;
            if now == value {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{series} is {now}, not {value}, after {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Holds the store's write lock from outside for `held`, starting now (SQLite: an
/// exclusive transaction, which WAL readers do not wait for; PostgreSQL: the messages
/// table locked).
pub async fn lock_the_store(database: &Database, held: Duration) {
    match database {
        Database::Sqlite(path) => {
            let connection = rusqlite::Connection::open(path).unwrap();
            connection.execute_batch("BEGIN EXCLUSIVE").unwrap();
            std::thread::spawn(move || {
                std::thread::sleep(held);
                connection.execute_batch("COMMIT").unwrap();
            });
        }
        Database::Postgres(url) => {
            use sqlx::Connection;
            let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
            for statement in ["BEGIN", "LOCK TABLE messaging.messages IN ACCESS EXCLUSIVE MODE"] {
                sqlx::query(statement).execute(&mut connection).await.unwrap();
            }
            tokio::spawn(async move {
                tokio::time::sleep(held).await;
                sqlx::query("COMMIT").execute(&mut connection).await.unwrap();
                connection.close().await.unwrap();
            });
        }
    }
}

/// A token for `user`, valid for an hour.
pub fn token(user: UserId) -> String {
    messaging_ws_server::auth::mint(
        SECRET,
        user,
        Duration::from_secs(3600),
        &AuthSettings::default(),
    )
    .expect("mint")
}

/// A connected client that has read its `hello`.
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub hello: Value,
    next_id: u64,
    /// Pushes read while waiting for a reply, in arrival order.
    pending: std::collections::VecDeque<Value>,
}

impl Client {
    pub async fn connect(url: &str, token: &str) -> Self {
        let mut request = url.into_client_request().expect("request");
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().expect("header"));
        let (ws, _) = tokio_tungstenite::connect_async(request).await.expect("connect");
        Self::from_ws(ws).await
    }

    /// A client on an already upgraded socket; reads the `hello`.
    pub async fn from_ws(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Self {
        let mut client = Self { ws, hello: Value::Null, next_id: 0, pending: Default::default() };
        let hello = client.frame().await;
        assert_eq!(hello["type"], "hello", "the first frame is hello: {hello}");
        client.hello = hello;
        client
    }

    /// The session's `hello.cursor`.
    pub fn cursor(&self) -> String {
        self.hello["cursor"].as_str().expect("hello.cursor").to_owned()
    }

    pub fn user(&self) -> String {
        self.hello["user_id"].as_str().expect("hello.user_id").to_owned()
    }

    /// Sends a raw text frame.
    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.ws.send(Message::text(text.into())).await.expect("send");
    }

    /// The next frame (JSON), within [`WAIT`].
    pub async fn frame(&mut self) -> Value {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    return serde_json::from_str(&text).expect("a JSON frame");
                }
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
                Ok(other) => panic!("expected a text frame, got {other:?}"),
                Err(_) => panic!("no frame within {WAIT:?}"),
            }
        }
    }

    /// Sends `request` with a fresh integer id (unless it has one) and returns the reply;
    /// pushes that arrive meanwhile are kept for [`Client::event`].
    pub async fn request(&mut self, mut request: Value) -> Value {
        if request.get("id").is_none() {
            self.next_id += 1;
            request["id"] = json!(self.next_id);
        }
        let id = request["id"].clone();
        self.send_text(request.to_string()).await;
        self.reply_to(&id).await
    }

    /// Waits for the reply with `id`, keeping pushes.
    pub async fn reply_to(&mut self, id: &Value) -> Value {
        loop {
            let frame = self.frame().await;
            if frame["type"] == "reply" && &frame["id"] == id {
                return frame;
            }
            assert_eq!(frame["type"], "event", "unexpected frame {frame}");
            self.pending.push_back(frame);
        }
    }

    /// `request`, asserting success; its `data`.
    pub async fn ok(&mut self, request: Value) -> Value {
        let reply = self.request(request.clone()).await;
        assert_eq!(reply["ok"], true, "{request} failed: {reply}");
        reply["data"].clone()
    }

    /// `request`, asserting it fails with `code`.
    pub async fn fails(&mut self, request: Value, code: &str) {
        let reply = self.request(request.clone()).await;
        assert_eq!(reply["ok"], false, "{request} should fail with {code}: {reply}");
        assert_eq!(reply["error"]["code"], code, "{request}: {reply}");
        assert!(reply["error"]["message"].is_string(), "{reply}");
    }

    /// The next push (kept or new), within [`WAIT`].
    pub async fn event(&mut self) -> Value {
        if let Some(event) = self.pending.pop_front() {
            return event;
        }
        let frame = self.frame().await;
        assert_eq!(frame["type"], "event", "expected a push, got {frame}");
        frame
    }

    /// The next push, which must be `name`.
    pub async fn expect_event(&mut self, name: &str) -> Value {
        let event = self.event().await;
        assert_eq!(event["event"], name, "expected {name}, got {event}");
        event
    }

    /// Asserts nothing arrives within `quiet` (pongs aside), after a `ping` round trip
    /// that flushes whatever was already on its way.
    pub async fn expect_nothing(&mut self, quiet: Duration) {
        self.ok(json!({"op": "ping"})).await;
        assert!(self.pending.is_empty(), "unexpected pushes: {:?}", self.pending);
        match tokio::time::timeout(quiet, self.ws.next()).await {
            Err(_) => {}
            Ok(Some(Ok(Message::Ping(_)))) => {}
            Ok(other) => panic!("expected nothing, got {other:?}"),
        }
    }

    /// Reads until the server closes; the close code (None: no close frame).
    pub async fn closed(&mut self) -> Option<CloseCode> {
        // One deadline for the whole wait: pings keep coming from a server that never closes.
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| f.code),
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed))) | Ok(None) => {
                    return None;
                }
                Ok(Some(Err(_))) => return None,
                Err(_) => panic!("the server did not close within {WAIT:?}"),
            }
        }
    }
}

/// Tries the WebSocket handshake; the HTTP status when the server refused it.
pub async fn handshake_status(request: http::Request<()>) -> Result<(), u16> {
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => Ok(()),
        Err(WsError::Http(response)) => Err(response.status().as_u16()),
        Err(other) => panic!("handshake failed without an HTTP status: {other}"),
    }
}

/// A plain HTTP/1.1 GET through hyper's client: status and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use http_body_util::BodyExt;
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(connection);
    let request = http::Request::get(path)
        .header("host", addr.to_string())
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A fresh PostgreSQL database cloned from the template; its URL. `None` (skip) without a
/// server, unless `MESSAGING_PG_REQUIRED=1`.
pub async fn pg_database() -> Option<String> {
    let (Ok(admin), Ok(template)) =
        (std::env::var("MESSAGING_PG_URL"), std::env::var("MESSAGING_PG_TEMPLATE"))
    else {
        if std::env::var("MESSAGING_PG_REQUIRED").is_ok_and(|v| v == "1") {
            panic!("MESSAGING_PG_REQUIRED=1 but MESSAGING_PG_URL/MESSAGING_PG_TEMPLATE are unset");
        }
        SKIP_NOTE.call_once(|| {
            eprintln!("PostgreSQL runs skipped: no MESSAGING_PG_URL (run ./scripts/test.sh)");
        });
        return None;
    };
    use sqlx::{Connection, Executor};
    let name = format!("ws_{}", uuid::Uuid::now_v7().simple());
    let mut conn = sqlx::PgConnection::connect(&admin).await.expect("admin connection");
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name} TEMPLATE {template}")))
        .await
        .expect("clone the template");
    conn.close().await.expect("close the admin connection");
    match admin.rsplit_once('/') {
        Some((base, _)) => Some(format!("{base}/{name}")),
        None => panic!("MESSAGING_PG_URL has no database part"),
    }
}

/// Declares a case (`async fn name(backend: Backend)`) as one test per store.
#[macro_export]
macro_rules! on_every_store {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($crate::support::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($crate::support::Backend::Postgres).await;
                }
            )*
        }
    };
}
