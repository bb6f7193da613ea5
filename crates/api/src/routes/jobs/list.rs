//! `GET /v1/jobs`

use actix_web::{HttpResponse, get, web};
use chrono::Utc;
use gpudev_domain::ReservationStatus;
use gpudev_domain::status::StatusList;
use gpudev_store::reservations::{self, ListFilter};

use super::detail::JobDetail;
use super::{answer_and_keep, cached};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::job_cache::View;
use crate::state::AppState;

pub use gpudev_api_types::jobs::{JobList, ListQuery};

/// Default page size.
pub const DEFAULT_LIMIT: i64 = 50;
/// Largest page size.
pub const MAX_LIMIT: i64 = 500;

/// Parses `status=a,b` (see [`StatusList`]; blank items ignored).
pub fn parse_statuses(raw: Option<&str>) -> Result<Vec<ReservationStatus>, ApiError> {
    StatusList::parse(raw.unwrap_or_default())
        .map(|list| list.states().to_vec())
        .map_err(|e| ApiError::invalid("status", e.to_string()))
}

/// The caller's jobs, newest first, each with its history.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, body = JobList),
        (status = 422, body = ErrorBody, description = "unknown status, or limit/offset out of range"),
    ))]
#[get("/jobs")]
pub async fn list_jobs(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> ApiResult<HttpResponse> {
    let statuses = parse_statuses(query.status.as_deref())?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("limit must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let offset = query.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::invalid("offset", "offset must not be negative"));
    }
    let view = View::Page {
        statuses: statuses
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(","),
        limit,
        offset,
    };
    if let Some(answer) = cached(&state, caller.user_id, &view) {
        return Ok(answer);
    }
    let ticket = state.jobs.ticket(caller.user_id);
    let db = state.db().await?;
    // One statement: the page, each job's history and the total.
    let (rows, total) = reservations::list_with_events(
        &db,
        &ListFilter {
            user_id: Some(caller.user_id),
            statuses,
            limit,
            offset,
        },
    )
    .await?;
    let now = Utc::now();
    let jobs: Vec<JobDetail> = rows
        .into_iter()
        .map(|(r, events)| {
            crate::routes::jobs::detail::job_detail(
                r,
                events,
                &state.config.catalog,
                &state.config.idle,
                true,
                now,
            )
        })
        .collect();
    let list = JobList {
        jobs,
        total,
        limit,
        offset,
    };
    let shown: Vec<&JobDetail> = list.jobs.iter().collect();
    answer_and_keep(&state, ticket, view, &list, &shown, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReservationStatus::{Active, Preparing, Queued};

    #[test]
    fn statuses_are_parsed_deduplicated_and_legacy_names_mapped() {
        assert_eq!(parse_statuses(None).unwrap(), vec![]);
        assert_eq!(
            parse_statuses(Some("active, queued,,Active")).unwrap(),
            vec![Active, Queued]
        );
        assert_eq!(
            parse_statuses(Some("pending,creating_server")).unwrap(),
            vec![Queued, Preparing]
        );
        assert!(parse_statuses(Some("active,running")).is_err());
    }
}
