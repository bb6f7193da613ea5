//! What a user keeps between reservations: disks (`/ui/disks`: create, rename, delete), API keys
//! (`/ui/keys`: list, revoke) and SSH keys (`/ui/ssh-keys`: add, remove). Each change goes
//! through the API's own function for it, with the session's CSRF token; deletions and
//! revocations are confirmed first. A new API key is never shown on a page, so rotating one
//! stays with `gpu-dev keys rotate`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError as _, web};
use askama::Template;
use gpudev_api_types::disks::{CreateDisk, DiskInfo};
use gpudev_api_types::keys::KeyInfo;
use gpudev_api_types::me::SshKeyInfo;
use gpudev_store::console::SessionUser;
use gpudev_store::disks;
use serde::Deserialize;

use super::extract::{Checked, CsrfForm, Signed};
use super::forms::{ConfirmPage, see_other};
use super::jobs::stamp;
use super::{Viewer, caller_of, html, refusal, viewer};
use crate::audit::RequestCtx;
use crate::error::{ApiError, ApiResult};
use crate::routes::disks::disk_info;
use crate::routes::{disks as disk_routes, keys as key_routes, me};
use crate::state::AppState;

/// A form's refusal shown on its page: next to the field it concerns, or above.
#[derive(Default)]
struct Problem {
    /// The field (`disk_name`, `size_gb`, `public_key`, or `rename:<disk>`), or `None`.
    field: Option<String>,
    text: String,
}

impl Problem {
    fn at(&self, field: &str) -> Option<&str> {
        (self.field.as_deref() == Some(field)).then_some(self.text.as_str())
    }

    fn general(&self) -> Option<&str> {
        (self.field.is_none() && !self.text.is_empty()).then_some(self.text.as_str())
    }
}

/// The page a refusal is shown on, and its status; a fault on our side stays the API's 500.
fn problem(e: ApiError, rename_of: Option<&str>) -> ApiResult<(StatusCode, Problem)> {
    let status = e.status_code();
    let text = e.to_string();
    let field = match e {
        ApiError::Unprocessable { field, .. } => match (field.as_deref(), rename_of) {
            (Some("new_name"), Some(disk)) => Some(format!("rename:{disk}")),
            (Some(f), _) => Some(f.to_owned()),
            (None, _) => None,
        },
        ApiError::Conflict { .. } | ApiError::NotFound(_) => {
            rename_of.map(|disk| format!("rename:{disk}"))
        }
        other => return Err(other),
    };
    Ok((status, Problem { field, text }))
}

// ---- Disks ----------------------------------------------------------------------------------

struct DiskRow {
    name: String,
    size: String,
    status: String,
    used_by: Option<String>,
    last_used: String,
    created: String,
    deleted: Option<String>,
}

fn disk_row(d: DiskInfo) -> DiskRow {
    DiskRow {
        size: format!("{} GB", d.size_gb),
        status: d.status.replace('_', " "),
        used_by: d.reservation_id.map(|r| r.to_string()),
        last_used: d.last_used.map(stamp).unwrap_or_else(|| "never".into()),
        created: stamp(d.created_at),
        deleted: d.delete_date.filter(|_| d.is_deleted).map(stamp),
        name: d.disk_name,
    }
}

#[derive(Template)]
#[template(path = "console/disks.html")]
struct DisksPage<'a> {
    user: Option<Viewer>,
    page: &'a str,
    csrf: String,
    disks: Vec<DiskRow>,
    default_size: u32,
    name: String,
    size: String,
    problem: Problem,
    notice: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct DiskForm {
    csrf: String,
    disk_name: String,
    size_gb: String,
    new_name: String,
    confirm: String,
}

impl CsrfForm for DiskForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

async fn disks_view(
    state: &AppState,
    session: &SessionUser,
    form: &DiskForm,
    status: StatusCode,
    problem: Problem,
    notice: Option<String>,
) -> ApiResult<HttpResponse> {
    let db = state.db().await?;
    let found = disks::list(&*db, session.user_id, false).await?;
    drop(db);
    let disks = found
        .into_iter()
        .map(|d| disk_row(disk_info(d, session.username.as_str())))
        .collect();
    html(
        status,
        &DisksPage {
            user: Some(viewer(session)),
            page: "disks",
            csrf: session.csrf_token.clone(),
            disks,
            default_size: state.config.default_disk_size_gb,
            name: form.disk_name.clone(),
            size: form.size_gb.clone(),
            problem,
            notice,
        },
    )
}

pub(super) async fn disks_page(
    state: web::Data<AppState>,
    Signed(session): Signed,
) -> ApiResult<HttpResponse> {
    disks_view(
        &state,
        &session,
        &DiskForm::default(),
        StatusCode::OK,
        Problem::default(),
        None,
    )
    .await
}

pub(super) async fn create_disk(
    state: web::Data<AppState>,
    ctx: RequestCtx,
    Checked { session, form }: Checked<DiskForm>,
) -> ApiResult<HttpResponse> {
    let size_gb = match form.size_gb.trim() {
        "" => None,
        raw => match raw.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                let p = Problem {
                    field: Some("size_gb".into()),
                    text: "size_gb must be a whole number of GB".into(),
                };
                return disks_view(
                    &state,
                    &session,
                    &form,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    p,
                    None,
                )
                .await;
            }
        },
    };
    let body = CreateDisk {
        disk_name: form.disk_name.trim().to_owned(),
        size_gb,
    };
    match disk_routes::create::create(&state, &caller_of(&session), &ctx, &body).await {
        Ok(done) => {
            let notice = format!("Disk '{}' is being created.", done.disk_name);
            let form = DiskForm::default();
            disks_view(
                &state,
                &session,
                &form,
                StatusCode::OK,
                Problem::default(),
                Some(notice),
            )
            .await
        }
        Err(e) => {
            let (status, mut p) = problem(e, None)?;
            if status == StatusCode::CONFLICT {
                // The name is taken: that is the name field's problem.
                p.field = Some("disk_name".into());
            }
            disks_view(&state, &session, &form, status, p, None).await
        }
    }
}

pub(super) async fn rename_disk(
    state: web::Data<AppState>,
    ctx: RequestCtx,
    path: web::Path<String>,
    Checked { session, form }: Checked<DiskForm>,
) -> ApiResult<HttpResponse> {
    let caller = caller_of(&session);
    match disk_routes::rename::rename(&state, &caller, &ctx, &path, form.new_name.trim()).await {
        Ok(_) => Ok(see_other("/ui/disks")),
        Err(e) => {
            let (status, p) = problem(e, Some(&path))?;
            disks_view(&state, &session, &DiskForm::default(), status, p, None).await
        }
    }
}

pub(super) async fn delete_disk(
    state: web::Data<AppState>,
    ctx: RequestCtx,
    path: web::Path<String>,
    Checked { session, form }: Checked<DiskForm>,
) -> ApiResult<HttpResponse> {
    let caller = caller_of(&session);
    if form.confirm != "yes" {
        let db = state.db().await?;
        if let Err(e) = disk_routes::own_disk(&*db, &caller, &path).await {
            return refusal(e);
        }
        let days = state.config.disk_delete_grace_days;
        return confirm(
            &session,
            "disks",
            "Delete this disk?",
            format!(
                "Disk '{}' is removed for good after {days} days; until then an operator can \
                 bring it back.",
                path.as_str()
            ),
            format!("/ui/disks/{}/delete", path.as_str()),
            None,
            "Delete the disk",
        );
    }
    match disk_routes::delete::delete(&state, &caller, &ctx, &path).await {
        Ok(_) => Ok(see_other("/ui/disks")),
        Err(e) => refusal(e),
    }
}

/// The confirmation page of a deletion on `page`.
fn confirm(
    session: &SessionUser,
    page: &str,
    heading: &str,
    text: String,
    action: String,
    carry: Option<(String, String)>,
    button: &str,
) -> ApiResult<HttpResponse> {
    html(
        StatusCode::OK,
        &ConfirmPage {
            user: Some(viewer(session)),
            page,
            heading: heading.to_owned(),
            text,
            action,
            csrf: session.csrf_token.clone(),
            hours: None,
            carry,
            button: button.to_owned(),
            back: format!("/ui/{page}"),
        },
    )
}

// ---- API keys -------------------------------------------------------------------------------

struct KeyRow {
    id: i64,
    prefix: String,
    description: String,
    method: String,
    status: String,
    created: String,
    expires: String,
    last_used: String,
}

fn key_row(k: KeyInfo) -> KeyRow {
    KeyRow {
        id: k.key_id,
        prefix: k.key_prefix,
        description: k.description.unwrap_or_default(),
        method: k.auth_method,
        status: k.status,
        created: stamp(k.created_at),
        expires: stamp(k.expires_at),
        last_used: k.last_used_at.map(stamp).unwrap_or_else(|| "never".into()),
    }
}

#[derive(Template)]
#[template(path = "console/keys.html")]
struct KeysPage<'a> {
    user: Option<Viewer>,
    page: &'a str,
    csrf: String,
    keys: Vec<KeyRow>,
}

pub(super) async fn keys_page(
    state: web::Data<AppState>,
    Signed(session): Signed,
) -> ApiResult<HttpResponse> {
    let keys = key_routes::list::own_keys(&state, &caller_of(&session)).await?;
    html(
        StatusCode::OK,
        &KeysPage {
            user: Some(viewer(&session)),
            page: "keys",
            csrf: session.csrf_token.clone(),
            keys: keys.into_iter().map(key_row).collect(),
        },
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ConfirmForm {
    csrf: String,
    confirm: String,
    fingerprint: String,
    public_key: String,
}

impl CsrfForm for ConfirmForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

pub(super) async fn revoke_key(
    state: web::Data<AppState>,
    ctx: RequestCtx,
    path: web::Path<String>,
    Checked { session, form }: Checked<ConfirmForm>,
) -> ApiResult<HttpResponse> {
    let caller = caller_of(&session);
    let not_found = || ApiError::NotFound(format!("API key {} not found", path.as_str()));
    let Ok(key_id) = path.parse::<i64>() else {
        return refusal(not_found());
    };
    if form.confirm != "yes" {
        let keys = key_routes::list::own_keys(&state, &caller).await?;
        let Some(key) = keys.into_iter().find(|k| k.key_id == key_id) else {
            return refusal(not_found());
        };
        return confirm(
            &session,
            "keys",
            "Revoke this API key?",
            format!(
                "Key {}… stops working at once, everywhere it is used. If it is the key that \
                 signed this console in, this session ends too.",
                key.key_prefix
            ),
            format!("/ui/keys/{key_id}/revoke"),
            None,
            "Revoke the key",
        );
    }
    match key_routes::delete::revoke(&state, &caller, &ctx, key_id).await {
        Ok(_) => Ok(see_other("/ui/keys")),
        Err(e) => refusal(e),
    }
}

// ---- SSH keys -------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "console/ssh_keys.html")]
struct SshKeysPage<'a> {
    user: Option<Viewer>,
    page: &'a str,
    csrf: String,
    keys: Vec<SshKeyInfo>,
    typed: String,
    problem: Problem,
}

async fn ssh_keys_view(
    state: &AppState,
    session: &SessionUser,
    typed: &str,
    status: StatusCode,
    problem: Problem,
) -> ApiResult<HttpResponse> {
    let keys = me::ssh_keys::own_keys(state, &caller_of(session))
        .await?
        .keys;
    html(
        status,
        &SshKeysPage {
            user: Some(viewer(session)),
            page: "ssh-keys",
            csrf: session.csrf_token.clone(),
            keys,
            typed: typed.to_owned(),
            problem,
        },
    )
}

pub(super) async fn ssh_keys_page(
    state: web::Data<AppState>,
    Signed(session): Signed,
) -> ApiResult<HttpResponse> {
    ssh_keys_view(&state, &session, "", StatusCode::OK, Problem::default()).await
}

pub(super) async fn add_ssh_key(
    state: web::Data<AppState>,
    ctx: RequestCtx,
    Checked { session, form }: Checked<ConfirmForm>,
) -> ApiResult<HttpResponse> {
    match me::ssh_keys::add_key(&state, &caller_of(&session), &ctx, &form.public_key).await {
        Ok(_) => Ok(see_other("/ui/ssh-keys")),
        Err(e) => {
            let (status, p) = problem(e, None)?;
            ssh_keys_view(&state, &session, &form.public_key, status, p).await
        }
    }
}

pub(super) async fn remove_ssh_key(
    state: web::Data<AppState>,
    ctx: RequestCtx,
    Checked { session, form }: Checked<ConfirmForm>,
) -> ApiResult<HttpResponse> {
    let caller = caller_of(&session);
    if form.confirm != "yes" {
        let keys = me::ssh_keys::own_keys(&state, &caller).await?.keys;
        let Some(key) = keys.into_iter().find(|k| k.fingerprint == form.fingerprint) else {
            return refusal(ApiError::NotFound("SSH key not found".into()));
        };
        return confirm(
            &session,
            "ssh-keys",
            "Remove this SSH key?",
            format!(
                "Key {} ({}) is no longer put into new dev boxes; boxes running now keep it.",
                key.fingerprint,
                key.comment.as_deref().unwrap_or("no comment")
            ),
            "/ui/ssh-keys/remove".into(),
            Some(("fingerprint".into(), key.fingerprint)),
            "Remove the key",
        );
    }
    match me::ssh_keys::remove_key(&state, &caller, &ctx, &form.fingerprint).await {
        Ok(()) => Ok(see_other("/ui/ssh-keys")),
        Err(e) => refusal(e),
    }
}
