//! `GET /v1/cluster/status`

use actix_web::{HttpResponse, get, web};
use chrono::Utc;
use gpudev_store::{gpu_types, reservations};

use super::{GpuAvailability, summarise};
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::state::AppState;

pub use gpudev_api_types::cluster::ClusterStatus;

/// Totals over every GPU type and reservation counts by status.
#[utoipa::path(get, path = "/v1/cluster/status", tag = "cluster", security(("bearer" = [])),
    responses((status = 200, body = ClusterStatus)))]
#[get("/cluster/status")]
pub async fn cluster_status(
    _caller: Caller,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let db = state.db().await?;
    let rows = gpu_types::list_active(&*db).await?;
    let live = reservations::live(&*db).await?;
    let now = Utc::now();
    let waits = crate::queue_state::estimated_waits(&state, now).await?;
    let (by_gpu_type, counts) = summarise(&state.config.catalog, &rows, &live, &waits);
    let sum = |f: fn(&GpuAvailability) -> i64| by_gpu_type.values().map(f).sum::<i64>();
    Ok(HttpResponse::Ok().json(ClusterStatus {
        total_gpus: sum(|a| a.total),
        available_gpus: sum(|a| a.available),
        in_use_gpus: sum(|a| a.in_use),
        queued_gpus: sum(|a| a.queued),
        active_reservations: counts.active,
        preparing_reservations: counts.preparing,
        queued_reservations: counts.queued,
        pending_reservations: 0,
        by_gpu_type,
        timestamp: now,
    }))
}
