//! `/v1/keys`: the caller's own API keys, one file per endpoint.

use actix_web::web;
use chrono::{DateTime, Utc};
use gpudev_store::api_keys::KeyRecord;
use serde::Serialize;
use utoipa::ToSchema;

pub mod delete;
pub mod list;
pub mod rotate;

/// Registers the key routes (inside the authenticated scope).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(rotate::rotate_key)
        .service(list::list_own_keys)
        .service(delete::delete_key);
}

/// An API key's metadata: never the key itself, never its hash.
#[derive(Debug, Serialize, ToSchema)]
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

impl KeyInfo {
    /// The metadata of `record`, as seen by the holder of key `current_key_id` at `now`.
    pub fn from_record(record: KeyRecord, current_key_id: i64, now: DateTime<Utc>) -> Self {
        let status = if record.revoked_at.is_some() {
            "revoked"
        } else if record.expires_at <= now {
            "expired"
        } else {
            "active"
        };
        KeyInfo {
            current: record.key_id == current_key_id,
            key_id: record.key_id,
            key_prefix: record.key_prefix,
            description: record.description,
            auth_method: record.auth_method,
            status: status.into(),
            created_at: record.created_at,
            expires_at: record.expires_at,
            last_used_at: record.last_used_at,
            revoked_at: record.revoked_at,
        }
    }
}
