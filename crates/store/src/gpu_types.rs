//! GPU types: the catalog rows and the availability the availability CronJob writes.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Row;

use crate::{Db, StoreError};

/// A GPU type with its last known availability.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuTypeRow {
    /// Name (`h100`).
    pub gpu_type: String,
    /// Node instance type.
    pub instance_type: String,
    /// GPUs on one node.
    pub gpus_per_node: i32,
    /// vCPUs on one node.
    pub cpus_per_node: i32,
    /// Memory on one node.
    pub memory_gib_per_node: i32,
    /// Whether multi-node reservations are offered.
    pub multinode: bool,
    /// Offered at all.
    pub is_active: bool,
    /// GPUs on Ready nodes.
    pub total_gpus: i32,
    /// GPUs free for scheduling.
    pub available_gpus: i32,
    /// GPUs held by reservations.
    pub in_use_gpus: i32,
    /// GPUs asked for by queued reservations.
    pub queued_gpus: i32,
    /// Nodes with every GPU free.
    pub full_nodes_available: i32,
    /// The largest request that could start now.
    pub max_reservable: i32,
    /// Ready nodes.
    pub running_nodes: i32,
    /// When availability was last written.
    pub last_availability_update: Option<DateTime<Utc>>,
    /// Who wrote it.
    pub last_availability_updated_by: Option<String>,
}

/// Availability figures for one GPU type, as computed by the availability job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Availability {
    /// GPUs on Ready nodes.
    pub total_gpus: i32,
    /// GPUs free for scheduling.
    pub available_gpus: i32,
    /// GPUs held by pods.
    pub in_use_gpus: i32,
    /// GPUs asked for by queued reservations.
    pub queued_gpus: i32,
    /// Nodes with every GPU free.
    pub full_nodes_available: i32,
    /// The largest request that could start now.
    pub max_reservable: i32,
    /// Ready nodes.
    pub running_nodes: i32,
}

/// The columns [`from_row`] reads, named (not `*`) so a cached prepared statement keeps its result
/// type when a later migration adds a column.
const COLUMNS: &str = "gpu_type, instance_type, gpus_per_node, cpus_per_node, memory_gib_per_node, \
    multinode, is_active, total_gpus, available_gpus, in_use_gpus, queued_gpus, full_nodes_available, \
    max_reservable, running_nodes, last_availability_update, last_availability_updated_by";

fn from_row(r: &Row) -> GpuTypeRow {
    GpuTypeRow {
        gpu_type: r.get("gpu_type"),
        instance_type: r.get("instance_type"),
        gpus_per_node: r.get("gpus_per_node"),
        cpus_per_node: r.get("cpus_per_node"),
        memory_gib_per_node: r.get("memory_gib_per_node"),
        multinode: r.get("multinode"),
        is_active: r.get("is_active"),
        total_gpus: r.get("total_gpus"),
        available_gpus: r.get("available_gpus"),
        in_use_gpus: r.get("in_use_gpus"),
        queued_gpus: r.get("queued_gpus"),
        full_nodes_available: r.get("full_nodes_available"),
        max_reservable: r.get("max_reservable"),
        running_nodes: r.get("running_nodes"),
        last_availability_update: r.get("last_availability_update"),
        last_availability_updated_by: r.get("last_availability_updated_by"),
    }
}

/// Active GPU types, by name.
pub async fn list_active(db: &impl Db) -> Result<Vec<GpuTypeRow>, StoreError> {
    let rows = db
        .query(
            &format!("SELECT {COLUMNS} FROM gpu_types WHERE is_active ORDER BY gpu_type"),
            &[],
        )
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

/// Writes one type's availability. Call it for every type inside one transaction so readers see
/// a consistent picture; returns false when the type is unknown.
pub async fn write_availability(
    db: &impl Db,
    gpu_type: &str,
    a: &Availability,
    writer: &str,
) -> Result<bool, StoreError> {
    let n = db
        .execute(
            "UPDATE gpu_types SET total_gpus = $2, available_gpus = $3, in_use_gpus = $4, \
               queued_gpus = $5, full_nodes_available = $6, max_reservable = $7, running_nodes = $8, \
               last_availability_update = now(), last_availability_updated_by = $9 \
             WHERE gpu_type = $1",
            &[
                &gpu_type,
                &a.total_gpus,
                &a.available_gpus,
                &a.in_use_gpus,
                &a.queued_gpus,
                &a.full_nodes_available,
                &a.max_reservable,
                &a.running_nodes,
                &writer,
            ],
        )
        .await?;
    Ok(n == 1)
}
