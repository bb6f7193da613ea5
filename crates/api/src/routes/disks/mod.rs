//! `/v1/disks`: persistent home disks, one file per endpoint.

use actix_web::web;
use gpudev_domain::DiskName;
use gpudev_store::disks::Disk;

use crate::error::ApiError;

pub use gpudev_api_types::disks::{DiskContent, DiskInfo, DiskOperationResponse};

pub mod content;
pub mod create;
pub mod delete;
pub mod get;
pub mod list;
pub mod operation;
pub mod rename;

/// Registers the disk routes (inside the authenticated scope).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(create::create_disk)
        .service(list::list_disks)
        .service(content::disk_content)
        .service(get::get_disk)
        .service(delete::delete_disk)
        .service(rename::rename_disk)
        .service(operation::get_operation);
}

/// A stored disk as its owner `owner` sees it.
pub(crate) fn disk_info(d: Disk, owner: &str) -> DiskInfo {
    DiskInfo {
        in_use: d.reservation_id.is_some(),
        disk_name: d.disk_name.to_string(),
        user_id: owner.to_owned(),
        size_gb: d.size_gb,
        is_backing_up: false,
        status: d.status,
        created_at: d.created_at,
        last_used: d.last_used_at,
        reservation_id: d.reservation_id,
        is_deleted: d.is_deleted,
        delete_date: d.delete_after,
        snapshot_count: d.snapshot_count,
    }
}

/// Parses a disk name from a path or body, answering 422 naming `field`.
pub(crate) fn parse_name(field: &str, raw: &str) -> Result<DiskName, ApiError> {
    DiskName::parse(raw).map_err(|e| ApiError::invalid(field, e.to_string()))
}

/// One of `caller`'s live disks by the name in a path; 422 for a bad name, 404 for none.
pub(crate) async fn own_disk(
    db: &impl gpudev_store::Db,
    caller: &crate::auth::Caller,
    raw_name: &str,
) -> Result<Disk, ApiError> {
    let name = parse_name("disk_name", raw_name)?;
    match gpudev_store::disks::get(db, caller.user_id, name.as_str()).await {
        Ok(d) => Ok(d),
        Err(gpudev_store::StoreError::NotFound(_)) => Err(not_found(name.as_str())),
        Err(e) => Err(e.into()),
    }
}

/// 404 in the original's words.
pub(crate) fn not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!("Disk '{name}' not found"))
}
