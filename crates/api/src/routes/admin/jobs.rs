//! `GET /v1/admin/jobs?user=&status=`, `POST /v1/admin/jobs/{job_id}/cancel`.

use actix_web::{HttpResponse, get, post, web};
use chrono::Utc;
use gpudev_store::reservations::{self, ListFilter};
use gpudev_store::users;

use crate::audit::RequestCtx;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::routes::jobs::list::{JobList, parse_statuses};
use crate::routes::jobs::lookup::Visibility;
use crate::state::AppState;

pub use gpudev_api_types::admin::AdminJobQuery;

/// Every user's jobs, newest first (or one user's).
#[utoipa::path(get, path = "/v1/admin/jobs", tag = "admin", security(("bearer" = [])),
    params(AdminJobQuery),
    responses(
        (status = 200, body = JobList),
        (status = 403, body = ErrorBody, description = "not an admin"),
        (status = 404, body = ErrorBody, description = "unknown user"),
        (status = 422, body = ErrorBody),
    ))]
#[get("/admin/jobs")]
pub async fn list_all_jobs(
    caller: Caller,
    state: web::Data<AppState>,
    q: web::Query<AdminJobQuery>,
) -> ApiResult<HttpResponse> {
    caller.require_admin()?;
    let list = all_jobs(&state, caller.user_id, &q).await?;
    Ok(HttpResponse::Ok().json(list))
}

/// Every user's jobs, newest first, filtered and paged as `q` says (for an admin whose user id
/// is `viewer`: their own jobs show what only owners see).
pub async fn all_jobs(state: &AppState, viewer: i64, q: &AdminJobQuery) -> ApiResult<JobList> {
    let statuses = parse_statuses(q.status.as_deref())?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            "limit must be between 1 and 500",
        ));
    }
    let offset = q.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::invalid("offset", "offset must not be negative"));
    }
    let db = state.db().await?;
    let user_id = match &q.user {
        Some(name) => Some(
            users::find_by_name(&db, name)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("User {name} not found")))?
                .user_id,
        ),
        None => None,
    };
    let (rows, total) = reservations::list_with_events(
        &db,
        &ListFilter {
            user_id,
            statuses,
            limit,
            offset,
        },
    )
    .await?;
    let now = Utc::now();
    let jobs = rows
        .into_iter()
        .map(|(r, events)| {
            let own = r.user_id == viewer;
            crate::routes::jobs::detail::job_detail(
                r,
                events,
                &state.config.catalog,
                &state.config.idle,
                own,
                now,
            )
        })
        .collect();
    Ok(JobList {
        jobs,
        total,
        limit,
        offset,
    })
}

/// Cancels any user's job (same rules as the owner's cancel: a cancelled job answers 200, an
/// expired or failed one 409). The event and audit record name the admin.
#[utoipa::path(post, path = "/v1/admin/jobs/{job_id}/cancel", tag = "admin", security(("bearer" = [])),
    params(("job_id" = String, Path, description = "full id, or a unique prefix of at least 8 characters")),
    responses(
        (status = 200, body = crate::routes::jobs::JobActionResponse),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
    ))]
#[post("/admin/jobs/{job_id}/cancel")]
pub async fn cancel_any_job(
    caller: Caller,
    ctx: RequestCtx,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    caller.require_admin()?;
    let reason = format!("cancelled by admin {}", caller.username);
    crate::routes::jobs::cancel::cancel(
        &state,
        &caller,
        &ctx,
        &path,
        Visibility::AdminSeesAll,
        &reason,
    )
    .await
}
