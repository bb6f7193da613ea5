//! `/v1/jobs`: the submit answer, a job as it is read, pages of jobs and the answers to actions.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

pub use gpudev_domain::submission::JobSubmission;

/// A reservation ("job") with its connection details, progress and history.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Its (first) Pod, once admitted.
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
    /// 1-based position within its GPU type's queue; present whenever it is queued (from the
    /// submit until the scheduler's pass writes its own, then the scheduler's).
    pub queue_position: Option<i32>,
    /// Estimated start while queued.
    pub estimated_start_time: Option<DateTime<Utc>>,
    /// Minutes until the estimated start while queued.
    pub estimated_wait_minutes: Option<i64>,
    /// True while queued when the estimated start is a promise (ADR 5): it moves later only if
    /// a node it was promised is lost, a reservation on those nodes runs past its end or is
    /// extended, or work outside gpudev takes them.
    #[serde(default)]
    pub start_promised: bool,
    /// The first estimate it was given (its admission time if it never waited).
    #[serde(default)]
    pub first_estimated_start_time: Option<DateTime<Utc>>,
    /// While queued: when its dev box is expected to be ready — the estimated start plus the
    /// recent median start-up time of its GPU type (null until a box of the type has started).
    #[serde(default)]
    pub estimated_ready_time: Option<DateTime<Utc>>,
    /// For a booking: the start its owner booked (it starts then, not before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<DateTime<Utc>>,
    /// While queued: what the estimate promises, in one line.
    #[serde(default)]
    pub estimate_note: Option<String>,
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
    /// What its dev box's agent reported and the idle countdown (ADR 18); absent before the
    /// box's agent has a token.
    #[serde(default)]
    pub activity: Option<JobActivity>,
}

/// `POST /v1/jobs/{id}/keep-alive`'s optional body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct KeepAliveRequest {
    /// A new idle limit for the job, in minutes: at least the platform's (`IDLE_MINUTES`), at
    /// most `IDLE_MAX_MINUTES`; admins may ask for any, 0 meaning never released as idle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_minutes: Option<u32>,
}

/// A dev box's activity as its agent reports it, and its idle countdown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobActivity {
    /// When the agent last reported (none yet: absent). An agent that has not reported for a
    /// few minutes is silent; a silent box is never released as idle for that alone.
    pub last_report_at: Option<DateTime<Utc>>,
    /// When the agent last saw the box in use (a session, a Jupyter connection or a busy GPU).
    pub last_activity_at: Option<DateTime<Utc>>,
    /// Since when the box has been idle; absent while it is in use.
    pub idle_since: Option<DateTime<Utc>>,
    /// Minutes of idleness after which the box is released; absent when it never is.
    pub idle_minutes: Option<u32>,
    /// When it will be released as idle unless it is used (or kept alive) before; absent
    /// while it is in use or when it never is.
    pub idle_ends_at: Option<DateTime<Utc>>,
    /// When the user was warned about the current idle stretch.
    pub idle_warned_at: Option<DateTime<Utc>>,
}

/// A warning about a reservation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobWarning {
    /// What the warning said.
    pub message: String,
    /// When it was sent.
    pub created_at: DateTime<Utc>,
}

/// One entry of a reservation's history.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobEvent {
    /// `transition`, `warning`, `extend` or `note`.
    pub kind: String,
    /// Status before (transitions; null for the creation).
    pub from_status: Option<String>,
    /// Status after (transitions).
    pub to_status: Option<String>,
    /// Why it happened (a failure or cancellation reason, a warning's text).
    pub reason: Option<String>,
    /// Who (`processor`, `expiry`, a username).
    pub actor: String,
    /// Facts of the event (an extension's hours, the Jupyter switch, the GitHub login added, …).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub details: Value,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
}

/// The answer to an action on a job (the original `JobActionResponse`, plus `expires_at`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobActionResponse {
    /// The job acted on.
    pub job_id: Uuid,
    /// `cancel`, `extend`, `enable_jupyter`, `disable_jupyter` or `add_user`.
    pub action: String,
    /// `cancelled` and `extended` are done; `requested` is carried out by the processor.
    pub status: String,
    /// What happened, in a sentence.
    pub message: String,
    /// When the job now ends (null until it is active, and after a cancel).
    pub expires_at: Option<DateTime<Utc>>,
    /// When the action takes effect.
    pub applies: Applies,
}

/// When an action on a job takes effect. Every action is accepted in every live status; what
/// differs is when it reaches the dev box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Applies {
    /// Done in this request (a cancel; an extension of an active job, whose `expires_at` moved).
    Now,
    /// Recorded now and carried out on the dev box by the processor within moments; Jupyter and
    /// added keys are live inside the box within about a minute (a preparing or active job).
    Shortly,
    /// Recorded now; the job starts with it (a queued job; an extension of a queued or preparing
    /// job counts from when it becomes active).
    AtStart,
}

/// Filters and paging.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ListQuery {
    /// Comma-separated statuses (`queued,active`); all when absent. The original's `pending` and
    /// `creating_server` are read as `queued` and `preparing`.
    #[cfg_attr(feature = "openapi", param(value_type = Option<gpudev_domain::status::StatusList>))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Page size, 1–500 (default 50).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 500))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// Jobs to skip (default 0).
    #[cfg_attr(feature = "openapi", param(minimum = 0))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
}

/// A page of jobs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobList {
    /// The caller's jobs, newest first.
    pub jobs: Vec<JobDetail>,
    /// Jobs matching the filter in all.
    pub total: i64,
    /// Page size used.
    pub limit: i64,
    /// Jobs skipped.
    pub offset: i64,
}

/// How long to extend by.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExtendRequest {
    /// Hours to add, fractions allowed (at least 5 minutes, at most the longest single
    /// reservation).
    #[cfg_attr(
        feature = "openapi",
        schema(example = 1.5, minimum = 0.08333333333333333)
    )]
    pub extension_hours: f64,
}

/// Whom to give access.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AddUserRequest {
    /// A GitHub login; that user's public SSH keys are installed in the dev box.
    #[cfg_attr(feature = "openapi", schema(value_type = gpudev_domain::GithubUser))]
    pub github_username: String,
}

/// The answer to a submit.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobSubmitResponse {
    /// The job id; `GET /v1/jobs/{job_id}` works at once.
    pub job_id: Uuid,
    /// `queued` for a new job; a replayed submit shows the job's current status.
    pub status: String,
    /// What happened, in a sentence.
    pub message: String,
    /// 1-based position within its GPU type's queue (a first estimate, stored with the job; the
    /// scheduler refines it): the scheduler's own prediction, or the job's place by arrival when
    /// there is none. Null only for a replayed submit whose job has left the queue.
    pub queue_position: Option<i64>,
    /// When it is expected to start, if that can be told yet.
    pub estimated_start_time: Option<DateTime<Utc>>,
}

impl JobDetail {
    /// True once the job can no longer change (expired, cancelled or failed).
    pub fn is_terminal(&self) -> bool {
        matches!(self.status.as_str(), "expired" | "cancelled" | "failed")
    }

    /// The first 8 characters of the id (what the CLI shows and accepts).
    pub fn short_id(&self) -> String {
        let mut id = self.job_id.simple().to_string();
        id.truncate(8);
        id
    }
}
