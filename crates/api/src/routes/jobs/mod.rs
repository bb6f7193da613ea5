//! `/v1/jobs`: reservations ("jobs" in the original API), one file per endpoint.
//!
//! Every route sees only the caller's own jobs: another user's job is answered exactly like a
//! missing one (404 "Job X not found"), never 403 or 500. Admins may read anyone's job with
//! `GET /v1/jobs/{id}`; they act on other users' jobs through `/v1/admin`.

use actix_web::web;
use chrono::{DateTime, Utc};
use gpudev_store::reservations::Reservation;
use serde::Serialize;

use crate::error::{ApiError, ErrorCode};
use crate::job_cache::{Ticket, View};
use crate::state::AppState;

pub use gpudev_api_types::jobs::{Applies, JobActionResponse};

pub mod add_user;
pub(crate) mod booking;
pub mod cancel;
pub mod detail;
pub mod extend;
pub mod get;
mod group;
pub mod jupyter;
pub mod keep_alive;
pub mod list;
pub mod lookup;
pub mod request;
pub mod submit;

/// Registers the job routes (inside the authenticated scope). `submit` comes before `{job_id}`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(submit::submit_job)
        .service(list::list_jobs)
        .service(get::get_job)
        .service(cancel::cancel_job)
        .service(extend::extend_job)
        .service(jupyter::enable_jupyter)
        .service(jupyter::disable_jupyter)
        .service(add_user::add_user)
        .service(keep_alive::keep_alive);
}

/// 409 `invalid_state` for an action the job's status does not allow.
pub(crate) fn wrong_state(r: &Reservation, allowed: &str) -> ApiError {
    ApiError::conflict(
        ErrorCode::InvalidState,
        format!("Job {} is {}; {allowed}", r.reservation_id, r.status),
    )
}

/// A cached job answer for `user_id`, counted as a hit or a miss.
fn cached(state: &AppState, user_id: i64, view: &View) -> Option<actix_web::HttpResponse> {
    let hit = state.jobs.get(user_id, view);
    let outcome = if hit.is_some() { "hit" } else { "miss" };
    state.metrics.job_cache.with_label_values(&[outcome]).inc();
    hit.map(json_answer)
}

/// Serialises a job answer, keeps it for reuse under `ticket` (until a shown job's
/// minutes-to-start would change) and answers with it.
fn answer_and_keep<T: Serialize>(
    state: &AppState,
    ticket: Ticket,
    view: View,
    value: &T,
    jobs: &[&detail::JobDetail],
    now: DateTime<Utc>,
) -> Result<actix_web::HttpResponse, ApiError> {
    let body = web::Bytes::from(serde_json::to_vec(value).map_err(ApiError::internal)?);
    let stale_at = jobs
        .iter()
        .filter_map(|j| detail::changes_at(j, now))
        .min()
        .map(|t| std::time::Instant::now() + (t - now).to_std().unwrap_or_default());
    state.jobs.put(ticket, view, body.clone(), stale_at);
    Ok(json_answer(body))
}

fn json_answer(body: web::Bytes) -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::json())
        .body(body)
}
