//! `/v1/admin`: what the CLI uses of the operator routes.

use serde::Serialize;

use crate::client::Client;
use crate::error::ClientError;
use crate::jobs::JobList;

/// Filters of `GET /v1/admin/jobs`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AdminJobsQuery {
    /// Only this user's jobs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Comma-separated statuses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Page size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// Jobs to skip.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
}

impl Client {
    /// Every user's jobs (admins). The route is specified for the API (issue 3) but servers may
    /// not offer it yet: they answer 404 `not_found` ("no such endpoint").
    pub async fn admin_list_jobs(&self, query: &AdminJobsQuery) -> Result<JobList, ClientError> {
        self.get_query(&["v1", "admin", "jobs"], query).await
    }
}
