//! Client frames (docs/protocol.md "Frames" and "Operations") parsed into typed requests.
//!
//! Parsing goes through `serde_json::Value` rather than derived structs so that every
//! failure names the parameter and says what was expected, unknown fields are ignored, and
//! the request id is echoed exactly as sent (a string or an integer) even when the rest of
//! the frame is bad. Ranges and byte limits are not checked here: `Messenger` owns those
//! rules, so they mean the same thing for an embedding application.

use messaging_core::{
    Attachment, ConversationId, Error, MessageId, ReactionState, SendTarget, Timestamp,
    TypingState, UserId,
};
use serde::Deserialize;
use serde_json::{Map, Value};

/// A parsed request: its id (echoed in the reply) and what to do.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) id: Value,
    pub(crate) op: Op,
}

/// One operation of docs/protocol.md with its parameters.
#[derive(Debug)]
pub(crate) enum Op {
    Open {
        peer: UserId,
        context: Option<String>,
    },
    Send {
        to: SendTarget,
        body: String,
        attachments: Vec<Attachment>,
        reply_to_seq: Option<u64>,
        client_msg_id: Option<String>,
        metadata: Option<Value>,
    },
    History {
        conversation_id: ConversationId,
        before_seq: Option<u64>,
        after_seq: Option<u64>,
        limit: Option<usize>,
    },
    Conversations {
        limit: Option<usize>,
        before: Option<String>,
        archived: bool,
        context: Option<String>,
    },
    Conversation {
        conversation_id: ConversationId,
    },
    React {
        message_id: MessageId,
        emoji: String,
        state: ReactionState,
    },
    Mute {
        conversation_id: ConversationId,
        until: Option<Timestamp>,
    },
    Archive {
        conversation_id: ConversationId,
        archived: bool,
    },
    Blocks {
        limit: Option<usize>,
        after: Option<UserId>,
    },
    Read {
        conversation_id: ConversationId,
        up_to_seq: u64,
    },
    Delivered {
        conversation_id: ConversationId,
        up_to_seq: u64,
    },
    Edit {
        message_id: MessageId,
        body: String,
    },
    Delete {
        message_id: MessageId,
    },
    Typing {
        conversation_id: ConversationId,
        state: TypingState,
    },
    Sync {
        cursor: Option<String>,
        limit: Option<usize>,
    },
    Search {
        query: String,
        conversation_id: Option<ConversationId>,
        limit: Option<usize>,
    },
    Unread,
    Presence {
        user_ids: Vec<UserId>,
    },
    Block {
        user_id: UserId,
    },
    Unblock {
        user_id: UserId,
    },
    Ping,
}

impl Op {
    /// The protocol's name of the operation (metrics label).
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Open { .. } => "open",
            Self::Send { .. } => "send",
            Self::History { .. } => "history",
            Self::Conversations { .. } => "conversations",
            Self::Conversation { .. } => "conversation",
            Self::React { .. } => "react",
            Self::Mute { .. } => "mute",
            Self::Archive { .. } => "archive",
            Self::Blocks { .. } => "blocks",
            Self::Read { .. } => "read",
            Self::Delivered { .. } => "delivered",
            Self::Edit { .. } => "edit",
            Self::Delete { .. } => "delete",
            Self::Typing { .. } => "typing",
            Self::Sync { .. } => "sync",
            Self::Search { .. } => "search",
            Self::Unread => "unread",
            Self::Presence { .. } => "presence",
            Self::Block { .. } => "block",
            Self::Unblock { .. } => "unblock",
            Self::Ping => "ping",
        }
    }
}

/// A request that could not be parsed: the id to answer with (`null` when none could be
/// read) and the error (`bad_request`).
#[derive(Debug)]
pub(crate) struct Rejected {
    pub(crate) id: Value,
    pub(crate) error: Error,
}

/// Parses one text frame.
pub(crate) fn parse(text: &str) -> Result<Request, Rejected> {
    let reject = |id: Value, why: String| Rejected { id, error: Error::invalid(why) };
    let value: Value = serde_json::from_str(text)
        .map_err(|e| reject(Value::Null, format!("the frame is not valid JSON: {e}")))?;
    let Value::Object(fields) = value else {
        return Err(reject(Value::Null, "the frame is not a JSON object".into()));
    };
    let id = match fields.get("id") {
        Some(Value::String(id)) if id.contains('\0') => {
            return Err(reject(Value::Null, "`id` contains U+0000".into()));
        }
        Some(id @ Value::String(_)) => id.clone(),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Value::Number(n.clone()),
        Some(_) => return Err(reject(Value::Null, "`id` must be a string or an integer".into())),
        None => return Err(reject(Value::Null, "`id` is missing".into())),
    };
    let op = match fields.get("op") {
        Some(Value::String(op)) => op.as_str(),
        Some(_) => return Err(reject(id, "`op` must be a string".into())),
        None => return Err(reject(id, "`op` is missing".into())),
    };
    let p = Params(&fields);
    match op_of(op, &p) {
        Ok(op) => Ok(Request { id, op }),
        Err(error) => Err(Rejected { id, error }),
    }
}

/// The operation `op` with its parameters taken from `fields` (an HTTP route's path,
/// query and body, merged): the same parsing, so the same errors, as a WebSocket frame.
pub(crate) fn op_from_fields(op: &str, fields: &Map<String, Value>) -> Result<Op, Error> {
    op_of(op, &Params(fields))
}

fn op_of(op: &str, p: &Params<'_>) -> Result<Op, Error> {
    Ok(match op {
        "open" => Op::Open { peer: p.id("peer")?, context: p.context()? },
        "send" => {
            let to = match (p.opt_id("conversation_id")?, p.opt_id("peer")?) {
                (Some(id), None) => SendTarget::Conversation(id),
                (None, Some(peer)) => SendTarget::Peer { peer, context: p.context()? },
                (Some(_), Some(_)) => {
                    return Err(Error::invalid("give `conversation_id` or `peer`, not both"));
                }
                (None, None) => {
                    return Err(Error::invalid("`conversation_id` or `peer` is required"));
                }
            };
            Op::Send {
                to,
                body: p.string("body")?,
                attachments: p.attachments()?,
                reply_to_seq: p.opt_u64("reply_to_seq")?,
                client_msg_id: p.opt_string("client_msg_id")?,
                metadata: p.metadata()?,
            }
        }
        "history" => Op::History {
            conversation_id: p.id("conversation_id")?,
            before_seq: p.opt_u64("before_seq")?,
            after_seq: p.opt_u64("after_seq")?,
            limit: p.opt_limit()?,
        },
        "conversations" => Op::Conversations {
            limit: p.opt_limit()?,
            before: p.opt_string("before")?,
            archived: p.opt_bool("archived")?.unwrap_or(false),
            // An empty filter is refused by the messenger (1 to 128 bytes), not dropped.
            context: p.opt_string("context")?,
        },
        "conversation" => Op::Conversation { conversation_id: p.id("conversation_id")? },
        "react" => Op::React {
            message_id: p.id("message_id")?,
            emoji: p.string("emoji")?,
            state: match p.string("state")?.as_str() {
                "added" => ReactionState::Added,
                "removed" => ReactionState::Removed,
                _ => return Err(Error::invalid("`state` must be \"added\" or \"removed\"")),
            },
        },
        "mute" => Op::Mute { conversation_id: p.id("conversation_id")?, until: p.until()? },
        "archive" => Op::Archive {
            conversation_id: p.id("conversation_id")?,
            archived: p.opt_bool("archived")?.ok_or_else(|| missing("archived"))?,
        },
        "blocks" => Op::Blocks { limit: p.opt_limit()?, after: p.opt_id("after")? },
        "read" => {
            Op::Read { conversation_id: p.id("conversation_id")?, up_to_seq: p.u64("up_to_seq")? }
        }
        "delivered" => Op::Delivered {
            conversation_id: p.id("conversation_id")?,
            up_to_seq: p.u64("up_to_seq")?,
        },
        "edit" => Op::Edit { message_id: p.id("message_id")?, body: p.string("body")? },
        "delete" => Op::Delete { message_id: p.id("message_id")? },
        "typing" => Op::Typing {
            conversation_id: p.id("conversation_id")?,
            state: match p.string("state")?.as_str() {
                "started" => TypingState::Started,
                "stopped" => TypingState::Stopped,
                _ => return Err(Error::invalid("`state` must be \"started\" or \"stopped\"")),
            },
        },
        "sync" => Op::Sync { cursor: p.opt_string("cursor")?, limit: p.opt_limit()? },
        "search" => Op::Search {
            query: p.string("query")?,
            conversation_id: p.opt_id("conversation_id")?,
            limit: p.opt_limit()?,
        },
        "unread" => Op::Unread,
        "presence" => Op::Presence { user_ids: p.ids("user_ids")? },
        "block" => Op::Block { user_id: p.id("user_id")? },
        "unblock" => Op::Unblock { user_id: p.id("user_id")? },
        "ping" => Op::Ping,
        other => return Err(Error::invalid(format!("unknown op {other:?}"))),
    })
}

/// The fields of a request object, read by name and type. `null` counts as absent.
struct Params<'a>(&'a Map<String, Value>);

impl Params<'_> {
    fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    fn opt_string(&self, name: &str) -> Result<Option<String>, Error> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(Error::invalid(format!("`{name}` must be a string"))),
        }
    }

    fn string(&self, name: &str) -> Result<String, Error> {
        self.opt_string(name)?.ok_or_else(|| missing(name))
    }

    fn opt_id<T: From<uuid::Uuid>>(&self, name: &str) -> Result<Option<T>, Error> {
        self.get(name).map(|v| uuid_of(name, v)).transpose()
    }

    fn id<T: From<uuid::Uuid>>(&self, name: &str) -> Result<T, Error> {
        self.opt_id(name)?.ok_or_else(|| missing(name))
    }

    fn ids<T: From<uuid::Uuid>>(&self, name: &str) -> Result<Vec<T>, Error> {
        match self.get(name) {
            None => Err(missing(name)),
            Some(Value::Array(items)) => items.iter().map(|v| uuid_of(name, v)).collect(),
            Some(_) => Err(Error::invalid(format!("`{name}` must be an array of UUID strings"))),
        }
    }

    fn opt_u64(&self, name: &str) -> Result<Option<u64>, Error> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| Error::invalid(format!("`{name}` must be a non-negative integer"))),
            Some(_) => Err(Error::invalid(format!("`{name}` must be a non-negative integer"))),
        }
    }

    fn u64(&self, name: &str) -> Result<u64, Error> {
        self.opt_u64(name)?.ok_or_else(|| missing(name))
    }

    fn opt_bool(&self, name: &str) -> Result<Option<bool>, Error> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(Error::invalid(format!("`{name}` must be true or false"))),
        }
    }

    /// `mute`'s `until`: required, where `null` (present) means unmute and absent is an
    /// error, so a client that forgot the field does not unmute by accident.
    fn until(&self) -> Result<Option<Timestamp>, Error> {
        match self.0.get("until") {
            None => Err(Error::invalid("`until` is required (a timestamp, or null to unmute)")),
            Some(Value::Null) => Ok(None),
            Some(Value::String(ts)) => Timestamp::parse_rfc3339(ts)
                .map(Some)
                .map_err(|_| Error::invalid("`until` must be an RFC 3339 timestamp or null")),
            Some(_) => Err(Error::invalid("`until` must be an RFC 3339 timestamp or null")),
        }
    }

    /// `limit`: its range is the operation's (checked by `Messenger`); here only the type.
    fn opt_limit(&self) -> Result<Option<usize>, Error> {
        Ok(self.opt_u64("limit")?.map(|n| usize::try_from(n).unwrap_or(usize::MAX)))
    }

    /// `context`: an empty one is the same as none (docs/protocol.md "Objects").
    fn context(&self) -> Result<Option<String>, Error> {
        Ok(self.opt_string("context")?.filter(|c| !c.is_empty()))
    }

    /// `attachments`: an array of Attachment objects (absent or `null`: none). Each field
    /// has its type (strings, non-negative integers or `null`); the rules on their values
    /// are the messenger's.
    fn attachments(&self) -> Result<Vec<Attachment>, Error> {
        match self.get("attachments") {
            None => Ok(Vec::new()),
            Some(list @ Value::Array(_)) => Vec::<Attachment>::deserialize(list)
                .map_err(|e| Error::invalid(format!("`attachments`: {e}"))),
            Some(_) => Err(Error::invalid("`attachments` must be an array")),
        }
    }

    fn metadata(&self) -> Result<Option<Value>, Error> {
        match self.get("metadata") {
            None => Ok(None),
            Some(object @ Value::Object(_)) => Ok(Some(object.clone())),
            Some(_) => Err(Error::invalid("`metadata` must be a JSON object")),
        }
    }
}

fn missing(name: &str) -> Error {
    Error::invalid(format!("`{name}` is required"))
}

/// A UUID in its hyphenated 36-character form (either case): the form replies use, so a
/// client comparing ids as strings never meets two spellings of one id.
fn uuid_of<T: From<uuid::Uuid>>(name: &str, value: &Value) -> Result<T, Error> {
    value
        .as_str()
        .filter(|s| s.len() == 36)
        .and_then(|s| uuid::Uuid::try_parse(s).ok())
        .map(T::from)
        .ok_or_else(|| Error::invalid(format!("`{name}` must be a UUID string")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(text: &str) -> Rejected {
        match parse(text) {
            Ok(request) => panic!("{text} parsed as {request:?}"),
            Err(rejected) => rejected,
        }
    }

    #[test]
    fn bad_frames_are_bad_requests_with_the_id_when_readable() {
        for text in
            ["not json", "[1,2]", "\"op\"", "{\"op\":\"ping\"}", "{\"id\":1.5,\"op\":\"ping\"}"]
        {
            let r = rejected(text);
            assert_eq!(r.id, Value::Null, "{text}");
            assert_eq!(r.error.code(), "bad_request", "{text}");
        }
        let r = rejected(r#"{"id":"a","op":"fly"}"#);
        assert_eq!((r.id, r.error.code()), (Value::from("a"), "bad_request"));
        let r = rejected(r#"{"id":7}"#);
        assert_eq!((r.id, r.error.code()), (Value::from(7), "bad_request"));
    }

    #[test]
    fn parameters_are_typed_and_unknown_fields_ignored() {
        let id = uuid::Uuid::now_v7();
        let ok = parse(&format!(
            r#"{{"id":1,"op":"history","conversation_id":"{id}","limit":5,"extra":true}}"#
        ))
        .map(|r| r.op);
        assert!(matches!(ok, Ok(Op::History { limit: Some(5), before_seq: None, .. })));
        for bad in [
            r#"{"id":1,"op":"history","conversation_id":"nope"}"#,
            r#"{"id":1,"op":"history"}"#,
            &format!(r#"{{"id":1,"op":"history","conversation_id":"{id}","limit":-1}}"#),
            &format!(r#"{{"id":1,"op":"history","conversation_id":"{id}","limit":"5"}}"#),
            &format!(
                r#"{{"id":1,"op":"send","conversation_id":"{id}","body":"x","metadata":[1]}}"#
            ),
            &format!(r#"{{"id":1,"op":"send","conversation_id":"{id}","peer":"{id}","body":"x"}}"#),
            &format!(r#"{{"id":1,"op":"typing","conversation_id":"{id}","state":"maybe"}}"#),
        ] {
            assert_eq!(rejected(bad).error.code(), "bad_request", "{bad}");
        }
    }

    #[test]
    fn an_empty_context_is_no_context() {
        let peer = uuid::Uuid::now_v7();
        let op =
            parse(&format!(r#"{{"id":1,"op":"open","peer":"{peer}","context":""}}"#)).map(|r| r.op);
        assert!(matches!(op, Ok(Op::Open { context: None, .. })));
    }
}
