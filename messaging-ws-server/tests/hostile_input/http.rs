//! Hostile HTTP requests (user routes, the service API, the event stream) and the answers
//! docs/protocol.md "HTTP API" promises: an unknown route → 404, a known route with another
//! method → 405 (`bad_request`, `Allow`), the credentials → 401, a body over
//! `max_frame_bytes` → 413, a body that is not an object, a path id that is not a UUID or a
//! query value of the wrong type → 400, then the operation's own answer.

use rand::Rng;
use serde_json::{Map, Value, json};

use super::{Answer, Gen, Kind, MAX_BODY, MAX_FRAME, OPS, OpSpec, Verdict, verdict};

/// Where a route's parameters come from besides its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    Query,
    Body,
    Nothing,
}

/// What a route is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handler {
    /// A user route running the operation `op` (`state` fixed for reactions).
    User {
        op: &'static str,
        input: Input,
        state: Option<&'static str>,
    },
    Service(Input),
    Events,
    Ws,
}

const fn user(op: &'static str, input: Input) -> Handler {
    Handler::User { op, input, state: None }
}

/// docs/protocol.md's routes: a path pattern and its methods.
pub const ROUTES: &[(&str, &[(&str, Handler)])] = &[
    (
        "/v1/conversations",
        &[("GET", user("conversations", Input::Query)), ("POST", user("open", Input::Body))],
    ),
    ("/v1/conversations/{conversation_id}", &[("GET", user("conversation", Input::Nothing))]),
    (
        "/v1/conversations/{conversation_id}/messages",
        &[("GET", user("history", Input::Query)), ("POST", user("send", Input::Body))],
    ),
    ("/v1/conversations/{conversation_id}/read", &[("POST", user("read", Input::Body))]),
    ("/v1/conversations/{conversation_id}/delivered", &[("POST", user("delivered", Input::Body))]),
    ("/v1/conversations/{conversation_id}/typing", &[("POST", user("typing", Input::Body))]),
    ("/v1/conversations/{conversation_id}/mute", &[("POST", user("mute", Input::Body))]),
    ("/v1/conversations/{conversation_id}/archive", &[("POST", user("archive", Input::Body))]),
    ("/v1/messages", &[("POST", user("send", Input::Body))]),
    (
        "/v1/messages/{message_id}",
        &[("PATCH", user("edit", Input::Body)), ("DELETE", user("delete", Input::Nothing))],
    ),
    (
        "/v1/messages/{message_id}/reactions",
        &[("POST", Handler::User { op: "react", input: Input::Body, state: Some("added") })],
    ),
    (
        "/v1/messages/{message_id}/reactions/{emoji}",
        &[("DELETE", Handler::User { op: "react", input: Input::Nothing, state: Some("removed") })],
    ),
    ("/v1/search", &[("GET", user("search", Input::Query))]),
    ("/v1/sync", &[("GET", user("sync", Input::Query))]),
    ("/v1/unread", &[("GET", user("unread", Input::Nothing))]),
    ("/v1/presence", &[("GET", user("presence", Input::Query))]),
    ("/v1/blocks", &[("GET", user("blocks", Input::Query))]),
    (
        "/v1/blocks/{user_id}",
        &[("PUT", user("block", Input::Nothing)), ("DELETE", user("unblock", Input::Nothing))],
    ),
    ("/v1/events", &[("GET", Handler::Events)]),
    ("/v1/ws", &[("GET", Handler::Ws)]),
    (
        "/v1/service/conversations",
        &[("POST", Handler::Service(Input::Body)), ("GET", Handler::Service(Input::Query))],
    ),
    (
        "/v1/service/conversations/{conversation_id}",
        &[("GET", Handler::Service(Input::Nothing)), ("PATCH", Handler::Service(Input::Body))],
    ),
    (
        "/v1/service/conversations/{conversation_id}/messages",
        &[("GET", Handler::Service(Input::Query)), ("POST", Handler::Service(Input::Body))],
    ),
    ("/v1/service/messages/{message_id}", &[("DELETE", Handler::Service(Input::Nothing))]),
    ("/v1/service/users/{user_id}/conversations", &[("GET", Handler::Service(Input::Query))]),
    ("/v1/service/users/{user_id}/unread", &[("GET", Handler::Service(Input::Nothing))]),
    ("/v1/service/users/{user_id}/messages", &[("DELETE", Handler::Service(Input::Nothing))]),
    ("/v1/service/users/{user_id}/revoke", &[("POST", Handler::Service(Input::Nothing))]),
    ("/v1/service/tokens", &[("POST", Handler::Service(Input::Body))]),
    (
        "/v1/service/users/{user_id}/blocks/{other_id}",
        &[("PUT", Handler::Service(Input::Nothing)), ("DELETE", Handler::Service(Input::Nothing))],
    ),
];

/// The credentials a case presents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    None,
    /// The attacker's valid token.
    User,
    /// An `Authorization` header value that is no valid credential.
    Garbage(Vec<u8>),
    /// The service key.
    ServiceKey,
}

/// What a request must be answered with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpExpect {
    /// This status with the protocol's error object of this code.
    Error(u16, &'static str),
    /// The operation's answer: 2xx, or an error object whose status is its code's (never
    /// `internal`).
    Any,
    /// One of these statuses, body not checked (a refused WebSocket upgrade is plain text).
    Status(&'static [u16]),
    /// Refused by the HTTP layer (a 4xx or 505 status) or the connection closed.
    RefusedOrClosed,
    /// An event stream opens (200, `text/event-stream`).
    Stream,
}

/// One request.
#[derive(Clone, Debug)]
pub struct HttpCase {
    pub category: &'static str,
    pub method: String,
    /// Path and query as sent, unnormalized.
    pub target: String,
    pub credentials: Credentials,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// Bytes written on a fresh socket instead of a request built by the client.
    pub raw: Option<Vec<u8>>,
    pub expect: HttpExpect,
}

impl HttpCase {
    pub fn describe(&self) -> String {
        if let Some(raw) = &self.raw {
            return format!(
                "[{}] raw {} → expected {:?}",
                self.category,
                super::shorten(&String::from_utf8_lossy(raw)),
                self.expect
            );
        }
        format!(
            "[{}] {} {} creds={:?} headers={} body={} → expected {:?}",
            self.category,
            self.method,
            super::shorten(&self.target),
            match &self.credentials {
                Credentials::Garbage(g) =>
                    format!("garbage {}", super::shorten(&String::from_utf8_lossy(g))),
                other => format!("{other:?}"),
            },
            self.headers.len(),
            super::shorten(&String::from_utf8_lossy(&self.body)),
            self.expect
        )
    }
}

/// A route's methods and what each runs.
pub type Methods = &'static [(&'static str, Handler)];

/// The route `path` (raw, without the query) matches, with its captures (raw).
pub fn route_of(path: &str) -> Option<(Methods, Vec<(&'static str, String)>)> {
    let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    'routes: for (pattern, methods) in ROUTES {
        let parts: Vec<&str> = pattern[1..].split('/').collect();
        if parts.len() != segments.len() {
            continue;
        }
        let mut captures = Vec::new();
        for (part, segment) in parts.iter().zip(&segments) {
            if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                if segment.is_empty() {
                    continue 'routes;
                }
                captures.push((name, (*segment).to_owned()));
            } else if part != segment {
                continue 'routes;
            }
        }
        return Some((methods, captures));
    }
    None
}

/// A path segment percent-decoded; `None` when the bytes are not UTF-8.
pub fn decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(u8::try_from(h * 16 + l).expect("a byte"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// docs/protocol.md "HTTP API": query values typed (integers, booleans, lists), empty ones
/// absent, repeats refused (`None`).
pub fn query_fields(query: &str) -> Option<Map<String, Value>> {
    let mut fields = Map::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if fields.contains_key(name.as_ref()) {
            return None;
        }
        let typed = if value.is_empty() {
            Value::Null
        } else if ["limit", "before_seq", "after_seq", "up_to_seq"].contains(&name.as_ref()) {
            value.parse::<u64>().map_or_else(|_| json!(value), |n| json!(n))
        } else if name == "archived" {
            match value.as_ref() {
                "true" => json!(true),
                "false" => json!(false),
                _ => return None,
            }
        } else if name == "user_ids" {
            Value::Array(value.split(',').map(|s| json!(s)).collect())
        } else {
            json!(value)
        };
        fields.insert(name.into_owned(), typed);
    }
    Some(fields)
}

fn spec_of(op: &str, fields: &Map<String, Value>) -> &'static OpSpec {
    // `send` to a peer when the fields name one and no conversation.
    let peer = fields.get("peer").is_some_and(|v| !v.is_null())
        && fields.get("conversation_id").is_none_or(Value::is_null);
    OPS.iter()
        .filter(|s| s.op == op)
        .find(|s| op != "send" || s.fields.iter().any(|f| f.name == "peer") == peer)
        .expect("an op")
}

/// The answer docs/protocol.md promises `case` (its `expect` ignored), the service key
/// being configured or not.
pub fn expect_of(case: &HttpCase, service_keys: bool, hello_cursor: u64) -> HttpExpect {
    let (path, query) = case.target.split_once('?').unwrap_or((&case.target, ""));
    let Some((methods, captures)) = route_of(path) else {
        return HttpExpect::Error(404, "not_found");
    };
    let Some((_, handler)) = methods.iter().find(|(m, _)| *m == case.method) else {
        return HttpExpect::Error(405, "bad_request");
    };
    let body_fields = || -> Option<Map<String, Value>> {
        if case.body.iter().all(u8::is_ascii_whitespace) {
            return Some(Map::new());
        }
        match serde_json::from_slice::<Value>(&case.body) {
            Ok(Value::Object(fields)) => Some(fields),
            _ => None,
        }
    };
    let decoded: Option<Vec<(&str, String)>> =
        captures.iter().map(|(name, raw)| decode(raw).map(|v| (*name, v))).collect();
    let user_ok = case.credentials == Credentials::User;
    match *handler {
        Handler::Ws => {
            if user_ok || bearer_in_query(query) {
                HttpExpect::Status(&[400, 401])
            } else {
                HttpExpect::Status(&[401])
            }
        }
        Handler::Events => {
            // The only token in a query here is garbage.
            if !user_ok {
                return HttpExpect::Error(401, "unauthorized");
            }
            let header = case.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("last-event-id"));
            let cursor = match header {
                Some((_, value)) => match std::str::from_utf8(value) {
                    Ok(text) if value.iter().all(|b| (0x20..0x7f).contains(b) || *b == b'\t') => {
                        Some(text.trim().to_owned())
                    }
                    _ => return HttpExpect::Error(400, "bad_request"),
                },
                None => {
                    let Some(fields) = query_fields(query) else {
                        return HttpExpect::Error(400, "bad_request");
                    };
                    fields.get("cursor").and_then(Value::as_str).map(str::to_owned)
                }
            };
            match cursor.filter(|c| !c.is_empty()) {
                None => HttpExpect::Stream,
                Some(c) => match cursor_position(&c) {
                    Some(position) if position <= hello_cursor => HttpExpect::Stream,
                    _ => HttpExpect::Error(400, "bad_request"),
                },
            }
        }
        Handler::Service(input) => {
            if !service_keys {
                return HttpExpect::Error(404, "not_found");
            }
            if case.credentials != Credentials::ServiceKey {
                return HttpExpect::Error(401, "unauthorized");
            }
            if case.body.len() > MAX_FRAME {
                return HttpExpect::Error(413, "too_large");
            }
            let shape_ok = match input {
                Input::Body => body_fields().is_some(),
                Input::Query => query_fields(query).is_some(),
                Input::Nothing => true,
            };
            let ids_ok = decoded.as_ref().is_some_and(|d| {
                d.iter().all(|(_, v)| v.len() == 36 && uuid::Uuid::try_parse(v).is_ok())
            });
            if !shape_ok || !ids_ok {
                return HttpExpect::Error(400, "bad_request");
            }
            HttpExpect::Any
        }
        Handler::User { op, input, state } => {
            if !user_ok {
                return HttpExpect::Error(401, "unauthorized");
            }
            if case.body.len() > MAX_FRAME {
                return HttpExpect::Error(413, "too_large");
            }
            let fields = match input {
                Input::Body => body_fields(),
                Input::Query => query_fields(query),
                Input::Nothing => Some(Map::new()),
            };
            let Some(mut fields) = fields else { return HttpExpect::Error(400, "bad_request") };
            let Some(decoded) = decoded else { return HttpExpect::Error(400, "bad_request") };
            for (name, value) in decoded {
                fields.insert(name.to_owned(), json!(value));
            }
            if let Some(state) = state {
                fields.insert("state".into(), json!(state));
            }
            match super::answer_of(spec_of(op, &fields), &fields) {
                Answer::Error(code) => HttpExpect::Error(400, code),
                Answer::Any | Answer::Ok => HttpExpect::Any,
            }
        }
    }
}

/// The position of a cursor as the server writes them (`v1` and lower-case hex without
/// leading zeros), `None` for any other text.
pub fn cursor_position(cursor: &str) -> Option<u64> {
    let hex = cursor.strip_prefix("v1")?;
    let canonical = !hex.is_empty()
        && hex.len() <= 16
        && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && (hex == "0" || !hex.starts_with('0'));
    canonical.then(|| u64::from_str_radix(hex, 16).ok()).flatten()
}

fn bearer_in_query(query: &str) -> bool {
    form_urlencoded::parse(query.as_bytes()).any(|(name, _)| name == "access_token")
}

/// Path segments that are not what they seem.
const SEGMENT_TRICKS: &[&str] = &[
    "x",
    "..",
    ".",
    "%2e%2e",
    "%2E%2E%2F",
    "%2F",
    "a%2Fb",
    "%00",
    "%C0%AF",
    "%C0%80",
    "%E0%80%AF",
    "%ED%A0%80",
    "%FF",
    "%252F",
    "%25",
    "%",
    "%Z1",
    "%F0%9F%91%8D",
    "null",
    "undefined",
    "0",
    "-1",
    "%20",
    "+",
    "00000000-0000-0000-0000-000000000000",
    "0190b5a0000070008000000000000001",
    "%7B0190b5a0-0000-7000-8000-000000000001%7D",
    "urn:uuid:0190b5a0-0000-7000-8000-000000000001",
    "0190b5a0-0000-7000-8000-00000000000%31",
    "0190b5a0%2D0000%2D7000%2D8000%2D000000000001",
    "0190B5A0-0000-7000-8000-00000000000A",
];

const METHODS: &[&str] =
    &["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "FOO", "PROPFIND", "get"];

impl Gen {
    /// A path segment: a known id, a stranger's, or a trick.
    fn segment(&mut self, name: &str, service: bool) -> String {
        let k = self.known.clone();
        // The service key is the host's own backend: it may touch anyone's data, so it is
        // never pointed at the bystanders'.
        let top = if service { 5 } else { 10 };
        match self.rng.gen_range(0..top) {
            0..=3 => match name {
                "conversation_id" => k.conversation,
                "message_id" => k.message,
                "emoji" => "%F0%9F%91%8D".to_owned(),
                _ => k.peer,
            },
            4 => uuid::Uuid::now_v7().to_string(),
            5 => "x".repeat(self.pick(&[1_usize, 300, 5_000])),
            6 => self.pick(&[k.bystander_conversation, k.bystander_message]),
            7 => "x".repeat(self.pick(&[1_usize, 300, 5_000])),
            _ => self.pick(SEGMENT_TRICKS).to_owned(),
        }
    }

    /// A query value of `field` as text (percent-encoded when needed).
    fn query_value(&mut self, spec: &OpSpec, field: &super::Field) -> String {
        let text = match self.rng.gen_range(0..6) {
            0..=2 => match self.valid(spec, field) {
                Some(Value::String(s)) => s,
                Some(Value::Array(items)) => {
                    items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")
                }
                Some(other) => other.to_string(),
                None => String::new(),
            },
            3 => self
                .pick(&[
                    "1.5",
                    "-1",
                    "0",
                    "1e2",
                    "18446744073709551616",
                    "true",
                    "TRUE",
                    "yes",
                    "1",
                    "",
                    "%00",
                    "null",
                    "[]",
                    "a,b",
                    ",",
                    "v0",
                    "v1ffffff",
                ])
                .to_owned(),
            _ => self.string(30),
        };
        encode(&text, self.chance(0.3))
    }

    /// A query string for `spec`, sometimes with repeats, encoded names, or far too long.
    fn query(&mut self, spec: &OpSpec) -> String {
        let mut pairs = Vec::new();
        for field in spec.fields {
            if self.chance(0.7) {
                let value = self.query_value(spec, field);
                let name =
                    if self.chance(0.1) { encode(field.name, true) } else { field.name.to_owned() };
                pairs.push(format!("{name}={value}"));
                if self.chance(0.05) {
                    pairs.push(format!("{name}={value}"));
                }
            }
        }
        if self.chance(0.1) {
            pairs.push(format!("junk={}", "j".repeat(self.pick(&[10_usize, 2_000, 30_000]))));
        }
        if self.chance(0.05) {
            pairs.push("&&=&==".to_owned());
        }
        pairs.join("&")
    }

    /// A JSON body for `spec`: valid, odd, mistyped, or not an object at all.
    fn body(&mut self, spec: &OpSpec, path_fields: &[&str]) -> Vec<u8> {
        match self.rng.gen_range(0..10) {
            0 => self
                .pick(&[
                    &b""[..],
                    b"   ",
                    b"{",
                    b"}",
                    b"[]",
                    b"[{}]",
                    b"null",
                    b"1",
                    b"\"body\"",
                    b"{\"body\":\"x\"",
                    b"{\"body\":\"x\"}}",
                    b"{'body':'x'}",
                    b"\xef\xbb\xbf{}",
                    b"{\"body\":\"\xff\"}",
                    b"\x00",
                ])
                .to_vec(),
            1 => {
                let full = serde_json::to_vec(&Value::Object(self.fields(spec, [8, 0, 0, 0])))
                    .expect("JSON");
                let cut = self.rng.gen_range(0..full.len().max(1));
                full[..cut].to_vec()
            }
            2 => {
                let depth = self.pick(&[127_usize, 129, 5_000]);
                format!("{{\"a\":{}1{}}}", "[".repeat(depth), "]".repeat(depth)).into_bytes()
            }
            3 => vec![b' '; MAX_FRAME + self.rng.gen_range(1..5_000)],
            _ => {
                let mix = self.pick(&[[8, 1, 1, 0], [5, 2, 2, 1], [1, 0, 0, 3]]);
                let mut fields = self.fields(spec, mix);
                for name in path_fields {
                    // The path wins; a body field of the same name is not looked at.
                    if self.chance(0.5) {
                        fields.insert((*name).to_owned(), json!(5));
                    } else {
                        fields.remove(*name);
                    }
                }
                serde_json::to_vec(&Value::Object(fields)).expect("JSON")
            }
        }
    }

    fn credentials(&mut self) -> Credentials {
        match self.rng.gen_range(0..20) {
            0 => Credentials::None,
            1 => Credentials::Garbage(
                self.pick(&[
                    &b"Bearer"[..],
                    b"Bearer ",
                    b"Bearer x.y.z",
                    b"Basic dXNlcjpwYXNz",
                    b"bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
                    b"Bearer \xff\xfe",
                    b"Token abc",
                ])
                .to_vec(),
            ),
            2 => Credentials::Garbage(format!("Bearer {}", "A".repeat(70_000)).into_bytes()),
            3 => Credentials::ServiceKey,
            _ => Credentials::User,
        }
    }

    /// A request to a route of docs/protocol.md, mutated; its expected answer is set by
    /// the caller ([`expect_of`]).
    pub fn http_case(&mut self) -> HttpCase {
        let roll = self.rng.gen_range(0..100);
        if roll < 8 {
            return self.random_path();
        }
        if roll < 12 {
            return self.raw_request();
        }
        if roll < 18 {
            return self.events_case();
        }
        if roll < 24 {
            return self.rule_case();
        }
        let (pattern, methods) = self.pick(ROUTES);
        let (mut method, handler) = self.pick(methods);
        let method_owned;
        if self.chance(0.08) {
            method_owned = self.pick(METHODS);
            method = method_owned;
        }
        let mut path = String::new();
        let mut path_fields = Vec::new();
        for part in pattern[1..].split('/') {
            path.push('/');
            if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                let segment = self.segment(name, matches!(handler, Handler::Service(_)));
                path.push_str(&segment);
                path_fields.push(name);
            } else {
                path.push_str(part);
            }
        }
        let (query, body) = match handler {
            Handler::User { op, input, .. } => {
                let spec = *OPS
                    .iter()
                    .filter(|s| s.op == op)
                    .nth(usize::from(op == "send" && pattern == "/v1/messages"))
                    .expect("an op");
                match input {
                    Input::Query => (self.query(&spec), self.rare_body()),
                    Input::Body => (String::new(), self.body(&spec, &path_fields)),
                    Input::Nothing => (String::new(), self.rare_body()),
                }
            }
            Handler::Service(input) => (
                if input == Input::Query { self.service_query() } else { String::new() },
                if input == Input::Body { self.service_body() } else { self.rare_body() },
            ),
            Handler::Events | Handler::Ws => (String::new(), Vec::new()),
        };
        let target = if query.is_empty() { path } else { format!("{path}?{query}") };
        let credentials = if matches!(handler, Handler::Service(_)) && self.chance(0.7) {
            if self.chance(0.8) {
                Credentials::ServiceKey
            } else {
                Credentials::Garbage(b"Bearer wrong-service-key-0123456789abcdef".to_vec())
            }
        } else {
            self.credentials()
        };
        let headers = self.headers();
        HttpCase {
            category: "route",
            method: method.to_owned(),
            target,
            credentials,
            headers,
            body,
            raw: None,
            expect: HttpExpect::Any,
        }
    }

    fn rare_body(&mut self) -> Vec<u8> {
        match self.rng.gen_range(0..20) {
            0 => b"{\"ignored\":true}".to_vec(),
            1 => vec![b'x'; MAX_FRAME + 1],
            _ => Vec::new(),
        }
    }

    fn service_query(&mut self) -> String {
        let mut pairs = Vec::new();
        for (name, kind) in [
            ("context", Kind::Str),
            ("limit", Kind::Limit(100)),
            ("before", Kind::Str),
            ("before_seq", Kind::U64),
            ("after_seq", Kind::U64),
            ("archived", Kind::Bool),
        ] {
            if self.chance(0.4) {
                let value =
                    self.query_value(&OPS[4], &super::Field { name, kind, required: false });
                pairs.push(format!("{name}={value}"));
            }
        }
        pairs.join("&")
    }

    fn service_body(&mut self) -> Vec<u8> {
        let k = self.known.clone();
        let mut fields = Map::new();
        // Never the bystanders: the service key is the host's own (trusted) backend.
        let names = [
            ("members", json!([k.attacker, k.peer])),
            ("context", json!("svc")),
            ("metadata", json!({"m": 1})),
            ("body", json!("from the host")),
            ("user_id", json!(k.peer)),
            ("ttl_s", json!(600)),
            ("sender_id", json!(k.attacker)),
            ("client_msg_id", json!("svc-1")),
        ];
        for (name, valid) in names {
            if self.chance(0.5) {
                let value = match self.rng.gen_range(0..4) {
                    0 => self.pick(&super::wrong_values()),
                    1 => self.value(2),
                    _ => valid,
                };
                fields.insert(name.to_owned(), value);
            }
        }
        if self.chance(0.1) {
            return self.pick(&[&b"{"[..], b"[]", b"null", b"{\"members\":"]).to_vec();
        }
        serde_json::to_vec(&Value::Object(fields)).expect("JSON")
    }

    /// Extra headers: odd content types, many, long.
    fn headers(&mut self) -> Vec<(String, Vec<u8>)> {
        let mut headers = Vec::new();
        match self.rng.gen_range(0..10) {
            0 => headers.push((
                "content-type".to_owned(),
                self.pick(&[
                    &b"text/plain"[..],
                    b"application/x-www-form-urlencoded",
                    b"multipart/form-data; boundary=x",
                    b"application/json; charset=latin1",
                    b"",
                ])
                .to_vec(),
            )),
            1 => {
                for i in 0..self.pick(&[20_usize, 90]) {
                    headers.push((format!("x-h-{i}"), b"v".to_vec()));
                }
            }
            2 => headers.push(("x-long".to_owned(), vec![b'l'; self.pick(&[8_000_usize, 60_000])])),
            3 => headers.push(("last-event-id".to_owned(), b"v1".to_vec())),
            _ => {}
        }
        headers
    }

    /// A random path under /v1 (or beside it): mostly no route.
    fn random_path(&mut self) -> HttpCase {
        let mut path = String::from(self.pick(&["/v1", "/v1/", "/v2", "", "/V1", "/v1/service"]));
        for _ in 0..self.rng.gen_range(0..5) {
            path.push('/');
            let segment = if self.chance(0.5) {
                self.pick(&[
                    "conversations",
                    "messages",
                    "blocks",
                    "users",
                    "service",
                    "events",
                    "..",
                    "%2e%2e",
                    "%2F",
                    "",
                    "search",
                    "unread",
                    "v1",
                ])
                .to_owned()
            } else {
                self.pick(SEGMENT_TRICKS).to_owned()
            };
            path.push_str(&segment);
        }
        if path.is_empty() {
            path.push('/');
        }
        let method = self.pick(METHODS).to_owned();
        let credentials = self.credentials();
        HttpCase {
            category: "random_path",
            method,
            target: path,
            credentials,
            headers: Vec::new(),
            body: Vec::new(),
            raw: None,
            expect: HttpExpect::Any,
        }
    }

    /// A valid request but for one value past a byte limit (413 `too_large`) or holding
    /// U+0000 (400 `bad_request`): the operation's rules answered with their statuses.
    fn rule_case(&mut self) -> HttpCase {
        let k = self.known.clone();
        let over = |n: usize, unit: &str| unit.repeat(n);
        let nul = self.pick(&["\u{0}", "a\u{0}b"]);
        let c = &k.conversation;
        let m = &k.message;
        let (method, target, body, expect): (&str, String, Value, HttpExpect) =
            match self.rng.gen_range(0..13) {
                0 => (
                    "POST",
                    format!("/v1/conversations/{c}/messages"),
                    json!({"body": over(MAX_BODY + 1, "x")}),
                    HttpExpect::Error(413, "too_large"),
                ),
                1 => (
                    "PATCH",
                    format!("/v1/messages/{m}"),
                    json!({"body": over(MAX_BODY / 2 + 1, "é")}),
                    HttpExpect::Error(413, "too_large"),
                ),
                2 => (
                    "POST",
                    "/v1/conversations".to_owned(),
                    json!({"peer": k.peer, "context": over(129, "c")}),
                    HttpExpect::Error(413, "too_large"),
                ),
                3 => (
                    "POST",
                    "/v1/messages".to_owned(),
                    json!({"peer": k.peer, "body": "b", "client_msg_id": over(65, "k")}),
                    HttpExpect::Error(413, "too_large"),
                ),
                4 => (
                    "POST",
                    format!("/v1/conversations/{c}/messages"),
                    json!({"body": "b", "metadata": {"k": over(4097, "m")}}),
                    HttpExpect::Error(413, "too_large"),
                ),
                5 => (
                    "GET",
                    format!("/v1/search?query={}", over(257, "q")),
                    Value::Null,
                    HttpExpect::Error(413, "too_large"),
                ),
                6 => (
                    "GET",
                    format!("/v1/conversations?context={}", over(129, "c")),
                    Value::Null,
                    HttpExpect::Error(413, "too_large"),
                ),
                7 => (
                    "POST",
                    format!("/v1/conversations/{c}/messages"),
                    json!({"body": nul}),
                    HttpExpect::Error(400, "bad_request"),
                ),
                8 => (
                    "POST",
                    "/v1/conversations".to_owned(),
                    json!({"peer": k.peer, "context": nul}),
                    HttpExpect::Error(400, "bad_request"),
                ),
                9 => (
                    "GET",
                    "/v1/conversations?context=a%00b".to_owned(),
                    Value::Null,
                    HttpExpect::Error(400, "bad_request"),
                ),
                10 => (
                    "DELETE",
                    format!("/v1/messages/{m}/reactions/%00"),
                    Value::Null,
                    HttpExpect::Error(400, "bad_request"),
                ),
                11 => (
                    "POST",
                    format!("/v1/messages/{m}/reactions"),
                    json!({"emoji": nul}),
                    HttpExpect::Error(400, "bad_request"),
                ),
                _ => (
                    "POST",
                    format!("/v1/conversations/{c}/messages"),
                    json!({"body": "b", "attachments": [{"url": "https://cdn.example/a",
                             "mime": "image/png", "name": nul}]}),
                    HttpExpect::Error(400, "bad_request"),
                ),
            };
        HttpCase {
            category: "rules",
            method: method.to_owned(),
            target,
            credentials: Credentials::User,
            headers: Vec::new(),
            body: if body.is_null() {
                Vec::new()
            } else {
                serde_json::to_vec(&body).expect("JSON")
            },
            raw: None,
            expect,
        }
    }

    /// `GET /v1/events` with odd cursors, ids and tokens.
    fn events_case(&mut self) -> HttpCase {
        let cursor = self.pick(&[
            "v10",
            "v11",
            "v0",
            "v1",
            "x",
            "v",
            "vz",
            "v1-1",
            "v1ffffff",
            "v1ffffffffffffffffffff",
            "%00",
            "v1%00",
            "V10",
            "v101",
            "v1A",
            "v10.0",
            " v10",
            "10",
        ]);
        let mut target = "/v1/events".to_owned();
        let cursor_text = cursor;
        let cursor = encode(cursor, false);
        let mut headers = Vec::new();
        match self.rng.gen_range(0..6) {
            0 => target.push_str(&format!("?cursor={cursor}")),
            1 => target.push_str(&format!("?cursor={cursor}&cursor=v0")),
            2 => headers.push(("last-event-id".to_owned(), cursor_text.as_bytes().to_vec())),
            3 => headers.push((
                "last-event-id".to_owned(),
                self.pick(&[&b"v\xff"[..], b"\xc3\xa9", b"v1 \xa0"]).to_vec(),
            )),
            4 => target.push_str(&format!("?archived=maybe&cursor={cursor}")),
            _ => target.push_str(&format!("?x={}", "q".repeat(self.pick(&[1_usize, 20_000])))),
        }
        let credentials = match self.rng.gen_range(0..6) {
            0 => Credentials::None,
            1 => Credentials::Garbage(b"Bearer nope".to_vec()),
            2 => {
                target.push(if target.contains('?') { '&' } else { '?' });
                target.push_str("access_token=garbage");
                Credentials::None
            }
            _ => Credentials::User,
        };
        HttpCase {
            category: "events",
            method: "GET".to_owned(),
            target,
            credentials,
            headers,
            body: Vec::new(),
            raw: None,
            expect: HttpExpect::Any,
        }
    }

    /// Bytes the HTTP client would not send: broken request lines and headers.
    fn raw_request(&mut self) -> HttpCase {
        let long_header = format!("X-Long: {}", "h".repeat(1_000_000));
        let many: String = (0..150).map(|i| format!("X-{i}: v\r\n")).collect();
        let huge_target = format!("/v1/conversations?context={}", "c".repeat(70_000));
        let raw = match self.rng.gen_range(0..12) {
            0 => b"GET /v1/unread HTTP/9.9\r\nHost: x\r\n\r\n".to_vec(),
            1 => b"GET /v1/unread\r\n\r\n".to_vec(),
            2 => b"G\x00T /v1/unread HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            3 => "GET /v1/conversations/\u{e9}\u{1F44D} HTTP/1.1\r\nHost: x\r\n\r\n".as_bytes().to_vec(),
            4 => b"GET /v1/unread HTTP/1.1\r\nHost: x\r\nBroken header\r\n\r\n".to_vec(),
            5 => format!("GET /v1/unread HTTP/1.1\r\nHost: x\r\n{long_header}\r\n\r\n").into_bytes(),
            6 => format!("GET /v1/unread HTTP/1.1\r\nHost: x\r\n{many}\r\n").into_bytes(),
            7 => format!("GET {huge_target} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes(),
            8 => b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".to_vec(),
            9 => b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello".to_vec(),
            10 => b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
            _ => b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03".to_vec(),
        };
        HttpCase {
            category: "raw",
            method: String::new(),
            target: String::new(),
            credentials: Credentials::None,
            headers: Vec::new(),
            body: Vec::new(),
            raw: Some(raw),
            expect: HttpExpect::RefusedOrClosed,
        }
    }
}

/// `text` for a URL: reserved bytes percent-encoded, and every byte when `all`.
pub fn encode(text: &str, all: bool) -> String {
    text.bytes()
        .map(|b| {
            if !all && (b.is_ascii_alphanumeric() || b"-._~:".contains(&b)) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Verdicts on query parameters are the operations' (re-exported for the sweep).
pub fn query_verdict(field: &super::Field, value: Option<&Value>) -> Verdict {
    verdict(field, value)
}
