//! `GET /v1/jobs/{job_id}`

use actix_web::{HttpResponse, get, web};
use chrono::Utc;
use gpudev_store::reservations;
use uuid::Uuid;

use super::detail::JobDetail;
use super::lookup::{Visibility, find_job, group_of, may_see, not_found};
use super::{answer_and_keep, cached};
use crate::auth::Caller;
use crate::error::{ApiResult, ErrorBody};
use crate::job_cache::View;
use crate::state::AppState;

/// One job, by full id or by a prefix of at least 8 characters that matches only one of the
/// caller's jobs. Another user's job is 404 (admins may read every job).
#[utoipa::path(get, path = "/v1/jobs/{job_id}", tag = "jobs", security(("bearer" = [])),
    params(("job_id" = String, Path, description = "full id, or a unique prefix of at least 8 characters")),
    responses(
        (status = 200, body = JobDetail),
        (status = 404, body = ErrorBody, description = "no such job among the caller's"),
        (status = 409, body = ErrorBody, description = "the prefix matches more than one job"),
    ))]
#[get("/jobs/{job_id}")]
pub async fn get_job(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let full_id = Uuid::parse_str(path.trim()).ok();
    if let Some(id) = full_id
        && let Some(answer) = cached(&state, caller.user_id, &View::Job(id))
    {
        return Ok(answer);
    }
    let ticket = state.jobs.ticket(caller.user_id);
    let db = state.db().await?;
    // A full id (what clients poll with) is read with its history in one statement; a prefix is
    // resolved first.
    let (r, events) = match full_id.ok_or(()) {
        Ok(id) => {
            let mut found = reservations::find_with_events(&*db, id).await?;
            if found.is_none()
                && let Some(group) = group_of(&*db, id).await?
            {
                found = reservations::find_with_events(&*db, group).await?;
            }
            match found {
                Some((r, events)) if may_see(&caller, r.user_id, Visibility::AdminSeesAll) => {
                    (r, events)
                }
                _ => return Err(not_found(path.trim())),
            }
        }
        Err(_) => {
            let r = find_job(&*db, &caller, &path, Visibility::AdminSeesAll).await?;
            // Read again with its history and activity, as a full id is.
            reservations::find_with_events(&*db, r.reservation_id)
                .await?
                .ok_or_else(|| not_found(path.trim()))?
        }
    };
    let owner = r.user_id == caller.user_id;
    let now = Utc::now();
    let job = crate::routes::jobs::detail::job_detail(
        r,
        events,
        &state.config.catalog,
        &state.config.idle,
        owner,
        now,
    );
    match full_id {
        // Kept only for the owner: what an admin sees of another user's job is not theirs to
        // invalidate.
        Some(id) if owner => answer_and_keep(&state, ticket, View::Job(id), &job, &[&job], now),
        _ => Ok(HttpResponse::Ok().json(job)),
    }
}
