//! `GET /v1/disks/{disk_name}/operations/{operation_id}`

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use gpudev_store::disks;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::parse_name;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// The state of a disk operation.
#[derive(Debug, Serialize, ToSchema)]
pub struct OperationStatus {
    /// The operation.
    pub operation_id: Uuid,
    /// The disk.
    pub disk_name: String,
    /// `pending`, `completed` or `failed`.
    pub status: String,
    /// Why it failed.
    pub error: Option<String>,
    /// The disk is soft-deleted.
    pub is_deleted: bool,
    /// When a deleted disk is removed for good.
    pub delete_date: Option<DateTime<Utc>>,
    /// When the disk was created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub last_updated: DateTime<Utc>,
    /// True once the operation completed or failed.
    pub completed: bool,
}

/// The status of a disk create or delete operation.
#[utoipa::path(get, path = "/v1/disks/{disk_name}/operations/{operation_id}", tag = "disks",
    security(("bearer" = [])),
    params(
        ("disk_name" = String, Path, description = "the disk's name"),
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
        disk_name: disk.disk_name,
        completed: status == "completed" || status == "failed",
        status,
        error: disk.operation_error,
        is_deleted: disk.is_deleted,
        delete_date: disk.delete_after,
        created_at: disk.created_at,
        last_updated: disk.updated_at,
    }))
}
