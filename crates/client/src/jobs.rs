//! `/v1/jobs`: submit, read, list, cancel, extend, Jupyter and extra users.

use gpudev_api_types::jobs::{
    AddUserRequest, ExtendRequest, JobActionResponse, JobDetail, JobList, JobSubmission,
    JobSubmitResponse, KeepAliveRequest, ListQuery,
};
use reqwest::Method;

use crate::client::Client;
use crate::error::ClientError;

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
    pub async fn list_jobs(&self, query: &ListQuery) -> Result<JobList, ClientError> {
        self.get_query(&["v1", "jobs"], query).await
    }

    /// Cancels a job (a cancelled job again is a no-op).
    pub async fn cancel_job(&self, id: &str) -> Result<JobActionResponse, ClientError> {
        self.post(&["v1", "jobs", id.trim(), "cancel"], &serde_json::json!({}))
            .await
    }

    /// Extends a live job by `hours` (fractions allowed). With an `idempotency_key`, repeating
    /// the call (a retry after a lost answer or a re-login) within 24 hours extends once and
    /// returns the first answer.
    pub async fn extend_job(
        &self,
        id: &str,
        hours: f64,
        idempotency_key: Option<&str>,
    ) -> Result<JobActionResponse, ClientError> {
        let mut req = self
            .request(Method::POST, &["v1", "jobs", id.trim(), "extend"])
            .json(&ExtendRequest {
                extension_hours: hours,
            });
        if let Some(key) = idempotency_key {
            req = req.header("Idempotency-Key", key);
        }
        self.send(req).await
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
            &AddUserRequest {
                github_username: github_username.to_owned(),
            },
        )
        .await
    }

    /// Restarts an active job's idle countdown; with `idle_minutes`, sets its idle limit too.
    pub async fn keep_alive(
        &self,
        id: &str,
        idle_minutes: Option<u32>,
    ) -> Result<JobActionResponse, ClientError> {
        self.post(
            &["v1", "jobs", id.trim(), "keep-alive"],
            &KeepAliveRequest { idle_minutes },
        )
        .await
    }
}
