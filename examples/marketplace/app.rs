//! The app's routes (JSON in, JSON out): each parses its input, checks who asks, calls
//! `listings`, `users` or `chat`, and answers. The rules live in those modules and in the
//! messaging library; a route only wires them.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use messaging_core::{ConversationSummary, ConversationsQuery, Messenger, UserId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::auth::{CookieAuth, check_origin};
use crate::chat;
use crate::db::Db;
use crate::error::{AppError, json};
use crate::listings::{self, ListQuery, Listing, NewListing, Status};
use crate::users::{self, User};

/// The largest request body the app's routes read.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// What the routes share. Cheap to clone.
#[derive(Clone)]
pub(crate) struct App {
    db: Db,
    auth: CookieAuth,
    messenger: Messenger,
}

impl App {
    pub(crate) fn new(db: Db, auth: CookieAuth, messenger: Messenger) -> Self {
        Self { db, auth, messenger }
    }

    /// Listing `id`, or 404.
    async fn listing(&self, id: i64) -> Result<Listing, AppError> {
        listings::get(&self.db, id).await?.ok_or_else(|| AppError::not_found("no such listing"))
    }

    /// Listing `id` if `user` sells it: 404 when missing, 403 when someone else's.
    async fn own_listing(&self, id: i64, user: UserId) -> Result<Listing, AppError> {
        let listing = self.listing(id).await?;
        if listing.seller_id != user {
            return Err(AppError::forbidden("only the listing's seller may do this"));
        }
        Ok(listing)
    }
}

/// The app's routes (the chat is nested beside them by the caller).
pub(crate) fn router(app: App) -> Router {
    Router::new()
        .route("/", get(|| page("text/html; charset=utf-8", INDEX_HTML)))
        .route("/static/chat-client.js", get(|| page(JS, CHAT_CLIENT_JS)))
        .route("/static/app.js", get(|| page(JS, APP_JS)))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/me", get(me))
        .route("/users", get(user_names))
        .route("/listings", get(list_listings).post(create_listing))
        .route("/listings/{id}", get(get_listing))
        .route("/listings/{id}/contact", post(contact))
        .route("/listings/{id}/inquiries", get(inquiries))
        .route("/listings/{id}/sold", post(sold))
        .fallback(|| async { AppError::not_found("no such route") })
        .layer(axum::middleware::map_response(method_not_allowed))
        .with_state(app)
}

#[derive(Deserialize)]
struct LoginBody {
    name: String,
}

/// The browser pages, built into the binary (no files to find at run time).
const INDEX_HTML: &str = include_str!("static/index.html");
const CHAT_CLIENT_JS: &str = include_str!("static/chat-client.js");
const APP_JS: &str = include_str!("static/app.js");
const JS: &str = "text/javascript; charset=utf-8";

/// A static page or script, revalidated on every load (they change with the build).
async fn page(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body)
        .into_response()
}

/// `POST /login {name}`: the user of that name (created on first login) and a session.
async fn login(
    State(app): State<App>,
    _: NotCrossSite,
    JsonBody(body): JsonBody<LoginBody>,
) -> Result<Response, AppError> {
    let user = users::find_or_create(&app.db, &body.name).await?;
    let cookie = app.auth.log_in(user.id).await?;
    with_cookie(json(StatusCode::OK, &UserAnswer { user: &user }), &cookie)
}

/// `POST /logout`: the session ends and its cookie is cleared.
async fn logout(
    State(app): State<App>,
    _: NotCrossSite,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let cookie = app.auth.log_out(&headers).await?;
    with_cookie(json(StatusCode::OK, &serde_json::Map::new()), &cookie)
}

/// `GET /me`: who the session is.
async fn me(State(app): State<App>, Caller(user): Caller) -> Result<Response, AppError> {
    let user = users::get(&app.db, user).await?.ok_or_else(AppError::unauthorized)?;
    Ok(json(StatusCode::OK, &UserAnswer { user: &user }))
}

/// `GET /users?ids=a,b,…`: the names of those users (logged-in callers; at most
/// [`users::MAX_LOOKUP`] ids; unknown ids are left out).
async fn user_names(
    State(app): State<App>,
    Caller(_): Caller,
    uri: Uri,
) -> Result<Response, AppError> {
    let query = QueryParams::of(&uri)?;
    let ids = query
        .get("ids")
        .ok_or_else(|| AppError::bad_request("ids is required"))?
        .split(',')
        .map(|id| id.parse::<UserId>().map_err(|_| AppError::bad_request("ids must be user ids")))
        .collect::<Result<Vec<_>, _>>()?;
    if ids.len() > users::MAX_LOOKUP {
        return Err(AppError::bad_request(format!("at most {} ids", users::MAX_LOOKUP)));
    }
    let users = users::names(&app.db, ids).await?;
    Ok(json(StatusCode::OK, &UsersAnswer { users: &users }))
}

/// `GET /listings?status&limit&before`: listings, newest first (no login needed).
async fn list_listings(State(app): State<App>, uri: Uri) -> Result<Response, AppError> {
    let query = QueryParams::of(&uri)?;
    let (default, most) = listings::PAGE;
    let limit = query.number("limit")?.map_or(Ok(default), |limit| {
        usize::try_from(limit)
            .ok()
            .filter(|limit| (1..=most).contains(limit))
            .ok_or_else(|| AppError::bad_request(format!("limit must be 1 to {most}")))
    })?;
    let query = ListQuery {
        status: query.get("status").map(Status::parse).transpose()?,
        limit,
        before: query.number("before")?,
    };
    Ok(json(StatusCode::OK, &listings::list(&app.db, query).await?))
}

#[derive(Deserialize)]
struct NewListingBody {
    title: String,
    price_cents: serde_json::Value,
}

/// `POST /listings {title, price_cents}`: a listing for sale by the caller.
async fn create_listing(
    State(app): State<App>,
    Caller(seller): Caller,
    JsonBody(body): JsonBody<NewListingBody>,
) -> Result<Response, AppError> {
    let new = NewListing::new(&body.title, &body.price_cents)?;
    let listing = listings::create(&app.db, seller, new).await?;
    Ok(json(StatusCode::CREATED, &ListingAnswer { listing: &listing }))
}

/// `GET /listings/{id}` (no login needed).
async fn get_listing(
    State(app): State<App>,
    ListingId(id): ListingId,
) -> Result<Response, AppError> {
    Ok(json(StatusCode::OK, &ListingAnswer { listing: &app.listing(id).await? }))
}

#[derive(Deserialize)]
struct ContactBody {
    message: String,
    client_msg_id: Option<String>,
}

/// `POST /listings/{id}/contact {message, client_msg_id?}`: the caller writes to the
/// seller about the listing; 201 with the conversation and the message (200 for a retry
/// with the same `client_msg_id`).
async fn contact(
    State(app): State<App>,
    Caller(buyer): Caller,
    ListingId(id): ListingId,
    JsonBody(body): JsonBody<ContactBody>,
) -> Result<Response, AppError> {
    let listing = app.listing(id).await?;
    if listing.seller_id == buyer {
        return Err(AppError::bad_request("this is your own listing"));
    }
    if listing.status == Status::Sold {
        return Err(AppError::conflict("this listing is sold"));
    }
    let contacted =
        chat::contact(&app.messenger, &listing, buyer, &body.message, body.client_msg_id).await?;
    // A sale between the check above and the open may have walked past this conversation.
    if app.listing(id).await?.status == Status::Sold {
        chat::notify_sold(&app.messenger, &contacted.conversation).await?;
    }
    let status = if contacted.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(json(status, &contacted))
}

/// `GET /listings/{id}/inquiries?limit&before&archived`: the seller's conversations about
/// the listing, as they see them (last message, unread count); 403 for anyone else.
async fn inquiries(
    State(app): State<App>,
    Caller(user): Caller,
    ListingId(id): ListingId,
    uri: Uri,
) -> Result<Response, AppError> {
    let params = QueryParams::of(&uri)?;
    let query = ConversationsQuery {
        limit: params.number("limit")?.map(|limit| usize::try_from(limit).unwrap_or(0)),
        before: params.get("before").map(str::to_owned),
        archived: match params.get("archived") {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(AppError::bad_request("archived must be true or false")),
        },
        context: None,
    };
    let listing = app.own_listing(id, user).await?;
    let page = chat::inquiries(&app.messenger, user, id, query).await?;
    let answer =
        Inquiries { listing: &listing, conversations: &page.conversations, next: page.next };
    Ok(json(StatusCode::OK, &answer))
}

/// `POST /listings/{id}/sold`: the seller marks it sold and every conversation about it
/// gets a system message. Repeating it is harmless (and finishes a notice an error cut
/// short): `notified` counts the conversations told by this call.
async fn sold(
    State(app): State<App>,
    Caller(user): Caller,
    ListingId(id): ListingId,
) -> Result<Response, AppError> {
    app.own_listing(id, user).await?;
    listings::mark_sold(&app.db, id).await?;
    let listing = app.listing(id).await?;
    let notified = chat::announce_sold(&app.messenger, &listing).await?;
    Ok(json(StatusCode::OK, &Sold { listing: &listing, notified }))
}

/// `{"user": …}`.
#[derive(Serialize)]
struct UserAnswer<'a> {
    user: &'a User,
}

/// `{"users": […]}`.
#[derive(Serialize)]
struct UsersAnswer<'a> {
    users: &'a [User],
}

/// `{"listing": …}`.
#[derive(Serialize)]
struct ListingAnswer<'a> {
    listing: &'a Listing,
}

/// The seller's inbox of a listing.
#[derive(Serialize)]
struct Inquiries<'a> {
    listing: &'a Listing,
    conversations: &'a [ConversationSummary],
    next: Option<String>,
}

/// A sale and how many conversations it told.
#[derive(Serialize)]
struct Sold<'a> {
    listing: &'a Listing,
    notified: u64,
}

/// axum answers a known route's other methods with an empty 405 and `Allow`: the body
/// becomes the error object, as the library's routes answer.
async fn method_not_allowed(response: Response) -> Response {
    if response.status() != StatusCode::METHOD_NOT_ALLOWED {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let mut answer = AppError::method_not_allowed().into_response();
    if let Some(allow) = allow {
        answer.headers_mut().insert(header::ALLOW, allow);
    }
    answer
}

fn with_cookie(mut response: Response, cookie: &str) -> Result<Response, AppError> {
    let value = HeaderValue::from_str(cookie).map_err(|_| AppError::internal("a cookie"))?;
    response.headers_mut().insert(header::SET_COOKIE, value);
    Ok(response)
}

/// The logged-in user of a request; for a write, only from the app's own pages.
struct Caller(UserId);

impl FromRequestParts<App> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, AppError> {
        check_origin(parts)?;
        app.auth.user_of(&parts.headers).await?.map(Caller).ok_or_else(AppError::unauthorized)
    }
}

/// A write from the app's own pages (or from no browser page), logged in or not.
struct NotCrossSite;

impl<S: Send + Sync> FromRequestParts<S> for NotCrossSite {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        check_origin(parts).map(|()| NotCrossSite)
    }
}

/// The `{id}` of a listing route: a positive integer (400 otherwise).
struct ListingId(i64);

impl<S: Send + Sync> FromRequestParts<S> for ListingId {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let bad = || AppError::bad_request("a listing id is a positive integer");
        let Path(id) = Path::<String>::from_request_parts(parts, state).await.map_err(|_| bad())?;
        id.parse().ok().filter(|id| *id > 0).map(ListingId).ok_or_else(bad)
    }
}

/// A JSON object body of at most [`MAX_BODY_BYTES`], read as `T` (413, 400 otherwise).
struct JsonBody<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = AppError;

    async fn from_request(request: Request, _: &S) -> Result<Self, AppError> {
        let bytes =
            axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES).await.map_err(|_| {
                AppError::too_large(format!("the body is larger than {MAX_BODY_BYTES} bytes"))
            })?;
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|_| AppError::bad_request("the body must be a JSON object"))?;
        if !value.is_object() {
            return Err(AppError::bad_request("the body must be a JSON object"));
        }
        serde_json::from_value(value)
            .map(JsonBody)
            .map_err(|error| AppError::bad_request(format!("the body: {error}")))
    }
}

/// A query string's parameters: an empty value counts as absent, a repeated one is 400
/// (as in the library's routes).
struct QueryParams(HashMap<String, String>);

impl QueryParams {
    fn of(uri: &Uri) -> Result<Self, AppError> {
        let mut params = HashMap::new();
        for (name, value) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
            if value.is_empty() {
                continue;
            }
            if params.insert(name.clone().into_owned(), value.into_owned()).is_some() {
                return Err(AppError::bad_request(format!("{name} is repeated")));
            }
        }
        Ok(Self(params))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A non-negative integer parameter.
    fn number(&self, name: &str) -> Result<Option<i64>, AppError> {
        self.get(name)
            .map(|text| {
                text.parse().ok().filter(|n: &i64| *n >= 0).ok_or_else(|| {
                    AppError::bad_request(format!("{name} must be a non-negative integer"))
                })
            })
            .transpose()
    }
}
