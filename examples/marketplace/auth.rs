//! The app's own sessions: an opaque random cookie per login, and the one
//! [`Authenticate`] the app's routes and the library's `/chat` routes both use, so a
//! browser logged in to the marketplace is logged in to its chat.
//!
//! Sessions are rows of `marketplace.db` (the token's SHA-256, never the token, so a
//! copy of the file logs nobody in), so a restart or a deploy keeps everyone logged in;
//! a memory cache in front spares the file a read per request. The cookie is `HttpOnly`
//! (page scripts never see it) and `SameSite=Lax`; because a browser sends it by itself,
//! [`CookieAuth::ambient_credentials`] is `true`, which makes the library refuse
//! cross-site `Origin`s on `/chat/v1/ws` and its writes, and [`check_origin`] does the
//! same for the app's own writes.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use http::request::Parts;
use http::{HeaderMap, Method, header};
use messaging_core::UserId;
use messaging_ws_server::Authenticate;
use messaging_ws_server::auth::AuthError;
use rusqlite::{OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::db::Db;
use crate::error::AppError;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "market_session";

/// How long a login lasts.
const SESSION_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// How many sessions the memory cache keeps before it starts over (the file has them all).
const CACHE_MAX: usize = 100_000;

/// A session token's SHA-256: what the file and the cache are keyed by.
type TokenHash = [u8; 32];

/// Cookie sessions, stored in the app's database. Cheap to clone (the clones share the
/// cache).
#[derive(Clone)]
pub struct CookieAuth {
    db: Db,
    cache: Arc<Cache>,
}

impl std::fmt::Debug for CookieAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the tokens.
        f.debug_struct("CookieAuth").finish_non_exhaustive()
    }
}

impl CookieAuth {
    /// Sessions kept in `db`.
    pub(crate) fn new(db: Db) -> Self {
        Self { db, cache: Arc::default() }
    }

    /// Starts a session for `user`: the `Set-Cookie` value to answer with.
    pub(crate) async fn log_in(&self, user: UserId) -> Result<String, AppError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|_| AppError::internal("no randomness"))?;
        let token = bytes.iter().fold(String::with_capacity(64), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        });
        let hash = hash_of(&token);
        let now = now_ms();
        let expires =
            now.saturating_add(i64::try_from(SESSION_TTL.as_millis()).unwrap_or(i64::MAX));
        let cache = self.cache.clone();
        self.db
            .call(move |conn| {
                // Expired rows go as new ones come, so the table stays the live sessions.
                conn.execute("DELETE FROM sessions WHERE expires_at <= ?1", params![now])?;
                conn.execute(
                    "INSERT INTO sessions (token_hash, user_id, expires_at) VALUES (?1, ?2, ?3)",
                    params![hash.as_slice(), user.to_string(), expires],
                )?;
                remember(&cache, hash, user, expires);
                Ok(())
            })
            .await?;
        Ok(format!(
            "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}",
            SESSION_TTL.as_secs()
        ))
    }

    /// Ends the session of `headers`' cookie, if any: the `Set-Cookie` value that clears
    /// it.
    pub(crate) async fn log_out(&self, headers: &HeaderMap) -> Result<String, AppError> {
        if let Some(token) = token_of(headers) {
            let hash = hash_of(token);
            let cache = self.cache.clone();
            self.db
                .call(move |conn| {
                    conn.execute("DELETE FROM sessions WHERE token_hash = ?1", [hash.as_slice()])?;
                    // Under the connection's lock, as every cache fill is: a lookup that read
                    // the row before this delete filled the cache before this runs.
                    cache
                        .lock()
                        .map_err(|_| AppError::internal("the sessions lock"))?
                        .remove(&hash);
                    Ok(())
                })
                .await?;
        }
        Ok(format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"))
    }

    /// The user of `headers`' session cookie, if it names a live session; `Err` only when
    /// the database cannot tell.
    pub(crate) async fn user_of(&self, headers: &HeaderMap) -> Result<Option<UserId>, AppError> {
        let Some(token) = token_of(headers) else { return Ok(None) };
        let hash = hash_of(token);
        let now = now_ms();
        let cached = self.cache.lock().ok().and_then(|cache| cache.get(&hash).copied());
        if let Some((user, expires)) = cached {
            return Ok((expires > now).then_some(user));
        }
        let cache = self.cache.clone();
        self.db
            .call(move |conn| {
                let row = conn
                    .query_row(
                        "SELECT user_id, expires_at FROM sessions
                         WHERE token_hash = ?1 AND expires_at > ?2",
                        params![hash.as_slice(), now],
                        |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)),
                    )
                    .optional()?;
                let found =
                    row.and_then(|(user, expires)| Some((user.parse::<UserId>().ok()?, expires)));
                if let Some((user, expires)) = found {
                    remember(&cache, hash, user, expires);
                }
                Ok(found.map(|(user, _)| user))
            })
            .await
    }
}

/// The session cache: token hash → (user, expiry in ms since the epoch).
type Cache = Mutex<HashMap<TokenHash, (UserId, i64)>>;

/// Caches a session. Called only under the database connection's lock, so fills and a
/// logout's removal happen in the order of their statements.
fn remember(cache: &Cache, hash: TokenHash, user: UserId, expires: i64) {
    if let Ok(mut cache) = cache.lock() {
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(hash, (user, expires));
    }
}

#[async_trait]
impl Authenticate for CookieAuth {
    async fn authenticate(&self, parts: &Parts) -> Result<UserId, AuthError> {
        match self.user_of(&parts.headers).await {
            Ok(Some(user)) => Ok(user),
            // The library answers 401 with this text (its `Missing` speaks of bearer tokens).
            Ok(None) => Err(AuthError::Refused("no session: log in with POST /login".into())),
            Err(_) => Err(AuthError::Unavailable),
        }
    }

    fn ambient_credentials(&self) -> bool {
        true
    }
}

fn hash_of(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

fn now_ms() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// The session token in the request's cookies (every `Cookie` header, each a `; ` list).
fn token_of(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE && !value.is_empty()).then_some(value)
        })
}

/// Refuses a state-changing request whose `Origin` is another site's (403), as the
/// library's routes do: with a cookie, any page a user visits could otherwise post
/// listings or contact sellers as them. A request without `Origin` is not a browser
/// page's and passes; so does a read.
pub(crate) fn check_origin(parts: &Parts) -> Result<(), AppError> {
    if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let Some(origin) = parts.headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().ok().and_then(|o| o.parse::<http::Uri>().ok());
    let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let host = host.and_then(|h| h.parse::<http::uri::Authority>().ok());
    let same = match (origin, host) {
        (Some(origin), Some(host)) => match (origin.scheme_str(), origin.authority()) {
            (Some(scheme), Some(authority)) => {
                let default = if scheme == "https" { 443 } else { 80 };
                authority.host().eq_ignore_ascii_case(host.host())
                    && authority.port_u16().unwrap_or(default) == host.port_u16().unwrap_or(default)
            }
            _ => false,
        },
        _ => false,
    };
    if same { Ok(()) } else { Err(AppError::forbidden("cross-site request refused")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: Method, host: &str, origin: Option<&str>) -> Parts {
        let mut request = http::Request::builder().method(method).uri("/listings");
        request = request.header("host", host);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn only_the_own_origin_may_write() {
        let post = |host, origin| check_origin(&parts(Method::POST, host, origin)).is_ok();
        assert!(post("127.0.0.1:8080", Some("http://127.0.0.1:8080")));
        assert!(post("market.example", Some("https://market.example")));
        assert!(post("market.example", None), "not a browser page");
        assert!(!post("127.0.0.1:8080", Some("http://127.0.0.1:9090")));
        assert!(!post("market.example", Some("https://evil.example")));
        assert!(!post("market.example", Some("null")));
        assert!(check_origin(&parts(Method::GET, "market.example", Some("https://x.y"))).is_ok());
    }

    #[tokio::test]
    async fn sessions_outlive_the_process_and_end_at_logout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("marketplace.db");
        let db = Db::open(path.clone()).await.unwrap();
        let user = crate::users::find_or_create(&db, "sam").await.unwrap().id;
        let auth = CookieAuth::new(db);
        let set = auth.log_in(user).await.unwrap();
        let token = set.split(';').next().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, format!("theme=dark; {token}").parse().unwrap());
        assert_eq!(auth.user_of(&headers).await.unwrap(), Some(user));

        // A restart: a new cache on the same file still knows the session.
        let restarted = CookieAuth::new(Db::open(path).await.unwrap());
        assert_eq!(restarted.user_of(&headers).await.unwrap(), Some(user));

        let mut forged = HeaderMap::new();
        forged.insert(header::COOKIE, format!("{COOKIE}=forged").parse().unwrap());
        assert_eq!(restarted.user_of(&forged).await.unwrap(), None);

        restarted.log_out(&headers).await.unwrap();
        assert_eq!(restarted.user_of(&headers).await.unwrap(), None);
        let again = CookieAuth::new(restarted.db.clone());
        assert_eq!(again.user_of(&headers).await.unwrap(), None, "gone from the file too");
    }
}
