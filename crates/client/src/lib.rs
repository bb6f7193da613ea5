//! gpudev-client: a typed async HTTP client for the gpudev API.
//!
//! One [`Client`] per API base URL; [`Client::with_api_key`] gives a copy that authenticates with a
//! key. Every endpoint is a method returning its typed answer or a [`ClientError`], whose
//! [`ClientError::Api`] variant carries the API's own `{detail, code}`. The request and answer
//! types mirror the API's JSON (they are the client's own, so the CLI does not link the server).
//!
//! [`oidc`] runs the OAuth device authorization flow against an OpenID Connect issuer, for
//! `POST /v1/auth/oidc-login`.
//!
//! [`sts`] signs the STS `GetCallerIdentity` request that `POST /v1/auth/aws-iam` forwards, so a
//! login never sends the AWS secret key.
//!
//! ```no_run
//! # async fn demo() -> Result<(), gpudev_client::ClientError> {
//! use gpudev_client::{Client, JobSubmission};
//!
//! let client = Client::new("http://localhost:8000")?.with_api_key("…");
//! let job = client
//!     .submit_job(&JobSubmission::new("h100", 4, 2.5), None)
//!     .await?;
//! println!("{} is {}", job.job_id, job.status);
//! # Ok(()) }
//! ```

mod admin;
mod auth;
mod client;
mod cluster;
mod disks;
mod error;
mod jobs;
mod keys;
mod me;
pub mod oidc;
pub mod sts;

pub use admin::AdminJobsQuery;
pub use auth::{AwsIamRequest, AwsLoginRequest, LoginResponse, OidcIssuerInfo, OidcIssuers};
pub use client::{Client, ClientBuilder, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT};
pub use cluster::{AvailabilityResponse, ClusterStatus, GpuAvailability};
pub use disks::{DiskInfo, DiskList, DiskOperation, OperationStatus, RenameResult};
pub use error::ClientError;
pub use jobs::{
    JobActionResponse, JobDetail, JobEvent, JobList, JobSubmission, JobSubmitResponse, JobWarning,
    ListJobsQuery,
};
pub use keys::{KeyInfo, KeyList, RotateResponse};
pub use me::{CurrentKey, MeResponse, Quotas, SshKeyInfo, SshKeyList, Usage};
