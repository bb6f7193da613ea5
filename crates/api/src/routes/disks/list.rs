//! `GET /v1/disks`

use actix_web::{HttpResponse, get, web};
use gpudev_store::disks;
use serde::Serialize;
use utoipa::ToSchema;

use super::DiskInfo;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::state::AppState;

/// The caller's live disks.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiskList {
    /// Disks by name.
    pub disks: Vec<DiskInfo>,
    /// How many.
    pub total: usize,
}

/// Lists the caller's disks (soft-deleted ones excluded).
#[utoipa::path(get, path = "/v1/disks", tag = "disks", security(("bearer" = [])),
    responses((status = 200, body = DiskList)))]
#[get("/disks")]
pub async fn list_disks(caller: Caller, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let db = state.db().await?;
    let disks: Vec<DiskInfo> = disks::list(&*db, caller.user_id, false)
        .await?
        .into_iter()
        .map(|d| DiskInfo::from_disk(d, &caller.username))
        .collect();
    Ok(HttpResponse::Ok().json(DiskList {
        total: disks.len(),
        disks,
    }))
}
