//! `/v1/me`: the caller's own identity, quotas, usage and SSH keys.

use actix_web::web;

pub mod get;
pub mod ssh_keys;

/// Registers the `/v1/me` routes (inside the authenticated scope).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(get::get_me)
        .service(ssh_keys::put_ssh_keys)
        .service(ssh_keys::get_ssh_keys);
}
