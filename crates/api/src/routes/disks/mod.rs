//! `/v1/disks`: persistent home disks, one file per endpoint.

use actix_web::web;
use chrono::{DateTime, Utc};
use gpudev_domain::DiskName;
use gpudev_store::disks::Disk;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ApiError;

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
        .service(get::get_disk)
        .service(delete::delete_disk)
        .service(rename::rename_disk)
        .service(operation::get_operation);
}

/// A disk as the API shows it (the original `DiskInfo` fields plus status and delete date).
#[derive(Debug, Serialize, ToSchema)]
pub struct DiskInfo {
    /// Name, unique per user among live disks.
    pub disk_name: String,
    /// Owner's username.
    pub user_id: String,
    /// Size in GB.
    pub size_gb: i32,
    /// `pending`, `ready`, `in_use`, `deleting`, `deleted` or `failed`.
    pub status: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last time a reservation used it.
    pub last_used: Option<DateTime<Utc>>,
    /// Attached to a reservation now.
    pub in_use: bool,
    /// The reservation using it.
    pub reservation_id: Option<Uuid>,
    /// A snapshot is being taken.
    pub is_backing_up: bool,
    /// Soft-deleted.
    pub is_deleted: bool,
    /// When a soft-deleted disk is removed for good.
    pub delete_date: Option<DateTime<Utc>>,
    /// Ready snapshots.
    pub snapshot_count: i64,
}

impl DiskInfo {
    pub(crate) fn from_disk(d: Disk, owner: &str) -> Self {
        DiskInfo {
            in_use: d.reservation_id.is_some(),
            disk_name: d.disk_name,
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
}

/// The answer to a disk create or delete: the operation to poll.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiskOperationResponse {
    /// Poll `/v1/disks/{disk_name}/operations/{operation_id}`.
    pub operation_id: Uuid,
    /// The disk.
    pub disk_name: String,
    /// `create` or `delete`.
    pub action: String,
    /// What happens next.
    pub message: String,
    /// When it was requested.
    pub requested_at: DateTime<Utc>,
}

/// Parses a disk name from a path or body, answering 422 naming `field`.
pub(crate) fn parse_name(field: &str, raw: &str) -> Result<DiskName, ApiError> {
    DiskName::parse(raw).map_err(|e| ApiError::invalid(field, e.to_string()))
}

/// 404 in the original's words.
pub(crate) fn not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!("Disk '{name}' not found"))
}
