//! Who a connection is: JWT verification before the upgrade (docs/protocol.md "Connecting"),
//! and minting for the `token` command.
//!
//! Keys: an HS256 secret (the server's own, or one shared by every instance), and/or a
//! PEM public key (RS256 or ES256) of the host's own auth service. A token is checked with
//! the key of the algorithm its header names; any other algorithm (`none` included) is
//! refused. jsonwebtoken's traps are set explicitly here: no leeway on `exp` (its default is
//! 60 s, which would let a just-expired token in), and `aud` checked only when an audience
//! is configured (its default rejects every token without one).

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use messaging_core::UserId;
use serde::{Deserialize, Serialize};

/// What verifies tokens, from the server's settings.
#[derive(Clone, Debug, Default)]
pub struct AuthSettings {
    /// The HS256 secret.
    pub secret: Option<Vec<u8>>,
    /// A PEM public key (RSA for RS256, EC P-256 for ES256).
    pub public_key_pem: Option<Vec<u8>>,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud`, when set.
    pub audience: Option<String>,
}

/// Why the settings cannot verify tokens.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Neither a secret nor a public key.
    #[error("no JWT secret or public key is configured")]
    NoKey,
    /// The public key is neither an RSA nor an EC PEM key.
    #[error("the JWT public key is not an RSA or EC (P-256) PEM public key")]
    BadPublicKey,
    /// An HS256 secret must not be empty.
    #[error("the JWT secret is empty")]
    EmptySecret,
}

/// Why a token was refused (all of them answer HTTP 401).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No token in the request.
    #[error("no token: send `Authorization: Bearer <token>` or `?access_token=<token>`")]
    Missing,
    /// Malformed, badly signed, expired, of an unaccepted algorithm or missing claims.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// `sub` is not a UUID, or is the nil UUID (which stands for "no sender": system
    /// messages).
    #[error("the token's `sub` is not a user id (a UUID other than the nil UUID)")]
    BadSubject,
    /// The service API revoked this user's tokens after this one was issued.
    #[error("this token was revoked: get a new one")]
    Revoked,
    /// The store could not say whether the token was revoked (answered 503, not 401).
    #[error("the store is unavailable")]
    Unavailable,
    /// A host authenticator's own refusal (no session cookie, an expired session…): the
    /// text is answered as is, so it must be safe to show.
    #[error("{0}")]
    Refused(String),
}

/// Verifies tokens with the configured keys.
#[derive(Clone)]
pub struct Verifier {
    keys: Vec<(DecodingKey, Validation)>,
    /// The settings, when they let this server mint tokens (an HS256 secret and no public
    /// key: a server that verifies another service's tokens does not issue its own).
    minting: Option<std::sync::Arc<AuthSettings>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let algorithms: Vec<_> = self.keys.iter().map(|(_, v)| v.algorithms.clone()).collect();
        f.debug_struct("Verifier").field("algorithms", &algorithms).finish()
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    /// A NumericDate may have a fraction (RFC 7519 §2).
    iat: Option<f64>,
}

/// What a valid token says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifiedToken {
    /// Its user (`sub`).
    pub user: UserId,
    /// When it was issued (`iat`, whole Unix seconds), if it says.
    pub issued_at: Option<i64>,
}

impl Verifier {
    /// A verifier for `settings`: HS256 when a secret is given, RS256/ES256 for a public key.
    pub fn new(settings: &AuthSettings) -> Result<Self, KeyError> {
        let mut keys = Vec::new();
        if let Some(secret) = &settings.secret {
            if secret.is_empty() {
                return Err(KeyError::EmptySecret);
            }
            keys.push((DecodingKey::from_secret(secret), validation(Algorithm::HS256, settings)));
        }
        if let Some(pem) = &settings.public_key_pem {
            let (key, algorithm) = if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
                (key, Algorithm::RS256)
            } else if let Ok(key) = DecodingKey::from_ec_pem(pem) {
                (key, Algorithm::ES256)
            } else {
                return Err(KeyError::BadPublicKey);
            };
            keys.push((key, validation(algorithm, settings)));
        }
        if keys.is_empty() {
            return Err(KeyError::NoKey);
        }
        let minting = (settings.secret.is_some() && settings.public_key_pem.is_none())
            .then(|| std::sync::Arc::new(settings.clone()));
        Ok(Self { keys, minting })
    }

    /// A token for `user` valid for `ttl` (with `iat`, and `iss`/`aud` when this server
    /// checks them) and when it expires, in Unix seconds; `None` when this server does
    /// not mint (no HS256 secret, or a public key configured).
    pub fn mint(&self, user: UserId, ttl: std::time::Duration) -> Option<(String, u64)> {
        let settings = self.minting.as_deref()?;
        let secret = settings.secret.as_deref()?;
        let now = jsonwebtoken::get_current_timestamp();
        let token = mint_at(secret, user, now, ttl, settings).ok()?;
        Some((token, now.saturating_add(ttl.as_secs())))
    }

    /// The user a token names, if it is valid now.
    pub fn verify(&self, token: &str) -> Result<UserId, AuthError> {
        self.verify_token(token).map(|verified| verified.user)
    }

    /// The user a token names and when it was issued, if it is valid now.
    pub fn verify_token(&self, token: &str) -> Result<VerifiedToken, AuthError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let (key, validation) =
            self.keys.iter().find(|(_, v)| v.algorithms.contains(&header.alg)).ok_or_else(
                || AuthError::Invalid(format!("algorithm {:?} not accepted", header.alg)),
            )?;
        let data = jsonwebtoken::decode::<Claims>(token, key, validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        // Saturating: an absurd `iat` is only ever "long ago" or "far ahead".
        #[allow(clippy::cast_possible_truncation, reason = "saturating float to int")]
        let issued_at = data.claims.iat.map(|iat| iat.floor() as i64);
        match uuid::Uuid::parse_str(&data.claims.sub) {
            Ok(sub) if !sub.is_nil() => Ok(VerifiedToken { user: UserId::from(sub), issued_at }),
            _ => Err(AuthError::BadSubject),
        }
    }
}

fn validation(algorithm: Algorithm, settings: &AuthSettings) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.leeway = 0;
    validation.validate_nbf = true;
    let mut required = vec!["exp", "sub"];
    match &settings.audience {
        Some(audience) => {
            validation.set_audience(&[audience]);
            required.push("aud");
        }
        None => validation.validate_aud = false,
    }
    if let Some(issuer) = &settings.issuer {
        validation.set_issuer(&[issuer]);
        required.push("iss");
    }
    validation.set_required_spec_claims(&required);
    validation
}

/// The claims `token` writes.
#[derive(Serialize)]
struct Minted<'a> {
    sub: String,
    iat: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

/// An HS256 token for `user`, valid for `ttl` from now (with the settings' `iss`/`aud`).
pub fn mint(
    secret: &[u8],
    user: UserId,
    ttl: std::time::Duration,
    settings: &AuthSettings,
) -> Result<String, jsonwebtoken::errors::Error> {
    mint_at(secret, user, jsonwebtoken::get_current_timestamp(), ttl, settings)
}

fn mint_at(
    secret: &[u8],
    user: UserId,
    now: u64,
    ttl: std::time::Duration,
    settings: &AuthSettings,
) -> Result<String, jsonwebtoken::errors::Error> {
    let claims = Minted {
        sub: user.to_string(),
        iat: now,
        exp: now.saturating_add(ttl.as_secs()),
        iss: settings.issuer.as_deref(),
        aud: settings.audience.as_deref(),
    };
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret))
}

/// The token of a request: `Authorization: Bearer …`, else the `access_token` query
/// parameter (browsers cannot set headers on a WebSocket). An `Authorization` header of
/// another scheme (a proxy's Basic credentials) is not ours and is passed over.
pub fn token_of<B>(request: &http::Request<B>) -> Option<String> {
    let bearer = bearer_of(request.headers());
    if bearer.is_some() {
        return bearer;
    }
    let query = request.uri().query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "access_token")
        .map(|(_, token)| token.into_owned())
}

/// The token of an `Authorization: Bearer <token>` header, if there is one.
pub(crate) fn bearer_of(headers: &http::HeaderMap) -> Option<String> {
    headers.get_all(http::header::AUTHORIZATION).iter().find_map(|value| {
        let (scheme, token) = value.to_str().ok()?.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn settings() -> AuthSettings {
        AuthSettings { secret: Some(b"test secret".to_vec()), ..AuthSettings::default() }
    }

    #[test]
    fn a_minted_token_verifies_and_names_its_user() {
        let user = UserId::new();
        let token = mint(b"test secret", user, Duration::from_secs(60), &settings()).unwrap();
        assert_eq!(Verifier::new(&settings()).unwrap().verify(&token).unwrap(), user);
    }

    #[test]
    fn expired_and_wrongly_signed_tokens_are_refused() {
        let verifier = Verifier::new(&settings()).unwrap();
        let user = UserId::new();
        let other = mint(b"another secret", user, Duration::from_secs(60), &settings()).unwrap();
        assert!(matches!(verifier.verify(&other), Err(AuthError::Invalid(_))));
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Minted {
                sub: user.to_string(),
                iat: 0,
                exp: jsonwebtoken::get_current_timestamp() - 5,
                iss: None,
                aud: None,
            },
            &EncodingKey::from_secret(b"test secret"),
        )
        .unwrap();
        assert!(matches!(verifier.verify(&expired), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn issuer_and_audience_become_required_when_configured() {
        let user = UserId::new();
        let plain = mint(b"test secret", user, Duration::from_secs(60), &settings()).unwrap();
        let strict = AuthSettings {
            issuer: Some("auth.example".into()),
            audience: Some("chat".into()),
            ..settings()
        };
        let verifier = Verifier::new(&strict).unwrap();
        assert!(verifier.verify(&plain).is_err(), "a token without iss/aud is refused");
        let good = mint(b"test secret", user, Duration::from_secs(60), &strict).unwrap();
        assert_eq!(verifier.verify(&good).unwrap(), user);
    }

    #[test]
    fn the_token_comes_from_the_header_or_the_query() {
        let request = http::Request::get("/v1/ws?x=1&access_token=a%2Bb").body(()).unwrap();
        assert_eq!(token_of(&request).as_deref(), Some("a+b"));
        let request = http::Request::get("/v1/ws?access_token=q")
            .header("authorization", "Bearer h")
            .body(())
            .unwrap();
        assert_eq!(token_of(&request).as_deref(), Some("h"));
        assert_eq!(token_of(&http::Request::get("/v1/ws").body(()).unwrap()), None);
    }
}
