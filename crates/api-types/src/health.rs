//! `GET /` and `GET /health`.

use serde::{Deserialize, Serialize};

/// Service information and links.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceInfo {
    /// Service name.
    pub service: String,
    /// Version of this build.
    pub version: String,
    /// Interactive API documentation.
    pub docs: String,
    /// OpenAPI document.
    pub openapi: String,
    /// The health route (`/health`): 200 while the database and the queue answer.
    pub health: String,
    /// Where to log in.
    pub auth: AuthLinks,
}

/// Where to log in.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuthLinks {
    /// Send AWS credentials (verified with STS).
    pub aws_login: String,
    /// Send a presigned STS request (the secret key never leaves the client).
    pub aws_iam: String,
    /// Send an OpenID Connect ID token.
    pub oidc_login: String,
    /// The trusted OIDC issuers and their client ids.
    pub oidc_issuers: String,
}

/// Health of the service and its dependencies.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// `healthy` or `unhealthy`.
    pub status: String,
    /// `healthy`, or what is wrong with the database.
    pub database: String,
    /// `healthy`, `missing`, or `unknown` when the database is down.
    pub queue: String,
    /// When this was checked.
    pub timestamp: chrono::DateTime<chrono::Utc>,
}
