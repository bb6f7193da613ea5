//! `/v1/jobs`: submit, read, list, cancel, extend, Jupyter and extra users.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::client::Client;
use crate::error::ClientError;

/// A reservation request (`POST /v1/jobs/submit`). Absent fields take the server's defaults.
/// `Debug` never shows environment values.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct JobSubmission {
    /// GPU type (`h100`, `t4`, `cpu-x86`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_type: Option<String>,
    /// GPUs in total (more than one node holds spans whole nodes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_count: Option<u32>,
    /// Hours, fractions allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_hours: Option<f64>,
    /// Container image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Persistent disk to mount as home.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_name: Option<String>,
    /// Size of the disk when it has to be created (GB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_size_gb: Option<i64>,
    /// Environment of the dev box (write-only on the server).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env_vars: BTreeMap<String, String>,
    /// Command to run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// GitHub login whose public keys are installed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub github_user: Option<String>,
    /// Start Jupyter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jupyter_enabled: Option<bool>,
    /// Queue priority (negative lowers it; above 0 needs an admin).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
}

impl JobSubmission {
    /// `gpu_count` GPUs of `gpu_type` for `hours`.
    pub fn new(gpu_type: impl Into<String>, gpu_count: u32, hours: f64) -> Self {
        Self {
            gpu_type: Some(gpu_type.into()),
            gpu_count: Some(gpu_count),
            duration_hours: Some(hours),
            ..Self::default()
        }
    }
}

impl fmt::Debug for JobSubmission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobSubmission")
            .field("gpu_type", &self.gpu_type)
            .field("gpu_count", &self.gpu_count)
            .field("duration_hours", &self.duration_hours)
            .field("image", &self.image)
            .field("disk_name", &self.disk_name)
            .field("env_vars", &self.env_vars.keys().collect::<Vec<_>>())
            .field("name", &self.name)
            .field("github_user", &self.github_user)
            .field("jupyter_enabled", &self.jupyter_enabled)
            .field("priority", &self.priority)
            .finish_non_exhaustive()
    }
}

/// The answer to a submission.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobSubmitResponse {
    /// The new job's id.
    pub job_id: Uuid,
    /// `queued`.
    pub status: String,
    /// What happened.
    pub message: String,
    /// 1-based position in its GPU type's queue.
    #[serde(default)]
    pub queue_position: Option<i64>,
    /// Estimated start.
    #[serde(default)]
    pub estimated_start_time: Option<DateTime<Utc>>,
}

/// A reservation with its connection details, progress and history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobDetail {
    /// The job id.
    pub job_id: Uuid,
    /// Same as `job_id`.
    #[serde(default)]
    pub reservation_id: Option<Uuid>,
    /// Owner's username.
    pub user_id: String,
    /// `queued`, `preparing`, `active`, `expired`, `cancelled` or `failed`.
    pub status: String,
    /// GPU type.
    pub gpu_type: String,
    /// GPUs in total.
    pub gpu_count: i32,
    /// Whole nodes it spans.
    #[serde(default)]
    pub node_count: Option<i32>,
    /// Node instance type.
    #[serde(default)]
    pub instance_type: Option<String>,
    /// Requested hours.
    pub duration_hours: f64,
    /// Hours added by extensions.
    #[serde(default)]
    pub extended_hours: f64,
    /// Submission time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    /// When it ends unless extended.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Its pod.
    #[serde(default)]
    pub pod_name: Option<String>,
    /// Address to SSH to.
    #[serde(default)]
    pub node_ip: Option<String>,
    /// Port to SSH to.
    #[serde(default)]
    pub node_port: Option<i32>,
    /// Ready-made SSH command (while active).
    #[serde(default)]
    pub ssh_command: Option<String>,
    /// Jupyter wanted.
    #[serde(default)]
    pub jupyter_enabled: bool,
    /// Jupyter URL once running.
    #[serde(default)]
    pub jupyter_url: Option<String>,
    /// Jupyter token.
    #[serde(default)]
    pub jupyter_token: Option<String>,
    /// GitHub login whose keys are installed.
    #[serde(default)]
    pub github_user: Option<String>,
    /// Other GitHub users with SSH access.
    #[serde(default)]
    pub secondary_users: Vec<String>,
    /// Why it failed or was cancelled.
    #[serde(default)]
    pub failure_reason: Option<String>,
    /// Human-readable progress.
    #[serde(default)]
    pub detailed_status: Option<String>,
    /// 1-based queue position while queued.
    #[serde(default)]
    pub queue_position: Option<i32>,
    /// Estimated start while queued.
    #[serde(default)]
    pub estimated_start_time: Option<DateTime<Utc>>,
    /// Minutes until the estimated start while queued.
    #[serde(default)]
    pub estimated_wait_minutes: Option<i64>,
    /// When it became active.
    #[serde(default)]
    pub launched_at: Option<DateTime<Utc>>,
    /// When it ended.
    #[serde(default)]
    pub ended_at: Option<DateTime<Utc>>,
    /// Persistent disk mounted as home.
    #[serde(default)]
    pub disk_name: Option<String>,
    /// Container image.
    #[serde(default)]
    pub image: Option<String>,
    /// Names of the environment variables given.
    #[serde(default)]
    pub env_names: Vec<String>,
    /// Queue priority.
    #[serde(default)]
    pub priority: i32,
    /// Warnings, oldest first.
    #[serde(default)]
    pub warnings: Vec<JobWarning>,
    /// History, oldest first.
    #[serde(default)]
    pub events: Vec<JobEvent>,
}

impl JobDetail {
    /// True once the job can no longer change (expired, cancelled or failed).
    pub fn is_terminal(&self) -> bool {
        matches!(self.status.as_str(), "expired" | "cancelled" | "failed")
    }

    /// The first 8 characters of the id (what the CLI shows and accepts).
    pub fn short_id(&self) -> String {
        self.job_id.simple().to_string()[..8].to_owned()
    }
}

/// A warning about a job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobWarning {
    /// What it said.
    pub message: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// One entry of a job's history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobEvent {
    /// `transition`, `warning`, `extend` or `note`.
    pub kind: String,
    /// Status before.
    #[serde(default)]
    pub from_status: Option<String>,
    /// Status after.
    #[serde(default)]
    pub to_status: Option<String>,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
    /// Who.
    pub actor: String,
    /// Extra facts.
    #[serde(default)]
    pub details: serde_json::Value,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A page of jobs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobList {
    /// Newest first.
    pub jobs: Vec<JobDetail>,
    /// Jobs matching the filter in all.
    pub total: i64,
    /// Page size.
    pub limit: i64,
    /// Jobs skipped.
    pub offset: i64,
}

/// Filters of `GET /v1/jobs`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ListJobsQuery {
    /// Comma-separated statuses; all when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Page size (1–500, server default 50).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// Jobs to skip.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
}

/// The answer to an action on a job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobActionResponse {
    /// The job.
    pub job_id: Uuid,
    /// `cancel`, `extend`, `enable_jupyter`, `disable_jupyter` or `add_user`.
    pub action: String,
    /// `cancelled`, `extended` or `requested`.
    pub status: String,
    /// What happened.
    pub message: String,
    /// When the job now ends.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

impl Client {
    /// Submits a reservation. With an `idempotency_key`, a retry of the same body returns the
    /// first job instead of a second one.
    pub async fn submit_job(
        &self,
        job: &JobSubmission,
        idempotency_key: Option<&str>,
    ) -> Result<JobSubmitResponse, ClientError> {
        let mut req = self
            .request(Method::POST, &["v1", "jobs", "submit"])
            .json(job);
        if let Some(key) = idempotency_key {
            req = req.header("Idempotency-Key", key);
        }
        self.send(req).await
    }

    /// One job by full id or a unique prefix of at least 8 characters.
    pub async fn get_job(&self, id: &str) -> Result<JobDetail, ClientError> {
        self.get(&["v1", "jobs", id.trim()]).await
    }

    /// The caller's jobs, newest first.
    pub async fn list_jobs(&self, query: &ListJobsQuery) -> Result<JobList, ClientError> {
        self.get_query(&["v1", "jobs"], query).await
    }

    /// Cancels a job (a cancelled job again is a no-op).
    pub async fn cancel_job(&self, id: &str) -> Result<JobActionResponse, ClientError> {
        self.post(&["v1", "jobs", id.trim(), "cancel"], &serde_json::json!({}))
            .await
    }

    /// Extends an active job by `hours` (fractions allowed).
    pub async fn extend_job(&self, id: &str, hours: f64) -> Result<JobActionResponse, ClientError> {
        self.post(
            &["v1", "jobs", id.trim(), "extend"],
            &serde_json::json!({ "extension_hours": hours }),
        )
        .await
    }

    /// Starts (`true`) or stops Jupyter in a job.
    pub async fn set_jupyter(
        &self,
        id: &str,
        enable: bool,
    ) -> Result<JobActionResponse, ClientError> {
        let action = if enable { "enable" } else { "disable" };
        self.post(
            &["v1", "jobs", id.trim(), "jupyter", action],
            &serde_json::json!({}),
        )
        .await
    }

    /// Gives another GitHub user SSH access to a job.
    pub async fn add_job_user(
        &self,
        id: &str,
        github_username: &str,
    ) -> Result<JobActionResponse, ClientError> {
        self.post(
            &["v1", "jobs", id.trim(), "users"],
            &serde_json::json!({ "github_username": github_username }),
        )
        .await
    }
}
