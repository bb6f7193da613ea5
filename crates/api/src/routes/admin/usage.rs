//! `GET /v1/admin/usage?from&to`: GPU-hours and cost per user and GPU type.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, get, web};
use chrono::{Duration, Utc};
use gpudev_store::usage;

use super::parse_time;
use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::state::AppState;

pub use gpudev_api_types::admin::{UsageLine, UsageQuery, UsageReport};

/// GPU-hours and cost per user and GPU type in a window. Prices come from `GPU_HOURLY_PRICES`.
#[utoipa::path(get, path = "/v1/admin/usage", tag = "admin", security(("bearer" = [])),
    params(UsageQuery),
    responses(
        (status = 200, body = UsageReport),
        (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
#[get("/admin/usage")]
pub async fn usage_report(
    caller: Caller,
    state: web::Data<AppState>,
    q: web::Query<UsageQuery>,
) -> ApiResult<HttpResponse> {
    caller.require_admin()?;
    Ok(HttpResponse::Ok().json(report(&state, &q).await?))
}

/// GPU-hours and cost per user and GPU type in the window `q` names (default: the last 30
/// days).
pub async fn report(state: &AppState, q: &UsageQuery) -> ApiResult<UsageReport> {
    let to = parse_time("to", q.to.as_deref())?.unwrap_or_else(Utc::now);
    let from = parse_time("from", q.from.as_deref())?.unwrap_or(to - Duration::days(30));
    // A window that ends before it starts holds no usage: an empty report, not an error, as
    // the document (which cannot relate two parameters) promises for any two times.
    let rows = if from < to {
        let db = state.db().await?;
        usage::gpu_hours(&*db, from, to).await?
    } else {
        Vec::new()
    };
    let prices = &state.config.gpu_hourly_prices;
    let mut by_user = BTreeMap::new();
    let mut idle_by_user = BTreeMap::new();
    let mut by_gpu_type = BTreeMap::new();
    let mut total_cost = 0.0;
    let lines = rows
        .into_iter()
        .map(|r| {
            *by_user.entry(r.username.clone()).or_insert(0.0) += r.gpu_hours;
            *idle_by_user.entry(r.username.clone()).or_insert(0.0) += r.idle_gpu_hours;
            *by_gpu_type.entry(r.gpu_type.clone()).or_insert(0.0) += r.gpu_hours;
            let cost = prices.get(&r.gpu_type).map(|p| p * r.gpu_hours);
            total_cost += cost.unwrap_or(0.0);
            UsageLine {
                username: r.username,
                gpu_type: r.gpu_type,
                reservations: r.reservations,
                gpu_hours: r.gpu_hours,
                idle_gpu_hours: r.idle_gpu_hours,
                cost,
            }
        })
        .collect();
    Ok(UsageReport {
        from,
        to,
        lines,
        by_user,
        idle_by_user,
        by_gpu_type,
        total_cost,
    })
}
