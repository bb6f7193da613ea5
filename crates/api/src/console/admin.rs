//! The console's admin pages (docs/CONSOLE.md): users (disable, enable, the admin role), the
//! whole queue, usage charts and the audit log. Only an admin's session sees them; anyone else
//! gets exactly what a path that leads nowhere answers (404), for every page and form.
//!
//! Every page reads, and every form writes, through the functions the `/v1/admin/*` routes use,
//! so the console and the API apply one set of rules and write the same audit records (the
//! console's acting as `console_session`). Forms carry the session's CSRF token and are reached
//! through a confirmation page, so nothing changes without a second, deliberate click; no page
//! needs JavaScript.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError as _, web};
use askama::Template;
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
use gpudev_store::console::SessionUser;
use gpudev_store::usage;
use gpudev_store::users::{self, Role, User};
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

use super::usage_chart::{self, SplitBy};
use super::{Viewer, html, message, session_of, viewer};
use crate::audit::{Actor, RequestCtx};
use crate::error::{ApiError, ApiResult};
use crate::routes::admin::{audit, jobs, usage as usage_route, users as users_route};
use crate::routes::no_such_endpoint;
use crate::state::AppState;

use gpudev_api_types::admin::{AdminJobQuery, AuditQuery, UsageQuery};

/// Rows per page of the queue and the audit log.
const PAGE: i64 = 50;
/// Days the usage charts show unless asked otherwise, and at most.
const DEFAULT_DAYS: i64 = 14;
const MAX_DAYS: i64 = 90;
/// The statuses the queue page shows unless asked otherwise: everything not over.
const LIVE: &str = "queued,preparing,active";

/// Registers the admin pages (inside the `/ui` scope).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin", web::get().to(admin_home))
        .route("/admin/users", web::get().to(users_page))
        .route("/admin/users/{id}/{action}", web::get().to(confirm_page))
        .route("/admin/users/{id}/{action}", web::post().to(change_user))
        .route("/admin/queue", web::get().to(queue_page))
        .route("/admin/audit", web::get().to(audit_page))
        .route("/admin/usage", web::get().to(usage_page))
        .route("/admin/usage/{chart}", web::get().to(usage_svg));
}

/// The request's session when it is an admin's; anyone else is answered as if the page did not
/// exist.
async fn admin_session(state: &AppState, req: &HttpRequest) -> ApiResult<SessionUser> {
    match session_of(state, req).await? {
        Some((s, _)) if s.role == Role::Admin => Ok(s),
        _ => Err(no_such_endpoint()),
    }
}

/// The console session's user as the audit log names them.
fn actor(s: &SessionUser) -> Actor<'_> {
    Actor {
        user_id: Some(s.user_id),
        name: s.username.as_str(),
        auth_method: Some("console_session"),
        auth_issuer: None,
    }
}

/// A client's mistake as a page (its status and the rule's own words); server errors stay
/// errors (opaque 500s, their cause logged).
fn refusal(e: ApiError) -> ApiResult<HttpResponse> {
    let status = e.status_code();
    if status.is_server_error() {
        return Err(e);
    }
    message(status, "That did not work", &e.to_string())
}

/// An empty form field is no filter.
fn given(value: Option<&String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// `/ui/admin`: the users page.
async fn admin_home(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<HttpResponse> {
    admin_session(&state, &req).await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/ui/admin/users"))
        .finish())
}

// ----------------------------------------------------------------------------------------------
// Users

/// What an admin can do to a user from the users page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UserAction {
    Disable,
    Enable,
    GrantAdmin,
    RevokeAdmin,
}

impl UserAction {
    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "disable" => Some(Self::Disable),
            "enable" => Some(Self::Enable),
            "grant-admin" => Some(Self::GrantAdmin),
            "revoke-admin" => Some(Self::RevokeAdmin),
            _ => None,
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Enable => "enable",
            Self::GrantAdmin => "grant-admin",
            Self::RevokeAdmin => "revoke-admin",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Disable => "Disable",
            Self::Enable => "Enable",
            Self::GrantAdmin => "Make admin",
            Self::RevokeAdmin => "Remove admin role",
        }
    }

    fn consequence(self) -> &'static str {
        match self {
            Self::Disable => {
                "Their API keys are revoked and their console sessions end at once; they cannot \
                 log in until they are enabled again. Their reservations are not touched."
            }
            Self::Enable => {
                "They can log in again. Keys revoked when they were disabled stay revoked."
            }
            Self::GrantAdmin => {
                "They can see and change every user, every reservation and the audit log."
            }
            Self::RevokeAdmin => "They keep their account and lose the admin pages and routes.",
        }
    }

    /// The actions the users page offers for `u` to the admin `me`: never disabling themselves
    /// or taking their own admin role.
    fn offered(u: &User, me: i64) -> Vec<Self> {
        let own = u.user_id == me;
        let mut out = Vec::new();
        match (u.is_active, own) {
            (true, false) => out.push(Self::Disable),
            (false, _) => out.push(Self::Enable),
            (true, true) => {}
        }
        match (u.role, own) {
            (Role::User, _) => out.push(Self::GrantAdmin),
            (Role::Admin, false) => out.push(Self::RevokeAdmin),
            (Role::Admin, true) => {}
        }
        out
    }
}

struct ActionLink {
    href: String,
    label: &'static str,
}

struct UserRow {
    name: String,
    role: &'static str,
    active: bool,
    login: &'static str,
    last_login: String,
    actions: Vec<ActionLink>,
}

#[derive(Template)]
#[template(path = "console/admin_users.html")]
struct UsersPage<'a> {
    user: Option<Viewer>,
    page: &'a str,
    section: &'a str,
    users: Vec<UserRow>,
}

fn when(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

async fn users_page(state: web::Data<AppState>, req: HttpRequest) -> ApiResult<HttpResponse> {
    let session = admin_session(&state, &req).await?;
    let db = state.db().await?;
    let all = users::list(&*db).await?;
    drop(db);
    let rows = all
        .iter()
        .map(|u| UserRow {
            name: u.username.to_string(),
            role: u.role.as_str(),
            active: u.is_active,
            login: match (&u.oidc_issuer, &u.aws_arn) {
                (Some(_), Some(_)) => "OIDC, AWS",
                (Some(_), None) => "OIDC",
                (None, Some(_)) => "AWS",
                (None, None) => "-",
            },
            last_login: when(u.last_login_at),
            actions: UserAction::offered(u, session.user_id)
                .into_iter()
                .map(|a| ActionLink {
                    href: format!("/ui/admin/users/{}/{}", u.user_id, a.slug()),
                    label: a.label(),
                })
                .collect(),
        })
        .collect();
    html(
        StatusCode::OK,
        &UsersPage {
            user: Some(viewer(&session)),
            page: "admin",
            section: "users",
            users: rows,
        },
    )
}

#[derive(Template)]
#[template(path = "console/admin_confirm.html")]
struct ConfirmPage<'a> {
    user: Option<Viewer>,
    page: &'a str,
    section: &'a str,
    question: String,
    consequence: &'a str,
    action: String,
    button: &'a str,
    csrf: String,
}

/// The user and action a path names (404 for an unknown action or user).
async fn target(
    state: &AppState,
    path: &(String, String),
) -> ApiResult<Result<(User, UserAction), ApiError>> {
    let Some(action) = UserAction::parse(&path.1) else {
        return Err(no_such_endpoint());
    };
    let db = state.db().await?;
    let found = match path.0.parse::<i64>() {
        Ok(id) => users::find_by_id(&*db, id).await?,
        Err(_) => None,
    };
    Ok(found
        .map(|u| (u, action))
        .ok_or_else(|| ApiError::NotFound(format!("User {} not found", path.0))))
}

/// "Disable bob?" with the consequences and the form that does it.
async fn confirm_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let session = admin_session(&state, &req).await?;
    let (target, action) = match target(&state, &path).await? {
        Ok(found) => found,
        Err(e) => return refusal(e),
    };
    let name = target.username.to_string();
    html(
        StatusCode::OK,
        &ConfirmPage {
            csrf: session.csrf_token.clone(),
            user: Some(viewer(&session)),
            page: "admin",
            section: "users",
            question: format!("{} {name}?", action.label()),
            consequence: action.consequence(),
            action: format!("/ui/admin/users/{}/{}", target.user_id, action.slug()),
            button: action.label(),
        },
    )
}

/// A form that carries only the session's CSRF token (missing: refused like a wrong one).
#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

fn csrf_ok(session: &SessionUser, form: &CsrfForm) -> bool {
    bool::from(session.csrf_token.as_bytes().ct_eq(form.csrf.as_bytes()))
}

async fn change_user(
    state: web::Data<AppState>,
    req: HttpRequest,
    ctx: RequestCtx,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfForm>,
) -> ApiResult<HttpResponse> {
    let session = admin_session(&state, &req).await?;
    if !csrf_ok(&session, &form) {
        return message(
            StatusCode::FORBIDDEN,
            "This form has expired",
            "Reload the page and try again.",
        );
    }
    let (target, action) = match target(&state, &path).await? {
        Ok(found) => found,
        Err(e) => return refusal(e),
    };
    let id = target.user_id.to_string();
    let who = actor(&session);
    let done = match action {
        UserAction::Disable => users_route::set_user_active(&state, &who, &ctx, &id, false).await,
        UserAction::Enable => users_route::set_user_active(&state, &who, &ctx, &id, true).await,
        UserAction::GrantAdmin => {
            users_route::set_user_role(&state, &who, &ctx, &id, Role::Admin).await
        }
        UserAction::RevokeAdmin if target.user_id == session.user_id => {
            return message(
                StatusCode::CONFLICT,
                "That did not work",
                "Admins cannot take their own admin role; ask another admin.",
            );
        }
        UserAction::RevokeAdmin => {
            users_route::set_user_role(&state, &who, &ctx, &id, Role::User).await
        }
    };
    match done {
        Ok(_) => Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/ui/admin/users"))
            .finish()),
        Err(e) => refusal(e),
    }
}

// ----------------------------------------------------------------------------------------------
// The queue

struct QueueRow {
    short_id: String,
    owner: String,
    name: String,
    gpus: String,
    status: String,
    position: String,
    starts: String,
    created: String,
}

#[derive(Template)]
#[template(path = "console/admin_queue.html")]
struct QueuePage<'a> {
    user: Option<Viewer>,
    page: &'a str,
    section: &'a str,
    filter_user: String,
    filter_status: String,
    jobs: Vec<QueueRow>,
    total: i64,
    newer: Option<String>,
    older: Option<String>,
}

/// The query of a page link: the filters given and the offset.
fn page_link(path: &str, filters: &[(&str, &str)], offset: i64) -> String {
    let offset = offset.to_string();
    let mut pairs: Vec<(&str, &str)> = filters
        .iter()
        .copied()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    pairs.push(("offset", &offset));
    format!(
        "{path}?{}",
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    )
}

/// Links to the previous and next page of `total` rows (or of an unknown total: more when the
/// page was full).
fn pager(
    path: &str,
    filters: &[(&str, &str)],
    offset: i64,
    shown: usize,
    total: Option<i64>,
) -> (Option<String>, Option<String>) {
    let newer = (offset > 0).then(|| page_link(path, filters, (offset - PAGE).max(0)));
    let shown = i64::try_from(shown).unwrap_or(i64::MAX);
    let more = match total {
        Some(t) => offset + shown < t,
        None => shown == PAGE,
    };
    let older = more.then(|| page_link(path, filters, offset + PAGE));
    (newer, older)
}

/// The filters of the queue and audit pages (all optional, empty meaning none).
#[derive(Deserialize)]
struct Filters {
    user: Option<String>,
    status: Option<String>,
    action: Option<String>,
    from: Option<String>,
    to: Option<String>,
    offset: Option<String>,
}

impl Filters {
    fn offset(&self) -> Result<i64, ApiError> {
        match given(self.offset.as_ref()) {
            None => Ok(0),
            Some(raw) => raw.parse::<i64>().ok().filter(|o| *o >= 0).ok_or_else(|| {
                ApiError::invalid("offset", "offset must be a whole number, 0 or more")
            }),
        }
    }
}

/// The admin's session and the page offset of a filtered page, or the page answering a bad
/// offset.
async fn filtered(
    state: &AppState,
    req: &HttpRequest,
    q: &Filters,
) -> ApiResult<Result<(SessionUser, i64), HttpResponse>> {
    let session = admin_session(state, req).await?;
    Ok(match q.offset() {
        Ok(offset) => Ok((session, offset)),
        Err(e) => Err(refusal(e)?),
    })
}

async fn queue_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<Filters>,
) -> ApiResult<HttpResponse> {
    let (session, offset) = match filtered(&state, &req, &q).await? {
        Ok(found) => found,
        Err(page) => return Ok(page),
    };
    let filter_user = given(q.user.as_ref()).unwrap_or_default();
    let filter_status = given(q.status.as_ref()).unwrap_or_else(|| LIVE.to_owned());
    let query = AdminJobQuery {
        user: given(q.user.as_ref()),
        // "all" is every status, as an absent filter is for the API.
        status: (filter_status != "all").then(|| filter_status.clone()),
        limit: Some(PAGE),
        offset: Some(offset),
    };
    let list = match jobs::all_jobs(&state, session.user_id, &query).await {
        Ok(list) => list,
        Err(e) => return refusal(e),
    };
    let rows: Vec<QueueRow> = list
        .jobs
        .iter()
        .map(|j| QueueRow {
            short_id: j.job_id.simple().to_string()[..8].to_owned(),
            owner: j.user_id.clone(),
            name: j.name.clone().unwrap_or_default(),
            gpus: format!("{} × {}", j.gpu_count, j.gpu_type),
            status: j.status.clone(),
            position: j
                .queue_position
                .map(|p| format!("#{p}"))
                .unwrap_or_default(),
            starts: when(j.estimated_start_time),
            created: when(Some(j.created_at)),
        })
        .collect();
    let filters = [
        ("user", filter_user.as_str()),
        ("status", filter_status.as_str()),
    ];
    let (newer, older) = pager(
        "/ui/admin/queue",
        &filters,
        offset,
        rows.len(),
        Some(list.total),
    );
    html(
        StatusCode::OK,
        &QueuePage {
            user: Some(viewer(&session)),
            page: "admin",
            section: "queue",
            filter_user,
            filter_status,
            jobs: rows,
            total: list.total,
            newer,
            older,
        },
    )
}

// ----------------------------------------------------------------------------------------------
// The audit log

struct AuditRow {
    at: String,
    actor: String,
    method: String,
    action: String,
    target: String,
    outcome: String,
    details: String,
}

#[derive(Template)]
#[template(path = "console/admin_audit.html")]
struct AuditPage<'a> {
    user: Option<Viewer>,
    page: &'a str,
    section: &'a str,
    filter_user: String,
    filter_action: String,
    filter_from: String,
    filter_to: String,
    entries: Vec<AuditRow>,
    newer: Option<String>,
    older: Option<String>,
}

/// A time from the audit page's form: RFC 3339 as the API takes it, or what a browser's
/// `datetime-local` field sends (`2026-12-07T09:30`), read as UTC.
fn form_time(raw: Option<String>) -> Option<String> {
    raw.map(
        |t| match NaiveDateTime::parse_from_str(&t, "%Y-%m-%dT%H:%M") {
            Ok(local) => local.and_utc().to_rfc3339(),
            Err(_) => t,
        },
    )
}

/// Longest details text shown in a row.
const DETAILS_SHOWN: usize = 300;

async fn audit_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<Filters>,
) -> ApiResult<HttpResponse> {
    let (session, offset) = match filtered(&state, &req, &q).await? {
        Ok(found) => found,
        Err(page) => return Ok(page),
    };
    let query = AuditQuery {
        user: given(q.user.as_ref()),
        action: given(q.action.as_ref()),
        from: form_time(given(q.from.as_ref())),
        to: form_time(given(q.to.as_ref())),
        limit: Some(PAGE),
        offset: Some(offset),
    };
    let found = match audit::search(&state, &query).await {
        Ok(found) => found,
        Err(e) => return refusal(e),
    };
    let entries: Vec<AuditRow> = found
        .entries
        .into_iter()
        .map(|e| {
            let mut details = if e.details.is_null() {
                String::new()
            } else {
                e.details.to_string()
            };
            if details.chars().count() > DETAILS_SHOWN {
                details = details.chars().take(DETAILS_SHOWN).collect::<String>() + "…";
            }
            AuditRow {
                at: e.occurred_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                actor: e.actor,
                method: e.auth_method.unwrap_or_default(),
                action: e.action,
                target: match (e.target_type, e.target_id) {
                    (Some(t), Some(id)) => format!("{t} {id}"),
                    (Some(t), None) => t,
                    (None, id) => id.unwrap_or_default(),
                },
                outcome: e.outcome,
                details,
            }
        })
        .collect();
    let strings = [
        given(q.user.as_ref()).unwrap_or_default(),
        given(q.action.as_ref()).unwrap_or_default(),
        given(q.from.as_ref()).unwrap_or_default(),
        given(q.to.as_ref()).unwrap_or_default(),
    ];
    let [filter_user, filter_action, filter_from, filter_to] = strings;
    let filters = [
        ("user", filter_user.as_str()),
        ("action", filter_action.as_str()),
        ("from", filter_from.as_str()),
        ("to", filter_to.as_str()),
    ];
    let (newer, older) = pager("/ui/admin/audit", &filters, offset, entries.len(), None);
    html(
        StatusCode::OK,
        &AuditPage {
            user: Some(viewer(&session)),
            page: "admin",
            section: "audit",
            filter_user,
            filter_action,
            filter_from,
            filter_to,
            entries,
            newer,
            older,
        },
    )
}

// ----------------------------------------------------------------------------------------------
// Usage

/// The chart's window: whole UTC days ending with today.
struct Window {
    days: Vec<NaiveDate>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

#[derive(Deserialize)]
struct DaysQuery {
    days: Option<String>,
}

fn window(q: &DaysQuery) -> Result<Window, ApiError> {
    let days = match given(q.days.as_ref()) {
        None => DEFAULT_DAYS,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|d| (1..=MAX_DAYS).contains(d))
            .ok_or_else(|| {
                ApiError::invalid(
                    "days",
                    format!("days must be a whole number from 1 to {MAX_DAYS}"),
                )
            })?,
    };
    let today = Utc::now().date_naive();
    let first = today - Duration::days(days - 1);
    let list: Vec<NaiveDate> = first.iter_days().take_while(|d| *d <= today).collect();
    let from = first.and_time(chrono::NaiveTime::MIN).and_utc();
    let to = (today + Duration::days(1))
        .and_time(chrono::NaiveTime::MIN)
        .and_utc();
    Ok(Window {
        days: list,
        from,
        to,
    })
}

struct UsageRow {
    user: String,
    gpu_type: String,
    reservations: i64,
    gpu_hours: String,
    cost: String,
}

#[derive(Template)]
#[template(path = "console/admin_usage.html")]
struct UsagePage<'a> {
    user: Option<Viewer>,
    page: &'a str,
    section: &'a str,
    days: i64,
    span: String,
    chart_query: String,
    lines: Vec<UsageRow>,
    total_cost: String,
}

async fn usage_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<DaysQuery>,
) -> ApiResult<HttpResponse> {
    let session = admin_session(&state, &req).await?;
    let w = match window(&q) {
        Ok(w) => w,
        Err(e) => return refusal(e),
    };
    let report = usage_route::report(
        &state,
        &UsageQuery {
            from: Some(w.from.to_rfc3339()),
            to: Some(w.to.to_rfc3339()),
        },
    )
    .await?;
    let days = i64::try_from(w.days.len()).unwrap_or(DEFAULT_DAYS);
    html(
        StatusCode::OK,
        &UsagePage {
            user: Some(viewer(&session)),
            page: "admin",
            section: "usage",
            days,
            span: format!(
                "{} to {} (UTC days)",
                w.from.date_naive(),
                w.to.date_naive() - Duration::days(1)
            ),
            chart_query: format!("days={days}"),
            lines: report
                .lines
                .into_iter()
                .map(|l| UsageRow {
                    user: l.username,
                    gpu_type: l.gpu_type,
                    reservations: l.reservations,
                    gpu_hours: format!("{:.1}", l.gpu_hours),
                    cost: l.cost.map(|c| format!("${c:.2}")).unwrap_or_default(),
                })
                .collect(),
            total_cost: format!("${:.2}", report.total_cost),
        },
    )
}

/// `users.svg` or `gpu-types.svg`: the chart as an image of this origin (the policy's
/// `img-src 'self'`).
async fn usage_svg(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<DaysQuery>,
) -> ApiResult<HttpResponse> {
    admin_session(&state, &req).await?;
    let by = match path.as_str() {
        "users.svg" => SplitBy::User,
        "gpu-types.svg" => SplitBy::GpuType,
        _ => return Err(no_such_endpoint()),
    };
    let w = match window(&q) {
        Ok(w) => w,
        Err(e) => return refusal(e),
    };
    let db = state.db().await?;
    let rows = usage::gpu_hours_by_day(&*db, w.from, w.to).await?;
    drop(db);
    let series = usage_chart::series(&rows, &w.days, by);
    let svg = usage_chart::draw(&w.days, &series, by).map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().content_type("image/svg+xml").body(svg))
}
