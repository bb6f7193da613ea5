//! `GET /v1/disks`

use actix_web::{HttpResponse, get, web};
use gpudev_store::disks;

use super::DiskInfo;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::state::AppState;

pub use gpudev_api_types::disks::DiskList;

/// Lists the caller's disks (soft-deleted ones excluded).
#[utoipa::path(get, path = "/v1/disks", tag = "disks", security(("bearer" = [])),
    responses((status = 200, body = DiskList)))]
#[get("/disks")]
pub async fn list_disks(caller: Caller, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let db = state.db().await?;
    let disks: Vec<DiskInfo> = disks::list(&*db, caller.user_id, false)
        .await?
        .into_iter()
        .map(|d| super::disk_info(d, caller.username.as_str()))
        .collect();
    Ok(HttpResponse::Ok().json(DiskList {
        total: disks.len(),
        disks,
    }))
}
