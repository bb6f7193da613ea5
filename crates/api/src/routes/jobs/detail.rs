//! `JobDetail`: a reservation as `GET /v1/jobs/{id}` and `GET /v1/jobs` show it — every field of
//! the original API (null when unknown) plus progress, queue, warnings and history.

use chrono::{DateTime, Utc};
use gpudev_domain::{GpuCatalog, IdlePolicy, ReservationStatus};
use gpudev_store::reservations::{Event, Reservation};

pub use gpudev_api_types::jobs::{JobActivity, JobDetail, JobEvent, JobWarning};

/// One stored event as the API shows it.
pub fn job_event(e: Event) -> JobEvent {
    JobEvent {
        kind: e.kind,
        from_status: e.from_status,
        to_status: e.to_status,
        reason: e.reason,
        actor: e.actor,
        details: e.details,
        created_at: e.created_at,
    }
}

/// Builds the view of `r` for a caller; `viewer_is_owner` decides whether secrets meant for the
/// owner (the Jupyter token) are shown.
pub fn job_detail(
    r: Reservation,
    events: Vec<Event>,
    catalog: &GpuCatalog,
    idle: &IdlePolicy,
    viewer_is_owner: bool,
    now: DateTime<Utc>,
) -> JobDetail {
    let warnings: Vec<JobWarning> = events
        .iter()
        .filter(|e| e.kind == "warning")
        .map(|e| JobWarning {
            message: e.reason.clone().unwrap_or_default(),
            created_at: e.created_at,
        })
        .collect();
    let active = r.status == ReservationStatus::Active;
    let queued = r.status == ReservationStatus::Queued;
    let estimated_start_time = if queued { r.estimated_start_at } else { None };
    let start_promised = queued && r.promised_start_at.is_some();
    let estimate_note = queued.then(|| match r.start_at {
        Some(at) if estimated_start_time.is_some_and(|t| t > at) => BOOKING_LATE_NOTE.to_owned(),
        Some(_) => BOOKING_NOTE.to_owned(),
        None => estimate_note(start_promised, estimated_start_time),
    });
    let activity = r
        .activity
        .as_ref()
        .map(|a| job_activity(a, active.then(|| idle.limit_for(r.idle_minutes)).flatten()));
    let instance_type = r
        .instance_type
        .clone()
        .or_else(|| catalog.get(&r.gpu_type).map(|s| s.instance_type.clone()));
    JobDetail {
        job_id: r.reservation_id,
        reservation_id: r.reservation_id,
        user_id: r.username.to_string(),
        status: r.status.as_str().to_owned(),
        gpu_type: r.gpu_type.to_string(),
        gpu_count: r.gpu_count,
        node_count: r.node_count,
        instance_type,
        duration_hours: r.duration_hours,
        extended_hours: r.extended_hours,
        created_at: r.created_at,
        updated_at: r.updated_at,
        expires_at: r.expires_at,
        name: r.name.map(|n| n.to_string()),
        pod_name: r.pod_name,
        node_ip: r.node_ip,
        node_port: r.node_port,
        ssh_command: if active { r.ssh_command } else { None },
        jupyter_enabled: r.jupyter_enabled,
        jupyter_url: r.jupyter_url,
        jupyter_token: if viewer_is_owner {
            r.jupyter_token
        } else {
            None
        },
        github_user: r.github_user.map(|g| g.to_string()),
        secondary_users: r.secondary_users.iter().map(ToString::to_string).collect(),
        failure_reason: r.failure_reason,
        current_detailed_status: r.detailed_status.clone(),
        detailed_status: r.detailed_status,
        queue_position: if queued { r.queue_position } else { None },
        estimated_start_time,
        estimated_wait_minutes: estimated_start_time.map(|t| wait_minutes(now, t)),
        start_promised,
        first_estimated_start_time: r.first_estimated_start_at,
        estimated_ready_time: if queued { r.estimated_ready_at } else { None },
        start_at: r.start_at,
        estimate_note,
        launched_at: r.launched_at,
        ended_at: r.ended_at,
        disk_name: r.disk_name.map(|d| d.to_string()),
        // A row without an image (the default) reads as blank, as it is stored.
        image: r.image.map(|i| i.to_string()).unwrap_or_default(),
        env_names: r.env_names,
        priority: r.priority,
        warning: warnings.last().map(|w| w.message.clone()),
        warnings,
        events: events.into_iter().map(job_event).collect(),
        activity,
    }
}

/// A box's activity as the API shows it; `limit` is its idle limit in minutes while it can be
/// released as idle.
fn job_activity(a: &gpudev_store::activity::Activity, limit: Option<u32>) -> JobActivity {
    JobActivity {
        last_report_at: a.last_report_at,
        last_activity_at: a.last_activity_at,
        idle_since: a.idle_since,
        idle_minutes: limit,
        idle_ends_at: limit
            .zip(a.idle_since)
            .map(|(m, since)| since + chrono::Duration::minutes(i64::from(m))),
        idle_warned_at: a.idle_warned_at,
    }
}

/// What a booking's start promises (ADR 19), in one line.
const BOOKING_NOTE: &str = "booked: it starts at its booked time, not before, as soon as its \
                            nodes are ready; nothing admitted before it may use its GPUs then";

/// A booking whose booked start could not be kept (a node lost, work on its nodes running late).
const BOOKING_LATE_NOTE: &str = "booked, but its booked start cannot be kept (a node it was to \
                                 use is gone or work on it runs late): it starts at the time \
                                 shown, the earliest its capacity is free";

/// What a queued reservation's estimate promises (ADR 5), in one line.
pub fn estimate_note(promised: bool, estimate: Option<DateTime<Utc>>) -> String {
    match (promised, estimate) {
        (true, _) => "promised: it moves later only if a node it was promised is lost, a \
                      reservation on those nodes runs past its end or is extended, or work \
                      outside gpudev takes them"
            .to_owned(),
        (false, Some(_)) => "estimate, not yet a promise: requests from users with less queued \
                             or recent use may still go first until it is promised (close to its \
                             start, or once nothing can come before it)"
            .to_owned(),
        (false, None) => "no estimate yet: see the status for what it waits for".to_owned(),
    }
}

/// Whole minutes from `now` until `at`, rounded up, never negative.
pub fn wait_minutes(now: DateTime<Utc>, at: DateTime<Utc>) -> i64 {
    minutes_rounded_up((at - now).num_seconds())
}

/// [`wait_minutes`] between two unix times in seconds.
pub fn wait_minutes_between(now: i64, at: i64) -> i64 {
    minutes_rounded_up(at.saturating_sub(now))
}

fn minutes_rounded_up(secs: i64) -> i64 {
    (secs.max(0) + 59) / 60
}

/// The first moment after `now` at which [`wait_minutes`] towards `at` gives another number, or
/// `None` once it has reached zero for good. An answer showing the minutes may be reused until
/// then.
pub fn wait_minutes_change_at(now: DateTime<Utc>, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let minutes = wait_minutes(now, at);
    // `wait_minutes` shows m while at least 60(m-1)+1 whole seconds remain.
    (minutes > 0).then(|| at - chrono::Duration::seconds(60 * (minutes - 1) + 1))
}

/// When `job`'s minutes-to-start would read differently (see [`wait_minutes_change_at`]).
pub fn changes_at(job: &JobDetail, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    job.estimated_start_time
        .and_then(|at| wait_minutes_change_at(now, at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn wait_minutes_round_up_and_never_go_negative() {
        let now = Utc::now();
        assert_eq!(wait_minutes(now, now), 0);
        assert_eq!(wait_minutes(now, now + Duration::seconds(1)), 1);
        assert_eq!(wait_minutes(now, now + Duration::seconds(60)), 1);
        assert_eq!(wait_minutes(now, now + Duration::seconds(61)), 2);
        assert_eq!(wait_minutes(now, now - Duration::hours(1)), 0);
    }

    #[test]
    fn the_minutes_hold_until_the_change_instant_and_differ_right_after() {
        let now = Utc::now();
        for secs in [1, 59, 60, 61, 119, 120, 121, 3600, 3601] {
            let at = now + Duration::seconds(secs) + Duration::milliseconds(250);
            let m = wait_minutes(now, at);
            let change = wait_minutes_change_at(now, at).expect("counting down");
            assert!(change > now, "{secs}");
            let tick = Duration::milliseconds(1);
            assert_eq!(wait_minutes(change - tick, at), m, "{secs}");
            assert_eq!(wait_minutes(change + tick, at), m - 1, "{secs}");
        }
        assert_eq!(
            wait_minutes_change_at(now, now - Duration::seconds(5)),
            None
        );
        assert_eq!(wait_minutes_change_at(now, now), None);
    }
}
