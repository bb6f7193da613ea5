//! Verifying an ID token: which issuer, which key, which algorithm, the signature, the standard
//! claims, then the operator's rules (required claims and groups, admin groups) and the username.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gpudev_domain::Username;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::config::IssuerConfig;
use super::provider::{KeyError, OidcProvider};
use crate::error::{ApiError, ErrorCode};

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECONDS: u64 = 30;

/// Longest `sub` accepted.
const MAX_SUBJECT: usize = 255;

/// Who a verified token says the caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcIdentity {
    /// The issuer identifier.
    pub issuer: String,
    /// The subject: with the issuer, the user's identity.
    pub subject: String,
    /// The username to create the user with (an existing user keeps theirs).
    pub username: Username,
    /// True when the user is in one of the issuer's admin groups.
    pub is_admin: bool,
}

/// Why a token was refused; each kind has its own status and code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// 401: not a valid token of a trusted issuer (signature, algorithm, key, `iss`, `aud`,
    /// `exp`, `nbf`, `sub`).
    Invalid(ErrorCode, String),
    /// 403: a valid token without a claim or group the operator requires.
    Missing(ErrorCode, String),
    /// 503: the issuer's keys cannot be fetched.
    Unavailable(String),
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        match r {
            Rejection::Invalid(code, detail) => ApiError::Unauthorized { code, detail },
            Rejection::Missing(code, detail) => ApiError::Forbidden { code, detail },
            Rejection::Unavailable(detail) => ApiError::Unavailable(detail),
        }
    }
}

fn invalid(detail: impl Into<String>) -> Rejection {
    Rejection::Invalid(ErrorCode::InvalidToken, detail.into())
}

/// A token's claims before any check.
fn unverified_claims(token: &str) -> Option<Map<String, Value>> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The `iss` of a token before any check, used only to pick the issuer whose keys and rules
/// then verify everything, `iss` included.
fn unverified_issuer(token: &str) -> Option<String> {
    unverified_claims(token)?
        .get("iss")?
        .as_str()
        .map(str::to_owned)
}

/// Who a token claims to be (`iss` and `sub`, unverified; empty for a token without them), for
/// counting login attempts per identity before the costly checks.
pub fn claimed_identity(token: &str) -> String {
    let Some(claims) = unverified_claims(token) else {
        return String::new();
    };
    let claim = |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or_default();
    format!("{} {}", claim("iss"), claim("sub"))
}

/// The configured issuer a token claims to come from (unverified), for recording refusals.
pub fn claimed_issuer(provider: &OidcProvider, token: &str) -> Option<String> {
    let iss = unverified_issuer(token)?;
    provider.find(&iss).map(|i| i.config.issuer.clone())
}

/// Checks that `jwk` may verify a signature made with `alg`: its type (and curve) must fit the
/// algorithm, and the algorithm and use it declares, if any, must be these.
pub fn key_fits(jwk: &Jwk, alg: Algorithm) -> bool {
    let declared_ok = jwk
        .common
        .key_algorithm
        .is_none_or(|k| format!("{k:?}") == format!("{alg:?}") && k != KeyAlgorithm::RSA1_5);
    let use_ok = jwk
        .common
        .public_key_use
        .as_ref()
        .is_none_or(|u| *u == PublicKeyUse::Signature);
    let type_ok = match (&jwk.algorithm, alg) {
        (
            AlgorithmParameters::RSA(_),
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
        ) => true,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => p.curve == EllipticCurve::P256,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES384) => p.curve == EllipticCurve::P384,
        _ => false,
    };
    declared_ok && use_ok && type_ok
}

/// The strings of a claim that is a string or an array of strings.
fn strings(value: Option<&Value>) -> Vec<&str> {
    match value {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The username: the configured claim, else `preferred_username`, else the part of `email`
/// before the `@`, else the subject; characters a username cannot hold become `-`.
pub fn derive_username(
    config: &IssuerConfig,
    claims: &Map<String, Value>,
    subject: &str,
) -> Option<Username> {
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let candidate = text(&config.username_claim)
        .or_else(|| text("preferred_username"))
        .or_else(|| {
            text("email")
                .and_then(|e| e.split('@').next())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or(subject);
    Username::sanitize(candidate).ok()
}

/// Applies the operator's rules to verified claims.
pub fn check_claims(
    config: &IssuerConfig,
    claims: &Map<String, Value>,
) -> Result<OidcIdentity, Rejection> {
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= MAX_SUBJECT)
        .ok_or_else(|| invalid("the token has no usable subject (sub)"))?;
    for (name, wanted) in &config.required_claims {
        if !strings(claims.get(name)).contains(&wanted.as_str()) {
            return Err(Rejection::Missing(
                ErrorCode::OidcClaimMissing,
                format!("the token's {name} claim must be {wanted:?}"),
            ));
        }
    }
    let groups = strings(claims.get(&config.groups_claim));
    let is_admin = config
        .admin_groups
        .iter()
        .any(|g| groups.contains(&g.as_str()));
    // Admins are let in by their admin group alone.
    if !config.required_groups.is_empty()
        && !is_admin
        && !config
            .required_groups
            .iter()
            .any(|g| groups.contains(&g.as_str()))
    {
        return Err(Rejection::Missing(
            ErrorCode::OidcGroupMissing,
            format!(
                "you must be in one of these groups: {}",
                config.required_groups.join(", ")
            ),
        ));
    }
    let username = derive_username(config, claims, subject).ok_or_else(|| {
        Rejection::Missing(
            ErrorCode::OidcClaimMissing,
            "no username can be derived from the token".into(),
        )
    })?;
    Ok(OidcIdentity {
        issuer: config.issuer.clone(),
        subject: subject.to_owned(),
        username,
        is_admin,
    })
}

/// Verifies `token` against the trusted issuers.
pub async fn verify(provider: &OidcProvider, token: &str) -> Result<OidcIdentity, Rejection> {
    verify_with_claims(provider, token).await.map(|(id, _)| id)
}

/// [`verify`], also returning the verified claims (for the checks only the caller knows, such
/// as the console sign-in's `nonce`).
pub async fn verify_with_claims(
    provider: &OidcProvider,
    token: &str,
) -> Result<(OidcIdentity, Map<String, Value>), Rejection> {
    // Unknown algorithms, `none` among them, fail here: jsonwebtoken has no such variant.
    let header = jsonwebtoken::decode_header(token)
        .map_err(|_| invalid("the token is not a signed JWT with a supported algorithm"))?;
    let iss = unverified_issuer(token).ok_or_else(|| invalid("the token has no issuer (iss)"))?;
    let issuer = provider.find(&iss).ok_or_else(|| {
        Rejection::Invalid(
            ErrorCode::OidcIssuerUntrusted,
            "the token's issuer is not trusted here".into(),
        )
    })?;
    let config = &issuer.config;
    if !config.algorithms.contains(&header.alg) {
        return Err(invalid(format!(
            "tokens signed with {:?} are not accepted",
            header.alg
        )));
    }
    let kid = header
        .kid
        .as_deref()
        .ok_or_else(|| invalid("the token names no key (kid)"))?;
    let jwk = provider.key(issuer, kid).await.map_err(|e| match e {
        KeyError::UnknownKey(_) => Rejection::Invalid(
            ErrorCode::OidcUnknownKey,
            "the token was signed with a key the issuer does not publish".into(),
        ),
        KeyError::Unreachable(why) => {
            tracing::warn!(issuer = %config.issuer, why, "OIDC issuer unreachable");
            Rejection::Unavailable(
                "the identity provider cannot be reached; try again shortly".into(),
            )
        }
    })?;
    if !key_fits(&jwk, header.alg) {
        return Err(invalid("the token's algorithm does not fit its key"));
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| invalid("the issuer's key is unusable"))?;
    let mut validation = Validation::new(header.alg);
    validation.algorithms = vec![header.alg];
    validation.leeway = LEEWAY_SECONDS;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.set_issuer(&[&config.issuer]);
    validation.set_audience(&config.audiences);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation).map_err(
        |e| match e.kind() {
            ErrorKind::ExpiredSignature => {
                Rejection::Invalid(ErrorCode::TokenExpired, "the token has expired".into())
            }
            ErrorKind::ImmatureSignature => Rejection::Invalid(
                ErrorCode::TokenNotYetValid,
                "the token is not valid yet (nbf)".into(),
            ),
            ErrorKind::InvalidAudience => Rejection::Invalid(
                ErrorCode::InvalidAudience,
                "the token is not meant for this service (aud)".into(),
            ),
            ErrorKind::InvalidIssuer => invalid("the token's issuer does not match"),
            ErrorKind::InvalidSignature => invalid("the token's signature is not valid"),
            ErrorKind::MissingRequiredClaim(c) => invalid(format!("the token lacks the {c} claim")),
            _ => invalid("the token is not valid"),
        },
    )?;
    let identity = check_claims(config, &data.claims)?;
    Ok((identity, data.claims))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::config::parse_issuers;
    use serde_json::json;

    fn config(extra: &str) -> IssuerConfig {
        parse_issuers(Some(&format!(
            r#"[{{"issuer": "https://id.example", "client_id": "cli"{extra}}}]"#
        )))
        .unwrap()
        .remove(0)
    }

    fn claims(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn the_username_falls_back_from_the_claim_to_email_to_subject() {
        let c = config(r#", "username_claim": "login""#);
        let name = |v| {
            derive_username(&c, &claims(v), "sub-1")
                .unwrap()
                .as_str()
                .to_owned()
        };
        assert_eq!(
            name(json!({"login": "zoe", "preferred_username": "z"})),
            "zoe"
        );
        assert_eq!(name(json!({"preferred_username": "Zoë K"})), "Zo--K");
        assert_eq!(name(json!({"email": "zk@example.com"})), "zk");
        assert_eq!(name(json!({"email": "@example.com"})), "sub-1");
        assert_eq!(name(json!({})), "sub-1");
    }

    #[test]
    fn required_claims_and_groups_answer_403_and_admin_groups_promote() {
        let c = config(
            r#", "required_groups": ["gpu"], "admin_groups": ["ops"], "required_claims": {"org": "acme"}"#,
        );
        let ok = check_claims(
            &c,
            &claims(json!({"sub": "1", "org": "acme", "groups": ["gpu"]})),
        )
        .unwrap();
        assert!(!ok.is_admin);
        let admin = check_claims(
            &c,
            &claims(json!({"sub": "1", "org": ["x", "acme"], "groups": ["ops"]})),
        )
        .unwrap();
        assert!(
            admin.is_admin,
            "an admin group satisfies the required groups"
        );
        assert_eq!(
            check_claims(
                &c,
                &claims(json!({"sub": "1", "org": "acme", "groups": ["x"]}))
            ),
            Err(Rejection::Missing(
                ErrorCode::OidcGroupMissing,
                "you must be in one of these groups: gpu".into()
            ))
        );
        let both = check_claims(
            &c,
            &claims(json!({"sub": "1", "org": "acme", "groups": ["gpu", "ops"]})),
        )
        .unwrap();
        assert!(both.is_admin);
        assert!(matches!(
            check_claims(&c, &claims(json!({"sub": "1", "groups": ["gpu"]}))),
            Err(Rejection::Missing(ErrorCode::OidcClaimMissing, _))
        ));
        assert!(matches!(
            check_claims(
                &c,
                &claims(json!({"sub": "", "org": "acme", "groups": ["gpu"]}))
            ),
            Err(Rejection::Invalid(ErrorCode::InvalidToken, _))
        ));
    }

    #[test]
    fn keys_must_fit_the_algorithm() {
        let rsa: Jwk = serde_json::from_value(
            json!({"kty": "RSA", "kid": "r", "alg": "RS256", "n": "AQAB", "e": "AQAB"}),
        )
        .unwrap();
        let ec: Jwk = serde_json::from_value(
            json!({"kty": "EC", "kid": "e", "crv": "P-256", "x": "AQAB", "y": "AQAB"}),
        )
        .unwrap();
        let oct: Jwk =
            serde_json::from_value(json!({"kty": "oct", "kid": "o", "k": "AQAB"})).unwrap();
        assert!(key_fits(&rsa, Algorithm::RS256));
        assert!(!key_fits(&rsa, Algorithm::RS384), "the key declares RS256");
        assert!(!key_fits(&rsa, Algorithm::HS256));
        assert!(!key_fits(&rsa, Algorithm::ES256));
        assert!(key_fits(&ec, Algorithm::ES256));
        assert!(
            !key_fits(&ec, Algorithm::ES384),
            "a P-256 key cannot verify ES384"
        );
        assert!(!key_fits(&oct, Algorithm::HS256));
    }
}
