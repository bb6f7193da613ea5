//! The web console under `/ui/` (docs/CONSOLE.md): pages rendered on the server from templates
//! checked at compile time, read through the same store functions and rules as the API.
//!
//! Signing in: `gpu-dev console` asks `POST /v1/console/links` for a one-time link; opening it
//! shows whose sign-in it is, and its button (a POST, so link previews cannot use it) starts a
//! session. The session id travels in an `HttpOnly`, `SameSite=Lax` cookie scoped to `/ui`
//! (`Secure` when the request came over TLS) and is stored only as a hash; every form carries
//! the session's CSRF token. A session ends at sign-out, after [`SESSION_TTL`], when its user is
//! disabled, or when the API key that asked for its link is revoked.
//!
//! Every page carries a strict Content-Security-Policy: scripts, styles and live updates only
//! from this server (our own small `console.js`, no inline script), no framing.

use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use gpudev_domain::ConsoleSecret;
use gpudev_store::console::{self, SessionUser};
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

use crate::audit::{self, Audit, RequestCtx};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

mod account;
pub mod admin;
mod detail;
mod extract;
mod forms;
mod jobs;
mod live;
pub mod oidc;
pub mod usage_chart;

/// The session cookie.
pub const SESSION_COOKIE: &str = "gpudev_session";
/// How long a one-time link works.
pub const LINK_TTL: Duration = Duration::from_secs(120);
/// How long a session lasts at most.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// The policy of every console page.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

const STYLES: &str = include_str!("../../templates/console/console.css");

/// Registers the console's routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/ui",
        web::get().to(|| async {
            HttpResponse::PermanentRedirect()
                .insert_header((header::LOCATION, "/ui/"))
                .finish()
        }),
    )
    .service(
        web::scope("/ui")
            .wrap(from_fn(page_headers))
            .route("/", web::get().to(jobs::reservations_page))
            .route("/jobs/{id}", web::get().to(detail::detail_page))
            .route("/jobs/{id}/cancel", web::post().to(forms::cancel))
            .route("/jobs/{id}/extend", web::post().to(forms::extend))
            .route("/reserve", web::get().to(forms::reserve_page))
            .route("/reserve", web::post().to(forms::reserve))
            .route("/disks", web::get().to(account::disks_page))
            .route("/disks", web::post().to(account::create_disk))
            .route("/disks/{name}/rename", web::post().to(account::rename_disk))
            .route("/disks/{name}/delete", web::post().to(account::delete_disk))
            .route("/keys", web::get().to(account::keys_page))
            .route("/keys/{id}/revoke", web::post().to(account::revoke_key))
            .route("/ssh-keys", web::get().to(account::ssh_keys_page))
            .route("/ssh-keys", web::post().to(account::add_ssh_key))
            .route("/ssh-keys/remove", web::post().to(account::remove_ssh_key))
            .route("/events", web::get().to(live::events))
            .route("/console.js", web::get().to(live::script))
            .route("/capacity", web::get().to(capacity_page))
            .configure(oidc::configure)
            .configure(admin::configure)
            .route("/signin/{token}", web::get().to(signin_page))
            .route("/signin", web::post().to(signin))
            .route("/signout", web::post().to(signout))
            .route("/console.css", web::get().to(styles)),
    );
}

/// The Content-Security-Policy on every console answer.
async fn page_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut res = next.call(req).await?;
    res.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    Ok(res)
}

/// The signed-in user as the pages show them.
struct Viewer {
    username: String,
    csrf: String,
    /// Admins see the admin pages' link.
    admin: bool,
}

#[derive(Template)]
#[template(path = "console/capacity.html")]
struct CapacityPage<'a> {
    user: Option<Viewer>,
    page: &'a str,
    types: Vec<TypeRow>,
    note: String,
}

/// One GPU type's capacity as the page and its live updates show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
struct TypeRow {
    name: String,
    free: String,
    total: String,
    in_use: String,
    queued: String,
    largest: String,
    wait: String,
}

#[derive(Template)]
#[template(path = "console/message.html")]
struct MessagePage<'a> {
    user: Option<Viewer>,
    page: &'a str,
    heading: String,
    text: String,
}

#[derive(Template)]
#[template(path = "console/signin.html")]
struct SigninPage<'a> {
    user: Option<Viewer>,
    page: &'a str,
    username: String,
    token: String,
}

fn html(status: StatusCode, page: &impl Template) -> ApiResult<HttpResponse> {
    let body = page
        .render()
        .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body))
}

fn message(status: StatusCode, heading: &str, text: &str) -> ApiResult<HttpResponse> {
    html(
        status,
        &MessagePage {
            user: None,
            page: "",
            heading: heading.to_owned(),
            text: text.to_owned(),
        },
    )
}

fn signed_out() -> ApiResult<HttpResponse> {
    message(
        StatusCode::UNAUTHORIZED,
        "Sign in to gpudev",
        "Run `gpu-dev console` on your computer: it opens a sign-in link for this console.",
    )
}

/// The session the request's cookie names, if it is live.
async fn session_of(
    state: &AppState,
    req: &HttpRequest,
) -> ApiResult<Option<(SessionUser, String)>> {
    let Some(cookie) = req.cookie(SESSION_COOKIE) else {
        return Ok(None);
    };
    let Ok(secret) = ConsoleSecret::parse(cookie.value()) else {
        return Ok(None);
    };
    let hash = secret.hash();
    let db = state.db().await?;
    Ok(console::session(&*db, &hash).await?.map(|s| (s, hash)))
}

fn viewer(s: &SessionUser) -> Viewer {
    Viewer {
        username: s.username.to_string(),
        csrf: s.csrf_token.clone(),
        admin: s.role == gpudev_store::users::Role::Admin,
    }
}

async fn capacity_page(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<HttpResponse> {
    let Some((session, _)) = session_of(&state, &req).await? else {
        return signed_out();
    };
    let (types, note) = capacity(&state).await?;
    html(
        StatusCode::OK,
        &CapacityPage {
            user: Some(viewer(&session)),
            page: "capacity",
            types,
            note,
        },
    )
}

/// Every GPU type's capacity as `GET /v1/gpu/availability` answers, and when it was measured.
async fn capacity(state: &AppState) -> ApiResult<(Vec<TypeRow>, String)> {
    let answer = crate::routes::cluster::availability::availability(state).await?;
    let types = answer
        .availability
        .values()
        .map(|t| TypeRow {
            name: t.gpu_type.clone(),
            free: t.available.to_string(),
            total: t.total.to_string(),
            in_use: t.in_use.to_string(),
            queued: t.queued.to_string(),
            largest: t.max_reservable.to_string(),
            wait: match t.estimated_wait_minutes {
                Some(0) => "now".to_owned(),
                Some(m) => format!("~{m} min"),
                None => "-".to_owned(),
            },
        })
        .collect();
    let note = format!(
        "As of {} UTC. GPUs, or reservation slots for CPU-only types.",
        answer.timestamp.format("%H:%M:%S")
    );
    Ok((types, note))
}

/// A sign-in link opened: whose sign-in it is, and a button that uses it. Nothing is used yet,
/// so a preview of the link cannot sign anyone in.
async fn signin_page(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let Ok(token) = ConsoleSecret::parse(&path) else {
        return unusable_link();
    };
    let db = state.db().await?;
    let Some(username) = console::link_user(&*db, &token.hash()).await? else {
        return unusable_link();
    };
    html(
        StatusCode::OK,
        &SigninPage {
            user: None,
            page: "",
            username: username.to_string(),
            token: token.expose().to_owned(),
        },
    )
}

fn unusable_link() -> ApiResult<HttpResponse> {
    message(
        StatusCode::BAD_REQUEST,
        "This sign-in link cannot be used",
        "It was used already, has expired (links work for two minutes) or is not one of ours. \
         Run `gpu-dev console` again for a new one.",
    )
}

/// The sign-in form.
#[derive(Deserialize)]
struct SigninForm {
    token: String,
}

async fn signin(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestCtx,
    form: web::Form<SigninForm>,
) -> ApiResult<HttpResponse> {
    let Ok(token) = ConsoleSecret::parse(&form.token) else {
        return unusable_link();
    };
    let mut db = state.db().await?;
    let tx = db
        .transaction()
        .await
        .map_err(gpudev_store::StoreError::from)?;
    let Some((user_id, username, key_id)) = console::redeem_link(&tx, &token.hash()).await? else {
        return unusable_link();
    };
    let session = start_session(&tx, user_id, Some(key_id)).await?;
    audit::record(
        &tx,
        None,
        username.as_str(),
        Some("console_link"),
        &ctx,
        Audit {
            action: "console.signin",
            target_type: Some("user"),
            target_id: Some(user_id.to_string()),
            outcome: "success",
            details: Some(serde_json::json!({ "key_id": key_id })),
        },
    )
    .await?;
    tx.commit().await.map_err(gpudev_store::StoreError::from)?;
    Ok(HttpResponse::SeeOther()
        .cookie(session_cookie(&req, &session))
        .insert_header((header::LOCATION, "/ui/"))
        .finish())
}

/// Starts a session for `user_id` (inside the sign-in's transaction); `key_id` is the key whose
/// link signed in, if any. Returns the session's secret for the cookie.
async fn start_session(
    tx: &impl gpudev_store::Db,
    user_id: i64,
    key_id: Option<i64>,
) -> ApiResult<ConsoleSecret> {
    let session = ConsoleSecret::generate().map_err(ApiError::internal)?;
    let csrf = ConsoleSecret::generate().map_err(ApiError::internal)?;
    console::create_session(
        tx,
        &session.hash(),
        user_id,
        key_id,
        csrf.expose(),
        SESSION_TTL.as_secs_f64(),
    )
    .await?;
    Ok(session)
}

/// True when the request reached us over TLS, directly or through a proxy that says so.
fn over_tls(req: &HttpRequest) -> bool {
    req.connection_info().scheme() == "https"
}

/// The cookie that carries a session.
fn session_cookie(req: &HttpRequest, session: &ConsoleSecret) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, session.expose().to_owned())
        .path("/ui")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(over_tls(req))
        .max_age(actix_web::cookie::time::Duration::seconds(
            i64::try_from(SESSION_TTL.as_secs()).unwrap_or(i64::MAX),
        ))
        .finish()
}

/// The sign-out form.
#[derive(Deserialize)]
struct SignoutForm {
    csrf: String,
}

async fn signout(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestCtx,
    form: web::Form<SignoutForm>,
) -> ApiResult<HttpResponse> {
    let Some((session, hash)) = session_of(&state, &req).await? else {
        return signed_out();
    };
    if !csrf_ok(&session, &form.csrf) {
        return form_expired();
    }
    let db = state.db().await?;
    if console::end_session(&*db, &hash).await? {
        audit::record(
            &*db,
            None,
            session.username.as_str(),
            Some("console_session"),
            &ctx,
            Audit {
                action: "console.signout",
                target_type: Some("user"),
                target_id: Some(session.user_id.to_string()),
                outcome: "success",
                details: None,
            },
        )
        .await?;
    }
    let mut gone = Cookie::build(SESSION_COOKIE, "").path("/ui").finish();
    gone.make_removal();
    let mut res = message(
        StatusCode::OK,
        "Signed out",
        "Run `gpu-dev console` to sign in again.",
    )?;
    res.add_cookie(&gone).map_err(ApiError::internal)?;
    Ok(res)
}

async fn styles() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(STYLES)
}

/// Whether a form's CSRF token is its session's (compared in constant time).
fn csrf_ok(session: &SessionUser, sent: &str) -> bool {
    bool::from(session.csrf_token.as_bytes().ct_eq(sent.as_bytes()))
}

/// 403 for a form without its session's CSRF token: nothing was changed.
fn form_expired() -> ApiResult<HttpResponse> {
    message(
        StatusCode::FORBIDDEN,
        "This form has expired",
        "Nothing was changed. Reload the page and try again.",
    )
}

/// The session's user as the API's routes see a caller, so the console acts through the same
/// functions and rules. It holds no API key: the key fields name the console instead.
fn caller_of(s: &SessionUser) -> Caller {
    Caller {
        user_id: s.user_id,
        username: s.username.clone(),
        role: s.role,
        key_id: 0,
        key_expires_at: s.expires_at,
        rate_limit_per_minute: None,
        key_auth_method: "console".to_owned(),
        key_auth_issuer: None,
    }
}

/// A refusal from the API's rules as a page: its status and its `detail`. A fault on our side
/// stays the API's opaque 500.
fn refusal(e: ApiError) -> ApiResult<HttpResponse> {
    use actix_web::ResponseError as _;
    if matches!(e, ApiError::Internal(_) | ApiError::Unavailable(_)) {
        return Err(e);
    }
    let status = e.status_code();
    let heading = match status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::CONFLICT => "That cannot be done now",
        _ => "That cannot be done",
    };
    message(status, heading, &e.to_string())
}
