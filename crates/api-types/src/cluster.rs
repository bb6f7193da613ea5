//! `GET /v1/gpu/availability` and `GET /v1/cluster/status`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What `total`, `available`, `in_use` and `queued` of a type count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum CapacityUnit {
    /// GPUs (a type with GPUs).
    #[default]
    Gpus,
    /// Reservation slots of a CPU-only type: each reservation takes one slot, a fixed share of
    /// a node.
    CpuSlots,
}

/// Where a type's node figures (`total`, `available`, `full_nodes_available`,
/// `max_reservable`, `running_instances`) come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum FiguresSource {
    /// The availability CronJob's last run.
    AvailabilityJob,
    /// The scheduler's last pass (newer than the job's run, or the job has not run yet): the
    /// nodes it can schedule on.
    Scheduler,
}

/// Capacity of one GPU type (the original fields first). For a CPU-only type (`unit`
/// `cpu_slots`) the counts are reservation slots, not GPUs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GpuAvailability {
    /// The GPU type.
    pub gpu_type: String,
    /// GPUs (or CPU slots) on Ready nodes, from the last known figures (see `figures_source`).
    pub total: i64,
    /// GPUs (or CPU slots) free now.
    pub available: i64,
    /// GPUs (or CPU slots) held by preparing and active reservations.
    pub in_use: i64,
    /// GPUs (or CPU slots) asked for by queued reservations.
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
    /// When the node figures shown were taken (null when nothing is known yet).
    pub last_updated: Option<DateTime<Utc>>,
    /// What the counts count: `gpus`, or `cpu_slots` for a CPU-only type.
    #[serde(default)]
    pub unit: CapacityUnit,
    /// Where the node figures come from (null when nothing is known yet: then they are 0).
    #[serde(default)]
    pub figures_source: Option<FiguresSource>,
    /// How old the node figures are, in whole seconds (null when nothing is known yet).
    #[serde(default)]
    pub figures_age_seconds: Option<i64>,
    /// With `?at=`: what could be booked from that time (absent without `at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bookable: Option<BookableAt>,
}

/// What one user could book on a GPU type from a given time for a given length: what a booking
/// submitted now would be promised (bookings, promises and running work as they stand now).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BookableAt {
    /// The most GPUs (CPU slots for a CPU-only type) one single-node booking could have.
    pub max_on_one_node: i64,
    /// The most whole nodes one multi-node booking could take together (0 when fewer than two
    /// could, or the type does not span nodes).
    pub whole_nodes: i64,
}

/// `GET /v1/gpu/availability`'s query: without `at`, capacity now; with it, also what could be
/// booked from then.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
pub struct AvailabilityQuery {
    /// A future time, RFC 3339, at most `MAX_BOOKING_DAYS` ahead.
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>, format = DateTime))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// How long the booking would last, in hours (default 1; only with `at`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hours: Option<f64>,
}

/// Capacity per GPU type.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AvailabilityResponse {
    /// GPU type → its capacity.
    pub availability: BTreeMap<String, GpuAvailability>,
    /// When this was computed.
    pub timestamp: DateTime<Utc>,
    /// With `?at=`: the time the `bookable` figures are for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
}

/// The whole cluster at a glance.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClusterStatus {
    /// GPUs on Ready nodes, over the types with GPUs (CPU-only types are counted in
    /// `total_cpu_slots`).
    pub total_gpus: i64,
    /// GPUs free now.
    pub available_gpus: i64,
    /// GPUs held by preparing and active reservations.
    pub in_use_gpus: i64,
    /// GPUs asked for by queued reservations.
    pub queued_gpus: i64,
    /// Reservation slots of CPU-only types on Ready nodes.
    #[serde(default)]
    pub total_cpu_slots: i64,
    /// CPU slots free now.
    #[serde(default)]
    pub available_cpu_slots: i64,
    /// CPU slots held by preparing and active reservations.
    #[serde(default)]
    pub in_use_cpu_slots: i64,
    /// CPU slots asked for by queued reservations.
    #[serde(default)]
    pub queued_cpu_slots: i64,
    /// Age in whole seconds of the oldest node figures behind these totals (null when nothing
    /// is known yet).
    #[serde(default)]
    pub figures_age_seconds: Option<i64>,
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
