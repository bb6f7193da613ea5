//! `JobDetail`: a reservation as `GET /v1/jobs/{id}` and `GET /v1/jobs` show it — every field of
//! the original API (null when unknown) plus progress, queue, warnings and history.

use chrono::{DateTime, Utc};
use gpudev_domain::{GpuCatalog, ReservationStatus};
use gpudev_store::reservations::{Event, Reservation};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// A reservation ("job") with its connection details, progress and history.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobDetail {
    /// The job id (same as `reservation_id`).
    pub job_id: Uuid,
    /// The reservation id.
    pub reservation_id: Uuid,
    /// Owner's username (the original API's `user_id`).
    pub user_id: String,
    /// `queued`, `preparing`, `active`, `expired`, `cancelled` or `failed`.
    pub status: String,
    /// GPU type.
    pub gpu_type: String,
    /// GPUs in total.
    pub gpu_count: i32,
    /// Whole nodes it spans.
    pub node_count: i32,
    /// Node instance type (where it runs once placed; the GPU type's instance type before).
    pub instance_type: Option<String>,
    /// Requested hours.
    pub duration_hours: f64,
    /// Hours added by extensions.
    pub extended_hours: f64,
    /// Submission time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When it ends unless extended (set when it becomes active).
    pub expires_at: Option<DateTime<Utc>>,
    /// Display name.
    pub name: Option<String>,
    /// Its pod.
    pub pod_name: Option<String>,
    /// Address to SSH to.
    pub node_ip: Option<String>,
    /// Port to SSH to.
    pub node_port: Option<i32>,
    /// Ready-made SSH command (only while active).
    pub ssh_command: Option<String>,
    /// Jupyter wanted.
    pub jupyter_enabled: bool,
    /// Jupyter URL once running.
    pub jupyter_url: Option<String>,
    /// Jupyter token (shown to the owner only).
    pub jupyter_token: Option<String>,
    /// GitHub login whose keys are installed.
    pub github_user: Option<String>,
    /// Other GitHub users given SSH access.
    pub secondary_users: Vec<String>,
    /// Why it failed or was cancelled.
    pub failure_reason: Option<String>,
    /// Human-readable progress.
    pub detailed_status: Option<String>,
    /// Same as `detailed_status` (the field name the original CLI reads).
    pub current_detailed_status: Option<String>,
    /// 1-based position within its GPU type's queue while queued.
    pub queue_position: Option<i32>,
    /// Estimated start while queued.
    pub estimated_start_time: Option<DateTime<Utc>>,
    /// Minutes until the estimated start while queued.
    pub estimated_wait_minutes: Option<i64>,
    /// When it became active.
    pub launched_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Persistent disk mounted as home.
    pub disk_name: Option<String>,
    /// Container image.
    pub image: String,
    /// Names of the environment variables given (never their values).
    pub env_names: Vec<String>,
    /// Queue priority.
    pub priority: i32,
    /// The latest warning (the original CLI's `warning`).
    pub warning: Option<String>,
    /// Warnings sent to the user (expiry and others), oldest first.
    pub warnings: Vec<JobWarning>,
    /// Everything that happened to it, oldest first.
    pub events: Vec<JobEvent>,
}

/// A warning about a reservation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobWarning {
    /// What the warning said.
    pub message: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// One entry of a reservation's history.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobEvent {
    /// `transition`, `warning`, `extend` or `note`.
    pub kind: String,
    /// Status before (transitions; null for the creation).
    pub from_status: Option<String>,
    /// Status after (transitions).
    pub to_status: Option<String>,
    /// Why.
    pub reason: Option<String>,
    /// Who (`processor`, `expiry`, a username).
    pub actor: String,
    /// Extra facts.
    #[schema(value_type = Object)]
    pub details: Value,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl From<Event> for JobEvent {
    fn from(e: Event) -> Self {
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
}

impl JobDetail {
    /// Builds the view of `r` for a caller; `viewer_is_owner` decides whether secrets meant for the
    /// owner (the Jupyter token) are shown.
    pub fn new(
        r: Reservation,
        events: Vec<Event>,
        catalog: &GpuCatalog,
        viewer_is_owner: bool,
        now: DateTime<Utc>,
    ) -> Self {
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
        let instance_type = r.instance_type.clone().or_else(|| {
            catalog
                .lookup(&r.gpu_type)
                .ok()
                .map(|s| s.instance_type.clone())
        });
        JobDetail {
            job_id: r.reservation_id,
            reservation_id: r.reservation_id,
            user_id: r.username,
            status: r.status.as_str().to_owned(),
            gpu_type: r.gpu_type,
            gpu_count: r.gpu_count,
            node_count: r.node_count,
            instance_type,
            duration_hours: r.duration_hours,
            extended_hours: r.extended_hours,
            created_at: r.created_at,
            updated_at: r.updated_at,
            expires_at: r.expires_at,
            name: r.name,
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
            github_user: r.github_user,
            secondary_users: r.secondary_users,
            failure_reason: r.failure_reason,
            current_detailed_status: r.detailed_status.clone(),
            detailed_status: r.detailed_status,
            queue_position: if queued { r.queue_position } else { None },
            estimated_start_time,
            estimated_wait_minutes: estimated_start_time.map(|t| wait_minutes(now, t)),
            launched_at: r.launched_at,
            ended_at: r.ended_at,
            disk_name: r.disk_name,
            image: r.image,
            env_names: r.env_names,
            priority: r.priority,
            warning: warnings.last().map(|w| w.message.clone()),
            warnings,
            events: events.into_iter().map(JobEvent::from).collect(),
        }
    }
}

/// Whole minutes from `now` until `at`, rounded up, never negative.
pub fn wait_minutes(now: DateTime<Utc>, at: DateTime<Utc>) -> i64 {
    let secs = (at - now).num_seconds().max(0);
    (secs + 59) / 60
}

/// The first moment after `now` at which [`wait_minutes`] towards `at` gives another number, or
/// `None` once it has reached zero for good. An answer showing the minutes may be reused until
/// then.
pub fn wait_minutes_change_at(now: DateTime<Utc>, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let minutes = wait_minutes(now, at);
    // `wait_minutes` shows m while at least 60(m-1)+1 whole seconds remain.
    (minutes > 0).then(|| at - chrono::Duration::seconds(60 * (minutes - 1) + 1))
}

impl JobDetail {
    /// When this view's minutes-to-start would read differently (see [`wait_minutes_change_at`]).
    pub fn changes_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.estimated_start_time
            .and_then(|at| wait_minutes_change_at(now, at))
    }
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
