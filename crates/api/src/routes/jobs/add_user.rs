//! `POST /v1/jobs/{job_id}/users`

use actix_web::{HttpResponse, post, web};
use gpudev_domain::{GithubUser, ReservationStatus};
use gpudev_store::QueueMessage;
use gpudev_store::StoreError;
use gpudev_store::reservations::{self, Change};

use super::jupyter::WHILE_LIVE;
use super::lookup::{Visibility, find_job};
use super::{Applies, JobActionResponse, wrong_state};
use crate::audit::{self, Audit, RequestCtx};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

pub use gpudev_api_types::jobs::AddUserRequest;

/// Gives another GitHub user SSH access to one of the caller's jobs. The login is recorded in the
/// job's `secondary_users` at once; for a preparing or active job the processor installs the keys
/// (told by a message; the dev box picks them up within a minute), a queued job starts with
/// them.
#[utoipa::path(post, path = "/v1/jobs/{job_id}/users", tag = "jobs", security(("bearer" = [])),
    params(("job_id" = String, Path, description = "full id, or a unique prefix of at least 8 characters")),
    request_body = AddUserRequest,
    responses(
        (status = 200, body = JobActionResponse),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the job has ended"),
        (status = 422, body = ErrorBody, description = "not a valid GitHub login"),
    ))]
#[post("/jobs/{job_id}/users")]
pub async fn add_user(
    caller: Caller,
    ctx: RequestCtx,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<AddUserRequest>,
) -> ApiResult<HttpResponse> {
    let login = GithubUser::parse(&body.github_username).map_err(|e| {
        ApiError::invalid(
            "github_username",
            e.to_string().replace("github_user", "github_username"),
        )
    })?;
    let mut db = state.db().await?;
    let tx = db.transaction().await.map_err(StoreError::from)?;
    let r = find_job(&tx, &caller, &path, Visibility::Own).await?;
    let now = match reservations::add_secondary_user(
        &tx,
        r.reservation_id,
        &login,
        caller.username.as_str(),
    )
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
                QueueMessage::AddUser,
                serde_json::json!({ "github_username": login.as_str() }),
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
            action: "reservation.add_user",
            target_type: Some("reservation"),
            target_id: Some(r.reservation_id.to_string()),
            outcome: "success",
            details: Some(serde_json::json!({
                "github_username": login.as_str(),
                "status": now.status,
                "msg_id": msg_id,
            })),
        },
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    let message = match msg_id {
        Some(id) => format!(
            "GitHub user {} will get SSH access to job {} shortly (message ID: {id})",
            login.as_str(),
            now.reservation_id
        ),
        None => format!(
            "GitHub user {} will get SSH access to job {} when it starts",
            login.as_str(),
            now.reservation_id
        ),
    };
    Ok(HttpResponse::Ok().json(JobActionResponse {
        job_id: now.reservation_id,
        action: "add_user".into(),
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
