//! `GET /v1/cluster/status`

use actix_web::{HttpResponse, get, web};
use chrono::Utc;
use gpudev_store::gpu_types;

use super::{Inputs, summarise, totals};
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::state::AppState;

pub use gpudev_api_types::cluster::ClusterStatus;

/// Totals (GPUs over the types with GPUs, CPU slots over the CPU-only ones) and reservation
/// counts by status.
#[utoipa::path(get, path = "/v1/cluster/status", tag = "cluster", security(("bearer" = [])),
    responses((status = 200, body = ClusterStatus)))]
#[get("/cluster/status")]
pub async fn cluster_status(
    _caller: Caller,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let db = state.db().await?;
    let rows = gpu_types::list_active(&*db).await?;
    drop(db);
    let live = state.live_counts.get(&state).await?;
    let now = Utc::now();
    let published = state.queue.current(&state.pool).await?;
    let waits = crate::queue_state::estimated_waits(&state, now).await?;
    let (by_gpu_type, counts) = summarise(Inputs {
        catalog: &state.config.catalog,
        rows: &rows,
        published: published.as_deref(),
        live: &live,
        waits: &waits,
        max_nodes: state.config.limits.max_nodes,
        now,
    });
    let t = totals(&by_gpu_type);
    Ok(HttpResponse::Ok().json(ClusterStatus {
        total_gpus: t.gpus.0,
        available_gpus: t.gpus.1,
        in_use_gpus: t.gpus.2,
        queued_gpus: t.gpus.3,
        total_cpu_slots: t.cpu_slots.0,
        available_cpu_slots: t.cpu_slots.1,
        in_use_cpu_slots: t.cpu_slots.2,
        queued_cpu_slots: t.cpu_slots.3,
        figures_age_seconds: t.oldest_age_seconds,
        active_reservations: counts.active,
        preparing_reservations: counts.preparing,
        queued_reservations: counts.queued,
        pending_reservations: 0,
        by_gpu_type,
        timestamp: now,
    }))
}
