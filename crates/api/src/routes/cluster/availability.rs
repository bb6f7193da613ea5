//! `GET /v1/gpu/availability`

use actix_web::{HttpResponse, get, web};
use chrono::Utc;
use gpudev_store::{gpu_types, reservations};

use super::{Inputs, summarise};
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::state::AppState;

pub use gpudev_api_types::cluster::AvailabilityResponse;

/// GPUs per type (reservation slots for CPU-only types): total, available, in use, queued, and
/// a rough wait for a new reservation, from the last known node figures with their age.
#[utoipa::path(get, path = "/v1/gpu/availability", tag = "cluster", security(("bearer" = [])),
    responses((status = 200, body = AvailabilityResponse)))]
#[get("/gpu/availability")]
pub async fn gpu_availability(
    _caller: Caller,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(availability(&state).await?))
}

/// The capacity answer, for the route and the console alike.
pub(crate) async fn availability(state: &AppState) -> ApiResult<AvailabilityResponse> {
    let db = state.db().await?;
    let rows = gpu_types::list_active(&*db).await?;
    let live = reservations::live(&*db).await?;
    drop(db);
    let now = Utc::now();
    let published = state.queue.current(&state.pool).await?;
    let waits = crate::queue_state::estimated_waits(state, now).await?;
    let (availability, _) = summarise(Inputs {
        catalog: &state.config.catalog,
        rows: &rows,
        published: published.as_deref(),
        live: &live,
        waits: &waits,
        max_nodes: state.config.limits.max_nodes,
        now,
    });
    Ok(AvailabilityResponse {
        availability,
        timestamp: now,
    })
}
