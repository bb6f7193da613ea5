//! `POST /v1/disks/{disk_name}/rename`

use actix_web::{HttpResponse, post, web};
use gpudev_store::StoreError;
use gpudev_store::disks::{self, Renamed};

use super::{not_found, parse_name};
use crate::audit::{self, Audit, RequestCtx};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::state::AppState;

pub use gpudev_api_types::disks::{RenameDisk, RenameResult};

/// Renames a disk that is not in use. Its volume keeps its Kubernetes name, so nothing moves.
#[utoipa::path(post, path = "/v1/disks/{disk_name}/rename", tag = "disks", security(("bearer" = [])),
    params(("disk_name" = gpudev_domain::DiskName, Path, description = "the disk's name")),
    request_body = RenameDisk,
    responses(
        (status = 200, body = RenameResult),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "in use, or the new name is taken"),
        (status = 422, body = ErrorBody),
    ))]
#[post("/disks/{disk_name}/rename")]
pub async fn rename_disk(
    caller: Caller,
    ctx: RequestCtx,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<RenameDisk>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(rename(&state, &caller, &ctx, &path, &body.new_name).await?))
}

/// Renames `caller`'s disk `raw_old` to `raw_new`: what `POST /v1/disks/{name}/rename` does,
/// and the console's form.
pub(crate) async fn rename(
    state: &AppState,
    caller: &Caller,
    ctx: &RequestCtx,
    raw_old: &str,
    raw_new: &str,
) -> ApiResult<RenameResult> {
    let old = parse_name("disk_name", raw_old)?;
    let new = parse_name("new_name", raw_new)?;
    let mut db = state.db().await?;
    let tx = db.transaction().await.map_err(StoreError::from)?;
    let disk = match disks::rename(&tx, caller.user_id, old.as_str(), new.as_str()).await? {
        Renamed::Done(disk) => disk,
        Renamed::NotFound => return Err(not_found(old.as_str())),
        Renamed::InUse(reservation) => {
            return Err(ApiError::conflict(
                ErrorCode::DiskInUse,
                format!(
                    "Disk '{}' is in use by reservation {reservation}",
                    old.as_str()
                ),
            ));
        }
        Renamed::NameTaken => {
            return Err(ApiError::conflict(
                ErrorCode::DiskExists,
                format!("Disk '{}' already exists", new.as_str()),
            ));
        }
    };
    audit::record(
        &tx,
        Some(caller),
        caller.username.as_str(),
        None,
        ctx,
        Audit {
            action: "disk.rename",
            target_type: Some("disk"),
            target_id: Some(disk.disk_name.to_string()),
            outcome: "success",
            details: Some(serde_json::json!({"old_name": old.as_str()})),
        },
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(RenameResult {
        message: format!("Disk '{}' renamed to '{}'", old.as_str(), disk.disk_name),
        old_name: old.as_str().to_owned(),
        new_name: disk.disk_name.to_string(),
    })
}
