//! `GET /v1/gpu/availability` and `GET /v1/cluster/status`.

use gpudev_api_types::cluster::{AvailabilityResponse, ClusterStatus};

use crate::client::Client;
use crate::error::ClientError;

impl Client {
    /// GPUs per type: total, free, in use, queued and a rough wait.
    pub async fn availability(&self) -> Result<AvailabilityResponse, ClientError> {
        self.get(&["v1", "gpu", "availability"]).await
    }

    /// Totals over every GPU type and reservation counts.
    pub async fn cluster_status(&self) -> Result<ClusterStatus, ClientError> {
        self.get(&["v1", "cluster", "status"]).await
    }
}
