//! `POST /v1/jobs/{job_id}/jupyter/enable` and `…/disable`

use actix_web::{HttpResponse, post, web};
use gpudev_domain::ReservationStatus;
use gpudev_store::QueueMessage;
use gpudev_store::StoreError;
use gpudev_store::reservations::{self, Change};

use super::lookup::{Visibility, find_job};
use super::{Applies, JobActionResponse, wrong_state};
use crate::audit::{self, Audit, RequestCtx};
use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::state::AppState;

/// Where Jupyter can be switched and users added: the wording of the 409 otherwise.
pub(crate) const WHILE_LIVE: &str = "this can be changed while the job is queued (applied when \
     it starts), preparing or active (applied to the dev box shortly)";

/// Starts Jupyter in a preparing or active job (the processor switches the dev box's server;
/// `jupyter_url` appears in the job, and the server answers there within about a minute), or
/// has a queued job start with it. No body is needed.
#[utoipa::path(post, path = "/v1/jobs/{job_id}/jupyter/enable", tag = "jobs", security(("bearer" = [])),
    params(("job_id" = String, Path, description = "full id, or a unique prefix of at least 8 characters")),
    responses(
        (status = 200, body = JobActionResponse),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the job has ended"),
    ))]
#[post("/jobs/{job_id}/jupyter/enable")]
pub async fn enable_jupyter(
    caller: Caller,
    ctx: RequestCtx,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    switch(caller, ctx, state, &path, true).await
}

/// Stops Jupyter in a preparing or active job (the processor does it), or has a queued job
/// start without it. No body is needed.
#[utoipa::path(post, path = "/v1/jobs/{job_id}/jupyter/disable", tag = "jobs", security(("bearer" = [])),
    params(("job_id" = String, Path, description = "full id, or a unique prefix of at least 8 characters")),
    responses(
        (status = 200, body = JobActionResponse),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the job has ended"),
    ))]
#[post("/jobs/{job_id}/jupyter/disable")]
pub async fn disable_jupyter(
    caller: Caller,
    ctx: RequestCtx,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    switch(caller, ctx, state, &path, false).await
}

async fn switch(
    caller: Caller,
    ctx: RequestCtx,
    state: web::Data<AppState>,
    raw_id: &str,
    enable: bool,
) -> ApiResult<HttpResponse> {
    let (action, message): (_, fn(_) -> _) = if enable {
        ("enable_jupyter", QueueMessage::EnableJupyter)
    } else {
        ("disable_jupyter", QueueMessage::DisableJupyter)
    };
    let mut db = state.db().await?;
    let tx = db.transaction().await.map_err(StoreError::from)?;
    let r = find_job(&tx, &caller, raw_id, Visibility::Own).await?;
    let now =
        match reservations::set_jupyter(&tx, r.reservation_id, enable, caller.username.as_str())
            .await?
        {
            Change::Applied(now) => *now,
            Change::Refused(now) => return Err(wrong_state(&now, WHILE_LIVE)),
        };
    let msg_id = if now.status != ReservationStatus::Queued {
        Some(
            reservations::send_hint(
                &tx,
                &state.config.queue,
                &now,
                message,
                serde_json::json!({ "jupyter_enabled": enable }),
            )
            .await?,
        )
    } else {
        None
    };
    audit::record(
        &tx,
        Some(&caller),
        caller.username.as_str(),
        None,
        &ctx,
        Audit {
            action: if enable {
                "reservation.jupyter_enable"
            } else {
                "reservation.jupyter_disable"
            },
            target_type: Some("reservation"),
            target_id: Some(r.reservation_id.to_string()),
            outcome: "success",
            details: Some(serde_json::json!({ "status": now.status, "msg_id": msg_id })),
        },
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    let verb = if enable { "start" } else { "stop" };
    let message = match msg_id {
        Some(id) => format!(
            "Jupyter will {verb} shortly in job {} (message ID: {id})",
            now.reservation_id
        ),
        None => format!(
            "Job {} is queued; Jupyter will {} when it starts",
            now.reservation_id,
            if enable { "run" } else { "not run" }
        ),
    };
    Ok(HttpResponse::Ok().json(JobActionResponse {
        job_id: now.reservation_id,
        action: action.into(),
        status: "requested".into(),
        message,
        expires_at: now.expires_at,
        applies: if msg_id.is_some() {
            Applies::Shortly
        } else {
            Applies::AtStart
        },
    }))
}
