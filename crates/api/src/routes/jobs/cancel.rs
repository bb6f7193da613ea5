//! `POST /v1/jobs/{job_id}/cancel`

use actix_web::{HttpResponse, post, web};
use gpudev_domain::ReservationStatus;
use gpudev_store::QueueMessage;
use gpudev_store::StoreError;
use gpudev_store::reservations::{self, Reservation, Transition};

use super::lookup::{Visibility, find_job};
use super::{JobActionResponse, wrong_state};
use crate::audit::{self, Audit, RequestCtx};
use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::state::AppState;

/// Cancels one of the caller's jobs. The job is `cancelled` in the database at once, whatever it
/// was doing; a `cancel` message tells the processor to remove its pod and objects. Cancelling a
/// cancelled job changes nothing and answers 200; an expired or failed job cannot be cancelled
/// (409). No body is needed (an empty one with `Content-Type: application/json` is fine).
#[utoipa::path(post, path = "/v1/jobs/{job_id}/cancel", tag = "jobs", security(("bearer" = [])),
    params(("job_id" = String, Path, description = "full id, or a unique prefix of at least 8 characters")),
    responses(
        (status = 200, body = JobActionResponse),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the job has already ended (expired or failed)"),
    ))]
#[post("/jobs/{job_id}/cancel")]
pub async fn cancel_job(
    caller: Caller,
    ctx: RequestCtx,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    cancel_own(&state, &caller, &ctx, &path).await
}

/// Cancels the caller's own job `raw` names, as its owner (the API's route and the console's
/// form).
pub(crate) async fn cancel_own(
    state: &AppState,
    caller: &Caller,
    ctx: &RequestCtx,
    raw: &str,
) -> ApiResult<HttpResponse> {
    cancel(
        state,
        caller,
        ctx,
        raw,
        Visibility::Own,
        "cancelled by its owner",
    )
    .await
}

/// Cancels the job `raw` names as `caller` sees it (`Visibility::AdminSeesAll` lets an admin cancel
/// anyone's), recording `reason`.
pub(crate) async fn cancel(
    state: &AppState,
    caller: &Caller,
    ctx: &RequestCtx,
    raw: &str,
    visibility: Visibility,
    reason: &str,
) -> ApiResult<HttpResponse> {
    let mut db = state.db().await?;
    let tx = db.transaction().await.map_err(StoreError::from)?;
    let r = find_job(&tx, caller, raw, visibility).await?;
    if r.status == ReservationStatus::Cancelled {
        return Ok(already_cancelled(&r));
    }
    if r.status.is_terminal() {
        return Err(wrong_state(
            &r,
            "only a job that has not ended can be cancelled",
        ));
    }
    let cancelled = match reservations::transition(
        &tx,
        r.reservation_id,
        Transition {
            to: ReservationStatus::Cancelled,
            reason: Some(reason),
            actor: caller.username.as_str(),
        },
    )
    .await
    {
        Ok(c) => c,
        // It ended between the read and the change.
        Err(StoreError::Transition(t)) if t.from == ReservationStatus::Cancelled => {
            return Ok(already_cancelled(&r));
        }
        Err(StoreError::Transition(t)) => {
            let mut now = r.clone();
            now.status = t.from;
            return Err(wrong_state(
                &now,
                "only a job that has not ended can be cancelled",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let msg_id = reservations::send_hint(
        &tx,
        &state.config.queue,
        &cancelled,
        QueueMessage::Cancel,
        serde_json::json!({ "previous_status": r.status }),
    )
    .await?;
    // The environment values are not needed any more: forget them now.
    reservations::delete_secret_env(&tx, r.reservation_id).await?;
    audit::record(
        &tx,
        Some(caller),
        caller.username.as_str(),
        None,
        ctx,
        Audit {
            action: "reservation.cancel",
            target_type: Some("reservation"),
            target_id: Some(r.reservation_id.to_string()),
            outcome: "success",
            details: Some(serde_json::json!({
                "previous_status": r.status,
                "msg_id": msg_id,
                "owner": r.username,
                "reason": reason,
            })),
        },
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    state.live_counts.changed();
    Ok(HttpResponse::Ok().json(JobActionResponse {
        job_id: r.reservation_id,
        action: "cancel".into(),
        status: "cancelled".into(),
        message: format!(
            "Job {} cancelled (it was {}); its resources are being released (message ID: {msg_id})",
            r.reservation_id, r.status
        ),
        expires_at: None,
        applies: super::Applies::Now,
    }))
}

fn already_cancelled(r: &Reservation) -> HttpResponse {
    HttpResponse::Ok().json(JobActionResponse {
        job_id: r.reservation_id,
        action: "cancel".into(),
        status: "cancelled".into(),
        message: format!("Job {} was already cancelled", r.reservation_id),
        expires_at: None,
        applies: super::Applies::Now,
    })
}
