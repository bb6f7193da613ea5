//! `/v1/disks`: persistent home disks and their operations.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A disk to create.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateDisk {
    /// 1–63 characters of letters, digits, `_` and `-`.
    #[cfg_attr(feature = "openapi", schema(value_type = gpudev_domain::DiskName))]
    pub disk_name: String,
    /// Size in GB (10–10000); the server default when absent.
    #[cfg_attr(feature = "openapi", schema(minimum = 10, maximum = 10000))]
    #[serde(default, deserialize_with = "gpudev_domain::json_int::option")]
    pub size_gb: Option<i64>,
}

/// The new name.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RenameDisk {
    /// 1–63 characters of letters, digits, `_` and `-`.
    #[cfg_attr(feature = "openapi", schema(value_type = gpudev_domain::DiskName))]
    pub new_name: String,
}

/// The result of a rename.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RenameResult {
    /// The rename, in a sentence.
    pub message: String,
    /// Previous name.
    pub old_name: String,
    /// New name.
    pub new_name: String,
}

/// The state of a disk operation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OperationStatus {
    /// The operation asked about.
    pub operation_id: Uuid,
    /// The disk it works on (its current name).
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

/// The caller's live disks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiskList {
    /// Disks by name.
    pub disks: Vec<DiskInfo>,
    /// How many.
    pub total: usize,
}

/// A disk as the API shows it (the original `DiskInfo` fields plus status and delete date).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// What a disk held when it was last snapshotted (the original `/content` answer).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiskContent {
    /// The disk.
    pub disk_name: String,
    /// Its files, one path per line relative to the home directory, three levels deep, sorted;
    /// null when no snapshot has a listing.
    pub content: Option<String>,
    /// When that snapshot was taken.
    pub snapshot_date: Option<DateTime<Utc>>,
    /// Always null: listings are kept in the database, not in S3 (the field the original client
    /// reads).
    pub s3_path: Option<String>,
    /// What the listing is, or why there is none.
    pub message: String,
}

/// The answer to a disk create or delete: the operation to poll.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiskOperationResponse {
    /// Poll `/v1/disks/{disk_name}/operations/{operation_id}`.
    pub operation_id: Uuid,
    /// The disk it works on.
    pub disk_name: String,
    /// `create` or `delete`.
    pub action: String,
    /// What happens next.
    pub message: String,
    /// When it was requested.
    pub requested_at: DateTime<Utc>,
}
