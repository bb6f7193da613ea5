//! `GET /v1/gpu/availability`

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use gpudev_store::gpu_types;

use super::{Inputs, summarise};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::routes::jobs::booking::{booked_start, booking_state};
use crate::state::AppState;

pub use gpudev_api_types::cluster::{AvailabilityQuery, AvailabilityResponse, BookableAt};

/// GPUs per type (reservation slots for CPU-only types): total, available, in use, queued, and
/// a rough wait for a new reservation, from the last known node figures with their age.
///
/// With `at` (and optionally `hours`, default 1), each type also says what the caller could
/// book from that time for that long (`bookable`): what a booking submitted now would be
/// promised, by the same check the submit makes (ADR 19).
#[utoipa::path(get, path = "/v1/gpu/availability", tag = "cluster", security(("bearer" = [])),
    params(AvailabilityQuery),
    responses(
        (status = 200, body = AvailabilityResponse),
        (status = 422, body = ErrorBody, description = "a bad `at` or `hours`"),
        (status = 503, body = ErrorBody,
            description = "with `at`, before the scheduler's first pass"),
    ))]
#[get("/gpu/availability")]
pub async fn gpu_availability(
    caller: Caller,
    state: web::Data<AppState>,
    q: web::Query<AvailabilityQuery>,
) -> ApiResult<HttpResponse> {
    let q = q.into_inner();
    let at = booked_start(q.at.as_deref(), state.config.bookings, Utc::now())?;
    let hours = match (at, q.hours) {
        (None, Some(_)) => {
            return Err(ApiError::invalid(
                "hours",
                "hours says how long a booking from `at` would last; give `at` too",
            ));
        }
        (_, Some(h))
            if !(h.is_finite() && h > 0.0 && h <= state.config.limits.max_duration_hours) =>
        {
            return Err(ApiError::invalid(
                "hours",
                format!(
                    "hours must be more than 0 and at most {} (MAX_RESERVATION_HOURS)",
                    state.config.limits.max_duration_hours
                ),
            ));
        }
        (_, h) => h.unwrap_or(1.0),
    };
    let mut answer = availability(&state).await?;
    if let Some(at) = at {
        add_bookable(&state, &caller, &mut answer, at, hours).await?;
    }
    Ok(HttpResponse::Ok().json(answer))
}

/// Fills in what `caller` could book of each type from `at` for `hours`.
async fn add_bookable(
    state: &AppState,
    caller: &Caller,
    answer: &mut AvailabilityResponse,
    at: DateTime<Utc>,
    hours: f64,
) -> ApiResult<()> {
    let (published, bookings) = booking_state(state).await?;
    let max_nodes = state.config.limits.max_nodes;
    let types = state
        .config
        .catalog
        .iter()
        .map(|spec| {
            let nodes = if spec.multinode { max_nodes } else { 1 };
            (spec.name.clone(), spec.gpus_per_node, nodes)
        })
        .collect();
    let bookable = state
        .queue
        .bookable(
            published,
            bookings,
            caller.username.clone(),
            types,
            at.timestamp(),
            (hours * 3600.0).round() as i64,
        )
        .await
        .ok_or_else(|| ApiError::Unavailable("the server is stopping".into()))?;
    for (gpu_type, b) in bookable {
        if let Some(a) = answer.availability.get_mut(gpu_type.as_str()) {
            a.bookable = Some(BookableAt {
                max_on_one_node: i64::from(b.slots_on_one_node),
                whole_nodes: i64::from(b.whole_nodes),
            });
        }
    }
    answer.at = Some(at);
    Ok(())
}

/// The capacity answer, for the route and the console alike.
pub(crate) async fn availability(state: &AppState) -> ApiResult<AvailabilityResponse> {
    let db = state.db().await?;
    let rows = gpu_types::list_active(&*db).await?;
    drop(db);
    let live = state.live_counts.get(state).await?;
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
        at: None,
    })
}
