//! The routes mounted in a host's own axum app (`Routes::router` nested under `/chat`) with
//! the host's own authentication: a session cookie the host issued, so `Origin` is checked
//! on `/v1/ws` and on state-changing routes. Served by `axum::serve`, driven by real HTTP,
//! WebSocket and SSE clients over loopback, over SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use messaging_core::UserId;
use messaging_ws_server::auth::AuthError;
use messaging_ws_server::backend::{self, StoreSettings};
use messaging_ws_server::{Authenticate, Routes};
use serde_json::{Value, json};
use support::{Backend, Client, WAIT, fresh_database};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The host's sessions: cookie value → user.
#[derive(Clone, Default)]
struct CookieSessions(Arc<Mutex<HashMap<String, UserId>>>);

impl CookieSessions {
    fn log_in(&self, user: UserId) -> String {
        let cookie = format!("sid-{}", uuid::Uuid::now_v7().simple());
        self.0.lock().unwrap().insert(cookie.clone(), user);
        cookie
    }
}

#[async_trait::async_trait]
impl Authenticate for CookieSessions {
    async fn authenticate(&self, parts: &http::request::Parts) -> Result<UserId, AuthError> {
        let cookies = parts.headers.get(http::header::COOKIE).ok_or(AuthError::Missing)?;
        let sid = cookies
            .to_str()
            .map_err(|_| AuthError::Missing)?
            .split(';')
            .find_map(|pair| pair.trim().strip_prefix("sid="))
            .ok_or(AuthError::Missing)?;
        self.0.lock().unwrap().get(sid).copied().ok_or(AuthError::Missing)
    }

    fn ambient_credentials(&self) -> bool {
        true
    }
}

struct Host {
    addr: SocketAddr,
    chat: Routes,
    sessions: CookieSessions,
    http: reqwest::Client,
    served: tokio::task::JoinHandle<()>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: Option<tempfile::TempDir>,
}

impl Host {
    async fn start(backend: Backend) -> Option<Self> {
        let (database, dir) = fresh_database(backend).await?;
        let opened =
            backend::open(&database, &StoreSettings::new(messaging_core::Limits::default()))
                .await
                .expect("open");
        let sessions = CookieSessions::default();
        let chat = Routes::builder(opened.messenger.clone(), sessions.clone()).build().unwrap();
        let app = axum::Router::new()
            .route("/", axum::routing::get(|| async { "the host's home page" }))
            .nest("/chat", chat.router())
            .nest("/ops", chat.operations_router());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let ending = chat.clone();
        let served = tokio::spawn(async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                    ending.shutdown();
                })
                .await
                .unwrap();
            opened.close().await;
        });
        let http = reqwest::Client::new();
        Some(Self { addr, chat, sessions, http, served, stop: Some(stop), _dir: dir })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `method /chat{path}` with `cookie` and maybe an `Origin`: status and JSON body.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        cookie: Option<&str>,
        origin: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, self.url(&format!("/chat{path}")));
        if let Some(cookie) = cookie {
            request = request.header("cookie", format!("theme=dark; sid={cookie}"));
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// A WebSocket handshake on `/chat/v1/ws` with `cookie` and maybe an `Origin`.
    async fn websocket(&self, cookie: &str, origin: Option<&str>) -> Result<Client, u16> {
        let url = format!("ws://{}/chat/v1/ws", self.addr);
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert("cookie", format!("sid={cookie}").parse().unwrap());
        if let Some(origin) = origin {
            request.headers_mut().insert("origin", origin.parse().unwrap());
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((ws, _)) => Ok(Client::from_ws(ws).await),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(other) => panic!("handshake failed without a status: {other}"),
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(WAIT, self.chat.closed()).await.expect("sessions end");
        tokio::time::timeout(WAIT, self.served).await.expect("the host stops").unwrap();
    }
}

async fn the_host_app_serves_the_chat_with_its_own_cookie_sessions(backend: Backend) {
    let Some(host) = Host::start(backend).await else { return };
    let (seller, buyer) = (UserId::new(), UserId::new());
    let (seller_sid, buyer_sid) = (host.sessions.log_in(seller), host.sessions.log_in(buyer));

    // The host's own routes stay its own; the chat's answer under /chat.
    let home = host.http.get(host.url("/")).send().await.unwrap().text().await.unwrap();
    assert_eq!(home, "the host's home page");
    let (status, body) = host.call(reqwest::Method::GET, "/v1/nope", None, None, None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")));
    let (status, _) = host.call(reqwest::Method::GET, "/v1/conversations", None, None, None).await;
    assert_eq!(status, 401, "no cookie, no user");
    // The operator's routes are where the host put them, not under /chat.
    assert_eq!(host.http.get(host.url("/ops/healthz")).send().await.unwrap().status(), 200);
    let (status, _) = host.call(reqwest::Method::GET, "/metrics", None, None, None).await;
    assert_eq!(status, 404);

    // The seller listens on a WebSocket and an event stream, both with the cookie.
    let mut seller_ws = host.websocket(&seller_sid, None).await.expect("the seller's socket");
    let events = host
        .http
        .get(host.url("/chat/v1/events"))
        .header("cookie", format!("sid={seller_sid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    let mut events = eventsource_stream::EventStream::new(events.bytes_stream());
    let hello = tokio::time::timeout(WAIT, events.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(hello.event, "hello");

    // The buyer opens and sends over REST, from the host's own page.
    let same_origin = format!("http://{}", host.addr);
    let (status, conversation) = host
        .call(
            reqwest::Method::POST,
            "/v1/conversations",
            Some(&buyer_sid),
            Some(&same_origin),
            Some(json!({"peer": seller.to_string(), "context": "listing:7"})),
        )
        .await;
    assert_eq!(status, 201, "{conversation}");
    let id = conversation["conversation"]["id"].as_str().unwrap().to_owned();
    let (status, sent) = host
        .call(
            reqwest::Method::POST,
            &format!("/v1/conversations/{id}/messages"),
            Some(&buyer_sid),
            None,
            Some(json!({"body": "is it still for sale?", "client_msg_id": "m-1"})),
        )
        .await;
    assert_eq!(status, 201, "{sent}");
    seller_ws.expect_event("conversation.created").await;
    let created = seller_ws.expect_event("message.created").await;
    assert_eq!(created["data"]["message"]["body"], "is it still for sale?");
    loop {
        let event = tokio::time::timeout(WAIT, events.next()).await.unwrap().unwrap().unwrap();
        if event.event == "message.created" {
            let data: Value = serde_json::from_str(&event.data).unwrap();
            assert_eq!(data["message"]["body"], "is it still for sale?");
            break;
        }
    }

    // Another site's page: refused on the socket and on writes, reads still answer (a
    // browser keeps their bodies from that page without CORS headers).
    let evil = "https://evil.example";
    assert_eq!(host.websocket(&buyer_sid, Some(evil)).await.err(), Some(403));
    let (status, body) = host
        .call(
            reqwest::Method::POST,
            &format!("/v1/conversations/{id}/messages"),
            Some(&buyer_sid),
            Some(evil),
            Some(json!({"body": "forged"})),
        )
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")));
    let (status, history) = host
        .call(
            reqwest::Method::GET,
            &format!("/v1/conversations/{id}/messages"),
            Some(&buyer_sid),
            Some(evil),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(history["messages"].as_array().unwrap().len(), 1, "the forged send was not stored");
    assert!(host.websocket(&buyer_sid, Some(&same_origin)).await.is_ok(), "the host's own page");

    // The host's shutdown ends the chat's sessions too.
    assert!(host.chat.sessions() >= 2);
    host.stop().await;
    assert_eq!(
        seller_ws.closed().await,
        Some(tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Away)
    );
}

on_every_store!(the_host_app_serves_the_chat_with_its_own_cookie_sessions);
