//! The service API, `/v1/service/…` (docs/protocol.md "Service API"): the host's backend,
//! in any language, acting as the application through the library's `ServiceHandle`.
//! Authenticated by a service key (never a user token); without any key configured every
//! route answers 404. What a route does for one user (their list, unread, blocks, a
//! member's send) runs that user's operation through `ops::answer`, so no rule is written
//! here twice.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{RawPathParams, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use http::{HeaderValue, StatusCode, header};
use messaging_core::{Conversation, Cursor, Error, HistoryQuery, Message, SendMessage, UserId};
use serde::Serialize;
use serde_json::{Map, Value};

use super::HttpState;
use super::error::HttpError;
use super::fields;
use crate::auth::bearer_of;
use crate::ops::{self, Caller};
use crate::request::{self, Op};

/// What a service route does.
#[derive(Clone, Copy, Debug)]
enum Route {
    Open,
    ByContext,
    Conversation,
    SetMetadata,
    History,
    Post,
    Moderate,
    UserConversations,
    UserUnread,
    Block,
    Unblock,
    Token,
    DeleteUserMessages,
    Revoke,
}

/// `ttl_s` of a minted token: default and range (docs/protocol.md "Service API").
const TOKEN_TTL_S: (u64, u64, u64) = (3_600, 60, 2_592_000);

/// The service routes.
pub(super) fn routes() -> Router<Arc<HttpState>> {
    let to = |route: Route| {
        move |State(state): State<Arc<HttpState>>,
              params: Result<RawPathParams, axum::extract::rejection::RawPathParamsRejection>,
              request: Request| async move {
            match call(route, &state, params, request).await {
                Ok(response) => response,
                Err(error) => error.into_response(),
            }
        }
    };
    Router::new()
        .route("/v1/service/conversations", post(to(Route::Open)).get(to(Route::ByContext)))
        .route(
            "/v1/service/conversations/{conversation_id}",
            get(to(Route::Conversation)).patch(to(Route::SetMetadata)),
        )
        .route(
            "/v1/service/conversations/{conversation_id}/messages",
            get(to(Route::History)).post(to(Route::Post)),
        )
        .route("/v1/service/messages/{message_id}", delete(to(Route::Moderate)))
        .route("/v1/service/users/{user_id}/conversations", get(to(Route::UserConversations)))
        .route("/v1/service/users/{user_id}/unread", get(to(Route::UserUnread)))
        .route("/v1/service/users/{user_id}/messages", delete(to(Route::DeleteUserMessages)))
        .route("/v1/service/users/{user_id}/revoke", post(to(Route::Revoke)))
        .route("/v1/service/tokens", post(to(Route::Token)))
        .route(
            "/v1/service/users/{user_id}/blocks/{other_id}",
            put(to(Route::Block)).delete(to(Route::Unblock)),
        )
}

async fn call(
    route: Route,
    state: &HttpState,
    params: Result<RawPathParams, axum::extract::rejection::RawPathParamsRejection>,
    request: Request,
) -> Result<Response, HttpError> {
    let keys = &state.service_keys;
    if !keys.any() {
        return Err(HttpError::new(StatusCode::NOT_FOUND, "not_found", "no such route"));
    }
    let (parts, body) = request.into_parts();
    let presented = bearer_of(&parts.headers).unwrap_or_default();
    if presented.is_empty() || !keys.accepts(presented.as_bytes()) {
        return Err(HttpError::unauthorized("a service key is required"));
    }
    let body = super::read_body(state, body).await?;
    let mut fields = match route {
        Route::Open | Route::SetMetadata | Route::Post | Route::Token => fields::from_body(&body)?,
        Route::ByContext | Route::History | Route::UserConversations => {
            fields::from_query(parts.uri.query())?
        }
        _ => Map::new(),
    };
    let path = super::path_fields(params)?;
    let service = state.messenger.service();
    let bound = state.settings.answer_timeout;
    match route {
        Route::Open => {
            let [a, b] = members(&fields)?;
            let context = string(&fields, "context")?;
            let metadata = object(&fields, "metadata")?;
            let opened =
                within(bound, async { service.open(a, b, context.as_deref(), metadata).await })
                    .await?;
            #[derive(Serialize)]
            struct Data<'a> {
                conversation: &'a Conversation,
                created: bool,
            }
            Ok(json(
                &Data { conversation: &opened.conversation, created: opened.created },
                opened.created,
            ))
        }
        Route::ByContext => {
            let context = string(&fields, "context")?
                .ok_or_else(|| Error::invalid("`context` is required"))?;
            let limit = limit(&fields)?;
            let before = string(&fields, "before")?;
            let page = within(bound, async {
                service.conversations_by_context(&context, limit, before.as_deref()).await
            })
            .await?;
            #[derive(Serialize)]
            struct Data<'a> {
                conversations: &'a [Conversation],
                next: Option<&'a str>,
            }
            Ok(json(
                &Data { conversations: &page.conversations, next: page.next.as_deref() },
                false,
            ))
        }
        Route::Conversation => {
            let id = uuid(&path, "conversation_id")?;
            let conversation = within(bound, service.conversation(id.into())).await?;
            Ok(json(&ConversationData { conversation: &conversation }, false))
        }
        Route::SetMetadata => {
            let id = uuid(&path, "conversation_id")?;
            if !fields.contains_key("metadata") {
                return Err(
                    Error::invalid("`metadata` is required (an object, or null to clear)").into()
                );
            }
            let metadata = object(&fields, "metadata")?;
            let conversation = within(bound, service.set_metadata(id.into(), metadata)).await?;
            Ok(json(&ConversationData { conversation: &conversation }, false))
        }
        Route::History => {
            fields.extend(path);
            let Op::History { conversation_id, before_seq, after_seq, limit } =
                request::op_from_fields("history", &fields)?
            else {
                return Err(Error::invalid("not a history request").into());
            };
            let query = HistoryQuery { before_seq, after_seq, limit };
            let page = within(bound, service.history(conversation_id, query)).await?;
            #[derive(Serialize)]
            struct Data<'a> {
                messages: &'a [Message],
                has_more: bool,
            }
            Ok(json(&Data { messages: &page.messages, has_more: page.has_more }, false))
        }
        Route::Post => {
            let sender = fields.remove("sender_id").filter(|v| !v.is_null());
            fields.extend(path);
            if let Some(sender) = sender {
                let mut one = Map::new();
                one.insert("sender_id".into(), sender);
                let user: UserId = uuid(&one, "sender_id")?.into();
                return as_user(state, user, "send", &fields).await;
            }
            let Op::Send { to, body, attachments, reply_to_seq, client_msg_id, metadata } =
                request::op_from_fields("send", &fields)?
            else {
                return Err(Error::invalid("not a message").into());
            };
            let message =
                SendMessage { to, body, attachments, reply_to_seq, client_msg_id, metadata };
            let sent = within(bound, service.post(message)).await?;
            #[derive(Serialize)]
            struct Data<'a> {
                message: &'a Message,
                created: bool,
            }
            Ok(json(&Data { message: &sent.message, created: sent.created }, sent.created))
        }
        Route::Moderate => {
            let id = uuid(&path, "message_id")?;
            let message = within(bound, service.delete_message(id.into())).await?;
            #[derive(Serialize)]
            struct Data<'a> {
                message: &'a Message,
            }
            Ok(json(&Data { message: &message }, false))
        }
        Route::Token => {
            let user: UserId = uuid(&fields, "user_id")?.into();
            if user.as_uuid().is_nil() {
                return Err(Error::invalid("the nil UUID is not a user id").into());
            }
            let (default, min, max) = TOKEN_TTL_S;
            let ttl = match fields.get("ttl_s") {
                None | Some(Value::Null) => default,
                Some(Value::Number(n)) => n
                    .as_u64()
                    .filter(|ttl| (min..=max).contains(ttl))
                    .ok_or_else(|| Error::invalid(format!("`ttl_s` must be {min} to {max}")))?,
                Some(_) => return Err(Error::invalid("`ttl_s` must be an integer").into()),
            };
            let (token, expires) = state
                .minter
                .as_ref()
                .and_then(|minter| minter.mint(user, std::time::Duration::from_secs(ttl)))
                .ok_or_else(|| {
                    Error::invalid("this server verifies another service's tokens and mints none")
                })?;
            let expires_at = messaging_core::Timestamp::from_millis(
                i64::try_from(expires).unwrap_or(i64::MAX / 1000).saturating_mul(1000),
            );
            #[derive(Serialize)]
            struct Data {
                token: String,
                expires_at: messaging_core::Timestamp,
            }
            Ok(json(&Data { token, expires_at }, false))
        }
        Route::UserConversations => {
            let user = uuid(&path, "user_id")?.into();
            as_user(state, user, "conversations", &fields).await
        }
        Route::DeleteUserMessages => {
            let user = uuid(&path, "user_id")?.into();
            let deleted = within(bound, service.delete_user_messages(user)).await?;
            Ok(json(&serde_json::json!({ "deleted": deleted }), false))
        }
        Route::Revoke => {
            let user = uuid(&path, "user_id")?.into();
            within(bound, service.revoke(user)).await?;
            Ok(json(&serde_json::json!({}), false))
        }
        Route::UserUnread => {
            let user = uuid(&path, "user_id")?.into();
            as_user(state, user, "unread", &Map::new()).await
        }
        Route::Block | Route::Unblock => {
            let user = uuid(&path, "user_id")?.into();
            let mut target = Map::new();
            if let Some(other) = path.get("other_id") {
                target.insert("user_id".into(), other.clone());
            }
            let op = if matches!(route, Route::Block) { "block" } else { "unblock" };
            as_user(state, user, op, &target).await
        }
    }
}

/// `future` within the answer bound (`unavailable` past it; the future dropped).
async fn within<T>(
    bound: std::time::Duration,
    future: impl Future<Output = messaging_core::Result<T>>,
) -> messaging_core::Result<T> {
    tokio::time::timeout(bound, future)
        .await
        .unwrap_or_else(|_| Err(Error::unavailable("no answer within the answer bound")))
}

#[derive(Serialize)]
struct ConversationData<'a> {
    conversation: &'a Conversation,
}

/// Runs `op` as `user`: exactly that user's operation.
async fn as_user(
    state: &HttpState,
    user: UserId,
    op: &str,
    fields: &Map<String, Value>,
) -> Result<Response, HttpError> {
    let op = request::op_from_fields(op, fields)?;
    let caller = Caller { messenger: state.messenger.clone(), user, hello: Cursor::at(0) };
    let settings = &state.settings;
    let answer =
        ops::answer_within(&caller, op, settings.answer_timeout, &settings.metrics).await?;
    Ok(bytes(answer.data, answer.created))
}

fn json<T: Serialize>(data: &T, created: bool) -> Response {
    bytes(crate::frames::encode_data(data), created)
}

fn bytes(data: bytes::Bytes, created: bool) -> Response {
    let mut response = Response::new(Body::from(data));
    *response.status_mut() = if created { StatusCode::CREATED } else { StatusCode::OK };
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn uuid(fields: &Map<String, Value>, name: &str) -> Result<uuid::Uuid, Error> {
    fields
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| s.len() == 36)
        .and_then(|s| uuid::Uuid::try_parse(s).ok())
        .ok_or_else(|| Error::invalid(format!("`{name}` must be a UUID string")))
}

fn string(fields: &Map<String, Value>, name: &str) -> Result<Option<String>, Error> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Error::invalid(format!("`{name}` must be a string"))),
    }
}

fn object(fields: &Map<String, Value>, name: &str) -> Result<Option<Value>, Error> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(object @ Value::Object(_)) => Ok(Some(object.clone())),
        Some(_) => Err(Error::invalid(format!("`{name}` must be a JSON object or null"))),
    }
}

fn limit(fields: &Map<String, Value>) -> Result<Option<usize>, Error> {
    match fields.get("limit") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(|n| Some(usize::try_from(n).unwrap_or(usize::MAX)))
            .ok_or_else(|| Error::invalid("`limit` must be a non-negative integer")),
        Some(_) => Err(Error::invalid("`limit` must be a non-negative integer")),
    }
}

/// `members`: exactly two user ids.
fn members(fields: &Map<String, Value>) -> Result<[UserId; 2], Error> {
    let bad = || Error::invalid("`members` must be an array of two user ids");
    let list = fields.get("members").and_then(Value::as_array).ok_or_else(bad)?;
    let [a, b] = list.as_slice() else { return Err(bad()) };
    let id = |v: &Value| {
        let mut one = Map::new();
        one.insert("member".into(), v.clone());
        uuid(&one, "member").map(UserId::from).map_err(|_| bad())
    };
    Ok([id(a)?, id(b)?])
}
