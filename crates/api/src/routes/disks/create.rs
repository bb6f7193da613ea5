//! `POST /v1/disks`

use actix_web::{HttpResponse, post, web};
use chrono::Utc;
use gpudev_store::hints::{DiskHint, QueueMessage};
use gpudev_store::{StoreError, disks};
use uuid::Uuid;

use super::{DiskOperationResponse, parse_name};
use crate::audit::{self, Audit, RequestCtx};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::state::AppState;

pub use gpudev_api_types::disks::CreateDisk;

/// Creates a persistent disk. The record is written at once; the processor creates the volume and
/// completes the returned operation.
#[utoipa::path(post, path = "/v1/disks", tag = "disks", request_body = CreateDisk,
    security(("bearer" = [])),
    responses(
        (status = 200, body = DiskOperationResponse),
        (status = 409, body = ErrorBody, description = "a disk with this name exists"),
        (status = 422, body = ErrorBody, description = "bad name or size"),
    ))]
#[post("/disks")]
pub async fn create_disk(
    caller: Caller,
    ctx: RequestCtx,
    state: web::Data<AppState>,
    body: web::Json<CreateDisk>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(create(&state, &caller, &ctx, &body).await?))
}

/// Creates a disk for `caller`: what `POST /v1/disks` does, and the console's form.
pub(crate) async fn create(
    state: &AppState,
    caller: &Caller,
    ctx: &RequestCtx,
    body: &CreateDisk,
) -> ApiResult<DiskOperationResponse> {
    let name = parse_name("disk_name", &body.disk_name)?;
    let size = body
        .size_gb
        .unwrap_or(i64::from(state.config.default_disk_size_gb));
    if !(10..=10_000).contains(&size) {
        return Err(ApiError::invalid(
            "size_gb",
            "size_gb must be between 10 and 10000",
        ));
    }
    let op = Uuid::new_v4();
    let mut db = state.db().await?;
    let tx = db.transaction().await.map_err(StoreError::from)?;
    // A rename onto this name in flight is waited for, so the insert finds the name taken
    // instead of failing on the unique index.
    disks::lock_names(&tx, caller.user_id).await?;
    let disk_id = Uuid::new_v4();
    let new = disks::NewDisk {
        disk_id,
        user_id: caller.user_id,
        disk_name: &name,
        kube_name: &name.kube_name(&caller.username, disk_id),
        size_gb: size as i32,
        operation_id: Some(op),
    };
    let disk = disks::create(&tx, &new).await.map_err(|e| match e {
        StoreError::Conflict(_) => ApiError::conflict(
            ErrorCode::DiskExists,
            format!("Disk '{}' already exists", name.as_str()),
        ),
        other => other.into(),
    })?;
    let hint = QueueMessage::DiskCreate(DiskHint {
        operation_id: op,
        disk_id: disk.disk_id,
        disk_name: disk.disk_name.to_string(),
        username: caller.username.to_string(),
        size_gb: Some(size),
        delete_date: None,
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
            action: "disk.create",
            target_type: Some("disk"),
            target_id: Some(disk.disk_name.to_string()),
            outcome: "success",
            details: Some(serde_json::json!({"size_gb": size, "operation_id": op})),
        },
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(DiskOperationResponse {
        operation_id: op,
        disk_name: disk.disk_name.to_string(),
        action: "create".into(),
        message: format!("Disk creation requested ({size} GB); poll the operation for its status"),
        requested_at: Utc::now(),
    })
}
