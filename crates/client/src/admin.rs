//! `/v1/admin`: what the CLI uses of the operator routes.

use gpudev_api_types::admin::AdminJobQuery;
use gpudev_api_types::jobs::JobList;

use crate::client::Client;
use crate::error::ClientError;

impl Client {
    /// Every user's jobs (admins). The route is specified for the API (issue 3) but servers may
    /// not offer it yet: they answer 404 `not_found` ("no such endpoint").
    pub async fn admin_list_jobs(&self, query: &AdminJobQuery) -> Result<JobList, ClientError> {
        self.get_query(&["v1", "admin", "jobs"], query).await
    }
}
