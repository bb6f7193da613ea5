//! `GET /v1/disks/{disk_name}`

use actix_web::{HttpResponse, get, web};

use super::{DiskInfo, own_disk};
use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::state::AppState;

/// One of the caller's disks.
#[utoipa::path(get, path = "/v1/disks/{disk_name}", tag = "disks", security(("bearer" = [])),
    params(("disk_name" = gpudev_domain::DiskName, Path, description = "the disk's name")),
    responses(
        (status = 200, body = DiskInfo),
        (status = 404, body = ErrorBody),
    ))]
#[get("/disks/{disk_name}")]
pub async fn get_disk(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let db = state.db().await?;
    let d = own_disk(&*db, &caller, &path).await?;
    Ok(HttpResponse::Ok().json(super::disk_info(d, caller.username.as_str())))
}
