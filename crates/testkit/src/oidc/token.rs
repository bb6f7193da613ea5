//! Tokens of the test issuer: properly signed ones, and the forgeries a verifier must refuse.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value, json};

use super::Shared;

/// Seconds since the Unix epoch.
pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The claims every token starts with: this issuer, the client id as audience, subject
/// `user-1` with username `alice`, issued now, valid for five minutes.
pub(crate) fn default_claims(issuer: &str, audience: &str) -> Map<String, Value> {
    let now = now();
    let claims = json!({
        "iss": issuer,
        "aud": audience,
        "sub": "user-1",
        "preferred_username": "alice",
        "email": "alice@example.com",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    });
    match claims {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyChoice {
    Rsa,
    Ec,
}

/// Builds an ID token of a [`super::OidcIssuer`]. Start with [`super::OidcIssuer::token`].
#[must_use]
pub struct TokenBuilder {
    shared: Arc<Shared>,
    claims: Map<String, Value>,
    key: KeyChoice,
    kid: Option<String>,
}

impl TokenBuilder {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        let claims = default_claims(&shared.url, &shared.client_id);
        Self {
            shared,
            claims,
            key: KeyChoice::Rsa,
            kid: None,
        }
    }

    /// Sets (or replaces) a claim.
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.claims.insert(name.to_owned(), value.into());
        self
    }

    /// Removes a claim.
    pub fn without(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// Sets `sub`.
    pub fn subject(self, sub: &str) -> Self {
        self.claim("sub", sub)
    }

    /// Sets `preferred_username`.
    pub fn username(self, name: &str) -> Self {
        self.claim("preferred_username", name)
    }

    /// Sets `aud`.
    pub fn audience(self, aud: &str) -> Self {
        self.claim("aud", aud)
    }

    /// Sets `groups`.
    pub fn groups(self, groups: &[&str]) -> Self {
        self.claim("groups", json!(groups))
    }

    /// Sets `exp` to now plus `seconds` (negative: already expired).
    pub fn expires_in(self, seconds: i64) -> Self {
        self.claim("exp", now() + seconds)
    }

    /// Sets `nbf` to now plus `seconds` (positive: not yet valid).
    pub fn not_before_in(self, seconds: i64) -> Self {
        self.claim("nbf", now() + seconds)
    }

    /// Signs with the issuer's P-256 key (ES256) instead of its RSA key (RS256).
    pub fn es256(mut self) -> Self {
        self.key = KeyChoice::Ec;
        self
    }

    /// Puts another key id into the header (the signature still uses the chosen key).
    pub fn kid(mut self, kid: &str) -> Self {
        self.kid = Some(kid.to_owned());
        self
    }

    /// The claims as they stand.
    pub fn claims(&self) -> Value {
        Value::Object(self.claims.clone())
    }

    /// Signs the token with the issuer's current key of the chosen kind.
    ///
    /// # Panics
    ///
    /// When signing fails (it does not with the issuer's own keys).
    #[expect(
        clippy::panic,
        reason = "test helper: a token that cannot be signed is a bug"
    )]
    pub fn sign(self) -> String {
        let key = self.shared.signing_key(self.key == KeyChoice::Ec);
        let mut header = Header::new(key.alg);
        header.kid = Some(self.kid.unwrap_or(key.kid));
        jsonwebtoken::encode(&header, &self.claims, &key.encoding)
            .unwrap_or_else(|e| panic!("signing a test token: {e}"))
    }

    /// The token with `"alg": "none"` and an empty signature.
    pub fn unsigned(self) -> String {
        let key = self.shared.signing_key(false);
        let header = json!({"alg": "none", "typ": "JWT", "kid": self.kid.unwrap_or(key.kid)});
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(Value::Object(self.claims).to_string())
        )
    }

    /// The classic confusion attack: HS256 keyed with the bytes of the issuer's RSA public key
    /// (its DER), under the RSA key's id.
    ///
    /// # Panics
    ///
    /// When signing fails.
    #[expect(
        clippy::panic,
        reason = "test helper: a token that cannot be signed is a bug"
    )]
    pub fn hs256_with_public_key(self) -> String {
        let key = self.shared.signing_key(false);
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid.unwrap_or(key.kid));
        jsonwebtoken::encode(
            &header,
            &self.claims,
            &EncodingKey::from_secret(&key.public_der),
        )
        .unwrap_or_else(|e| panic!("signing a test token: {e}"))
    }
}

/// A properly signed `token` whose payload was then changed (`sub` replaced by `mallory`), the
/// signature left as it was.
///
/// # Panics
///
/// When `token` is not three dot-separated parts with a JSON payload.
#[expect(clippy::panic, reason = "test helper")]
pub fn tamper(token: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts.as_slice() else {
        panic!("not a JWT: {token}");
    };
    let mut claims: Value = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| panic!("not a JWT payload: {payload}"));
    claims["sub"] = json!("mallory");
    format!(
        "{header}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}
