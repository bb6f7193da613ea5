//! `GET /v1/gpu/availability` and `GET /v1/cluster/status`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Capacity of one GPU type (the original fields first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GpuAvailability {
    /// The GPU type.
    pub gpu_type: String,
    /// GPUs on Ready nodes (as last reported by the availability job).
    pub total: i64,
    /// GPUs free now.
    pub available: i64,
    /// GPUs held by preparing and active reservations.
    pub in_use: i64,
    /// GPUs asked for by queued reservations.
    pub queued: i64,
    /// GPUs on one node (the most one single-node reservation can have).
    pub max_per_node: i64,
    /// Nodes with every GPU free.
    pub full_nodes_available: i64,
    /// The largest request that could start now.
    pub max_reservable: i64,
    /// Ready nodes.
    pub running_instances: i64,
    /// Whether a reservation may span several whole nodes.
    pub multinode: bool,
    /// Queued reservations of this type.
    pub queued_reservations: i64,
    /// Rough minutes until a new 1-GPU reservation of this type could start (null when it cannot
    /// be told, e.g. no nodes reported).
    pub estimated_wait_minutes: Option<i64>,
    /// When the availability job last reported this type.
    pub last_updated: Option<DateTime<Utc>>,
}

/// Capacity per GPU type.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AvailabilityResponse {
    /// GPU type → its capacity.
    pub availability: BTreeMap<String, GpuAvailability>,
    /// When this was computed.
    pub timestamp: DateTime<Utc>,
}

/// The whole cluster at a glance.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClusterStatus {
    /// GPUs on Ready nodes.
    pub total_gpus: i64,
    /// GPUs free now.
    pub available_gpus: i64,
    /// GPUs held by preparing and active reservations.
    pub in_use_gpus: i64,
    /// GPUs asked for by queued reservations.
    pub queued_gpus: i64,
    /// Active reservations.
    pub active_reservations: i64,
    /// Preparing reservations.
    pub preparing_reservations: i64,
    /// Queued reservations.
    pub queued_reservations: i64,
    /// Always 0: the original's `pending` state is `queued` here (kept for old clients).
    pub pending_reservations: i64,
    /// Per GPU type, sorted by name (the objects of `GET /v1/gpu/availability`).
    pub by_gpu_type: BTreeMap<String, GpuAvailability>,
    /// When this was computed.
    pub timestamp: DateTime<Utc>,
}
