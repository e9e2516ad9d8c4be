//! Who is asking, for the HTTP routes: a trait the host can implement (cookie sessions, its
//! own tokens), with the server's JWT verifier as the default.

use async_trait::async_trait;
use http::request::Parts;
use messaging_core::UserId;

use crate::auth::{AuthError, Verifier, bearer_of};

/// Turns a request's parts into the user it acts for.
///
/// The standalone server uses [`Verifier`] (a JWT in `Authorization: Bearer`). A host that
/// mounts the routes in its own app implements this over what it already has, e.g. a
/// session cookie. With a cookie (anything a browser sends by itself), the host must also
/// check `Origin` on `/v1/ws` and on every state-changing route, or another site's page
/// can act for its users (cross-site WebSocket hijacking, CSRF).
///
/// ```
/// use messaging_core::UserId;
/// use messaging_ws_server::auth::AuthError;
/// use messaging_ws_server::http::Authenticate;
///
/// /// Trusts an `X-User` header set by the host's own gateway.
/// struct FromGateway;
///
/// #[async_trait::async_trait]
/// impl Authenticate for FromGateway {
///     async fn authenticate(&self, parts: &http::request::Parts) -> Result<UserId, AuthError> {
///         let value = parts.headers.get("x-user").ok_or(AuthError::Missing)?;
///         let text = value.to_str().map_err(|_| AuthError::BadSubject)?;
///         text.parse().map_err(|_| AuthError::BadSubject)
///     }
/// }
/// ```
#[async_trait]
pub trait Authenticate: Send + Sync + 'static {
    /// The user `parts` authenticates, or why not (answered 401).
    async fn authenticate(&self, parts: &Parts) -> Result<UserId, AuthError>;
}

#[async_trait]
impl Authenticate for Verifier {
    /// A JWT in `Authorization: Bearer <token>`; for the event stream also in the query's
    /// `access_token` (`EventSource` cannot set headers).
    async fn authenticate(&self, parts: &Parts) -> Result<UserId, AuthError> {
        let token = bearer_of(&parts.headers).or_else(|| {
            if !parts.uri.path().ends_with("/v1/events") {
                return None;
            }
            let query = parts.uri.query()?;
            form_urlencoded::parse(query.as_bytes())
                .find(|(name, _)| name == "access_token")
                .map(|(_, token)| token.into_owned())
        });
        self.verify(&token.ok_or(AuthError::Missing)?)
    }
}
