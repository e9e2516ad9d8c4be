//! Who is asking, for the HTTP routes: a trait the host can implement (cookie sessions, its
//! own tokens), with the server's JWT verifier as the default.

use async_trait::async_trait;
use http::request::Parts;
use messaging_core::UserId;

use messaging_core::Messenger;

use crate::auth::{AuthError, Verifier, bearer_of};

/// Turns a request's parts into the user it acts for.
///
/// The standalone server uses [`Verifier`] (a JWT in `Authorization: Bearer`). A host that
/// mounts the routes in its own app implements this over what it already has, e.g. a
/// session cookie. With a cookie (anything a browser sends by itself), another site's page
/// could act for the host's users (cross-site WebSocket hijacking, CSRF): such an
/// authenticator returns `true` from [`ambient_credentials`](Self::ambient_credentials),
/// and the routes then refuse `/v1/ws` and every state-changing request whose `Origin` is
/// neither the server's own nor a configured CORS origin (403).
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

    /// Whether browsers send the credentials by themselves (cookies, HTTP authentication):
    /// then `Origin` is checked as the trait's docs say. Default `false` (a bearer token a
    /// page's script must attach).
    fn ambient_credentials(&self) -> bool {
        false
    }
}

/// The standalone server's authentication: a JWT checked by a [`Verifier`], in
/// `Authorization: Bearer`, or for `/v1/ws` and `/v1/events` in the query's `access_token`
/// (browsers cannot set headers there), refused once the service API revoked its user's
/// tokens (docs/protocol.md "Service API").
#[derive(Clone, Debug)]
pub struct JwtAuth {
    verifier: Verifier,
    messenger: Messenger,
}

impl JwtAuth {
    /// Verifies tokens with `verifier`, checking revocations in `messenger`'s store.
    #[must_use]
    pub fn new(verifier: Verifier, messenger: Messenger) -> Self {
        Self { verifier, messenger }
    }
}

#[async_trait]
impl Authenticate for JwtAuth {
    async fn authenticate(&self, parts: &Parts) -> Result<UserId, AuthError> {
        let path = parts.uri.path();
        let token = bearer_of(&parts.headers).or_else(|| {
            if !(path.ends_with("/v1/events") || path.ends_with("/v1/ws")) {
                return None;
            }
            let query = parts.uri.query()?;
            form_urlencoded::parse(query.as_bytes())
                .find(|(name, _)| name == "access_token")
                .map(|(_, token)| token.into_owned())
        });
        let token = self.verifier.verify_token(&token.ok_or(AuthError::Missing)?)?;
        match self.messenger.token_accepted(token.user, token.issued_at).await {
            Ok(true) => Ok(token.user),
            Ok(false) => Err(AuthError::Revoked),
            Err(error) => {
                tracing::warn!(%error, "checking a token's revocation failed");
                Err(AuthError::Unavailable)
            }
        }
    }
}
