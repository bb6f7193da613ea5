//! `/v1/disks`: persistent home disks.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::client::Client;
use crate::error::ClientError;

/// A disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiskInfo {
    /// Name.
    pub disk_name: String,
    /// Owner's username.
    pub user_id: String,
    /// Size in GB.
    pub size_gb: i32,
    /// `pending`, `ready`, `in_use`, `deleting`, `deleted` or `failed`.
    #[serde(default)]
    pub status: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last time a reservation used it.
    #[serde(default)]
    pub last_used: Option<DateTime<Utc>>,
    /// Attached to a reservation now.
    pub in_use: bool,
    /// The reservation using it.
    #[serde(default)]
    pub reservation_id: Option<Uuid>,
    /// A snapshot is being taken.
    #[serde(default)]
    pub is_backing_up: bool,
    /// Soft-deleted.
    #[serde(default)]
    pub is_deleted: bool,
    /// When a deleted disk is removed for good.
    #[serde(default)]
    pub delete_date: Option<DateTime<Utc>>,
    /// Ready snapshots.
    #[serde(default)]
    pub snapshot_count: i64,
}

/// The caller's disks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiskList {
    /// By name.
    pub disks: Vec<DiskInfo>,
    /// How many.
    pub total: usize,
}

/// A disk create or delete, to poll.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiskOperation {
    /// The operation.
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

/// The state of a disk operation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OperationStatus {
    /// The operation.
    pub operation_id: Uuid,
    /// The disk.
    pub disk_name: String,
    /// `pending`, `completed` or `failed`.
    pub status: String,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// The disk is soft-deleted.
    #[serde(default)]
    pub is_deleted: bool,
    /// When a deleted disk is removed for good.
    #[serde(default)]
    pub delete_date: Option<DateTime<Utc>>,
    /// True once completed or failed.
    pub completed: bool,
}

/// The result of a rename.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RenameResult {
    /// What happened.
    pub message: String,
    /// Previous name.
    pub old_name: String,
    /// New name.
    pub new_name: String,
}

impl Client {
    /// The caller's live disks.
    pub async fn list_disks(&self) -> Result<DiskList, ClientError> {
        self.get(&["v1", "disks"]).await
    }

    /// One disk.
    pub async fn get_disk(&self, name: &str) -> Result<DiskInfo, ClientError> {
        self.get(&["v1", "disks", name]).await
    }

    /// Creates a disk (`size_gb` absent: the server's default size).
    pub async fn create_disk(
        &self,
        name: &str,
        size_gb: Option<i64>,
    ) -> Result<DiskOperation, ClientError> {
        let mut body = serde_json::json!({ "disk_name": name });
        if let Some(size) = size_gb {
            body["size_gb"] = size.into();
        }
        self.post(&["v1", "disks"], &body).await
    }

    /// Soft-deletes a disk.
    pub async fn delete_disk(&self, name: &str) -> Result<DiskOperation, ClientError> {
        self.delete(&["v1", "disks", name]).await
    }

    /// Renames a disk that is not in use.
    pub async fn rename_disk(
        &self,
        name: &str,
        new_name: &str,
    ) -> Result<RenameResult, ClientError> {
        self.post(
            &["v1", "disks", name, "rename"],
            &serde_json::json!({ "new_name": new_name }),
        )
        .await
    }

    /// The state of a disk operation.
    pub async fn disk_operation(
        &self,
        name: &str,
        operation_id: Uuid,
    ) -> Result<OperationStatus, ClientError> {
        self.get(&["v1", "disks", name, "operations", &operation_id.to_string()])
            .await
    }
}
