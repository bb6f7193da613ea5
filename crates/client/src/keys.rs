//! `/v1/keys`: the caller's API keys.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::client::Client;
use crate::error::ClientError;

/// An API key's metadata (never the key).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyInfo {
    /// Id.
    pub key_id: i64,
    /// First characters.
    pub key_prefix: String,
    /// How it came to be.
    #[serde(default)]
    pub description: Option<String>,
    /// How its session authenticated.
    pub auth_method: String,
    /// `active`, `expired` or `revoked`.
    pub status: String,
    /// The key of this request.
    pub current: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// Last use (written in batches).
    #[serde(default)]
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    #[serde(default)]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The caller's keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyList {
    /// Newest first.
    pub keys: Vec<KeyInfo>,
    /// How many.
    pub total: usize,
}

/// A new key from a rotation.
#[derive(Clone, Serialize, Deserialize)]
pub struct RotateResponse {
    /// The new key (shown once).
    pub api_key: String,
    /// Its id.
    pub key_id: i64,
    /// Its first characters.
    pub key_prefix: String,
    /// The user's id.
    pub user_id: i64,
    /// The username.
    pub username: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// Its lifetime in hours.
    pub ttl_hours: u32,
    /// The key revoked with `revoke_current`.
    #[serde(default)]
    pub revoked_key_id: Option<i64>,
}

impl fmt::Debug for RotateResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RotateResponse")
            .field("api_key", &"<redacted>")
            .field("key_id", &self.key_id)
            .field("key_prefix", &self.key_prefix)
            .field("username", &self.username)
            .field("expires_at", &self.expires_at)
            .field("revoked_key_id", &self.revoked_key_id)
            .finish()
    }
}

impl Client {
    /// The caller's keys.
    pub async fn list_keys(&self) -> Result<KeyList, ClientError> {
        self.get(&["v1", "keys"]).await
    }

    /// A new key with a fresh lifetime; `revoke_current` also revokes the key of this request.
    pub async fn rotate_key(&self, revoke_current: bool) -> Result<RotateResponse, ClientError> {
        self.post(
            &["v1", "keys", "rotate"],
            &serde_json::json!({ "revoke_current": revoke_current }),
        )
        .await
    }

    /// Revokes one of the caller's keys.
    pub async fn revoke_key(&self, key_id: i64) -> Result<KeyInfo, ClientError> {
        self.delete(&["v1", "keys", &key_id.to_string()]).await
    }
}
