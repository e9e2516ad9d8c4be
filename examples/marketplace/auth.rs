//! The app's own sessions: an opaque random cookie per login, and the one
//! [`Authenticate`] the app's routes and the library's `/chat` routes both use, so a
//! browser logged in to the marketplace is logged in to its chat.
//!
//! Sessions are kept in memory: a restart logs everyone out, which a demo can afford (a
//! real app keeps them in its database or a session store). The cookie is `HttpOnly`
//! (page scripts never see it) and `SameSite=Lax`; because a browser sends it by itself,
//! [`CookieAuth::ambient_credentials`] is `true`, which makes the library refuse
//! cross-site `Origin`s on `/chat/v1/ws` and its writes, and [`check_origin`] does the
//! same for the app's own writes.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use http::request::Parts;
use http::{HeaderMap, Method, header};
use messaging_core::UserId;
use messaging_ws_server::Authenticate;
use messaging_ws_server::auth::AuthError;

use crate::error::AppError;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "market_session";

/// Cookie sessions: session token → user. Cheap to clone (the clones share sessions).
#[derive(Clone, Default)]
pub struct CookieAuth {
    sessions: Arc<Mutex<HashMap<String, UserId>>>,
}

impl std::fmt::Debug for CookieAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the tokens.
        f.debug_struct("CookieAuth").finish_non_exhaustive()
    }
}

impl CookieAuth {
    /// Starts a session for `user`: the `Set-Cookie` value to answer with.
    pub(crate) fn log_in(&self, user: UserId) -> Result<String, AppError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|_| AppError::internal("no randomness"))?;
        let token = bytes.iter().fold(String::with_capacity(64), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        });
        self.sessions
            .lock()
            .map_err(|_| AppError::internal("the sessions lock"))?
            .insert(token.clone(), user);
        Ok(format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax"))
    }

    /// Ends the session of `headers`' cookie, if any: the `Set-Cookie` value that clears
    /// it.
    pub(crate) fn log_out(&self, headers: &HeaderMap) -> Result<String, AppError> {
        if let Some(token) = token_of(headers) {
            self.sessions
                .lock()
                .map_err(|_| AppError::internal("the sessions lock"))?
                .remove(token);
        }
        Ok(format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"))
    }

    /// The user of `headers`' session cookie, if it names a session.
    pub(crate) fn user_of(&self, headers: &HeaderMap) -> Option<UserId> {
        let token = token_of(headers)?;
        self.sessions.lock().ok()?.get(token).copied()
    }
}

#[async_trait]
impl Authenticate for CookieAuth {
    async fn authenticate(&self, parts: &Parts) -> Result<UserId, AuthError> {
        // The library answers 401 with this text (its `Missing` speaks of bearer tokens).
        self.user_of(&parts.headers)
            .ok_or_else(|| AuthError::Refused("no session: log in with POST /login".into()))
    }

    fn ambient_credentials(&self) -> bool {
        true
    }
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

    #[test]
    fn the_token_is_found_among_other_cookies() {
        let auth = CookieAuth::default();
        let user = UserId::new();
        let set = auth.log_in(user).unwrap();
        let token = set.split(';').next().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, format!("theme=dark; {token}").parse().unwrap());
        assert_eq!(auth.user_of(&headers), Some(user));
        headers.insert(header::COOKIE, format!("{COOKIE}=forged").parse().unwrap());
        assert_eq!(auth.user_of(&headers), None);
    }
}
