//! gpudev-client: a typed async HTTP client for the gpudev API.
//!
//! One [`Client`] per API base URL; [`Client::with_api_key`] gives a copy that authenticates with a
//! key. Every endpoint is a method returning its typed answer or a [`ClientError`], whose
//! [`ClientError::Api`] variant carries the API's own `{detail, code}`. The request and answer
//! types are the server's own, from `gpudev-api-types` (so the CLI does not link the server).
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

pub use client::{Client, ClientBuilder, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT};
pub use error::ClientError;
/// The request and answer bodies, shared with the server.
pub use gpudev_api_types as types;
pub use gpudev_api_types::admin::AdminJobQuery;
pub use gpudev_api_types::auth::{
    AwsIamRequest, AwsLoginRequest, LoginResponse, OidcIssuerInfo, OidcIssuers,
};
pub use gpudev_api_types::cluster::{
    AvailabilityQuery, AvailabilityResponse, BookableAt, CapacityUnit, ClusterStatus,
    FiguresSource, GpuAvailability,
};
pub use gpudev_api_types::disks::{
    DiskInfo, DiskList, DiskOperationResponse, OperationStatus, RenameResult,
};
pub use gpudev_api_types::jobs::{
    JobActionResponse, JobDetail, JobEvent, JobList, JobSubmission, JobSubmitResponse, JobWarning,
    ListQuery,
};
pub use gpudev_api_types::keys::{KeyInfo, KeyList, RotateResponse};
pub use gpudev_api_types::me::{CurrentKey, MeResponse, Quotas, SshKeyInfo, SshKeyList, Usage};
pub use gpudev_api_types::{ErrorBody, ErrorCode};
