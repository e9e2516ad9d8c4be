//! The user routes over HTTP (docs/protocol.md "HTTP API"): each the WebSocket operation of
//! its name, with statuses by error code and the request rules (check order, 405 with
//! `Allow`, query values), driven by a real HTTP client over loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

mod support;

use messaging_core::UserId;
use messaging_ws_server::Transport;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Backend, Server, token};

struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    fn new(server: &Server) -> Self {
        Self { base: format!("http://{}", server.addr), client: reqwest::Client::new() }
    }

    /// `method path` as `user` (None: no token) with `body`; the status and JSON answer.
    async fn call(
        &self,
        user: Option<UserId>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(user) = user {
            request = request.bearer_auth(token(user));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let (status, headers) = (response.status(), response.headers().clone());
        let text = response.text().await.expect("body");
        let value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        (status, headers, value)
    }

    async fn ok(&self, user: UserId, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, _, value) = self.call(Some(user), method.clone(), path, body).await;
        assert!(status.is_success(), "{method} {path}: {status} {value}");
        value
    }

    async fn fails(
        &self,
        user: Option<UserId>,
        method: Method,
        path: &str,
        body: Option<Value>,
        status: u16,
        code: &str,
    ) {
        let (got, _, value) = self.call(user, method.clone(), path, body).await;
        assert_eq!(got.as_u16(), status, "{method} {path}: {value}");
        assert_eq!(value["error"]["code"], code, "{method} {path}: {value}");
        assert!(value["error"]["message"].is_string());
    }
}

async fn user_routes_answer_as_the_operations(backend: Backend) {
    let Some(server) = Server::start(backend, Transport::default()).await else { return };
    let api = Api::new(&server);
    let (alice, bob) = (UserId::new(), UserId::new());

    // send to a peer: 201 when stored, 200 for a recognised retry.
    let send = json!({"peer": bob.to_string(), "context": "listing:1", "body": "Still for sale?",
                      "client_msg_id": "h-1"});
    let (status, _, first) =
        api.call(Some(alice), Method::POST, "/v1/messages", Some(send.clone())).await;
    assert_eq!((status, first["created"].clone()), (StatusCode::CREATED, json!(true)), "{first}");
    let (status, _, retry) = api.call(Some(alice), Method::POST, "/v1/messages", Some(send)).await;
    assert_eq!((status, retry["created"].clone()), (StatusCode::OK, json!(false)));
    assert_eq!(retry["message"], first["message"]);
    let cid = first["message"]["conversation_id"].as_str().unwrap().to_owned();
    let mid = first["message"]["id"].as_str().unwrap().to_owned();

    // open: 200 for an existing conversation, 201 for a new one.
    let (status, _, opened) = api
        .call(
            Some(bob),
            Method::POST,
            "/v1/conversations",
            Some(json!({"peer": alice.to_string(), "context": "listing:1"})),
        )
        .await;
    assert_eq!((status, opened["conversation"]["id"].clone()), (StatusCode::OK, json!(cid)));
    let (status, _, _) = api
        .call(
            Some(bob),
            Method::POST,
            "/v1/conversations",
            Some(json!({"peer": alice.to_string()})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    // send into a conversation, history, list, one conversation, unread.
    let reply = api
        .ok(
            bob,
            Method::POST,
            &format!("/v1/conversations/{cid}/messages"),
            Some(json!({"body": "Yes", "reply_to_seq": 1})),
        )
        .await;
    assert_eq!(reply["message"]["reply_to_seq"], 1);
    let history = api
        .ok(alice, Method::GET, &format!("/v1/conversations/{cid}/messages?limit=1"), None)
        .await;
    assert_eq!(
        (history["messages"][0]["seq"].clone(), history["has_more"].clone()),
        (json!(2), json!(true))
    );
    let list =
        api.ok(bob, Method::GET, "/v1/conversations?context=listing:1&archived=false", None).await;
    assert_eq!(list["conversations"][0]["id"], cid.as_str());
    let one = api.ok(alice, Method::GET, &format!("/v1/conversations/{cid}"), None).await;
    assert_eq!(one["conversation"]["unread_count"], 1);
    assert_eq!(
        api.ok(alice, Method::GET, "/v1/unread", None).await,
        json!({"total":1,"conversations":1})
    );

    // markers, typing, mute (null unmutes), archive.
    let read = api
        .ok(
            alice,
            Method::POST,
            &format!("/v1/conversations/{cid}/read"),
            Some(json!({"up_to_seq": 2})),
        )
        .await;
    assert_eq!(read["read_seq"], 2);
    api.ok(
        alice,
        Method::POST,
        &format!("/v1/conversations/{cid}/delivered"),
        Some(json!({"up_to_seq": 2})),
    )
    .await;
    assert_eq!(
        api.ok(
            alice,
            Method::POST,
            &format!("/v1/conversations/{cid}/typing"),
            Some(json!({"state":"started"}))
        )
        .await,
        json!({})
    );
    let muted = api
        .ok(
            alice,
            Method::POST,
            &format!("/v1/conversations/{cid}/mute"),
            Some(json!({"until": null})),
        )
        .await;
    assert_eq!(muted["conversation"]["muted_until"], Value::Null);
    api.fails(
        Some(alice),
        Method::POST,
        &format!("/v1/conversations/{cid}/mute"),
        Some(json!({})),
        400,
        "bad_request",
    )
    .await;
    let archived = api
        .ok(
            alice,
            Method::POST,
            &format!("/v1/conversations/{cid}/archive"),
            Some(json!({"archived": true})),
        )
        .await;
    assert_eq!(archived["conversation"]["archived"], true);

    // edit, reactions (the emoji percent-encoded in the path), delete.
    let edited = api
        .ok(
            alice,
            Method::PATCH,
            &format!("/v1/messages/{mid}"),
            Some(json!({"body": "Still available?"})),
        )
        .await;
    assert_eq!(edited["message"]["body"], "Still available?");
    let reacted = api
        .ok(
            bob,
            Method::POST,
            &format!("/v1/messages/{mid}/reactions"),
            Some(json!({"emoji": "👍"})),
        )
        .await;
    assert_eq!(reacted["message"]["reactions"][0]["emoji"], "👍");
    let removed = api
        .ok(bob, Method::DELETE, &format!("/v1/messages/{mid}/reactions/%F0%9F%91%8D"), None)
        .await;
    assert_eq!(removed["message"]["reactions"], json!([]));
    let deleted = api.ok(alice, Method::DELETE, &format!("/v1/messages/{mid}"), None).await;
    assert_eq!(deleted["message"]["deleted"], true);

    // search, presence, blocks.
    let found = api.ok(bob, Method::GET, "/v1/search?query=yes", None).await;
    assert_eq!(found["messages"].as_array().unwrap().len(), 1);
    let presence = api.ok(bob, Method::GET, &format!("/v1/presence?user_ids={alice}"), None).await;
    assert_eq!(presence["presence"][0]["online"], false);
    assert_eq!(api.ok(alice, Method::PUT, &format!("/v1/blocks/{bob}"), None).await, json!({}));
    assert_eq!(
        api.ok(alice, Method::GET, "/v1/blocks", None).await,
        json!({"user_ids":[bob.to_string()],"has_more":false})
    );
    api.fails(
        Some(bob),
        Method::POST,
        &format!("/v1/conversations/{cid}/messages"),
        Some(json!({"body":"x"})),
        403,
        "forbidden",
    )
    .await;
    assert_eq!(api.ok(alice, Method::DELETE, &format!("/v1/blocks/{bob}"), None).await, json!({}));
    // HTTP operations count in the operation metrics, by name and outcome.
    let forbidden = server.metric(r#"messaging_ops_total{op="send",outcome="forbidden"}"#).await;
    assert!(forbidden >= 1.0, "{forbidden}");

    // sync outside a session: from a cursor up to what is dispatched now, in pages, every
    // event once (on PostgreSQL the feed follows commits closely: read until the last
    // event of bob's has arrived).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (names, cursor) = loop {
        let mut cursor = "v10".to_owned();
        let mut names = Vec::new();
        loop {
            let path = format!("/v1/sync?cursor={cursor}&limit=3");
            let page = api.ok(bob, Method::GET, &path, None).await;
            let events = page["events"].as_array().unwrap();
            names.extend(events.iter().map(|e| e["event"].as_str().unwrap().to_owned()));
            cursor = page["cursor"].as_str().unwrap().to_owned();
            if page["has_more"] == false {
                break;
            }
        }
        if names.last().map(String::as_str) == Some("message.deleted") {
            break (names, cursor);
        }
        assert!(std::time::Instant::now() < deadline, "sync never reached the delete: {names:?}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert_eq!(names.first().map(String::as_str), Some("conversation.created"));
    assert_eq!(names.iter().filter(|n| *n == "message.created").count(), 2, "{names:?}");
    assert!(!names.iter().any(|n| n == "member.updated"), "alice's settings are hers: {names:?}");
    let later = api.ok(bob, Method::GET, &format!("/v1/sync?cursor={cursor}"), None).await;
    assert_eq!(later["events"], json!([]));
    assert_eq!(later["cursor"], cursor.as_str());
    let none = api.ok(bob, Method::GET, "/v1/sync", None).await;
    assert_eq!((none["events"].clone(), none["cursor"].clone()), (json!([]), json!(cursor)));
    api.fails(Some(bob), Method::GET, "/v1/sync?cursor=v1ffffff", None, 400, "bad_request").await;
}

async fn request_rules_and_errors(backend: Backend) {
    let transport = Transport::default().max_frame_bytes(4096);
    let Some(server) = Server::start(backend, transport).await else { return };
    let api = Api::new(&server);
    let alice = UserId::new();
    // Unknown route → 404 (even without a token); known route, other method → 405 + Allow.
    api.fails(None, Method::GET, "/v1/nothing", None, 404, "not_found").await;
    let (status, headers, body) = api.call(None, Method::PUT, "/v1/conversations", None).await;
    assert_eq!((status.as_u16(), body["error"]["code"].clone()), (405, json!("bad_request")));
    let allow = headers.get("allow").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(allow.contains("GET") && allow.contains("POST"), "Allow: {allow}");
    // Authentication, then size, then shape.
    api.fails(None, Method::GET, "/v1/conversations", None, 401, "unauthorized").await;
    let big = json!({"peer": UserId::new().to_string(), "body": "x".repeat(5000)});
    api.fails(None, Method::POST, "/v1/messages", Some(big.clone()), 401, "unauthorized").await;
    api.fails(Some(alice), Method::POST, "/v1/messages", Some(big), 413, "too_large").await;
    let url = format!("http://{}/v1/messages", server.addr);
    let response = reqwest::Client::new()
        .post(&url)
        .bearer_auth(token(alice))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    api.fails(Some(alice), Method::GET, "/v1/conversations/not-a-uuid", None, 400, "bad_request")
        .await;
    api.fails(
        Some(alice),
        Method::GET,
        "/v1/conversations?limit=1&limit=2",
        None,
        400,
        "bad_request",
    )
    .await;
    api.fails(Some(alice), Method::GET, "/v1/conversations?limit=abc", None, 400, "bad_request")
        .await;
    api.fails(Some(alice), Method::GET, "/v1/conversations?archived=yes", None, 400, "bad_request")
        .await;
    api.fails(Some(alice), Method::GET, "/v1/conversations?limit=0", None, 400, "bad_request")
        .await;
    let empty = api.ok(alice, Method::GET, "/v1/conversations?before=&limit=", None).await;
    assert_eq!(empty, json!({"conversations":[],"next":null}), "empty values are absent");
    let unknown = messaging_core::ConversationId::new();
    api.fails(
        Some(alice),
        Method::GET,
        &format!("/v1/conversations/{unknown}"),
        None,
        404,
        "not_found",
    )
    .await;
    api.fails(
        Some(alice),
        Method::POST,
        "/v1/messages",
        Some(json!({"peer": alice.to_string(), "body": "me"})),
        400,
        "bad_request",
    )
    .await;
}

/// One bucket per user for HTTP requests: past the burst, 429 with `Retry-After` (whole
/// seconds, at least 1), after every other check; another user is unaffected; searches
/// also take from the search bucket the WebSocket sessions share.
async fn requests_beyond_the_rate_are_refused(backend: Backend) {
    let transport = Transport::default().rate_limit(1, 3).search_rate(1, 1);
    let Some(server) = Server::start(backend, transport).await else { return };
    let api = Api::new(&server);
    let (alice, bob) = (UserId::new(), UserId::new());
    for _ in 0..3 {
        api.ok(alice, Method::GET, "/v1/unread", None).await;
    }
    let (status, headers, body) = api.call(Some(alice), Method::GET, "/v1/unread", None).await;
    assert_eq!((status.as_u16(), body["error"]["code"].clone()), (429, json!("rate_limited")));
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    // A value the parser refuses is answered before the rate limit.
    api.fails(Some(alice), Method::GET, "/v1/conversations?limit=abc", None, 400, "bad_request")
        .await;
    api.ok(bob, Method::GET, "/v1/search?query=x", None).await;
    api.fails(Some(bob), Method::GET, "/v1/search?query=x", None, 429, "rate_limited").await;
    api.ok(bob, Method::GET, "/v1/unread", None).await;
}

/// CORS: an allowed origin's preflight is answered with the routes' methods and headers,
/// another origin's with 403 and no CORS header; answers to an allowed origin echo it
/// (with `Vary: Origin`, `Retry-After` exposed, no credentials); without origins
/// configured nothing is added.
async fn cors_for_configured_origins(backend: Backend) {
    let app = "https://app.example";
    let transport = Transport::default().cors_origins(vec![app.to_owned()]);
    let Some(server) = Server::start(backend, transport).await else { return };
    let client = reqwest::Client::new();
    let url = format!("http://{}/v1/conversations", server.addr);
    let preflight = |origin: &'static str| {
        client
            .request(Method::OPTIONS, &url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type")
            .send()
    };
    let allowed = preflight(app).await.unwrap();
    assert_eq!(allowed.status().as_u16(), 204);
    let h = allowed.headers();
    assert_eq!(h["access-control-allow-origin"], app);
    assert!(h["access-control-allow-methods"].to_str().unwrap().contains("POST"));
    let allow_headers = h["access-control-allow-headers"].to_str().unwrap().to_lowercase();
    for name in ["authorization", "content-type", "last-event-id"] {
        assert!(allow_headers.contains(name), "{allow_headers}");
    }
    assert!(!h.contains_key("access-control-allow-credentials"));
    let refused = preflight("https://evil.example").await.unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    assert!(!refused.headers().contains_key("access-control-allow-origin"));

    let user = UserId::new();
    let answer =
        client.get(&url).header("origin", app).bearer_auth(token(user)).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(answer.headers()["access-control-allow-origin"], app);
    assert_eq!(answer.headers()["vary"], "Origin");
    assert_eq!(answer.headers()["access-control-expose-headers"], "Retry-After");
    let other = client
        .get(&url)
        .header("origin", "https://evil.example")
        .bearer_auth(token(user))
        .send()
        .await
        .unwrap();
    assert!(!other.headers().contains_key("access-control-allow-origin"));

    let Some(plain) = Server::start(backend, Transport::default()).await else { return };
    let url = format!("http://{}/v1/conversations", plain.addr);
    let answer =
        client.get(&url).header("origin", app).bearer_auth(token(user)).send().await.unwrap();
    assert!(!answer.headers().contains_key("access-control-allow-origin"));
    let preflight = client
        .request(Method::OPTIONS, &url)
        .header("origin", app)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(!preflight.headers().contains_key("access-control-allow-origin"));
}

on_every_store!(
    cors_for_configured_origins,
    user_routes_answer_as_the_operations,
    request_rules_and_errors,
    requests_beyond_the_rate_are_refused
);
