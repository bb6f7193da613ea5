//! `/v1/me`: identity, quotas and SSH keys.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::client::Client;
use crate::error::ClientError;

/// Who the caller is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MeResponse {
    /// User id.
    pub user_id: i64,
    /// Username.
    pub username: String,
    /// `user` or `admin`.
    pub role: String,
    /// Contact address.
    #[serde(default)]
    pub email: Option<String>,
    /// AWS identity of the last AWS login.
    #[serde(default)]
    pub aws_arn: Option<String>,
    /// GitHub login.
    #[serde(default)]
    pub github_username: Option<String>,
    /// First seen.
    pub created_at: DateTime<Utc>,
    /// Last login.
    #[serde(default)]
    pub last_login_at: Option<DateTime<Utc>>,
    /// The key of this request.
    pub current_key: CurrentKey,
    /// Limits in force.
    pub quotas: Quotas,
    /// What counts against them.
    pub usage: Usage,
}

/// The key that authenticated the request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CurrentKey {
    /// Id.
    pub key_id: i64,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// How its session authenticated.
    pub auth_method: String,
    /// The OIDC issuer of that session, for OIDC logins.
    #[serde(default)]
    pub auth_issuer: Option<String>,
}

/// Per-user limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Quotas {
    /// Most live reservations.
    pub max_active_reservations_per_user: u32,
    /// Most GPUs over them.
    pub max_gpus_per_user: u32,
}

/// Live use.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Usage {
    /// Live reservations.
    pub active_reservations: i64,
    /// GPUs over them.
    pub gpus: i64,
}

/// A registered SSH public key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SshKeyInfo {
    /// `ssh-ed25519`, …
    pub key_type: String,
    /// `SHA256:…`.
    pub fingerprint: String,
    /// Comment.
    #[serde(default)]
    pub comment: Option<String>,
    /// The `authorized_keys` line.
    pub public_key: String,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
}

/// The caller's SSH keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SshKeyList {
    /// Oldest first.
    pub keys: Vec<SshKeyInfo>,
    /// How many.
    pub total: usize,
}

impl Client {
    /// Identity, role, current key, quotas and usage.
    pub async fn me(&self) -> Result<MeResponse, ClientError> {
        self.get(&["v1", "me"]).await
    }

    /// The registered SSH public keys.
    pub async fn ssh_keys(&self) -> Result<SshKeyList, ClientError> {
        self.get(&["v1", "me", "ssh-keys"]).await
    }

    /// Replaces the registered SSH public keys with `keys` (OpenSSH lines).
    pub async fn set_ssh_keys(&self, keys: &[String]) -> Result<SshKeyList, ClientError> {
        self.put(
            &["v1", "me", "ssh-keys"],
            &serde_json::json!({ "keys": keys }),
        )
        .await
    }
}
