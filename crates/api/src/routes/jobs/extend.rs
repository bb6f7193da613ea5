//! `POST /v1/jobs/{job_id}/extend`

use actix_web::{HttpResponse, post, web};
use gpudev_domain::{Hours, RequestError, ReservationStatus, check_extension};
use gpudev_store::QueueMessage;
use gpudev_store::StoreError;
use gpudev_store::reservations::{self, Change, Reservation};

use super::lookup::{Visibility, find_job};
use super::request::request_error;
use super::{Applies, JobActionResponse, wrong_state};
use crate::audit::{self, Audit, RequestCtx};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::state::AppState;

pub use gpudev_api_types::jobs::ExtendRequest;

const ONLY_LIVE: &str = "only a queued, preparing or active job can be extended";

/// Extends a live job, in the database in this request, with an `extend` event. An active job's
/// `expires_at` moves (expiry warnings are sent again before the new end) and a message tells
/// the processor; a queued or preparing job runs that much longer once it starts (`applies`
/// says which). Refused with 409 for a job that has ended or when its total lifetime would pass
/// the configured maximum.
#[utoipa::path(post, path = "/v1/jobs/{job_id}/extend", tag = "jobs", security(("bearer" = [])),
    params(("job_id" = String, Path, description = "full id, or a unique prefix of at least 8 characters")),
    request_body = ExtendRequest,
    responses(
        (status = 200, body = JobActionResponse, description = "extended; for an active job `expires_at` is the new end"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "ended (invalid_state) or past the lifetime cap (lifetime_exceeded)"),
        (status = 422, body = ErrorBody, description = "extension_hours out of range"),
    ))]
#[post("/jobs/{job_id}/extend")]
pub async fn extend_job(
    caller: Caller,
    ctx: RequestCtx,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<ExtendRequest>,
) -> ApiResult<HttpResponse> {
    let limits = &state.config.limits;
    let hours = Hours::parse(body.extension_hours, limits)
        .map_err(|e| request_error(RequestError::Extension(e)))?;
    let mut db = state.db().await?;
    let tx = db.transaction().await.map_err(StoreError::from)?;
    let r = find_job(&tx, &caller, &path, Visibility::Own).await?;
    if r.status.is_terminal() {
        return Err(wrong_state(&r, ONLY_LIVE));
    }
    check_extension(r.duration_hours + r.extended_hours, hours, limits).map_err(lifetime)?;
    let extended = match reservations::extend(
        &tx,
        r.reservation_id,
        hours.as_hours(),
        limits.max_lifetime_hours,
        caller.username.as_str(),
    )
    .await?
    {
        Change::Applied(now) => *now,
        Change::Refused(now) => return Err(refused(&now, hours, limits)),
    };
    let msg_id = reservations::send_hint(
        &tx,
        &state.config.queue,
        &extended,
        QueueMessage::Extend,
        serde_json::json!({
            "extension_hours": hours.as_hours(),
            "expires_at": extended.expires_at,
        }),
    )
    .await?;
    audit::record(
        &tx,
        Some(&caller),
        caller.username.as_str(),
        None,
        &ctx,
        Audit {
            action: "reservation.extend",
            target_type: Some("reservation"),
            target_id: Some(r.reservation_id.to_string()),
            outcome: "success",
            details: Some(serde_json::json!({
                "extension_hours": hours.as_hours(),
                "expires_at": extended.expires_at,
                "msg_id": msg_id,
            })),
        },
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    let (message, applies) = match extended.expires_at {
        Some(until) if extended.status == ReservationStatus::Active => (
            format!(
                "Job {} extended by {hours}; it now expires at {}",
                extended.reservation_id,
                until.to_rfc3339()
            ),
            Applies::Now,
        ),
        _ => (
            format!(
                "Job {} extended by {hours}; it is {} and will run for {} h once it starts",
                extended.reservation_id,
                extended.status,
                extended.duration_hours + extended.extended_hours
            ),
            Applies::AtStart,
        ),
    };
    Ok(HttpResponse::Ok().json(JobActionResponse {
        job_id: extended.reservation_id,
        action: "extend".into(),
        status: "extended".into(),
        message,
        expires_at: extended.expires_at,
        applies,
    }))
}

fn lifetime(e: RequestError) -> ApiError {
    ApiError::conflict(ErrorCode::LifetimeExceeded, e.to_string())
}

/// Why the guarded update refused: the job changed since it was read.
fn refused(now: &Reservation, hours: Hours, limits: &gpudev_domain::Limits) -> ApiError {
    if now.status.is_terminal() {
        return wrong_state(now, ONLY_LIVE);
    }
    match check_extension(now.duration_hours + now.extended_hours, hours, limits) {
        Err(e) => lifetime(e),
        Ok(()) => ApiError::conflict(
            ErrorCode::LifetimeExceeded,
            "the job's lifetime changed while extending; try again",
        ),
    }
}
