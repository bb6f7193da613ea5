//! `/v1/keys`: the caller's API keys.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Options of a rotation. The body may also be empty; when present it is a JSON object (an
/// array, which serde would otherwise read field by field, or `null` is refused).
#[derive(Debug, Clone, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct RotateRequest {
    /// Revoke the key that authenticated this request once the new one exists (default false:
    /// the old key keeps working until it expires).
    pub revoke_current: bool,
}

impl<'de> Deserialize<'de> for RotateRequest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(default)]
        struct Fields {
            revoke_current: bool,
        }
        impl Default for Fields {
            fn default() -> Self {
                let RotateRequest { revoke_current } = RotateRequest::default();
                Fields { revoke_current }
            }
        }

        struct ObjectOnly;
        impl<'de> serde::de::Visitor<'de> for ObjectOnly {
            type Value = RotateRequest;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RotateRequest, A::Error> {
                let Fields { revoke_current } =
                    Fields::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(RotateRequest { revoke_current })
            }
        }
        d.deserialize_map(ObjectOnly)
    }
}

/// The new key, shown once.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RotateResponse {
    /// The new API key.
    pub api_key: String,
    /// The new key's id.
    pub key_id: i64,
    /// The new key's first characters.
    pub key_prefix: String,
    /// The user's id.
    pub user_id: i64,
    /// The user's name.
    pub username: String,
    /// When the new key stops working.
    pub expires_at: DateTime<Utc>,
    /// The new key's lifetime in hours (`API_KEY_TTL_HOURS`).
    pub ttl_hours: u32,
    /// The key that was revoked, when `revoke_current` was set.
    pub revoked_key_id: Option<i64>,
}

/// The caller's keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyList {
    /// Newest first, including expired and revoked ones until they are purged.
    pub keys: Vec<KeyInfo>,
    /// How many.
    pub total: usize,
}

/// An API key's metadata: never the key itself, never its hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyInfo {
    /// The key's id.
    pub key_id: i64,
    /// The key's first characters.
    pub key_prefix: String,
    /// How the key came to be (`aws-login as …`, `rotated from key 7`, …).
    pub description: Option<String>,
    /// How the session that created it authenticated (`aws-login`, `aws-iam`, `admin`, …).
    pub auth_method: String,
    /// `active`, `expired` or `revoked`.
    pub status: String,
    /// True for the key that authenticated this request.
    pub current: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When it stops (or stopped) working.
    pub expires_at: DateTime<Utc>,
    /// Last time it authenticated a request (written in batches, so up to a few seconds late).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
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
            .finish_non_exhaustive()
    }
}
