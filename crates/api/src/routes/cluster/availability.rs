//! `GET /v1/gpu/availability`

use actix_web::{HttpResponse, get, web};
use chrono::Utc;
use gpudev_store::{gpu_types, reservations};

use super::summarise;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::state::AppState;

pub use gpudev_api_types::cluster::AvailabilityResponse;

/// GPUs per type: total, available, in use, queued, and a rough wait for a new reservation.
#[utoipa::path(get, path = "/v1/gpu/availability", tag = "cluster", security(("bearer" = [])),
    responses((status = 200, body = AvailabilityResponse)))]
#[get("/gpu/availability")]
pub async fn gpu_availability(
    _caller: Caller,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let db = state.db().await?;
    let rows = gpu_types::list_active(&*db).await?;
    let live = reservations::live(&*db).await?;
    let now = Utc::now();
    let waits = crate::queue_state::estimated_waits(&state, now).await?;
    let (availability, _) = summarise(&state.config.catalog, &rows, &live, &waits);
    Ok(HttpResponse::Ok().json(AvailabilityResponse {
        availability,
        timestamp: now,
    }))
}
