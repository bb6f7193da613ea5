//! The forms that change things: reserve (`/ui/reserve`), extend and cancel
//! (`/ui/jobs/{id}/extend`, `/ui/jobs/{id}/cancel`). Each carries the session's CSRF token and
//! acts through the API's own functions, so the console follows the API's rules; extend and
//! cancel first show a confirmation, and act only when it is posted back.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use askama::Template;
use gpudev_domain::nodes_for;
use gpudev_store::console::SessionUser;
use gpudev_store::disks;
use gpudev_store::reservations::Reservation;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::extract::{Checked, CsrfForm, Signed};
use super::jobs::stamp;
use super::{Viewer, caller_of, html, refusal, viewer};
use crate::audit::RequestCtx;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::routes::jobs::lookup::{Visibility, find_job};
use crate::state::AppState;

/// Hours the reserve form offers when the limit allows.
const DEFAULT_HOURS: f64 = 4.0;

/// One choice of a `<select>`.
struct Choice {
    value: String,
    label: String,
    selected: bool,
}

/// The API's refusal, shown next to the field it concerns.
#[derive(Default)]
struct FieldErrors {
    gpus: Option<String>,
    hours: Option<String>,
    name: Option<String>,
    disk: Option<String>,
    jupyter: Option<String>,
    /// About the request as a whole (a quota, no SSH key).
    form: Option<String>,
}

#[derive(Template)]
#[template(path = "console/reserve.html")]
struct ReservePage<'a> {
    user: Option<Viewer>,
    page: &'a str,
    csrf: String,
    request: String,
    gpus: Vec<Choice>,
    hours: Vec<Choice>,
    disks: Vec<Choice>,
    name: String,
    jupyter: bool,
    errors: FieldErrors,
}

/// A confirmation of a change: its form posts the same action again with `confirm=yes`.
#[derive(Template)]
#[template(path = "console/confirm.html")]
pub(super) struct ConfirmPage<'a> {
    pub user: Option<Viewer>,
    pub page: &'a str,
    pub heading: String,
    pub text: String,
    /// Where the confirmation posts.
    pub action: String,
    pub csrf: String,
    /// Extend only: the hours chosen.
    pub hours: Option<String>,
    /// A hidden field to post again (its name and value), such as what to remove.
    pub carry: Option<(String, String)>,
    pub button: String,
    /// Where "keep it" leads.
    pub back: String,
}

/// The reserve form as posted. Every field may be missing: what is wrong is said next to it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ReserveForm {
    csrf: String,
    /// The form's own id, sent as the submit's Idempotency-Key: a form posted twice (a double
    /// click, a reload after posting) reserves once.
    request: String,
    /// `type:count`, one of the offered choices.
    gpus: String,
    hours: String,
    name: String,
    disk: String,
    jupyter: Option<String>,
}

/// The extend and cancel forms as posted.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ActionForm {
    csrf: String,
    /// `yes` once the confirmation was shown.
    confirm: String,
    /// Extend only.
    hours: String,
    /// Extend only: the confirmation's own id, sent as the extension's Idempotency-Key, so a
    /// confirmation posted twice extends once.
    request: String,
}

impl CsrfForm for ReserveForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl CsrfForm for ActionForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// The GPU types and counts a reservation may ask for: counts that fit one node, or whole
/// nodes of a multinode type; CPU-only types as they are.
fn gpu_choices(state: &AppState, chosen: &str) -> Vec<Choice> {
    let limits = &state.config.limits;
    let mut out = Vec::new();
    for spec in state.config.catalog.iter() {
        let most = spec.gpus_per_node.saturating_mul(limits.max_nodes.max(1));
        let counts: Vec<u32> = if spec.is_cpu_only() {
            vec![0]
        } else {
            (1..=most)
                .filter(|c| nodes_for(spec, *c, limits).is_ok())
                .collect()
        };
        for count in counts {
            let value = format!("{}:{count}", spec.name);
            let label = match nodes_for(spec, count, limits) {
                _ if spec.is_cpu_only() => format!("{} (CPU only)", spec.name),
                Ok(n) if n > 1 => format!("{count} × {} ({n} whole nodes)", spec.name),
                _ => format!("{count} × {}", spec.name),
            };
            out.push(Choice {
                selected: value == chosen,
                value,
                label,
            });
        }
    }
    out
}

/// Whole hours up to the longest reservation (or that longest, when under an hour).
fn hour_choices(state: &AppState, chosen: &str) -> Vec<Choice> {
    let max = state.config.limits.max_duration_hours;
    let chosen: f64 = chosen.parse().unwrap_or(DEFAULT_HOURS.min(max));
    let mut hours: Vec<f64> = (1..=24 * 7)
        .map(f64::from)
        .take_while(|h| *h <= max)
        .collect();
    if hours.is_empty() {
        hours.push(max);
    }
    hours
        .into_iter()
        .map(|h| Choice {
            value: h.to_string(),
            label: if h == 1.0 {
                "1 hour".to_owned()
            } else {
                format!("{h} hours")
            },
            selected: h == chosen,
        })
        .collect()
}

/// No disk, or one of the user's disks.
async fn disk_choices(
    state: &AppState,
    session: &SessionUser,
    chosen: &str,
) -> ApiResult<Vec<Choice>> {
    let db = state.db().await?;
    let found = disks::list(&*db, session.user_id, false).await?;
    let mut out = vec![Choice {
        value: String::new(),
        label: "No disk".to_owned(),
        selected: chosen.is_empty(),
    }];
    out.extend(found.into_iter().map(|d| {
        let name = d.disk_name.to_string();
        Choice {
            label: format!("{name} ({} GB, {})", d.size_gb, d.status.replace('_', " ")),
            selected: name == chosen,
            value: name,
        }
    }));
    Ok(out)
}

async fn reserve_form(
    state: &AppState,
    session: &SessionUser,
    form: &ReserveForm,
    status: StatusCode,
    errors: FieldErrors,
) -> ApiResult<HttpResponse> {
    html(
        status,
        &ReservePage {
            user: Some(viewer(session)),
            page: "reserve",
            csrf: session.csrf_token.clone(),
            request: if form.request.is_empty() {
                uuid::Uuid::new_v4().to_string()
            } else {
                form.request.clone()
            },
            gpus: gpu_choices(state, &form.gpus),
            hours: hour_choices(state, &form.hours),
            disks: disk_choices(state, session, &form.disk).await?,
            name: form.name.clone(),
            jupyter: form.jupyter.is_some(),
            errors,
        },
    )
}

pub(super) async fn reserve_page(
    state: web::Data<AppState>,
    Signed(session): Signed,
) -> ApiResult<HttpResponse> {
    reserve_form(
        &state,
        &session,
        &ReserveForm::default(),
        StatusCode::OK,
        FieldErrors::default(),
    )
    .await
}

/// The submission the form asks for, or what is wrong with the form itself.
fn submission(form: &ReserveForm) -> Result<Value, Box<FieldErrors>> {
    let mut errors = FieldErrors::default();
    let gpus = form
        .gpus
        .split_once(':')
        .and_then(|(t, c)| Some((t, c.parse::<u32>().ok()?)))
        .filter(|(t, _)| !t.is_empty());
    if gpus.is_none() {
        errors.gpus = Some("Choose a GPU type and count from the list.".into());
    }
    let hours = form.hours.parse::<f64>().ok().filter(|h| h.is_finite());
    if hours.is_none() {
        errors.hours = Some("Choose how many hours from the list.".into());
    }
    let (Some((gpu_type, gpu_count)), Some(hours)) = (gpus, hours) else {
        return Err(Box::new(errors));
    };
    let mut body = Map::new();
    body.insert("gpu_type".into(), json!(gpu_type));
    body.insert("gpu_count".into(), json!(gpu_count));
    body.insert("duration_hours".into(), json!(hours));
    body.insert("jupyter_enabled".into(), json!(form.jupyter.is_some()));
    if !form.name.trim().is_empty() {
        body.insert("name".into(), json!(form.name.trim()));
    }
    if !form.disk.is_empty() {
        body.insert("disk_name".into(), json!(form.disk));
    }
    Ok(Value::Object(body))
}

/// Where the API's refusal belongs on the form.
fn place(e: ApiError) -> Result<Box<FieldErrors>, ApiError> {
    let mut errors = FieldErrors::default();
    let detail = e.to_string();
    match e {
        ApiError::Unprocessable { field, .. } => match field.as_deref() {
            Some("gpu_type" | "gpu_count" | "instance_type") => errors.gpus = Some(detail),
            Some("duration_hours") => errors.hours = Some(detail),
            Some("name") => errors.name = Some(detail),
            Some("disk_name" | "disk_size_gb") => errors.disk = Some(detail),
            Some("jupyter_enabled") => errors.jupyter = Some(detail),
            _ => errors.form = Some(detail),
        },
        ApiError::Conflict { .. } | ApiError::Forbidden { .. } | ApiError::NotFound(_) => {
            errors.form = Some(detail);
        }
        other => return Err(other),
    }
    Ok(Box::new(errors))
}

pub(super) async fn reserve(
    state: web::Data<AppState>,
    ctx: RequestCtx,
    Checked { session, form }: Checked<ReserveForm>,
) -> ApiResult<HttpResponse> {
    let body = match submission(&form) {
        Ok(body) => body,
        Err(errors) => {
            return reserve_form(
                &state,
                &session,
                &form,
                StatusCode::UNPROCESSABLE_ENTITY,
                *errors,
            )
            .await;
        }
    };
    // Only a well-formed id is a key; a form without one (or with a forged one) still reserves.
    let key = Some(form.request.clone()).filter(|k| uuid::Uuid::parse_str(k).is_ok());
    let submitted =
        crate::routes::jobs::submit::submit(&state, caller_of(&session), ctx, body, key, None)
            .await;
    match submitted {
        Ok(_) => Ok(see_other("/ui/")),
        Err(e) => {
            use actix_web::ResponseError as _;
            let status = e.status_code();
            let errors = place(e)?;
            reserve_form(&state, &session, &form, status, *errors).await
        }
    }
}

pub(super) fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_owned()))
        .finish()
}

/// The caller's own job `raw` names, or the page saying there is none.
async fn own_job(
    state: &AppState,
    caller: &Caller,
    raw: &str,
) -> ApiResult<Result<Reservation, HttpResponse>> {
    let db = state.db().await?;
    match find_job(&*db, caller, raw, Visibility::Own).await {
        Ok(r) => Ok(Ok(r)),
        Err(e) => refusal(e).map(Err),
    }
}

/// A short name for a reservation in a sentence.
fn called(r: &Reservation) -> String {
    let id = r.reservation_id.simple().to_string()[..8].to_owned();
    match &r.name {
        Some(n) => format!("{n} ({id}, {} × {})", r.gpu_count, r.gpu_type),
        None => format!("{id} ({} × {})", r.gpu_count, r.gpu_type),
    }
}

pub(super) async fn cancel(
    state: web::Data<AppState>,
    ctx: RequestCtx,
    path: web::Path<String>,
    Checked { session, form }: Checked<ActionForm>,
) -> ApiResult<HttpResponse> {
    let caller = caller_of(&session);
    if form.confirm != "yes" {
        let r = match own_job(&state, &caller, &path).await? {
            Ok(r) => r,
            Err(page) => return Ok(page),
        };
        return html(
            StatusCode::OK,
            &ConfirmPage {
                user: Some(viewer(&session)),
                page: "jobs",
                heading: "Cancel this reservation?".into(),
                text: format!(
                    "Reservation {} ends now and its dev box is removed; only what is on a disk \
                     is kept.",
                    called(&r)
                ),
                action: format!("/ui/jobs/{}/cancel", r.reservation_id),
                csrf: session.csrf_token.clone(),
                hours: None,
                carry: None,
                button: "Cancel the reservation".into(),
                back: "/ui/".into(),
            },
        );
    }
    match crate::routes::jobs::cancel::cancel_own(&state, &caller, &ctx, &path).await {
        Ok(_) => Ok(see_other("/ui/")),
        Err(e) => refusal(e),
    }
}

pub(super) async fn extend(
    state: web::Data<AppState>,
    ctx: RequestCtx,
    path: web::Path<String>,
    Checked { session, form }: Checked<ActionForm>,
) -> ApiResult<HttpResponse> {
    let Some(hours) = form.hours.parse::<f64>().ok().filter(|h| h.is_finite()) else {
        return refusal(ApiError::invalid(
            "extension_hours",
            "choose how many hours to extend by from the list",
        ));
    };
    let caller = caller_of(&session);
    if form.confirm != "yes" {
        let r = match own_job(&state, &caller, &path).await? {
            Ok(r) => r,
            Err(page) => return Ok(page),
        };
        let when = match r.expires_at {
            Some(end) => format!(
                "it will end at {} instead of {}",
                stamp(end + chrono::Duration::seconds((hours * 3600.0).round() as i64)),
                stamp(end)
            ),
            None => "it will run that much longer once it starts".to_owned(),
        };
        return html(
            StatusCode::OK,
            &ConfirmPage {
                user: Some(viewer(&session)),
                page: "jobs",
                heading: "Extend this reservation?".into(),
                text: format!(
                    "Reservation {} gets {hours} more hours: {when}.",
                    called(&r)
                ),
                action: format!("/ui/jobs/{}/extend", r.reservation_id),
                csrf: session.csrf_token.clone(),
                hours: Some(hours.to_string()),
                carry: Some(("request".into(), uuid::Uuid::new_v4().to_string())),
                button: format!("Extend by {hours} hours"),
                back: "/ui/".into(),
            },
        );
    }
    let key = Some(form.request.clone()).filter(|k| uuid::Uuid::parse_str(k).is_ok());
    match crate::routes::jobs::extend::extend(&state, &caller, &ctx, &path, hours, key, true).await
    {
        Ok(_) => Ok(see_other("/ui/")),
        Err(e) => refusal(e),
    }
}
