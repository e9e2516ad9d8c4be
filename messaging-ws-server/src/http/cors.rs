//! CORS for the configured origins (docs/protocol.md "CORS"): browser pages of those
//! origins may call the user routes and the event stream; every other origin gets no CORS
//! header (and 403 on a preflight); without configured origins nothing is added.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use super::error::HttpError;

/// The methods of the user routes.
const METHODS: &str = "GET, POST, PUT, PATCH, DELETE";
/// The request headers a page may send.
const HEADERS: &str = "Authorization, Content-Type, Last-Event-ID";
/// How long a browser may cache a preflight's answer.
const MAX_AGE_S: &str = "600";

/// The allowed origins, as browsers send them (`scheme://host[:port]`).
#[derive(Debug, Default)]
pub(crate) struct Cors {
    origins: Vec<HeaderValue>,
}

impl Cors {
    /// Allows `origins` (checked at start: see `Transport::check`).
    pub(crate) fn new(origins: &[String]) -> Self {
        Self { origins: origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect() }
    }

    /// Whether `origin` is one of the allowed.
    pub(crate) fn allows(&self, origin: &HeaderValue) -> bool {
        self.origins.contains(origin)
    }

    /// The request's `Origin`, if it is one of the allowed.
    fn allowed<'a>(&self, headers: &'a HeaderMap) -> Option<&'a HeaderValue> {
        let origin = headers.get(header::ORIGIN)?;
        self.origins.contains(origin).then_some(origin)
    }
}

/// Answers preflights and marks the answers to allowed origins.
pub(crate) async fn layer(State(cors): State<Arc<Cors>>, request: Request, next: Next) -> Response {
    if cors.origins.is_empty() {
        return next.run(request).await;
    }
    let allowed = cors.allowed(request.headers()).cloned();
    let preflight = request.method() == Method::OPTIONS
        && request.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let Some(origin) = allowed else {
            return HttpError::new(StatusCode::FORBIDDEN, "forbidden", "origin not allowed")
                .into_response();
        };
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(METHODS));
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(HEADERS));
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(MAX_AGE_S));
        return response;
    }
    let mut response = next.run(request).await;
    if let Some(origin) = allowed {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        headers
            .insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("Retry-After"));
    }
    response
}

/// Whether `origin` is written as browsers send it: a scheme, a host and maybe a port,
/// nothing else (no path, no trailing slash).
pub(crate) fn is_origin(origin: &str) -> bool {
    url::Url::parse(origin).is_ok_and(|url| {
        let serialized = url.origin().ascii_serialization();
        serialized != "null" && serialized == origin
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_written_as_browsers_send_them() {
        for good in ["https://app.example", "http://localhost:3000", "https://a.b.example:8443"] {
            assert!(is_origin(good), "{good}");
        }
        for bad in ["https://app.example/", "app.example", "https://app.example/x", "*", ""] {
            assert!(!is_origin(bad), "{bad}");
        }
    }
}
