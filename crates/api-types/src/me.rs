//! `/v1/me`: identity, quotas, usage and SSH keys.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Who the caller is, how they authenticated, and how much of their quota they use.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MeResponse {
    /// The user's id.
    pub user_id: i64,
    /// The user's name.
    pub username: String,
    /// `user` or `admin`.
    pub role: String,
    /// Contact address, when known.
    pub email: Option<String>,
    /// The AWS identity of the last AWS login.
    pub aws_arn: Option<String>,
    /// GitHub login whose public keys may be installed on dev boxes.
    pub github_username: Option<String>,
    /// When the user was first seen.
    pub created_at: DateTime<Utc>,
    /// Last successful login.
    pub last_login_at: Option<DateTime<Utc>>,
    /// The key that authenticated this request.
    pub current_key: CurrentKey,
    /// The per-user limits in force.
    pub quotas: Quotas,
    /// What counts against them now.
    pub usage: Usage,
}

/// The key that authenticated the request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CurrentKey {
    /// Its id (what `DELETE /v1/keys/{id}` takes).
    pub key_id: i64,
    /// When it stops working (log in again or rotate before then).
    pub expires_at: DateTime<Utc>,
    /// How its session authenticated (`aws-login`, `aws-iam`, `admin`, …).
    pub auth_method: String,
    /// The OIDC issuer of that login, when it was one.
    pub auth_issuer: Option<String>,
}

/// Per-user limits (from the server's configuration).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Quotas {
    /// Most reservations preparing or active at once; beyond it they wait in the queue (0: no
    /// limit).
    pub max_active_reservations_per_user: u32,
    /// Most GPUs over those reservations; beyond it they wait in the queue (0: no limit).
    pub max_gpus_per_user: u32,
    /// Most reservations waiting in the queue; a submit beyond it is refused (0: no limit).
    #[serde(default)]
    pub max_queued_reservations_per_user: u32,
}

/// Live use: reservations queued, preparing or active.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Usage {
    /// Reservations queued, preparing or active.
    pub active_reservations: i64,
    /// GPUs over those reservations.
    pub gpus: i64,
}

/// The complete set of SSH public keys to install in the caller's dev boxes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SshKeysRequest {
    /// OpenSSH public key lines (`ssh-ed25519 AAAA… comment`), at most 32; an empty list removes
    /// every key.
    pub keys: Vec<String>,
}

/// A registered key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SshKeyInfo {
    /// Key type (`ssh-ed25519`, …).
    pub key_type: String,
    /// `SHA256:…` fingerprint, as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
    /// The key's comment.
    pub comment: Option<String>,
    /// The `authorized_keys` line.
    pub public_key: String,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
}

/// The caller's registered keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SshKeyList {
    /// Oldest first.
    pub keys: Vec<SshKeyInfo>,
    /// How many.
    pub total: usize,
}
