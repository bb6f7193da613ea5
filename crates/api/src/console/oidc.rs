//! Signing in to the console with an OpenID Connect provider: the authorization code grant with
//! PKCE (RFC 7636, S256), ending in the same session as a one-time link.
//!
//! `GET /ui/signin/oidc/{n}` records the sign-in (the SHA-256 of its `state` and of its `nonce`,
//! the PKCE challenge, the redirect URI, ten minutes to live), puts the PKCE verifier in a cookie
//! scoped to the sign-in's paths, and sends the browser to the provider's authorization
//! endpoint. `GET /ui/signin/oidc/callback` uses that record once (only with the verifier of the
//! browser that started it, so a callback URL handed to someone else signs no one in), exchanges
//! the code at the token endpoint, verifies the ID token exactly as `POST /v1/auth/oidc-login`
//! does, checks its nonce, resolves the user exactly as that login does (a disabled user is
//! refused) and starts a session. Every outcome after the record is found is audited as
//! `console.signin`.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gpudev_domain::ConsoleSecret;
use gpudev_store::StoreError;
use gpudev_store::console_oidc::{self, PendingSignin};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

use super::{Viewer, html, message, over_tls, session_cookie, start_session};
use crate::audit::{self, Audit, RequestCtx};
use crate::error::{ApiError, ApiResult};
use crate::oidc::config::{ConsoleClient, IssuerConfig};
use crate::oidc::{Rejection, verify};
use crate::routes::auth::issue_key::{LoginIdentity, UserRefusal, upsert_user};
use crate::state::AppState;

/// The cookie holding the PKCE verifier of a sign-in in progress.
pub const FLOW_COOKIE: &str = "gpudev_oidc";
/// Where the provider sends the browser back.
pub const CALLBACK_PATH: &str = "/ui/signin/oidc/callback";
/// How long a started sign-in can be finished.
const FLOW_TTL_SECS: i64 = 600;
/// The cookie's path: the start and the callback, nothing else.
const FLOW_PATH: &str = "/ui/signin/oidc";
/// The method recorded for these sign-ins.
const METHOD: &str = "oidc";
/// Their `method` label in `auth_attempts_total`.
const METRIC_METHOD: &str = "console-oidc";

/// Registers the sign-in's routes (inside the `/ui` scope). The callback comes first: `{n}`
/// would match it too.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/signin/oidc/callback", web::get().to(callback))
        .route("/signin/oidc/{n}", web::get().to(start));
}

/// One way to sign in, as the sign-in page shows it.
struct Provider {
    index: usize,
    name: String,
}

#[derive(Template)]
#[template(path = "console/signin_oidc.html")]
struct SigninChoicePage<'a> {
    user: Option<Viewer>,
    page: &'a str,
    providers: Vec<Provider>,
}

/// The configured issuers the console signs in with, by their place in the list.
fn console_issuers(
    state: &AppState,
) -> impl Iterator<Item = (usize, &IssuerConfig, &ConsoleClient)> {
    state
        .config
        .oidc_issuers
        .iter()
        .enumerate()
        .filter_map(|(n, i)| i.console.as_ref().map(|c| (n, i, c)))
}

/// The page for a browser without a session: "Sign in with <provider>" for each provider the
/// console may use, and the CLI's one-time link.
pub fn signed_out_page(state: &AppState) -> ApiResult<HttpResponse> {
    let providers = console_issuers(state)
        .map(|(index, _, c)| Provider {
            index,
            name: c.display_name.clone(),
        })
        .collect();
    html(
        StatusCode::UNAUTHORIZED,
        &SigninChoicePage {
            user: None,
            page: "",
            providers,
        },
    )
}

/// The S256 PKCE challenge of a verifier.
fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Where the provider sends the browser back: the configured console address, else this
/// request's own scheme and host.
fn redirect_uri(state: &AppState, req: &HttpRequest) -> String {
    match &state.config.console_public_url {
        Some(base) => format!("{base}{CALLBACK_PATH}"),
        None => {
            let info = req.connection_info();
            format!("{}://{}{CALLBACK_PATH}", info.scheme(), info.host())
        }
    }
}

fn unavailable() -> ApiResult<HttpResponse> {
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "The identity provider cannot be reached",
        "Try again in a moment.",
    )
}

fn start_again(status: StatusCode, why: &str) -> ApiResult<HttpResponse> {
    message(
        status,
        "Sign-in failed",
        &format!("{why} Go to the console's start page to sign in again."),
    )
}

/// Sends the browser to the provider.
async fn start(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestCtx,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    // Each start writes a row: it counts as a login attempt of its address.
    if let Some(ip) = ctx.client_ip {
        state
            .limits
            .check_login(ip, "console-oidc-start", &state.metrics)
            .await?;
    }
    let chosen = path
        .parse::<usize>()
        .ok()
        .and_then(|n| console_issuers(&state).find(|(i, _, _)| *i == n));
    let Some((_, issuer, client)) = chosen else {
        return message(
            StatusCode::NOT_FOUND,
            "No such sign-in",
            "This console does not sign in with that provider.",
        );
    };
    let Ok(discovery) = state.oidc.discover(issuer).await else {
        return unavailable();
    };
    let (Some(authorize), Some(_)) = (discovery.authorization_endpoint, discovery.token_endpoint)
    else {
        tracing::warn!(issuer = %issuer.issuer, "the issuer offers no authorization code grant");
        return unavailable();
    };
    let secret = || ConsoleSecret::generate().map_err(ApiError::internal);
    let (flow_state, nonce, verifier) = (secret()?, secret()?, secret()?);
    let pending = PendingSignin {
        issuer: issuer.issuer.clone(),
        nonce_hash: nonce.hash(),
        redirect_uri: redirect_uri(&state, &req),
    };
    let challenge = s256(verifier.expose());
    let scope = client.scopes.join(" ");
    let location = reqwest::Url::parse_with_params(
        &authorize,
        [
            ("response_type", "code"),
            ("client_id", client.client_id.as_str()),
            ("redirect_uri", pending.redirect_uri.as_str()),
            ("scope", scope.as_str()),
            ("state", flow_state.expose()),
            ("nonce", nonce.expose()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ],
    )
    .map_err(ApiError::internal)?;
    let db = state.db().await?;
    console_oidc::start(
        &*db,
        &flow_state.hash(),
        &challenge,
        &pending,
        FLOW_TTL_SECS as f64,
    )
    .await?;
    // Lax, not Strict: the provider's redirect back is a cross-site navigation.
    let cookie = Cookie::build(FLOW_COOKIE, verifier.expose().to_owned())
        .path(FLOW_PATH)
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(over_tls(&req))
        .max_age(actix_web::cookie::time::Duration::seconds(FLOW_TTL_SECS))
        .finish();
    Ok(HttpResponse::SeeOther()
        .cookie(cookie)
        .insert_header((header::LOCATION, location.as_str()))
        .finish())
}

/// What the provider sends back.
#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// The facts of one finished attempt, for its audit record.
struct Attempt<'a> {
    state: &'a AppState,
    ctx: &'a RequestCtx,
    issuer: &'a str,
}

impl Attempt<'_> {
    /// Counts the attempt's outcome.
    fn count(&self, outcome: &str) {
        self.state
            .metrics
            .auth_attempts
            .with_label_values(&[METRIC_METHOD, outcome])
            .inc();
    }

    /// Records a refused sign-in (best effort: the refusal stands if the record cannot be
    /// written) and answers `status` with `text`.
    async fn refuse(
        &self,
        actor: &str,
        reason: &str,
        status: StatusCode,
        text: &str,
    ) -> ApiResult<HttpResponse> {
        tracing::warn!(issuer = self.issuer, reason, "console sign-in refused");
        self.count("rejected");
        let write = async {
            let db = self.state.db().await?;
            audit::record_with_issuer(
                &*db,
                None,
                actor,
                Some(METHOD),
                Some(self.issuer),
                self.ctx,
                Audit {
                    action: "console.signin",
                    target_type: None,
                    target_id: None,
                    outcome: "denied",
                    details: Some(serde_json::json!({ "method": METHOD, "reason": reason })),
                },
            )
            .await
            .map_err(ApiError::from)
        };
        if let Err(e) = write.await {
            tracing::warn!(error = %e, "could not record the refused console sign-in");
        }
        start_again(status, text)
    }
}

/// The browser back from the provider.
async fn callback(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestCtx,
    q: web::Query<CallbackQuery>,
) -> ApiResult<HttpResponse> {
    if let Some(ip) = ctx.client_ip {
        state
            .limits
            .check_login(ip, "console-oidc", &state.metrics)
            .await?;
    }
    if let Some(error) = &q.error {
        // The provider's own words are not shown: they are the provider's to word, and shown
        // on our page they would be text anyone could put there with a link.
        tracing::info!(error = %error, "the identity provider did not sign the browser in");
        return start_again(
            StatusCode::BAD_REQUEST,
            "The identity provider did not sign you in.",
        );
    }
    let flow = q
        .state
        .as_deref()
        .and_then(|s| ConsoleSecret::parse(s).ok());
    let verifier = req
        .cookie(FLOW_COOKIE)
        .and_then(|c| ConsoleSecret::parse(c.value()).ok());
    let (Some(flow), Some(verifier), Some(code)) = (flow, verifier, q.code.as_deref()) else {
        return start_again(
            StatusCode::BAD_REQUEST,
            "This sign-in was not started in this browser, or the answer is incomplete.",
        );
    };
    let db = state.db().await?;
    let pending = console_oidc::redeem(&*db, &flow.hash(), &s256(verifier.expose())).await?;
    drop(db);
    let Some(pending) = pending else {
        return start_again(
            StatusCode::BAD_REQUEST,
            "This sign-in was finished already, has expired (ten minutes), or was started in \
             another browser.",
        );
    };
    let attempt = Attempt {
        state: &state,
        ctx: &ctx,
        issuer: &pending.issuer,
    };
    let Some((config, client)) = state
        .config
        .oidc_issuers
        .iter()
        .find(|i| i.issuer == pending.issuer)
        .and_then(|i| i.console.as_ref().map(|c| (i, c)))
    else {
        return attempt
            .refuse(
                "anonymous",
                "issuer_not_configured",
                StatusCode::BAD_REQUEST,
                "This console no longer signs in with that provider.",
            )
            .await;
    };
    let id_token = match exchange(&state, config, client, code, &pending, &verifier).await {
        Ok(token) => token,
        Err(Exchange::Unreachable) => return unavailable(),
        Err(Exchange::Refused(error)) => {
            return attempt
                .refuse(
                    "anonymous",
                    &format!("code_refused: {error}"),
                    StatusCode::BAD_REQUEST,
                    "The identity provider did not accept this sign-in.",
                )
                .await;
        }
    };
    let (identity, claims) = match verify::verify_with_claims(&state.oidc, &id_token).await {
        Ok(verified) => verified,
        Err(Rejection::Unavailable(_)) => return unavailable(),
        Err(Rejection::Invalid(code, _)) => {
            return attempt
                .refuse(
                    "anonymous",
                    code.as_str(),
                    StatusCode::UNAUTHORIZED,
                    "The identity provider's answer could not be verified.",
                )
                .await;
        }
        Err(Rejection::Missing(code, detail)) => {
            return attempt
                .refuse(
                    "anonymous",
                    code.as_str(),
                    StatusCode::FORBIDDEN,
                    &format!("{detail}."),
                )
                .await;
        }
    };
    let nonce_hash = claims
        .get("nonce")
        .and_then(Value::as_str)
        .map(|n| hex::encode(Sha256::digest(n.as_bytes())))
        .unwrap_or_default();
    let nonce_ok = bool::from(nonce_hash.as_bytes().ct_eq(pending.nonce_hash.as_bytes()));
    if identity.issuer != pending.issuer || !nonce_ok {
        return attempt
            .refuse(
                identity.username.as_str(),
                "nonce_mismatch",
                StatusCode::UNAUTHORIZED,
                "The identity provider's answer was not for this sign-in.",
            )
            .await;
    }
    finish(&attempt, &req, &identity).await
}

/// Why no ID token came from the code.
enum Exchange {
    Unreachable,
    /// The provider's OAuth error code (or the status when it gave none).
    Refused(String),
}

/// Exchanges `code` at the provider's token endpoint for an ID token, with the sign-in's
/// redirect URI and PKCE verifier (and the client's secret, for a confidential client).
async fn exchange(
    state: &AppState,
    config: &IssuerConfig,
    client: &ConsoleClient,
    code: &str,
    pending: &PendingSignin,
    verifier: &ConsoleSecret,
) -> Result<String, Exchange> {
    let discovery = state
        .oidc
        .discover(config)
        .await
        .map_err(|_| Exchange::Unreachable)?;
    let endpoint = discovery.token_endpoint.ok_or(Exchange::Unreachable)?;
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", pending.redirect_uri.as_str()),
        ("code_verifier", verifier.expose()),
    ];
    let basic = client
        .client_secret
        .as_ref()
        .map(|s| (client.client_id.as_str(), s.expose()));
    if basic.is_none() {
        form.push(("client_id", client.client_id.as_str()));
    }
    let (status, body) = state
        .oidc
        .post_form(&endpoint, &form, basic)
        .await
        .map_err(|e| {
            tracing::warn!(issuer = %config.issuer, error = %e, "code exchange failed");
            Exchange::Unreachable
        })?;
    if !status.is_success() {
        let error = body
            .get("error")
            .and_then(Value::as_str)
            .filter(|e| e.len() <= 64 && e.bytes().all(|b| b.is_ascii_graphic()))
            .map_or_else(|| status.as_u16().to_string(), str::to_owned);
        return Err(Exchange::Refused(error));
    }
    body.get("id_token")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| Exchange::Refused("no_id_token".into()))
}

/// Resolves the user as `POST /v1/auth/oidc-login` does and starts their session, with its
/// audit record, in one transaction.
async fn finish(
    attempt: &Attempt<'_>,
    req: &HttpRequest,
    identity: &crate::oidc::OidcIdentity,
) -> ApiResult<HttpResponse> {
    let state = attempt.state;
    let mut db = state.db().await?;
    let tx = db.transaction().await.map_err(StoreError::from)?;
    let login = LoginIdentity::Oidc(identity);
    let user = match upsert_user(&tx, login, identity.is_admin).await? {
        Ok(user) => user,
        Err(refusal) => {
            tx.rollback().await.map_err(StoreError::from)?;
            drop(db);
            let claimed = login.username();
            let (status, text) = match refusal {
                UserRefusal::Disabled(_) => (StatusCode::FORBIDDEN, "Your account is disabled."),
                UserRefusal::Taken(_) => (
                    StatusCode::CONFLICT,
                    "Your username belongs to another account; ask an operator to link them.",
                ),
            };
            return attempt
                .refuse(refusal.actor(&claimed), refusal.reason(), status, text)
                .await;
        }
    };
    let session = start_session(&tx, user.user_id, None).await?;
    let mut details = login.details();
    if let Some(map) = details.as_object_mut() {
        map.insert("method".into(), METHOD.into());
    }
    audit::record_with_issuer(
        &tx,
        None,
        user.username.as_str(),
        Some(METHOD),
        Some(&identity.issuer),
        attempt.ctx,
        Audit {
            action: "console.signin",
            target_type: Some("user"),
            target_id: Some(user.user_id.to_string()),
            outcome: "success",
            details: Some(details),
        },
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    tracing::info!(user = %user.username, issuer = %identity.issuer, "console sign-in");
    attempt.count("success");
    let mut gone = Cookie::build(FLOW_COOKIE, "").path(FLOW_PATH).finish();
    gone.make_removal();
    Ok(HttpResponse::SeeOther()
        .cookie(session_cookie(req, &session))
        .cookie(gone)
        .insert_header((header::LOCATION, "/ui/"))
        .finish())
}
