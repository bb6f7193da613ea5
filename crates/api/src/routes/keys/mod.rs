//! `/v1/keys`: the caller's own API keys, one file per endpoint.

use actix_web::web;
use chrono::{DateTime, Utc};
use gpudev_store::api_keys::KeyRecord;

pub use gpudev_api_types::keys::KeyInfo;

pub mod delete;
pub mod list;
pub mod rotate;

/// Registers the key routes (inside the authenticated scope).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(rotate::rotate_key)
        .service(list::list_own_keys)
        .service(delete::delete_key);
}

/// The metadata of `record`, as seen by the holder of key `current_key_id` at `now`.
pub fn key_info(record: KeyRecord, current_key_id: i64, now: DateTime<Utc>) -> KeyInfo {
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
