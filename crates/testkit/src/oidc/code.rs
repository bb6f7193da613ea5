//! The authorization code grant with PKCE (RFC 6749 §4.1, RFC 7636) of the test issuer: the
//! authorization endpoint signs the browser in as the test decides and redirects back with a
//! code; the token endpoint checks the client, the redirect URI and the code verifier, and
//! accepts each code once.

use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

/// How long a code can be exchanged.
const CODE_LIFETIME: Duration = Duration::from_secs(60);

/// One authorization the endpoint granted.
#[derive(Debug, Clone)]
pub(crate) struct AuthCode {
    code: String,
    client_id: String,
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
    claims: Map<String, Value>,
    expires_at: Instant,
    redeemed: bool,
}

/// One exchange of a code at the token endpoint, as the issuer answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeExchange {
    /// The client that asked.
    pub client_id: String,
    /// True when the client authenticated with a secret (HTTP Basic or the form).
    pub with_secret: bool,
    /// `id_token` for a success, else the OAuth error code.
    pub answer: String,
}

/// What the authorization endpoint asked for (the parts a relying party chooses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeRequest {
    /// `client_id`.
    pub client_id: String,
    /// `redirect_uri`.
    pub redirect_uri: String,
    /// `scope`.
    pub scope: String,
    /// `code_challenge_method`.
    pub code_challenge_method: String,
}

/// Code grant settings and state.
#[derive(Debug, Default)]
pub(crate) struct CodeFlow {
    pub(crate) codes: Vec<AuthCode>,
    /// The claims of whoever is signed in at the issuer (over the defaults).
    pub(crate) signed_in: Map<String, Value>,
    /// When set, ID tokens from codes carry this nonce instead of the one asked for.
    pub(crate) nonce_override: Option<String>,
    /// Client secrets by client id; a client listed here must authenticate.
    pub(crate) secrets: Vec<(String, String)>,
    pub(crate) exchanges: Vec<CodeExchange>,
    pub(crate) authorizations: Vec<AuthorizeRequest>,
    issued: usize,
}

/// The S256 code challenge of `verifier`.
pub(crate) fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
}

/// Where the authorization endpoint sends the browser: a redirect to the client (with a code
/// or an error), or an error page when the client or its redirect URI cannot be trusted.
pub(crate) enum Authorized {
    Redirect(String),
    Refused(&'static str),
}

/// What the token endpoint answers a code exchange.
pub(crate) enum Exchange {
    Error(&'static str),
    /// Mint an ID token with these claims over the defaults, for this client.
    Token(Map<String, Value>, String),
}

fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    let query = serde_urlencoded::to_string(pairs).unwrap_or_default();
    format!("{base}{sep}{query}")
}

impl CodeFlow {
    /// Answers `GET /authorize` with the query `q`; `known_client` says whether a client id is
    /// registered.
    pub(crate) fn authorize(
        &mut self,
        q: &[(String, String)],
        known_client: impl Fn(&str) -> bool,
    ) -> Authorized {
        let get = |name: &str| super::field(q, name).unwrap_or_default().to_owned();
        let (client_id, redirect_uri, state) =
            (get("client_id"), get("redirect_uri"), get("state"));
        if !known_client(&client_id) {
            return Authorized::Refused("unknown client");
        }
        if !(redirect_uri.starts_with("http://127.0.0.1:")
            || redirect_uri.starts_with("http://localhost:"))
        {
            return Authorized::Refused("redirect_uri not registered (loopback only)");
        }
        self.authorizations.push(AuthorizeRequest {
            client_id: client_id.clone(),
            redirect_uri: redirect_uri.clone(),
            scope: get("scope"),
            code_challenge_method: get("code_challenge_method"),
        });
        let error = |e: &str| {
            Authorized::Redirect(with_query(
                &redirect_uri,
                &[("error", e), ("state", &state)],
            ))
        };
        if get("response_type") != "code"
            || !get("scope").split(' ').any(|s| s == "openid")
            || get("code_challenge_method") != "S256"
            || get("code_challenge").len() != 43
        {
            return error("invalid_request");
        }
        self.issued += 1;
        let code = format!("code-{}-{}", self.issued, uuid::Uuid::new_v4().simple());
        let nonce = super::field(q, "nonce").map(str::to_owned);
        self.codes.push(AuthCode {
            code: code.clone(),
            client_id,
            redirect_uri: redirect_uri.clone(),
            challenge: get("code_challenge"),
            nonce,
            claims: self.signed_in.clone(),
            expires_at: Instant::now() + CODE_LIFETIME,
            redeemed: false,
        });
        Authorized::Redirect(with_query(
            &redirect_uri,
            &[("code", &code), ("state", &state)],
        ))
    }

    /// Answers a code exchange: the form `f` and the client's Basic credentials, if any.
    pub(crate) fn exchange(
        &mut self,
        f: &[(String, String)],
        basic: Option<(String, String)>,
    ) -> Exchange {
        let form_secret = super::field(f, "client_secret").map(str::to_owned);
        let (client_id, secret) = match basic {
            Some((id, secret)) => (id, Some(secret)),
            None => (
                super::field(f, "client_id").unwrap_or_default().to_owned(),
                form_secret,
            ),
        };
        let answer = self.answer(f, &client_id, secret.as_deref());
        self.exchanges.push(CodeExchange {
            client_id,
            with_secret: secret.is_some(),
            answer: match &answer {
                Exchange::Error(e) => (*e).to_owned(),
                Exchange::Token(..) => "id_token".to_owned(),
            },
        });
        answer
    }

    fn answer(
        &mut self,
        f: &[(String, String)],
        client_id: &str,
        secret: Option<&str>,
    ) -> Exchange {
        let expected = self
            .secrets
            .iter()
            .find(|(id, _)| id == client_id)
            .map(|(_, s)| s.as_str());
        if expected.is_some() && expected != secret {
            return Exchange::Error("invalid_client");
        }
        let field = |name: &str| super::field(f, name).unwrap_or_default();
        let nonce_override = self.nonce_override.clone();
        let Some(code) = self.codes.iter_mut().find(|c| c.code == field("code")) else {
            return Exchange::Error("invalid_grant");
        };
        if code.redeemed || Instant::now() >= code.expires_at {
            return Exchange::Error("invalid_grant");
        }
        // A code is spent by any attempt, as a provider that suspects a stolen code would.
        code.redeemed = true;
        if code.client_id != client_id {
            return Exchange::Error("invalid_client");
        }
        if code.redirect_uri != field("redirect_uri")
            || code.challenge != s256(field("code_verifier"))
        {
            return Exchange::Error("invalid_grant");
        }
        let mut claims = code.claims.clone();
        if let Some(nonce) = nonce_override.or_else(|| code.nonce.clone()) {
            claims.insert("nonce".into(), Value::String(nonce));
        }
        Exchange::Token(claims, code.client_id.clone())
    }
}
