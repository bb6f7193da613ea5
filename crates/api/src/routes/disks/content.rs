//! `GET /v1/disks/{disk_name}/content`

use actix_web::{HttpResponse, get, web};
use gpudev_store::disks;

use super::{DiskContent, own_disk};
use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::state::AppState;

/// What one of the caller's disks held when it was last snapshotted: the expiry job lists the
/// home directory (three levels deep, at most 5,000 entries) in the dev box just before it ends
/// the box and snapshots the disk. No mount is needed to read it. `content` is null, with a
/// `message` saying why, for a disk never snapshotted with a listing (new, or used only by
/// boxes that were cancelled rather than expired).
#[utoipa::path(get, path = "/v1/disks/{disk_name}/content", tag = "disks", security(("bearer" = [])),
    params(("disk_name" = gpudev_domain::DiskName, Path, description = "the disk's name")),
    responses(
        (status = 200, body = DiskContent),
        (status = 404, body = ErrorBody),
    ))]
#[get("/disks/{disk_name}/content")]
pub async fn disk_content(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let db = state.db().await?;
    let disk = own_disk(&*db, &caller, &path).await?;
    let name = &disk.disk_name;
    let answer = match disks::latest_listing(&*db, disk.disk_id).await? {
        Some(l) => DiskContent {
            disk_name: name.to_string(),
            message: format!(
                "Files of disk '{name}' as they were when its snapshot of {} UTC was taken ({} \
                 entries, three levels deep); the snapshot is {}",
                l.snapshot_taken_at.format("%Y-%m-%d %H:%M"),
                l.listing.lines().count(),
                l.snapshot_status
            ),
            content: Some(l.listing),
            snapshot_date: Some(l.snapshot_taken_at),
            s3_path: None,
        },
        None => DiskContent {
            disk_name: name.to_string(),
            content: None,
            snapshot_date: None,
            s3_path: None,
            message: format!(
                "Disk '{name}' has no listing yet: one is taken when a dev box using it \
                 expires, just before the disk is snapshotted"
            ),
        },
    };
    Ok(HttpResponse::Ok().json(answer))
}
