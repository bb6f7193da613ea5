//! `GET /v1/admin/usage?from&to`: GPU-hours and cost per user and GPU type.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Duration, Utc};
use gpudev_store::usage;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::parse_time;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// The window (default: the last 30 days).
#[derive(Debug, Deserialize, IntoParams)]
pub struct UsageQuery {
    /// Start, RFC 3339 (inclusive).
    pub from: Option<String>,
    /// End, RFC 3339 (exclusive; default now).
    pub to: Option<String>,
}

/// One user's use of one GPU type.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageLine {
    /// The user.
    pub username: String,
    /// The GPU type.
    pub gpu_type: String,
    /// Reservations that ran in the window.
    pub reservations: i64,
    /// GPU-hours in the window.
    pub gpu_hours: f64,
    /// USD at the configured hourly price (null when the type has no price).
    pub cost: Option<f64>,
}

/// Usage over a window.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageReport {
    /// Window start.
    pub from: DateTime<Utc>,
    /// Window end.
    pub to: DateTime<Utc>,
    /// Per user and GPU type.
    pub lines: Vec<UsageLine>,
    /// Total GPU-hours per user.
    pub by_user: BTreeMap<String, f64>,
    /// Total GPU-hours per GPU type.
    pub by_gpu_type: BTreeMap<String, f64>,
    /// Total cost of priced types.
    pub total_cost: f64,
}

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
    let to = parse_time("to", q.to.as_deref())?.unwrap_or_else(Utc::now);
    let from = parse_time("from", q.from.as_deref())?.unwrap_or(to - Duration::days(30));
    if from >= to {
        return Err(ApiError::invalid("from", "from must be before to"));
    }
    let db = state.db().await?;
    let rows = usage::gpu_hours(&*db, from, to).await?;
    let prices = &state.config.gpu_hourly_prices;
    let mut by_user = BTreeMap::new();
    let mut by_gpu_type = BTreeMap::new();
    let mut total_cost = 0.0;
    let lines = rows
        .into_iter()
        .map(|r| {
            *by_user.entry(r.username.clone()).or_insert(0.0) += r.gpu_hours;
            *by_gpu_type.entry(r.gpu_type.clone()).or_insert(0.0) += r.gpu_hours;
            let cost = prices.get(&r.gpu_type).map(|p| p * r.gpu_hours);
            total_cost += cost.unwrap_or(0.0);
            UsageLine {
                username: r.username,
                gpu_type: r.gpu_type,
                reservations: r.reservations,
                gpu_hours: r.gpu_hours,
                cost,
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(UsageReport {
        from,
        to,
        lines,
        by_user,
        by_gpu_type,
        total_cost,
    }))
}
