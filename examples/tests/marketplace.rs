//! The marketplace example end to end, over real HTTP on loopback: a seller lists a bike,
//! two buyers contact them, the seller answers and reads the inquiries, then marks the
//! bike sold, and everyone sees the notice live on the chat's event stream (mounted under
//! `/chat` with the app's cookie) and in their history. Requests are written from the
//! app's routes and docs/protocol.md, as a browser client would send them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::collections::HashSet;
use std::pin::Pin;
use std::time::Duration;

use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use marketplace::{Marketplace, StartError};
use reqwest::Method;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);
const SOLD: &str = "This item has been sold";

/// The marketplace served on 127.0.0.1:0 over a fresh data directory.
struct Market {
    base: String,
    http: reqwest::Client,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<Result<(), StartError>>,
    _dir: tempfile::TempDir,
}

impl Market {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let market = Marketplace::open(dir.path()).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(market.serve(listener, async {
            let _ = stopped.await;
        }));
        Self { base, http: reqwest::Client::new(), stop, served, _dir: dir }
    }

    /// `POST /login {name}`: the user and the session cookie (`name=value`) to send.
    async fn login(&self, name: &str) -> (Value, String) {
        let response = self
            .http
            .post(format!("{}/login", self.base))
            .json(&json!({ "name": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let set_cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"));
        let cookie = set_cookie.split(';').next().unwrap().to_owned();
        let body: Value = response.json().await.unwrap();
        (body["user"].clone(), cookie)
    }

    /// `method path` with maybe a cookie, an `Origin` and a JSON body: status and body.
    async fn call(
        &self,
        method: Method,
        path: &str,
        cookie: Option<&str>,
        origin: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(cookie) = cookie {
            request = request.header("cookie", format!("theme=dark; {cookie}"));
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

    /// A write from the app's own page (same origin), as its front end sends it.
    async fn post(&self, path: &str, cookie: &str, body: Value) -> (u16, Value) {
        let origin = self.base.clone();
        self.call(Method::POST, path, Some(cookie), Some(&origin), Some(body)).await
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> (u16, Value) {
        self.call(Method::GET, path, cookie, None, None).await
    }

    /// `GET /chat/v1/events` with `cookie`, past its `hello`.
    async fn events(&self, cookie: &str) -> Events {
        let response = self
            .http
            .get(format!("{}/chat/v1/events", self.base))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let mut events = Events(Box::pin(response.bytes_stream().eventsource()));
        let hello = events.next().await.expect("hello");
        assert_eq!(hello.event, "hello");
        events
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let served = tokio::time::timeout(WAIT, self.served).await;
        served.expect("the server stops with event streams open").unwrap().unwrap();
    }
}

type SseItem =
    Result<eventsource_stream::Event, eventsource_stream::EventStreamError<reqwest::Error>>;

/// An event stream being read.
struct Events(Pin<Box<dyn Stream<Item = SseItem> + Send>>);

impl Events {
    /// The next event; `None` when the stream ended.
    async fn next(&mut self) -> Option<eventsource_stream::Event> {
        let next = tokio::time::timeout(WAIT, self.0.next()).await.expect("an event in time");
        next.map(|event| event.unwrap())
    }

    /// The next durable event (those have an id; presence and typing do not): its name
    /// and data.
    async fn durable(&mut self) -> (String, Value) {
        loop {
            let event = self.next().await.expect("the stream is open");
            if !event.id.is_empty() {
                return (event.event, serde_json::from_str(&event.data).unwrap());
            }
        }
    }

    /// The next durable event, which must be `name`: its data.
    async fn expect(&mut self, name: &str) -> Value {
        let (event, data) = self.durable().await;
        assert_eq!(event, name, "{data}");
        data
    }
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_else(|| panic!("not an error: {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buyers_contact_a_seller_who_answers_and_sells() {
    let market = Market::start().await;
    let (seller, sam) = market.login("sam").await;
    let (buyer1, ana) = market.login("ana").await;
    let (buyer2, ben) = market.login("ben").await;
    let (again, _) = market.login("  SAM ").await;
    assert_eq!(again["id"], seller["id"], "names are trimmed and compared without case");
    let (status, body) = market.post("/login", &sam, json!({"name": ""})).await;
    assert_eq!((status, code(&body)), (400, "bad_request"));

    // The seller lists a bike; bad listings are refused with the error object.
    let (status, created) = market
        .post("/listings", &sam, json!({"title": "Road bike, 56 cm", "price_cents": 25000}))
        .await;
    assert_eq!(status, 201, "{created}");
    let listing = &created["listing"];
    assert_eq!(
        (listing["status"].as_str(), listing["seller_id"].clone()),
        (Some("open"), seller["id"].clone())
    );
    let id = listing["id"].as_i64().unwrap();
    for bad in [
        json!({"title": "", "price_cents": 100}),
        json!({"title": "x".repeat(101), "price_cents": 100}),
        json!({"title": "bike", "price_cents": -1}),
        json!({"title": "bike", "price_cents": 12.5}),
        json!({"title": "bike", "price_cents": "100"}),
        json!({"title": "bike"}),
        json!(["bike", 100]),
    ] {
        let (status, body) = market.post("/listings", &sam, bad.clone()).await;
        assert_eq!((status, code(&body)), (400, "bad_request"), "{bad}");
    }
    let new = json!({"title": "bike", "price_cents": 1});
    let (status, body) = market.call(Method::POST, "/listings", None, None, Some(new)).await;
    assert_eq!((status, code(&body)), (401, "unauthorized"));
    let (status, body) = market.get(&format!("/listings/{id}"), None).await;
    assert_eq!((status, body["listing"]["title"].as_str()), (200, Some("Road bike, 56 cm")));
    let (status, body) = market.get("/listings/abc", None).await;
    assert_eq!((status, code(&body)), (400, "bad_request"));
    let (status, body) = market.get("/listings/999", None).await;
    assert_eq!((status, code(&body)), (404, "not_found"));

    // The seller and buyer 1 listen on the chat's event stream, with the app's cookie.
    let mut sams_stream = market.events(&sam).await;
    let mut anas_stream = market.events(&ana).await;

    // Buyer 1 contacts the seller: the conversation about the listing, and the message.
    let contact = format!("/listings/{id}/contact");
    let (status, contacted) =
        market.post(&contact, &ana, json!({"message": "Is it still for sale?"})).await;
    assert_eq!(status, 201, "{contacted}");
    assert_eq!(contacted["opened"], true);
    let context = format!("listing:{id}");
    let conversation1 = contacted["conversation"]["id"].as_str().unwrap().to_owned();
    assert_eq!(contacted["conversation"]["context"], context.as_str());
    assert_eq!(contacted["conversation"]["metadata"]["listing_id"], id);
    assert_eq!(contacted["message"]["sender_id"], buyer1["id"]);
    let opened = sams_stream.expect("conversation.created").await;
    assert_eq!(opened["conversation"]["context"], context.as_str());
    assert_eq!(opened["conversation"]["metadata"]["title"], "Road bike, 56 cm");
    let first = sams_stream.expect("message.created").await;
    assert_eq!(first["message"]["body"], "Is it still for sale?");
    assert_eq!(first["message"]["conversation_id"], conversation1.as_str());

    // The seller replies through the chat's own routes; buyer 1 sees it live.
    let (status, reply) = market
        .post(
            &format!("/chat/v1/conversations/{conversation1}/messages"),
            &sam,
            json!({"body": "Yes! Come by on Saturday.", "client_msg_id": "r-1"}),
        )
        .await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(
        anas_stream.expect("conversation.created").await["conversation"]["id"],
        conversation1.as_str()
    );
    assert_eq!(
        anas_stream.expect("message.created").await["message"]["body"],
        "Is it still for sale?"
    );
    let seen = anas_stream.expect("message.created").await;
    assert_eq!(
        (seen["message"]["body"].as_str(), &seen["message"]["sender_id"]),
        (Some("Yes! Come by on Saturday."), &seller["id"])
    );
    assert_eq!(
        sams_stream.expect("message.created").await["message"]["body"],
        "Yes! Come by on Saturday."
    );

    // Buyer 1 writes again from the listing: the same conversation, a new message.
    let (status, again) =
        market.post(&contact, &ana, json!({"message": "Great, see you then"})).await;
    assert_eq!((status, again["opened"].as_bool()), (201, Some(false)));
    assert_eq!(again["conversation"]["id"], conversation1.as_str());
    sams_stream.expect("message.created").await;
    anas_stream.expect("message.created").await;

    // Buyer 2 contacts too.
    let (status, contacted) =
        market.post(&contact, &ben, json!({"message": "Would you take 200?"})).await;
    assert_eq!(status, 201, "{contacted}");
    let conversation2 = contacted["conversation"]["id"].as_str().unwrap().to_owned();
    assert_eq!(contacted["message"]["sender_id"], buyer2["id"]);
    assert_ne!(conversation1, conversation2);
    assert_eq!(
        sams_stream.expect("conversation.created").await["conversation"]["id"],
        conversation2.as_str()
    );
    assert_eq!(
        sams_stream.expect("message.created").await["message"]["body"],
        "Would you take 200?"
    );

    // Messages that are not: refused before anything is opened.
    for bad in [json!({"message": ""}), json!({"message": "   "}), json!({}), json!({"message": 5})]
    {
        let (status, body) = market.post(&contact, &ben, bad.clone()).await;
        assert_eq!((status, code(&body)), (400, "bad_request"), "{bad}");
    }
    let (status, body) = market.post(&contact, &ben, json!({"message": "x".repeat(9000)})).await;
    assert_eq!((status, code(&body)), (413, "too_large"));

    // The seller's inbox of the listing: both conversations, as the seller sees them.
    let inquiries = format!("/listings/{id}/inquiries");
    let (status, inbox) = market.get(&inquiries, Some(&sam)).await;
    assert_eq!(status, 200, "{inbox}");
    let conversations = inbox["conversations"].as_array().unwrap();
    let ids: HashSet<&str> = conversations.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, HashSet::from([conversation1.as_str(), conversation2.as_str()]));
    assert_eq!(conversations[0]["id"], conversation2.as_str(), "newest activity first");
    assert_eq!(conversations[0]["last_message"]["body"], "Would you take 200?");
    assert_eq!(conversations[0]["unread_count"], 1);
    assert_eq!(conversations[1]["last_message"]["body"], "Great, see you then");
    assert!(conversations[1]["unread_count"].as_u64().unwrap() >= 1);
    let (status, page) = market.get(&format!("{inquiries}?limit=1"), Some(&sam)).await;
    assert_eq!((status, page["conversations"].as_array().unwrap().len()), (200, 1));
    let next = page["next"].as_str().unwrap().to_owned();
    let (_, page) = market.get(&format!("{inquiries}?limit=1&before={next}"), Some(&sam)).await;
    assert_eq!(page["conversations"][0]["id"], conversation1.as_str());
    let (status, body) = market.get(&inquiries, Some(&ana)).await;
    assert_eq!((status, code(&body)), (403, "forbidden"), "only the seller");
    let (status, body) = market.get(&inquiries, None).await;
    assert_eq!((status, code(&body)), (401, "unauthorized"));

    // Not allowed: contacting yourself, a listing conversation opened past the app,
    // another site's page writing in the chat or the app with the user's cookie.
    let (status, body) = market.post(&contact, &sam, json!({"message": "me?"})).await;
    assert_eq!((status, code(&body)), (400, "bad_request"));
    let (status, body) = market
        .post("/chat/v1/conversations", &ben, json!({"peer": buyer1["id"], "context": context}))
        .await;
    assert_eq!((status, code(&body)), (403, "forbidden"), "listing contexts are the app's");
    let (status, body) = market
        .post(
            "/chat/v1/messages",
            &ben,
            json!({"peer": seller["id"], "context": "listing:999", "body": "hi"}),
        )
        .await;
    assert_eq!((status, code(&body)), (403, "forbidden"));
    let evil = Some("https://evil.example");
    let history = format!("/chat/v1/conversations/{conversation1}/messages");
    let (status, body) = market
        .call(Method::POST, &history, Some(&ana), evil, Some(json!({"body": "forged"})))
        .await;
    assert_eq!((status, code(&body)), (403, "forbidden"));
    let (status, body) = market
        .call(Method::POST, &contact, Some(&ana), evil, Some(json!({"message": "forged"})))
        .await;
    assert_eq!((status, code(&body)), (403, "forbidden"));

    // Only the seller sells; then every conversation about the listing gets the notice.
    let sold = format!("/listings/{id}/sold");
    let (status, body) = market.post(&sold, &ben, json!({})).await;
    assert_eq!((status, code(&body)), (403, "forbidden"));
    let (status, body) = market.post(&sold, &sam, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["listing"]["status"].as_str(), body["notified"].as_u64()),
        (Some("sold"), Some(2))
    );
    let mut told = HashSet::new();
    for _ in 0..2 {
        let notice = sams_stream.expect("message.created").await;
        let message = &notice["message"];
        assert_eq!(
            (message["kind"].as_str(), message["body"].as_str()),
            (Some("system"), Some(SOLD))
        );
        assert!(message["sender_id"].is_null());
        told.insert(message["conversation_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(told, HashSet::from([conversation1.clone(), conversation2.clone()]));
    let notice = anas_stream.expect("message.created").await;
    assert_eq!(
        (notice["message"]["kind"].as_str(), notice["message"]["conversation_id"].as_str()),
        (Some("system"), Some(conversation1.as_str()))
    );
    for (buyer, conversation) in [(&ana, &conversation1), (&ben, &conversation2)] {
        let (status, page) = market
            .get(&format!("/chat/v1/conversations/{conversation}/messages"), Some(buyer))
            .await;
        assert_eq!(status, 200, "{page}");
        let messages = page["messages"].as_array().unwrap();
        let last = messages.last().unwrap();
        assert_eq!((last["kind"].as_str(), last["body"].as_str()), (Some("system"), Some(SOLD)));
        assert!(last["sender_id"].is_null());
        assert!(messages.iter().all(|m| m["body"] != "forged"), "the forged send was not stored");
    }

    // Selling again tells nobody twice; contacting a sold listing is refused.
    let (status, body) = market.post(&sold, &sam, json!({})).await;
    assert_eq!((status, body["notified"].as_u64()), (200, Some(0)));
    let (status, body) = market.post(&contact, &ben, json!({"message": "still there?"})).await;
    assert_eq!((status, code(&body)), (409, "conflict"));
    let (_, page) = market.get("/listings?status=sold", None).await;
    assert_eq!(page["listings"][0]["id"], id);
    let (_, page) = market.get("/listings?status=open", None).await;
    assert_eq!(page["listings"], json!([]));

    // Names behind user ids (what the pages show for the other side of a conversation).
    let (sam_id, ben_id) = (me_of(&market, &sam).await, me_of(&market, &ben).await);
    let unknown = messaging_core::UserId::new();
    let (status, body) =
        market.get(&format!("/users?ids={sam_id},{ben_id},{unknown}"), Some(&ben)).await;
    assert_eq!(status, 200);
    let mut names: Vec<&str> =
        body["users"].as_array().unwrap().iter().map(|u| u["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, ["ben", "sam"], "unknown ids are left out");
    let (status, _) = market.get(&format!("/users?ids={sam_id}"), None).await;
    assert_eq!(status, 401);
    for bad in ["/users", "/users?ids=", "/users?ids=nope", "/users?ids=1,2"] {
        let (status, body) = market.get(bad, Some(&ben)).await;
        assert_eq!((status, code(&body)), (400, "bad_request"), "{bad}");
    }
    let many = vec![sam_id.to_string(); 101].join(",");
    let (status, body) = market.get(&format!("/users?ids={many}"), Some(&ben)).await;
    assert_eq!((status, code(&body)), (400, "bad_request"));

    // Logging out ends the session for the app and the chat alike.
    let (status, _) = market.post("/logout", &ben, json!({})).await;
    assert_eq!(status, 200);
    let (status, _) = market.get("/me", Some(&ben)).await;
    assert_eq!(status, 401);
    let (status, _) = market.get("/chat/v1/conversations", Some(&ben)).await;
    assert_eq!(status, 401);
    let (status, me) = market.get("/me", Some(&sam)).await;
    assert_eq!((status, me["user"]["name"].as_str()), (200, Some("sam")));

    // Shutdown ends the open event streams, so the server stops.
    market.stop().await;
    while let Some(event) = sams_stream.next().await {
        assert!(event.id.is_empty(), "no durable event after the test's: {event:?}");
    }
}

/// The user id of a session.
async fn me_of(market: &Market, cookie: &str) -> String {
    let (status, me) = market.get("/me", Some(cookie)).await;
    assert_eq!(status, 200);
    me["user"]["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_its_pages_and_the_chat_client() {
    let market = Market::start().await;
    for (path, content_type, needle) in [
        ("/", "text/html; charset=utf-8", "<script type=\"module\" src=\"/static/app.js\">"),
        ("/static/app.js", "text/javascript; charset=utf-8", "from \"/static/chat-client.js\""),
        ("/static/chat-client.js", "text/javascript; charset=utf-8", "export class ChatClient"),
    ] {
        let response = market.http.get(format!("{}{path}", market.base)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()[http::header::CONTENT_TYPE], content_type, "{path}");
        assert!(response.text().await.unwrap().contains(needle), "{path}");
    }
    let response = market.http.get(format!("{}/static/nope.js", market.base)).send().await.unwrap();
    assert_eq!(response.status(), 404);
    market.stop().await;
}
