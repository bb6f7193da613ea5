//! `GET /v1/gpu/availability` and `GET /v1/cluster/status`.

use gpudev_api_types::cluster::{AvailabilityQuery, AvailabilityResponse, ClusterStatus};

use crate::client::Client;
use crate::error::ClientError;

impl Client {
    /// GPUs per type: total, free, in use, queued and a rough wait.
    pub async fn availability(&self) -> Result<AvailabilityResponse, ClientError> {
        self.get(&["v1", "gpu", "availability"]).await
    }

    /// [`Self::availability`], and what the caller could book of each type from `at` for
    /// `hours` (the server's default, 1, when `None`).
    pub async fn availability_at(
        &self,
        at: chrono::DateTime<chrono::Utc>,
        hours: Option<f64>,
    ) -> Result<AvailabilityResponse, ClientError> {
        let query = AvailabilityQuery {
            at: Some(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            hours,
        };
        self.get_query(&["v1", "gpu", "availability"], &query).await
    }

    /// Totals over every GPU type and reservation counts.
    pub async fn cluster_status(&self) -> Result<ClusterStatus, ClientError> {
        self.get(&["v1", "cluster", "status"]).await
    }
}
