//! Generators of hostile input for `tests/hostile.rs`, each case paired with the answer
//! docs/protocol.md promises for it. Every value comes from a seeded `StdRng`, so a seed
//! replays a run exactly.
//!
//! The expectations are written from docs/protocol.md ("Frames", "Operations", "HTTP API",
//! "Service API", "Server-sent events"), never from the server's own code: the operation
//! table below restates the protocol's parameters and their types.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    dead_code,
    unreachable_pub,
    reason = "test support"
)]

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};

pub mod http;

/// The server's `max_frame_bytes` in these tests (the default).
pub const MAX_FRAME: usize = 65_536;
/// The messenger's `max_body_bytes` (the default).
pub const MAX_BODY: usize = 8_192;

/// The type a parameter has in docs/protocol.md "Operations".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A UUID string.
    Id,
    /// A string.
    Str,
    /// A non-negative integer.
    U64,
    /// A non-negative integer, 0 refused (`reply_to_seq`).
    Seq,
    /// `limit`: 1 to the maximum.
    Limit(u64),
    Bool,
    /// `mute.until`: required, a timestamp or `null`.
    Until,
    /// An array of UUID strings.
    Ids,
    /// An array of Attachment objects.
    Attachments,
    /// A JSON object.
    Metadata,
    /// One of these strings.
    Choice(&'static [&'static str]),
}

#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
}

const fn req(name: &'static str, kind: Kind) -> Field {
    Field { name, kind, required: true }
}

const fn opt(name: &'static str, kind: Kind) -> Field {
    Field { name, kind, required: false }
}

/// One operation of docs/protocol.md with its parameters.
#[derive(Clone, Copy, Debug)]
pub struct OpSpec {
    pub op: &'static str,
    pub fields: &'static [Field],
}

const REACTION: &[&str] = &["added", "removed"];
const TYPING: &[&str] = &["started", "stopped"];

/// Every operation; `send` twice (into a conversation, to a peer).
pub const OPS: &[OpSpec] = &[
    OpSpec { op: "open", fields: &[req("peer", Kind::Id), opt("context", Kind::Str)] },
    OpSpec {
        op: "send",
        fields: &[
            req("conversation_id", Kind::Id),
            req("body", Kind::Str),
            opt("attachments", Kind::Attachments),
            opt("reply_to_seq", Kind::Seq),
            opt("client_msg_id", Kind::Str),
            opt("metadata", Kind::Metadata),
        ],
    },
    OpSpec {
        op: "send",
        fields: &[
            req("peer", Kind::Id),
            opt("context", Kind::Str),
            req("body", Kind::Str),
            opt("client_msg_id", Kind::Str),
        ],
    },
    OpSpec {
        op: "history",
        fields: &[
            req("conversation_id", Kind::Id),
            opt("before_seq", Kind::U64),
            opt("after_seq", Kind::U64),
            opt("limit", Kind::Limit(100)),
        ],
    },
    OpSpec {
        op: "conversations",
        fields: &[
            opt("limit", Kind::Limit(100)),
            opt("before", Kind::Str),
            opt("archived", Kind::Bool),
            opt("context", Kind::Str),
        ],
    },
    OpSpec { op: "conversation", fields: &[req("conversation_id", Kind::Id)] },
    OpSpec {
        op: "react",
        fields: &[
            req("message_id", Kind::Id),
            req("emoji", Kind::Str),
            req("state", Kind::Choice(REACTION)),
        ],
    },
    OpSpec { op: "mute", fields: &[req("conversation_id", Kind::Id), req("until", Kind::Until)] },
    OpSpec {
        op: "archive",
        fields: &[req("conversation_id", Kind::Id), req("archived", Kind::Bool)],
    },
    OpSpec { op: "blocks", fields: &[opt("limit", Kind::Limit(100)), opt("after", Kind::Id)] },
    OpSpec { op: "read", fields: &[req("conversation_id", Kind::Id), req("up_to_seq", Kind::U64)] },
    OpSpec {
        op: "delivered",
        fields: &[req("conversation_id", Kind::Id), req("up_to_seq", Kind::U64)],
    },
    OpSpec { op: "edit", fields: &[req("message_id", Kind::Id), req("body", Kind::Str)] },
    OpSpec { op: "delete", fields: &[req("message_id", Kind::Id)] },
    OpSpec {
        op: "typing",
        fields: &[req("conversation_id", Kind::Id), req("state", Kind::Choice(TYPING))],
    },
    OpSpec { op: "sync", fields: &[opt("cursor", Kind::Str), opt("limit", Kind::Limit(500))] },
    OpSpec {
        op: "search",
        fields: &[
            req("query", Kind::Str),
            opt("conversation_id", Kind::Id),
            opt("limit", Kind::Limit(50)),
        ],
    },
    OpSpec { op: "unread", fields: &[] },
    OpSpec { op: "presence", fields: &[req("user_ids", Kind::Ids)] },
    OpSpec { op: "block", fields: &[req("user_id", Kind::Id)] },
    OpSpec { op: "unblock", fields: &[req("user_id", Kind::Id)] },
    OpSpec { op: "ping", fields: &[] },
];

/// Ids the attacker knows: its own conversation and message, its peer, and the
/// bystanders' (whose data it must never reach).
#[derive(Clone, Debug)]
pub struct Known {
    pub attacker: String,
    pub peer: String,
    pub conversation: String,
    pub message: String,
    /// A cursor the server issued to the attacker.
    pub cursor: String,
    pub bystanders: Vec<String>,
    pub bystander_conversation: String,
    pub bystander_message: String,
}

/// What the protocol says about one field's value, seen alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Refused by its type or shape (`bad_request`, whatever else the frame holds).
    TypeBad,
    /// Of its type but outside the stated range (`bad_request` when nothing else is odd).
    RangeBad,
    /// Unremarkable.
    Fine,
    /// Of its type, but odd (a stranger id, a huge number, odd text): the answer depends
    /// on the state.
    Odd,
}

fn is_uuid(text: &str) -> bool {
    text.len() == 36 && uuid::Uuid::try_parse(text).is_ok()
}

/// The verdict on `value` given for `field` (`None`: absent).
pub fn verdict(field: &Field, value: Option<&Value>) -> Verdict {
    let value = match value {
        None | Some(Value::Null) if field.kind == Kind::Until => {
            return if value.is_none() { Verdict::TypeBad } else { Verdict::Fine };
        }
        None | Some(Value::Null) => {
            return if field.required { Verdict::TypeBad } else { Verdict::Fine };
        }
        Some(value) => value,
    };
    match (field.kind, value) {
        (Kind::Id, Value::String(s)) if is_uuid(s) => Verdict::Odd,
        (Kind::Str, Value::String(s)) if s.contains('\0') => Verdict::Odd,
        (Kind::Str, Value::String(_)) => Verdict::Odd,
        (Kind::U64, Value::Number(n)) if n.is_u64() => Verdict::Odd,
        (Kind::Seq, Value::Number(n)) => match n.as_u64() {
            Some(0) => Verdict::RangeBad,
            Some(_) => Verdict::Odd,
            None => Verdict::TypeBad,
        },
        (Kind::Limit(max), Value::Number(n)) => match n.as_u64() {
            Some(n) if (1..=max).contains(&n) => Verdict::Fine,
            Some(_) => Verdict::RangeBad,
            None => Verdict::TypeBad,
        },
        (Kind::Bool, Value::Bool(_)) => Verdict::Fine,
        (Kind::Until, Value::String(_)) => Verdict::Odd,
        (Kind::Ids, Value::Array(items)) => {
            if items.iter().all(|v| v.as_str().is_some_and(is_uuid)) {
                if (1..=100).contains(&items.len()) { Verdict::Odd } else { Verdict::RangeBad }
            } else {
                Verdict::TypeBad
            }
        }
        (Kind::Attachments, Value::Array(items)) if items.is_empty() => Verdict::Fine,
        (Kind::Attachments, Value::Array(items)) if items.iter().all(Value::is_object) => {
            Verdict::Odd
        }
        (Kind::Metadata, Value::Object(_)) => Verdict::Odd,
        (Kind::Choice(options), Value::String(s)) if options.contains(&s.as_str()) => Verdict::Fine,
        _ => Verdict::TypeBad,
    }
}

/// What a request must be answered with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Exactly this error code.
    Error(&'static str),
    /// Any protocol answer, never `internal` (nor `unavailable`, `unauthorized`).
    Any,
    /// Success.
    Ok,
}

/// The answer to an operation whose fields are `fields`.
pub fn answer_of(spec: &OpSpec, fields: &Map<String, Value>) -> Answer {
    let verdicts: Vec<Verdict> =
        spec.fields.iter().map(|f| verdict(f, fields.get(f.name))).collect();
    if verdicts.contains(&Verdict::TypeBad) {
        return Answer::Error("bad_request");
    }
    let given = |name: &str| fields.get(name).is_some_and(|v| !v.is_null());
    // `send`: a conversation or a peer, not both; `history`: not both anchors.
    if spec.op == "send" && given("conversation_id") && given("peer") {
        return Answer::Error("bad_request");
    }
    if spec.op == "history" && given("before_seq") && given("after_seq") {
        return Answer::Error("bad_request");
    }
    if verdicts.contains(&Verdict::RangeBad) && !verdicts.contains(&Verdict::Odd) {
        return Answer::Error("bad_request");
    }
    Answer::Any
}

/// A frame's `id` as written and as the reply must echo it (`null`: unreadable).
#[derive(Clone, Debug)]
pub struct FrameId {
    pub json: String,
    pub echo: Value,
}

/// What a WebSocket case sends.
#[derive(Clone, Debug)]
pub enum WsPayload {
    Text(String),
    Binary(Vec<u8>),
    /// Raw frames, in order, through tungstenite's frame API (masked as a client's).
    Frames(Vec<Frame>),
    /// Bytes written on the socket as they are (an unmasked frame).
    Bytes(Vec<u8>),
    /// Many pings, then a `ping` request that must still be answered.
    PingFlood(usize),
}

/// What the server must do with a WebSocket case.
#[derive(Clone, Debug)]
pub enum WsExpect {
    /// A reply with this id and answer; the connection stays open.
    Reply(Value, Answer),
    /// The connection is closed with this code.
    Close(u16),
}

#[derive(Clone, Debug)]
pub struct WsCase {
    pub category: &'static str,
    pub payload: WsPayload,
    pub expect: WsExpect,
}

impl WsCase {
    fn text(category: &'static str, text: String, id: Value, answer: Answer) -> Self {
        Self { category, payload: WsPayload::Text(text), expect: WsExpect::Reply(id, answer) }
    }

    /// Whether the case ends its connection.
    pub fn closes(&self) -> bool {
        matches!(self.expect, WsExpect::Close(_))
    }

    /// The case, shortened for a failure message.
    pub fn describe(&self) -> String {
        let payload = match &self.payload {
            WsPayload::Text(text) => format!("text {}", shorten(text)),
            WsPayload::Binary(bytes) => format!("binary of {} bytes", bytes.len()),
            WsPayload::Frames(frames) => format!(
                "frames {:?}",
                frames
                    .iter()
                    .map(|f| {
                        (
                            f.header().opcode,
                            f.header().is_final,
                            f.header().rsv1,
                            shorten(&String::from_utf8_lossy(f.payload())),
                        )
                    })
                    .collect::<Vec<_>>()
            ),
            WsPayload::Bytes(bytes) => format!("raw bytes {:02x?}", &bytes[..bytes.len().min(64)]),
            WsPayload::PingFlood(n) => format!("{n} pings"),
        };
        format!("[{}] {payload} → expected {:?}", self.category, self.expect)
    }
}

pub fn shorten(text: &str) -> String {
    if text.len() <= 300 {
        return format!("{text:?}");
    }
    let mut end = 200;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}… ({} bytes)", &text[..end], text.len())
}

/// Strings that break things elsewhere: escapes, controls, bidi, huge code points, SQL and
/// FTS syntax, path tricks, format strings.
const NASTY: &[&str] = &[
    "",
    " ",
    "\t\n\r",
    "\u{0}",
    "a\u{0}b",
    "\u{1}\u{1f}\u{7f}",
    "\u{feff}",
    "\u{202e}gnp.exe",
    "\u{10ffff}",
    "\u{fffd}",
    "😀👍🏽‍♀️",
    "❤️",
    "Ω≈ç√∫",
    "' OR 1=1 --",
    "\"; DROP TABLE messages; --",
    "\" * - AND OR NEAR(",
    "%00%2F%2e%2e",
    "../../etc/passwd",
    "{}",
    "[]",
    "null",
    "%s%n%x",
    "\\u0000",
    "\\",
    "v1",
    "v",
    "vffffffffffffffffffffffff",
    "0190b5a0-0000-7000-8000-00000000000g",
    "{0190b5a0-0000-7000-8000-000000000001}",
    "urn:uuid:0190b5a0-0000-7000-8000-000000000001",
    "0190b5a000007000800000000000000 1",
    "00000000-0000-0000-0000-000000000000",
];

/// A seeded source of hostile cases.
pub struct Gen {
    pub rng: StdRng,
    pub known: Known,
    next_key: u64,
}

impl Gen {
    pub fn new(seed: u64, known: Known) -> Self {
        Self { rng: StdRng::seed_from_u64(seed), known, next_key: 0 }
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items.choose(&mut self.rng).expect("a non-empty list").clone()
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.gen_bool(p)
    }

    /// A random string: nasty, random code points, or random ASCII.
    pub fn string(&mut self, max_len: usize) -> String {
        match self.rng.gen_range(0..4) {
            0 => self.pick(NASTY).to_owned(),
            1 => (0..self.rng.gen_range(0..=max_len))
                .map(|_| {
                    loop {
                        if let Some(c) = char::from_u32(self.rng.gen_range(0..0x11_0000)) {
                            break c;
                        }
                    }
                })
                .collect(),
            2 => (0..self.rng.gen_range(0..=max_len))
                .map(|_| char::from(self.rng.gen_range(0x20_u8..0x7f)))
                .collect(),
            _ => {
                let key = self.key();
                format!("s-{key}")
            }
        }
    }

    fn key(&mut self) -> u64 {
        self.next_key += 1;
        self.next_key
    }

    /// A random JSON value, at most `depth` levels deep.
    pub fn value(&mut self, depth: u32) -> Value {
        let scalar = depth == 0 || self.chance(0.5);
        if scalar {
            return match self.rng.gen_range(0..9) {
                0 => Value::Null,
                1 => Value::Bool(self.rng.r#gen()),
                2 => json!(self.rng.r#gen::<i64>()),
                3 => json!(self.rng.r#gen::<u64>()),
                4 => json!(self.rng.gen_range(-3_i64..200)),
                5 => json!(self.rng.r#gen::<f64>() * 1e6 - 5e5),
                6 => json!(self.pick(&[1e308, -1e308, 5e-324, f64::MAX, f64::MIN, 1e-7])),
                _ => Value::String(self.string(24)),
            };
        }
        let n = self.rng.gen_range(0..5);
        if self.chance(0.5) {
            Value::Array((0..n).map(|_| self.value(depth - 1)).collect())
        } else {
            let mut object = Map::new();
            for _ in 0..n {
                let key = if self.chance(0.3) {
                    self.pick(&["id", "op", "body", "limit", "peer", "conversation_id", "seq"])
                        .to_owned()
                } else {
                    self.string(8)
                };
                object.insert(key, self.value(depth - 1));
            }
            Value::Object(object)
        }
    }

    /// A frame id: mostly readable (strings and integers of every size), sometimes not.
    pub fn frame_id(&mut self) -> FrameId {
        let readable = |v: Value| FrameId { json: v.to_string(), echo: v };
        let unreadable = |json: &str| FrameId { json: json.to_owned(), echo: Value::Null };
        match self.rng.gen_range(0..12) {
            0..=2 => readable(json!(self.key())),
            3 => readable(json!(self.rng.r#gen::<i64>())),
            4 => readable(json!(self.pick(&[0_u64, u64::MAX, i64::MAX as u64, 1 << 53]))),
            5 => readable(json!(i64::MIN)),
            6 => {
                let mut s = self.string(40);
                s.retain(|c| c != '\0');
                readable(Value::String(s))
            }
            7 => readable(json!(format!("r-{}", self.key()))),
            8 => unreadable(self.pick(&[
                "1.5",
                "1.0",
                "1e3",
                "-0.5",
                "18446744073709551616",
                "-9223372036854775809",
                "true",
                "null",
                "[]",
                "{}",
                "[1]",
                "{\"id\":1}",
                "\"a\\u0000b\"",
            ])),
            _ => readable(json!(self.key())),
        }
    }

    /// A value of `field`'s type that the protocol accepts, for the attacker's own data.
    pub fn valid(&mut self, spec: &OpSpec, field: &Field) -> Option<Value> {
        let k = &self.known;
        Some(match (field.name, field.kind) {
            ("peer" | "user_id" | "after", _) => json!(k.peer),
            ("conversation_id", _) => json!(k.conversation),
            ("message_id", _) => json!(k.message),
            ("emoji", _) => json!("👍"),
            ("cursor", _) => json!(k.cursor),
            ("query", _) => json!("hello"),
            ("body", _) => json!(format!("hostile {}", self.key())),
            ("client_msg_id", _) => json!(format!("k-{}", self.key())),
            ("context", _) => json!("ctx:1"),
            ("before", _) => return None,
            ("before_seq" | "after_seq" | "up_to_seq" | "reply_to_seq", _) => json!(1),
            (_, Kind::Limit(max)) => json!(self.rng.gen_range(1..=max)),
            (_, Kind::Bool) => json!(false),
            (_, Kind::Until) => Value::Null,
            (_, Kind::Ids) => json!([k.peer]),
            (_, Kind::Attachments) => json!([]),
            (_, Kind::Metadata) => json!({"k": "v"}),
            (_, Kind::Choice(options)) => json!(options[0]),
            _ => panic!("no valid value for {}.{}", spec.op, field.name),
        })
    }

    /// An id of the right shape that names something odd: a stranger, the bystanders'
    /// data, the nil UUID, upper case.
    fn odd_id(&mut self) -> Value {
        let k = self.known.clone();
        let choices = [
            uuid::Uuid::now_v7().to_string(),
            uuid::Uuid::nil().to_string(),
            k.bystander_conversation.clone(),
            k.bystander_message.clone(),
            k.bystanders[0].clone(),
            k.bystanders[1].clone(),
            k.attacker.clone(),
            k.conversation.to_uppercase(),
            k.message.clone(),
            k.conversation.clone(),
        ];
        json!(self.pick(&choices))
    }

    /// A value of `field`'s type that is odd (and may be refused by a rule).
    fn odd(&mut self, field: &Field) -> Value {
        match field.kind {
            Kind::Id => self.odd_id(),
            Kind::Str | Kind::Until | Kind::Choice(_) => json!(self.string(40)),
            Kind::U64 | Kind::Seq | Kind::Limit(_) => json!(self.pick(&[
                0,
                1,
                2,
                3,
                100,
                101,
                500,
                501,
                u64::from(u32::MAX),
                i64::MAX as u64,
                u64::MAX
            ])),
            Kind::Bool => json!(self.rng.r#gen::<bool>()),
            Kind::Ids => {
                let n = self.pick(&[0_usize, 1, 2, 100, 101]);
                Value::Array((0..n).map(|_| self.odd_id()).collect())
            }
            Kind::Attachments => json!([{"url": self.string(30), "mime": self.string(10),
                                          "name": self.string(10), "size": self.rng.r#gen::<u32>()}]),
            Kind::Metadata => {
                let v = self.value(3);
                match v {
                    Value::Object(_) => v,
                    other => json!({ "v": other }),
                }
            }
        }
    }

    /// A value of any JSON type `field` does not take.
    pub fn wrong_type(&mut self, field: &Field) -> Value {
        loop {
            let v = self.pick(&wrong_values());
            if verdict(field, Some(&v)) == Verdict::TypeBad {
                return v;
            }
        }
    }

    /// The op's fields: each valid, absent, odd or mistyped.
    pub fn fields(&mut self, spec: &OpSpec, mix: [u32; 4]) -> Map<String, Value> {
        let mut fields = Map::new();
        let total: u32 = mix.iter().sum();
        for field in spec.fields {
            let roll = self.rng.gen_range(0..total);
            let value = if roll < mix[0] {
                self.valid(spec, field)
            } else if roll < mix[0] + mix[1] {
                None
            } else if roll < mix[0] + mix[1] + mix[2] {
                Some(self.odd(field))
            } else {
                Some(self.wrong_type(field))
            };
            if let Some(value) = value {
                fields.insert(field.name.to_owned(), value);
            }
        }
        if spec.op == "history" && fields.contains_key("before_seq") && self.chance(0.7) {
            fields.remove("after_seq");
        }
        // Unknown fields are ignored.
        if self.chance(0.2) {
            let name = format!("x{}", self.string(6));
            if !["id", "op"].contains(&name.as_str()) {
                let value = self.value(2);
                fields.insert(name, value);
            }
        }
        fields
    }

    /// A request frame of `spec` with `fields`.
    fn request(&mut self, spec: &OpSpec, fields: Map<String, Value>) -> (String, Value, Answer) {
        let id = self.frame_id();
        let mut frame = fields;
        frame.remove("id");
        frame.insert("op".into(), json!(spec.op));
        let body = Value::Object(frame).to_string();
        // `{"id":…,` spliced in front: the id as written (some are not valid JSON values).
        let text = format!("{{\"id\":{},{}", id.json, &body[1..]);
        let answer = if id.echo.is_null() || !id_parses(&id.json) {
            Answer::Error("bad_request")
        } else {
            answer_of(spec, &frame_fields(&text))
        };
        let echo = if id_parses(&id.json) { id.echo } else { Value::Null };
        (text, echo, answer)
    }

    /// A random case of the WebSocket barrage (text frames that keep the connection).
    pub fn ws_case(&mut self) -> WsCase {
        match self.rng.gen_range(0..100) {
            0..=29 => {
                let spec = self.pick(OPS);
                let fields = self.fields(&spec, [5, 2, 2, 1]);
                let (text, id, answer) = self.request(&spec, fields);
                WsCase::text("op_random_params", text, id, answer)
            }
            30..=44 => {
                let spec = self.pick(OPS);
                let fields = self.fields(&spec, [8, 0, 0, 0]);
                let (text, id, answer) = self.request(&spec, fields);
                WsCase::text("op_valid", text, id, answer)
            }
            45..=57 => self.random_json(),
            58..=67 => self.number_case(),
            68..=73 => self.unknown_op(),
            74..=79 => self.garbage_text(),
            80..=85 => self.nul_case(),
            86..=91 => self.limit_case(),
            92..=95 => self.deep_case(),
            _ => {
                let spec = self.pick(OPS);
                let fields = self.fields(&spec, [1, 0, 0, 3]);
                let (text, id, answer) = self.request(&spec, fields);
                WsCase::text("op_wrong_types", text, id, answer)
            }
        }
    }

    /// A random JSON value as a frame, sometimes an object with an `id` and an `op`.
    fn random_json(&mut self) -> WsCase {
        let mut value = self.value(4);
        if self.chance(0.6) {
            let mut object = match value {
                Value::Object(o) => o,
                other => {
                    let mut o = Map::new();
                    o.insert("v".into(), other);
                    o
                }
            };
            if self.chance(0.8) {
                let id = self.frame_id();
                object.insert("id".into(), serde_json::from_str(&id.json).unwrap_or(Value::Null));
            }
            if self.chance(0.8) {
                let op = if self.chance(0.7) { json!(self.pick(OPS).op) } else { self.value(1) };
                object.insert("op".into(), op);
            }
            value = Value::Object(object);
        }
        let text = value.to_string();
        let (id, answer) = expect_of_value(&value);
        WsCase::text("random_json", text, id, answer)
    }

    /// Floats, negatives, huge and malformed numbers where integers belong.
    fn number_case(&mut self) -> WsCase {
        let k = self.known.clone();
        let (op, name, base) = self.pick(&[
            ("history", "limit", format!(r#""conversation_id":"{}""#, k.conversation)),
            ("history", "before_seq", format!(r#""conversation_id":"{}""#, k.conversation)),
            ("history", "after_seq", format!(r#""conversation_id":"{}""#, k.conversation)),
            ("read", "up_to_seq", format!(r#""conversation_id":"{}""#, k.conversation)),
            ("delivered", "up_to_seq", format!(r#""conversation_id":"{}""#, k.conversation)),
            ("sync", "limit", String::new()),
            ("conversations", "limit", String::new()),
            ("blocks", "limit", String::new()),
            ("search", "limit", r#""query":"hello""#.to_owned()),
            (
                "send",
                "reply_to_seq",
                format!(r#""conversation_id":"{}","body":"re""#, k.conversation),
            ),
        ]);
        let raw = self.pick(&[
            "1.0",
            "1.5",
            "0.0",
            "-1",
            "-0",
            "-0.0",
            "1e2",
            "1E0",
            "1e-7",
            "-1e2",
            "0.1",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999999",
            "-9223372036854775808",
            "9223372036854775807",
            "1e308",
            "4294967296",
            "0",
            "7",
            "00",
            "01",
            "+1",
            ".5",
            "5.",
            "0x10",
            "NaN",
            "Infinity",
            "-",
            "1e400",
            "\"5\"",
        ]);
        let id = self.key();
        let sep = if base.is_empty() { "" } else { "," };
        let text = format!(r#"{{"id":{id},"op":"{op}",{base}{sep}"{name}":{raw}}}"#);
        let Ok(frame) = serde_json::from_str::<Value>(&text) else {
            // Not JSON at all ("00", "+1", "NaN", "1e400", …): unreadable.
            return WsCase::text("numbers", text, Value::Null, Answer::Error("bad_request"));
        };
        let spec = OPS.iter().find(|s| s.op == op).expect("op");
        let fields = frame.as_object().cloned().unwrap_or_default();
        WsCase::text("numbers", text, json!(id), answer_of(spec, &fields))
    }

    /// An `op` that is not one.
    fn unknown_op(&mut self) -> WsCase {
        let known: Vec<&str> = OPS.iter().map(|s| s.op).collect();
        let op = loop {
            let candidate = match self.rng.gen_range(0..3) {
                0 => self
                    .pick(&[
                        "PING",
                        "Ping",
                        " ping",
                        "ping ",
                        "ping\u{0}",
                        "pin",
                        "pingg",
                        "send\n",
                        "__proto__",
                        "constructor",
                        "",
                        "open;",
                        "héllo",
                        "ping\u{200b}",
                    ])
                    .to_owned(),
                1 => self.string(12),
                _ => format!("{}{}", self.pick(&known), self.string(3)),
            };
            if !known.contains(&candidate.as_str()) {
                break candidate;
            }
        };
        let id = self.key();
        let text = json!({"id": id, "op": op, "peer": self.known.peer}).to_string();
        WsCase::text("unknown_op", text, json!(id), Answer::Error("bad_request"))
    }

    /// Text that is not a JSON object: truncated frames, trailing garbage, scalars, noise.
    fn garbage_text(&mut self) -> WsCase {
        let id = self.key();
        let full = json!({"id": id, "op": "send", "conversation_id": self.known.conversation,
                          "body": "truncated"})
        .to_string();
        let text = match self.rng.gen_range(0..7) {
            0 => {
                let cut = self.rng.gen_range(0..full.len());
                full[..cut].to_owned()
            }
            1 => format!("{full} x"),
            2 => format!("{full}{full}"),
            3 => format!("\u{feff}{full}"),
            4 => self.string(60),
            5 => self
                .pick(&["", " ", "null", "[]", "1", "\"ping\"", "true", "{", "}", "[{}]"])
                .to_owned(),
            _ => full.replace('"', "'"),
        };
        // Whatever it is, it is not an object with a readable id: unless the noise happens
        // to be one (then any answer), it is unreadable.
        let (echo, answer) = match serde_json::from_str::<Value>(&text) {
            Ok(value) => expect_of_value(&value),
            Err(_) => (Value::Null, Answer::Error("bad_request")),
        };
        WsCase::text("garbage_text", text, echo, answer)
    }

    /// U+0000 in a string of an otherwise valid request → `bad_request`.
    fn nul_case(&mut self) -> WsCase {
        let k = self.known.clone();
        let nul = self.pick(&["\u{0}", "a\u{0}", "\u{0}b", "x\u{0}y"]);
        let id = self.key();
        let frame = match self.rng.gen_range(0..9) {
            0 => json!({"id": id, "op": "send", "conversation_id": k.conversation, "body": nul}),
            1 => json!({"id": id, "op": "send", "conversation_id": k.conversation, "body": "b",
                        "client_msg_id": nul}),
            2 => json!({"id": id, "op": "send", "conversation_id": k.conversation, "body": "b",
                        "metadata": {"k": nul}}),
            3 => json!({"id": id, "op": "open", "peer": k.peer, "context": nul}),
            4 => json!({"id": id, "op": "edit", "message_id": k.message, "body": nul}),
            5 => json!({"id": id, "op": "react", "message_id": k.message, "emoji": nul,
                        "state": "added"}),
            6 => json!({"id": id, "op": "conversations", "context": nul}),
            7 => json!({"id": id, "op": "sync", "cursor": nul}),
            _ => json!({"id": id, "op": "send", "conversation_id": k.conversation, "body": "b",
                        "attachments": [{"url": "https://cdn.example/a", "mime": "image/png",
                                         "name": nul}]}),
        };
        WsCase::text("nul", frame.to_string(), json!(id), Answer::Error("bad_request"))
    }

    /// Byte limits passed by one byte or by far → `too_large`.
    fn limit_case(&mut self) -> WsCase {
        let k = self.known.clone();
        let id = self.key();
        let over = |n: usize, unit: &str| unit.repeat(n);
        let attachment = |url: String, mime: String, name: String| {
            json!({"id": id, "op": "send", "conversation_id": k.conversation, "body": "",
                   "attachments": [{"url": url, "mime": mime, "name": name}]})
        };
        let frame = match self.rng.gen_range(0..11) {
            0 => json!({"id": id, "op": "send", "conversation_id": k.conversation,
                        "body": over(MAX_BODY + 1, "x")}),
            7 => json!({"id": id, "op": "react", "message_id": k.message,
                        "emoji": over(self.pick(&[9, 20]), "👍"), "state": "added"}),
            8 => attachment(
                format!("https://cdn.example/{}", over(2049 - 20, "u")),
                "image/png".into(),
                "n".into(),
            ),
            9 => attachment(
                "https://cdn.example/a".into(),
                format!("image/{}", over(122, "p")),
                "n".into(),
            ),
            10 => attachment(
                "https://cdn.example/a".into(),
                "image/png".into(),
                over(self.pick(&[128, 1000]), "ñ"),
            ),
            1 => json!({"id": id, "op": "edit", "message_id": k.message,
                        "body": over(MAX_BODY / 2 + 1, "é")}),
            2 => json!({"id": id, "op": "open", "peer": k.peer, "context": over(129, "c")}),
            3 => json!({"id": id, "op": "send", "conversation_id": k.conversation, "body": "b",
                        "client_msg_id": over(65, "k")}),
            4 => json!({"id": id, "op": "send", "conversation_id": k.conversation, "body": "b",
                        "metadata": {"k": over(4097, "m")}}),
            5 => json!({"id": id, "op": "search", "query": over(257, "q")}),
            _ => json!({"id": id, "op": "conversations", "context": over(129, "c")}),
        };
        WsCase::text("limits", frame.to_string(), json!(id), Answer::Error("too_large"))
    }

    /// Nesting past the parser's depth → unreadable; within it → an answer.
    fn deep_case(&mut self) -> WsCase {
        let id = self.key();
        let (open, close) = self.pick(&[("[", "]"), ("{\"a\":", "}")]);
        // Deeper than the parser takes, and the frame within `max_frame_bytes`.
        let most = (MAX_FRAME - 100) / (open.len() + close.len());
        let depth = self.pick(&[129_usize, 200, 1_000, 10_000, 30_000]).min(most);
        let deep = format!("{}1{}", open.repeat(depth), close.repeat(depth));
        let text = match self.rng.gen_range(0..4) {
            0 => deep,
            1 => open.repeat(depth),
            2 => format!(r#"{{"id":{id},"op":"send","metadata":{deep}}}"#),
            _ => format!(r#"{{"id":{id},"op":"ping","x":{deep}}}"#),
        };
        WsCase::text("deep_nesting", text, Value::Null, Answer::Error("bad_request"))
    }

    /// A case that ends its connection: binary, oversized, invalid UTF-8, protocol abuse.
    pub fn closing_case(&mut self) -> WsCase {
        let close = |category, payload| WsCase { category, payload, expect: WsExpect::Close(0) };
        let with = |mut case: WsCase, code: u16| {
            case.expect = WsExpect::Close(code);
            case
        };
        match self.rng.gen_range(0..14) {
            0 => {
                let n = self.pick(&[0_usize, 1, 100, 4_000]);
                let bytes = (0..n).map(|_| self.rng.r#gen()).collect();
                with(close("binary", WsPayload::Binary(bytes)), 1003)
            }
            1 => {
                let n = self.pick(&[MAX_FRAME + 1, MAX_FRAME + 100, 3 * MAX_FRAME]);
                let text = format!(r#"{{"id":1,"op":"ping","x":"{}"}}"#, "x".repeat(n));
                with(close("oversized", WsPayload::Text(text)), 1009)
            }
            2 => {
                // A fragmented message over the limit, each fragment under it.
                let half = MAX_FRAME / 2 + 10;
                let frames = vec![
                    Frame::message(vec![b' '; half], OpCode::Data(Data::Text), false),
                    Frame::message(vec![b' '; half], OpCode::Data(Data::Continue), true),
                ];
                with(close("oversized", WsPayload::Frames(frames)), 1009)
            }
            3 => {
                let n = MAX_FRAME + self.rng.gen_range(1..1000);
                with(close("oversized", WsPayload::Binary(vec![0; n])), 1009)
            }
            4..=6 => {
                let bad = self.pick(&[
                    &b"\xff"[..],
                    b"\xc0\xaf",
                    b"\xe0\x80\xaf",
                    b"\xed\xa0\x80",
                    b"\xf4\x90\x80\x80",
                    b"\xc3",
                    b"\x80",
                    b"\xf8\x88\x80\x80\x80",
                ]);
                let mut payload = br#"{"id":1,"op":"ping","x":""#.to_vec();
                payload.extend_from_slice(bad);
                payload.extend_from_slice(br#""}"#);
                let frames = if self.chance(0.5) {
                    vec![Frame::message(payload, OpCode::Data(Data::Text), true)]
                } else {
                    // Split in two: the bad bytes in the continuation.
                    let (a, b) = payload.split_at(20);
                    vec![
                        Frame::message(a.to_vec(), OpCode::Data(Data::Text), false),
                        Frame::message(b.to_vec(), OpCode::Data(Data::Continue), true),
                    ]
                };
                with(close("invalid_utf8", WsPayload::Frames(frames)), 1007)
            }
            7 => {
                let mut frame = Frame::message(b"{}".to_vec(), OpCode::Data(Data::Text), true);
                let header: &mut FrameHeader = frame.header_mut();
                match self.rng.gen_range(0..3) {
                    0 => header.rsv1 = true,
                    1 => header.rsv2 = true,
                    _ => header.rsv3 = true,
                }
                with(close("protocol", WsPayload::Frames(vec![frame])), 1002)
            }
            8 => {
                let frame = Frame::message(b"{}".to_vec(), OpCode::Data(Data::Continue), true);
                with(close("protocol", WsPayload::Frames(vec![frame])), 1002)
            }
            9 => {
                let code = self.pick(&[3_u8, 4, 5, 6, 7]);
                let frame =
                    Frame::message(b"{}".to_vec(), OpCode::Data(Data::Reserved(code)), true);
                with(close("protocol", WsPayload::Frames(vec![frame])), 1002)
            }
            10 => {
                // A control frame fragmented, or over 125 bytes.
                let ping = |is_final, payload: Vec<u8>| {
                    let header = FrameHeader {
                        is_final,
                        opcode: OpCode::Control(Control::Ping),
                        ..FrameHeader::default()
                    };
                    Frame::from_payload(header, payload.into())
                };
                let frame = if self.chance(0.5) {
                    ping(false, b"p".to_vec())
                } else {
                    ping(true, vec![b'p'; 126])
                };
                with(close("protocol", WsPayload::Frames(vec![frame])), 1002)
            }
            11 => {
                // A new message while a fragmented one is open.
                let frames = vec![
                    Frame::message(b"{\"id\":".to_vec(), OpCode::Data(Data::Text), false),
                    Frame::message(b"{}".to_vec(), OpCode::Data(Data::Text), true),
                ];
                with(close("protocol", WsPayload::Frames(frames)), 1002)
            }
            12 => {
                // An unmasked frame, written as it is.
                let mut bytes = Vec::new();
                Frame::message(br#"{"id":1,"op":"ping"}"#.to_vec(), OpCode::Data(Data::Text), true)
                    .format(&mut bytes)
                    .expect("format a frame");
                with(close("protocol", WsPayload::Bytes(bytes)), 1002)
            }
            _ => {
                let reserved = self.pick(&[0_u16, 999, 1004, 1005, 1006, 1015, 2999, 5000]);
                let header = FrameHeader {
                    opcode: OpCode::Control(Control::Close),
                    ..FrameHeader::default()
                };
                let frame = Frame::from_payload(header, reserved.to_be_bytes().to_vec().into());
                with(close("protocol", WsPayload::Frames(vec![frame])), 1002)
            }
        }
    }

    /// Cases of valid fragmented frames and control-frame noise that must be answered.
    pub fn control_case(&mut self) -> WsCase {
        let id = self.key();
        let request = format!(r#"{{"id":{id},"op":"ping"}}"#).into_bytes();
        if self.chance(0.5) {
            return WsCase {
                category: "ping_flood",
                payload: WsPayload::PingFlood(self.pick(&[10, 300])),
                expect: WsExpect::Reply(json!(id), Answer::Ok),
            };
        }
        // The request in fragments, with pings and pongs between them.
        let mut frames = Vec::new();
        let pieces = self.rng.gen_range(2..6);
        let size = request.len().div_ceil(pieces);
        let chunks: Vec<&[u8]> = request.chunks(size).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let opcode = if i == 0 { Data::Text } else { Data::Continue };
            frames.push(Frame::message(
                chunk.to_vec(),
                OpCode::Data(opcode),
                i + 1 == chunks.len(),
            ));
            if self.chance(0.5) {
                frames.push(Frame::ping(vec![7; 125]));
            }
            if self.chance(0.3) {
                frames.push(Frame::pong(b"unsolicited".to_vec()));
            }
        }
        WsCase {
            category: "fragments",
            payload: WsPayload::Frames(frames),
            expect: WsExpect::Reply(json!(id), Answer::Ok),
        }
    }
}

/// The JSON values "wrong type" picks from: one or more of every JSON type.
pub fn wrong_values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(false),
        json!(0),
        json!(7),
        json!(-3),
        json!(1.5),
        json!(1.0),
        json!(""),
        json!("x"),
        json!("not-a-uuid"),
        json!([]),
        json!([1, "a"]),
        json!(["x"]),
        json!({}),
        json!({"a": 1}),
    ]
}

/// Whether a frame id as written is a JSON value at all.
fn id_parses(json: &str) -> bool {
    serde_json::from_str::<Value>(json).is_ok()
}

fn frame_fields(text: &str) -> Map<String, Value> {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default()
}

/// docs/protocol.md "Frames": the reply to a parsed JSON value (id echo and answer).
pub fn expect_of_value(value: &Value) -> (Value, Answer) {
    let Value::Object(fields) = value else { return (Value::Null, Answer::Error("bad_request")) };
    let id = match fields.get("id") {
        Some(Value::String(s)) if !s.contains('\0') => Value::String(s.clone()),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Value::Number(n.clone()),
        _ => return (Value::Null, Answer::Error("bad_request")),
    };
    let Some(Value::String(op)) = fields.get("op") else {
        return (id, Answer::Error("bad_request"));
    };
    // Several specs per op (send): the answer is exact only when all agree.
    let specs: Vec<&OpSpec> = OPS.iter().filter(|s| s.op == op).collect();
    if specs.is_empty() {
        return (id, Answer::Error("bad_request"));
    }
    let answers: Vec<Answer> = specs.iter().map(|s| answer_of(s, fields)).collect();
    let answer =
        if answers.iter().all(|a| a == &answers[0]) { answers[0].clone() } else { Answer::Any };
    (id, answer)
}

/// The exhaustive sweep: every field of every op with every JSON type it does not take
/// (the others valid): each `bad_request`, with the frame's id.
pub fn wrong_type_sweep(known: &Known) -> Vec<(String, String, Map<String, Value>)> {
    let mut cases_from = Gen::new(0, known.clone());
    let mut cases = Vec::new();
    for spec in OPS {
        for field in spec.fields {
            for wrong in wrong_values() {
                if verdict(field, Some(&wrong)) != Verdict::TypeBad {
                    continue;
                }
                let mut fields = Map::new();
                for other in spec.fields {
                    if other.name == field.name {
                        continue;
                    }
                    if let Some(value) = cases_from.valid(spec, other)
                        && (other.required || spec.op != "history")
                    {
                        fields.insert(other.name.to_owned(), value);
                    }
                }
                fields.insert(field.name.to_owned(), wrong);
                cases.push((spec.op.to_owned(), field.name.to_owned(), fields));
            }
        }
    }
    cases
}
