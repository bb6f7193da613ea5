//! A test OpenID Connect issuer on loopback: discovery, a JWKS with real RSA and EC keys, signed
//! ID tokens, key rotation, an outage switch, the device authorization grant (RFC 8628) with
//! approvals decided by the test, and the authorization code grant with PKCE for browsers.

mod code;
mod device;
mod keys;
mod token;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;

pub use code::{AuthorizeRequest, CodeExchange};
pub use device::TokenPoll;
pub use token::{TokenBuilder, tamper};

use crate::error::{Context, Result};
use code::{Authorized, CodeFlow, Exchange};
use device::{DeviceFlow, Plan, PollAnswer};
use keys::SigningKey;

/// The client id the issuer expects, and the default audience of its tokens.
pub const CLIENT_ID: &str = "gpudev-cli";

/// A second registered client, for web sign-ins (the authorization code grant); it may be given
/// a secret with [`OidcIssuer::require_client_secret`].
pub const WEB_CLIENT_ID: &str = "gpudev-web";

/// The grant type of device code polls.
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

struct State {
    rsa: SigningKey,
    ec: SigningKey,
    /// Keys still published though no longer used for signing.
    retired: Vec<SigningKey>,
    rotations: usize,
    down: bool,
    jwks_fetches: usize,
    discovery_fetches: usize,
    device: DeviceFlow,
    device_codes_issued: usize,
    code: CodeFlow,
}

pub(crate) struct Shared {
    url: String,
    client_id: String,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not take the issuer down with it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn signing_key(&self, ec: bool) -> SigningKey {
        let state = self.lock();
        if ec {
            state.ec.clone()
        } else {
            state.rsa.clone()
        }
    }
}

/// A running test issuer. Its URL (`http://127.0.0.1:PORT`) is its issuer identifier. The
/// server stops when this value is dropped.
pub struct OidcIssuer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for OidcIssuer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl std::fmt::Debug for OidcIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcIssuer")
            .field("url", &self.shared.url)
            .finish_non_exhaustive()
    }
}

/// Starts an issuer on a free loopback port. The first RSA key is generated once per process
/// and shared; the EC key is new for each issuer.
///
/// # Panics
///
/// When the keys cannot be generated or the port cannot be bound.
#[expect(
    clippy::panic,
    reason = "test helper: without the issuer the test cannot run"
)]
pub async fn oidc_issuer() -> OidcIssuer {
    start()
        .await
        .unwrap_or_else(|e| panic!("starting the test OIDC issuer: {e}"))
}

async fn start() -> Result<OidcIssuer> {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .context("binding 127.0.0.1:0")?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let shared = Arc::new(Shared {
        url: format!("http://{addr}"),
        client_id: CLIENT_ID.to_owned(),
        state: Mutex::new(State {
            rsa: keys::first_rsa()?,
            ec: keys::ec("ec-1")?,
            retired: Vec::new(),
            rotations: 0,
            down: false,
            jwks_fetches: 0,
            discovery_fetches: 0,
            device: DeviceFlow::default(),
            device_codes_issued: 0,
            code: CodeFlow::default(),
        }),
    });
    let served = Arc::clone(&shared);
    let accept = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            while connections.try_join_next().is_some() {}
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let shared = Arc::clone(&served);
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let shared = Arc::clone(&shared);
                async move {
                    let (parts, body) = request.into_parts();
                    let bytes: Bytes = body
                        .collect()
                        .await
                        .map(|c| c.to_bytes())
                        .unwrap_or_default();
                    let call = Call {
                        method: &parts.method,
                        path: parts.uri.path(),
                        query: parts.uri.query().unwrap_or_default(),
                        authorization: parts
                            .headers
                            .get(http::header::AUTHORIZATION)
                            .and_then(|v| v.to_str().ok()),
                        body: &bytes,
                    };
                    Ok::<_, Infallible>(handle(&shared, &call))
                }
            });
            connections.spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(OidcIssuer {
        shared,
        addr,
        accept,
    })
}

impl OidcIssuer {
    /// The issuer identifier and base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The client id tokens are issued to by default ([`CLIENT_ID`]).
    pub fn client_id(&self) -> &str {
        &self.shared.client_id
    }

    /// A token builder with this issuer's default claims (see [`TokenBuilder`]).
    pub fn token(&self) -> TokenBuilder {
        TokenBuilder::new(Arc::clone(&self.shared))
    }

    /// The key id of the current RSA signing key.
    pub fn rsa_kid(&self) -> String {
        self.shared.lock().rsa.kid.clone()
    }

    /// Replaces the RSA signing key with a new one under a new key id and returns that id. With
    /// `keep_old` the old key stays in the JWKS (a graceful rotation); without, it is withdrawn.
    ///
    /// # Panics
    ///
    /// When a key cannot be generated.
    #[expect(clippy::panic, reason = "test helper")]
    pub fn rotate(&self, keep_old: bool) -> String {
        let mut state = self.shared.lock();
        state.rotations += 1;
        let kid = format!("rsa-{}", state.rotations + 1);
        let new = keys::rsa(&kid).unwrap_or_else(|e| panic!("rotating the test key: {e}"));
        let old = std::mem::replace(&mut state.rsa, new);
        if keep_old {
            state.retired.push(old);
        }
        kid
    }

    /// While `down`, every endpoint answers 503 (an outage at the identity provider).
    pub fn set_down(&self, down: bool) {
        self.shared.lock().down = down;
    }

    /// How many times the JWKS was served.
    pub fn jwks_fetches(&self) -> usize {
        self.shared.lock().jwks_fetches
    }

    /// How many times the discovery document was served.
    pub fn discovery_fetches(&self) -> usize {
        self.shared.lock().discovery_fetches
    }

    /// Sets the polling interval and lifetime of device codes handed out from now on.
    pub fn device_settings(&self, interval: Duration, lifetime: Duration) {
        let mut state = self.shared.lock();
        state.device.interval = interval;
        state.device.lifetime = lifetime;
    }

    /// The next device code is approved after the client has polled once (it sees
    /// `authorization_pending` first); its ID token carries `claims` over the defaults.
    pub fn approve_next_device_login(&self, claims: Value) {
        let claims = match claims {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        self.shared.lock().device.plans.push(Plan::Approve(claims));
    }

    /// The next device code is denied after the client has polled once.
    pub fn deny_next_device_login(&self) {
        self.shared.lock().device.plans.push(Plan::Deny);
    }

    /// The next `n` polls answer `slow_down` (and add 5 s to their code's interval).
    pub fn slow_down_next_polls(&self, n: u32) {
        self.shared.lock().device.slow_downs += n;
    }

    /// The user codes of device codes nobody has decided on yet.
    pub fn pending_user_codes(&self) -> Vec<String> {
        self.shared
            .lock()
            .device
            .codes
            .iter()
            .filter(|c| matches!(c.decision, device::Decision::Pending) && c.plan.is_none())
            .map(|c| c.user_code.clone())
            .collect()
    }

    /// Approves the device code with `user_code` (its ID token carries `claims` over the
    /// defaults); false when there is no such code.
    pub fn approve(&self, user_code: &str, claims: Value) -> bool {
        let claims = match claims {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        self.decide(user_code, device::Decision::Approved(claims))
    }

    /// Denies the device code with `user_code`; false when there is no such code.
    pub fn deny(&self, user_code: &str) -> bool {
        self.decide(user_code, device::Decision::Denied)
    }

    fn decide(&self, user_code: &str, decision: device::Decision) -> bool {
        let mut state = self.shared.lock();
        let Some(code) = state
            .device
            .codes
            .iter_mut()
            .find(|c| c.user_code == user_code)
        else {
            return false;
        };
        code.plan = None;
        code.decision = decision;
        true
    }

    /// Every poll of the token endpoint so far, oldest first.
    pub fn token_polls(&self) -> Vec<TokenPoll> {
        self.shared.lock().device.polls.clone()
    }

    /// Who is signed in at the issuer from now on: the authorization endpoint grants codes whose
    /// ID tokens carry `claims` over the defaults (with none set, the default user `alice`).
    pub fn sign_in_as(&self, claims: Value) {
        self.shared.lock().code.signed_in = match claims {
            Value::Object(map) => map,
            _ => Map::new(),
        };
    }

    /// ID tokens from codes carry `nonce` instead of the one the client asked for (`None`
    /// restores the honest behaviour).
    pub fn set_code_nonce(&self, nonce: Option<&str>) {
        self.shared.lock().code.nonce_override = nonce.map(str::to_owned);
    }

    /// Makes `client_id` a confidential client: its code exchanges must carry `secret`.
    pub fn require_client_secret(&self, client_id: &str, secret: &str) {
        self.shared
            .lock()
            .code
            .secrets
            .push((client_id.to_owned(), secret.to_owned()));
    }

    /// Every request to the authorization endpoint from a registered client, oldest first.
    pub fn authorizations(&self) -> Vec<AuthorizeRequest> {
        self.shared.lock().code.authorizations.clone()
    }

    /// Every code exchange at the token endpoint so far, oldest first.
    pub fn code_exchanges(&self) -> Vec<CodeExchange> {
        self.shared.lock().code.exchanges.clone()
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    response
}

fn oauth_error(error: &str) -> Response<Full<Bytes>> {
    json_response(StatusCode::BAD_REQUEST, &json!({ "error": error }))
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// One request to the issuer.
struct Call<'a> {
    method: &'a Method,
    path: &'a str,
    query: &'a str,
    authorization: Option<&'a str>,
    body: &'a [u8],
}

/// The client id and secret of an `Authorization: Basic` header (RFC 6749 §2.3.1: each
/// form-encoded, then joined by a colon).
fn basic_credentials(header: Option<&str>) -> Option<(String, String)> {
    let encoded = header?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let unescape = |s: &str| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={s}"))
            .ok()
            .and_then(|mut v| v.pop())
            .map(|(_, v)| v)
    };
    Some((unescape(id)?, unescape(secret)?))
}

fn redirect(location: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::FOUND;
    if let Ok(value) = http::HeaderValue::from_str(location) {
        response.headers_mut().insert(http::header::LOCATION, value);
    }
    response
}

fn token_response(
    shared: &Arc<Shared>,
    claims: Map<String, Value>,
    client_id: &str,
) -> Response<Full<Bytes>> {
    let mut builder = TokenBuilder::new(Arc::clone(shared)).audience(client_id);
    for (k, v) in claims {
        builder = builder.claim(&k, v);
    }
    json_response(
        StatusCode::OK,
        &json!({
            "access_token": format!("access-{}", uuid::Uuid::new_v4().simple()),
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": builder.sign(),
        }),
    )
}

fn handle(shared: &Arc<Shared>, call: &Call<'_>) -> Response<Full<Bytes>> {
    let (method, path, body) = (call.method, call.path, call.body);
    let url = &shared.url;
    if shared.lock().down {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"error": "temporarily_unavailable"}),
        );
    }
    match (method, path) {
        (&Method::GET, "/.well-known/openid-configuration") => {
            shared.lock().discovery_fetches += 1;
            json_response(
                StatusCode::OK,
                &json!({
                    "issuer": url,
                    "jwks_uri": format!("{url}/jwks"),
                    "authorization_endpoint": format!("{url}/authorize"),
                    "token_endpoint": format!("{url}/token"),
                    "device_authorization_endpoint": format!("{url}/device/authorize"),
                    "response_types_supported": ["code", "id_token"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                    "grant_types_supported": ["authorization_code", DEVICE_GRANT],
                    "code_challenge_methods_supported": ["S256"],
                    "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
                }),
            )
        }
        (&Method::GET, "/jwks") => {
            let mut state = shared.lock();
            state.jwks_fetches += 1;
            let mut keys = vec![state.rsa.jwk.clone(), state.ec.jwk.clone()];
            keys.extend(state.retired.iter().map(|k| k.jwk.clone()));
            json_response(StatusCode::OK, &json!({ "keys": keys }))
        }
        (&Method::POST, "/device/authorize") => {
            let form = form(body);
            let Some(client_id) = field(&form, "client_id") else {
                return oauth_error("invalid_client");
            };
            if client_id != shared.client_id {
                return oauth_error("invalid_client");
            }
            let mut state = shared.lock();
            state.device_codes_issued += 1;
            let n = state.device_codes_issued;
            let code = state.device.start(client_id, n);
            json_response(
                StatusCode::OK,
                &json!({
                    "device_code": code.device_code,
                    "user_code": code.user_code,
                    "verification_uri": format!("{url}/activate"),
                    "verification_uri_complete": format!("{url}/activate?user_code={}", code.user_code),
                    "expires_in": state.device.lifetime.as_secs(),
                    "interval": code.interval.as_secs(),
                }),
            )
        }
        (&Method::GET, "/authorize") => {
            let query = form(call.query.as_bytes());
            let known = |id: &str| id == shared.client_id || id == WEB_CLIENT_ID;
            match shared.lock().code.authorize(&query, known) {
                Authorized::Redirect(to) => redirect(&to),
                Authorized::Refused(why) => {
                    json_response(StatusCode::BAD_REQUEST, &json!({ "error": why }))
                }
            }
        }
        (&Method::POST, "/token")
            if field(&form(body), "grant_type") == Some("authorization_code") =>
        {
            let form = form(body);
            let answer = shared
                .lock()
                .code
                .exchange(&form, basic_credentials(call.authorization));
            match answer {
                Exchange::Error("invalid_client") => json_response(
                    StatusCode::UNAUTHORIZED,
                    &json!({ "error": "invalid_client" }),
                ),
                Exchange::Error(e) => oauth_error(e),
                Exchange::Token(claims, client_id) => token_response(shared, claims, &client_id),
            }
        }
        (&Method::POST, "/token") => {
            let form = form(body);
            if field(&form, "grant_type") != Some(DEVICE_GRANT) {
                return oauth_error("unsupported_grant_type");
            }
            let (Some(device_code), Some(client_id)) =
                (field(&form, "device_code"), field(&form, "client_id"))
            else {
                return oauth_error("invalid_request");
            };
            let answer = shared.lock().device.poll(device_code, client_id);
            match answer {
                PollAnswer::Error(e) => oauth_error(e),
                PollAnswer::Token(claims, client_id) => token_response(shared, claims, &client_id),
            }
        }
        _ => json_response(StatusCode::NOT_FOUND, &json!({"error": "not_found"})),
    }
}
