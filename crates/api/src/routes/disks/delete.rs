//! `DELETE /v1/disks/{disk_name}`

use actix_web::{HttpResponse, delete, web};
use chrono::{Duration, Utc};
use gpudev_store::hints::{DiskHint, QueueMessage};
use gpudev_store::{StoreError, disks};
use uuid::Uuid;

use super::{DiskOperationResponse, not_found, parse_name};
use crate::audit::{self, Audit, RequestCtx};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::state::AppState;

/// Soft-deletes a disk: it disappears from listings at once and is removed for good after the
/// grace period. A disk in use cannot be deleted.
#[utoipa::path(delete, path = "/v1/disks/{disk_name}", tag = "disks", security(("bearer" = [])),
    params(("disk_name" = gpudev_domain::DiskName, Path, description = "the disk's name")),
    responses(
        (status = 200, body = DiskOperationResponse),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the disk is in use"),
    ))]
#[delete("/disks/{disk_name}")]
pub async fn delete_disk(
    caller: Caller,
    ctx: RequestCtx,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(delete(&state, &caller, &ctx, &path).await?))
}

/// Marks `caller`'s disk `raw_name` for deletion: what `DELETE /v1/disks/{name}` does, and the
/// console's form.
pub(crate) async fn delete(
    state: &AppState,
    caller: &Caller,
    ctx: &RequestCtx,
    raw_name: &str,
) -> ApiResult<DiskOperationResponse> {
    let name = parse_name("disk_name", raw_name)?;
    let op = Uuid::new_v4();
    let grace = Duration::days(i64::from(state.config.disk_delete_grace_days));
    let mut db = state.db().await?;
    let tx = db.transaction().await.map_err(StoreError::from)?;
    let disk = disks::soft_delete(&tx, caller.user_id, name.as_str(), grace, op)
        .await
        .map_err(|e| match e {
            StoreError::NotFound(_) => not_found(name.as_str()),
            StoreError::Conflict(detail) => ApiError::conflict(ErrorCode::DiskInUse, detail),
            other => other.into(),
        })?;
    let delete_date = disk.delete_after.unwrap_or_else(|| Utc::now() + grace);
    let hint = QueueMessage::DiskDelete(DiskHint {
        operation_id: op,
        disk_id: disk.disk_id,
        disk_name: disk.disk_name.to_string(),
        username: caller.username.to_string(),
        size_gb: None,
        delete_date: Some(delete_date),
        requested_at: Utc::now(),
    });
    state.config.queue.send(&tx, &hint).await?;
    audit::record(
        &tx,
        Some(caller),
        caller.username.as_str(),
        None,
        ctx,
        Audit {
            action: "disk.delete",
            target_type: Some("disk"),
            target_id: Some(disk.disk_name.to_string()),
            outcome: "success",
            details: Some(serde_json::json!({"operation_id": op, "delete_date": delete_date})),
        },
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(DiskOperationResponse {
        operation_id: op,
        disk_name: disk.disk_name.to_string(),
        action: "delete".into(),
        message: format!(
            "Disk marked for deletion. Will be deleted on {}",
            delete_date.format("%Y-%m-%d")
        ),
        requested_at: Utc::now(),
    })
}
