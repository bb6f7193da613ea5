//! `GET /v1/gpu/availability` and `GET /v1/cluster/status`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::client::Client;
use crate::error::ClientError;

/// Capacity of one GPU type.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GpuAvailability {
    /// The GPU type.
    pub gpu_type: String,
    /// GPUs on Ready nodes.
    pub total: i64,
    /// GPUs free now.
    pub available: i64,
    /// GPUs held by preparing and active reservations.
    pub in_use: i64,
    /// GPUs asked for by queued reservations.
    pub queued: i64,
    /// GPUs on one node.
    pub max_per_node: i64,
    /// Nodes with every GPU free.
    #[serde(default)]
    pub full_nodes_available: i64,
    /// The largest request that could start now.
    #[serde(default)]
    pub max_reservable: i64,
    /// Ready nodes.
    #[serde(default)]
    pub running_instances: i64,
    /// Whether a reservation may span several nodes.
    #[serde(default)]
    pub multinode: bool,
    /// Queued reservations of this type.
    #[serde(default)]
    pub queued_reservations: i64,
    /// Rough minutes until a new 1-GPU reservation could start.
    #[serde(default)]
    pub estimated_wait_minutes: Option<i64>,
    /// When the availability job last reported this type.
    #[serde(default)]
    pub last_updated: Option<DateTime<Utc>>,
}

/// Capacity per GPU type.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AvailabilityResponse {
    /// GPU type → capacity.
    pub availability: BTreeMap<String, GpuAvailability>,
    /// When this was computed.
    pub timestamp: DateTime<Utc>,
}

/// The whole cluster at a glance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// GPUs on Ready nodes.
    pub total_gpus: i64,
    /// GPUs free now.
    pub available_gpus: i64,
    /// GPUs held.
    pub in_use_gpus: i64,
    /// GPUs asked for by queued reservations.
    pub queued_gpus: i64,
    /// Active reservations.
    pub active_reservations: i64,
    /// Preparing reservations.
    pub preparing_reservations: i64,
    /// Queued reservations.
    pub queued_reservations: i64,
    /// Per GPU type.
    pub by_gpu_type: BTreeMap<String, GpuAvailability>,
    /// When this was computed.
    pub timestamp: DateTime<Utc>,
}

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
