//! `POST /v1/jobs/{job_id}/keep-alive`: restarts an active job's idle countdown (ADR 18).

use actix_web::{HttpResponse, post, web};
use gpudev_domain::ReservationStatus;
use gpudev_store::StoreError;
use gpudev_store::activity;

use super::lookup::{Visibility, find_job};
use super::{Applies, JobActionResponse, wrong_state};
use crate::audit::{self, Audit, RequestCtx};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::read_optional_json;

use crate::state::AppState;
pub use gpudev_api_types::jobs::KeepAliveRequest;

/// Counts as activity in an active job's dev box: its idle countdown starts again from now and a
/// warning about it is withdrawn. With `idle_minutes`, the job's idle limit changes too. No
/// body is needed otherwise.
#[utoipa::path(post, path = "/v1/jobs/{job_id}/keep-alive", tag = "jobs", security(("bearer" = [])),
    params(("job_id" = String, Path, description = "full id, or a unique prefix of at least 8 characters")),
    request_body(content = Option<KeepAliveRequest>, description = "optional; an empty body means {}"),
    responses(
        (status = 200, body = JobActionResponse),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the job is not active, or its dev box has no agent"),
    ))]
#[post("/jobs/{job_id}/keep-alive")]
pub async fn keep_alive(
    caller: Caller,
    ctx: RequestCtx,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let req: KeepAliveRequest = read_optional_json(payload).await?;
    let limit = req
        .idle_minutes
        .map(|m| {
            state
                .config
                .idle
                .check_request(m, caller.is_admin())
                .map_err(|e| ApiError::invalid("idle_minutes", e.to_string()))
                .and_then(|m| {
                    i32::try_from(m).map_err(|_| ApiError::invalid("idle_minutes", "too large"))
                })
        })
        .transpose()?;
    let mut db = state.db().await?;
    let tx = db.transaction().await.map_err(StoreError::from)?;
    let r = find_job(&tx, &caller, &path, Visibility::Own).await?;
    if r.status != ReservationStatus::Active {
        return Err(wrong_state(
            &r,
            "only an active job's idle countdown can be reset",
        ));
    }
    if !activity::keep_alive(&tx, r.reservation_id, caller.username.as_str(), limit).await? {
        return Err(ApiError::conflict(
            gpudev_api_types::ErrorCode::InvalidState,
            format!(
                "Job {} has no idle countdown: its dev box runs no gpudev agent",
                r.reservation_id
            ),
        ));
    }
    audit::record(
        &tx,
        Some(&caller),
        caller.username.as_str(),
        None,
        &ctx,
        Audit {
            action: "reservation.keep_alive",
            target_type: Some("reservation"),
            target_id: Some(r.reservation_id.to_string()),
            outcome: "success",
            details: limit.map(|m| serde_json::json!({ "idle_minutes": m })),
        },
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    let minutes = state.config.idle.limit_for(limit.or(r.idle_minutes));
    let message = match minutes {
        Some(m) => format!(
            "Job {} kept alive: it is released only after {m} idle minutes from now",
            r.reservation_id
        ),
        None => format!(
            "Job {} kept alive (it is never released as idle)",
            r.reservation_id
        ),
    };
    Ok(HttpResponse::Ok().json(JobActionResponse {
        job_id: r.reservation_id,
        action: "keep_alive".into(),
        status: "success".into(),
        message,
        expires_at: r.expires_at,
        applies: Applies::Now,
    }))
}
