//! `/v1/disks`: persistent home disks.

use gpudev_api_types::disks::{
    CreateDisk, DiskContent, DiskInfo, DiskList, DiskOperationResponse, OperationStatus,
    RenameDisk, RenameResult,
};
use uuid::Uuid;

use crate::client::Client;
use crate::error::ClientError;

impl Client {
    /// The caller's live disks.
    pub async fn list_disks(&self) -> Result<DiskList, ClientError> {
        self.get(&["v1", "disks"]).await
    }

    /// One disk.
    pub async fn get_disk(&self, name: &str) -> Result<DiskInfo, ClientError> {
        self.get(&["v1", "disks", name]).await
    }

    /// What a disk held when it was last snapshotted.
    pub async fn disk_content(&self, name: &str) -> Result<DiskContent, ClientError> {
        self.get(&["v1", "disks", name, "content"]).await
    }

    /// Creates a disk (`size_gb` absent: the server's default size).
    pub async fn create_disk(
        &self,
        name: &str,
        size_gb: Option<i64>,
    ) -> Result<DiskOperationResponse, ClientError> {
        let body = CreateDisk {
            disk_name: name.to_owned(),
            size_gb,
        };
        self.post(&["v1", "disks"], &body).await
    }

    /// Soft-deletes a disk.
    pub async fn delete_disk(&self, name: &str) -> Result<DiskOperationResponse, ClientError> {
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
            &RenameDisk {
                new_name: new_name.to_owned(),
            },
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
