//! Cross-site request checks for authenticators whose credentials a browser sends by itself
//! (cookies): without them, any site's page could open a WebSocket as the visitor
//! (cross-site WebSocket hijacking: WebSockets have no CORS) or post on their behalf (CSRF).
//!
//! When [`Authenticate::ambient_credentials`](super::Authenticate::ambient_credentials)
//! says so, `/v1/ws` and every state-changing route (any method but `GET`, `HEAD` and
//! `OPTIONS`) refuse a request whose `Origin` is neither the server's own (the `Host` it
//! was asked as) nor a configured CORS origin: 403. A request without `Origin` comes from
//! something other than a browser page (browsers send it on these requests) and passes.

use http::request::Parts;
use http::{Method, StatusCode, header};

use super::HttpState;
use super::error::HttpError;

/// Whether `parts` may go on: `Err` is the 403 to answer.
pub(crate) fn check(state: &HttpState, parts: &Parts) -> Result<(), HttpError> {
    if !state.auth.ambient_credentials() {
        return Ok(());
    }
    let Some(origin) = parts.headers.get(header::ORIGIN) else {
        return Ok(());
    };
    if state.cors.allows(origin) || same_origin(parts, origin) {
        return Ok(());
    }
    tracing::debug!(?origin, path = parts.uri.path(), "cross-site request refused");
    Err(HttpError::new(StatusCode::FORBIDDEN, "forbidden", "cross-site request refused"))
}

/// Whether the request changes state (and so needs [`check`] under cookie authentication).
pub(crate) fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether `origin` names the host and port the request was sent to.
fn same_origin(parts: &Parts, origin: &http::HeaderValue) -> bool {
    let Some(url) = origin.to_str().ok().and_then(|o| url::Url::parse(o).ok()) else {
        return false;
    };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<http::uri::Authority>().ok())
        .or_else(|| parts.uri.authority().cloned());
    let (Some(host), Some(origin_host)) = (host, url.host_str()) else {
        return false;
    };
    let port = host.port_u16().or_else(|| url.port_or_known_default());
    host.host().eq_ignore_ascii_case(origin_host) && port == url.port_or_known_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(host: &str) -> Parts {
        let (parts, ()) = http::Request::builder()
            .uri("/v1/ws")
            .header("host", host)
            .body(())
            .unwrap()
            .into_parts();
        parts
    }

    #[test]
    fn the_same_host_and_port_is_the_same_origin() {
        let same = |host: &str, origin: &str| {
            same_origin(&parts(host), &http::HeaderValue::from_str(origin).unwrap())
        };
        assert!(same("127.0.0.1:8080", "http://127.0.0.1:8080"));
        assert!(same("app.example", "https://app.example"));
        assert!(same("App.Example", "https://app.example"));
        assert!(!same("app.example:8080", "https://app.example"));
        assert!(!same("app.example", "https://evil.example"));
        assert!(!same("app.example", "null"));
    }
}
