//! The reservations page (`/ui/`): the signed-in user's reservations as cards whose status,
//! queue place, estimate and connection details `console.js` keeps current from `/ui/events`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{DateTime, Utc};
use gpudev_store::console::SessionUser;
use gpudev_store::reservations::{self, ListFilter};
use serde::Serialize;

use super::extract::Signed;
use super::{Viewer, html, viewer};
use crate::error::ApiResult;
use crate::routes::jobs::detail::{JobDetail, job_detail};
use crate::state::AppState;

/// Reservations shown on the reservations page (and followed live).
pub(super) const PAGE_SIZE: i64 = 50;

/// Hours the extend form offers, within the longest extension the server allows.
const EXTEND_CHOICES: [f64; 6] = [1.0, 2.0, 4.0, 8.0, 12.0, 24.0];

#[derive(Template)]
#[template(path = "console/jobs.html")]
struct ReservationsPage<'a> {
    user: Option<Viewer>,
    page: &'a str,
    csrf: String,
    jobs: Vec<JobRow>,
    extend_hours: Vec<String>,
}

/// One reservation as the page and its live updates show it. Every field is display text, so
/// the page and `console.js` show the same words.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct JobRow {
    /// The full id.
    pub id: String,
    /// The first 8 characters of the id.
    pub short_id: String,
    /// The name the user gave, or empty.
    pub name: String,
    /// `4 × h100`.
    pub gpus: String,
    /// The status word.
    pub status: String,
    /// What it waits for or does, in a few words (empty when there is nothing to add).
    pub detail: String,
    /// Queue place and estimated start while queued.
    pub queue: String,
    /// The SSH command while active.
    pub ssh: Option<String>,
    /// The Jupyter link while active and enabled.
    pub jupyter: Option<String>,
    /// When it ends.
    pub ends: String,
    /// While active and idle: since when, and when it will be released unless used.
    pub idle: String,
    /// Whether it can still be extended or cancelled.
    pub live: bool,
}

/// The row of one reservation.
pub(super) fn job_row(j: &JobDetail) -> JobRow {
    let active = j.status == "active";
    JobRow {
        id: j.job_id.to_string(),
        short_id: j.job_id.simple().to_string()[..8].to_owned(),
        name: j.name.clone().unwrap_or_default(),
        gpus: format!("{} × {}", j.gpu_count, j.gpu_type),
        status: j.status.clone(),
        detail: j.detailed_status.clone().unwrap_or_default(),
        queue: match (j.start_at, j.queue_position, j.estimated_start_time) {
            (Some(at), _, _) if j.status == "queued" => format!("booked to start {}", stamp(at)),
            (_, Some(p), Some(t)) if j.start_promised => {
                format!("#{p} in the queue, promised to start by {}", clock(t))
            }
            (_, Some(p), Some(t)) => format!("#{p} in the queue, starts ~{} (estimate)", clock(t)),
            (_, Some(p), None) => format!("#{p} in the queue"),
            _ => String::new(),
        },
        idle: match j.activity.as_ref() {
            Some(a) if active => match (a.idle_since, a.idle_ends_at) {
                (Some(since), Some(ends)) => format!(
                    "since {}; released at {} unless used (or kept alive)",
                    clock(since),
                    clock(ends)
                ),
                (Some(since), None) => format!("since {}", clock(since)),
                _ => String::new(),
            },
            _ => String::new(),
        },
        ssh: j.ssh_command.clone(),
        // Made by the processor, never typed by a user; still, only a web address is a link.
        jupyter: j
            .jupyter_url
            .clone()
            .filter(|u| active && (u.starts_with("https://") || u.starts_with("http://"))),
        ends: j.expires_at.map(stamp).unwrap_or_default(),
        live: matches!(j.status.as_str(), "queued" | "preparing" | "active"),
    }
}

/// `14:05 UTC`.
pub(super) fn clock(t: DateTime<Utc>) -> String {
    t.format("%H:%M UTC").to_string()
}

/// `2026-12-07 14:05 UTC`.
pub(super) fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// The user's newest reservations, as rows (without their histories, which the cards do not
/// show: the live stream reads this every few seconds).
pub(super) async fn rows(state: &AppState, session: &SessionUser) -> ApiResult<Vec<JobRow>> {
    let db = state.db().await?;
    let (found, _) = reservations::list(
        &db,
        &ListFilter {
            user_id: Some(session.user_id),
            statuses: Vec::new(),
            limit: PAGE_SIZE,
            offset: 0,
        },
    )
    .await?;
    drop(db);
    let now = Utc::now();
    Ok(found
        .into_iter()
        .map(|r| {
            job_row(&job_detail(
                r,
                Vec::new(),
                &state.config.catalog,
                &state.config.idle,
                true,
                now,
            ))
        })
        .collect())
}

/// The hours the extend form offers.
pub(super) fn extend_choices(state: &AppState) -> Vec<String> {
    let max = state.config.limits.max_duration_hours;
    EXTEND_CHOICES
        .iter()
        .filter(|h| **h <= max)
        .map(|h| h.to_string())
        .collect()
}

pub(super) async fn reservations_page(
    state: web::Data<AppState>,
    Signed(session): Signed,
) -> ApiResult<HttpResponse> {
    let jobs = rows(&state, &session).await?;
    html(
        StatusCode::OK,
        &ReservationsPage {
            user: Some(viewer(&session)),
            page: "jobs",
            csrf: session.csrf_token.clone(),
            jobs,
            extend_hours: extend_choices(&state),
        },
    )
}
