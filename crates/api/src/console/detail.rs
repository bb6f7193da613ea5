//! A reservation's page (`/ui/jobs/{id}`): where it stands, its whole history (events,
//! warnings, how its estimated start moved) and why it failed, in plain words. Found by the
//! API's own lookup for the caller's jobs, so another user's reservation is 404 here too.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{DateTime, Utc};
use gpudev_store::reservations;

use super::extract::Signed;
use super::jobs::{JobRow, clock, extend_choices, job_row, stamp};
use super::{Viewer, caller_of, html, message, viewer};
use crate::error::{ApiError, ApiResult};
use crate::routes::jobs::detail::{JobDetail, JobEvent, job_detail};
use crate::routes::jobs::lookup::{Visibility, find_job};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "console/detail.html")]
struct DetailPage<'a> {
    user: Option<Viewer>,
    page: &'a str,
    csrf: String,
    j: JobRow,
    facts: Vec<(&'static str, String)>,
    failure: Option<String>,
    warnings: Vec<(String, String)>,
    estimates: Vec<(String, String)>,
    history: Vec<HistoryRow>,
    extend_hours: Vec<String>,
}

struct HistoryRow {
    at: String,
    what: String,
    why: String,
    by: String,
}

pub(super) async fn detail_page(
    state: web::Data<AppState>,
    Signed(session): Signed,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let caller = caller_of(&session);
    let db = state.db().await?;
    let r = match find_job(&*db, &caller, &path, Visibility::Own).await {
        Ok(r) => r,
        Err(ApiError::NotFound(_)) => {
            return message(
                StatusCode::NOT_FOUND,
                "No such reservation",
                "You have no reservation with this id.",
            );
        }
        Err(e) => return Err(e),
    };
    let events = reservations::events(&*db, r.reservation_id).await?;
    drop(db);
    let j = job_detail(
        r,
        events,
        &state.config.catalog,
        &state.config.idle,
        true,
        Utc::now(),
    );
    html(
        StatusCode::OK,
        &DetailPage {
            user: Some(viewer(&session)),
            page: "jobs",
            csrf: session.csrf_token.clone(),
            j: job_row(&j),
            facts: facts(&j),
            failure: j.failure_reason.as_deref().map(plain_failure),
            warnings: j
                .warnings
                .iter()
                .map(|w| (stamp(w.created_at), w.message.clone()))
                .collect(),
            estimates: estimates(&j),
            history: j.events.iter().map(history_row).collect(),
            extend_hours: extend_choices(&state),
        },
    )
}

/// The reservation's settings and times.
fn facts(j: &JobDetail) -> Vec<(&'static str, String)> {
    let mut out = vec![
        ("Id", j.job_id.to_string()),
        ("Asked for", hours(j.duration_hours)),
        ("Reserved", stamp(j.created_at)),
    ];
    if j.extended_hours > 0.0 {
        out.push(("Extended by", hours(j.extended_hours)));
    }
    if let Some(t) = j.launched_at {
        out.push(("Started", stamp(t)));
    }
    if let Some(t) = j.ended_at {
        out.push(("Ended", stamp(t)));
    }
    if let Some(d) = &j.disk_name {
        out.push(("Disk", d.clone()));
    }
    if !j.image.is_empty() {
        out.push(("Image", j.image.clone()));
    }
    if !j.env_names.is_empty() {
        out.push(("Environment", j.env_names.join(", ")));
    }
    if let Some(note) = &j.estimate_note {
        out.push(("Estimate", note.clone()));
    }
    out
}

fn hours(h: f64) -> String {
    if h == 1.0 {
        "1 hour".to_owned()
    } else {
        format!("{h} hours")
    }
}

/// How the estimated start moved: the first estimate, each promise the scheduler made, and the
/// estimate now.
fn estimates(j: &JobDetail) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(first) = j.first_estimated_start_time {
        out.push((
            stamp(j.created_at),
            format!("first estimate: starts ~{}", clock(first)),
        ));
    }
    for e in j.events.iter().filter(|e| e.kind == "estimate") {
        let at = |key: &str| {
            e.details
                .get(key)
                .and_then(|v| v.as_str())
                .and_then(|s| s.parse::<DateTime<Utc>>().ok())
        };
        let text = match (at("promised_start"), at("previous_promised_start")) {
            (Some(now), Some(before)) => {
                format!("promise moved from {} to {}", clock(before), clock(now))
            }
            (Some(now), None) => format!("promised to start by {}", clock(now)),
            _ => e
                .reason
                .clone()
                .unwrap_or_else(|| "estimate changed".into()),
        };
        out.push((stamp(e.created_at), text));
    }
    if let Some(now) = j.estimated_start_time {
        out.push(("now".to_owned(), format!("starts ~{}", clock(now))));
    }
    out
}

fn history_row(e: &JobEvent) -> HistoryRow {
    let what = match (&e.from_status, &e.to_status) {
        (Some(from), Some(to)) => format!("{from} → {to}"),
        (None, Some(to)) => to.clone(),
        _ => e.kind.replace('_', " "),
    };
    HistoryRow {
        at: stamp(e.created_at),
        what,
        why: e.reason.clone().unwrap_or_default(),
        by: e.actor.clone(),
    }
}

/// A failure reason as a person would say it: the processor's words where they are already a
/// sentence, with the usual Kubernetes terms explained.
fn plain_failure(reason: &str) -> String {
    const TERMS: [(&str, &str); 6] = [
        (
            "ImagePullBackOff",
            "the container image could not be downloaded (check its name and that it is public)",
        ),
        (
            "ErrImagePull",
            "the container image could not be downloaded (check its name and that it is public)",
        ),
        (
            "CrashLoopBackOff",
            "the dev box kept stopping right after it started",
        ),
        ("OOMKilled", "the dev box ran out of memory"),
        ("Unschedulable", "no node could take the dev box"),
        (
            "DeadlineExceeded",
            "the dev box did not become ready in time",
        ),
    ];
    match TERMS.iter().find(|(term, _)| reason.contains(term)) {
        Some((_, plain)) => format!("{}. ({reason})", capitalise(plain)),
        None => reason.to_owned(),
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
