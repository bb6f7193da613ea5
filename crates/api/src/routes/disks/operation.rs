//! `GET /v1/disks/{disk_name}/operations/{operation_id}`

use actix_web::{HttpResponse, get, web};
use gpudev_store::disks;
use uuid::Uuid;

use super::parse_name;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

pub use gpudev_api_types::disks::OperationStatus;

/// The status of a disk create or delete operation.
#[utoipa::path(get, path = "/v1/disks/{disk_name}/operations/{operation_id}", tag = "disks",
    security(("bearer" = [])),
    params(
        ("disk_name" = gpudev_domain::DiskName, Path, description = "the disk's name"),
        ("operation_id" = Uuid, Path, description = "from the create or delete answer"),
    ),
    responses((status = 200, body = OperationStatus), (status = 404, body = ErrorBody)))]
#[get("/disks/{disk_name}/operations/{operation_id}")]
pub async fn get_operation(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, Uuid)>,
) -> ApiResult<HttpResponse> {
    let (raw, op) = path.into_inner();
    let name = parse_name("disk_name", &raw)?;
    let db = state.db().await?;
    let disk = disks::find_operation(&*db, caller.user_id, name.as_str(), op)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "Operation {op} for disk '{}' not found",
                name.as_str()
            ))
        })?;
    let status = disk.operation_status.unwrap_or_else(|| "unknown".into());
    Ok(HttpResponse::Ok().json(OperationStatus {
        operation_id: op,
        disk_name: disk.disk_name.to_string(),
        completed: status == "completed" || status == "failed",
        status,
        error: disk.operation_error,
        is_deleted: disk.is_deleted,
        delete_date: disk.delete_after,
        created_at: disk.created_at,
        last_updated: disk.updated_at,
    }))
}
